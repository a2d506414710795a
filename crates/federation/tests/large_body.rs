//! Large bodies through both gateways with bounded memory: the client's gateway spools a
//! body over its in-memory limit to disk while hashing it, and the provider's gateway
//! passes it through to the service, checking it against its signed digest as it streams;
//! neither holds it whole in RAM.

mod common;

use common::*;
use futures_util::{StreamExt as _, stream};

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

/// A large body is passed through the provider's gateway to the service as it comes, its
/// last chunk held back until it matches the signed digest (`body::tests` show the hold).
/// A copy of the client gateway that signs one body and sends another (altered, longer,
/// shorter) is refused as not the signed body; the body it signed goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_unlike_the_signed_one_is_refused() {
    const SIZE: usize = 1024 * 1024; // over the gateway's in-memory limit of 256 KiB
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let keys = client_gateway_keys(&federation);
    let raw = raw_peer(
        &federation,
        keys.auth.clone(),
        keys.auth_certificate.clone(),
    );
    let signed_body: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let path = format!("/r1/{}/digest", lienthong_federation::PROVIDER_SUBSYSTEM);
    let client = lienthong_federation::CLIENT_SUBSYSTEM;
    let mut altered_at_start = signed_body.clone();
    altered_at_start[0] ^= 1;
    let mut altered_at_end = signed_body.clone();
    altered_at_end[SIZE - 1] ^= 1;
    let mut longer = signed_body.clone();
    longer.push(0);
    let shorter = signed_body[..SIZE - 1].to_vec();
    // The body signed, and the one sent: status, X-Road-Error, body.
    let post = async |sent: Vec<u8>, id: &str| {
        let (_, description, signature) =
            signed_request(&keys, client, "digest", "POST", "", &signed_body, id).await;
        let (status, headers, body) = send_raw_request(
            &federation,
            &raw,
            &keys,
            ("POST", &path),
            &description,
            &signature,
            lienthong_gateway::body::full(sent),
        )
        .await
        .expect("answered");
        (status, error_type(&headers), body)
    };
    for (label, sent) in [
        ("first byte altered", altered_at_start),
        ("last byte altered", altered_at_end),
        ("one byte more", longer),
        ("one byte less", shorter),
    ] {
        let (status, kind, body) = post(sent, label).await;
        assert_eq!(
            (status, kind.as_str()),
            (500, "Server.ServerProxy.InvalidSignatureValue"),
            "{label}: {body:?}"
        );
        assert!(
            String::from_utf8_lossy(&body).contains("does not match the signed digest"),
            "{label}: {body:?}"
        );
    }
    let (status, _, body) = post(signed_body.clone(), "as-signed").await;
    assert_eq!(status, 200, "{body:?}");
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(answer["length"], SIZE as u64);
    assert_eq!(
        answer["sha256"],
        lienthong_gateway::trust::hex(&lienthong_gateway::message::digest(&signed_body))
    );
    federation.stop().await;
}

/// A service that cannot be reached fails the exchange at once, even while a large body
/// passed through is still coming: the gateway does not wait for the rest of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_service_fails_without_waiting_for_the_rest_of_a_large_body() {
    use http_body_util::BodyExt as _;
    const SIZE: usize = 1024 * 1024;
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    // A port with nothing listening on it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("address").port();
    drop(closed);
    let provider = lienthong_federation::PROVIDER_SUBSYSTEM;
    let client = lienthong_federation::CLIENT_SUBSYSTEM;
    lienthong_federation::register_service(
        &federation.endpoint("provider_gateway_admin_url"),
        &federation.endpoint("admin_token"),
        ("down", &format!("http://127.0.0.1:{port}/down"), 120_000),
        &[client],
    )
    .await
    .expect("registered");
    let keys = client_gateway_keys(&federation);
    let raw = raw_peer(
        &federation,
        keys.auth.clone(),
        keys.auth_certificate.clone(),
    );
    let signed_body = vec![7u8; SIZE];
    let (_, description, signature) =
        signed_request(&keys, client, "down", "POST", "", &signed_body, "down-1").await;
    // Half of the body, then nothing more for as long as the test runs.
    let half = bytes::Bytes::from(signed_body[..SIZE / 2].to_vec());
    let frames = stream::iter([Ok::<_, std::io::Error>(hyper::body::Frame::data(half))])
        .chain(stream::pending());
    let body = http_body_util::StreamBody::new(frames).boxed_unsync();
    // The helper's 30 s limit is far below the service's 120 s: only an answer that does
    // not wait for the body comes in time.
    let (status, headers, answer) = send_raw_request(
        &federation,
        &raw,
        &keys,
        ("POST", &format!("/r1/{provider}/down")),
        &description,
        &signature,
        body,
    )
    .await
    .expect("answered");
    assert_eq!(
        (status, error_type(&headers).as_str()),
        (500, "Server.ServerProxy.ServiceFailed"),
        "{answer:?}"
    );
    federation.stop().await;
}
