//! Metaservice answers over a catalog in a temporary SQLite store.

use super::*;
use crate::catalog::HIDDEN_SERVER;
use lienthong_model::conf::{FederationPolicy, GlobalGroup, Member};
use lienthong_model::gateway::{Grant, GrantSubject};
use lienthong_store::Store;
use quick_xml::events::Event;
use serde_json::{Value, json};

fn conf() -> GlobalConf {
    GlobalConf {
        format: lienthong_model::conf::CONF_FORMAT.into(),
        instance: "VN".into(),
        version: 1,
        generated_at: 0,
        expires_at: i64::MAX,
        policy: FederationPolicy::default(),
        members: vec![
            Member {
                id: "VN/GOV/1".parse().expect("id"),
                name: "Bộ Công an & <Registry>".into(),
                subsystems: vec!["persons".into(), "vehicles".into()],
            },
            Member {
                id: "VN/GOV/2".parse().expect("id"),
                name: "Tax".into(),
                subsystems: Vec::new(),
            },
        ],
        gateways: Vec::new(),
        global_groups: vec![GlobalGroup {
            id: "VN/auditors".parse().expect("group"),
            description: String::new(),
            members: Vec::new(),
        }],
        certificate_authorities: Vec::new(),
        timestamp_authorities: Vec::new(),
    }
}

fn provider() -> SubsystemId {
    "VN/GOV/1/persons".parse().expect("provider")
}

async fn catalog() -> (tempfile::TempDir, ServiceCatalog) {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let store = Store::open(&url).await.expect("store");
    let catalog = ServiceCatalog::load(store).await.expect("load");
    let service = |code: &str, openapi: Option<Value>| {
        serde_json::from_value::<Service>(json!({
            "provider": provider(),
            "code": code,
            "base_url": "https://backend.internal:8443/api",
            "openapi": openapi.map(|d| d.to_string()),
        }))
        .expect("service")
    };
    catalog
        .add_service(service("plain", None))
        .await
        .expect("plain");
    let document = json!({
        "openapi": "3.0.0",
        "servers": [{"url": "https://backend.internal:8443/api"}],
        "paths": {"/persons/{id}": {"get": {}}, "/persons": {"post": {}}}
    });
    catalog
        .add_service(service("described", Some(document)))
        .await
        .expect("described");
    (dir, catalog)
}

fn json_body(response: &MetaResponse) -> Value {
    assert_eq!(response.content_type, JSON);
    serde_json::from_slice(&response.body).expect("JSON body")
}

#[test]
fn list_clients_xml_is_well_formed_and_follows_pr_meta() {
    let response = list_clients(&conf(), None, false);
    assert_eq!(response.content_type, XML);
    let text = std::str::from_utf8(&response.body).expect("UTF-8");
    let mut reader = quick_xml::Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut object_types = Vec::new();
    let mut names = Vec::new();
    let mut subsystem_codes = Vec::new();
    let mut raw_text = String::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                if name == "ns2:id" {
                    let attribute = start
                        .try_get_attribute("ns1:objectType")
                        .expect("attribute")
                        .expect("objectType");
                    object_types.push(attribute.unescape_value().expect("value").into_owned());
                }
                if name == "ns2:clientList" {
                    let namespace = start
                        .try_get_attribute("xmlns:ns2")
                        .expect("attribute")
                        .expect("xmlns:ns2");
                    assert_eq!(&*namespace.value, XROAD_NS.as_bytes());
                }
                raw_text.clear();
                path.push(name);
            }
            Event::End(end) => {
                let name = String::from_utf8_lossy(end.name().as_ref()).into_owned();
                let content = quick_xml::escape::unescape(&raw_text)
                    .expect("entities")
                    .into_owned();
                match name.as_str() {
                    "ns2:name" => names.push(content),
                    "ns1:subsystemCode" => subsystem_codes.push(content),
                    _ => {}
                }
                raw_text.clear();
                assert_eq!(path.pop(), Some(name), "balanced tags");
            }
            // Text arrives in pieces, entity references separately: keep it escaped until
            // the element ends.
            Event::Text(piece) => raw_text.push_str(&piece.decode().expect("UTF-8")),
            Event::GeneralRef(entity) => {
                raw_text.push('&');
                raw_text.push_str(&entity.decode().expect("UTF-8"));
                raw_text.push(';');
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(path.is_empty());
    assert_eq!(object_types, ["MEMBER", "SUBSYSTEM", "SUBSYSTEM", "MEMBER"]);
    assert_eq!(subsystem_codes, ["persons", "vehicles"]);
    assert_eq!(names[0], "Bộ Công an & <Registry>", "escaped and restored");
    assert_eq!(names[3], "Tax");
}

#[test]
fn list_clients_json_and_instance_filter() {
    let body = json_body(&list_clients(&conf(), None, true));
    assert_eq!(body["member"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        body["member"][1],
        json!({
            "id": {"object_type": "SUBSYSTEM", "xroad_instance": "VN", "member_class": "GOV",
                   "member_code": "1", "subsystem_code": "persons"},
            "name": "Bộ Công an & <Registry>"
        })
    );
    assert!(body["member"][0]["id"].get("subsystem_code").is_none());
    let other = json_body(&list_clients(&conf(), Some("EE"), true));
    assert_eq!(other, json!({"member": []}));
    let same = json_body(&list_clients(&conf(), Some("VN"), true));
    assert_eq!(same, body);
}

#[test]
fn accept_header_selects_json() {
    assert!(wants_json(Some("application/json")));
    assert!(wants_json(Some("text/html, Application/JSON;q=0.9")));
    assert!(!wants_json(Some("text/xml")));
    assert!(!wants_json(Some("application/jsonx")));
    assert!(!wants_json(None));
}

#[tokio::test]
async fn list_methods_lists_every_service_with_its_type() {
    let (_dir, catalog) = catalog().await;
    let body = json_body(&list_methods(&catalog, &provider()));
    assert_eq!(
        body["service"][0],
        json!({
            "object_type": "SERVICE", "xroad_instance": "VN", "member_class": "GOV",
            "member_code": "1", "subsystem_code": "persons", "service_code": "described",
            "service_type": "OPENAPI",
            "endpoint_list": [{"method": "POST", "path": "/persons"}, {"method": "GET", "path": "/persons/*"}]
        })
    );
    assert_eq!(body["service"][1]["service_code"], "plain");
    assert_eq!(body["service"][1]["service_type"], "REST");
    assert_eq!(
        body["service"][1]["endpoint_list"],
        json!([{"method": "*", "path": "/**"}])
    );
    let other: SubsystemId = "VN/GOV/2/none".parse().expect("id");
    assert_eq!(
        json_body(&list_methods(&catalog, &other)),
        json!({"service": []})
    );
}

#[tokio::test]
async fn allowed_methods_lists_only_what_the_client_may_call() {
    let (_dir, catalog) = catalog().await;
    let client: ClientId = "VN/GOV/2/tax".parse().expect("client");
    let conf = conf();
    assert_eq!(
        json_body(&allowed_methods(&catalog, &provider(), &client, &conf)),
        json!({"service": []}),
        "nothing before a grant"
    );
    catalog
        .grant(Grant {
            service: "VN/GOV/1/persons/described".parse().expect("service"),
            subject: GrantSubject::client(client.clone()),
            endpoint: Some(Endpoint::new("GET", "/persons/*").expect("endpoint")),
        })
        .await
        .expect("grant");
    let body = json_body(&allowed_methods(&catalog, &provider(), &client, &conf));
    assert_eq!(body["service"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["service"][0]["service_code"], "described");
    assert_eq!(
        body["service"][0]["endpoint_list"],
        json!([{"method": "GET", "path": "/persons/*"}])
    );
}

#[tokio::test]
async fn get_openapi_hides_the_backend() {
    let (_dir, catalog) = catalog().await;
    let response = get_openapi(&catalog, &provider(), Some("described")).expect("document");
    let body = json_body(&response);
    let text = String::from_utf8_lossy(&response.body);
    assert_eq!(body["servers"], json!([{"url": HIDDEN_SERVER}]));
    assert!(body["paths"].get("/persons/{id}").is_some());
    assert!(!text.contains("backend.internal"));
}

#[tokio::test]
async fn get_openapi_errors_are_400_with_xroad_types() {
    let (_dir, catalog) = catalog().await;
    for (code, kind) in [
        (None, "Server.ServerProxy.InvalidRequest"),
        (Some(""), "Server.ServerProxy.InvalidRequest"),
        (Some("nope"), "Server.ServerProxy.UnknownService"),
        (Some("plain"), "Server.ServerProxy.InvalidServiceType"),
    ] {
        let error = get_openapi(&catalog, &provider(), code).expect_err("error");
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error.kind(), kind, "{code:?}");
        let body = serde_json::to_value(error.body()).expect("json");
        assert_eq!(body["type"], kind);
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(body["detail"], "");
    }
    let error = get_openapi(&catalog, &provider(), Some("nope")).expect_err("unknown");
    assert_eq!(error.to_string(), "unknown service VN/GOV/1/persons/nope");
}
