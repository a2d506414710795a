//! Operational monitoring through a whole federation: both gateways record every exchange
//! (granted and refused) with X-Road's fields; the owner's admin token sees all records, a
//! client subsystem's client token only its own; time-range and service filters; the
//! retention purge.

mod common;

use common::*;
use lienthong_federation::{CLIENT_SUBSYSTEM, PROVIDER_SUBSYSTEM, UNAUTHORIZED_SUBSYSTEM};
use serde_json::{Value, json};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_see_all_records_clients_only_their_own() {
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let gateway = federation.endpoint("client_gateway_url");
    let admin = federation.endpoint("client_gateway_admin_url");
    let provider_admin = federation.endpoint("provider_gateway_admin_url");
    let owner = federation.endpoint("admin_token");
    let persons = format!("{gateway}/r1/{PROVIDER_SUBSYSTEM}/persons/001099012345");
    let digest = format!("{gateway}/r1/{PROVIDER_SUBSYSTEM}/digest");
    let http = reqwest::Client::new();

    // Exchanges by two client subsystems: two granted calls and a refused one.
    let granted = http
        .get(&persons)
        .header("X-Road-Client", CLIENT_SUBSYSTEM)
        .header("X-Road-UserId", "VN0123456789")
        .header("X-Road-Issue", "case 42")
        .send()
        .await
        .expect("exchange");
    assert_eq!(granted.status(), 200);
    let granted_size = granted.bytes().await.expect("body").len();
    let posted = http
        .post(&digest)
        .header("X-Road-Client", CLIENT_SUBSYSTEM)
        .body("hello")
        .send()
        .await
        .expect("exchange");
    assert_eq!(posted.status(), 200);
    let refused = http
        .get(&persons)
        .header("X-Road-Client", UNAUTHORIZED_SUBSYSTEM)
        .send()
        .await
        .expect("exchange");
    assert_eq!(
        refused.headers()["x-road-error"],
        "Server.ServerProxy.AccessDenied"
    );
    for node in &federation.gateways {
        lienthong_gateway::opmon::flush(node).await;
    }

    // The owner sees all three, oldest first, with X-Road's fields.
    let all = records(&admin, &owner, "").await;
    assert_eq!(
        all.iter().map(|r| r["client"].as_str()).collect::<Vec<_>>(),
        [
            Some(CLIENT_SUBSYSTEM),
            Some(CLIENT_SUBSYSTEM),
            Some(UNAUTHORIZED_SUBSYSTEM)
        ],
        "{all:#?}"
    );
    let client_server = federation.gateways[0].server_id().to_string();
    let provider_server = federation.gateways[1].server_id().to_string();
    let first = &all[0];
    assert_eq!(first["security_server_type"], "client");
    assert_eq!(first["service"], format!("{PROVIDER_SUBSYSTEM}/persons"));
    assert_eq!(first["rest_method"], "GET");
    assert_eq!(first["rest_path"], "/001099012345");
    assert_eq!(first["message_user_id"], "VN0123456789");
    assert_eq!(first["message_issue"], "case 42");
    assert_eq!(first["client_security_server"], client_server.as_str());
    assert_eq!(first["service_security_server"], provider_server.as_str());
    assert_eq!(first["status_code"], 200);
    assert_eq!(first["succeeded"], true);
    assert_eq!(first["fault_code"], Value::Null);
    assert_eq!(first["request_size"], 0);
    assert_eq!(first["response_size"], granted_size);
    let times: Vec<i64> = [
        "request_in_ts",
        "request_out_ts",
        "response_in_ts",
        "response_out_ts",
    ]
    .iter()
    .map(|name| first[name].as_i64().unwrap_or_else(|| panic!("{name}")))
    .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(all[1]["rest_method"], "POST");
    assert_eq!(all[1]["request_size"], 5);
    let failed = &all[2];
    assert_eq!(failed["succeeded"], false);
    assert_eq!(failed["fault_code"], "Server.ServerProxy.AccessDenied");
    assert_eq!(failed["request_out_ts"], Value::Null, "never logged");

    // The provider's gateway recorded the same exchanges on its side.
    let produced = records(&provider_admin, &owner, "").await;
    assert_eq!(produced.len(), 3, "{produced:#?}");
    for (record, expected) in produced.iter().zip(&all) {
        assert_eq!(record["security_server_type"], "producer");
        assert_eq!(record["message_id"], expected["message_id"]);
        assert_eq!(record["client_security_server"], client_server.as_str());
    }
    assert_eq!(produced[2]["fault_code"], "Server.ServerProxy.AccessDenied");
    assert!(
        produced[0]["request_out_ts"].is_i64(),
        "the service was called"
    );

    // Filters: service, and time ranges split at the second record.
    let only_digest = records(
        &admin,
        &owner,
        &format!("service={PROVIDER_SUBSYSTEM}/digest"),
    )
    .await;
    assert_eq!(ids(&only_digest), ids(&all[1..2]));
    let split = all[1]["request_in_ts"].as_i64().expect("time");
    let expected_from: Vec<Value> = all
        .iter()
        .filter(|r| r["request_in_ts"].as_i64() >= Some(split))
        .cloned()
        .collect();
    let expected_to: Vec<Value> = all
        .iter()
        .filter(|r| r["request_in_ts"].as_i64() < Some(split))
        .cloned()
        .collect();
    assert!(!expected_from.is_empty() && !expected_to.is_empty());
    assert_eq!(
        ids(&records(&admin, &owner, &format!("from={split}")).await),
        ids(&expected_from)
    );
    assert_eq!(
        ids(&records(&admin, &owner, &format!("to={split}")).await),
        ids(&expected_to)
    );
    assert_eq!(
        ids(&records(&admin, &owner, "limit=1").await),
        ids(&all[..1])
    );

    // Client subsystems, each with a client token the owner made: only their own records.
    let token_of = |subsystem: &'static str| {
        let http = http.clone();
        let admin = admin.clone();
        let owner = owner.clone();
        async move {
            let created = http
                .post(format!("{admin}/api/v1/client-tokens"))
                .bearer_auth(&owner)
                .json(&json!({"subsystem": subsystem, "name": "monitoring"}))
                .send()
                .await
                .expect("create a client token");
            assert_eq!(created.status(), 201);
            let body: Value = created.json().await.expect("json");
            body["token"].as_str().expect("token").to_owned()
        }
    };
    let case_management = token_of(CLIENT_SUBSYSTEM).await;
    let unauthorized = token_of(UNAUTHORIZED_SUBSYSTEM).await;
    assert_eq!(
        ids(&records(&admin, &case_management, "").await),
        ids(&all[..2])
    );
    assert_eq!(
        ids(&records(&admin, &unauthorized, "").await),
        ids(&all[2..])
    );
    assert_eq!(
        ids(&records(
            &admin,
            &case_management,
            &format!("client={CLIENT_SUBSYSTEM}")
        )
        .await),
        ids(&all[..2])
    );
    let status = |url: String, token: String| {
        let http = http.clone();
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("admin API")
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        status(
            format!("{admin}/api/v1/opmon/records?client={UNAUTHORIZED_SUBSYSTEM}"),
            case_management.clone()
        )
        .await,
        403,
        "another client's records"
    );
    assert_eq!(
        status(format!("{admin}/api/v1/services"), case_management.clone()).await,
        403,
        "a client token opens nothing else"
    );
    assert_eq!(
        status(
            format!("{admin}/api/v1/opmon/records"),
            "not-a-token".into()
        )
        .await,
        401
    );
    // A client may not mint tokens.
    let minted = http
        .post(format!("{admin}/api/v1/client-tokens"))
        .bearer_auth(&case_management)
        .json(&json!({"subsystem": UNAUTHORIZED_SUBSYSTEM, "name": "x"}))
        .send()
        .await
        .expect("admin API");
    assert_eq!(minted.status(), 403);

    // Client calls are audited under the client's name; a revoked token opens nothing.
    let audit: Vec<Value> = http
        .get(format!("{admin}/api/v1/audit"))
        .bearer_auth(&owner)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    assert!(
        audit.iter().any(|e| e["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with(&format!("client:{CLIENT_SUBSYSTEM}")))
            && e["action"] == "GET /api/v1/opmon/records"),
        "{audit:#?}"
    );
    let sha256 = lienthong_gateway::admin::hash_token(&case_management);
    let revoked = http
        .delete(format!("{admin}/api/v1/client-tokens/{sha256}"))
        .bearer_auth(&owner)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        status(format!("{admin}/api/v1/opmon/records"), case_management).await,
        401
    );

    // Nothing was lost, and /metrics says so.
    let metrics = http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("\nlienthong_gateway_opmon_dropped_total 0\n")
            && metrics.contains("\nlienthong_gateway_opmon_queue_depth 0\n"),
        "{metrics}"
    );

    // Retention (30 days by default): nothing is old yet; a month on, everything is.
    let client_gateway = &federation.gateways[0];
    let now = now_ms();
    assert_eq!(
        lienthong_gateway::opmon::purge_expired(client_gateway, now + 29 * DAY_MS)
            .await
            .expect("purge"),
        0
    );
    assert_eq!(records(&admin, &owner, "").await.len(), 3);
    assert_eq!(
        lienthong_gateway::opmon::purge_expired(client_gateway, now + 31 * DAY_MS)
            .await
            .expect("purge"),
        3
    );
    assert!(records(&admin, &owner, "").await.is_empty());
    assert_eq!(
        records(&provider_admin, &owner, "").await.len(),
        3,
        "the provider's gateway keeps its own"
    );
    federation.stop().await;
}

async fn records(admin: &str, token: &str, query: &str) -> Vec<Value> {
    let response = reqwest::Client::new()
        .get(format!("{admin}/api/v1/opmon/records?{query}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("admin API");
    assert_eq!(response.status(), 200, "{query}");
    let body: Value = response.json().await.expect("json");
    body["records"].as_array().expect("records").clone()
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["message_id"].as_str().expect("message id").to_owned())
        .collect()
}
