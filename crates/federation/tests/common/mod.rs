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
    gateway_keys(federation, "gw-client")
}

/// The keys and certificates of gateway `name` (`gw-client`, `gw-provider`).
pub fn gateway_keys(federation: &Federation, name: &str) -> ClientGatewayKeys {
    let dir = federation.dir.join(name);
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

/// What [`Interceptor`] does to the trailer of each answer it passes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alter {
    /// Nothing: the trailer is kept as the last one seen.
    Nothing,
    /// The signature of the last trailer kept put in place of this one's.
    OtherSignature,
    /// The whole last trailer kept put in place of this one.
    OtherTrailer,
    /// Every field taken out.
    Emptied,
}

/// A provider's gateway gone wrong, between the client's gateway and the real one: it
/// holds the provider gateway's auth key, so the client's gateway takes it for the
/// provider's; it passes each request on to the real provider gateway with the client
/// gateway's auth key, and alters the trailer of each answer as `alter` says.
pub struct Interceptor {
    pub address: std::net::SocketAddr,
    pub alter: Arc<std::sync::Mutex<Alter>>,
    /// Requests passed on.
    pub passed: Arc<std::sync::atomic::AtomicUsize>,
}

impl Interceptor {
    /// Start one on a port of its own. The client's gateway is sent to it by
    /// [`Interceptor::redirect_client_gateway`]; it reaches the real provider gateway at the
    /// address of the configuration in force when it started.
    pub async fn start(federation: &Federation) -> Self {
        use hyper::body::Frame;
        use lienthong_gateway::trust::{TrustCell, TrustView};
        let view = federation.gateways[0]
            .trust()
            .get()
            .expect("a configuration");
        let fixed = TrustCell::default();
        fixed.set(TrustView::new(view.conf.clone()));
        let provider = gateway_keys(federation, "gw-provider");
        let ocsp = ocsp_for(federation, &provider.auth_certificate).await;
        let identity = AuthIdentity::new(provider.auth_certificate, provider.auth);
        identity.set_ocsp(ocsp);
        let server = lienthong_gateway::tls::server_config(identity, fixed.clone())
            .expect("TLS server config");
        let client = client_gateway_keys(federation);
        let config = client_config(
            AuthIdentity::new(client.auth_certificate, client.auth),
            fixed.clone(),
        )
        .expect("TLS client config");
        let onward: RawClient =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(PeerConnector::new(config, fixed));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let alter = Arc::new(std::sync::Mutex::new(Alter::Nothing));
        let passed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let kept: Arc<std::sync::Mutex<Option<hyper::HeaderMap>>> = Arc::default();
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let (alter_, passed_) = (alter.clone(), passed.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, onward) = (acceptor.clone(), onward.clone());
                let (alter, passed, kept) = (alter_.clone(), passed_.clone(), kept.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let (onward, kept) = (onward.clone(), kept.clone());
                            let alter = *alter.lock().expect("lock");
                            passed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            async move {
                                let request = request
                                    .map(|body| body.map_err(std::io::Error::other).boxed_unsync());
                                let response = onward.request(request).await?;
                                let change = move |mut trailers: hyper::HeaderMap| {
                                    let mut kept = kept.lock().expect("lock");
                                    match (alter, kept.as_ref()) {
                                        (Alter::Nothing, _) => *kept = Some(trailers.clone()),
                                        (Alter::OtherSignature, Some(other)) => {
                                            if let Some(signature) =
                                                other.get("x-lienthong-signature")
                                            {
                                                trailers.insert(
                                                    "x-lienthong-signature",
                                                    signature.clone(),
                                                );
                                            }
                                        }
                                        (Alter::OtherTrailer, Some(other)) => {
                                            trailers = other.clone()
                                        }
                                        (Alter::Emptied, _) => trailers.clear(),
                                        (_, None) => {
                                            panic!("no trailer kept to alter this one with")
                                        }
                                    }
                                    trailers
                                };
                                Ok::<_, hyper_util::client::legacy::Error>(response.map(|body| {
                                    body.map_frame(move |frame| match frame.into_trailers() {
                                        Ok(trailers) => Frame::trailers(change(trailers)),
                                        Err(frame) => frame,
                                    })
                                    .map_err(std::io::Error::other)
                                    .boxed_unsync()
                                }))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        Self {
            address,
            alter,
            passed,
        }
    }

    /// Register this as the provider gateway's address and have the client's gateway take
    /// the configuration that says so.
    pub async fn redirect_client_gateway(&self, federation: &Federation) {
        let provider = federation.gateways[1].server_id().clone();
        federation
            .registry
            .set_gateway_address(&provider, &self.address.to_string())
            .await
            .expect("a new address");
        let now = now_ms() / 1000;
        federation.registry.publish(now).await.expect("publish");
        let client_gateway = &federation.gateways[0];
        client_gateway.conf().refresh(now).await.expect("refresh");
        let address = self.address.to_string();
        for _ in 0..250 {
            let view = client_gateway.trust().get();
            let registered = view
                .as_ref()
                .and_then(|v| v.gateway_by_tls_name(&tls_name(&provider)));
            if registered.is_some_and(|g| g.address == address) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the client's gateway did not take the new address");
    }

    pub fn set(&self, alter: Alter) {
        *self.alter.lock().expect("lock") = alter;
    }
}
