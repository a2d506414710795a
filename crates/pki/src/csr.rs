//! PKCS #10 certificate signing requests: parse, check proof of possession, apply policy.
//!
//! Only the key is taken from a CSR. Its subject and requested extensions are ignored: the
//! CA builds the subject from the federation identifier it was told to certify.

use crate::PkiError;
use crate::der_util::first_inner_element;
use der::{Decode, Encode};
use lienthong_crypto::{CryptoError, CryptoPolicy, PublicKey, X509SignatureAlgorithm};
use x509_cert::request::CertReq;

/// A CSR whose self-signature verified and whose key the policy allows.
#[derive(Debug, Clone)]
pub struct VerifiedCsr {
    /// The key to certify.
    pub public_key: PublicKey,
    /// The subject the requester wrote (informational only; never copied into a certificate).
    pub requested_subject: String,
}

/// Parse a CSR (PEM or DER), verify its signature with its own key, and check the key
/// against `policy`. The CSR's own signature may be RSA PKCS #1 v1.5 (what `openssl req`
/// writes for RSA keys): it only proves possession; the key is later used with PSS.
pub fn verify_csr(input: &[u8], policy: &CryptoPolicy) -> Result<VerifiedCsr, PkiError> {
    let der = if input.first() == Some(&0x30) {
        input.to_vec()
    } else {
        let (label, der) = der::pem::decode_vec(input)
            .map_err(|e| PkiError::MalformedCsr(format!("not PEM or DER: {e}")))?;
        if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
            return Err(PkiError::MalformedCsr(format!(
                "expected a CERTIFICATE REQUEST, found {label}"
            )));
        }
        der
    };
    let request = CertReq::from_der(&der).map_err(|e| PkiError::MalformedCsr(e.to_string()))?;
    let spki = request
        .info
        .public_key
        .to_der()
        .map_err(PkiError::encoding("public key"))?;
    let public_key = PublicKey::from_spki_der(&spki).map_err(|e| match e {
        CryptoError::UnsupportedAlgorithm(what) => {
            PkiError::MalformedCsr(format!("unsupported key: {what}"))
        }
        other => PkiError::Crypto(other),
    })?;
    // Policy first: a forbidden key gets the policy's message even if its signature is fine.
    policy.check_key(&public_key)?;
    let algorithm_der = request
        .algorithm
        .to_der()
        .map_err(PkiError::encoding("signature algorithm"))?;
    let algorithm = X509SignatureAlgorithm::from_algorithm_identifier_der(&algorithm_der)
        .map_err(|e| PkiError::MalformedCsr(e.to_string()))?;
    policy.check_hash(algorithm.hash())?;
    let signed = first_inner_element(&der).map_err(|e| PkiError::MalformedCsr(e.to_string()))?;
    let signature = request
        .signature
        .as_bytes()
        .ok_or_else(|| PkiError::MalformedCsr("signature is not whole bytes".into()))?;
    public_key
        .verify_x509(algorithm, signed, signature)
        .map_err(|_| PkiError::CsrSignature)?;
    Ok(VerifiedCsr {
        public_key,
        requested_subject: request.info.subject.to_string(),
    })
}

/// Build a PEM CSR for `signer`'s key (subject `CN=common_name`), as a gateway does before
/// asking the federation CA for a certificate.
pub fn create_csr(
    signer: &dyn lienthong_crypto::Signer,
    common_name: &str,
) -> Result<String, PkiError> {
    use der::asn1::{BitString, SetOfVec};
    use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
    use x509_cert::request::{CertReqInfo, Version};
    let subject = crate::name::service_name("lienthong", common_name)?;
    let info = CertReqInfo {
        version: Version::V1,
        subject,
        public_key: SubjectPublicKeyInfoOwned::from_der(signer.public_key().spki_der())
            .map_err(PkiError::encoding("public key"))?,
        attributes: SetOfVec::new(),
    };
    let info_der = info.to_der().map_err(PkiError::encoding("CSR"))?;
    let signature = signer.sign(&info_der)?;
    let request = CertReq {
        info,
        algorithm: AlgorithmIdentifierOwned::from_der(signer.suite().algorithm_identifier_der())
            .map_err(PkiError::encoding("signature algorithm"))?,
        signature: BitString::from_bytes(&signature.bytes)
            .map_err(PkiError::encoding("signature"))?,
    };
    let der = request.to_der().map_err(PkiError::encoding("CSR"))?;
    der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, &der).map_err(|e| {
        PkiError::Encoding {
            what: "CSR PEM",
            source: e.into(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lienthong_crypto::{SoftwareKey, Suite};

    #[test]
    fn own_csr_verifies_for_every_suite_the_policy_allows() {
        for suite in Suite::ALL {
            let (key, _) = SoftwareKey::generate(suite).expect("generate");
            let pem = create_csr(&key, "gw1").expect("csr");
            let result = verify_csr(pem.as_bytes(), &CryptoPolicy::international());
            let verified = result.expect("verifies");
            assert_eq!(
                &verified.public_key,
                lienthong_crypto::Signer::public_key(&key)
            );
            let vn = verify_csr(pem.as_bytes(), &CryptoPolicy::vn());
            assert_eq!(vn.is_ok(), suite != Suite::Ed25519, "{suite}");
        }
    }

    #[test]
    fn tampered_or_garbage_csrs_are_refused() {
        let (key, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256).expect("generate");
        let pem = create_csr(&key, "gw1").expect("csr");
        let (_, mut der) = der::pem::decode_vec(pem.as_bytes()).expect("pem");
        // Flip a byte inside the subject (CN value): the signature must no longer verify.
        let position = der.windows(3).position(|w| w == b"gw1").expect("cn");
        der[position] = b'x';
        assert!(matches!(
            verify_csr(&der, &CryptoPolicy::vn()),
            Err(PkiError::CsrSignature)
        ));
        for garbage in [
            &b""[..],
            b"\x30\x00",
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAA\n-----END CERTIFICATE REQUEST-----\n",
        ] {
            assert!(verify_csr(garbage, &CryptoPolicy::vn()).is_err());
        }
    }
}
