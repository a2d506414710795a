//! Checking an OCSP response as a relying party (a gateway checking a peer's certificate).

use crate::PkiError;
use crate::cert::CertificateInfo;
use crate::der_util::{first_inner_element, unix_seconds};
use crate::ocsp::RevocationReason;
use const_oid::db::rfc5280::ID_KP_OCSP_SIGNING;
use der::{Decode, Encode};
use lienthong_crypto::{HashAlgorithm, X509SignatureAlgorithm};
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus};

/// The status a verified OCSP response gives one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifiedStatus {
    /// Good, as of `this_update` (Unix seconds).
    Good { this_update: i64 },
    /// Revoked at `time` (Unix seconds).
    Revoked {
        time: i64,
        reason: Option<RevocationReason>,
    },
    /// The responder does not know the certificate.
    Unknown,
}

/// Verify `response_der` for `certificate` issued by `issuer` at `now` (Unix seconds):
/// the response is successful and signed by the issuer or by a delegated responder
/// certificate the issuer signed with the OCSPSigning purpose, it covers this certificate,
/// its thisUpdate is at most `max_age_seconds` old and its nextUpdate (if any) has not
/// passed. Returns the status it states.
pub fn verify_ocsp_response(
    response_der: &[u8],
    certificate: &CertificateInfo,
    issuer: &CertificateInfo,
    now: i64,
    max_age_seconds: i64,
) -> Result<VerifiedStatus, PkiError> {
    let bad = |why: &str| PkiError::Certificate(format!("OCSP response: {why}"));
    let response =
        OcspResponse::from_der(response_der).map_err(|_| bad("not a DER OCSPResponse"))?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(bad(&format!(
            "responder answered {:?}",
            response.response_status
        )));
    }
    let bytes = response
        .response_bytes
        .ok_or_else(|| bad("no response bytes"))?;
    let basic_der = bytes.response.as_bytes();
    let basic =
        BasicOcspResponse::from_der(basic_der).map_err(|_| bad("not a BasicOCSPResponse"))?;
    let tbs = first_inner_element(basic_der).map_err(|_| bad("cannot find the signed part"))?;
    let algorithm_der = basic
        .signature_algorithm
        .to_der()
        .map_err(PkiError::encoding("signature algorithm"))?;
    let algorithm = X509SignatureAlgorithm::from_algorithm_identifier_der(&algorithm_der)?;
    let signature = basic
        .signature
        .as_bytes()
        .ok_or_else(|| bad("signature is not whole bytes"))?;

    // Who signed: the issuer itself, or a delegated responder certificate it issued.
    let signed_by_issuer = issuer
        .public_key
        .verify_x509(algorithm, tbs, signature)
        .is_ok();
    if !signed_by_issuer {
        let delegated = basic.certs.iter().flatten().find_map(|responder| {
            let der = responder.to_der().ok()?;
            let info = CertificateInfo::from_der(&der).ok()?;
            let authorised = info.verify_signed_by(&issuer.public_key).is_ok()
                && has_ocsp_signing(&info)
                && info.not_before <= now
                && now <= info.not_after;
            (authorised
                && info
                    .public_key
                    .verify_x509(algorithm, tbs, signature)
                    .is_ok())
            .then_some(())
        });
        if delegated.is_none() {
            return Err(bad("not signed by the issuer or an authorised responder"));
        }
    }

    let issuer_name = issuer
        .certificate
        .tbs_certificate
        .subject
        .to_der()
        .map_err(PkiError::encoding("issuer name"))?;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|single| {
            let id = &single.cert_id;
            let Some(hash) = HashAlgorithm::from_oid(&id.hash_algorithm.oid) else {
                return false;
            };
            id.serial_number.as_bytes() == certificate.serial.as_slice()
                && id.issuer_name_hash.as_bytes() == hash.digest(&issuer_name).as_slice()
                && id.issuer_key_hash.as_bytes()
                    == hash
                        .digest(issuer.public_key.subject_public_key_bytes())
                        .as_slice()
        })
        .ok_or_else(|| bad("does not cover this certificate"))?;
    let this_update = unix_seconds(single.this_update.0.to_system_time());
    if now - this_update > max_age_seconds {
        return Err(bad(&format!(
            "too old: thisUpdate {this_update}, now {now}, limit {max_age_seconds} s"
        )));
    }
    if this_update > now + 300 {
        return Err(bad("thisUpdate is in the future"));
    }
    if let Some(next) = &single.next_update
        && unix_seconds(next.0.to_system_time()) < now
    {
        return Err(bad("past its nextUpdate"));
    }
    Ok(match &single.cert_status {
        CertStatus::Good(_) => VerifiedStatus::Good { this_update },
        CertStatus::Unknown(_) => VerifiedStatus::Unknown,
        CertStatus::Revoked(info) => VerifiedStatus::Revoked {
            time: unix_seconds(info.revocation_time.0.to_system_time()),
            reason: info.revocation_reason.and_then(|r| {
                RevocationReason::ALL
                    .into_iter()
                    .find(|candidate| candidate.to_crl_reason() == r)
            }),
        },
    })
}

fn has_ocsp_signing(certificate: &CertificateInfo) -> bool {
    certificate
        .certificate
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
        .filter_map(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok())
        .any(|eku| eku.0.contains(&ID_KP_OCSP_SIGNING))
}
