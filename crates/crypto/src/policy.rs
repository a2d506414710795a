//! Crypto policies: which suites, key sizes and hashes a federation accepts.
//!
//! A policy is checked wherever a key or certificate is accepted (CSR, certificate,
//! configuration signature, message signature), and a refusal names the rule it broke.

use crate::suite::X509SignatureAlgorithm;
use crate::{HashAlgorithm, KeyAlgorithm, PublicKey, Suite};

/// A rule of a crypto policy was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("crypto policy '{policy}' refuses this: {rule} (found: {found})")]
pub struct PolicyViolation {
    /// The policy's name, e.g. `vn`.
    pub policy: &'static str,
    /// The rule, in words an operator can look up.
    pub rule: &'static str,
    /// What was found instead.
    pub found: String,
}

/// A set of allowed suites, minimum key sizes and allowed hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoPolicy {
    name: &'static str,
    suites: &'static [Suite],
    min_rsa_bits: usize,
    min_ec_bits: usize,
    allow_ed25519: bool,
    hashes: &'static [HashAlgorithm],
    allow_rsa_pkcs1_v15: bool,
}

const SHA2_SHA3: &[HashAlgorithm] = &[
    HashAlgorithm::Sha256,
    HashAlgorithm::Sha384,
    HashAlgorithm::Sha512,
    HashAlgorithm::Sha3_256,
    HashAlgorithm::Sha3_384,
    HashAlgorithm::Sha3_512,
];

impl CryptoPolicy {
    /// The Vietnamese profile: TCVN 7635:2007 and Circular 15/2025/TT-BKHCN — RSA (PSS, i.e.
    /// PKCS #1 v2.1) of at least 2048 bits or ECDSA of at least 256 bits, SHA-2 or SHA-3.
    /// EdDSA is not among the algorithms the circular names, so Ed25519 is refused.
    pub fn vn() -> Self {
        Self {
            name: "vn",
            suites: &[
                Suite::EcdsaP256Sha256,
                Suite::EcdsaP384Sha384,
                Suite::RsaPssSha256,
            ],
            min_rsa_bits: 2048,
            min_ec_bits: 256,
            allow_ed25519: false,
            hashes: SHA2_SHA3,
            allow_rsa_pkcs1_v15: false,
        }
    }

    /// A broader international profile: the VN rules plus Ed25519.
    pub fn international() -> Self {
        Self {
            name: "international",
            suites: &Suite::ALL,
            allow_ed25519: true,
            ..Self::vn()
        }
    }

    /// The policy with this name (`vn` or `international`).
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "vn" => Some(Self::vn()),
            "international" => Some(Self::international()),
            _ => None,
        }
    }

    /// The policy's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// May keys sign with `suite`?
    pub fn check_suite(&self, suite: Suite) -> Result<(), PolicyViolation> {
        if self.suites.contains(&suite) {
            Ok(())
        } else {
            Err(self.violation(
                "signature suite must be one the policy lists",
                suite.id().to_owned(),
            ))
        }
    }

    /// May this public key be certified or trusted?
    pub fn check_key(&self, key: &PublicKey) -> Result<(), PolicyViolation> {
        match key.algorithm() {
            KeyAlgorithm::Rsa { bits } if bits < self.min_rsa_bits => Err(self.violation(
                "RSA keys must be at least 2048 bits (Circular 15/2025/TT-BKHCN)",
                format!("RSA-{bits}"),
            )),
            KeyAlgorithm::EcP256 if self.min_ec_bits > 256 => Err(self.violation(
                "ECDSA keys must be larger than 256 bits",
                "ECDSA P-256".into(),
            )),
            KeyAlgorithm::Ed25519 if !self.allow_ed25519 => Err(self.violation(
                "keys must be RSA (PKCS #1 v2.1) or ECDSA (Circular 15/2025/TT-BKHCN); EdDSA is not listed",
                "Ed25519".into(),
            )),
            _ => Ok(()),
        }
    }

    /// May data be hashed with `hash` where security depends on it?
    pub fn check_hash(&self, hash: HashAlgorithm) -> Result<(), PolicyViolation> {
        if self.hashes.contains(&hash) {
            Ok(())
        } else {
            Err(self.violation("hashes must be SHA-2 or SHA-3", hash.name().to_owned()))
        }
    }

    /// May a signature made with this X.509 algorithm be accepted on a certificate or token?
    pub fn check_x509_signature(
        &self,
        algorithm: X509SignatureAlgorithm,
    ) -> Result<(), PolicyViolation> {
        match algorithm {
            X509SignatureAlgorithm::Suite(suite) => self.check_suite(suite),
            X509SignatureAlgorithm::RsaPkcs1(_) if !self.allow_rsa_pkcs1_v15 => Err(self
                .violation(
                    "RSA signatures must use PSS (PKCS #1 v2.1, TCVN 7635:2007)",
                    algorithm.name(),
                )),
            X509SignatureAlgorithm::RsaPkcs1(hash) => self.check_hash(hash),
        }
    }

    fn violation(&self, rule: &'static str, found: String) -> PolicyViolation {
        PolicyViolation {
            policy: self.name,
            rule,
            found,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Signer as _, SoftwareKey};

    #[test]
    fn vn_policy_allows_the_listed_suites_and_names_the_rule_it_breaks() {
        let vn = CryptoPolicy::vn();
        assert!(vn.check_suite(Suite::EcdsaP256Sha256).is_ok());
        assert!(vn.check_suite(Suite::RsaPssSha256).is_ok());
        let refusal = vn.check_suite(Suite::Ed25519).expect_err("refused");
        assert!(refusal.to_string().contains("crypto policy 'vn'"));
        let (ed, _) = SoftwareKey::generate(Suite::Ed25519).expect("generate");
        let refusal = vn.check_key(ed.public_key()).expect_err("refused");
        assert!(refusal.rule.contains("EdDSA is not listed"), "{refusal}");
        assert!(
            CryptoPolicy::international()
                .check_key(ed.public_key())
                .is_ok()
        );
        assert!(vn.check_hash(HashAlgorithm::Sha1).is_err());
        assert!(vn.check_hash(HashAlgorithm::Sha3_256).is_ok());
        assert!(
            vn.check_x509_signature(X509SignatureAlgorithm::RsaPkcs1(HashAlgorithm::Sha256))
                .is_err()
        );
    }

    #[test]
    fn small_rsa_keys_are_refused_with_their_size() {
        // An RSA-1024 SubjectPublicKeyInfo made by `openssl genrsa 1024`.
        let der = include_bytes!("../tests/data/rsa1024-spki.der");
        let key = PublicKey::from_spki_der(der).expect("parses");
        assert_eq!(key.algorithm(), KeyAlgorithm::Rsa { bits: 1024 });
        let refusal = CryptoPolicy::vn().check_key(&key).expect_err("refused");
        assert_eq!(refusal.found, "RSA-1024");
        assert!(refusal.to_string().contains("at least 2048 bits"));
    }
}
