//! The embedded store's message-log appender: one OS thread owning a SQLite connection of
//! its own, with its statements prepared once. Appends queued while a commit is in
//! progress are committed together in the next transaction, so a burst costs one fsync.
//!
//! Through sqlx every statement of an append was a round trip to sqlx's worker thread
//! (begin, grow the log, insert, commit: four hand-offs and wake-ups), and a commit took
//! about 1.4 ms on this machine where SQLite itself needs 0.5 ms (mostly the fsync). Here
//! the whole transaction runs on the thread that owns the connection.

use crate::ledger::{from_sql, to_sql};
use crate::{LedgerBodies, NewLedgerEntry, StoreError};
use rusqlite::{Connection, TransactionBehavior, params};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

/// One queued append.
struct Job {
    log_id: String,
    entries: Vec<NewLedgerEntry>,
    bodies: Vec<Option<LedgerBodies>>,
    reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// Appends queued jobs committed at most per transaction.
const MAX_JOBS: usize = 256;

/// A handle to the appender thread; the thread ends when the last handle is dropped.
#[derive(Debug)]
pub(crate) struct LedgerWriter {
    queue: mpsc::Sender<Job>,
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
        Ok(Self { queue })
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
        let stopped = || StoreError::Corrupt("the log appender has stopped".into());
        self.queue
            .send(Job {
                log_id: log_id.to_owned(),
                entries,
                bodies,
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
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
    Ok(connection)
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
            Ok(firsts) => {
                for (job, first) in batch.into_iter().zip(firsts) {
                    let _ = job.reply.send(Ok(first));
                }
            }
            // One failing append must not fail the others queued with it: retry each in a
            // transaction of its own, so each caller gets its own answer.
            Err(_) if batch.len() > 1 => {
                for job in batch {
                    let answer = commit(&mut connection, std::slice::from_ref(&job))
                        .map(|firsts| firsts[0])
                        .map_err(|e| writer_error("append to a message log", e));
                    let _ = job.reply.send(answer);
                }
            }
            Err(error) => {
                if let Some(job) = batch.pop() {
                    let _ = job
                        .reply
                        .send(Err(writer_error("append to a message log", error)));
                }
            }
        }
    }
}

/// Commit every job's records in one transaction; the index of each job's first record.
fn commit(connection: &mut Connection, batch: &[Job]) -> rusqlite::Result<Vec<u64>> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut firsts = Vec::with_capacity(batch.len());
    for job in batch {
        firsts.push(append_one(&tx, job)?);
    }
    tx.commit()?;
    Ok(firsts)
}

fn append_one(tx: &rusqlite::Transaction<'_>, job: &Job) -> rusqlite::Result<u64> {
    let count = to_sql(job.entries.len() as u64).map_err(out_of_range)?;
    // Growing the log's size row first: `BEGIN IMMEDIATE` holds the database's write lock,
    // so appenders in other processes queue until this transaction ends.
    let size: i64 = tx
        .prepare_cached(
            "INSERT INTO ledger_logs (log_id, size) VALUES (?1, ?2) \
             ON CONFLICT (log_id) DO UPDATE SET size = ledger_logs.size + excluded.size RETURNING size",
        )?
        .query_row(params![job.log_id, count], |row| row.get(0))?;
    let first = size - count;
    // Row by row through one prepared statement: in process, that costs SQLite no more
    // than a multi-row `INSERT`, and the statement is prepared once.
    let mut insert = tx.prepare_cached(
        "INSERT INTO ledger_records (log_id, idx, message_id, leaf_hash, record, recorded_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (idx, entry) in (first..).zip(&job.entries) {
        insert.execute(params![
            job.log_id,
            idx,
            entry.message_id,
            entry.leaf_hash,
            entry.record,
            entry.recorded_at,
        ])?;
    }
    if job.bodies.iter().any(Option::is_some) {
        let mut insert = tx.prepare_cached(
            "INSERT INTO ledger_bodies (log_id, idx, encrypted_to, request, response) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (offset, kept) in job.bodies.iter().take(job.entries.len()).enumerate() {
            let Some(kept) = kept else { continue };
            insert.execute(params![
                job.log_id,
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

