//! Two refreshes of one client at once (the background poller and an operator's call)
//! adopt what they download in the order they downloaded it: a slow answer carrying an
//! older version never lands after a newer one and is never taken for a rollback.

use axum::Router;
use axum::routing::get;
use lienthong_conf::{ConfClient, RefreshOutcome, make_anchor, sign};
use lienthong_crypto::{Signer, SoftwareKey, Suite};
use lienthong_model::conf::{CONF_FORMAT, FederationPolicy, GlobalConf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn conf(version: u64) -> GlobalConf {
    GlobalConf {
        format: CONF_FORMAT.into(),
        instance: "VN".into(),
        version,
        generated_at: now(),
        expires_at: now() + 600,
        policy: FederationPolicy::default(),
        members: vec![],
        gateways: vec![],
        global_groups: vec![],
        certificate_authorities: vec![],
        timestamp_authorities: vec![],
    }
}

/// The registry as a race shows it: the first download is answered with version 17, but
/// only once the second refresh (answered with version 18) has finished, or after a
/// second when the second refresh waits for the first.
#[tokio::test]
async fn a_slow_older_answer_never_lands_after_a_newer_one() {
    let key = SoftwareKey::generate(Suite::EcdsaP256Sha256)
        .expect("key")
        .0;
    let older = Arc::new(sign(&conf(17), &[&key]).expect("sign 17"));
    let newer = Arc::new(sign(&conf(18), &[&key]).expect("sign 18"));
    let served = Arc::new(AtomicU64::new(0));
    let second_done = Arc::new(Notify::new());
    let app = Router::new().route(
        "/globalconf",
        get({
            let served = served.clone();
            let second_done = second_done.clone();
            move || {
                let (older, newer) = (older.clone(), newer.clone());
                let (served, second_done) = (served.clone(), second_done.clone());
                async move {
                    if served.fetch_add(1, Ordering::SeqCst) == 0 {
                        let released = second_done.notified();
                        let _ = tokio::time::timeout(Duration::from_secs(1), released).await;
                        older.to_vec()
                    } else {
                        newer.to_vec()
                    }
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/globalconf", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("dir");
    let anchor = make_anchor("VN", vec![url], &[key.public_key()]);
    let client = Arc::new(ConfClient::new(anchor, dir.path().join("conf.json")).expect("client"));
    let first = tokio::spawn({
        let client = client.clone();
        async move { client.refresh(now()).await }
    });
    // The second refresh starts once the first one's download is at the server.
    while served.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = client.refresh(now()).await.expect("second refresh");
    second_done.notify_one();
    let first = first.await.expect("join").expect("first refresh");

    assert_eq!(first, RefreshOutcome::Updated { version: 17 });
    assert_eq!(second, RefreshOutcome::Updated { version: 18 });
    assert_eq!(client.current().map(|c| c.conf.version), Some(18));
    assert_eq!(served.load(Ordering::SeqCst), 2, "one download each");
}
