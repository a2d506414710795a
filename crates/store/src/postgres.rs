//! The shared store: PostgreSQL, for several nodes serving one federation or gateway.

use crate::StoreError;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

/// An append of records whose values are all stored already, and no bodies, as one
/// statement (`$1` log, `$2` count, then arrays of message ids, leaf hashes, stored records
/// and Unix seconds): the log's size row grows first, which takes its lock as the
/// transaction did, and the records take the indexes before the new size. Returns the
/// first index.
const APPEND_IN_ONE: &str = "WITH grown AS ( \
        INSERT INTO ledger_logs (log_id, size) VALUES ($1, $2) \
        ON CONFLICT (log_id) DO UPDATE SET size = ledger_logs.size + excluded.size \
        RETURNING size), \
    added AS ( \
        INSERT INTO ledger_records (log_id, idx, message_id, leaf_hash, record, recorded_at) \
        SELECT $1, grown.size - $2 + r.ord - 1, r.message_id, r.leaf_hash, r.record, r.recorded_at \
        FROM grown, unnest($3::text[], $4::bytea[], $5::bytea[], $6::bigint[]) \
            WITH ORDINALITY AS r(message_id, leaf_hash, record, recorded_at, ord)) \
    SELECT size - $2 FROM grown";

/// PostgreSQL backend.
#[derive(Debug)]
pub(crate) struct PgBackend {
    pool: PgPool,
    /// The log values this process upserted lately (see `pack.rs`).
    upserted: std::sync::Mutex<crate::pack::Upserted>,
}

impl PgBackend {
    const DATABASE_BYTES: &str = "SELECT pg_database_size(current_database())";

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
    ///
    /// Most appends refer only to values (certificates, OCSP responses) this process has
    /// stored already, and keep no bodies: they go as one statement
    /// ([`APPEND_IN_ONE`]), one round trip where the transaction took four (begin, grow,
    /// insert, commit), each a wake-up of the server and of this process.
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
        let packed: Vec<crate::pack::Packed> = entries
            .iter()
            .map(|entry| crate::pack::pack(&entry.record))
            .collect();
        if bodies.iter().all(Option::is_none) && self.all_settled(log_id, entries, &packed) {
            return self.append_in_one(log_id, count, entries, &packed).await;
        }
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
                        .values(&entry.record)
                        .map(move |(hash, content)| (hash, content, entry.recorded_at))
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
        for &(hash, content, at) in &upserts {
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
        self.upserted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .confirm(log_id, upserts.iter().map(|&(hash, _, _)| hash));
        crate::ledger::from_sql(first)
    }

    /// Whether every value the packed records refer to is stored by an upsert of this
    /// process known to be committed (see [`crate::pack::Upserted::settled`]).
    fn all_settled(
        &self,
        log_id: &str,
        entries: &[crate::NewLedgerEntry],
        packed: &[crate::pack::Packed],
    ) -> bool {
        let upserted = self
            .upserted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.iter().zip(packed).all(|(entry, packed)| {
            packed
                .blobs
                .iter()
                .all(|(hash, _)| upserted.settled(log_id, hash, entry.recorded_at))
        })
    }

    /// The append as the one statement [`APPEND_IN_ONE`].
    async fn append_in_one(
        &self,
        log_id: &str,
        count: i64,
        entries: &[crate::NewLedgerEntry],
        packed: &[crate::pack::Packed],
    ) -> Result<u64, StoreError> {
        let message_ids: Vec<&str> = entries.iter().map(|e| e.message_id.as_str()).collect();
        let leaf_hashes: Vec<&[u8]> = entries.iter().map(|e| &e.leaf_hash[..]).collect();
        let records: Vec<&[u8]> = packed.iter().map(|p| p.stored.as_slice()).collect();
        let times: Vec<i64> = entries.iter().map(|e| e.recorded_at).collect();
        let first: i64 = sqlx::query_scalar(APPEND_IN_ONE)
            .bind(log_id)
            .bind(count)
            .bind(&message_ids)
            .bind(&leaf_hashes)
            .bind(&records)
            .bind(&times)
            .fetch_one(&self.pool)
            .await
            .map_err(crate::StoreError::db("append to a ledger"))?;
        crate::ledger::from_sql(first)
    }

    /// Op-monitoring records as one statement whatever their number: a column of values
    /// each ([`crate::opmon::INSERT_ARRAYS`]), where a statement per record was a round
    /// trip per exchange.
    async fn insert_op_rows(&self, records: &[crate::OpRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        // One array per column, in the order of the statement's columns.
        fn column<'a, T>(
            records: &'a [crate::OpRecord],
            field: impl Fn(&'a crate::OpRecord) -> T,
        ) -> Vec<T> {
            records.iter().map(field).collect()
        }
        sqlx::query(crate::opmon::INSERT_ARRAYS)
            .bind(column(records, |r| r.server_id.as_str()))
            .bind(column(records, |r| r.side.as_str()))
            .bind(column(records, |r| r.message_id.as_str()))
            .bind(column(records, |r| r.client.as_str()))
            .bind(column(records, |r| r.service.as_str()))
            .bind(column(records, |r| r.client_server.as_deref()))
            .bind(column(records, |r| r.service_server.as_deref()))
            .bind(column(records, |r| r.user_id.as_str()))
            .bind(column(records, |r| r.issue.as_str()))
            .bind(column(records, |r| r.represented_party.as_str()))
            .bind(column(records, |r| r.service_type.as_str()))
            .bind(column(records, |r| r.method.as_str()))
            .bind(column(records, |r| r.path.as_str()))
            .bind(column(records, |r| r.request_in))
            .bind(column(records, |r| r.request_out))
            .bind(column(records, |r| r.response_in))
            .bind(column(records, |r| r.response_out))
            .bind(column(records, |r| r.request_size))
            .bind(column(records, |r| r.response_size))
            .bind(column(records, |r| r.status))
            .bind(column(records, |r| r.succeeded))
            .bind(column(records, |r| r.fault_code.as_deref()))
            .bind(column(records, |r| r.fault_string.as_deref()))
            .execute(&self.pool)
            .await
            .map_err(crate::StoreError::db("insert op-monitoring records"))?;
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

    /// None: every append is a transaction of its own here, and a gateway batches its
    /// records itself.
    fn grouping_writer(&self) -> Option<&crate::sqlite_writer::LedgerWriter> {
        None
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

impl PgBackend {
    /// The replay memory in one statement per batch: the keys that were new come back.
    async fn remember_rows(&self, keys: &[([u8; 32], i64)]) -> Result<Vec<bool>, StoreError> {
        let hashes: Vec<&[u8]> = keys.iter().map(|(key, _)| &key[..]).collect();
        let times: Vec<i64> = keys.iter().map(|(_, time)| *time).collect();
        let inserted: Vec<Vec<u8>> = sqlx::query_scalar(crate::replay::INSERT_ARRAYS)
            .bind(&hashes)
            .bind(&times)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("remember messages"))?;
        Ok(crate::replay::new_once(keys, &inserted))
    }
}
