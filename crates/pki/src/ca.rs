//! The certificate authority: a root certificate and its key, issuing certificates by profile.

use crate::PkiError;
use crate::cert::{
    CertificateInfo, CertificateTemplate, IssuerRef, Profile, build, key_identifier,
};
use crate::der_util::hex;
use crate::name::{FederationIdentity, service_name};
use lienthong_crypto::{CryptoPolicy, PublicKey, Signer};
use std::sync::Arc;
use std::time::SystemTime;

/// A certificate serial number: 16 random bytes (126 bits of entropy; positive and always 16 octets long).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// A fresh random serial (RFC 5280: positive, at most 20 octets; CA/B: >= 64 random bits).
    pub fn random() -> Result<Self, PkiError> {
        let mut bytes = vec![0u8; 16];
        lienthong_crypto::fill_random(&mut bytes)?;
        bytes[0] = (bytes[0] & 0x7f) | 0x01 << 6; // positive, and exactly 16 octets long
        Ok(Self(bytes))
    }

    /// A serial from unsigned big-endian bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    /// The unsigned big-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lower-case hex, as stored and printed.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

/// What to certify.
#[derive(Debug, Clone)]
pub struct IssueRequest<'a> {
    /// The profile: fixes key usage and extensions.
    pub profile: Profile,
    /// The subject: a federation identity for `auth`/`sign`, a service name otherwise.
    pub identity: Option<FederationIdentity>,
    /// Common name for service certificates (OCSP responder, TSA).
    pub common_name: &'a str,
    /// The key to certify (already checked for proof of possession).
    pub public_key: &'a PublicKey,
    /// The serial number (unique; the caller's store enforces it).
    pub serial: &'a Serial,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// OCSP responder URL put into the AuthorityInfoAccess extension.
    pub ocsp_url: Option<&'a str>,
}

/// A certificate authority: its certificate, its key and the policy it enforces.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    certificate: CertificateInfo,
    signer: Arc<dyn Signer>,
    key_id: Vec<u8>,
    organisation: String,
    policy: CryptoPolicy,
}

impl CertificateAuthority {
    /// Create a self-signed root CA certificate for `signer`'s key.
    pub fn create_root(
        signer: Arc<dyn Signer>,
        organisation: &str,
        common_name: &str,
        serial: &Serial,
        not_before: SystemTime,
        not_after: SystemTime,
        policy: CryptoPolicy,
    ) -> Result<Self, PkiError> {
        policy.check_suite(signer.suite())?;
        policy.check_key(signer.public_key())?;
        let name = service_name(organisation, common_name)?;
        let key_id = key_identifier(signer.public_key());
        let der = build(
            &CertificateTemplate {
                profile: Profile::RootCa,
                subject: name.clone(),
                public_key: signer.public_key(),
                serial: serial.as_bytes(),
                not_before,
                not_after,
                ocsp_url: None,
            },
            &IssuerRef {
                name: &name,
                key_identifier: &key_id,
                signer: signer.as_ref(),
            },
        )?;
        Self::new(&der, signer, organisation, policy)
    }

    /// A CA from its certificate and key; refuses a key that does not match the certificate.
    pub fn new(
        certificate_der: &[u8],
        signer: Arc<dyn Signer>,
        organisation: &str,
        policy: CryptoPolicy,
    ) -> Result<Self, PkiError> {
        let certificate = CertificateInfo::from_der(certificate_der)?;
        if certificate.public_key != *signer.public_key() {
            return Err(PkiError::Certificate(
                "the CA key does not match the CA certificate".into(),
            ));
        }
        Ok(Self {
            key_id: key_identifier(&certificate.public_key),
            certificate,
            signer,
            organisation: organisation.to_owned(),
            policy,
        })
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &CertificateInfo {
        &self.certificate
    }

    /// The policy this CA enforces.
    pub fn policy(&self) -> &CryptoPolicy {
        &self.policy
    }

    /// Issue a certificate. The subject comes from `request.identity` (never from a CSR).
    pub fn issue(&self, request: &IssueRequest<'_>) -> Result<CertificateInfo, PkiError> {
        self.policy.check_key(request.public_key)?;
        let subject = match (request.profile, &request.identity) {
            (Profile::Auth, Some(identity @ FederationIdentity::Server(_)))
            | (Profile::Sign, Some(identity @ FederationIdentity::Member(_))) => {
                identity.subject()?
            }
            (Profile::Auth, _) => {
                return Err(PkiError::Certificate(
                    "an auth certificate needs a server identifier INSTANCE/CLASS/CODE/SERVERCODE"
                        .into(),
                ));
            }
            (Profile::Sign, _) => {
                return Err(PkiError::Certificate(
                    "a sign certificate needs a member identifier INSTANCE/CLASS/CODE".into(),
                ));
            }
            (Profile::RootCa, _) => {
                return Err(PkiError::Certificate(
                    "a root CA is created, not issued".into(),
                ));
            }
            (Profile::OcspSigning | Profile::TimeStamping, _) => {
                service_name(&self.organisation, request.common_name)?
            }
        };
        let ca_validity_end = self.certificate.not_after;
        if crate::der_util::unix_seconds(request.not_after) > ca_validity_end {
            return Err(PkiError::Validity(
                "a certificate may not outlive the CA certificate".into(),
            ));
        }
        let der = build(
            &CertificateTemplate {
                profile: request.profile,
                subject,
                public_key: request.public_key,
                serial: request.serial.as_bytes(),
                not_before: request.not_before,
                not_after: request.not_after,
                ocsp_url: request.ocsp_url,
            },
            &IssuerRef {
                name: &self.certificate.certificate.tbs_certificate.subject,
                key_identifier: &self.key_id,
                signer: self.signer.as_ref(),
            },
        )?;
        CertificateInfo::from_der(&der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lienthong_crypto::{SoftwareKey, Suite};
    use std::time::Duration;

    pub(crate) fn test_ca() -> CertificateAuthority {
        let (key, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256).expect("key");
        let now = SystemTime::now();
        CertificateAuthority::create_root(
            Arc::new(key),
            "Test Federation",
            "Test Root CA",
            &Serial::random().expect("serial"),
            now - Duration::from_secs(60),
            now + Duration::from_secs(86400 * 365),
            CryptoPolicy::vn(),
        )
        .expect("root")
    }

    #[test]
    fn root_is_self_signed_and_issues_both_profiles() {
        let ca = test_ca();
        let root_key = ca.certificate().public_key.clone();
        ca.certificate()
            .verify_signed_by(&root_key)
            .expect("self-signed");
        let now = SystemTime::now();
        for (profile, id) in [
            (Profile::Sign, "VN/GOV/123"),
            (Profile::Auth, "VN/GOV/123/gw1"),
        ] {
            let (key, _) = SoftwareKey::generate(Suite::RsaPssSha256).expect("key");
            let identity = if profile == Profile::Sign {
                FederationIdentity::Member(id.parse().expect("id"))
            } else {
                FederationIdentity::Server(id.parse().expect("id"))
            };
            let issued = ca
                .issue(&IssueRequest {
                    profile,
                    identity: Some(identity.clone()),
                    common_name: "",
                    public_key: lienthong_crypto::Signer::public_key(&key),
                    serial: &Serial::random().expect("serial"),
                    not_before: now,
                    not_after: now + Duration::from_secs(3600),
                    ocsp_url: Some("http://127.0.0.1:1/ocsp"),
                })
                .expect("issue");
            issued.verify_signed_by(&root_key).expect("signed by root");
            assert_eq!(issued.identity, Some(identity));
            assert_eq!(issued.serial.len(), 16);
        }
    }

    #[test]
    fn refuses_wrong_identity_kind_and_overlong_validity() {
        let ca = test_ca();
        let (key, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256).expect("key");
        let now = SystemTime::now();
        let mut request = IssueRequest {
            profile: Profile::Auth,
            identity: Some(FederationIdentity::Member("VN/GOV/1".parse().expect("id"))),
            common_name: "",
            public_key: lienthong_crypto::Signer::public_key(&key),
            serial: &Serial::random().expect("serial"),
            not_before: now,
            not_after: now + Duration::from_secs(60),
            ocsp_url: None,
        };
        assert!(ca.issue(&request).is_err());
        request.profile = Profile::Sign;
        request.not_after = now + Duration::from_secs(86400 * 800);
        assert!(matches!(ca.issue(&request), Err(PkiError::Validity(_))));
    }
}
