//! PKI state: issued certificates, revocations, serial counters and CA settings.

use crate::StoreError;

/// One issued certificate as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// Serial number, lower-case hex.
    pub serial: String,
    /// Profile name (`auth`, `sign`, ...).
    pub profile: String,
    /// Subject as an RFC 4514 string.
    pub subject: String,
    /// Federation identifier in the subject, if any.
    pub identity: Option<String>,
    /// DER encoding.
    pub der: Vec<u8>,
    /// Validity, Unix seconds.
    pub not_before: i64,
    /// Validity, Unix seconds.
    pub not_after: i64,
    /// When it was issued, Unix seconds.
    pub issued_at: i64,
    /// The revocation, if revoked.
    pub revocation: Option<Revocation>,
}

/// When and why a certificate was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Unix seconds.
    pub time: i64,
    /// RFC 5280 reason name, if given.
    pub reason: Option<String>,
}

/// What a revocation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// Now revoked.
    Revoked,
    /// Was already revoked (the first revocation stands).
    AlreadyRevoked(Revocation),
    /// No certificate with this serial was issued here.
    NotFound,
}

/// Storage of the CA's state.
#[async_trait::async_trait]
pub trait PkiStore: Send + Sync {
    /// Record an issued certificate. A duplicate serial is [`StoreError::Duplicate`].
    async fn insert_certificate(&self, record: &CertificateRecord) -> Result<(), StoreError>;
    /// The certificate with this serial, if issued here.
    async fn certificate(&self, serial: &str) -> Result<Option<CertificateRecord>, StoreError>;
    /// All certificates, oldest first.
    async fn certificates(&self) -> Result<Vec<CertificateRecord>, StoreError>;
    /// Revoke a certificate; the first revocation stands.
    async fn revoke(
        &self,
        serial: &str,
        revocation: &Revocation,
    ) -> Result<RevokeOutcome, StoreError>;
    /// Atomically reserve `count` values of the counter `name`; returns the first one.
    /// Counters start at 1 and never hand out a value twice, even across restarts.
    async fn reserve(&self, name: &str, count: i64) -> Result<i64, StoreError>;
    /// The current value of counter `name` (0 if never used).
    async fn counter(&self, name: &str) -> Result<i64, StoreError>;
    /// A named setting.
    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Set a named setting (insert or replace).
    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError>;
}
