//! The timestamp authority (RFC 3161): parse a `TimeStampReq`, and grant a token — a CMS
//! SignedData over a TSTInfo, with the ESSCertIDv2 of the TSA certificate in the signed
//! attributes (RFC 5816) — or reject with the protocol's own failure code.

use crate::PkiError;
use crate::cert::CertificateInfo;
use crate::der_util::positive_int;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, BitString, GeneralizedTime, Int, OctetString, SetOfVec};
use der::{Decode, Encode, Sequence, Tag};
use lienthong_crypto::{HashAlgorithm, Signer, Suite};
use spki::AlgorithmIdentifierOwned;
use std::sync::Arc;
use std::time::SystemTime;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_tsp::{Accuracy, MessageImprint, TimeStampReq, TspVersion, TstInfo};

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");

/// Why a request was rejected; each maps to an RFC 3161 PKIFailureInfo bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TsaRejection {
    /// The hash algorithm is not SHA-256, SHA-384 or SHA-512.
    #[error("unrecognized or unsupported hash algorithm")]
    BadAlg,
    /// The request is not a well-formed TimeStampReq.
    #[error("transaction not permitted or supported: malformed request")]
    BadRequest,
    /// The message imprint has the wrong length for its algorithm.
    #[error("the data submitted has the wrong format")]
    BadDataFormat,
    /// The requested policy is not this TSA's.
    #[error("the requested TSA policy is not supported by the TSA")]
    UnacceptedPolicy,
    /// The request carries extensions this TSA does not support.
    #[error("the requested extension is not supported by the TSA")]
    UnacceptedExtension,
    /// The TSA could not produce a token (signing or serial allocation failed).
    #[error("the request cannot be handled due to system failure")]
    SystemFailure,
}

impl TsaRejection {
    /// The PKIFailureInfo bit number.
    fn bit(self) -> usize {
        match self {
            Self::BadAlg => 0,
            Self::BadRequest => 2,
            Self::BadDataFormat => 5,
            Self::UnacceptedPolicy => 15,
            Self::UnacceptedExtension => 16,
            Self::SystemFailure => 25,
        }
    }

    /// The DER `TimeStampResp` carrying this rejection.
    pub fn to_response_der(self) -> Vec<u8> {
        let bit = self.bit();
        let mut bytes = vec![0u8; bit / 8 + 1];
        bytes[bit / 8] = 0x80 >> (bit % 8);
        // The bit number fits in u8; unused trailing bits are 7 - bit % 8.
        let unused = u8::try_from(7 - bit % 8).unwrap_or(0);
        let response = TimeStampResp {
            status: PkiStatusInfo {
                status: 2, // rejection
                status_string: Some(vec![self.to_string()]),
                fail_info: BitString::new(unused, bytes).ok(),
            },
            time_stamp_token: None,
        };
        response.to_der().unwrap_or_default()
    }
}

/// `TimeStampResp` with the PKIStatusInfo encoded here rather than through `cmpv2`, so
/// that the failure bits are exactly those RFC 3161 names.
#[derive(Debug, Clone, Sequence)]
struct TimeStampResp {
    status: PkiStatusInfo,
    #[asn1(optional = "true")]
    time_stamp_token: Option<ContentInfo>,
}

#[derive(Debug, Clone, Sequence)]
struct PkiStatusInfo {
    status: u8,
    #[asn1(optional = "true")]
    status_string: Option<Vec<String>>,
    #[asn1(optional = "true")]
    fail_info: Option<BitString>,
}

/// ESSCertIDv2 (RFC 5035) with the default hash (SHA-256) left out, as DER requires.
#[derive(Debug, Clone, Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
    issuer_serial: IssuerSerial,
}

#[derive(Debug, Clone, Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

#[derive(Debug, Clone, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

/// A DER `TimeStampReq` for `digest` (what a gateway sends to the TSA to timestamp a
/// tree head), asking for the TSA certificate in the token when `cert_req`.
pub fn timestamp_request_der(
    hash: HashAlgorithm,
    digest: &[u8],
    nonce: Option<&[u8]>,
    cert_req: bool,
) -> Result<Vec<u8>, PkiError> {
    let request = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: spki::AlgorithmIdentifier {
                oid: hash.oid(),
                parameters: None,
            },
            hashed_message: OctetString::new(digest).map_err(PkiError::encoding("digest"))?,
        },
        req_policy: None,
        nonce: nonce
            .map(positive_int)
            .transpose()
            .map_err(PkiError::encoding("nonce"))?,
        cert_req,
        extensions: None,
    };
    request.to_der().map_err(PkiError::encoding("TimeStampReq"))
}

/// A parsed, acceptable timestamp request.
#[derive(Debug, Clone)]
pub struct TimestampRequest {
    imprint: MessageImprint,
    nonce: Option<Int>,
    cert_req: bool,
}

impl TimestampRequest {
    /// A request to timestamp a digest the caller computed itself (batch timestamping).
    pub fn for_digest(
        hash: HashAlgorithm,
        digest: &[u8],
        cert_req: bool,
    ) -> Result<Self, PkiError> {
        Ok(Self {
            imprint: MessageImprint {
                hash_algorithm: spki::AlgorithmIdentifier {
                    oid: hash.oid(),
                    parameters: None,
                },
                hashed_message: OctetString::new(digest).map_err(PkiError::encoding("digest"))?,
            },
            nonce: None,
            cert_req,
        })
    }
}

/// The outcome of one request.
#[derive(Debug, Clone)]
pub struct TimeStampReply {
    /// The DER `TimeStampResp`.
    pub der: Vec<u8>,
    /// The serial number of the token, when one was granted.
    pub serial: Option<u64>,
}

/// A timestamp authority: its certificate, its key and its policy.
#[derive(Debug, Clone)]
pub struct TimeStampAuthority {
    certificate: CertificateInfo,
    signer: Arc<dyn Signer>,
    policy: ObjectIdentifier,
    ess_cert_id: Vec<u8>,
}

impl TimeStampAuthority {
    /// A TSA signing with `signer` under `certificate` and the policy OID `policy`.
    pub fn new(
        certificate: &CertificateInfo,
        signer: Arc<dyn Signer>,
        policy: &str,
    ) -> Result<Self, PkiError> {
        if certificate.public_key != *signer.public_key() {
            return Err(PkiError::Certificate(
                "the TSA key does not match its certificate".into(),
            ));
        }
        let policy = ObjectIdentifier::new(policy).map_err(|e| {
            PkiError::Certificate(format!("TSA policy {policy:?} is not an OID: {e}"))
        })?;
        let tbs = &certificate.certificate.tbs_certificate;
        let signing_certificate = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                cert_hash: OctetString::new(certificate.sha256())
                    .map_err(PkiError::encoding("ESS"))?,
                issuer_serial: IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(tbs.issuer.clone())],
                    serial_number: tbs.serial_number.clone(),
                },
            }],
        };
        Ok(Self {
            ess_cert_id: signing_certificate
                .to_der()
                .map_err(PkiError::encoding("ESS"))?,
            certificate: certificate.clone(),
            signer,
            policy,
        })
    }

    /// The TSA certificate.
    pub fn certificate(&self) -> &CertificateInfo {
        &self.certificate
    }

    /// Parse and check a DER `TimeStampReq`.
    pub fn parse_request(&self, der: &[u8]) -> Result<TimestampRequest, TsaRejection> {
        let request = TimeStampReq::from_der(der).map_err(|_| TsaRejection::BadRequest)?;
        if request.version != TspVersion::V1 {
            return Err(TsaRejection::BadRequest);
        }
        let hash = HashAlgorithm::from_oid(&request.message_imprint.hash_algorithm.oid)
            .filter(|h| {
                matches!(
                    h,
                    HashAlgorithm::Sha256 | HashAlgorithm::Sha384 | HashAlgorithm::Sha512
                )
            })
            .ok_or(TsaRejection::BadAlg)?;
        if request.message_imprint.hashed_message.as_bytes().len() != hash.output_len() {
            return Err(TsaRejection::BadDataFormat);
        }
        if request.req_policy.is_some_and(|p| p != self.policy) {
            return Err(TsaRejection::UnacceptedPolicy);
        }
        if request.extensions.is_some_and(|e| !e.is_empty()) {
            return Err(TsaRejection::UnacceptedExtension);
        }
        Ok(TimestampRequest {
            imprint: request.message_imprint,
            nonce: request.nonce,
            cert_req: request.cert_req,
        })
    }

    /// Answer a DER request: parse it, take a serial from `next_serial` only for an
    /// acceptable request, and grant a token; any failure becomes a rejection response.
    pub fn respond(
        &self,
        der: &[u8],
        now: SystemTime,
        next_serial: impl FnOnce() -> Option<u64>,
    ) -> TimeStampReply {
        let rejected = |r: TsaRejection| TimeStampReply {
            der: r.to_response_der(),
            serial: None,
        };
        let request = match self.parse_request(der) {
            Ok(request) => request,
            Err(rejection) => return rejected(rejection),
        };
        let Some(serial) = next_serial() else {
            return rejected(TsaRejection::SystemFailure);
        };
        match self.grant(&request, serial, now) {
            Ok(der) => TimeStampReply {
                der,
                serial: Some(serial),
            },
            Err(_) => rejected(TsaRejection::SystemFailure),
        }
    }

    /// Grant a token for an accepted request: the DER `TimeStampResp` with status granted.
    pub fn grant(
        &self,
        request: &TimestampRequest,
        serial: u64,
        now: SystemTime,
    ) -> Result<Vec<u8>, PkiError> {
        let token = self.token(request, serial, now)?;
        TimeStampResp {
            status: PkiStatusInfo {
                status: 0, // granted
                status_string: None,
                fail_info: None,
            },
            time_stamp_token: Some(token),
        }
        .to_der()
        .map_err(PkiError::encoding("TimeStampResp"))
    }

    /// The token alone (a CMS `ContentInfo`), DER-encoded.
    pub fn token_der(
        &self,
        request: &TimestampRequest,
        serial: u64,
        now: SystemTime,
    ) -> Result<Vec<u8>, PkiError> {
        self.token(request, serial, now)?
            .to_der()
            .map_err(PkiError::encoding("token"))
    }

    fn token(
        &self,
        request: &TimestampRequest,
        serial: u64,
        now: SystemTime,
    ) -> Result<ContentInfo, PkiError> {
        let encoding = PkiError::encoding;
        let tst_info = TstInfo {
            version: TspVersion::V1,
            policy: self.policy,
            message_imprint: request.imprint.clone(),
            serial_number: positive_int(&serial.to_be_bytes()).map_err(encoding("serial"))?,
            gen_time: GeneralizedTime::from_system_time(now).map_err(encoding("genTime"))?,
            accuracy: Some(Accuracy {
                seconds: Some(1),
                millis: None,
                micros: None,
            }),
            ordering: false,
            nonce: request.nonce.clone(),
            tsa: None,
            extensions: None,
        };
        let tst_der = tst_info.to_der().map_err(encoding("TSTInfo"))?;
        let suite = self.signer.suite();
        let digest_algorithm = digest_algorithm_for(suite);
        let attribute = |oid, value: Any| -> Result<Attribute, PkiError> {
            Ok(Attribute {
                oid,
                values: SetOfVec::try_from(vec![value]).map_err(encoding("attribute"))?,
            })
        };
        let signed_attributes = SetOfVec::try_from(vec![
            attribute(
                ID_CONTENT_TYPE,
                Any::encode_from(&ID_CT_TST_INFO).map_err(encoding("contentType"))?,
            )?,
            attribute(
                ID_MESSAGE_DIGEST,
                Any::new(Tag::OctetString, digest_algorithm.digest(&tst_der))
                    .map_err(encoding("messageDigest"))?,
            )?,
            attribute(
                ID_SIGNING_CERTIFICATE_V2,
                Any::from_der(&self.ess_cert_id).map_err(encoding("signingCertificateV2"))?,
            )?,
        ])
        .map_err(encoding("signed attributes"))?;
        // The signature covers the DER of the attributes as a SET OF (RFC 5652 5.4).
        let signature = self.signer.sign(
            &signed_attributes
                .to_der()
                .map_err(encoding("signed attributes"))?,
        )?;
        let tbs = &self.certificate.certificate.tbs_certificate;
        let digest_algorithm_id = AlgorithmIdentifierOwned {
            oid: digest_algorithm.oid(),
            parameters: None,
        };
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: tbs.issuer.clone(),
                serial_number: tbs.serial_number.clone(),
            }),
            digest_alg: digest_algorithm_id.clone(),
            signed_attrs: Some(signed_attributes),
            signature_algorithm: AlgorithmIdentifierOwned::from_der(
                suite.algorithm_identifier_der(),
            )
            .map_err(encoding("signature algorithm"))?,
            signature: OctetString::new(signature.bytes).map_err(encoding("signature"))?,
            unsigned_attrs: None,
        };
        let certificates = if request.cert_req {
            Some(CertificateSet(
                SetOfVec::try_from(vec![CertificateChoices::Certificate(
                    self.certificate.certificate.clone(),
                )])
                .map_err(encoding("certificates"))?,
            ))
        } else {
            None
        };
        let signed_data = SignedData {
            version: CmsVersion::V3,
            digest_algorithms: SetOfVec::try_from(vec![digest_algorithm_id])
                .map_err(encoding("digest algorithms"))?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: ID_CT_TST_INFO,
                econtent: Some(Any::new(Tag::OctetString, tst_der).map_err(encoding("eContent"))?),
            },
            certificates,
            crls: None,
            signer_infos: SignerInfos(
                SetOfVec::try_from(vec![signer_info]).map_err(encoding("signer infos"))?,
            ),
        };
        Ok(ContentInfo {
            content_type: ID_SIGNED_DATA,
            content: Any::encode_from(&signed_data).map_err(encoding("SignedData"))?,
        })
    }
}

/// The digest algorithm CMS pairs with each suite (RFC 5754, RFC 8419 for Ed25519).
fn digest_algorithm_for(suite: Suite) -> HashAlgorithm {
    match suite {
        Suite::Ed25519 => HashAlgorithm::Sha512,
        other => other.hash(),
    }
}
