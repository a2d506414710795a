//! Signature suites: the algorithms a lienthong key signs with, each with a stable identifier
//! that travels beside every signature, and the X.509 signature algorithms we can verify.

use crate::CryptoError;
use crate::hash::HashAlgorithm;
use spki::AlgorithmIdentifierRef;
use spki::der::Decode;

/// A signature suite: key type, signature scheme and hash, named by a stable identifier.
///
/// Adding a suite (an HSM-only mechanism, ML-DSA, a national algorithm) means adding a
/// variant here and its arms in `key.rs`; callers only ever see `Suite` and [`crate::Signer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Suite {
    /// ECDSA over NIST P-256 with SHA-256, DER-encoded signature. The default.
    EcdsaP256Sha256,
    /// ECDSA over NIST P-384 with SHA-384, DER-encoded signature.
    EcdsaP384Sha384,
    /// Ed25519 (RFC 8032), pure mode.
    Ed25519,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt (TCVN 7635; PKCS #1 v2.1).
    RsaPssSha256,
}

impl Suite {
    /// Every suite this build supports, in order of preference.
    pub const ALL: [Suite; 4] = [
        Suite::EcdsaP256Sha256,
        Suite::EcdsaP384Sha384,
        Suite::Ed25519,
        Suite::RsaPssSha256,
    ];

    /// The stable identifier recorded beside every signature.
    pub fn id(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Self::EcdsaP384Sha384 => "ecdsa-p384-sha384",
            Self::Ed25519 => "ed25519",
            Self::RsaPssSha256 => "rsa-pss-sha256",
        }
    }

    /// The suite with this identifier.
    pub fn from_id(id: &str) -> Result<Self, CryptoError> {
        Self::ALL
            .into_iter()
            .find(|s| s.id() == id)
            .ok_or_else(|| CryptoError::UnsupportedAlgorithm(format!("signature suite {id:?}")))
    }

    /// The hash the suite signs with (Ed25519 hashes internally with SHA-512).
    pub fn hash(self) -> HashAlgorithm {
        match self {
            Self::EcdsaP256Sha256 | Self::RsaPssSha256 => HashAlgorithm::Sha256,
            Self::EcdsaP384Sha384 => HashAlgorithm::Sha384,
            Self::Ed25519 => HashAlgorithm::Sha512,
        }
    }

    /// The DER `AlgorithmIdentifier` of this suite's signatures in X.509, OCSP and CMS.
    pub fn algorithm_identifier_der(self) -> &'static [u8] {
        match self {
            Self::EcdsaP256Sha256 => ECDSA_WITH_SHA256,
            Self::EcdsaP384Sha384 => ECDSA_WITH_SHA384,
            Self::Ed25519 => ED25519,
            Self::RsaPssSha256 => RSASSA_PSS_SHA256,
        }
    }

    /// The X.509 signature algorithm of this suite.
    pub fn x509(self) -> X509SignatureAlgorithm {
        X509SignatureAlgorithm::Suite(self)
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl std::str::FromStr for Suite {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_id(s)
    }
}

/// A signature algorithm as named by an X.509 `AlgorithmIdentifier`: one of our suites, or
/// RSA PKCS #1 v1.5, which we verify (CSRs made by `openssl req` use it for proof of
/// possession) but never produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum X509SignatureAlgorithm {
    /// One of the signing suites.
    Suite(Suite),
    /// sha256WithRSAEncryption and its SHA-384/512 siblings: verify-only.
    RsaPkcs1(HashAlgorithm),
}

impl X509SignatureAlgorithm {
    /// Recognise a DER `AlgorithmIdentifier`.
    pub fn from_algorithm_identifier_der(der: &[u8]) -> Result<Self, CryptoError> {
        for suite in Suite::ALL {
            if suite.algorithm_identifier_der() == der {
                return Ok(Self::Suite(suite));
            }
        }
        let algorithm = AlgorithmIdentifierRef::from_der(der).map_err(|e| {
            CryptoError::UnsupportedAlgorithm(format!("bad AlgorithmIdentifier: {e}"))
        })?;
        // RFC 4055 says the parameters of these are NULL, but absent parameters are common.
        let hash = match algorithm.oid {
            SHA256_WITH_RSA => HashAlgorithm::Sha256,
            SHA384_WITH_RSA => HashAlgorithm::Sha384,
            SHA512_WITH_RSA => HashAlgorithm::Sha512,
            oid if oid == RSASSA_PSS_OID => {
                return Err(CryptoError::UnsupportedAlgorithm(
                    "RSASSA-PSS with parameters other than SHA-256/MGF1-SHA-256/salt 32".into(),
                ));
            }
            oid => {
                return Err(CryptoError::UnsupportedAlgorithm(format!(
                    "signature algorithm {oid}"
                )));
            }
        };
        Ok(Self::RsaPkcs1(hash))
    }

    /// The hash this algorithm signs with.
    pub fn hash(self) -> HashAlgorithm {
        match self {
            Self::Suite(suite) => suite.hash(),
            Self::RsaPkcs1(hash) => hash,
        }
    }

    /// A human name for messages.
    pub fn name(self) -> String {
        match self {
            Self::Suite(suite) => suite.id().to_owned(),
            Self::RsaPkcs1(hash) => format!("rsa-pkcs1v15-{}", hash.name().to_lowercase()),
        }
    }
}

const SHA256_WITH_RSA: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const RSASSA_PSS_OID: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

/// ecdsa-with-SHA256 (RFC 5758), parameters absent.
const ECDSA_WITH_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
/// ecdsa-with-SHA384 (RFC 5758), parameters absent.
const ECDSA_WITH_SHA384: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];
/// id-Ed25519 (RFC 8410), parameters absent.
const ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
/// id-RSASSA-PSS with SHA-256, MGF1(SHA-256), saltLength 32, trailerField 1 (RFC 4055).
const RSASSA_PSS_SHA256: &[u8] = &[
    0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0,
    0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
    0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30,
    0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03,
    0x02, 0x01, 0x20,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_round_trip() {
        for suite in Suite::ALL {
            assert_eq!(Suite::from_id(suite.id()).ok(), Some(suite));
            let der = suite.algorithm_identifier_der();
            assert!(
                AlgorithmIdentifierRef::from_der(der).is_ok(),
                "{suite} DER parses"
            );
            assert_eq!(
                X509SignatureAlgorithm::from_algorithm_identifier_der(der).ok(),
                Some(X509SignatureAlgorithm::Suite(suite))
            );
        }
        assert!(Suite::from_id("rsa-pkcs1-sha1").is_err());
    }

    #[test]
    fn recognises_pkcs1_v15_as_verify_only() {
        // sha256WithRSAEncryption with NULL parameters, as `openssl req` writes it.
        let der = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05,
            0x00,
        ];
        assert_eq!(
            X509SignatureAlgorithm::from_algorithm_identifier_der(&der).ok(),
            Some(X509SignatureAlgorithm::RsaPkcs1(HashAlgorithm::Sha256))
        );
    }
}
