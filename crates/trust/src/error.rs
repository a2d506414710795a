//! The error type of the trust services.

/// What went wrong running the trust services. Shown to the local operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A PKI operation failed.
    #[error(transparent)]
    Pki(#[from] lienthong_pki::PkiError),
    /// A key could not be created or unlocked.
    #[error(transparent)]
    Crypto(#[from] lienthong_crypto::CryptoError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] lienthong_store::StoreError),
    /// The PKI directory is missing, already initialised, or inconsistent.
    #[error("PKI directory {dir}: {problem}")]
    Directory { dir: String, problem: String },
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// The operator asked for something impossible.
    #[error("{0}")]
    Invalid(String),
}

impl TrustError {
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.display().to_string();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
