//! Public keys (parsed from SubjectPublicKeyInfo) and software private keys backed by aws-lc-rs.

use crate::suite::X509SignatureAlgorithm;
use crate::{CryptoError, HashAlgorithm, Signature, Signer, Suite};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, KeyPair as _};
use spki::der::Decode;
use spki::der::asn1::UintRef;
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

/// The type and size of a public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 (256-bit).
    EcP256,
    /// ECDSA on NIST P-384 (384-bit).
    EcP384,
    /// Ed25519.
    Ed25519,
    /// RSA with a modulus of `bits` bits.
    Rsa { bits: usize },
}

impl KeyAlgorithm {
    /// The suites a key of this type can sign with.
    pub fn suites(self) -> &'static [Suite] {
        match self {
            Self::EcP256 => &[Suite::EcdsaP256Sha256],
            Self::EcP384 => &[Suite::EcdsaP384Sha384],
            Self::Ed25519 => &[Suite::Ed25519],
            Self::Rsa { .. } => &[Suite::RsaPssSha256],
        }
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EcP256 => f.write_str("ECDSA P-256"),
            Self::EcP384 => f.write_str("ECDSA P-384"),
            Self::Ed25519 => f.write_str("Ed25519"),
            Self::Rsa { bits } => write!(f, "RSA-{bits}"),
        }
    }
}

/// A public key, kept as its DER SubjectPublicKeyInfo with the parsed algorithm beside it.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    spki_der: Vec<u8>,
    algorithm: KeyAlgorithm,
    /// The key in the form aws-lc-rs verifies with (EC point, Ed25519 bytes, RSAPublicKey).
    raw: Vec<u8>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm)
            .field("sha256", &hex_prefix(&self.fingerprint()))
            .finish()
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl PublicKey {
    /// Parse a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CryptoError> {
        let spki = SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| CryptoError::InvalidKey(format!("SubjectPublicKeyInfo: {e}")))?;
        let raw = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| {
                CryptoError::InvalidKey("public key bit string is not whole bytes".into())
            })?
            .to_vec();
        let algorithm = match spki.algorithm.oid {
            ID_EC_PUBLIC_KEY => {
                let curve: ObjectIdentifier = spki
                    .algorithm
                    .parameters_oid()
                    .map_err(|_| CryptoError::InvalidKey("EC key without a named curve".into()))?;
                match curve {
                    SECP256R1 if raw.len() == 65 => KeyAlgorithm::EcP256,
                    SECP384R1 if raw.len() == 97 => KeyAlgorithm::EcP384,
                    SECP256R1 | SECP384R1 => {
                        return Err(CryptoError::InvalidKey(
                            "EC point must be uncompressed".into(),
                        ));
                    }
                    other => {
                        return Err(CryptoError::UnsupportedAlgorithm(format!(
                            "elliptic curve {other}"
                        )));
                    }
                }
            }
            ID_ED25519 if raw.len() == 32 => KeyAlgorithm::Ed25519,
            ID_ED25519 => {
                return Err(CryptoError::InvalidKey(
                    "Ed25519 key is not 32 bytes".into(),
                ));
            }
            RSA_ENCRYPTION | ID_RSASSA_PSS => KeyAlgorithm::Rsa {
                bits: rsa_modulus_bits(&raw)?,
            },
            other => {
                return Err(CryptoError::UnsupportedAlgorithm(format!(
                    "public key algorithm {other}"
                )));
            }
        };
        Ok(Self {
            spki_der: der.to_vec(),
            algorithm,
            raw,
        })
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The key type and size.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The BIT STRING contents of the SubjectPublicKeyInfo (what X.509 key identifiers hash).
    pub fn subject_public_key_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo.
    pub fn fingerprint(&self) -> Vec<u8> {
        HashAlgorithm::Sha256.digest(&self.spki_der)
    }

    /// Verify a lienthong signature, which names its own suite.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), CryptoError> {
        self.verify_x509(signature.suite.x509(), message, &signature.bytes)
    }

    /// Verify a signature made with an X.509 signature algorithm.
    pub fn verify_x509(
        &self,
        algorithm: X509SignatureAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        let verification: &'static dyn sig::VerificationAlgorithm =
            match (algorithm, self.algorithm) {
                (X509SignatureAlgorithm::Suite(Suite::EcdsaP256Sha256), KeyAlgorithm::EcP256) => {
                    &sig::ECDSA_P256_SHA256_ASN1
                }
                (X509SignatureAlgorithm::Suite(Suite::EcdsaP384Sha384), KeyAlgorithm::EcP384) => {
                    &sig::ECDSA_P384_SHA384_ASN1
                }
                (X509SignatureAlgorithm::Suite(Suite::Ed25519), KeyAlgorithm::Ed25519) => {
                    &sig::ED25519
                }
                (X509SignatureAlgorithm::Suite(Suite::RsaPssSha256), KeyAlgorithm::Rsa { .. }) => {
                    &sig::RSA_PSS_2048_8192_SHA256
                }
                (X509SignatureAlgorithm::RsaPkcs1(hash), KeyAlgorithm::Rsa { .. }) => match hash {
                    HashAlgorithm::Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                    HashAlgorithm::Sha384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                    HashAlgorithm::Sha512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                    other => {
                        return Err(CryptoError::UnsupportedAlgorithm(format!(
                            "RSA PKCS #1 v1.5 with {other}"
                        )));
                    }
                },
                (algorithm, key) => {
                    return Err(CryptoError::SuiteMismatch {
                        key: key.to_string(),
                        suite: algorithm.name(),
                    });
                }
            };
        sig::UnparsedPublicKey::new(verification, &self.raw)
            .verify(message, signature)
            .map_err(|_| CryptoError::BadSignature)
    }
}

/// Number of significant bits in the modulus of a DER RSAPublicKey.
fn rsa_modulus_bits(rsa_public_key: &[u8]) -> Result<usize, CryptoError> {
    let bad = |e: spki::der::Error| CryptoError::InvalidKey(format!("RSAPublicKey: {e}"));
    let mut reader = spki::der::SliceReader::new(rsa_public_key).map_err(bad)?;
    let modulus = spki::der::Reader::sequence(&mut reader, |seq| {
        let modulus = UintRef::decode(seq)?;
        let _exponent = UintRef::decode(seq)?;
        Ok(modulus)
    })
    .map_err(bad)?;
    let bytes = modulus.as_bytes();
    let first = *bytes
        .first()
        .ok_or_else(|| CryptoError::InvalidKey("empty RSA modulus".into()))?;
    Ok((bytes.len() - 1) * 8 + (8 - first.leading_zeros() as usize))
}

/// A private key held in process memory, signing with aws-lc-rs.
///
/// The PKCS #8 encoding exists only transiently in zeroizing buffers; the aws-lc key
/// objects clear their memory when dropped.
pub struct SoftwareKey {
    suite: Suite,
    inner: Inner,
    public_key: PublicKey,
    rng: SystemRandom,
}

enum Inner {
    Ecdsa(sig::EcdsaKeyPair),
    Ed25519(sig::Ed25519KeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair),
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SoftwareKey")
            .field("suite", &self.suite)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl SoftwareKey {
    /// Generate a fresh key for `suite` (RSA keys are 3072 bits). Returns the key and its
    /// PKCS #8 encoding, for the caller to store encrypted.
    pub fn generate(suite: Suite) -> Result<(Self, Zeroizing<Vec<u8>>), CryptoError> {
        let rng = SystemRandom::new();
        let failed = |_| CryptoError::Backend("key generation failed");
        let pkcs8: Zeroizing<Vec<u8>> = match suite {
            Suite::EcdsaP256Sha256 => {
                sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                    .map_err(failed)?
                    .as_ref()
                    .to_vec()
                    .into()
            }
            Suite::EcdsaP384Sha384 => {
                sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
                    .map_err(failed)?
                    .as_ref()
                    .to_vec()
                    .into()
            }
            Suite::Ed25519 => sig::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(failed)?
                .as_ref()
                .to_vec()
                .into(),
            Suite::RsaPssSha256 => {
                let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa3072)
                    .map_err(failed)?;
                let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).map_err(failed)?;
                der.as_ref().to_vec().into()
            }
        };
        let key = Self::from_pkcs8(suite, &pkcs8)?;
        Ok((key, pkcs8))
    }

    /// Load a key from its PKCS #8 encoding.
    pub fn from_pkcs8(suite: Suite, pkcs8: &[u8]) -> Result<Self, CryptoError> {
        let rejected = |e: aws_lc_rs::error::KeyRejected| {
            CryptoError::InvalidKey(format!("PKCS #8 key rejected for {suite}: {e}"))
        };
        let inner = match suite {
            Suite::EcdsaP256Sha256 => Inner::Ecdsa(
                sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8)
                    .map_err(rejected)?,
            ),
            Suite::EcdsaP384Sha384 => Inner::Ecdsa(
                sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8)
                    .map_err(rejected)?,
            ),
            Suite::Ed25519 => {
                Inner::Ed25519(sig::Ed25519KeyPair::from_pkcs8(pkcs8).map_err(rejected)?)
            }
            Suite::RsaPssSha256 => {
                Inner::Rsa(aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8).map_err(rejected)?)
            }
        };
        let backend = |_| CryptoError::Backend("cannot encode public key");
        let spki = match &inner {
            Inner::Ecdsa(key) => key
                .public_key()
                .as_der()
                .map_err(backend)?
                .as_ref()
                .to_vec(),
            Inner::Ed25519(key) => key
                .public_key()
                .as_der()
                .map_err(backend)?
                .as_ref()
                .to_vec(),
            Inner::Rsa(key) => key
                .public_key()
                .as_der()
                .map_err(backend)?
                .as_ref()
                .to_vec(),
        };
        Ok(Self {
            suite,
            inner,
            public_key: PublicKey::from_spki_der(&spki)?,
            rng: SystemRandom::new(),
        })
    }
}

impl Signer for SoftwareKey {
    fn suite(&self) -> Suite {
        self.suite
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, CryptoError> {
        let failed = |_| CryptoError::Backend("signing failed");
        let bytes = match &self.inner {
            Inner::Ecdsa(key) => key
                .sign(&self.rng, message)
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Inner::Ed25519(key) => key.sign(message).as_ref().to_vec(),
            Inner::Rsa(key) => {
                let mut out = vec![0; key.public_modulus_len()];
                key.sign(&sig::RSA_PSS_SHA256, &self.rng, message, &mut out)
                    .map_err(failed)?;
                out
            }
        };
        Ok(Signature {
            suite: self.suite,
            bytes,
        })
    }

    /// ECDSA and Ed25519 in software take tens of microseconds; RSA takes milliseconds.
    fn signs_in_microseconds(&self) -> bool {
        !matches!(self.inner, Inner::Rsa(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suite_signs_and_verifies_and_detects_tampering() {
        for suite in Suite::ALL {
            let (key, _pkcs8) = SoftwareKey::generate(suite).expect("generate");
            let signature = key.sign(b"lien thong").expect("sign");
            assert_eq!(signature.suite, suite);
            key.public_key()
                .verify(b"lien thong", &signature)
                .expect("verifies");
            assert!(matches!(
                key.public_key().verify(b"lien thong!", &signature),
                Err(CryptoError::BadSignature)
            ));
            let expected = match suite {
                Suite::EcdsaP256Sha256 => KeyAlgorithm::EcP256,
                Suite::EcdsaP384Sha384 => KeyAlgorithm::EcP384,
                Suite::Ed25519 => KeyAlgorithm::Ed25519,
                Suite::RsaPssSha256 => KeyAlgorithm::Rsa { bits: 3072 },
            };
            assert_eq!(key.public_key().algorithm(), expected);
        }
    }

    #[test]
    fn signature_of_one_suite_is_refused_under_another() {
        let (ec, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256).expect("generate");
        let mut signature = ec.sign(b"m").expect("sign");
        signature.suite = Suite::Ed25519;
        assert!(matches!(
            ec.public_key().verify(b"m", &signature),
            Err(CryptoError::SuiteMismatch { .. })
        ));
    }

    #[test]
    fn pkcs8_round_trip_keeps_the_public_key() {
        let (key, pkcs8) = SoftwareKey::generate(Suite::Ed25519).expect("generate");
        let again = SoftwareKey::from_pkcs8(Suite::Ed25519, &pkcs8).expect("load");
        assert_eq!(key.public_key(), again.public_key());
        assert!(SoftwareKey::from_pkcs8(Suite::EcdsaP256Sha256, &pkcs8).is_err());
    }

    #[test]
    fn garbage_spki_is_an_error_not_a_panic() {
        for input in [&b""[..], b"\x30", b"\x30\x03\x02\x01\x00", &[0xff; 40]] {
            assert!(PublicKey::from_spki_der(input).is_err());
        }
    }
}
