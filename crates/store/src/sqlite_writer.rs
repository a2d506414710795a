//! The embedded store's message-log appender: one OS thread owning a SQLite connection of
//! its own, with its statements prepared once. Appends queued while a commit is in
//! progress are committed together in the next transaction, so a burst costs one fsync.
//!
//! Through sqlx every statement of an append was a round trip to sqlx's worker thread
//! (begin, grow the log, insert, commit: four hand-offs and wake-ups), and a commit took
//! about 1.4 ms on this machine where SQLite itself needs 0.5 ms (mostly the fsync). Here
//! the whole transaction runs on the thread that owns the connection.

use crate::ledger::{from_sql, to_sql};
use crate::{LedgerBodies, NewLedgerEntry, OpRecord, StoreError};
use rusqlite::{Connection, TransactionBehavior, params};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

/// One queued write.
enum Job {
    /// Records for a message log; answered with the index of the first.
    Append {
        log_id: String,
        entries: Vec<NewLedgerEntry>,
        bodies: Vec<Option<LedgerBodies>>,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Operational-monitoring records. They are written here too, not through the sqlx
    /// pool: SQLite has one writer at a time, and an op-monitoring batch committed from
    /// the pool (row by row through sqlx's worker, every 250 ms) held the write lock for
    /// milliseconds while log appends waited in SQLite's busy handler, which sleeps in
    /// steps of 1, 2, 5, 10 ms: about 1 % of exchanges waited 5-25 ms on their commit.
    OpRecords {
        records: Vec<OpRecord>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

impl Job {
    /// Write within `tx`: the index of the first record for an append.
    fn write(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<u64> {
        match self {
            Self::Append {
                log_id,
                entries,
                bodies,
                ..
            } => append_one(tx, log_id, entries, bodies),
            Self::OpRecords { records, .. } => insert_op_records(tx, records).map(|()| 0),
        }
    }

    /// Tell the caller how it went.
    fn answer(self, result: rusqlite::Result<u64>) {
        match self {
            Self::Append { reply, .. } => {
                let _ = reply.send(result.map_err(|e| writer_error("append to a message log", e)));
            }
            Self::OpRecords { reply, .. } => {
                let _ = reply.send(
                    result
                        .map(|_| ())
                        .map_err(|e| writer_error("insert op-monitoring records", e)),
                );
            }
        }
    }
}

/// Queued writes committed at most per transaction.
const MAX_JOBS: usize = 256;

/// A handle to the appender thread; the thread ends when the last handle is dropped.
#[derive(Debug)]
pub(crate) struct LedgerWriter {
    queue: mpsc::Sender<Job>,
    /// Dropped with the writer, which stops the checkpointer.
    _checkpoints: mpsc::Sender<()>,
}

impl LedgerWriter {
    /// Open a connection to the (already migrated) database at `path` and start the
    /// thread.
    pub(crate) fn start(path: &Path) -> Result<Self, StoreError> {
        let connection = open(path).map_err(|e| writer_error("open the log appender", e))?;
        let (queue, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("lienthong-log-append".into())
            .spawn(move || serve(connection, jobs))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the log appender: {e}")))?;
        let checkpointer = open(path).map_err(|e| writer_error("open the checkpointer", e))?;
        let (checkpoints, stop) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("lienthong-checkpoint".into())
            .spawn(move || checkpoint(checkpointer, stop))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the checkpointer: {e}")))?;
        Ok(Self {
            queue,
            _checkpoints: checkpoints,
        })
    }

    /// Append `entries` (and `bodies` beside them) to `log_id` in one transaction, possibly
    /// shared with other appends; returns the index of the first.
    pub(crate) async fn append(
        &self,
        log_id: &str,
        entries: Vec<NewLedgerEntry>,
        bodies: Vec<Option<LedgerBodies>>,
    ) -> Result<u64, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job::Append {
                log_id: log_id.to_owned(),
                entries,
                bodies,
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Insert operational-monitoring records in one transaction, possibly shared.
    pub(crate) async fn insert_op_records(&self, records: Vec<OpRecord>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job::OpRecords { records, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Corrupt("the embedded store's writer thread has stopped".into())
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    // The same settings as the sqlx pool's connections (see `sqlite.rs`): WAL, every commit
    // durable, bounded memory.
    connection.busy_timeout(Duration::from_secs(10))?;
    connection.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.pragma_update(None, "mmap_size", 0)?;
    connection.pragma_update(None, "cache_size", -2048)?;
    connection.set_prepared_statement_cache_capacity(8);
    // Checkpoints are the checkpointer thread's work (see `checkpoint`), never a commit's.
    connection.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(connection)
}

/// How often the write-ahead log is copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// A write-ahead log past this many pages (64 MiB) is checkpointed even if that makes
/// writers wait: readers that never let a passive checkpoint finish must not grow it
/// without bound.
const WAL_LIMIT_PAGES: i64 = 16_384;

/// Copy the write-ahead log into the database file every [`CHECKPOINT_EVERY`] until `stop`
/// is dropped. With SQLite's automatic checkpoints, the commit that crossed 1,000 pages
/// did the copy and its fsyncs itself, and every exchange waiting on that commit waited
/// too: at 500 exchanges/s that was several commits a second held up by milliseconds,
/// most of the 99th percentile. A passive checkpoint here runs beside the writers.
fn checkpoint(connection: Connection, stop: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        let passive = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        let result = match passive {
            Ok((pages, copied)) if pages > WAL_LIMIT_PAGES && copied < pages => connection
                .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
                .map(|()| {
                    tracing::warn!(
                        pages,
                        "write-ahead log past its limit; checkpointed with writers held"
                    )
                }),
            other => other.map(|_| ()),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "cannot checkpoint the embedded store's write-ahead log");
        }
    }
}

fn serve(mut connection: Connection, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match commit(&mut connection, &batch) {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    job.answer(Ok(result));
                }
            }
            // One failing write must not fail the others queued with it: retry each in a
            // transaction of its own, so each caller gets its own answer.
            Err(_) if batch.len() > 1 => {
                for job in batch {
                    let result = commit(&mut connection, std::slice::from_ref(&job))
                        .map(|results| results.first().copied().unwrap_or_default());
                    job.answer(result);
                }
            }
            Err(error) => {
                if let Some(job) = batch.pop() {
                    job.answer(Err(error));
                }
            }
        }
    }
}

/// Write every job in one transaction; each job's result.
fn commit(connection: &mut Connection, batch: &[Job]) -> rusqlite::Result<Vec<u64>> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let results = batch
        .iter()
        .map(|job| job.write(&tx))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.commit()?;
    Ok(results)
}

fn insert_op_records(tx: &rusqlite::Transaction<'_>, records: &[OpRecord]) -> rusqlite::Result<()> {
    let sql = crate::opmon::INSERT.replace('$', "?");
    let mut insert = tx.prepare_cached(&sql)?;
    for r in records {
        insert.execute(params![
            r.server_id,
            r.side,
            r.message_id,
            r.client,
            r.service,
            r.client_server,
            r.service_server,
            r.user_id,
            r.issue,
            r.represented_party,
            r.service_type,
            r.method,
            r.path,
            r.request_in,
            r.request_out,
            r.response_in,
            r.response_out,
            r.request_size,
            r.response_size,
            r.status,
            r.succeeded,
            r.fault_code,
            r.fault_string,
        ])?;
    }
    Ok(())
}

fn append_one(
    tx: &rusqlite::Transaction<'_>,
    log_id: &str,
    entries: &[NewLedgerEntry],
    bodies: &[Option<LedgerBodies>],
) -> rusqlite::Result<u64> {
    let count = to_sql(entries.len() as u64).map_err(out_of_range)?;
    // Growing the log's size row first: `BEGIN IMMEDIATE` holds the database's write lock,
    // so appenders in other processes queue until this transaction ends.
    let size: i64 = tx
        .prepare_cached(
            "INSERT INTO ledger_logs (log_id, size) VALUES (?1, ?2) \
             ON CONFLICT (log_id) DO UPDATE SET size = ledger_logs.size + excluded.size RETURNING size",
        )?
        .query_row(params![log_id, count], |row| row.get(0))?;
    let first = size - count;
    // Row by row through one prepared statement: in process, that costs SQLite no more
    // than a multi-row `INSERT`, and the statement is prepared once.
    let mut insert = tx.prepare_cached(
        "INSERT INTO ledger_records (log_id, idx, message_id, leaf_hash, record, recorded_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (idx, entry) in (first..).zip(entries) {
        insert.execute(params![
            log_id,
            idx,
            entry.message_id,
            entry.leaf_hash,
            entry.record,
            entry.recorded_at,
        ])?;
    }
    if bodies.iter().any(Option::is_some) {
        let mut insert = tx.prepare_cached(
            "INSERT INTO ledger_bodies (log_id, idx, encrypted_to, request, response) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (offset, kept) in bodies.iter().take(entries.len()).enumerate() {
            let Some(kept) = kept else { continue };
            insert.execute(params![
                log_id,
                first + offset as i64,
                kept.encrypted_to,
                kept.request,
                kept.response,
            ])?;
        }
    }
    from_sql(first).map_err(out_of_range)
}

fn out_of_range(error: StoreError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(error.to_string())))
}

fn writer_error(action: &'static str, error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(code, _) = &error
        && code.code == rusqlite::ErrorCode::ConstraintViolation
        && (code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
    {
        return StoreError::Duplicate {
            what: "ledger record".into(),
        };
    }
    StoreError::Sqlite {
        action,
        source: error,
    }
}
