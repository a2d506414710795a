//! Mutual TLS between gateways. A peer is accepted only if its certificate's SHA-256 is one
//! the global configuration lists for that gateway and an approved CA issued it; the server
//! side's certificate status travels as a stapled OCSP response that the client checks for
//! freshness; the client side's status is checked by the server after the handshake.
//! TLS 1.3 is preferred; TLS 1.2 is allowed with rustls's suites, all ECDHE + AEAD.

use crate::trust::{TrustCell, hex};
use lienthong_crypto::{Signer, Suite};
use lienthong_pki::{CertificateInfo, VerifiedStatus};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureAlgorithm,
    SignatureScheme,
};
use std::sync::{Arc, RwLock};

/// The handshake-signature methods every verifier here shares: checked with the
/// provider's algorithms (`self.provider`), as rustls's own verifiers do.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}
pub(crate) use handshake_signatures;

/// The TLS key and certificate of this gateway, swappable (certificate rotation, fresh
/// OCSP staple) without restarting.
#[derive(Debug, Clone)]
pub struct AuthIdentity(Arc<RwLock<Arc<CertifiedKey>>>);

impl AuthIdentity {
    /// An identity from the auth certificate (DER) and its key.
    pub fn new(certificate: Vec<u8>, key: Arc<dyn Signer>) -> Self {
        let certified = CertifiedKey::new(
            vec![CertificateDer::from(certificate)],
            Arc::new(TlsKey(key)),
        );
        Self(Arc::new(RwLock::new(Arc::new(certified))))
    }

    /// The current certified key.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| k.clone())
    }

    /// Staple a fresh OCSP response for the certificate.
    pub fn set_ocsp(&self, response: Vec<u8>) {
        if let Ok(mut slot) = self.0.write() {
            let mut updated = CertifiedKey::clone(&slot);
            updated.ocsp = Some(response);
            *slot = Arc::new(updated);
        }
    }
}

impl rustls::server::ResolvesServerCert for AuthIdentity {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

impl rustls::client::ResolvesClientCert for AuthIdentity {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// Any [`Signer`] as a rustls signing key: the TLS key may live in an HSM too.
#[derive(Debug)]
struct TlsKey(Arc<dyn Signer>);

impl rustls::sign::SigningKey for TlsKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        let scheme = match self.0.suite() {
            Suite::EcdsaP256Sha256 => SignatureScheme::ECDSA_NISTP256_SHA256,
            Suite::EcdsaP384Sha384 => SignatureScheme::ECDSA_NISTP384_SHA384,
            Suite::Ed25519 => SignatureScheme::ED25519,
            Suite::RsaPssSha256 => SignatureScheme::RSA_PSS_SHA256,
            _ => return None,
        };
        offered
            .contains(&scheme)
            .then(|| Box::new(TlsSigner(self.0.clone(), scheme)) as Box<dyn rustls::sign::Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.0.suite() {
            Suite::Ed25519 => SignatureAlgorithm::ED25519,
            Suite::RsaPssSha256 => SignatureAlgorithm::RSA,
            _ => SignatureAlgorithm::ECDSA,
        }
    }
}

#[derive(Debug)]
struct TlsSigner(Arc<dyn Signer>, SignatureScheme);

impl rustls::sign::Signer for TlsSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.0
            .sign(message)
            .map(|s| s.bytes)
            .map_err(|e| Error::General(format!("TLS signature failed: {e}")))
    }
    fn scheme(&self) -> SignatureScheme {
        self.1
    }
}

/// The provider used everywhere: aws-lc-rs.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Check a peer certificate against the trust view: listed for a gateway, issued by an
/// approved CA, within validity. Returns the parsed certificate and the issuer.
fn check_peer(
    trust: &TrustCell,
    end_entity: &[u8],
    now: i64,
) -> Result<(CertificateInfo, CertificateInfo), Error> {
    let view = trust.get().ok_or_else(|| {
        Error::General("no global configuration: cannot authenticate peers".into())
    })?;
    if view.gateway_by_certificate(end_entity).is_none() {
        tracing::warn!(sha256 = %hex(&lienthong_crypto::HashAlgorithm::Sha256.digest(end_entity)), "refused a peer whose auth certificate the global configuration does not list");
        return Err(Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ));
    }
    let certificate = CertificateInfo::from_der(end_entity)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let issuer = view
        .issuer_of(&certificate)
        .ok_or(Error::InvalidCertificate(CertificateError::UnknownIssuer))?;
    if now < certificate.not_before {
        return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now > certificate.not_after {
        return Err(Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok((certificate, issuer.certificate.clone()))
}

/// Server side: accepts only registered gateways (status checked after the handshake).
#[derive(Debug)]
pub struct PeerClientVerifier {
    trust: TrustCell,
    provider: Arc<CryptoProvider>,
}

impl PeerClientVerifier {
    /// A verifier over the shared trust view.
    pub fn new(trust: TrustCell) -> Self {
        Self {
            trust,
            provider: provider(),
        }
    }
}

impl ClientCertVerifier for PeerClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        check_peer(&self.trust, end_entity, now.as_secs() as i64)?;
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures!();
}

/// Client side: the server must be the gateway we dialled (by name, see
/// [`crate::trust::tls_name`]), with a listed certificate and a fresh, good stapled OCSP
/// response.
#[derive(Debug)]
pub struct PeerServerVerifier {
    trust: TrustCell,
    provider: Arc<CryptoProvider>,
}

impl PeerServerVerifier {
    /// A verifier over the shared trust view.
    pub fn new(trust: TrustCell) -> Self {
        Self {
            trust,
            provider: provider(),
        }
    }
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let now = now.as_secs() as i64;
        let (certificate, issuer) = check_peer(&self.trust, end_entity, now)?;
        let view = self
            .trust
            .get()
            .ok_or_else(|| Error::General("no configuration".into()))?;
        let expected = match server_name {
            ServerName::DnsName(name) => view.gateway_by_tls_name(name.as_ref()),
            _ => None,
        }
        .ok_or_else(|| Error::General("dialled an unknown gateway".into()))?;
        if view.gateway_by_certificate(end_entity).map(|g| &g.id) != Some(&expected.id) {
            return Err(Error::InvalidCertificate(CertificateError::NotValidForName));
        }
        if ocsp_response.is_empty() {
            return Err(Error::General(format!(
                "gateway {} stapled no OCSP response",
                expected.id
            )));
        }
        let freshness = i64::try_from(view.conf.conf.policy.ocsp_freshness_seconds).unwrap_or(3600);
        match lienthong_pki::verify_ocsp_response(
            ocsp_response,
            &certificate,
            &issuer,
            now,
            freshness,
        ) {
            Ok(VerifiedStatus::Good { .. }) => Ok(ServerCertVerified::assertion()),
            Ok(VerifiedStatus::Revoked { .. }) => {
                Err(Error::InvalidCertificate(CertificateError::Revoked))
            }
            Ok(VerifiedStatus::Unknown) => Err(Error::InvalidCertificate(
                CertificateError::UnknownRevocationStatus,
            )),
            Err(e) => Err(Error::General(format!(
                "stapled OCSP response refused: {e}"
            ))),
        }
    }

    handshake_signatures!();
}

/// Local clients over HTTPS: a client certificate is optional at the TLS layer (its
/// possession is proved by the handshake); whether a subsystem needs one, and which, is
/// decided per request from the gateway's configuration.
#[derive(Debug)]
pub struct LocalClientVerifier {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for LocalClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        // Registered by hash per subsystem, not by a CA: checked after the handshake.
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures!();
}

/// The server configuration of the local clients' HTTPS listener (the gateway presents
/// its auth certificate, issued by the federation CA).
pub fn local_server_config(identity: AuthIdentity) -> Result<Arc<rustls::ServerConfig>, Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(Arc::new(LocalClientVerifier {
            provider: provider(),
        }))
        .with_cert_resolver(Arc::new(identity));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The server configuration of the gateway-to-gateway listener.
pub fn server_config(
    identity: AuthIdentity,
    trust: TrustCell,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(Arc::new(PeerClientVerifier::new(trust)))
        .with_cert_resolver(Arc::new(identity));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client configuration for dialling other gateways.
pub fn client_config(
    identity: AuthIdentity,
    trust: TrustCell,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    // `dangerous()` is rustls's name for "a custom verifier"; ours is stricter than WebPKI:
    // it pins the exact certificates the signed global configuration lists.
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerServerVerifier::new(trust)))
        .with_client_cert_resolver(Arc::new(identity));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
