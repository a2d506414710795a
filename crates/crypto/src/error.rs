//! The error type of the crypto crate.

/// What went wrong in a cryptographic operation. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A signature did not verify. Deliberately says nothing more.
    #[error("signature verification failed")]
    BadSignature,
    /// A key could not be parsed, or is of a kind this build does not support.
    #[error("invalid or unsupported key: {0}")]
    InvalidKey(String),
    /// A suite or algorithm identifier that this build does not know.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// The key does not belong to the suite it is used with.
    #[error("key of type {key} cannot be used with suite {suite}")]
    SuiteMismatch { key: String, suite: String },
    /// The configured crypto policy forbids the key, suite or hash.
    #[error(transparent)]
    Policy(#[from] crate::PolicyViolation),
    /// The passphrase was wrong or the key file was altered (the AEAD tag did not verify).
    #[error("cannot decrypt key {name}: wrong passphrase or the key file was altered")]
    WrongPassphrase { name: String },
    /// A key file is not in the expected format.
    #[error("key file {name} is malformed: {reason}")]
    MalformedKeyFile { name: String, reason: String },
    /// A key with this name already exists; keys are never silently overwritten.
    #[error("key {name} already exists in the key store")]
    KeyExists { name: String },
    /// A key name that could escape the key store directory or is otherwise unusable.
    #[error("invalid key name {0:?}: use letters, digits, '-', '_' and '.' (not leading)")]
    InvalidKeyName(String),
    /// The key store could not read or write a file.
    #[error("key store IO on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// An encrypted body could not be opened (see `open_body`).
    #[error("cannot decrypt: {0}")]
    Decrypt(&'static str),
    /// The system random generator or the signing backend failed.
    #[error("cryptographic backend failure: {0}")]
    Backend(&'static str),
}
