//! The trust view: what the current global configuration says to trust, parsed once per
//! configuration version — approved CAs (with their OCSP URLs), which gateway owns which
//! `auth` certificate hash, and who serves which client.

use lienthong_conf::VerifiedConf;
use lienthong_model::conf::Gateway;
use lienthong_model::{ClientId, ServerId, SubsystemId};
use lienthong_pki::CertificateInfo;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Certificates whose issuer signature was checked, remembered per configuration version.
const ISSUER_CACHE_CAPACITY: usize = 4096;

/// An approved CA, parsed.
#[derive(Debug, Clone)]
pub struct TrustedCa {
    pub certificate: CertificateInfo,
    pub ocsp_urls: Vec<String>,
}

/// Everything the data path needs from one configuration version.
#[derive(Debug)]
pub struct TrustView {
    pub conf: Arc<VerifiedConf>,
    pub cas: Vec<TrustedCa>,
    /// auth certificate SHA-256 (hex) -> gateway.
    by_auth_hash: HashMap<String, usize>,
    /// TLS name label -> gateway.
    by_label: HashMap<String, usize>,
    /// SHA-256 of a certificate's DER -> index of the approved CA whose signature on it
    /// verified. Signers' certificates arrive with every message; checking the CA's
    /// signature once per configuration version instead of once per message removes an
    /// ECDSA verification from each side of every exchange.
    verified_issuers: RwLock<HashMap<[u8; 32], usize>>,
}

impl TrustView {
    /// Parse the trust material of `conf` (unparseable CA entries are skipped and logged).
    pub fn new(conf: Arc<VerifiedConf>) -> Self {
        use base64::Engine as _;
        let cas = conf
            .conf
            .certificate_authorities
            .iter()
            .filter_map(|ca| {
                let parsed = base64::engine::general_purpose::STANDARD
                    .decode(&ca.certificate)
                    .ok()
                    .and_then(|der| CertificateInfo::from_der(&der).ok());
                if parsed.is_none() {
                    tracing::warn!(ca = %ca.name, "ignoring an unparseable approved CA");
                }
                parsed.map(|certificate| TrustedCa {
                    certificate,
                    ocsp_urls: ca.ocsp_urls.clone(),
                })
            })
            .collect();
        let mut by_auth_hash = HashMap::new();
        let mut by_label = HashMap::new();
        for (index, gateway) in conf.conf.gateways.iter().enumerate() {
            for hash in &gateway.auth_certificate_hashes {
                by_auth_hash.insert(hash.to_ascii_lowercase(), index);
            }
            by_label.insert(tls_name(&gateway.id), index);
        }
        Self {
            conf,
            cas,
            by_auth_hash,
            by_label,
            verified_issuers: RwLock::new(HashMap::new()),
        }
    }

    /// The gateway whose registered auth certificate has this DER encoding.
    pub fn gateway_by_certificate(&self, der: &[u8]) -> Option<&Gateway> {
        let hash = hex(&lienthong_crypto::HashAlgorithm::Sha256.digest(der));
        self.by_auth_hash
            .get(&hash)
            .map(|&i| &self.conf.conf.gateways[i])
    }

    /// The gateway a TLS server name (from [`tls_name`]) stands for.
    pub fn gateway_by_tls_name(&self, name: &str) -> Option<&Gateway> {
        self.by_label
            .get(name)
            .map(|&i| &self.conf.conf.gateways[i])
    }

    /// The approved CA that issued `certificate` (signature checked), if any.
    pub fn issuer_of(&self, certificate: &CertificateInfo) -> Option<&TrustedCa> {
        let key = lienthong_crypto::HashAlgorithm::Sha256
            .digest(&certificate.der)
            .try_into()
            .ok()?;
        if let Some(&index) = self.verified_issuers.read().ok()?.get(&key) {
            return self.cas.get(index);
        }
        let index = self.cas.iter().position(|ca| {
            certificate
                .verify_signed_by(&ca.certificate.public_key)
                .is_ok()
        })?;
        if let Ok(mut verified) = self.verified_issuers.write() {
            if verified.len() >= ISSUER_CACHE_CAPACITY {
                verified.clear();
            }
            verified.insert(key, index);
        }
        self.cas.get(index)
    }

    /// Gateways that serve `provider` (directly or as its member), in configuration order.
    pub fn gateways_serving(&self, provider: &SubsystemId) -> Vec<&Gateway> {
        let subsystem = ClientId::Subsystem(provider.clone());
        let member = ClientId::Member(provider.member().clone());
        self.conf
            .conf
            .gateways
            .iter()
            .filter(|g| g.clients.contains(&subsystem) || g.clients.contains(&member))
            .collect()
    }

    /// Does gateway `server` serve `client`?
    pub fn serves(&self, server: &ServerId, client: &ClientId) -> bool {
        let member = ClientId::Member(client.member().clone());
        self.conf
            .conf
            .gateways
            .iter()
            .any(|g| &g.id == server && (g.clients.contains(client) || g.clients.contains(&member)))
    }

    /// Is `client` a registered member or subsystem?
    pub fn is_registered(&self, client: &ClientId) -> bool {
        self.conf.conf.members.iter().any(|m| match client {
            ClientId::Member(id) => &m.id == id,
            ClientId::Subsystem(s) => {
                &m.id == s.member() && m.subsystems.iter().any(|c| c == s.subsystem())
            }
        })
    }
}

/// The TLS server name under which a gateway is dialled: the registry, not DNS, says who
/// it is, so the name only has to identify the gateway to the certificate verifier.
pub fn tls_name(server: &ServerId) -> String {
    let digest = lienthong_crypto::HashAlgorithm::Sha256.digest(server.to_string().as_bytes());
    format!("{}.gw.lienthong.invalid", hex(&digest[..12]))
}

/// Lower-case hex. On the exchange path (message identifiers, the peer's TLS name), so
/// written without a `format!` per byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// The current trust view, shared by the TLS verifiers (which are synchronous) and the
/// data path. Replaced whenever a new configuration is adopted.
#[derive(Debug, Clone, Default)]
pub struct TrustCell(Arc<std::sync::RwLock<Option<Arc<TrustView>>>>);

impl TrustCell {
    /// The current view.
    pub fn get(&self) -> Option<Arc<TrustView>> {
        self.0.read().ok().and_then(|v| v.clone())
    }

    /// Install a new view.
    pub fn set(&self, view: TrustView) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(Arc::new(view));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(super::hex(&[]), "");
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
    }
}
