//! Storage for lienthong. Each concern has a trait ([`PkiStore`], ...) with two
//! implementations behind one [`Store`] handle chosen by a database URL: embedded SQLite
//! (`sqlite://PATH`, the default, no server to install) and PostgreSQL (`postgres://...`),
//! for several machines sharing state.

mod compact;
mod error;
mod ledger;
mod migrate;
mod opmon;
mod pack;
mod pki;
mod postgres;
mod queries;
mod registry;
mod replay;
mod sqlite;
mod sqlite_writer;

pub use error::StoreError;
pub use ledger::{
    Appended, LedgerBodies, LedgerStore, NewLedgerEntry, PrunedPrefix, StoredArchive, StoredHead,
};
pub use opmon::{OpMonitorStore, OpQuery, OpRecord, StoredOpRecord};
pub use pack::plain_stored_form;
pub use pki::{CertificateRecord, PkiStore, Revocation, RevokeOutcome};
pub use registry::{AuditEntry, ConfVersion, NewAuditEntry, RegistryStore, StoredObject};
pub use replay::ReplayStore;

use std::sync::Arc;

/// An opened store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Arc<dyn Backend>,
    /// A database server (several processes may share it), not an embedded file.
    shared: bool,
}

/// All storage traits together; implemented by each backend.
#[async_trait::async_trait]
pub(crate) trait Backend:
    PkiStore
    + RegistryStore
    + LedgerStore
    + OpMonitorStore
    + ReplayStore
    + std::fmt::Debug
    + Send
    + Sync
{
    /// The database's size in bytes (see [`Store::database_bytes`]).
    async fn database_bytes(&self) -> Result<u64, StoreError>;
}

impl Store {
    /// Open (creating if needed) the store at `url` and apply pending migrations.
    ///
    /// `sqlite://PATH` (or a bare path) opens an embedded database file;
    /// `postgres://` / `postgresql://` connects to PostgreSQL.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let shared = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let backend: Arc<dyn Backend> = if shared {
            Arc::new(postgres::PgBackend::connect(url).await?)
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            Arc::new(sqlite::SqliteBackend::open(std::path::Path::new(path)).await?)
        };
        Ok(Self { backend, shared })
    }

    /// The PKI state.
    pub fn pki(&self) -> &dyn PkiStore {
        self.backend.as_ref()
    }

    /// The central registry's state.
    pub fn registry(&self) -> &dyn RegistryStore {
        self.backend.as_ref()
    }

    /// The gateways' message logs.
    pub fn ledger(&self) -> &dyn LedgerStore {
        self.backend.as_ref()
    }

    /// The gateways' operational-monitoring records.
    pub fn opmon(&self) -> &dyn OpMonitorStore {
        self.backend.as_ref()
    }

    /// The replay memory shared by a gateway cluster's nodes.
    pub fn replay(&self) -> &dyn ReplayStore {
        self.backend.as_ref()
    }

    /// The size of the database in bytes: its pages (write-ahead log included) for the
    /// embedded store, `pg_database_size` on PostgreSQL.
    pub async fn database_bytes(&self) -> Result<u64, StoreError> {
        self.backend.database_bytes().await
    }

    /// Is this a server database that several processes (nodes) may share?
    pub fn is_shared(&self) -> bool {
        self.shared
    }
}
