//! The benchmark's relay chain (`lienthong_gateway::relay`): a request goes through the
//! client relay, mutual TLS and HTTP/2, and the server relay to the provider and back with
//! its path, headers and body; a relay whose certificate the other side does not pin gets
//! no connection.

use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lienthong_gateway::relay::{self, RelayConfig, Role};
use std::net::SocketAddr;
use std::path::Path;
use tokio::net::TcpListener;

/// A provider that answers with the request's body, its path in `x-path` and its
/// `x-test` header in `x-test-seen`.
async fn echo_provider() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                let path = request.uri().path_and_query().map(|p| p.to_string());
                let seen = request.headers().get("x-test").cloned();
                let body = request.into_body().collect().await?.to_bytes();
                let mut response = Response::new(Full::new(body));
                if let Some(path) = path {
                    response
                        .headers_mut()
                        .insert("x-path", path.parse().expect("header value"));
                }
                if let Some(seen) = seen {
                    response.headers_mut().insert("x-test-seen", seen);
                }
                Ok::<_, hyper::Error>(response)
            });
            tokio::spawn(
                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned(),
            );
        }
    });
    address
}

/// Start a relay of `role` with the certificates in `dir`; returns its address.
async fn start(role: Role, upstream: String, dir: &Path) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let config = RelayConfig::load(role, upstream, dir).expect("relay settings");
    tokio::spawn(relay::run(listener, config, std::future::pending()));
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_goes_through_the_chain_and_a_stranger_does_not() {
    let dir = tempfile::tempdir().expect("temporary directory");
    relay::write_certificates(dir.path()).expect("certificates");
    let provider = echo_provider().await;
    let server = start(Role::Server, format!("http://{provider}"), dir.path()).await;
    let client = start(Role::Client, server.to_string(), dir.path()).await;

    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let http = reqwest::Client::new();
    let body = vec![b'x'; 300_000];
    let response = http
        .post(format!("http://{client}/persons/1?full=yes"))
        .header("x-test", "kept")
        .body(body.clone())
        .send()
        .await
        .expect("send through the relays");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-path"], "/persons/1?full=yes");
    assert_eq!(response.headers()["x-test-seen"], "kept");
    assert_eq!(response.bytes().await.expect("body").as_ref(), body);

    // A client relay with a certificate of another pair: the server relay does not pin it
    // (nor does the client pin the server's), so no connection, and the answer is a 502.
    let other = tempfile::tempdir().expect("temporary directory");
    relay::write_certificates(other.path()).expect("certificates");
    let stranger = start(Role::Client, server.to_string(), other.path()).await;
    let response = http
        .get(format!("http://{stranger}/persons/1"))
        .send()
        .await
        .expect("an answer from the client relay");
    assert_eq!(response.status(), 502);
    let reason = response.text().await.expect("reason");
    assert!(!reason.is_empty(), "the 502 says why");
}

#[test]
fn missing_certificates_are_named() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let error =
        RelayConfig::load(Role::Client, "127.0.0.1:1".into(), dir.path()).expect_err("no files");
    assert!(error.to_string().contains("client.pk8"), "{error}");
}
