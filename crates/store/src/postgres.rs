//! The shared store: PostgreSQL, for several nodes serving one federation or gateway.

use crate::StoreError;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

/// PostgreSQL backend.
#[derive(Debug)]
pub(crate) struct PgBackend {
    pool: PgPool,
    /// The log values this process upserted lately (see `pack.rs`).
    upserted: std::sync::Mutex<crate::pack::Upserted>,
}

impl PgBackend {
    pub(crate) async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|source| StoreError::Open {
                url: redact(url),
                source,
            })?;
        // Several nodes may start at once: serialise their migrations on an advisory lock.
        let mut lock = pool
            .acquire()
            .await
            .map_err(StoreError::db("acquire a connection"))?;
        sqlx::query("SELECT pg_advisory_lock(7432001)")
            .execute(&mut *lock)
            .await
            .map_err(StoreError::db("take the migration lock"))?;
        let migrated =
            crate::migrate::run_migrations!(&pool, crate::migrate::POSTGRES, "BEGIN").await;
        sqlx::query("SELECT pg_advisory_unlock(7432001)")
            .execute(&mut *lock)
            .await
            .map_err(StoreError::db("release the migration lock"))?;
        migrated?;
        Ok(Self {
            pool,
            upserted: Default::default(),
        })
    }

    /// The message log's append: growing the log's size row first makes concurrent
    /// appenders to one log (in any node) queue on its row lock until this one commits.
    async fn append_rows(
        &self,
        log_id: &str,
        entries: &[crate::NewLedgerEntry],
        bodies: &[Option<crate::LedgerBodies>],
    ) -> Result<u64, StoreError> {
        use crate::LedgerStore as _;
        if entries.is_empty() {
            return self.size(log_id).await;
        }
        let count = crate::ledger::to_sql(u64::try_from(entries.len()).unwrap_or(u64::MAX))?;
        let mut tx = self
            .pool
            .begin_with("BEGIN")
            .await
            .map_err(crate::StoreError::db("begin a ledger append"))?;
        let size: i64 = sqlx::query_scalar(
                "INSERT INTO ledger_logs (log_id, size) VALUES ($1, $2) \
                 ON CONFLICT (log_id) DO UPDATE SET size = ledger_logs.size + excluded.size RETURNING size",
            )
            .bind(log_id)
            .bind(count)
            .fetch_one(&mut *tx)
            .await
            .map_err(crate::StoreError::db("grow a ledger"))?;
        let first = size - count;
        let packed: Vec<crate::pack::Packed> = entries
            .iter()
            .map(|entry| crate::pack::pack(&entry.record))
            .collect();
        // Which values to write is decided only now, holding the log's row lock (taken by
        // the size update above): an append to the same log by another task or node waits
        // until this transaction has committed or rolled back, and a failure below calls
        // `forget` before the lock is released, so no append ever skips a value that an
        // uncommitted (or rolled back) transaction was to write.
        let upserts: Vec<(&[u8; 32], &[u8], i64)> = {
            let mut upserted = self
                .upserted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            entries
                .iter()
                .zip(&packed)
                .flat_map(|(entry, packed)| {
                    packed
                        .blobs
                        .iter()
                        .map(move |(hash, content)| (hash, *content, entry.recorded_at))
                })
                .filter(|(hash, _, at)| upserted.needed(log_id, hash, *at))
                .collect()
        };
        let forget = |error| {
            self.upserted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .forget();
            error
        };
        for (hash, content, at) in upserts {
            sqlx::query(crate::pack::UPSERT)
                .bind(log_id)
                .bind(&hash[..])
                .bind(content)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(crate::StoreError::db("keep a ledger value"))
                .map_err(forget)?;
        }
        let mut idx = first;
        for (chunk, stored) in entries
            .chunks(crate::ledger::INSERT_CHUNK)
            .zip(packed.chunks(crate::ledger::INSERT_CHUNK))
        {
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(crate::ledger::insert_statement(
                chunk.len(),
            )));
            for (entry, packed) in chunk.iter().zip(stored) {
                insert = insert
                    .bind(log_id)
                    .bind(idx)
                    .bind(&entry.message_id)
                    .bind(&entry.leaf_hash[..])
                    .bind(&packed.stored)
                    .bind(entry.recorded_at);
                idx += 1;
            }
            insert
                .execute(&mut *tx)
                .await
                .map_err(crate::StoreError::db("insert ledger records"))
                .map_err(forget)?;
        }
        for (offset, kept) in bodies.iter().take(entries.len()).enumerate() {
            let Some(kept) = kept else { continue };
            sqlx::query(
                    "INSERT INTO ledger_bodies (log_id, idx, encrypted_to, request, response) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(log_id)
                .bind(first + crate::ledger::to_sql(offset as u64)?)
                .bind(kept.encrypted_to.as_deref())
                .bind(kept.request.as_deref())
                .bind(kept.response.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(crate::StoreError::db("insert ledger bodies"))
                .map_err(forget)?;
        }
        tx.commit()
            .await
            .map_err(crate::StoreError::db("commit a ledger append"))
            .map_err(forget)?;
        crate::ledger::from_sql(first)
    }

    async fn insert_op_rows(&self, records: &[crate::OpRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(crate::StoreError::db("begin an op-monitoring insert"))?;
        for r in records {
            sqlx::query(crate::opmon::INSERT)
                .bind(&r.server_id)
                .bind(&r.side)
                .bind(&r.message_id)
                .bind(&r.client)
                .bind(&r.service)
                .bind(&r.client_server)
                .bind(&r.service_server)
                .bind(&r.user_id)
                .bind(&r.issue)
                .bind(&r.represented_party)
                .bind(&r.service_type)
                .bind(&r.method)
                .bind(&r.path)
                .bind(r.request_in)
                .bind(r.request_out)
                .bind(r.response_in)
                .bind(r.response_out)
                .bind(r.request_size)
                .bind(r.response_size)
                .bind(r.status)
                .bind(r.succeeded)
                .bind(&r.fault_code)
                .bind(&r.fault_string)
                .execute(&mut *tx)
                .await
                .map_err(crate::StoreError::db("insert op-monitoring records"))?;
        }
        tx.commit()
            .await
            .map_err(crate::StoreError::db("commit op-monitoring records"))?;
        Ok(())
    }

    async fn append_rows_owned(
        &self,
        log_id: &str,
        entries: Vec<crate::NewLedgerEntry>,
        bodies: Vec<Option<crate::LedgerBodies>>,
    ) -> Result<u64, StoreError> {
        self.append_rows(log_id, &entries, &bodies).await
    }
}

/// A database URL without its password, for logs and errors.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

crate::queries::impl_stores!(PgBackend, sqlx::postgres::PgRow, "BEGIN");
crate::opmon::impl_opmon_store!(PgBackend, sqlx::postgres::PgRow);
crate::replay::impl_replay_store!(PgBackend);
