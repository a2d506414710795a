//! Large bodies through both gateways with bounded memory: the client's gateway spools a
//! body over its in-memory limit to disk while hashing it, and the provider's gateway
//! passes it through to the service, checking it against its signed digest as it streams;
//! neither holds it whole in RAM.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use futures_util::{StreamExt as _, stream};

/// The provider's digest service, through the client gateway.
fn digest_url(federation: &lienthong_federation::Federation) -> String {
    format!(
        "{}/r1/{}/digest",
        federation.endpoint("client_gateway_url"),
        lienthong_federation::PROVIDER_SUBSYSTEM
    )
}

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
    let url = digest_url(&federation);
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
    let (keys, raw) = copy_of_client_gateway(&federation);
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
    let (keys, raw) = copy_of_client_gateway(&federation);
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

/// The client gateway's count of exchanges whose body it read whole before signing.
async fn bodies_read_whole(federation: &lienthong_federation::Federation) -> u64 {
    metrics(federation, "client_gateway_admin_url")
        .await
        .lines()
        .find(|l| {
            l.starts_with("lienthong_gateway_stage_duration_seconds_count")
                && l.contains("side=\"client\"")
                && l.contains("stage=\"body_read\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Gateway `index`'s (0 client, 1 provider) one log record of message `id`, as JSON.
async fn log_record(
    federation: &lienthong_federation::Federation,
    index: usize,
    id: &str,
) -> serde_json::Value {
    let gateway = &federation.gateways[index];
    let log = gateway.server_id().to_string();
    let ledger = gateway.store().ledger();
    let found = ledger.find_by_message_id(&log, id).await.expect("lookup");
    assert_eq!(found.len(), 1, "one record of {id} at gateway {index}");
    let (_, _, bytes) = ledger
        .record(&log, found[0])
        .await
        .expect("read")
        .expect("record");
    serde_json::from_slice(&bytes).expect("JSON record")
}

/// A large body whose length the client declares goes on from the client's gateway as it
/// is read, with its signature in the trailer (the client's gateway never holds it whole:
/// no whole-body read before signing), and both gateways log it signed with its real
/// digest. A body without a declared length is read whole first (the test above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_of_declared_length_streams_with_its_signature_in_the_trailer() {
    const SIZE: usize = 3 * 1024 * 1024; // over the gateways' in-memory limit of 256 KiB
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let url = digest_url(&federation);
    let post = async |body: Vec<u8>, id: &str| {
        let response = reqwest::Client::new()
            .post(&url)
            .header("X-Road-Client", lienthong_federation::CLIENT_SUBSYSTEM)
            .header("X-Road-Id", id)
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .expect("exchange");
        let status = response.status();
        let answer: serde_json::Value = response.json().await.expect("JSON answer");
        assert_eq!(status, 200, "{id}: {answer}");
        answer
    };
    // A small body is read whole, hashed and signed before it is sent.
    let before = bodies_read_whole(&federation).await;
    post(b"small".to_vec(), "small-1").await;
    assert_eq!(bodies_read_whole(&federation).await, before + 1);

    let body: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let sha256 = lienthong_gateway::message::digest(&body);
    let answer = post(body, "streamed-1").await;
    assert_eq!(
        answer["length"], SIZE as u64,
        "the provider received every byte"
    );
    assert_eq!(
        answer["sha256"],
        lienthong_gateway::trust::hex(&sha256),
        "and exactly those bytes"
    );
    assert_eq!(
        bodies_read_whole(&federation).await,
        before + 1,
        "the large body was not read whole before it was sent"
    );
    for index in [0, 1] {
        let record = log_record(&federation, index, "streamed-1").await;
        assert_eq!(
            record["request_body_sha256"],
            lienthong_gateway::trust::hex(&sha256),
            "gateway {index}: {record}"
        );
        let description = STANDARD
            .decode(record["request_description"].as_str().expect("description"))
            .expect("base64");
        let description =
            lienthong_gateway::message::RequestHeader::decode(&description).expect("decodes");
        assert_eq!(
            (description.body_sha256, description.body_length),
            (sha256, SIZE as u64),
            "gateway {index}: the logged description is the signed one, not the head's"
        );
        assert!(
            !record["request_signature"]
                .as_str()
                .unwrap_or("")
                .is_empty()
        );
    }
    federation.stop().await;
}

/// Send `body` to the provider's gateway with the signature in the trailer: `head` is the
/// description on the head, `trailer` the description and signature after the body (none:
/// the body ends without a trailer). Status, `X-Road-Error`, body.
async fn send_signed_late(
    federation: &lienthong_federation::Federation,
    raw: &RawClient,
    keys: &ClientGatewayKeys,
    head: &str,
    body: &[u8],
    trailer: Option<(&str, &str)>,
) -> (u16, String, String) {
    use http_body_util::BodyExt as _;
    let mut frames: Vec<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>> = body
        .chunks(64 * 1024)
        .map(|c| Ok(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(c))))
        .collect();
    if let Some((description, signature)) = trailer {
        let mut trailers = hyper::HeaderMap::new();
        trailers.insert("x-lienthong-request", description.parse().expect("value"));
        trailers.insert("x-lienthong-signature", signature.parse().expect("value"));
        frames.push(Ok(hyper::body::Frame::trailers(trailers)));
    }
    let body = http_body_util::StreamBody::new(stream::iter(frames)).boxed_unsync();
    let path = format!("/r1/{}/digest", lienthong_federation::PROVIDER_SUBSYSTEM);
    let headers = [
        ("x-lienthong-request", head),
        ("x-lienthong-signed", "trailer"),
    ];
    let (status, headers, answer) =
        send_raw_with(federation, raw, keys, ("POST", &path), &headers, body)
            .await
            .expect("answered");
    (
        status,
        error_type(&headers),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

/// The provider's gateway checks a signature that follows the body before the service
/// gets the body's last chunk (a large body, passed through) or any of it (a small one):
/// the description in the trailer must be the head's with the digest filled in, match the
/// body, verify, and not be a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_in_the_trailer_is_checked_before_the_service_gets_the_body() {
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let (keys, raw) = copy_of_client_gateway(&federation);
    let client = lienthong_federation::CLIENT_SUBSYSTEM;
    for size in [1024 * 1024, 10 * 1024] {
        let body: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let mut other = body.clone();
        other[size / 2] ^= 1;
        // The head's description of a request: the signed one with the digest zeroed.
        let head_of = |header: &lienthong_gateway::message::RequestHeader| {
            let mut head = header.clone();
            head.body_sha256 = [0; 32];
            STANDARD.encode(head.encode().expect("encode"))
        };
        let signed = async |body: &[u8], id: &str| {
            signed_request(&keys, client, "digest", "POST", "", body, id).await
        };
        let send = async |head: &str, trailer: Option<(&str, &str)>| {
            send_signed_late(&federation, &raw, &keys, head, &body, trailer).await
        };
        let refused = |(status, kind, answer): (u16, String, String), label: &str, why: &str| {
            assert_eq!(
                (status, kind.as_str()),
                (500, "Server.ServerProxy.InvalidSignatureValue"),
                "{size} {label}: {answer}"
            );
            assert!(answer.contains(why), "{size} {label}: {answer}");
        };

        let id = format!("late-ok-{size}");
        let (header, description, signature) = signed(&body, &id).await;
        let (status, kind, answer) =
            send(&head_of(&header), Some((&description, &signature))).await;
        assert_eq!((status, kind.as_str()), (200, ""), "{size}: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
        assert_eq!(answer["length"], size as u64);
        assert_eq!(
            answer["sha256"],
            lienthong_gateway::trust::hex(&lienthong_gateway::message::digest(&body))
        );
        // The same again: a replay.
        let (status, kind, _) = send(&head_of(&header), Some((&description, &signature))).await;
        assert_eq!(
            (status, kind.as_str()),
            (500, "Server.ServerProxy.ReplayedMessage")
        );

        let id = format!("late-no-trailer-{size}");
        let (header, _, _) = signed(&body, &id).await;
        refused(
            send(&head_of(&header), None).await,
            "no trailer",
            "ended without its signature",
        );

        // (label, body signed, trailer's description of another message, signature of
        // another message, why it is refused)
        let cases = [
            (
                "signed another body",
                &other,
                false,
                false,
                "does not match the signed digest",
            ),
            (
                "trailer unlike the head",
                &body,
                true,
                true,
                "differs from the one its head described",
            ),
            (
                "signature of another description",
                &body,
                false,
                true,
                "does not verify",
            ),
        ];
        for (label, signed_body, other_description, other_signature, why) in cases {
            let id = format!("late-{label}-{size}").replace(' ', "-");
            let (header, description, signature) = signed(signed_body, &id).await;
            let (_, another, another_signature) = signed(signed_body, &format!("{id}-x")).await;
            let description = if other_description {
                another
            } else {
                description
            };
            let signature = if other_signature {
                another_signature
            } else {
                signature
            };
            refused(
                send(&head_of(&header), Some((&description, &signature))).await,
                label,
                why,
            );
        }
    }
    federation.stop().await;
}

/// A large answer of declared length goes on from the provider's gateway as the service
/// sends it, to a client's gateway that takes it so: the head carries the description
/// with the digest zeroed and no signature; the trailer carries the whole description,
/// its signature and the provider's log commit. The client's gateway passes it on, its
/// last chunk held until the trailer checks out and its own record is durable, and both
/// gateways log it signed with its real digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_streams_with_its_signature_in_the_trailer() {
    const SIZE: usize = 3 * 1024 * 1024; // over the gateways' in-memory limit of 256 KiB
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let query = format!("bytes={SIZE}");

    // Through both gateways.
    let url = format!(
        "{}/r1/{}/payload?{query}",
        federation.endpoint("client_gateway_url"),
        lienthong_federation::PROVIDER_SUBSYSTEM
    );
    let response = reqwest::Client::new()
        .get(&url)
        .header("X-Road-Client", lienthong_federation::CLIENT_SUBSYSTEM)
        .header("X-Road-Id", "download-1")
        .send()
        .await
        .expect("exchange");
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.expect("the whole answer");
    assert_eq!(body.len(), SIZE);
    let sha256 = lienthong_gateway::message::digest(&body);
    let streamed_answers = metrics(&federation, "client_gateway_admin_url").await;
    assert!(
        streamed_answers
            .contains("lienthong_gateway_streamed_answers_total{outcome=\"passed\"} 1\n"),
        "the client's gateway passed the answer on as it came: {streamed_answers}"
    );
    for index in [0, 1] {
        let record = log_record(&federation, index, "download-1").await;
        assert_eq!(
            record["response_body_sha256"],
            lienthong_gateway::trust::hex(&sha256),
            "gateway {index}: {record}"
        );
        let description = STANDARD
            .decode(
                record["response_description"]
                    .as_str()
                    .expect("description"),
            )
            .expect("base64");
        let description =
            lienthong_gateway::message::ResponseHeader::decode(&description).expect("decodes");
        assert_eq!(
            (description.body_sha256, description.body_length),
            (sha256, SIZE as u64),
            "gateway {index}: the logged description is the signed one, not the head's"
        );
        assert!(
            !record["response_signature"]
                .as_str()
                .unwrap_or("")
                .is_empty(),
            "gateway {index}: {record}"
        );
    }

    // What the provider's gateway sends: with the client's gateway's keys, a request that
    // takes the answer streamed, and one that does not.
    let (keys, raw) = copy_of_client_gateway(&federation);
    let path = format!(
        "/r1/{}/payload?{query}",
        lienthong_federation::PROVIDER_SUBSYSTEM
    );
    let ask = async |id: &str, late: bool| {
        let client = lienthong_federation::CLIENT_SUBSYSTEM;
        let (_, description, signature) =
            signed_request_to(&keys, client, "payload", ("GET", "", &query), b"", id).await;
        let mut headers = vec![
            ("x-lienthong-request", description.as_str()),
            ("x-lienthong-signature", signature.as_str()),
            ("x-lienthong-log", "trailer"),
        ];
        if late {
            headers.push(("x-lienthong-accept-signed", "trailer"));
        }
        let body = lienthong_gateway::body::empty();
        send_raw_full(&federation, &raw, &keys, ("GET", &path), &headers, body)
            .await
            .expect("answered")
    };
    let streamed = ask("download-2", true).await;
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.body.len(), SIZE);
    let head = |name| streamed.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(head("x-lienthong-signed"), Some("trailer"));
    assert_eq!(head("x-lienthong-signature"), None);
    let zeroed = STANDARD
        .decode(head("x-lienthong-response").expect("a description on the head"))
        .expect("base64");
    let zeroed = lienthong_gateway::message::ResponseHeader::decode(&zeroed).expect("decodes");
    assert_eq!(
        (zeroed.body_sha256, zeroed.body_length),
        ([0; 32], SIZE as u64)
    );
    let trailers = streamed.trailers.expect("a trailer");
    let trailer = |name| trailers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(trailer("x-lienthong-log"), Some("committed"));
    assert!(trailer("x-lienthong-signature").is_some());
    let signed = STANDARD
        .decode(trailer("x-lienthong-response").expect("a description in the trailer"))
        .expect("base64");
    let signed = lienthong_gateway::message::ResponseHeader::decode(&signed).expect("decodes");
    assert_eq!(
        signed,
        lienthong_gateway::message::ResponseHeader {
            body_sha256: lienthong_gateway::message::digest(&streamed.body),
            ..zeroed
        },
        "the trailer's description is the head's with the digest filled in"
    );

    // Without the word that it takes a streamed answer, the answer comes signed on its head.
    let whole = ask("download-3", false).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body.len(), SIZE);
    assert_eq!(whole.headers.get("x-lienthong-signed"), None);
    assert!(whole.headers.contains_key("x-lienthong-signature"));
    federation.stop().await;
}

/// A streamed answer's last chunk waits for both records: when the provider's gateway
/// cannot commit its record, or the client's gateway cannot commit its own, the client's
/// body ends short of its length (the stream fails), the client's gateway counts a refused
/// streamed answer, and it keeps no record of an answer it did not release. With the
/// stores writable again, the next download goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_is_not_completed_unless_both_records_are_durable() {
    const SIZE: usize = 3 * 1024 * 1024;
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let download = async |id| download_payload(&federation, SIZE, id).await;
    assert_eq!(download("before").await.expect("whole"), SIZE);
    assert_eq!(refused_answers(&federation).await, "0");

    for (gateway, id) in [
        ("gw-provider", "provider-cannot-log"),
        ("gw-client", "client-cannot-log"),
    ] {
        let database = refuse_records(&federation, gateway);
        // The stream breaks off (an error), or at least ends short.
        if let Ok(length) = download(id).await {
            assert!(length < SIZE, "{id}: {length} bytes");
        }
        let expected = if gateway == "gw-provider" { "1" } else { "2" };
        await_refused_answers(&federation, expected, id).await;
        assert_eq!(
            records(&federation, 0, id).await,
            0,
            "{id}: no client record of it"
        );
        database
            .execute_batch("DROP TRIGGER refuse_records;")
            .expect("drop the trigger");
    }
    // The provider had committed its record of the second: the client's failed.
    assert_eq!(records(&federation, 1, "client-cannot-log").await, 1);
    assert_eq!(records(&federation, 1, "provider-cannot-log").await, 0);
    assert_eq!(download("after").await.expect("whole"), SIZE);
    federation.stop().await;
}

/// A streamed answer whose trailer was altered on the way, by a party that holds the
/// provider gateway's auth key and sits between the two gateways: with the signature of
/// another answer, with the whole trailer of another answer, or with an emptied trailer.
/// Each time the client's body ends short of its length, the client's gateway counts a
/// refused streamed answer and keeps no record, though the provider's gateway committed
/// its own. The same party passing the trailer as it is changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_with_an_altered_trailer_is_not_completed() {
    const SIZE: usize = 3 * 1024 * 1024;
    let dir = tempfile::tempdir().expect("dir");
    let federation = federation(&dir).await;
    let interceptor = Interceptor::start(&federation).await;
    interceptor.redirect_client_gateway(&federation).await;
    let download = async |id| download_payload(&federation, SIZE, id).await;

    assert_eq!(download("passed-as-it-is").await.expect("whole"), SIZE);
    assert!(
        interceptor.passed.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the answer came through the interceptor"
    );
    assert_eq!(refused_answers(&federation).await, "0");
    assert_eq!(records(&federation, 0, "passed-as-it-is").await, 1);

    for (refused, (alter, id)) in (1..).zip([
        (Alter::OtherSignature, "another-answers-signature"),
        (Alter::OtherTrailer, "another-answers-trailer"),
        (Alter::Emptied, "an-emptied-trailer"),
    ]) {
        interceptor.set(alter);
        if let Ok(length) = download(id).await {
            assert!(length < SIZE, "{id}: {length} bytes");
        }
        await_refused_answers(&federation, &refused.to_string(), id).await;
        assert_eq!(
            records(&federation, 0, id).await,
            0,
            "{id}: no client record of it"
        );
        assert_eq!(
            records(&federation, 1, id).await,
            1,
            "{id}: the provider's record"
        );
    }
    interceptor.set(Alter::Nothing);
    assert_eq!(download("passed-again").await.expect("whole"), SIZE);
    assert_eq!(refused_answers(&federation).await, "3");
    federation.stop().await;
}

/// A GET of `size` bytes of the provider's payload through both gateways, with the message
/// id `id`: the length of the body read, or the error it ended in. The head must say 200.
async fn download_payload(
    federation: &lienthong_federation::Federation,
    size: usize,
    id: &str,
) -> reqwest::Result<usize> {
    let url = format!(
        "{}/r1/{}/payload?bytes={size}",
        federation.endpoint("client_gateway_url"),
        lienthong_federation::PROVIDER_SUBSYSTEM
    );
    let response = reqwest::Client::builder()
        .timeout(HELPER_TIMEOUT)
        .build()
        .expect("HTTP client")
        .get(&url)
        .header("X-Road-Client", lienthong_federation::CLIENT_SUBSYSTEM)
        .header("X-Road-Id", id)
        .send()
        .await
        .expect("the head of the answer");
    let status = response.status();
    if status != 200 {
        let text = response.text().await.unwrap_or_default();
        panic!("{id}: {status}: {text}");
    }
    response.bytes().await.map(|b| b.len())
}

/// How many records of message `id` gateway `index` (0 the client's, 1 the provider's)
/// keeps.
async fn records(federation: &lienthong_federation::Federation, index: usize, id: &str) -> usize {
    let gateway = &federation.gateways[index];
    let log = gateway.server_id().to_string();
    let found = gateway.store().ledger().find_by_message_id(&log, id).await;
    found.expect("lookup").len()
}

/// The client gateway's count of refused streamed answers.
async fn refused_answers(federation: &lienthong_federation::Federation) -> String {
    metrics(federation, "client_gateway_admin_url")
        .await
        .lines()
        .find_map(|l| {
            l.strip_prefix("lienthong_gateway_streamed_answers_total{outcome=\"refused\"} ")
        })
        .unwrap_or("missing")
        .to_owned()
}

/// Wait until the client gateway has counted `expected` refused streamed answers: it counts
/// one once the reader of the answer (`id`) has the verdict.
async fn await_refused_answers(
    federation: &lienthong_federation::Federation,
    expected: &str,
    id: &str,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let counted = refused_answers(federation).await;
        if counted == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id}: {counted} refused, not {expected}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
