//! Cryptography for lienthong: signature suites, the [`Signer`] abstraction, software keys,
//! the passphrase-encrypted key store, the crypto policies (such as [`CryptoPolicy::vn`]),
//! the RFC 9162 Merkle tree ([`merkle`]) and batch signing ([`BatchSigner`]).
//!
//! This crate does no network IO. The only IO is the key store reading and writing its own
//! files; the batch signer is a tokio task, but it only computes. Every signature it produces
//! records the [`Suite`] that made it, so that a verifier never has to guess an algorithm.

mod batch;
mod body_box;
mod error;
mod hash;
mod key;
mod keystore;
pub mod merkle;
mod policy;
mod signer;
mod suite;

pub use batch::{
    BatchSignature, BatchSigner, BatchSignerStats, BatchVerifier, BatchVerifierStats, Gather,
    MAX_BATCH, MalformedBatchSignature, sign_batch,
};
pub use body_box::{BoxPublicKey, BoxSecretKey, open_body, seal_body};
pub use error::CryptoError;
pub use hash::HashAlgorithm;
pub use key::{KeyAlgorithm, PublicKey, SoftwareKey};
pub use keystore::{KdfParams, KeyStore};
pub use policy::{CryptoPolicy, PolicyViolation};
pub use signer::{Signature, Signer};
pub use suite::{Suite, X509SignatureAlgorithm};

/// Fill `buf` from the operating system's secure random generator.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    use aws_lc_rs::rand::SecureRandom as _;
    aws_lc_rs::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Backend("random generator failed"))
}
