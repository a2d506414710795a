//! The TSA goes down: exchanges continue and the log is signed but not timestamped; once
//! the oldest untimestamped record is older than the tolerance, both gateways refuse new
//! exchanges with a clear error; when the TSA is back they timestamp the log and accept
//! exchanges again by themselves. Tokio's clock is moved on in jumps (see [`jump`]), never
//! slept on for hours.

mod common;

use common::{exchange_with_id, federation};
use lienthong_federation::Federation;
use lienthong_gateway::SealOutcome;
use std::time::Duration;

/// Move Tokio's clock on by `by` at once (the timers due meanwhile fire), then let it run
/// in real time again. Left paused, the clock would jump to the next timer whenever the
/// runtime waits on nothing but another thread or a socket (the stores' worker threads,
/// the registry and the TSA served in this runtime), and every timeout on such a wait
/// (an HTTP download, a database pool's acquire) would fire at once.
async fn jump(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// Point the federation's approved TSA at `url` and wait until both gateways use it.
async fn move_tsa(federation: &Federation, url: &str) {
    let registry = federation.registry.store().registry();
    let object = registry
        .object("tsa", "demo-tsa")
        .await
        .expect("read the TSA")
        .expect("the demo TSA is approved");
    let mut tsa: serde_json::Value = serde_json::from_str(&object.body).expect("TSA JSON");
    tsa["url"] = url.into();
    registry
        .update_object("tsa", "demo-tsa", &tsa.to_string(), object.revision)
        .await
        .expect("update the TSA");
    federation
        .registry
        .publish(common::now_ms() / 1000)
        .await
        .expect("publish");
    for gateway in &federation.gateways {
        let mut last_error = None;
        let mut moved = false;
        for _ in 0..200 {
            // A failed try is made again (the gateway's own poller may also be
            // downloading); the outcome that counts is the configuration in use.
            if let Err(error) = gateway.conf().refresh(common::now_ms() / 1000).await {
                last_error = Some(error);
            }
            moved = gateway.trust().get().is_some_and(|view| {
                view.conf
                    .conf
                    .timestamp_authorities
                    .iter()
                    .all(|t| t.url == url)
            });
            if moved {
                break;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            moved,
            "{} never took up the TSA at {url}; last refresh error: {last_error:?}",
            gateway.server_id()
        );
    }
}

// A current-thread runtime: Tokio's clock can only be paused there.
#[tokio::test]
async fn tsa_failure_is_tolerated_then_refused_then_recovered() {
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let tsa_url = federation.endpoint("tsa_url");
    let (status, _, body) = exchange_with_id(&federation, "before-outage").await;
    assert_eq!(status, 200, "{body}");

    // The TSA becomes unreachable (its URL now names a closed port).
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    move_tsa(&federation, &format!("http://127.0.0.1:{closed}/tsa")).await;
    let (status, _, body) = exchange_with_id(&federation, "during-outage").await;
    assert_eq!(
        status, 200,
        "exchanges continue while the TSA is down: {body}"
    );
    for gateway in &federation.gateways {
        let outcome = gateway.seal_log().await.expect("seal");
        assert!(
            matches!(outcome, SealOutcome::SignedOnly { .. }),
            "{}: {outcome:?}",
            gateway.server_id()
        );
    }

    // Past the tolerance (four hours by default), new exchanges are refused.
    let tolerance = federation.gateways[0].config().timestamp_failure_tolerance;
    assert_eq!(tolerance, Duration::from_secs(4 * 3600));
    jump(tolerance + Duration::from_secs(60)).await;
    let (status, error, body) = exchange_with_id(&federation, "past-tolerance").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(error, "Server.ClientProxy.TimestampFailure", "{body}");
    assert!(
        body.contains("could not be timestamped since"),
        "the error says since when: {body}"
    );

    // The TSA is back: the gateways' own retries timestamp the log, exchanges resume.
    move_tsa(&federation, &tsa_url).await;
    let mut recovered = None;
    for attempt in 0..200 {
        // Five seconds on Tokio's clock (the gateways' retry timers), then a moment of real
        // time for a retried seal to reach the TSA.
        jump(Duration::from_secs(5)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (status, error, body) =
            exchange_with_id(&federation, &format!("after-{attempt}")).await;
        if status == 200 {
            recovered = Some(attempt);
            break;
        }
        // The provider's gateway may still refuse for its own log a little longer.
        assert!(
            error.ends_with(".TimestampFailure"),
            "refused for the timestamps only: {error} {body}"
        );
    }
    assert!(
        recovered.is_some(),
        "the gateway never accepted exchanges again"
    );
    for gateway in &federation.gateways {
        let log = gateway.server_id().to_string();
        let ledger = gateway.store().ledger();
        let during = *ledger
            .find_by_message_id(&log, "during-outage")
            .await
            .expect("find")
            .first()
            .expect("the record made during the outage");
        let heads = ledger.heads(&log).await.expect("heads");
        assert!(
            heads
                .iter()
                .any(|h| h.size > during && h.tsa_token.is_some()),
            "{log}: a timestamped head covers the record made while the TSA was down"
        );
    }
    federation.stop().await;
}
