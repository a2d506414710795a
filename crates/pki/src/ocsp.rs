//! The OCSP responder (RFC 6960): parse a request, look up each certificate's state, and
//! sign a BasicOCSPResponse with the delegated OCSP-signing key.
//!
//! A request with no nonce gets a response that may be cached and served again until it is
//! refreshed (X-Road's responders work that way); a request with a nonce gets a fresh
//! response echoing it.

use crate::PkiError;
use crate::cert::CertificateInfo;
use const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE;
use der::asn1::{BitString, OctetString};
use der::{Decode, Encode};
use lienthong_crypto::{HashAlgorithm, Signer};
use spki::AlgorithmIdentifierOwned;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use x509_cert::certificate::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::CrlReason;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

/// Requests asking about more certificates than this are refused as malformed.
const MAX_CERTIFICATES_PER_REQUEST: usize = 32;

/// The reason a certificate was revoked (RFC 5280 CRLReason; names as OpenSSL prints them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// All reasons, for help texts.
    pub const ALL: [Self; 8] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
    ];

    /// The RFC 5280 name (`keyCompromise`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    /// Parse a name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(name))
    }

    pub(crate) fn to_crl_reason(self) -> CrlReason {
        match self {
            Self::Unspecified => CrlReason::Unspecified,
            Self::KeyCompromise => CrlReason::KeyCompromise,
            Self::CaCompromise => CrlReason::CaCompromise,
            Self::AffiliationChanged => CrlReason::AffiliationChanged,
            Self::Superseded => CrlReason::Superseded,
            Self::CessationOfOperation => CrlReason::CessationOfOperation,
            Self::CertificateHold => CrlReason::CertificateHold,
            Self::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        }
    }
}

/// What the CA's records say about one serial number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateState {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at `time` (Unix seconds) for `reason`.
    Revoked {
        time: i64,
        reason: Option<RevocationReason>,
    },
    /// Not issued by this CA (or the issuer in the request is not this CA).
    Unknown,
}

/// A signed OCSP response and how it may be reused.
#[derive(Debug, Clone)]
pub struct OcspReply {
    /// The DER `OCSPResponse`.
    pub der: Vec<u8>,
    /// True when the request had no nonce, so the same bytes may answer identical requests.
    pub cacheable: bool,
    /// The serials the response covers (hex), for cache invalidation.
    pub serials: Vec<Vec<u8>>,
    /// When the response expires (its nextUpdate).
    pub next_update: SystemTime,
}

/// Build a DER `OCSPRequest` for one certificate of `issuer` (what a gateway sends).
pub fn ocsp_request(
    issuer: &CertificateInfo,
    serial: &[u8],
    hash: HashAlgorithm,
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, PkiError> {
    let encoding = PkiError::encoding;
    let name_der = issuer
        .certificate
        .tbs_certificate
        .subject
        .to_der()
        .map_err(encoding("issuer name"))?;
    let cert_id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: hash.oid(),
            parameters: None,
        },
        issuer_name_hash: OctetString::new(hash.digest(&name_der))
            .map_err(encoding("name hash"))?,
        issuer_key_hash: OctetString::new(
            hash.digest(issuer.public_key.subject_public_key_bytes()),
        )
        .map_err(encoding("key hash"))?,
        serial_number: x509_cert::serial_number::SerialNumber::new(serial)
            .map_err(encoding("serial"))?,
    };
    let request_extensions = match nonce {
        Some(nonce) => Some(vec![Extension {
            extn_id: ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(
                OctetString::new(nonce)
                    .and_then(|n| n.to_der())
                    .map_err(encoding("nonce"))?,
            )
            .map_err(encoding("nonce"))?,
        }]),
        None => None,
    };
    OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![x509_ocsp::Request {
                req_cert: cert_id,
                single_request_extensions: None,
            }],
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(encoding("OCSP request"))
}

/// An OCSP responder for one CA.
#[derive(Debug, Clone)]
pub struct OcspResponder {
    issuer_name_der: Vec<u8>,
    issuer_key_bits: Vec<u8>,
    responder_certificate: Certificate,
    responder_key_hash: Vec<u8>,
    signer: Arc<dyn Signer>,
    validity: Duration,
}

impl OcspResponder {
    /// A responder for the CA `issuer`, signing with the delegated `signer` whose
    /// OCSP-signing certificate is `responder_certificate`. Responses are valid `validity`.
    pub fn new(
        issuer: &CertificateInfo,
        responder_certificate: &CertificateInfo,
        signer: Arc<dyn Signer>,
        validity: Duration,
    ) -> Result<Self, PkiError> {
        if responder_certificate.public_key != *signer.public_key() {
            return Err(PkiError::Certificate(
                "the OCSP signing key does not match its certificate".into(),
            ));
        }
        responder_certificate.verify_signed_by(&issuer.public_key)?;
        Ok(Self {
            issuer_name_der: issuer
                .certificate
                .tbs_certificate
                .subject
                .to_der()
                .map_err(PkiError::encoding("issuer name"))?,
            issuer_key_bits: issuer.public_key.subject_public_key_bytes().to_vec(),
            responder_key_hash: HashAlgorithm::Sha1
                .digest(responder_certificate.public_key.subject_public_key_bytes()),
            responder_certificate: responder_certificate.certificate.clone(),
            signer,
            validity,
        })
    }

    /// An `internalError` OCSPResponse, for when the caller cannot look up states.
    pub fn internal_error_response() -> Vec<u8> {
        OcspResponse::internal_error().to_der().unwrap_or_default()
    }

    /// How long responses are valid.
    pub fn validity(&self) -> Duration {
        self.validity
    }

    /// Answer a DER `OCSPRequest`. Never fails: a bad request gets the protocol's own
    /// `malformedRequest` status and an internal failure `internalError`.
    pub fn respond(
        &self,
        request_der: &[u8],
        now: SystemTime,
        state_of: impl Fn(&[u8]) -> CertificateState,
    ) -> OcspReply {
        match self.try_respond(request_der, now, state_of) {
            Ok(reply) => reply,
            Err(status) => OcspReply {
                der: status.to_der().unwrap_or_default(),
                cacheable: false,
                serials: Vec::new(),
                next_update: now,
            },
        }
    }

    fn try_respond(
        &self,
        request_der: &[u8],
        now: SystemTime,
        state_of: impl Fn(&[u8]) -> CertificateState,
    ) -> Result<OcspReply, OcspResponse> {
        let request =
            OcspRequest::from_der(request_der).map_err(|_| OcspResponse::malformed_request())?;
        let list = &request.tbs_request.request_list;
        if list.is_empty() || list.len() > MAX_CERTIFICATES_PER_REQUEST {
            return Err(OcspResponse::malformed_request());
        }
        let time = |t: SystemTime| {
            der::asn1::GeneralizedTime::from_system_time(t)
                .map(OcspGeneralizedTime)
                .map_err(|_| OcspResponse::internal_error())
        };
        let this_update = time(now)?;
        let next_update_at = now + self.validity;
        let next_update = time(next_update_at)?;
        let mut responses = Vec::with_capacity(list.len());
        let mut serials = Vec::with_capacity(list.len());
        for single in list {
            let cert_id = &single.req_cert;
            let serial = cert_id.serial_number.as_bytes();
            serials.push(serial.to_vec());
            let state = if self.is_our_issuer(cert_id) {
                state_of(serial)
            } else {
                CertificateState::Unknown
            };
            let cert_status = match state {
                CertificateState::Good => CertStatus::good(),
                CertificateState::Unknown => CertStatus::unknown(),
                CertificateState::Revoked { time: at, reason } => {
                    let at = SystemTime::UNIX_EPOCH
                        + Duration::from_secs(u64::try_from(at).unwrap_or(0));
                    CertStatus::revoked(RevokedInfo {
                        revocation_time: time(at)?,
                        revocation_reason: reason.map(RevocationReason::to_crl_reason),
                    })
                }
            };
            responses.push(SingleResponse {
                cert_id: cert_id.clone(),
                cert_status,
                this_update,
                next_update: Some(next_update),
                single_extensions: None,
            });
        }
        let nonce: Option<Extension> = request
            .tbs_request
            .request_extensions
            .as_ref()
            .and_then(|extensions| extensions.iter().find(|e| e.extn_id == ID_PKIX_OCSP_NONCE))
            .cloned();
        let cacheable = nonce.is_none();
        let tbs = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(
                OctetString::new(self.responder_key_hash.clone())
                    .map_err(|_| OcspResponse::internal_error())?,
            ),
            produced_at: this_update,
            responses,
            response_extensions: nonce.map(|n| vec![n]),
        };
        let der = self.sign(tbs).map_err(|_| OcspResponse::internal_error())?;
        Ok(OcspReply {
            der,
            cacheable,
            serials,
            next_update: next_update_at,
        })
    }

    /// The serial numbers a DER `OCSPRequest` asks about (so that a caller can look them up
    /// before calling [`OcspResponder::respond`]), or `None` if the request is malformed.
    pub fn requested_serials(request_der: &[u8]) -> Option<Vec<Vec<u8>>> {
        let request = OcspRequest::from_der(request_der).ok()?;
        let list = &request.tbs_request.request_list;
        (!list.is_empty() && list.len() <= MAX_CERTIFICATES_PER_REQUEST).then(|| {
            list.iter()
                .map(|r| r.req_cert.serial_number.as_bytes().to_vec())
                .collect()
        })
    }

    fn is_our_issuer(&self, cert_id: &CertId) -> bool {
        let Some(hash) = HashAlgorithm::from_oid(&cert_id.hash_algorithm.oid) else {
            return false;
        };
        // SHA-1 is acceptable here: it only identifies the issuer, as RFC 6960 specifies.
        cert_id.issuer_name_hash.as_bytes() == hash.digest(&self.issuer_name_der).as_slice()
            && cert_id.issuer_key_hash.as_bytes() == hash.digest(&self.issuer_key_bits).as_slice()
    }

    fn sign(&self, tbs: ResponseData) -> Result<Vec<u8>, PkiError> {
        let tbs_der = tbs
            .to_der()
            .map_err(PkiError::encoding("OCSP response data"))?;
        let signature = self.signer.sign(&tbs_der)?;
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: AlgorithmIdentifierOwned::from_der(
                self.signer.suite().algorithm_identifier_der(),
            )
            .map_err(PkiError::encoding("signature algorithm"))?,
            signature: BitString::from_bytes(&signature.bytes)
                .map_err(PkiError::encoding("signature"))?,
            certs: Some(vec![self.responder_certificate.clone()]),
        };
        OcspResponse::successful(basic)
            .and_then(|r| r.to_der())
            .map_err(PkiError::encoding("OCSP response"))
    }
}
