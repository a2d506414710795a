//! Certificate profiles, building and signing certificates, and reading them back.

use crate::PkiError;
use crate::der_util::{first_inner_element, hex, unix_seconds};
use crate::name::FederationIdentity;
use const_oid::AssociatedOid;
use const_oid::db::rfc5280::{
    ID_AD_OCSP, ID_KP_CLIENT_AUTH, ID_KP_OCSP_SIGNING, ID_KP_SERVER_AUTH, ID_KP_TIME_STAMPING,
};
use der::asn1::{BitString, Ia5String, Null, OctetString};
use der::{Decode, Encode};
use lienthong_crypto::{HashAlgorithm, PublicKey, Signer, X509SignatureAlgorithm};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use std::time::SystemTime;
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

/// id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1).
const ID_PKIX_OCSP_NOCHECK: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");

/// What a certificate is for; fixes its key usage, extended key usage and constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// The federation root: keyCertSign and cRLSign, CA with no path length limit.
    RootCa,
    /// A gateway's TLS key: digitalSignature; serverAuth and clientAuth.
    Auth,
    /// A member's signing key: digitalSignature and nonRepudiation; no EKU.
    Sign,
    /// The delegated OCSP responder: digitalSignature; OCSPSigning; ocsp-nocheck.
    OcspSigning,
    /// The timestamp authority: digitalSignature; timeStamping as the only, critical EKU.
    TimeStamping,
}

impl Profile {
    /// The profile's name in commands and the store.
    pub fn name(self) -> &'static str {
        match self {
            Self::RootCa => "root-ca",
            Self::Auth => "auth",
            Self::Sign => "sign",
            Self::OcspSigning => "ocsp",
            Self::TimeStamping => "tsa",
        }
    }

    /// The profile with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::RootCa,
            Self::Auth,
            Self::Sign,
            Self::OcspSigning,
            Self::TimeStamping,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }

    fn key_usage(self) -> KeyUsage {
        KeyUsage(match self {
            Self::RootCa => KeyUsages::KeyCertSign | KeyUsages::CRLSign,
            Self::Sign => KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
            Self::Auth | Self::OcspSigning | Self::TimeStamping => {
                KeyUsages::DigitalSignature.into()
            }
        })
    }

    /// The extended key usages and whether the extension is critical.
    fn extended_key_usage(self) -> Option<(Vec<const_oid::ObjectIdentifier>, bool)> {
        match self {
            Self::RootCa | Self::Sign => None,
            Self::Auth => Some((vec![ID_KP_SERVER_AUTH, ID_KP_CLIENT_AUTH], false)),
            Self::OcspSigning => Some((vec![ID_KP_OCSP_SIGNING], false)),
            // RFC 3161 2.3: exactly one EKU, id-kp-timeStamping, marked critical.
            Self::TimeStamping => Some((vec![ID_KP_TIME_STAMPING], true)),
        }
    }
}

/// Everything needed to produce one certificate, already validated by the caller.
pub(crate) struct CertificateTemplate<'a> {
    pub(crate) profile: Profile,
    pub(crate) subject: Name,
    pub(crate) public_key: &'a PublicKey,
    pub(crate) serial: &'a [u8],
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    pub(crate) ocsp_url: Option<&'a str>,
}

/// The signing side of an issuance: the issuer's name, key identifier and key.
pub(crate) struct IssuerRef<'a> {
    pub(crate) name: &'a Name,
    pub(crate) key_identifier: &'a [u8],
    pub(crate) signer: &'a dyn Signer,
}

/// Key identifier per RFC 7093 method 1: leftmost 160 bits of SHA-256 of the key bits.
pub(crate) fn key_identifier(public_key: &PublicKey) -> Vec<u8> {
    let mut digest = HashAlgorithm::Sha256.digest(public_key.subject_public_key_bytes());
    digest.truncate(20);
    digest
}

/// Build, sign and DER-encode a certificate.
pub(crate) fn build(
    template: &CertificateTemplate<'_>,
    issuer: &IssuerRef<'_>,
) -> Result<Vec<u8>, PkiError> {
    if template.not_after <= template.not_before {
        return Err(PkiError::Validity(
            "notAfter must be later than notBefore".into(),
        ));
    }
    let time = |t: SystemTime| {
        Time::try_from(t).map_err(|e| PkiError::Validity(format!("time out of range: {e}")))
    };
    let signature_algorithm =
        AlgorithmIdentifierOwned::from_der(issuer.signer.suite().algorithm_identifier_der())
            .map_err(PkiError::encoding("signature algorithm"))?;
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(template.serial).map_err(PkiError::encoding("serial"))?,
        signature: signature_algorithm.clone(),
        issuer: issuer.name.clone(),
        validity: Validity {
            not_before: time(template.not_before)?,
            not_after: time(template.not_after)?,
        },
        subject: template.subject.clone(),
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(
            template.public_key.spki_der(),
        )
        .map_err(PkiError::encoding("public key"))?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions(template, issuer)?),
    };
    let tbs_der = tbs.to_der().map_err(PkiError::encoding("certificate"))?;
    let signature = issuer.signer.sign(&tbs_der)?;
    let certificate = Certificate {
        tbs_certificate: tbs,
        signature_algorithm,
        signature: BitString::from_bytes(&signature.bytes)
            .map_err(PkiError::encoding("signature"))?,
    };
    certificate
        .to_der()
        .map_err(PkiError::encoding("certificate"))
}

fn extensions(
    template: &CertificateTemplate<'_>,
    issuer: &IssuerRef<'_>,
) -> Result<Vec<Extension>, PkiError> {
    let profile = template.profile;
    let mut out = Vec::with_capacity(7);
    let is_ca = profile == Profile::RootCa;
    out.push(extension(
        &BasicConstraints {
            ca: is_ca,
            path_len_constraint: None,
        },
        true,
    )?);
    out.push(extension(&profile.key_usage(), true)?);
    if let Some((purposes, critical)) = profile.extended_key_usage() {
        out.push(extension(&ExtendedKeyUsage(purposes), critical)?);
    }
    let subject_key_id = key_identifier(template.public_key);
    out.push(extension(
        &SubjectKeyIdentifier(
            OctetString::new(subject_key_id).map_err(PkiError::encoding("key id"))?,
        ),
        false,
    )?);
    out.push(extension(
        &AuthorityKeyIdentifier {
            key_identifier: Some(
                OctetString::new(issuer.key_identifier).map_err(PkiError::encoding("key id"))?,
            ),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
        false,
    )?);
    if profile == Profile::OcspSigning {
        out.push(Extension {
            extn_id: ID_PKIX_OCSP_NOCHECK,
            critical: false,
            extn_value: OctetString::new(Null.to_der().map_err(PkiError::encoding("nocheck"))?)
                .map_err(PkiError::encoding("nocheck"))?,
        });
    } else if let (Some(url), false) = (template.ocsp_url, is_ca) {
        let location = Ia5String::new(url)
            .map_err(|_| PkiError::Validity(format!("OCSP URL {url:?} is not ASCII")))?;
        out.push(extension(
            &AuthorityInfoAccessSyntax(vec![AccessDescription {
                access_method: ID_AD_OCSP,
                access_location: GeneralName::UniformResourceIdentifier(location),
            }]),
            false,
        )?);
    }
    Ok(out)
}

fn extension<T: AssociatedOid + Encode>(value: &T, critical: bool) -> Result<Extension, PkiError> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(PkiError::encoding("extension"))?)
            .map_err(PkiError::encoding("extension"))?,
    })
}

/// The facts about a certificate that the platform uses, parsed once.
#[derive(Debug, Clone)]
pub struct CertificateInfo {
    /// The DER encoding.
    pub der: Vec<u8>,
    /// The parsed certificate.
    pub certificate: Certificate,
    /// Serial number, unsigned big-endian bytes.
    pub serial: Vec<u8>,
    /// The subject public key.
    pub public_key: PublicKey,
    /// The federation identity in the subject, if any.
    pub identity: Option<FederationIdentity>,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
}

impl CertificateInfo {
    /// Parse a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        let certificate = Certificate::from_der(der)
            .map_err(|e| PkiError::Certificate(format!("not a DER certificate: {e}")))?;
        let tbs = &certificate.tbs_certificate;
        let spki = tbs
            .subject_public_key_info
            .to_der()
            .map_err(PkiError::encoding("public key"))?;
        Ok(Self {
            der: der.to_vec(),
            serial: tbs.serial_number.as_bytes().to_vec(),
            public_key: PublicKey::from_spki_der(&spki)?,
            identity: FederationIdentity::from_name(&tbs.subject),
            not_before: unix_seconds(tbs.validity.not_before.to_system_time()),
            not_after: unix_seconds(tbs.validity.not_after.to_system_time()),
            certificate,
        })
    }

    /// The serial number in lower-case hex.
    pub fn serial_hex(&self) -> String {
        hex(&self.serial)
    }

    /// The subject as an RFC 4514 string.
    pub fn subject(&self) -> String {
        self.certificate.tbs_certificate.subject.to_string()
    }

    /// SHA-256 of the DER certificate (the "certificate hash" the registry lists).
    pub fn sha256(&self) -> Vec<u8> {
        HashAlgorithm::Sha256.digest(&self.der)
    }

    /// Check that `issuer_key` signed this certificate.
    pub fn verify_signed_by(&self, issuer_key: &PublicKey) -> Result<(), PkiError> {
        let algorithm_der = self
            .certificate
            .signature_algorithm
            .to_der()
            .map_err(PkiError::encoding("signature algorithm"))?;
        let algorithm = X509SignatureAlgorithm::from_algorithm_identifier_der(&algorithm_der)?;
        let tbs = first_inner_element(&self.der)
            .map_err(|e| PkiError::Certificate(format!("cannot find the signed part: {e}")))?;
        let signature = self
            .certificate
            .signature
            .as_bytes()
            .ok_or_else(|| PkiError::Certificate("signature is not whole bytes".into()))?;
        issuer_key.verify_x509(algorithm, tbs, signature)?;
        Ok(())
    }
}

/// Parse one PEM `CERTIFICATE` (or raw DER) into its DER bytes.
pub fn parse_certificate_pem(input: &[u8]) -> Result<Vec<u8>, PkiError> {
    if input.first() == Some(&0x30) {
        return Ok(input.to_vec());
    }
    let (label, der) = der::pem::decode_vec(input)
        .map_err(|e| PkiError::Certificate(format!("not a PEM certificate: {e}")))?;
    if label != "CERTIFICATE" {
        return Err(PkiError::Certificate(format!(
            "expected a CERTIFICATE, found {label}"
        )));
    }
    Ok(der)
}

/// PEM-encode a DER certificate.
pub fn pem_encode_certificate(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap_or_default()
}
