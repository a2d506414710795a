//! Shared helpers of the end-to-end tests: start a federation, and a "raw peer" that
//! speaks the gateway-to-gateway protocol directly, to send what a correct gateway never
//! would (altered signatures, replays, unregistered certificates).

#![allow(dead_code, unreachable_pub)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use lienthong_crypto::{BatchSigner, KeyStore, Signer};
use lienthong_federation::{Federation, Options};
use lienthong_gateway::body::{GatewayBody, full};
use lienthong_gateway::message::{RequestHeader, digest};
use lienthong_gateway::peer::PeerConnector;
use lienthong_gateway::tls::{AuthIdentity, client_config};
use lienthong_gateway::trust::tls_name;
use lienthong_pki::CertificateInfo;
use std::sync::Arc;

/// The longest a helper waits for an answer.
pub const HELPER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub async fn federation(dir: &tempfile::TempDir) -> Federation {
    lienthong_federation::start(Options {
        dir: dir.path().join("fed"),
        port_base: None,
        passphrase: Some(b"end-to-end test passphrase".to_vec()),
        dangerous_fast_kdf: true,
    })
    .await
    .expect("the federation starts")
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The client gateway's keys and certificates, as a misbehaving copy of it would hold.
pub struct ClientGatewayKeys {
    pub auth: Arc<dyn Signer>,
    pub auth_certificate: Vec<u8>,
    pub sign: Arc<dyn Signer>,
    pub sign_certificate: Vec<u8>,
}

pub fn client_gateway_keys(federation: &Federation) -> ClientGatewayKeys {
    let dir = federation.dir.join("gw-client");
    let keys = KeyStore::new(dir.join("keys"));
    let read = |name: &str| {
        let pem = std::fs::read(dir.join(name)).expect("certificate");
        lienthong_pki::parse_certificate_pem(&pem).expect("pem")
    };
    ClientGatewayKeys {
        auth: Arc::new(keys.load("auth", &federation.passphrase).expect("auth key")),
        auth_certificate: read("auth.pem"),
        sign: Arc::new(keys.load("sign", &federation.passphrase).expect("sign key")),
        sign_certificate: read("sign.pem"),
    }
}

/// The client gateway's keys, and a raw peer with its auth key and certificate: a copy of
/// the client gateway that can send what the real one never would.
pub fn copy_of_client_gateway(federation: &Federation) -> (ClientGatewayKeys, RawClient) {
    let keys = client_gateway_keys(federation);
    let raw = raw_peer(federation, keys.auth.clone(), keys.auth_certificate.clone());
    (keys, raw)
}

pub type RawClient = hyper_util::client::legacy::Client<PeerConnector, GatewayBody>;

/// A TLS client to other gateways with the given auth key and certificate.
pub fn raw_peer(
    federation: &Federation,
    auth: Arc<dyn Signer>,
    auth_certificate: Vec<u8>,
) -> RawClient {
    let trust = federation.gateways[0].trust().clone();
    let identity = AuthIdentity::new(auth_certificate, auth);
    let config = client_config(identity, trust.clone()).expect("TLS config");
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(PeerConnector::new(config, trust))
}

/// A fresh OCSP response for a certificate, from the federation's responder.
pub async fn ocsp_for(federation: &Federation, certificate_der: &[u8]) -> Vec<u8> {
    let root = federation
        .authority
        .certificate(&federation.authority.files().root_pem())
        .expect("root");
    let certificate = CertificateInfo::from_der(certificate_der).expect("certificate");
    let request = lienthong_pki::ocsp_request(
        &root,
        &certificate.serial,
        lienthong_crypto::HashAlgorithm::Sha256,
        None,
    )
    .expect("request");
    // Bounded, as every call of these helpers: a hang fails the test where it happened
    // instead of holding CI until its own time limit.
    reqwest::Client::builder()
        .timeout(HELPER_TIMEOUT)
        .build()
        .expect("HTTP client")
        .post(federation.endpoint("ocsp_url"))
        .body(request)
        .send()
        .await
        .expect("OCSP")
        .bytes()
        .await
        .expect("body")
        .to_vec()
}

/// A correctly signed gateway-to-gateway GET of `rest` of the demo service, from the
/// given client; returns the description, its base64, and the signature text.
pub async fn signed_get(
    keys: &ClientGatewayKeys,
    client: &str,
    rest: &str,
    message_id: &str,
) -> (RequestHeader, String, String) {
    signed_request(
        keys,
        client,
        lienthong_federation::SERVICE_CODE,
        "GET",
        rest,
        b"",
        message_id,
    )
    .await
}

/// A correctly signed gateway-to-gateway request of `method` to `rest` of service
/// `service_code` of the demo provider, with `body` signed by its digest.
pub async fn signed_request(
    keys: &ClientGatewayKeys,
    client: &str,
    service_code: &str,
    method: &str,
    rest: &str,
    body: &[u8],
    message_id: &str,
) -> (RequestHeader, String, String) {
    signed_request_to(
        keys,
        client,
        service_code,
        (method, rest, ""),
        body,
        message_id,
    )
    .await
}

/// The same with a query string.
pub async fn signed_request_to(
    keys: &ClientGatewayKeys,
    client: &str,
    service_code: &str,
    (method, rest, query): (&str, &str, &str),
    body: &[u8],
    message_id: &str,
) -> (RequestHeader, String, String) {
    let service = format!(
        "{}/{service_code}",
        lienthong_federation::PROVIDER_SUBSYSTEM
    );
    let header = RequestHeader {
        message_id: message_id.to_owned(),
        client: client.parse().expect("client"),
        service: service.parse().expect("service"),
        method: method.into(),
        path: rest.to_owned(),
        query: query.to_owned(),
        time_ms: now_ms(),
        user_id: String::new(),
        issue: String::new(),
        represented_party: String::new(),
        content_type: String::new(),
        body_sha256: digest(body),
        body_length: body.len() as u64,
    };
    let encoded = header.encode().expect("encode");
    let signer = BatchSigner::spawn(keys.sign.clone(), 1);
    let signature = signer.sign(digest(&encoded)).await.expect("sign").to_text();
    (header, STANDARD.encode(&encoded), signature)
}

/// Send a prepared gateway-to-gateway request to the provider's gateway.
pub async fn send_raw(
    federation: &Federation,
    client: &RawClient,
    keys: &ClientGatewayKeys,
    path: &str,
    description: &str,
    signature: &str,
) -> Result<(u16, hyper::HeaderMap, Bytes), String> {
    send_raw_request(
        federation,
        client,
        keys,
        ("GET", path),
        description,
        signature,
        full(Bytes::new()),
    )
    .await
}

/// The same with any method and body.
pub async fn send_raw_request(
    federation: &Federation,
    client: &RawClient,
    keys: &ClientGatewayKeys,
    (method, path): (&str, &str),
    description: &str,
    signature: &str,
    body: GatewayBody,
) -> Result<(u16, hyper::HeaderMap, Bytes), String> {
    let signed = [
        ("x-lienthong-request", description),
        ("x-lienthong-signature", signature),
    ];
    send_raw_with(federation, client, keys, (method, path), &signed, body).await
}

/// A gateway-to-gateway request with the signer's certificate and a fresh OCSP response
/// for it, and `headers` (the description, the signature or where it comes).
pub async fn send_raw_with(
    federation: &Federation,
    client: &RawClient,
    keys: &ClientGatewayKeys,
    (method, path): (&str, &str),
    headers: &[(&str, &str)],
    body: GatewayBody,
) -> Result<(u16, hyper::HeaderMap, Bytes), String> {
    send_raw_full(federation, client, keys, (method, path), headers, body)
        .await
        .map(|answer| (answer.status, answer.headers, answer.body))
}

/// An answer of the provider's gateway, with its trailer.
pub struct RawAnswer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    pub trailers: Option<hyper::HeaderMap>,
}

/// The same, with the answer's trailer.
pub async fn send_raw_full(
    federation: &Federation,
    client: &RawClient,
    keys: &ClientGatewayKeys,
    (method, path): (&str, &str),
    headers: &[(&str, &str)],
    body: GatewayBody,
) -> Result<RawAnswer, String> {
    let provider_gateway: lienthong_model::ServerId =
        format!("{}/gw1", lienthong_federation::PROVIDER_MEMBER)
            .parse()
            .expect("id");
    let ocsp = ocsp_for(federation, &keys.sign_certificate).await;
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("https://{}{path}", tls_name(&provider_gateway)));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .header(
            "x-lienthong-certificate",
            STANDARD.encode(&keys.sign_certificate),
        )
        .header("x-lienthong-ocsp", STANDARD.encode(ocsp))
        .body(body)
        .expect("request");
    let response = tokio::time::timeout(HELPER_TIMEOUT, client.request(request))
        .await
        .unwrap_or_else(|_| panic!("no answer from the provider gateway within {HELPER_TIMEOUT:?}"))
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(HELPER_TIMEOUT, body.collect())
        .await
        .unwrap_or_else(|_| {
            panic!("the provider gateway's answer did not end within {HELPER_TIMEOUT:?}")
        })
        .map_err(|e| e.to_string())?;
    Ok(RawAnswer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        trailers: body.trailers().cloned(),
        body: body.to_bytes(),
    })
}

/// The `X-Road-Error` of an answer ("" if none).
pub fn error_type(headers: &hyper::HeaderMap) -> String {
    headers
        .get("x-road-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The metrics page of the gateway whose admin URL is the endpoint `admin`.
pub async fn metrics(federation: &Federation, admin: &str) -> String {
    reqwest::Client::builder()
        .timeout(HELPER_TIMEOUT)
        .build()
        .expect("HTTP client")
        .get(format!("{}/metrics", federation.endpoint(admin)))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Requests this federation's provider system has answered.
pub fn served(federation: &Federation) -> u64 {
    federation.served.load(std::sync::atomic::Ordering::SeqCst)
}

/// One GET of the demo person through the client gateway as the demo client, with message
/// id `id`: status, `X-Road-Error`, body.
pub async fn exchange_with_id(federation: &Federation, id: &str) -> (u16, String, String) {
    exchange_as(federation, lienthong_federation::CLIENT_SUBSYSTEM, Some(id)).await
}

/// One GET of the demo person through the client gateway as `client` (with message id `id`
/// if given): status, `X-Road-Error`, body.
pub async fn exchange_as(
    federation: &Federation,
    client: &str,
    id: Option<&str>,
) -> (u16, String, String) {
    let url = format!(
        "{}{}/001099012345",
        federation.endpoint("client_gateway_url"),
        federation.endpoint("service_path")
    );
    let mut request = reqwest::Client::new()
        .get(url)
        .header("X-Road-Client", client);
    if let Some(id) = id {
        request = request.header("X-Road-Id", id);
    }
    let response = request.send().await.expect("the client gateway answers");
    let status = response.status().as_u16();
    let error = response
        .headers()
        .get("x-road-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, error, response.text().await.unwrap_or_default())
}

/// Make gateway `name`'s (`gw-client`, `gw-provider`) database refuse new message-log
/// records, as a full disk would, through a trigger its own connections obey; the
/// connection returned drops it with `DROP TRIGGER refuse_records`.
pub fn refuse_records(federation: &Federation, name: &str) -> rusqlite::Connection {
    let database =
        rusqlite::Connection::open(federation.dir.join(format!("{name}/state/gateway.db")))
            .expect("open the gateway's database");
    database
        .busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy timeout");
    database
        .execute_batch(
            "CREATE TRIGGER refuse_records BEFORE INSERT ON ledger_records \
             BEGIN SELECT RAISE(ABORT, 'injected: the disk refuses'); END;",
        )
        .expect("install the trigger");
    database
}
