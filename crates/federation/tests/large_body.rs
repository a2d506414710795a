//! A 50 MB body through both gateways with bounded memory: bodies over the in-memory limit
//! are spooled to disk while being hashed, never held whole in RAM.

mod common;

use common::*;
use futures_util::stream;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_pass_through_both_gateways_with_bounded_memory() {
    const SIZE: usize = 50 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let url = format!(
        "{}/r1/{}/digest",
        federation.endpoint("client_gateway_url"),
        lienthong_federation::PROVIDER_SUBSYSTEM
    );
    // Warm up (connections, pools), then measure the peak from here.
    let warm = reqwest::Client::new()
        .post(&url)
        .header("X-Road-Client", lienthong_federation::CLIENT_SUBSYSTEM)
        .body("warm-up")
        .send()
        .await
        .expect("warm-up");
    assert_eq!(warm.status(), 200);
    let mut expected = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for i in 0..SIZE / CHUNK {
        expected.update(&[(i % 251) as u8; CHUNK]);
    }
    let expected: String = expected
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let before = peak_rss_kib();

    // The body is generated as a stream, so the test itself never holds it either.
    let chunks = stream::iter(
        (0..SIZE / CHUNK).map(|i| Ok::<_, std::io::Error>(vec![(i % 251) as u8; CHUNK])),
    );
    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .post(&url)
        .header("X-Road-Client", lienthong_federation::CLIENT_SUBSYSTEM)
        .header("Content-Type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("exchange");
    let status = response.status();
    let answer: serde_json::Value = response.json().await.expect("JSON answer");
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["length"], SIZE as u64,
        "the provider received every byte"
    );
    assert_eq!(
        answer["sha256"],
        expected.as_str(),
        "and exactly those bytes"
    );
    let after = peak_rss_kib();
    let growth_mib = (after.saturating_sub(before)) as f64 / 1024.0;
    println!(
        "50 MiB through client gateway -> provider gateway -> provider in {elapsed:?}; peak RSS of the whole test process (both gateways, the provider, the client): {:.1} MiB before, {:.1} MiB after, growth {growth_mib:.1} MiB",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    assert!(
        growth_mib < 40.0,
        "memory grew by {growth_mib:.1} MiB for a 50 MiB body: something held it whole"
    );
    federation.stop().await;
}
