//! Clients for the provider systems behind the gateway: plain HTTP, or HTTPS verified
//! against the public WebPKI roots or a CA given in the service's settings. One pooled
//! client per distinct TLS setting.

use crate::XRoadError;
use crate::body::GatewayBody;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lienthong_model::gateway::BackendTls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::CertificateDer;
use rustls::{DigitallySignedStruct, Error, SignatureScheme};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A pooled client for provider systems.
pub(crate) type BackendClient = Client<HttpsConnector<HttpConnector>, GatewayBody>;

/// Clients by TLS setting.
#[derive(Debug, Default)]
pub(crate) struct BackendClients {
    clients: Mutex<HashMap<(bool, Option<String>), BackendClient>>,
}

impl BackendClients {
    /// The client for a service's TLS settings (created on first use).
    pub(crate) fn for_settings(&self, tls: &BackendTls) -> Result<BackendClient, XRoadError> {
        let key = (tls.verify_certificate, tls.ca_certificate_pem.clone());
        let mut clients = self.clients.lock().map_err(|_| {
            XRoadError::server_proxy("InternalError", "backend client pool poisoned")
        })?;
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client = build(tls)?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

fn build(tls: &BackendTls) -> Result<BackendClient, XRoadError> {
    let failed = |why: String| {
        XRoadError::server_proxy("ServiceFailed", format!("backend TLS settings: {why}"))
    };
    let provider = crate::tls::provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(e.to_string()))?;
    let config = if tls.verify_certificate {
        let mut roots = rustls::RootCertStore::empty();
        match &tls.ca_certificate_pem {
            Some(pem) => {
                let der = lienthong_pki::parse_certificate_pem(pem.as_bytes())
                    .map_err(|e| failed(e.to_string()))?;
                roots
                    .add(rustls::pki_types::CertificateDer::from(der))
                    .map_err(|e| failed(e.to_string()))?;
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        tracing::warn!(
            "DANGEROUS: a service's backend TLS certificate is not verified (verify_certificate = false)"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification { provider }))
            .with_no_client_auth()
    };
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Only for backends explicitly configured with `verify_certificate = false`.
#[derive(Debug)]
struct NoVerification {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    crate::tls::handshake_signatures!();
}
