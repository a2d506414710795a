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
    /// Message-log appends go to a thread with a connection of its own.
    writer: crate::sqlite_writer::LedgerWriter,
}

impl SqliteBackend {
    /// Pages times page size, as the database stands (committed pages still in the
    /// write-ahead log included).
    const DATABASE_BYTES: &str =
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()";

    pub(crate) async fn open(path: &Path) -> Result<Self, StoreError> {
        // Two processes (or two handles) opening a brand-new file at the same instant can
        // collide while one switches it to WAL: SQLite reports "database is locked" there
        // without consulting the busy handler. The switch is quick and happens once per
        // file, so a few short retries settle it.
        let mut attempt = 0;
        loop {
            match Self::try_open(path).await {
                Err(StoreError::Open { source, .. })
                    if attempt < OPEN_RETRIES && is_locked(&source) =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                Err(StoreError::Migration { source, .. })
                    if attempt < OPEN_RETRIES && is_locked(&source) =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn try_open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Memory stays bounded and flat: at most 2 MiB of page cache per connection
            // (4 connections), and no memory-mapped file. A mapped file counted in the
            // gateway's RSS as it was read (up to its 256 MiB limit), and 16 MiB caches
            // grew it by up to 64 MiB more: a 200 s soak saw each gateway grow from 50 to
            // 80 MiB. Pages beyond the cache come from the kernel's page cache.
            .pragma("mmap_size", "0")
            .pragma("cache_size", "-2048")
            // The log appender's checkpointer thread copies the write-ahead log into the
            // file (`sqlite_writer::checkpoint`); no commit here does it in line.
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                url: path.display().to_string(),
                source,
            })?;
        crate::migrate::run_migrations!(&pool, crate::migrate::SQLITE, "BEGIN IMMEDIATE").await?;
        let writer = crate::sqlite_writer::LedgerWriter::start(path)?;
        Ok(Self { pool, writer })
    }

    async fn append_rows(
        &self,
        log_id: &str,
        entries: &[crate::NewLedgerEntry],
        bodies: &[Option<crate::LedgerBodies>],
    ) -> Result<u64, StoreError> {
        self.append_rows_owned(log_id, entries.to_vec(), bodies.to_vec())
            .await
    }

    async fn append_rows_owned(
        &self,
        log_id: &str,
        entries: Vec<crate::NewLedgerEntry>,
        bodies: Vec<Option<crate::LedgerBodies>>,
    ) -> Result<u64, StoreError> {
        self.writer.append(log_id, entries, bodies).await
    }

    /// The writer thread, which commits whatever is queued whenever it is free.
    fn grouping_writer(&self) -> Option<&crate::sqlite_writer::LedgerWriter> {
        Some(&self.writer)
    }

    async fn insert_op_rows(&self, records: &[crate::OpRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        self.writer.insert_op_records(records.to_vec()).await
    }
}

/// Attempts at opening a new file that another opener is switching to WAL.
const OPEN_RETRIES: u64 = 10;

fn is_locked(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.message().contains("locked"))
        || error.to_string().contains("locked")
}

crate::queries::impl_stores!(SqliteBackend, sqlx::sqlite::SqliteRow, "BEGIN IMMEDIATE");
crate::opmon::impl_opmon_store!(SqliteBackend, sqlx::sqlite::SqliteRow);
crate::replay::impl_replay_store!(SqliteBackend);

impl SqliteBackend {
    /// The replay memory: a statement per key, in one transaction.
    async fn remember_rows(&self, keys: &[([u8; 32], i64)]) -> Result<Vec<bool>, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::db("begin a replay-memory insert"))?;
        let mut fresh = Vec::with_capacity(keys.len());
        for (key, time) in keys {
            let inserted = sqlx::query(crate::replay::INSERT)
                .bind(&key[..])
                .bind(*time)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("remember a message"))?;
            fresh.push(inserted.rows_affected() == 1);
        }
        tx.commit()
            .await
            .map_err(StoreError::db("commit the replay memory"))?;
        Ok(fresh)
    }
}
