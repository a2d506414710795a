//! The admin API over HTTP, in process: authentication and its audit trail, the service /
//! grant / local-group round trip, and bad input answered with JSON errors.

use lienthong_gateway::admin::{self, AdminState};
use lienthong_gateway::catalog::ServiceCatalog;
use lienthong_store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::oneshot;

const TOKEN: &str = "configured-secret";

struct Server {
    url: String,
    store: Store,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl Server {
    async fn start() -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&format!("sqlite://{}", dir.path().join("gw.db").display()))
            .await
            .expect("store");
        let catalog = Arc::new(ServiceCatalog::load(store.clone()).await.expect("catalog"));
        let state = AdminState::new(store.clone(), catalog, vec![admin::hash_token(TOKEN)]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, admin::router(state))
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            url,
            store,
            http: reqwest::Client::new(),
            _dir: dir,
            _stop: stop,
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.url));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path, Some(TOKEN));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn audit(&self) -> Vec<Value> {
        let (status, body) = self.send(reqwest::Method::GET, "/api/v1/audit", None).await;
        assert_eq!(status, StatusCode::OK);
        body.as_array().cloned().expect("audit list")
    }
}

fn service() -> Value {
    json!({
        "provider": "VN/GOV/1/registry",
        "code": "persons",
        "base_url": "https://backend.internal:8443/api",
        "endpoints": [{"method": "GET", "path": "/persons/*"}]
    })
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, kind: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["type"], kind, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["detail"].is_string(), "{body}");
}

#[tokio::test]
async fn unauthenticated_calls_are_refused_and_audited() {
    let server = Server::start().await;
    use reqwest::Method;
    for token in [None, Some("wrong"), Some("")] {
        let response = server
            .request(Method::POST, "/api/v1/services", token)
            .json(&service())
            .send()
            .await
            .expect("send");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON error");
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let (_, services) = server.send(Method::GET, "/api/v1/services", None).await;
    assert_eq!(services, json!([]), "nothing was added");

    // A stored token works until it is revoked.
    let stored = admin::create_token(&server.store, "operator", 1)
        .await
        .expect("token");
    let status = server
        .request(Method::GET, "/api/v1/grants", Some(&stored))
        .send()
        .await
        .expect("send")
        .status();
    assert_eq!(status, StatusCode::OK);
    let id = admin::hash_token(&stored);
    let object = server
        .store
        .registry()
        .object(admin::TOKEN_KIND, &id)
        .await
        .expect("read")
        .expect("stored token");
    server
        .store
        .registry()
        .update_object(
            admin::TOKEN_KIND,
            &id,
            &json!({"name": "operator", "created_at": 1, "revoked_at": 2}).to_string(),
            object.revision,
        )
        .await
        .expect("revoke");
    let status = server
        .request(Method::GET, "/api/v1/grants", Some(&stored))
        .send()
        .await
        .expect("send")
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let audit = server.audit().await;
    let refused: Vec<_> = audit.iter().filter(|r| r["result"] == "refused").collect();
    assert_eq!(refused.len(), 4, "{audit:#?}");
    for record in &refused {
        assert_eq!(record["actor"], "anonymous");
        assert!(
            record["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("401")),
            "{record}"
        );
    }
    assert_eq!(refused[0]["action"], "POST /api/v1/services");
    assert!(
        audit.iter().any(|r| r["actor"] == "operator"
            && r["action"] == "GET /api/v1/grants"
            && r["result"] == "ok"),
        "{audit:#?}"
    );
}

#[tokio::test]
async fn services_grants_and_local_groups_round_trip() {
    let server = Server::start().await;
    use reqwest::Method;
    let (status, created) = server
        .send(Method::POST, "/api/v1/services", Some(service()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["backend_tls"]["verify_certificate"], true);
    let (status, body) = server
        .send(Method::POST, "/api/v1/services", Some(service()))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "Conflict");

    let (status, group) = server
        .send(
            Method::POST,
            "/api/v1/local-groups",
            Some(json!({"owner": "VN/GOV/1/registry", "code": "auditors", "description": "audit"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let (status, group) = server
        .send(
            Method::POST,
            "/api/v1/local-groups/VN/GOV/1/registry/auditors/members",
            Some(json!({"client": "VN/GOV/4/audit"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{group}");
    assert_eq!(group["members"], json!(["VN/GOV/4/audit"]));

    let grants = [
        json!({"service": "VN/GOV/1/registry/persons", "subject": {"subsystem": "VN/GOV/2/police"}}),
        json!({"service": "VN/GOV/1/registry/persons", "subject": {"local_group": "auditors"},
               "endpoint": {"method": "GET", "path": "/persons/*"}}),
    ];
    for grant in &grants {
        let (status, body) = server
            .send(Method::POST, "/api/v1/grants", Some(grant.clone()))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(&body, grant);
    }
    let (status, _) = server
        .send(Method::POST, "/api/v1/grants", Some(grants[0].clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "granting again changes nothing");

    let (_, services) = server.send(Method::GET, "/api/v1/services", None).await;
    assert_eq!(services.as_array().map(Vec::len), Some(1));
    assert_eq!(services[0]["code"], "persons");
    let (_, listed) = server.send(Method::GET, "/api/v1/grants", None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    for grant in &grants {
        assert!(
            listed.as_array().is_some_and(|l| l.contains(grant)),
            "{listed}"
        );
    }
    let (_, groups) = server.send(Method::GET, "/api/v1/local-groups", None).await;
    assert_eq!(groups[0]["code"], "auditors");

    let (status, _) = server
        .send(Method::DELETE, "/api/v1/grants", Some(grants[0].clone()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .send(Method::DELETE, "/api/v1/grants", Some(grants[0].clone()))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NotFound");
    let (status, body) = server
        .send(
            Method::DELETE,
            "/api/v1/services/VN/GOV/1/registry/persons",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, listed) = server.send(Method::GET, "/api/v1/grants", None).await;
    assert_eq!(listed, json!([]), "grants go with their service");

    let audit = server.audit().await;
    let added = audit
        .iter()
        .find(|r| r["action"] == "POST /api/v1/services" && r["result"] == "ok")
        .expect("audited");
    assert_eq!(added["target"], "VN/GOV/1/registry/persons");
    assert!(
        added["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("configured-token:"))
    );
    let conflict = audit
        .iter()
        .find(|r| r["action"] == "POST /api/v1/services" && r["result"] == "failed")
        .expect("failure audited");
    assert!(
        conflict["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("409")),
        "{conflict}"
    );
}

#[tokio::test]
async fn bad_input_is_answered_with_json_errors() {
    let server = Server::start().await;
    use reqwest::Method;
    let mut bad_provider = service();
    bad_provider["provider"] = json!("VN/GOV/1/re gistry");
    let mut unknown_field = service();
    unknown_field["colour"] = json!("blue");
    let mut bad_code = service();
    bad_code["code"] = json!("per_sons");
    let mut bad_url = service();
    bad_url["base_url"] = json!("ftp://backend");
    let bad_grant = json!({"service": "VN/GOV/1/registry/persons", "subject": {"team": "x"}});
    let cases = [
        ("/api/v1/services", bad_provider),
        ("/api/v1/services", unknown_field),
        ("/api/v1/services", bad_code),
        ("/api/v1/services", bad_url),
        ("/api/v1/grants", bad_grant),
        (
            "/api/v1/local-groups",
            json!({"owner": "VN/GOV/1/registry", "code": "a b"}),
        ),
    ];
    for (path, body) in cases {
        let (status, answer) = server.send(Method::POST, path, Some(body.clone())).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "BadRequest");
        assert!(!answer.to_string().contains("backend.internal"), "{answer}");
    }

    let (status, body) = server
        .send(
            Method::DELETE,
            "/api/v1/services/VN/GO%20V/1/registry/persons",
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "BadRequest");
    let (status, body) = server
        .send(
            Method::POST,
            "/api/v1/local-groups/VN/GOV/1/registry/nobody/members",
            Some(json!({"client": "VN/GOV/2"})),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NotFound");

    let response = server
        .request(Method::POST, "/api/v1/services", Some(TOKEN))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    let status = response.status();
    assert_error(
        status,
        &response.json().await.expect("json"),
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );
    let response = server
        .request(Method::POST, "/api/v1/services", Some(TOKEN))
        .body(service().to_string())
        .send()
        .await
        .expect("send");
    let status = response.status();
    assert_error(
        status,
        &response.json().await.expect("json"),
        StatusCode::BAD_REQUEST,
        "BadRequest",
    );

    let mut huge = service();
    huge["openapi"] = json!("x".repeat(admin::MAX_BODY + 1));
    let (status, body) = server
        .send(Method::POST, "/api/v1/services", Some(huge))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
    );

    let (status, body) = server
        .send(Method::GET, "/api/v1/audit?after=x", None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "BadRequest");
    let (status, body) = server.send(Method::GET, "/api/v1/nothing-here", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NotFound");
    let anonymous = server
        .request(Method::GET, "/api/v1/nothing-here", None)
        .send()
        .await
        .expect("send");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .send(Method::PUT, "/api/v1/services", Some(service()))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    let audit = server.audit().await;
    let failed = audit.iter().filter(|r| r["result"] == "failed").count();
    assert_eq!(failed, 14, "every failure is audited: {audit:#?}");
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "GET /api/v1/nothing-here" && r["result"] == "refused")
    );
    assert!(audit.iter().any(|r| r["action"] == "PUT /api/v1/services"
        && r["detail"].as_str().is_some_and(|d| d.starts_with("405"))));
    let (_, services) = server.send(Method::GET, "/api/v1/services", None).await;
    assert_eq!(services, json!([]));
}
