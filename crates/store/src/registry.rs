//! The central registry's state: registry objects (JSON bodies with revisions), the audit
//! log and the published global configurations.

use crate::StoreError;

/// A registry object as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Object kind (`member`, `gateway`, ...).
    pub kind: String,
    /// Identifier within the kind.
    pub id: String,
    /// JSON body.
    pub body: String,
    /// Incremented on every update; updates name the revision they read.
    pub revision: i64,
}

/// An audit record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// Unix seconds.
    pub at: i64,
    /// Who: a token name, a gateway id, or `anonymous`.
    pub actor: String,
    /// What: e.g. `POST /api/v1/members`.
    pub action: String,
    /// On what: an identifier, or empty.
    pub target: String,
    /// `ok`, `refused` or `failed`.
    pub result: String,
    /// HTTP status and a short reason.
    pub detail: String,
}

/// An audit record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increasing identifier.
    pub id: i64,
    /// The record.
    pub entry: NewAuditEntry,
}

/// A published global configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfVersion {
    /// Version number.
    pub version: i64,
    /// Unix seconds.
    pub generated_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// The signed envelope as served.
    pub envelope: Vec<u8>,
}

/// Storage of the central registry.
#[async_trait::async_trait]
pub trait RegistryStore: Send + Sync {
    /// Insert a new object; an existing one is [`StoreError::Duplicate`].
    async fn insert_object(&self, kind: &str, id: &str, body: &str) -> Result<(), StoreError>;
    /// Replace an object if it is still at `expected_revision`; returns the new revision.
    /// A concurrent change is [`StoreError::Conflict`]; a missing object [`StoreError::NotFound`].
    async fn update_object(
        &self,
        kind: &str,
        id: &str,
        body: &str,
        expected_revision: i64,
    ) -> Result<i64, StoreError>;
    /// One object.
    async fn object(&self, kind: &str, id: &str) -> Result<Option<StoredObject>, StoreError>;
    /// All objects of a kind, sorted by id.
    async fn objects(&self, kind: &str) -> Result<Vec<StoredObject>, StoreError>;
    /// Delete an object; false if it did not exist.
    async fn delete_object(&self, kind: &str, id: &str) -> Result<bool, StoreError>;
    /// Append to the audit log; returns the record's id.
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError>;
    /// Audit records with id > `after`, oldest first, at most `limit`.
    async fn audit(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError>;
    /// Record a published configuration (versions are unique).
    async fn insert_conf_version(&self, version: &ConfVersion) -> Result<(), StoreError>;
    /// The newest published configuration.
    async fn latest_conf_version(&self) -> Result<Option<ConfVersion>, StoreError>;
}
