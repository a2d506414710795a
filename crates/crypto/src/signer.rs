//! The [`Signer`] trait: what every key — software, HSM, or national algorithm — offers.

use crate::{CryptoError, PublicKey, Suite};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A signature together with the suite that made it.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    /// The suite that produced the signature; verifiers dispatch on it.
    pub suite: Suite,
    /// The signature value in the suite's standard encoding (DER for ECDSA).
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", self.to_text())
    }
}

impl Signature {
    /// Text form `SUITE:BASE64`, as carried in headers and JSON.
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.suite.id(), STANDARD.encode(&self.bytes))
    }

    /// Parse the text form written by [`Signature::to_text`].
    pub fn from_text(text: &str) -> Result<Self, CryptoError> {
        let (suite, value) = text
            .split_once(':')
            .ok_or_else(|| CryptoError::UnsupportedAlgorithm("signature without a suite".into()))?;
        let bytes = STANDARD
            .decode(value)
            .map_err(|_| CryptoError::BadSignature)?;
        Ok(Self {
            suite: Suite::from_id(suite)?,
            bytes,
        })
    }
}

/// Something that can sign: a software key, a PKCS #11 object, a remote signing service.
///
/// Implementations are blocking (an HSM call is); async callers use `spawn_blocking` or
/// batch many messages under one signature. `sign` must be safe to call concurrently.
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// The suite every signature of this signer uses.
    fn suite(&self) -> Suite;
    /// The public half of the key.
    fn public_key(&self) -> &PublicKey;
    /// Sign `message` (the suite hashes it).
    fn sign(&self, message: &[u8]) -> Result<Signature, CryptoError>;
    /// Is one signature quick enough (tens of microseconds, no IO) to be made on an async
    /// thread? Batching callers then skip the hand-off to a blocking thread, which costs
    /// more than such a signature. The default is no: an HSM call or an RSA key blocks.
    fn signs_in_microseconds(&self) -> bool {
        false
    }
}

impl<S: Signer + ?Sized> Signer for std::sync::Arc<S> {
    fn suite(&self) -> Suite {
        (**self).suite()
    }
    fn public_key(&self) -> &PublicKey {
        (**self).public_key()
    }
    fn sign(&self, message: &[u8]) -> Result<Signature, CryptoError> {
        (**self).sign(message)
    }
    fn signs_in_microseconds(&self) -> bool {
        (**self).signs_in_microseconds()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let signature = Signature {
            suite: Suite::Ed25519,
            bytes: vec![1, 2, 3, 250],
        };
        let text = signature.to_text();
        assert!(text.starts_with("ed25519:"));
        assert_eq!(Signature::from_text(&text).ok(), Some(signature));
        assert!(Signature::from_text("nosuite").is_err());
        assert!(Signature::from_text("md5-rsa:AAAA").is_err());
        assert!(Signature::from_text("ed25519:@@@").is_err());
    }
}
