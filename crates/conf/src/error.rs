//! Why a configuration was refused.

/// A configuration could not be obtained or was refused. Each refusal is distinct so that
/// an operator knows at once whether it was tampering, a key problem or plain expiry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfError {
    /// Not a signed configuration document at all.
    #[error("malformed global configuration: {0}")]
    Malformed(String),
    /// A signature by a key the anchor lists did not verify: the content was altered.
    #[error(
        "global configuration signature by anchor key {key_id} does not verify: the document was altered in transit or storage"
    )]
    BadSignature { key_id: String },
    /// No signature was made by any key the anchor lists.
    #[error("global configuration is not signed by any key in the anchor (signed by: {signed_by})")]
    UnknownKey { signed_by: String },
    /// The configuration is past its expiry time.
    #[error(
        "global configuration version {version} expired at {expires_at} (Unix time; now {now}): refusing to exchange until a fresh one is downloaded"
    )]
    Expired {
        version: u64,
        expires_at: i64,
        now: i64,
    },
    /// Signed correctly, but for another federation.
    #[error("global configuration is for instance {found:?}, the anchor is for {expected:?}")]
    WrongInstance { expected: String, found: String },
    /// Older than the copy already held (a replay of an old document).
    #[error("global configuration version {offered} is older than the version {held} already held")]
    Rollback { held: u64, offered: u64 },
    /// No configuration has been obtained yet.
    #[error("no global configuration has been downloaded yet")]
    Missing,
    /// The download failed.
    #[error("cannot download the global configuration from {url}: {reason}")]
    Download { url: String, reason: String },
    /// The local copy could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// Signing failed (registry side).
    #[error(transparent)]
    Crypto(#[from] lienthong_crypto::CryptoError),
}
