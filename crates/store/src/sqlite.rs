//! The embedded store: one SQLite file in WAL mode, fully synchronous commits.

use crate::StoreError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::time::Duration;

/// SQLite backend.
#[derive(Debug)]
pub(crate) struct SqliteBackend {
    pool: SqlitePool,
}

impl SqliteBackend {
    pub(crate) async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                url: path.display().to_string(),
                source,
            })?;
        crate::migrate::run_migrations!(&pool, crate::migrate::SQLITE, "BEGIN IMMEDIATE").await?;
        Ok(Self { pool })
    }
}

crate::queries::impl_stores!(SqliteBackend, sqlx::sqlite::SqliteRow, "BEGIN IMMEDIATE");
crate::opmon::impl_opmon_store!(SqliteBackend, sqlx::sqlite::SqliteRow);
