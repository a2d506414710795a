//! The error type of the PKI crate.

use lienthong_crypto::{CryptoError, PolicyViolation};

/// What went wrong building or checking a PKI object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// The certificate signing request could not be parsed.
    #[error("malformed certificate signing request: {0}")]
    MalformedCsr(String),
    /// The CSR's signature does not verify with its own key (no proof of possession).
    #[error(
        "certificate signing request signature does not verify: the requester has not proved possession of the key"
    )]
    CsrSignature,
    /// The key or algorithm is forbidden by the crypto policy.
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    /// A cryptographic operation failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A certificate could not be parsed or is not what was expected.
    #[error("invalid certificate: {0}")]
    Certificate(String),
    /// A federation identifier is malformed.
    #[error(transparent)]
    Identifier(#[from] lienthong_model::IdError),
    /// A value could not be DER-encoded (a bug or an absurd input such as a huge name).
    #[error("cannot encode {what}: {source}")]
    Encoding {
        what: &'static str,
        source: der::Error,
    },
    /// The validity period is empty or out of range.
    #[error("invalid validity period: {0}")]
    Validity(String),
}

impl PkiError {
    pub(crate) fn encoding(what: &'static str) -> impl FnOnce(der::Error) -> Self {
        move |source| Self::Encoding { what, source }
    }
}
