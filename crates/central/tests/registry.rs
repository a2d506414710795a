//! The registry over HTTP, in process: the configuration download and its verification by
//! the gateway-side client, authentication and audit, bad input, the registration flow,
//! and two registry nodes sharing one PostgreSQL.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lienthong_central::Registry;
use lienthong_conf::{ConfClient, ConfError, RefreshOutcome};
use lienthong_crypto::{CryptoPolicy, Signer, SoftwareKey, Suite};
use lienthong_model::registry::{NewToken, RegistrationRequest, Role, SignedRegistration};
use lienthong_pki::{CertificateAuthority, FederationIdentity, IssueRequest, Profile, Serial};
use lienthong_store::Store;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::oneshot;

struct Node {
    url: String,
    registry: Arc<Registry>,
    _stop: oneshot::Sender<()>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn key() -> Arc<dyn Signer> {
    Arc::new(
        SoftwareKey::generate(Suite::EcdsaP256Sha256)
            .expect("key")
            .0,
    )
}

async fn start(store_url: &str, signers: Vec<Arc<dyn Signer>>) -> Node {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let store = Store::open(store_url).await.expect("store");
    let registry = Arc::new(Registry::new(store, "VN", signers));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel();
    let served = registry.clone();
    tokio::spawn(async move {
        let _ = lienthong_central::run(listener, served, Duration::from_secs(3600), async {
            let _ = stopped.await;
        })
        .await;
    });
    // Wait until it answers.
    for _ in 0..100 {
        if reqwest::get(format!("{url}/health")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Node {
        url,
        registry,
        _stop: stop,
    }
}

async fn token(node: &Node, role: Role) -> String {
    node.registry
        .create_token(
            NewToken {
                name: format!("{role:?}-user"),
                role,
            },
            now(),
        )
        .await
        .expect("token")
        .token
}

async fn call(
    node: &Node,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(
        method.parse().expect("method"),
        format!("{}{path}", node.url),
    );
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("registry.db").display())
}

/// `GET /health` of `node`: the status and the report.
async fn health(node: &Node) -> (u16, Value) {
    let response = reqwest::get(format!("{}/health", node.url))
        .await
        .expect("health");
    let status = response.status().as_u16();
    (status, response.json::<Value>().await.expect("json"))
}

#[tokio::test]
async fn gateway_client_accepts_fresh_configuration_and_refuses_tampered_foreign_and_expired() {
    let dir = tempfile::tempdir().expect("dir");
    let signing = key();
    let node = start(&sqlite_url(&dir), vec![signing.clone()]).await;
    let officer = token(&node, Role::RegistryOfficer).await;
    let (status, _) = call(
        &node,
        Some(&officer),
        "POST",
        "/api/v1/members",
        Some(r#"{"id":"VN/GOV/000123","name":"Bộ Y tế"}"#),
    )
    .await;
    assert_eq!(status, 200);

    let anchor = node
        .registry
        .anchor(vec![format!("{}/globalconf", node.url)]);
    let client =
        ConfClient::new(anchor.clone(), dir.path().join("gw/globalconf.json")).expect("client");
    let outcome = client
        .refresh(now())
        .await
        .expect("fresh configuration accepted");
    let RefreshOutcome::Updated { version } = outcome else {
        panic!("expected an update, got {outcome:?}");
    };
    let conf = client.usable(now()).expect("usable");
    assert_eq!(conf.conf.members[0].id.to_string(), "VN/GOV/000123");
    // A second poll is answered 304 Not Modified through the ETag.
    assert_eq!(
        client.refresh(now()).await.expect("poll"),
        RefreshOutcome::Unchanged { version }
    );
    // The last good copy is on disk and reloads.
    let reloaded =
        ConfClient::new(anchor.clone(), dir.path().join("gw/globalconf.json")).expect("reload");
    assert_eq!(reloaded.current().map(|c| c.conf.version), Some(version));

    let envelope = reqwest::get(format!("{}/globalconf", node.url))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body")
        .to_vec();
    // One flipped byte inside the signed content.
    let mut document: Value = serde_json::from_slice(&envelope).expect("json");
    let mut content = STANDARD
        .decode(document["content"].as_str().expect("content"))
        .expect("b64");
    let at = content.len() / 2;
    content[at] ^= 0x01;
    document["content"] = STANDARD.encode(&content).into();
    let flipped = serde_json::to_vec(&document).expect("encode");
    let fresh =
        ConfClient::new(anchor.clone(), dir.path().join("other/globalconf.json")).expect("client");
    let error = fresh
        .accept(&flipped, now())
        .expect_err("flipped byte refused");
    assert!(matches!(error, ConfError::BadSignature { .. }), "{error}");
    assert!(error.to_string().contains("altered"), "{error}");

    // Signed by a key the anchor does not list.
    let stranger_dir = tempfile::tempdir().expect("dir");
    let stranger = start(&sqlite_url(&stranger_dir), vec![key()]).await;
    let foreign = stranger
        .registry
        .publish(now())
        .await
        .expect("publish")
        .envelope;
    let error = fresh
        .accept(&foreign, now())
        .expect_err("foreign key refused");
    assert!(matches!(error, ConfError::UnknownKey { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("not signed by any key in the anchor"),
        "{error}"
    );

    // Past its expiry (the default expiry is 600 s after generation).
    let error = fresh
        .accept(&envelope, now() + 601)
        .expect_err("expired refused");
    assert!(matches!(error, ConfError::Expired { .. }), "{error}");
    assert!(error.to_string().contains("expired"), "{error}");
    // The client in hand reports expiry too, once the time has passed.
    assert!(matches!(
        client.usable(now() + 601),
        Err(ConfError::Expired { .. })
    ));
    assert!(matches!(
        client.status(now() + 601),
        lienthong_conf::ConfStatus::Expired { .. }
    ));
}

#[tokio::test]
async fn configuration_signing_key_rotation_keeps_gateways_working() {
    let dir = tempfile::tempdir().expect("dir");
    let url = sqlite_url(&dir);
    let old = key();
    let new = key();
    let before = start(&url, vec![old.clone()]).await;
    let old_anchor = before
        .registry
        .anchor(vec![format!("{}/globalconf", before.url)]);
    let gateway = ConfClient::new(old_anchor, dir.path().join("gw.json")).expect("client");
    gateway.refresh(now()).await.expect("before rotation");
    drop(before);

    // Step 1: both keys sign; gateways holding the old anchor keep accepting.
    let during = start(&url, vec![old.clone(), new.clone()]).await;
    let published = during.registry.publish(now()).await.expect("publish");
    gateway
        .accept(&published.envelope, now())
        .expect("old anchor, both signatures");
    let new_anchor = during.registry.anchor(vec![]);
    assert_eq!(new_anchor.keys.len(), 2);
    drop(during);

    // Step 2: after the new anchor is distributed, only the new key signs.
    let after = start(&url, vec![new.clone()]).await;
    let published = after.registry.publish(now()).await.expect("publish");
    let rotated = ConfClient::new(new_anchor, dir.path().join("gw2.json")).expect("client");
    rotated
        .accept(&published.envelope, now())
        .expect("accepted after rotation");
    // A gateway that never got the new anchor now refuses, naming the reason.
    assert!(matches!(
        gateway.accept(&published.envelope, now()),
        Err(ConfError::UnknownKey { .. })
    ));
}

#[tokio::test]
async fn unauthenticated_and_wrong_role_calls_are_refused_and_audited() {
    let dir = tempfile::tempdir().expect("dir");
    let node = start(&sqlite_url(&dir), vec![key()]).await;
    let officer = token(&node, Role::RegistryOfficer).await;
    let reader = token(&node, Role::ReadOnly).await;
    let member = r#"{"id":"VN/GOV/1","name":"x"}"#;

    let (status, body) = call(&node, None, "POST", "/api/v1/members", Some(member)).await;
    assert_eq!(status, 401);
    assert_eq!(body["type"], "Unauthorized");
    let (status, _) = call(
        &node,
        Some("lt_not-a-token"),
        "GET",
        "/api/v1/members",
        None,
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = call(
        &node,
        Some(&reader),
        "POST",
        "/api/v1/members",
        Some(member),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "Forbidden");
    let (status, _) = call(&node, Some(&reader), "GET", "/api/v1/members", None).await;
    assert_eq!(status, 200, "readers may read");
    let (status, _) = call(
        &node,
        Some(&officer),
        "POST",
        "/api/v1/members",
        Some(member),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &node,
        Some(&officer),
        "POST",
        "/api/v1/members",
        Some(member),
    )
    .await;
    assert_eq!(status, 409, "duplicate member");

    let (status, audit) = call(&node, Some(&reader), "GET", "/api/v1/audit", None).await;
    assert_eq!(status, 200);
    let records = audit.as_array().expect("array");
    let find = |actor: &str, result: &str, detail: &str| {
        records.iter().any(|r| {
            r["actor"] == actor
                && r["action"] == "POST /api/v1/members"
                && r["result"] == result
                && r["detail"].as_str().is_some_and(|d| d.starts_with(detail))
        })
    };
    assert!(
        find("anonymous", "refused", "401"),
        "unauthenticated attempt audited: {audit}"
    );
    assert!(
        find("ReadOnly-user", "refused", "403"),
        "wrong-role attempt audited: {audit}"
    );
    assert!(
        find("RegistryOfficer-user", "ok", "200"),
        "success audited: {audit}"
    );
    assert!(
        find("RegistryOfficer-user", "failed", "409"),
        "failure audited: {audit}"
    );
    assert!(
        records
            .iter()
            .all(|r| r["at"].as_i64().is_some_and(|t| t > 0))
    );
}

#[tokio::test]
async fn bad_input_gets_400_or_413_with_a_json_error_body() {
    let dir = tempfile::tempdir().expect("dir");
    let node = start(&sqlite_url(&dir), vec![key()]).await;
    let officer = token(&node, Role::RegistryOfficer).await;
    let cases = [
        (
            "POST",
            "/api/v1/members",
            r#"{"id": "VN/GOV/1", "name": "#.to_owned(),
            400,
            "parse",
        ),
        (
            "POST",
            "/api/v1/members",
            r#"{"id":"VN/GOV/1","name":"x","extra":1}"#.to_owned(),
            400,
            "unknown field",
        ),
        (
            "POST",
            "/api/v1/members",
            r#"{"id":"VN/GO V/1","name":"x"}"#.to_owned(),
            400,
            "member class",
        ),
        (
            "POST",
            "/api/v1/members",
            r#"{"id":"LA/GOV/1","name":"x"}"#.to_owned(),
            400,
            "instance",
        ),
        (
            "POST",
            "/api/v1/members/VN/GOV/1/subsystems",
            r#"{"code":"a_b"}"#.to_owned(),
            400,
            "subsystem code",
        ),
        (
            "POST",
            "/api/v1/groups",
            r#"{"id":"VN","description":"x"}"#.to_owned(),
            400,
            "INSTANCE/GROUPCODE",
        ),
        (
            "POST",
            "/api/v1/members",
            format!(
                r#"{{"id":"VN/GOV/1","name":"{}"}}"#,
                "x".repeat(2 * 1024 * 1024)
            ),
            413,
            "",
        ),
    ];
    for (method, path, body, expected, mention) in cases {
        let (status, error) = call(&node, Some(&officer), method, path, Some(&body)).await;
        assert_eq!(status, expected, "{path} {mention}: {error}");
        assert!(
            error["type"].is_string() && error["message"].is_string(),
            "JSON error body: {error}"
        );
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains(mention)),
            "{mention}: {error}"
        );
    }
    let (status, error) = call(
        &node,
        Some(&officer),
        "GET",
        "/api/v1/members/VN/G%20V/1",
        None,
    )
    .await;
    assert_eq!(status, 400, "{error}");
    let (status, document) = call(&node, None, "GET", "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.0.3");
    assert!(document["paths"]["/api/v1/members"]["post"].is_object());
}

#[tokio::test]
async fn registration_with_proof_of_possession_then_approval_puts_the_gateway_in_the_configuration()
{
    let dir = tempfile::tempdir().expect("dir");
    let node = start(&sqlite_url(&dir), vec![key()]).await;
    let officer = token(&node, Role::RegistryOfficer).await;
    // The federation CA, approved in the registry.
    let now_time = SystemTime::now();
    let ca = CertificateAuthority::create_root(
        key(),
        "VN federation",
        "Root",
        &Serial::random().expect("serial"),
        now_time - Duration::from_secs(60),
        now_time + Duration::from_secs(86_400),
        CryptoPolicy::vn(),
    )
    .expect("ca");
    let ca_body = json!({"name": "root", "certificate": STANDARD.encode(&ca.certificate().der), "ocsp_urls": ["http://127.0.0.1:1/ocsp"]});
    assert_eq!(
        call(
            &node,
            Some(&officer),
            "POST",
            "/api/v1/cas",
            Some(&ca_body.to_string())
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &node,
            Some(&officer),
            "POST",
            "/api/v1/members",
            Some(r#"{"id":"VN/GOV/7","name":"Agency"}"#)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &node,
            Some(&officer),
            "POST",
            "/api/v1/members/VN/GOV/7/subsystems",
            Some(r#"{"code":"registry"}"#)
        )
        .await
        .0,
        200
    );

    // The gateway: its auth key, a CSR, a certificate from the CA.
    let auth_key = SoftwareKey::generate(Suite::EcdsaP256Sha256)
        .expect("key")
        .0;
    let csr = lienthong_pki::create_csr(&auth_key, "gw").expect("csr");
    let verified = lienthong_pki::verify_csr(csr.as_bytes(), &CryptoPolicy::vn()).expect("csr ok");
    let server: lienthong_model::ServerId = "VN/GOV/7/gw1".parse().expect("id");
    let certificate = ca
        .issue(&IssueRequest {
            profile: Profile::Auth,
            identity: Some(FederationIdentity::Server(server.clone())),
            common_name: "",
            public_key: &verified.public_key,
            serial: &Serial::random().expect("serial"),
            not_before: now_time - Duration::from_secs(60),
            not_after: now_time + Duration::from_secs(3600),
            ocsp_url: None,
        })
        .expect("issue");
    let request = RegistrationRequest {
        server: server.clone(),
        address: "127.0.0.1:9443".into(),
        auth_certificate: STANDARD.encode(&certificate.der),
        clients: vec!["VN/GOV/7/registry".parse().expect("client")],
        signed_at: now(),
    };
    // Signed by another key: no proof of possession.
    let impostor = SoftwareKey::generate(Suite::EcdsaP256Sha256)
        .expect("key")
        .0;
    let forged = SignedRegistration {
        signature: impostor
            .sign(&request.signing_bytes())
            .expect("sign")
            .to_text(),
        request: request.clone(),
    };
    let (status, error) = call(
        &node,
        None,
        "POST",
        "/api/v1/registration-requests",
        Some(&serde_json::to_string(&forged).expect("json")),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("possession")),
        "{error}"
    );

    let signed = SignedRegistration {
        signature: auth_key
            .sign(&request.signing_bytes())
            .expect("sign")
            .to_text(),
        request,
    };
    let (status, registration) = call(
        &node,
        None,
        "POST",
        "/api/v1/registration-requests",
        Some(&serde_json::to_string(&signed).expect("json")),
    )
    .await;
    assert_eq!(status, 202, "{registration}");
    assert_eq!(registration["status"], "pending");
    let id = registration["id"].as_str().expect("id").to_owned();
    let conf = node.registry.publish(now()).await.expect("publish");
    assert!(!String::from_utf8_lossy(&conf.envelope).is_empty());
    let (status, decided) = call(
        &node,
        Some(&officer),
        "POST",
        &format!("/api/v1/registrations/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["decided_by"], "RegistryOfficer-user");

    let anchor = node
        .registry
        .anchor(vec![format!("{}/globalconf", node.url)]);
    let client = ConfClient::new(anchor, dir.path().join("gw.json")).expect("client");
    client.refresh(now()).await.expect("refresh");
    let conf = client.usable(now()).expect("usable");
    let gateway = conf
        .conf
        .gateways
        .iter()
        .find(|g| g.id == server)
        .expect("gateway published");
    let expected_hash: String = certificate
        .sha256()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(gateway.auth_certificate_hashes, vec![expected_hash]);
    assert_eq!(gateway.address, "127.0.0.1:9443");
}

#[tokio::test]
async fn two_registry_nodes_on_one_postgresql_lose_no_concurrent_update() {
    let server =
        lienthong_testkit::PgServer::shared().expect("PostgreSQL must start for this test");
    let url = server.create_database("central_ha").expect("database");
    let signing = key();
    let (a, b) = tokio::join!(
        start(&url, vec![signing.clone()]),
        start(&url, vec![signing.clone()])
    );
    let officer = token(&a, Role::RegistryOfficer).await;
    assert_eq!(
        call(
            &a,
            Some(&officer),
            "POST",
            "/api/v1/members",
            Some(r#"{"id":"VN/GOV/shared","name":"Shared"}"#)
        )
        .await
        .0,
        200
    );

    // 20 members and 20 subsystems of one member (a read-modify-write on the same object),
    // half through each node, all at once.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let node_url = if i % 2 == 0 {
            a.url.clone()
        } else {
            b.url.clone()
        };
        let officer = officer.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let member = client
                .post(format!("{node_url}/api/v1/members"))
                .bearer_auth(&officer)
                .json(&json!({"id": format!("VN/GOV/m{i}"), "name": format!("member {i}")}))
                .send()
                .await
                .expect("send")
                .status();
            let subsystem = client
                .post(format!(
                    "{node_url}/api/v1/members/VN/GOV/shared/subsystems"
                ))
                .bearer_auth(&officer)
                .json(&json!({"code": format!("s{i}")}))
                .send()
                .await
                .expect("send")
                .status();
            (member.as_u16(), subsystem.as_u16())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task"), (200, 200));
    }
    for node in [&a, &b] {
        let (_, members) = call(node, Some(&officer), "GET", "/api/v1/members", None).await;
        assert_eq!(
            members.as_array().map(Vec::len),
            Some(21),
            "every member on every node"
        );
        let (_, shared) = call(
            node,
            Some(&officer),
            "GET",
            "/api/v1/members/VN/GOV/shared",
            None,
        )
        .await;
        assert_eq!(
            shared["subsystems"].as_array().map(Vec::len),
            Some(20),
            "no lost subsystem: {shared}"
        );
    }
    // The newest configuration, whichever node published it, holds every change.
    let anchor = a.registry.anchor(vec![format!("{}/globalconf", b.url)]);
    let dir = tempfile::tempdir().expect("dir");
    let client = ConfClient::new(anchor, dir.path().join("gw.json")).expect("client");
    client.refresh(now()).await.expect("refresh");
    let conf = client.usable(now()).expect("usable");
    assert_eq!(conf.conf.members.len(), 21);
    let shared = conf
        .conf
        .members
        .iter()
        .find(|m| m.id.code() == "shared")
        .expect("shared");
    assert_eq!(shared.subsystems.len(), 20);
}

#[tokio::test]
async fn health_fails_once_the_newest_configuration_has_expired() {
    let dir = tempfile::tempdir().expect("dir");
    let node = start(&sqlite_url(&dir), vec![key()]).await;
    let health = || health(&node);
    // `run` published at start.
    let (status, report) = health().await;
    assert_eq!(
        (status, report["status"].as_str()),
        (200, Some("ok")),
        "{report}"
    );
    assert_eq!(report["checks"]["store"]["ok"], true, "{report}");
    let detail = report["checks"]["configuration"]["detail"]
        .as_str()
        .unwrap_or("");
    assert!(detail.contains("valid until"), "{report}");

    // A newest version that has already expired: what a registry whose publication keeps
    // failing ends up serving.
    let stale = node
        .registry
        .publish(now() - 7 * 24 * 3600)
        .await
        .expect("publish");
    let (status, report) = health().await;
    assert_eq!(
        (status, report["status"].as_str()),
        (503, Some("fail")),
        "{report}"
    );
    assert_eq!(report["checks"]["store"]["ok"], true, "{report}");
    let detail = report["checks"]["configuration"]["detail"]
        .as_str()
        .unwrap_or("");
    assert!(
        detail.contains(&format!("version {}", stale.version)) && detail.contains("expired"),
        "{report}"
    );
    // Liveness does not depend on it.
    let live = reqwest::get(format!("{}/live", node.url))
        .await
        .expect("live");
    assert_eq!(live.status().as_u16(), 200);

    node.registry.publish(now()).await.expect("publish");
    assert_eq!(health().await.0, 200);
}

/// A store that accepts connections but never answers (its PostgreSQL server frozen): the
/// probe says so within its time limit, liveness does not care, and the probe recovers
/// once the server runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_while_the_store_does_not_answer_and_recovers() {
    let server = lienthong_testkit::PgServer::start().expect("PostgreSQL must start for this test");
    let url = server.create_database("registry_health").expect("database");
    let node = start(&url, vec![key()]).await;
    let health = || health(&node);
    let (status, report) = health().await;
    assert_eq!(status, 200, "{report}");

    let frozen = server.freeze();
    let (status, report) = health().await;
    assert_eq!(
        (status, report["status"].as_str()),
        (503, Some("fail")),
        "{report}"
    );
    assert_eq!(report["checks"]["store"]["ok"], false, "{report}");
    let detail = report["checks"]["store"]["detail"].as_str().unwrap_or("");
    assert!(detail.contains("did not answer"), "{report}");
    let live = reqwest::get(format!("{}/live", node.url))
        .await
        .expect("live");
    assert_eq!(live.status().as_u16(), 200);

    drop(frozen);
    let mut recovered = None;
    for _ in 0..50 {
        let (status, report) = health().await;
        if status == 200 {
            recovered = Some(report);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered.is_some(), "the probe did not recover");
}
