//! Encryption of logged message bodies to a member's X25519 public key, so that the gateway
//! that stores a body cannot read it back: only the holder of the private key can.
//!
//! The construction is ECIES: a fresh X25519 key per message, the shared secret with the
//! recipient's key through HKDF-SHA256 (salt = both public keys, info =
//! `lienthong body box v1`) to an AES-256-GCM key used once (so the nonce is zero). The
//! caller's associated data (what the body belongs to) is authenticated, not encrypted.
//!
//! Sealed bytes: `0x01 || ephemeral public key (32) || ciphertext || tag (16)`.
//! Keys are the 32 raw bytes, or the PEM files `openssl genpkey -algorithm X25519` writes
//! (PKCS #8 private key) and `openssl pkey -pubout` (SubjectPublicKeyInfo).

use crate::CryptoError;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const INFO: &[u8] = b"lienthong body box v1";
const TAG_LEN: usize = 16;
/// DER of an X25519 SubjectPublicKeyInfo up to the key bytes (RFC 8410).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
];
/// DER of an X25519 PKCS #8 private key up to the key bytes (RFC 8410).
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
];

/// A recipient's X25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct BoxPublicKey([u8; 32]);

/// A recipient's X25519 private key.
pub struct BoxSecretKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for BoxPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BoxPublicKey({})", self.key_id())
    }
}

impl std::fmt::Debug for BoxSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxSecretKey(..)")
    }
}

impl BoxPublicKey {
    /// From 32 raw bytes, base64 of them, or a SubjectPublicKeyInfo (DER or PEM).
    pub fn parse(bytes: &[u8]) -> Result<Self, CryptoError> {
        key_bytes(bytes, &SPKI_PREFIX).map(Self)
    }

    /// The key's identifier: hex of the first 8 bytes of SHA-256 of the raw key.
    pub fn key_id(&self) -> String {
        key_id(&self.0)
    }

    /// The key as PEM SubjectPublicKeyInfo.
    pub fn to_pem(&self) -> String {
        pem("PUBLIC KEY", &[&SPKI_PREFIX[..], &self.0].concat())
    }
}

impl BoxSecretKey {
    /// A new random key.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut key = Zeroizing::new([0u8; 32]);
        crate::fill_random(key.as_mut())?;
        Ok(Self(key))
    }

    /// From 32 raw bytes, base64 of them, or a PKCS #8 private key (DER or PEM).
    pub fn parse(bytes: &[u8]) -> Result<Self, CryptoError> {
        key_bytes(bytes, &PKCS8_PREFIX).map(|key| Self(Zeroizing::new(key)))
    }

    /// The matching public key.
    pub fn public_key(&self) -> Result<BoxPublicKey, CryptoError> {
        let private = self.private()?;
        let public = private
            .compute_public_key()
            .map_err(|_| CryptoError::Backend("X25519 public key"))?;
        <[u8; 32]>::try_from(public.as_ref())
            .map(BoxPublicKey)
            .map_err(|_| CryptoError::Backend("X25519 public key length"))
    }

    /// The key as PEM PKCS #8 (keep it where the gateway cannot read it).
    pub fn to_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem(
            "PRIVATE KEY",
            &Zeroizing::new([&PKCS8_PREFIX[..], &self.0[..]].concat()),
        ))
    }

    fn private(&self) -> Result<PrivateKey, CryptoError> {
        PrivateKey::from_private_key(&X25519, self.0.as_ref())
            .map_err(|_| CryptoError::InvalidKey("X25519 private key".into()))
    }
}

/// Encrypt `plaintext` to `recipient`, binding `aad`.
pub fn seal_body(
    recipient: &BoxPublicKey,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let ephemeral =
        PrivateKey::generate(&X25519).map_err(|_| CryptoError::Backend("X25519 key generation"))?;
    let ephemeral_public = ephemeral
        .compute_public_key()
        .map_err(|_| CryptoError::Backend("X25519 public key"))?;
    let key = aead_key(&ephemeral, &recipient.0, ephemeral_public.as_ref())?;
    let mut sealed = Vec::with_capacity(1 + 32 + plaintext.len() + TAG_LEN);
    sealed.push(VERSION);
    sealed.extend_from_slice(ephemeral_public.as_ref());
    let mut body = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([0; 12]),
        Aad::from(aad),
        &mut body,
    )
    .map_err(|_| CryptoError::Backend("AES-GCM seal"))?;
    sealed.extend_from_slice(&body);
    Ok(sealed)
}

/// Decrypt what [`seal_body`] made for `secret`'s public key with the same `aad`.
pub fn open_body(secret: &BoxSecretKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let altered =
        CryptoError::Decrypt("wrong key, or the ciphertext or what it is bound to was altered");
    if sealed.len() < 1 + 32 + TAG_LEN || sealed[0] != VERSION {
        return Err(CryptoError::Decrypt("not a sealed body of version 1"));
    }
    let (ephemeral_public, ciphertext) = sealed[1..].split_at(32);
    let recipient_public = secret.public_key()?;
    // The key agreement is ours with the sender's ephemeral key; the salt orders the two
    // public keys as the sender did.
    let private = secret.private()?;
    let shared = agreement::agree(
        &private,
        UnparsedPublicKey::new(&X25519, ephemeral_public),
        CryptoError::Decrypt("bad ephemeral key"),
        |shared| Ok(Zeroizing::new(shared.to_vec())),
    )?;
    let key = derive(&shared, ephemeral_public, &recipient_public.0)?;
    let mut body = ciphertext.to_vec();
    let plaintext = key
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| altered)?;
    Ok(plaintext.to_vec())
}

fn aead_key(
    ephemeral: &PrivateKey,
    recipient: &[u8; 32],
    ephemeral_public: &[u8],
) -> Result<LessSafeKey, CryptoError> {
    let shared = agreement::agree(
        ephemeral,
        UnparsedPublicKey::new(&X25519, recipient),
        CryptoError::InvalidKey("X25519 recipient key".into()),
        |shared| Ok(Zeroizing::new(shared.to_vec())),
    )?;
    derive(&shared, ephemeral_public, recipient)
}

fn derive(
    shared: &[u8],
    ephemeral_public: &[u8],
    recipient: &[u8],
) -> Result<LessSafeKey, CryptoError> {
    struct Len;
    impl KeyType for Len {
        fn len(&self) -> usize {
            32
        }
    }
    let salt = Salt::new(HKDF_SHA256, &[ephemeral_public, recipient].concat());
    let mut key = Zeroizing::new([0u8; 32]);
    salt.extract(shared)
        .expand(&[INFO], Len)
        .and_then(|okm| okm.fill(key.as_mut()))
        .map_err(|_| CryptoError::Backend("HKDF"))?;
    let unbound = UnboundKey::new(&AES_256_GCM, key.as_ref())
        .map_err(|_| CryptoError::Backend("AES-256-GCM key"))?;
    Ok(LessSafeKey::new(unbound))
}

fn key_id(raw: &[u8; 32]) -> String {
    Sha256::digest(raw)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 32 key bytes from raw bytes, base64 text, DER with `prefix`, or PEM of that DER.
fn key_bytes(bytes: &[u8], prefix: &[u8]) -> Result<[u8; 32], CryptoError> {
    let invalid = || CryptoError::InvalidKey("not an X25519 key (raw, base64, DER or PEM)".into());
    let der: Zeroizing<Vec<u8>> = if bytes.len() == 32 || bytes.first() == Some(&0x30) {
        Zeroizing::new(bytes.to_vec())
    } else {
        let text = std::str::from_utf8(bytes).map_err(|_| invalid())?;
        let body: Zeroizing<String> = Zeroizing::new(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.starts_with("-----"))
                .collect(),
        );
        Zeroizing::new(STANDARD.decode(body.as_bytes()).map_err(|_| invalid())?)
    };
    let raw = if der.len() == 32 {
        &der[..]
    } else {
        der.strip_prefix(prefix).ok_or_else(invalid)?
    };
    <[u8; 32]>::try_from(raw).map_err(|_| invalid())
}

fn pem(label: &str, der: &[u8]) -> String {
    let encoded = Zeroizing::new(STANDARD.encode(der));
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        encoded.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_recipient_opens_and_any_change_is_refused() {
        let secret = BoxSecretKey::generate().expect("key");
        let public = secret.public_key().expect("public");
        let sealed = seal_body(&public, b"msg-1/request", b"hello body").expect("seal");
        assert_eq!(
            open_body(&secret, b"msg-1/request", &sealed).expect("open"),
            b"hello body"
        );
        assert!(open_body(&secret, b"msg-2/request", &sealed).is_err());
        let other = BoxSecretKey::generate().expect("key");
        assert!(open_body(&other, b"msg-1/request", &sealed).is_err());
        for at in [0, 5, 40, sealed.len() - 1] {
            let mut altered = sealed.clone();
            altered[at] ^= 1;
            assert!(
                open_body(&secret, b"msg-1/request", &altered).is_err(),
                "byte {at}"
            );
        }
        assert!(open_body(&secret, b"", &sealed[..20]).is_err());
    }

    #[test]
    fn keys_round_trip_through_pem() {
        let secret = BoxSecretKey::generate().expect("key");
        let public = secret.public_key().expect("public");
        let back = BoxSecretKey::parse(secret.to_pem().as_bytes()).expect("private PEM");
        assert_eq!(back.public_key().expect("public"), public);
        assert_eq!(
            BoxPublicKey::parse(public.to_pem().as_bytes()).expect("public PEM"),
            public
        );
        assert_eq!(public.key_id().len(), 16);
        assert!(BoxPublicKey::parse(b"not a key").is_err());
        assert!(BoxPublicKey::parse(secret.to_pem().as_bytes()).is_err());
    }
}
