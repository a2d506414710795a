//! The service catalog over a temporary SQLite store: deny by default, each way a grant
//! can name a client, endpoint patterns, revocation, persistence, OpenAPI-derived endpoints.

use lienthong_gateway::catalog::{CatalogError, ServiceCatalog};
use lienthong_model::conf::{CONF_FORMAT, FederationPolicy, GlobalConf, GlobalGroup, Member};
use lienthong_model::gateway::{Endpoint, Grant, GrantSubject, LocalGroup, Service};
use lienthong_model::{ClientId, SubsystemId};
use lienthong_store::Store;
use serde_json::json;

struct Fixture {
    _dir: tempfile::TempDir,
    url: String,
    catalog: ServiceCatalog,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
    let store = Store::open(&url).await.expect("open store");
    let catalog = ServiceCatalog::load(store).await.expect("load catalog");
    catalog
        .add_service(service("persons"))
        .await
        .expect("add service");
    Fixture {
        _dir: dir,
        url,
        catalog,
    }
}

fn provider() -> SubsystemId {
    "VN/GOV/1/registry".parse().expect("provider")
}

fn client(id: &str) -> ClientId {
    id.parse().expect("client id")
}

fn service(code: &str) -> Service {
    Service {
        provider: provider(),
        code: code.into(),
        base_url: "http://127.0.0.1:9/api".into(),
        timeout_ms: 5_000,
        backend_tls: Default::default(),
        openapi: None,
        endpoints: Vec::new(),
    }
}

fn grant(subject: GrantSubject, endpoint: Option<(&str, &str)>) -> Grant {
    Grant {
        service: "VN/GOV/1/registry/persons".parse().expect("service id"),
        subject,
        endpoint: endpoint.map(|(method, path)| Endpoint::new(method, path).expect("endpoint")),
    }
}

/// A configuration with one global group, `VN/tax-offices`, holding `VN/GOV/3/tax`.
fn conf() -> GlobalConf {
    GlobalConf {
        format: CONF_FORMAT.into(),
        instance: "VN".into(),
        version: 1,
        generated_at: 0,
        expires_at: i64::MAX,
        policy: FederationPolicy::default(),
        members: vec![Member {
            id: "VN/GOV/1".parse().expect("member"),
            name: "Registry".into(),
            subsystems: vec!["registry".into()],
        }],
        gateways: Vec::new(),
        global_groups: vec![GlobalGroup {
            id: "VN/tax-offices".parse().expect("group"),
            description: "tax offices".into(),
            members: vec![client("VN/GOV/3/tax")],
        }],
        certificate_authorities: Vec::new(),
        timestamp_authorities: Vec::new(),
    }
}

fn allowed(catalog: &ServiceCatalog, who: &str, method: &str, path: &str) -> bool {
    let service = catalog
        .service(&provider(), "persons")
        .expect("service exists");
    catalog.is_allowed(&client(who), &service, method, path, &conf())
}

#[tokio::test]
async fn deny_by_default() {
    let f = fixture().await;
    assert!(!allowed(&f.catalog, "VN/GOV/2/police", "GET", "/"));
    assert!(
        !allowed(&f.catalog, "VN/GOV/1/registry", "GET", "/"),
        "not even the provider"
    );
    assert!(f.catalog.service(&provider(), "nope").is_none());
    let police = client("VN/GOV/2/police");
    assert!(
        f.catalog
            .allowed_endpoints(&police, &provider(), &conf())
            .is_empty()
    );
}

#[tokio::test]
async fn grant_to_a_subsystem() {
    let f = fixture().await;
    let subject = GrantSubject::client(client("VN/GOV/2/police"));
    assert!(
        f.catalog
            .grant(grant(subject.clone(), None))
            .await
            .expect("grant")
    );
    assert!(
        !f.catalog.grant(grant(subject, None)).await.expect("again"),
        "idempotent"
    );
    assert!(allowed(
        &f.catalog,
        "VN/GOV/2/police",
        "DELETE",
        "/persons/1/anything"
    ));
    assert!(
        !allowed(&f.catalog, "VN/GOV/2/traffic", "GET", "/"),
        "another subsystem"
    );
    assert!(
        !allowed(&f.catalog, "VN/GOV/2", "GET", "/"),
        "its member as a client"
    );
}

#[tokio::test]
async fn grant_through_a_global_group() {
    let f = fixture().await;
    let group = GrantSubject::GlobalGroup("VN/tax-offices".parse().expect("group"));
    f.catalog.grant(grant(group, None)).await.expect("grant");
    assert!(allowed(&f.catalog, "VN/GOV/3/tax", "GET", "/persons"));
    assert!(!allowed(&f.catalog, "VN/GOV/3/customs", "GET", "/persons"));
    // Membership comes from the configuration of the moment.
    let service = f.catalog.service(&provider(), "persons").expect("service");
    let mut without = conf();
    without.global_groups[0].members.clear();
    assert!(!f.catalog.is_allowed(
        &client("VN/GOV/3/tax"),
        &service,
        "GET",
        "/persons",
        &without
    ));
}

#[tokio::test]
async fn grant_through_a_local_group() {
    let f = fixture().await;
    let local = GrantSubject::LocalGroup("auditors".into());
    let error = f
        .catalog
        .grant(grant(local.clone(), None))
        .await
        .expect_err("group does not exist yet");
    assert!(matches!(error, CatalogError::BadRequest(_)), "{error}");
    f.catalog
        .add_local_group(LocalGroup {
            owner: provider(),
            code: "auditors".into(),
            description: "state audit".into(),
            members: vec![client("VN/GOV/4/audit")],
        })
        .await
        .expect("group");
    f.catalog.grant(grant(local, None)).await.expect("grant");
    assert!(allowed(&f.catalog, "VN/GOV/4/audit", "GET", "/persons"));
    assert!(!allowed(&f.catalog, "VN/GOV/5/press", "GET", "/persons"));
    f.catalog
        .add_local_group_member(&provider(), "auditors", client("VN/GOV/5/press"))
        .await
        .expect("add member");
    assert!(allowed(&f.catalog, "VN/GOV/5/press", "GET", "/persons"));
    // A group of the same code owned by another subsystem does not count.
    f.catalog
        .add_local_group(LocalGroup {
            owner: "VN/GOV/1/other".parse().expect("owner"),
            code: "auditors".into(),
            description: String::new(),
            members: vec![client("VN/GOV/6/outsider")],
        })
        .await
        .expect("other group");
    assert!(!allowed(&f.catalog, "VN/GOV/6/outsider", "GET", "/persons"));
    let missing = f
        .catalog
        .add_local_group_member(&provider(), "nobody", client("VN/GOV/5/press"))
        .await
        .expect_err("no such group");
    assert!(matches!(missing, CatalogError::NotFound(_)), "{missing}");
}

#[tokio::test]
async fn endpoint_grants_match_method_and_path_patterns() {
    let f = fixture().await;
    let police = GrantSubject::client(client("VN/GOV/2/police"));
    for endpoint in [
        ("GET", "/persons/*"),
        ("*", "/vehicles/**"),
        ("POST", "/persons/*/notes"),
    ] {
        f.catalog
            .grant(grant(police.clone(), Some(endpoint)))
            .await
            .expect("grant");
    }
    let cases = [
        ("GET", "/persons/123", true),
        ("POST", "/persons/123", false),
        ("GET", "/persons/123/address", false),
        ("GET", "/persons", false),
        ("POST", "/persons/123/notes", true),
        ("GET", "/persons/123/notes", false),
        ("DELETE", "/vehicles/29A/owner", true),
        ("GET", "/vehicles/../persons/1/address", false),
        ("GET", "/persons/1%2Faddress", false),
    ];
    for (method, path, expected) in cases {
        assert_eq!(
            allowed(&f.catalog, "VN/GOV/2/police", method, path),
            expected,
            "{method} {path}"
        );
    }
    assert!(!allowed(
        &f.catalog,
        "VN/GOV/2/traffic",
        "GET",
        "/persons/123"
    ));
    let open = f
        .catalog
        .allowed_endpoints(&client("VN/GOV/2/police"), &provider(), &conf());
    assert_eq!(open.len(), 1);
    let paths: Vec<_> = open[0]
        .1
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert_eq!(
        paths,
        ["GET /persons/*", "POST /persons/*/notes", "* /vehicles/**"]
    );
}

#[tokio::test]
async fn revocation_takes_effect_at_once() {
    let f = fixture().await;
    let police = GrantSubject::client(client("VN/GOV/2/police"));
    let whole = grant(police.clone(), None);
    let one = grant(police, Some(("GET", "/persons/*")));
    f.catalog.grant(whole.clone()).await.expect("grant");
    f.catalog.grant(one.clone()).await.expect("grant");
    assert!(f.catalog.revoke(&whole).await.expect("revoke"));
    assert!(
        !f.catalog.revoke(&whole).await.expect("again"),
        "already gone"
    );
    assert!(!allowed(
        &f.catalog,
        "VN/GOV/2/police",
        "DELETE",
        "/persons/1"
    ));
    assert!(
        allowed(&f.catalog, "VN/GOV/2/police", "GET", "/persons/1"),
        "the other grant stays"
    );
    assert!(f.catalog.revoke(&one).await.expect("revoke"));
    assert!(!allowed(&f.catalog, "VN/GOV/2/police", "GET", "/persons/1"));
    assert!(f.catalog.grants().is_empty());
}

#[tokio::test]
async fn removing_a_service_removes_its_grants() {
    let f = fixture().await;
    f.catalog
        .grant(grant(GrantSubject::client(client("VN/GOV/2/police")), None))
        .await
        .expect("grant");
    f.catalog
        .remove_service(&provider(), "persons")
        .await
        .expect("remove");
    assert!(f.catalog.service(&provider(), "persons").is_none());
    assert!(f.catalog.grants().is_empty());
    f.catalog
        .add_service(service("persons"))
        .await
        .expect("re-add");
    assert!(
        !allowed(&f.catalog, "VN/GOV/2/police", "GET", "/"),
        "old grant stays gone"
    );
    let missing = f
        .catalog
        .remove_service(&provider(), "nope")
        .await
        .expect_err("missing");
    assert!(matches!(missing, CatalogError::NotFound(_)));
}

#[tokio::test]
async fn everything_persists_across_a_reload() {
    let f = fixture().await;
    f.catalog
        .add_local_group(LocalGroup {
            owner: provider(),
            code: "auditors".into(),
            description: String::new(),
            members: vec![client("VN/GOV/4/audit")],
        })
        .await
        .expect("group");
    f.catalog
        .grant(grant(
            GrantSubject::LocalGroup("auditors".into()),
            Some(("GET", "/persons/*")),
        ))
        .await
        .expect("grant");
    let store = Store::open(&f.url).await.expect("reopen store");
    let reloaded = ServiceCatalog::load(store).await.expect("reload");
    assert_eq!(reloaded.services(), f.catalog.services());
    assert_eq!(reloaded.grants(), f.catalog.grants());
    assert_eq!(reloaded.local_groups(), f.catalog.local_groups());
    assert!(allowed(&reloaded, "VN/GOV/4/audit", "GET", "/persons/7"));
    assert!(!allowed(
        &reloaded,
        "VN/GOV/4/audit",
        "GET",
        "/persons/7/photo"
    ));
}

#[tokio::test]
async fn openapi_documents_define_the_endpoints() {
    let f = fixture().await;
    let document = json!({
        "openapi": "3.0.3",
        "info": {"title": "Vehicles", "version": "1"},
        "paths": {
            "/vehicles": {"get": {}, "post": {}},
            "/vehicles/{plate}": {"get": {}, "delete": {}, "parameters": []},
            "/vehicles/{plate}/owners/{id}": {"put": {}}
        }
    });
    let mut vehicles = service("vehicles");
    vehicles.openapi = Some(document.to_string());
    let stored = f.catalog.add_service(vehicles).await.expect("add");
    let mut endpoints: Vec<_> = stored
        .endpoints
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    endpoints.sort();
    assert_eq!(
        endpoints,
        [
            "DELETE /vehicles/*",
            "GET /vehicles",
            "GET /vehicles/*",
            "POST /vehicles",
            "PUT /vehicles/*/owners/*"
        ]
    );
    assert_eq!(
        f.catalog
            .service(&provider(), "vehicles")
            .map(|s| s.endpoints.len()),
        Some(5)
    );

    // Explicit endpoints must agree with the document; a non-OpenAPI-3 document is refused.
    let mut conflicting = service("vehicles2");
    conflicting.openapi = Some(document.to_string());
    conflicting.endpoints = vec![Endpoint::new("GET", "/other").expect("endpoint")];
    assert!(matches!(
        f.catalog.add_service(conflicting).await,
        Err(CatalogError::BadRequest(_))
    ));
    let mut swagger = service("old");
    swagger.openapi = Some(json!({"swagger": "2.0", "paths": {}}).to_string());
    assert!(matches!(
        f.catalog.add_service(swagger).await,
        Err(CatalogError::BadRequest(_))
    ));
}

#[tokio::test]
async fn bad_services_and_grants_are_refused() {
    let f = fixture().await;
    let duplicate = f
        .catalog
        .add_service(service("persons"))
        .await
        .expect_err("duplicate");
    assert!(
        matches!(duplicate, CatalogError::Conflict(_)),
        "{duplicate}"
    );
    for code in ["listMethods", "allowedMethods", "getOpenAPI", "listClients"] {
        assert!(
            matches!(
                f.catalog.add_service(service(code)).await,
                Err(CatalogError::BadRequest(_))
            ),
            "{code} is reserved"
        );
    }
    let mut bad = service("bad code");
    assert!(matches!(
        f.catalog.add_service(bad.clone()).await,
        Err(CatalogError::Invalid(_))
    ));
    bad.code = "ok".into();
    bad.base_url = "file:///etc/passwd".into();
    assert!(matches!(
        f.catalog.add_service(bad).await,
        Err(CatalogError::Invalid(_))
    ));
    let mut unknown = grant(GrantSubject::client(client("VN/GOV/2/police")), None);
    unknown.service = "VN/GOV/1/registry/nope".parse().expect("id");
    assert!(matches!(
        f.catalog.grant(unknown).await,
        Err(CatalogError::BadRequest(_))
    ));
    assert_eq!(f.catalog.services().len(), 1);
}
