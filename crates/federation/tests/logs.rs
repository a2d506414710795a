//! Structured logs: with the JSON format, what a gateway logs while handling an exchange
//! names the exchange's message id (at the client's and the provider's gateway), and no
//! log line holds a body, a token or the key passphrase.

mod common;

use common::*;
use lienthong_federation::{CLIENT_SUBSYSTEM, UNAUTHORIZED_SUBSYSTEM};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// Log lines written so far (this test binary's global subscriber writes here).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn call(federation: &lienthong_federation::Federation, client: &str, id: &str) -> u16 {
    reqwest::Client::new()
        .post(format!(
            "{}{}/001099012345",
            federation.endpoint("client_gateway_url"),
            federation.endpoint("service_path")
        ))
        .header("X-Road-Client", client)
        .header("X-Road-Id", id)
        .body("a request body that must never be logged")
        .send()
        .await
        .expect("the client gateway answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_of_an_exchange_carry_its_message_id_and_no_secrets() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(move || writer.clone())
        .init();

    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    // Refused at the provider's gateway (logged there; the client's gateway passes the
    // refusal on), and refused at the client's gateway (an unknown client).
    assert_ne!(
        call(&federation, UNAUTHORIZED_SUBSYSTEM, "log-test-denied").await,
        200
    );
    assert_ne!(
        call(&federation, "VN/GOV/999999/nobody", "log-test-unknown").await,
        200
    );
    let ok = reqwest::Client::new()
        .get(format!(
            "{}{}/001099012345",
            federation.endpoint("client_gateway_url"),
            federation.endpoint("service_path")
        ))
        .header("X-Road-Client", CLIENT_SUBSYSTEM)
        .send()
        .await
        .expect("exchange");
    assert_eq!(ok.status(), 200);
    let answer = ok.text().await.expect("body");
    let token = federation.endpoint("admin_token");
    let passphrase = String::from_utf8_lossy(&federation.passphrase).into_owned();
    federation.stop().await;

    let text = String::from_utf8(capture.0.lock().expect("log buffer").clone()).expect("UTF-8");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let in_exchange = |id: &str, message: &str, side: &str| {
        lines.iter().any(|line| {
            line["fields"]["message"] == message
                && line["span"]["name"] == "exchange"
                && line["span"]["message_id"] == id
                && line["span"]["side"] == side
        })
    };
    assert!(
        in_exchange(
            "log-test-denied",
            "refused a request from a peer gateway",
            "provider"
        ),
        "{text}"
    );
    assert!(
        in_exchange("log-test-unknown", "exchange refused", "client"),
        "{text}"
    );
    // Every line logged inside an exchange names its message id.
    for line in &lines {
        if line["span"]["name"] == "exchange" {
            assert!(line["span"]["message_id"].is_string(), "{line}");
        }
    }
    // No bodies, tokens or passphrases.
    let citizen = answer
        .split('"')
        .find(|s| s.contains("Nguy"))
        .expect("a name in the answer");
    for secret in [
        "a request body that must never be logged",
        citizen,
        token.as_str(),
        passphrase.as_str(),
    ] {
        assert!(!text.contains(secret), "the log holds {secret:?}");
    }
}
