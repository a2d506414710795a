//! Checking an RFC 3161 timestamp token as a relying party: the token (or the whole
//! `TimeStampResp`) is a CMS SignedData over a TSTInfo, signed by a TSA certificate that
//! our trusted issuer certified for timestamping and that the signed attributes name.

use crate::PkiError;
use crate::cert::CertificateInfo;
use crate::der_util::unix_seconds;
use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{SignedData, SignerIdentifier};
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280::{ID_CE_EXT_KEY_USAGE, ID_KP_TIME_STAMPING};
use der::asn1::{AnyRef, BitString, OctetString};
use der::{Decode, Encode, Reader, Sequence, SliceReader, Tag, Tagged};
use lienthong_crypto::{HashAlgorithm, X509SignatureAlgorithm};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_tsp::{TspVersion, TstInfo};

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// rsaEncryption: OpenSSL's CMS names PKCS #1 v1.5 signatures by the key type alone, the
/// hash being the SignerInfo's digest algorithm (RFC 3370 3.2).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// What a verified timestamp token states.
#[derive(Debug, Clone)]
pub struct VerifiedTimestamp {
    /// genTime, Unix seconds.
    pub gen_time_unix: i64,
    /// The token's serial number, unsigned big-endian bytes without leading zeros.
    pub serial: Vec<u8>,
    /// The TSA policy OID, dotted.
    pub policy: String,
    /// The certificate that signed the token.
    pub tsa_certificate: CertificateInfo,
}

/// Verify `token_der` — a timestamp token (CMS ContentInfo) or a whole granted
/// `TimeStampResp` — as a timestamp of `expected_imprint` (hash algorithm and digest).
///
/// The signer is the certificate the signing-certificate-v2 attribute names, taken from the
/// token's certificates or, when the token carries none (certReq false), `tsa_certificate`.
/// It must be signed by `trusted_issuer`, carry timeStamping as its only, critical extended
/// key usage, and be valid at genTime. The signed attributes must give the TSTInfo content
/// type and its digest, and the signature over them must verify with the TSA key.
pub fn verify_timestamp_token(
    token_der: &[u8],
    expected_imprint: (HashAlgorithm, &[u8]),
    tsa_certificate: Option<&CertificateInfo>,
    trusted_issuer: &CertificateInfo,
) -> Result<VerifiedTimestamp, PkiError> {
    let token = token_bytes(token_der)?;
    let content_info = ContentInfo::from_der(token).map_err(|_| bad("not a CMS ContentInfo"))?;
    if content_info.content_type != ID_SIGNED_DATA {
        return Err(bad("the content is not SignedData"));
    }
    let signed_data: SignedData = content_info
        .content
        .decode_as()
        .map_err(|_| bad("not a DER SignedData"))?;
    if signed_data.version != CmsVersion::V3 {
        return Err(bad("SignedData version is not 3"));
    }
    let encapsulated = &signed_data.encap_content_info;
    if encapsulated.econtent_type != ID_CT_TST_INFO {
        return Err(bad("the encapsulated content is not a TSTInfo"));
    }
    let tst_der = encapsulated
        .econtent
        .as_ref()
        .filter(|content| content.tag() == Tag::OctetString)
        .map(|content| content.value())
        .ok_or_else(|| bad("no TSTInfo in the token"))?;
    let tst_info = TstInfo::from_der(tst_der).map_err(|_| bad("not a DER TSTInfo"))?;
    if tst_info.version != TspVersion::V1 {
        return Err(bad("TSTInfo version is not 1"));
    }

    let [signer_info] = signed_data.signer_infos.0.as_slice() else {
        return Err(bad("not exactly one SignerInfo"));
    };
    let digest_algorithm = HashAlgorithm::from_oid(&signer_info.digest_alg.oid)
        .ok_or_else(|| bad("unknown digest algorithm"))?;
    if !signed_data
        .digest_algorithms
        .iter()
        .any(|algorithm| algorithm == &signer_info.digest_alg)
    {
        return Err(bad(
            "the signer's digest algorithm is not among the SignedData's",
        ));
    }
    let attributes = signer_info
        .signed_attrs
        .as_ref()
        .ok_or_else(|| bad("no signed attributes"))?
        .as_slice();
    let content_type: ObjectIdentifier = single_value(attributes, ID_CONTENT_TYPE, "content-type")?
        .decode_as()
        .map_err(|_| bad("the content-type attribute is not an OID"))?;
    if content_type != ID_CT_TST_INFO {
        return Err(bad("the content-type attribute is not id-ct-TSTInfo"));
    }
    let message_digest: OctetString =
        single_value(attributes, ID_MESSAGE_DIGEST, "message-digest")?
            .decode_as()
            .map_err(|_| bad("the message-digest attribute is not an OCTET STRING"))?;
    if message_digest.as_bytes() != digest_algorithm.digest(tst_der).as_slice() {
        return Err(bad(
            "the message-digest attribute does not match the TSTInfo",
        ));
    }
    let signing_certificate: SigningCertificateV2 = single_value(
        attributes,
        ID_SIGNING_CERTIFICATE_V2,
        "signing-certificate-v2",
    )?
    .decode_as()
    .map_err(|_| bad("the signing-certificate-v2 attribute is malformed"))?;
    let named = signing_certificate
        .certs
        .first()
        .ok_or_else(|| bad("the signing-certificate-v2 attribute names no certificate"))?;
    let tsa = signer_certificate(&signed_data, named, tsa_certificate)?;
    let expected_version = match signer_info.sid {
        SignerIdentifier::IssuerAndSerialNumber(_) => CmsVersion::V1,
        SignerIdentifier::SubjectKeyIdentifier(_) => CmsVersion::V3,
    };
    if signer_info.version != expected_version {
        return Err(bad(
            "the SignerInfo version does not match its signer identifier",
        ));
    }
    if !sid_matches(&signer_info.sid, &tsa) {
        return Err(bad("the SignerInfo does not identify the TSA certificate"));
    }

    let gen_time_unix = unix_seconds(tst_info.gen_time.to_system_time());
    tsa.verify_signed_by(&trusted_issuer.public_key)
        .map_err(|_| bad("the TSA certificate is not signed by the trusted issuer"))?;
    if !has_only_critical_time_stamping(&tsa) {
        return Err(bad(
            "the TSA certificate lacks the critical timeStamping extended key usage",
        ));
    }
    if gen_time_unix < tsa.not_before || gen_time_unix > tsa.not_after {
        return Err(bad("genTime is outside the TSA certificate's validity"));
    }

    let signed_attributes = signed_attributes_as_set(token)?;
    let algorithm = signature_algorithm(&signer_info.signature_algorithm, digest_algorithm)?;
    tsa.public_key
        .verify_x509(
            algorithm,
            &signed_attributes,
            signer_info.signature.as_bytes(),
        )
        .map_err(|_| bad("the signature does not verify with the TSA certificate's key"))?;

    let imprint = &tst_info.message_imprint;
    let (expected_hash, expected_digest) = expected_imprint;
    if imprint.hash_algorithm.oid != expected_hash.oid() {
        return Err(bad(&format!(
            "the message imprint uses {}, not {}",
            imprint.hash_algorithm.oid,
            expected_hash.name()
        )));
    }
    if imprint.hashed_message.as_bytes() != expected_digest {
        return Err(bad("the message imprint is not the expected digest"));
    }

    let serial = tst_info.serial_number.as_bytes();
    let leading_zeros = serial
        .iter()
        .take_while(|&&b| b == 0)
        .count()
        .min(serial.len().saturating_sub(1));
    Ok(VerifiedTimestamp {
        gen_time_unix,
        serial: serial[leading_zeros..].to_vec(),
        policy: tst_info.policy.to_string(),
        tsa_certificate: tsa,
    })
}

fn bad(why: &str) -> PkiError {
    PkiError::Certificate(format!("timestamp token: {why}"))
}

/// `TimeStampResp` (RFC 3161 2.4.2), for reading only.
#[derive(Sequence)]
struct TimeStampResp<'a> {
    status: PkiStatusInfo,
    #[asn1(optional = "true")]
    time_stamp_token: Option<AnyRef<'a>>,
}

#[derive(Sequence)]
struct PkiStatusInfo {
    status: u32,
    #[asn1(optional = "true")]
    status_string: Option<Vec<String>>,
    #[asn1(optional = "true")]
    fail_info: Option<BitString>,
}

/// SigningCertificateV2 (RFC 5035 3): the first ESSCertIDv2 names the signer.
#[derive(Sequence)]
struct SigningCertificateV2<'a> {
    certs: Vec<EssCertIdV2<'a>>,
    #[asn1(optional = "true")]
    policies: Option<AnyRef<'a>>,
}

#[derive(Sequence)]
struct EssCertIdV2<'a> {
    /// Absent means SHA-256, the DEFAULT.
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<AnyRef<'a>>,
}

/// The token's bytes: `der` itself when it is a ContentInfo (its first element is the
/// contentType OID), the timeStampToken of a granted response otherwise.
fn token_bytes(der: &[u8]) -> Result<&[u8], PkiError> {
    let elements = sequence_elements(der)
        .ok_or_else(|| bad("neither a token nor a TimeStampResp: not a DER SEQUENCE"))?;
    match elements.first().and_then(|first| first.first()) {
        Some(0x06) => Ok(der),
        Some(0x30) => {
            let response =
                TimeStampResp::from_der(der).map_err(|_| bad("not a DER TimeStampResp"))?;
            // 0 granted, 1 grantedWithMods; anything else carries no token.
            if response.status.status > 1 {
                return Err(bad(&format!(
                    "the TSA refused (status {}{})",
                    response.status.status,
                    response
                        .status
                        .status_string
                        .map(|text| format!(": {}", text.join("; ")))
                        .unwrap_or_default()
                )));
            }
            response
                .time_stamp_token
                .and(elements.get(1).copied())
                .ok_or_else(|| bad("the response is granted but carries no token"))
        }
        _ => Err(bad("neither a token nor a TimeStampResp")),
    }
}

/// The value of the only `oid` attribute, which must have exactly one value.
fn single_value<'a>(
    attributes: &'a [Attribute],
    oid: ObjectIdentifier,
    name: &str,
) -> Result<&'a der::asn1::Any, PkiError> {
    let mut matching = attributes.iter().filter(|a| a.oid == oid);
    let (Some(attribute), None) = (matching.next(), matching.next()) else {
        return Err(bad(&format!("not exactly one {name} signed attribute")));
    };
    match attribute.values.as_slice() {
        [value] => Ok(value),
        _ => Err(bad(&format!(
            "the {name} attribute does not have exactly one value"
        ))),
    }
}

/// The certificate `named` identifies by hash, among the token's certificates and the one
/// the caller passed.
fn signer_certificate(
    signed_data: &SignedData,
    named: &EssCertIdV2<'_>,
    passed: Option<&CertificateInfo>,
) -> Result<CertificateInfo, PkiError> {
    let hash = match &named.hash_algorithm {
        None => HashAlgorithm::Sha256,
        Some(algorithm) => HashAlgorithm::from_oid(&algorithm.oid)
            .ok_or_else(|| bad("unknown hash algorithm in signing-certificate-v2"))?,
    };
    let wanted = named.cert_hash.as_bytes();
    let in_token: Vec<CertificateInfo> = signed_data
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|choice| match choice {
            CertificateChoices::Certificate(certificate) => certificate.to_der().ok(),
            CertificateChoices::Other(_) => None,
        })
        .filter_map(|der| CertificateInfo::from_der(&der).ok())
        .collect();
    let candidates = if in_token.is_empty() {
        passed.cloned().into_iter().collect()
    } else {
        in_token
    };
    if candidates.is_empty() {
        return Err(bad(
            "carries no certificate and no TSA certificate was given",
        ));
    }
    candidates
        .into_iter()
        .find(|candidate| hash.digest(&candidate.der) == wanted)
        .ok_or_else(|| bad("no certificate matches the signing-certificate-v2 attribute"))
}

fn sid_matches(sid: &SignerIdentifier, certificate: &CertificateInfo) -> bool {
    let tbs = &certificate.certificate.tbs_certificate;
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(id) => {
            id.issuer == tbs.issuer && id.serial_number == tbs.serial_number
        }
        // The signing-certificate-v2 hash already binds the certificate.
        SignerIdentifier::SubjectKeyIdentifier(_) => true,
    }
}

/// RFC 3161 2.3: exactly one extended key usage, id-kp-timeStamping, in a critical extension.
fn has_only_critical_time_stamping(certificate: &CertificateInfo) -> bool {
    let mut extensions = certificate
        .certificate
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == ID_CE_EXT_KEY_USAGE);
    let (Some(extension), None) = (extensions.next(), extensions.next()) else {
        return false;
    };
    extension.critical
        && ExtendedKeyUsage::from_der(extension.extn_value.as_bytes())
            .is_ok_and(|usage| usage.0 == [ID_KP_TIME_STAMPING])
}

fn signature_algorithm(
    algorithm: &AlgorithmIdentifierOwned,
    digest_algorithm: HashAlgorithm,
) -> Result<X509SignatureAlgorithm, PkiError> {
    if algorithm.oid == RSA_ENCRYPTION {
        return match digest_algorithm {
            HashAlgorithm::Sha256 | HashAlgorithm::Sha384 | HashAlgorithm::Sha512 => {
                Ok(X509SignatureAlgorithm::RsaPkcs1(digest_algorithm))
            }
            _ => Err(bad("unsupported digest algorithm for an RSA signature")),
        };
    }
    let der = algorithm
        .to_der()
        .map_err(|_| bad("cannot encode the signature algorithm"))?;
    X509SignatureAlgorithm::from_algorithm_identifier_der(&der).map_err(|_| {
        bad(&format!(
            "unsupported signature algorithm {}",
            algorithm.oid
        ))
    })
}

/// The signed attributes exactly as the TSA sent them, with the `[0] IMPLICIT` tag turned
/// back into the SET OF tag the signature covers (RFC 5652 5.4). Taken from the original
/// bytes, so a signer's encoding quirk cannot make a valid signature fail.
fn signed_attributes_as_set(token: &[u8]) -> Result<Vec<u8>, PkiError> {
    let missing = || bad("cannot locate the signed attributes");
    let content_info = sequence_elements(token).ok_or_else(missing)?;
    let explicit = content_info.get(1).ok_or_else(missing)?;
    let signed_data = AnyRef::from_der(explicit).map_err(|_| missing())?.value();
    let signer_infos = *sequence_elements(signed_data)
        .ok_or_else(missing)?
        .last()
        .ok_or_else(missing)?;
    let signer_info = *sequence_elements(signer_infos)
        .ok_or_else(missing)?
        .first()
        .ok_or_else(missing)?;
    let attributes = sequence_elements(signer_info)
        .ok_or_else(missing)?
        .into_iter()
        .find(|element| element.first() == Some(&0xa0))
        .ok_or_else(missing)?;
    let mut bytes = attributes.to_vec();
    bytes[0] = 0x31;
    Ok(bytes)
}

/// The raw TLVs inside a constructed element (SEQUENCE, SET or explicit tag), or `None`
/// when `der` is not exactly one well-formed element.
fn sequence_elements(der: &[u8]) -> Option<Vec<&[u8]>> {
    let outer = AnyRef::from_der(der).ok()?;
    let contents = outer.value();
    let mut reader = SliceReader::new(contents).ok()?;
    let mut elements = Vec::new();
    while !reader.is_finished() {
        let start = usize::try_from(reader.position()).ok()?;
        AnyRef::decode(&mut reader).ok()?;
        let end = usize::try_from(reader.position()).ok()?;
        elements.push(contents.get(start..end)?);
    }
    Some(elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_elements_splits_and_rejects_garbage() {
        assert_eq!(
            sequence_elements(&[0x30, 0x05, 0x02, 0x01, 0x07, 0x05, 0x00]),
            Some(vec![&[0x02, 0x01, 0x07][..], &[0x05, 0x00][..]])
        );
        for input in [&b""[..], b"\x30", b"\x30\x02\x02\x05", b"\x30\x03\x02\x01"] {
            assert!(sequence_elements(input).is_none());
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let err = |input: &[u8]| {
            token_bytes(input)
                .map(|_| ())
                .expect_err("garbage")
                .to_string()
        };
        assert!(err(b"").contains("timestamp token"));
        assert!(err(&[0x30, 0x03, 0x02, 0x01, 0x00]).contains("neither"));
        assert!(err(&[0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02]).contains("refused"));
    }
}
