//! A relay on the gateways' own transport and nothing else, the benchmark's third baseline
//! (`lienthong bench relay`; `bench compare` runs two of them as a chain).
//!
//! The client relay accepts HTTP/1.1 as the client gateway's listener does and sends each
//! request on over mutual TLS and HTTP/2, with the peer client's pool, flow-control windows,
//! frame size and header table; the server relay accepts that connection as the peer
//! listener does and calls the provider with the backend client. Bodies stream through.
//! No signing, verification, certificate status, access control or message log: what it
//! costs is what the gateways' HTTP and TLS stack costs, so the benchmark can tell that
//! apart from the cost of the security work.
//!
//! Each side pins the other's certificate (self-signed, P-256 as the gateways' auth keys);
//! the relay is a measuring instrument, not a proxy to deploy.

use crate::body::GatewayBody;
use crate::peer::PeerStream;
use crate::tls::{AuthIdentity, handshake_signatures, provider};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use lienthong_crypto::{SoftwareKey, Suite};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The TLS name the client relay dials (only matched against the pinned certificate).
const SERVER_NAME: &str = "relay.invalid";

/// Which end of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Next to the load generator: HTTP/1.1 in, mutual TLS and HTTP/2 out.
    Client,
    /// Next to the provider: mutual TLS and HTTP/2 in, HTTP/1.1 out.
    Server,
}

impl Role {
    fn file_stem(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Client => Self::Server,
            Self::Server => Self::Client,
        }
    }
}

/// A relay's settings.
#[derive(Debug)]
pub struct RelayConfig {
    pub role: Role,
    /// The server relay's `host:port` (client role) or the provider's base URL, such as
    /// `http://127.0.0.1:8080` (server role).
    pub upstream: String,
    /// This relay's certificate (DER) and key.
    pub certificate: Vec<u8>,
    pub key: Arc<SoftwareKey>,
    /// The only certificate (DER) the other relay may present.
    pub peer_certificate: Vec<u8>,
}

impl RelayConfig {
    /// The settings of `role` from `dir`, which holds both relays' certificates (DER) and
    /// keys (PKCS #8): `client.der`, `client.pk8`, `server.der`, `server.pk8`.
    pub fn load(role: Role, upstream: String, dir: &Path) -> std::io::Result<Self> {
        let read = |name: String| {
            std::fs::read(dir.join(&name)).map_err(|e| {
                std::io::Error::new(e.kind(), format!("{}: {e}", dir.join(&name).display()))
            })
        };
        let pkcs8 = read(format!("{}.pk8", role.file_stem()))?;
        let key = SoftwareKey::from_pkcs8(Suite::EcdsaP256Sha256, &pkcs8)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(Self {
            role,
            upstream,
            certificate: read(format!("{}.der", role.file_stem()))?,
            key: Arc::new(key),
            peer_certificate: read(format!("{}.der", role.other().file_stem()))?,
        })
    }
}

/// Generate the two relays' keys and self-signed certificates into `dir` (the files
/// [`RelayConfig::load`] reads); each is valid for a week.
pub fn write_certificates(dir: &Path) -> std::io::Result<()> {
    let failed = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    std::fs::create_dir_all(dir)?;
    for role in [Role::Client, Role::Server] {
        let (key, pkcs8) = SoftwareKey::generate(Suite::EcdsaP256Sha256).map_err(|e| failed(&e))?;
        let now = std::time::SystemTime::now();
        let certificate = lienthong_pki::CertificateAuthority::create_root(
            Arc::new(key),
            "lienthong benchmark",
            &format!("relay {}", role.file_stem()),
            &lienthong_pki::Serial::random().map_err(|e| failed(&e))?,
            now - Duration::from_secs(300),
            now + Duration::from_secs(7 * 86_400),
            lienthong_crypto::CryptoPolicy::international(),
        )
        .map_err(|e| failed(&e))?;
        let stem = role.file_stem();
        std::fs::write(
            dir.join(format!("{stem}.der")),
            &certificate.certificate().der,
        )?;
        std::fs::write(dir.join(format!("{stem}.pk8")), &*pkcs8)?;
    }
    Ok(())
}

/// Relay until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: RelayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let identity = AuthIdentity::new(config.certificate.clone(), config.key.clone());
    let pinned = Arc::new(Pinned {
        certificate: config.peer_certificate.clone(),
        provider: provider(),
    });
    let upstream = Arc::new(config.upstream.clone());
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let accept = match config.role {
        Role::Client => {
            let peer = peer_client(identity, pinned, upstream.to_string())?;
            crate::server::accept_loop(listener, stop.clone(), move |stream| {
                let peer = peer.clone();
                let service = service_fn(move |request| {
                    forward(peer.clone(), format!("https://{SERVER_NAME}"), request)
                });
                tokio::spawn(
                    auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned(),
                );
            })
        }
        Role::Server => {
            let mut tls = rustls::ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(std::io::Error::other)?
                .with_client_cert_verifier(pinned)
                .with_cert_resolver(Arc::new(identity));
            tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
            let backend = crate::backend::BackendClients::default()
                .for_settings(&lienthong_model::gateway::BackendTls {
                    verify_certificate: true,
                    ca_certificate_pem: None,
                })
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            crate::server::accept_loop(listener, stop.clone(), move |stream| {
                let (acceptor, backend) = (acceptor.clone(), backend.clone());
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |request| {
                        forward(backend.clone(), upstream.to_string(), request)
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .initial_stream_window_size(crate::server::H2_STREAM_WINDOW)
                        .initial_connection_window_size(crate::server::H2_CONNECTION_WINDOW)
                        .max_frame_size(crate::server::H2_MAX_FRAME)
                        .header_table_size(crate::server::H2_HEADER_TABLE)
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            })
        }
    };
    shutdown.await;
    let _ = stopping.send(true);
    let _ = accept.await;
    Ok(())
}

/// Send `request` on to `target` (scheme and authority) with its path, headers and body;
/// stream the answer back. A failure is a 502 with the reason.
async fn forward<C>(
    client: Client<C, GatewayBody>,
    target: String,
    request: Request<Incoming>,
) -> Result<Response<GatewayBody>, std::convert::Infallible>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = match format!("{target}{path}").parse::<Uri>() {
        Ok(uri) => uri,
        Err(error) => return Ok(failed(error.to_string())),
    };
    parts.version = hyper::Version::HTTP_11;
    crate::proxy_common::strip_headers(&mut parts.headers);
    parts.headers.remove(hyper::header::HOST);
    let body = body.map_err(std::io::Error::other).boxed_unsync();
    match client.request(Request::from_parts(parts, body)).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            crate::proxy_common::strip_headers(&mut parts.headers);
            let body = body.map_err(std::io::Error::other).boxed_unsync();
            Ok(Response::from_parts(parts, body))
        }
        Err(error) => Ok(failed(error.to_string())),
    }
}

fn failed(reason: String) -> Response<GatewayBody> {
    let mut response = Response::new(crate::body::full(reason.into_bytes()));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

/// The peer client as the gateway builds it (same pool and HTTP/2 settings), dialling the
/// server relay at `address`.
fn peer_client(
    identity: AuthIdentity,
    pinned: Arc<Pinned>,
    address: String,
) -> std::io::Result<Client<Dialler, GatewayBody>> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(pinned)
        .with_client_cert_resolver(Arc::new(identity));
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(crate::gateway::peer_client_builder().build(Dialler {
        tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        address: Arc::new(address),
    }))
}

/// Dials the server relay: TCP without Nagle, then mutual TLS, as [`crate::peer`] does.
#[derive(Clone)]
struct Dialler {
    tls: tokio_rustls::TlsConnector,
    address: Arc<String>,
}

impl tower_service::Service<Uri> for Dialler {
    type Response = PeerStream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<PeerStream>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let (tls, address) = (self.tls.clone(), self.address.clone());
        Box::pin(async move {
            let tcp = TcpStream::connect(address.as_str()).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from(SERVER_NAME).map_err(std::io::Error::other)?;
            Ok(PeerStream::new(tls.connect(name, tcp).await?))
        })
    }
}

/// Accepts exactly one certificate, the other relay's, as client or server.
#[derive(Debug)]
struct Pinned {
    certificate: Vec<u8>,
    provider: Arc<CryptoProvider>,
}

impl Pinned {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), Error> {
        if end_entity.as_ref() == self.certificate.as_slice() {
            Ok(())
        } else {
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        }
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    handshake_signatures!();
}
