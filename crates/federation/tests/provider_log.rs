//! The provider's gateway sends its signed answer while its record of the exchange is being
//! committed and confirms the commit in a trailer; the client's gateway commits its own
//! record meanwhile and releases the answer only when both are durable. When the
//! provider's commit fails, the client's system gets an error and none of the answer.

mod common;

use common::*;

/// How many records of message `id` the gateway `index` (0 client, 1 provider) holds.
async fn records_of(
    federation: &lienthong_federation::Federation,
    index: usize,
    id: &str,
) -> usize {
    let gateway = &federation.gateways[index];
    gateway
        .store()
        .ledger()
        .find_by_message_id(&gateway.server_id().to_string(), id)
        .await
        .expect("lookup")
        .len()
}

/// The provider gateway's count of log records whose commit failed.
async fn provider_log_failures(federation: &lienthong_federation::Federation) -> String {
    metrics(federation, "provider_gateway_admin_url")
        .await
        .lines()
        .find_map(|line| line.strip_prefix("lienthong_gateway_log_commit_failures_total "))
        .unwrap_or("missing")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_log_failure_releases_nothing_and_the_logs_recover() {
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let (status, _, body) = exchange_with_id(&federation, "provider-log-before").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("001099012345"), "{body}");

    assert_eq!(provider_log_failures(&federation).await, "0");

    // The provider gateway's database starts refusing new log records (as a full disk
    // would), through a trigger its own connection obeys.
    let database = refuse_records(&federation, "gw-provider");

    let (status, error, body) = exchange_with_id(&federation, "provider-log-during").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(error, "Server.ServerProxy.InternalError", "{body}");
    assert!(
        body.contains("could not record the exchange") && body.contains("injected"),
        "{body}"
    );
    assert!(
        !body.contains("birth_date"),
        "no part of the answer: {body}"
    );
    // The answer's bytes did reach the client's gateway, which committed its record of
    // them while it waited for the provider's trailer (so the commits overlapped); the
    // provider's gateway holds none.
    assert_eq!(records_of(&federation, 0, "provider-log-during").await, 1);
    assert_eq!(records_of(&federation, 1, "provider-log-during").await, 0);
    assert_eq!(provider_log_failures(&federation).await, "1");

    database
        .execute_batch("DROP TRIGGER refuse_records;")
        .expect("drop the trigger");
    let (status, _, body) = exchange_with_id(&federation, "provider-log-after").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(records_of(&federation, 0, "provider-log-after").await, 1);
    assert_eq!(records_of(&federation, 1, "provider-log-after").await, 1);

    // Both logs read back and audit clean after the failed commit.
    for (index, pem) in [(0, "gw-client/auth.pem"), (1, "gw-provider/auth.pem")] {
        let gateway = &federation.gateways[index];
        gateway.seal_log().await.expect("seal");
        let auth = lienthong_pki::CertificateInfo::from_der(
            &lienthong_pki::parse_certificate_pem(
                &std::fs::read(federation.dir.join(pem)).expect("auth.pem"),
            )
            .expect("pem"),
        )
        .expect("certificate");
        let summary = lienthong_gateway::audit_stored_log(
            gateway.store(),
            &gateway.server_id().to_string(),
            &auth.public_key,
        )
        .await
        .expect("the log audits clean");
        assert_eq!(summary.records, if index == 0 { 3 } else { 2 });
    }
    federation.stop().await;
}
