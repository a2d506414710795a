//! The embedded store's message-log appender: one OS thread owning a SQLite connection of
//! its own, with its statements prepared once. Appends queued while a commit is in
//! progress are committed together in the next transaction, so a burst costs one fsync.
//!
//! Through sqlx every statement of an append was a round trip to sqlx's worker thread
//! (begin, grow the log, insert, commit: four hand-offs and wake-ups), and a commit took
//! about 1.4 ms on this machine where SQLite itself needs 0.5 ms (mostly the fsync). Here
//! the whole transaction runs on the thread that owns the connection.

use crate::ledger::{from_sql, to_sql};
use crate::pack::{Packed, Upserted, pack};
use crate::{Appended, LedgerBodies, NewLedgerEntry, OpRecord, StoreError};
use rusqlite::{Connection, TransactionBehavior, params};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// One queued write.
enum Job {
    /// Records for a message log; answered with the index of the first.
    Append {
        log_id: String,
        entries: Vec<NewLedgerEntry>,
        /// The stored form of each entry's record, made by the caller: the writer thread
        /// is what every commit waits for, and packing is not its work.
        packed: Vec<Packed>,
        bodies: Vec<Option<LedgerBodies>>,
        reply: oneshot::Sender<Result<Appended, StoreError>>,
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
    fn write(
        &self,
        tx: &rusqlite::Transaction<'_>,
        upserted: &mut Upserted,
    ) -> rusqlite::Result<u64> {
        match self {
            Self::Append {
                log_id,
                entries,
                packed,
                bodies,
                ..
            } => append_one(tx, log_id, entries, packed, bodies, upserted),
            Self::OpRecords { records, .. } => insert_op_records(tx, records).map(|()| 0),
        }
    }

    /// Rows it writes: records, or op-monitoring records.
    fn rows(&self) -> u64 {
        match self {
            Self::Append { entries, .. } => entries.len() as u64,
            Self::OpRecords { records, .. } => records.len() as u64,
        }
    }

    /// Message-log records it writes.
    fn records(&self) -> u64 {
        match self {
            Self::Append { .. } => self.rows(),
            Self::OpRecords { .. } => 0,
        }
    }

    /// Tell the caller how it went; `commit_records` is told to the first append of a
    /// commit (see [`Appended`]).
    fn answer(self, result: rusqlite::Result<u64>, commit_records: Option<u64>) {
        match self {
            Self::Append { reply, .. } => {
                let _ = reply.send(
                    result
                        .map(|index| Appended {
                            index,
                            commit_records,
                        })
                        .map_err(|e| writer_error("append to a message log", e)),
                );
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
        Self::start_with(path, WalLimits::DEFAULT)
    }

    fn start_with(path: &Path, limits: WalLimits) -> Result<Self, StoreError> {
        let connection = open(path).map_err(|e| writer_error("open the log appender", e))?;
        let (queue, jobs) = mpsc::channel::<Job>();
        let restart_wanted = Arc::new(AtomicBool::new(false));
        let wanted = restart_wanted.clone();
        let written = Arc::new(AtomicU64::new(0));
        let counted = written.clone();
        std::thread::Builder::new()
            .name("lienthong-log-append".into())
            .spawn(move || serve(connection, jobs, &wanted, &counted))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the log appender: {e}")))?;
        let checkpointer = open(path).map_err(|e| writer_error("open the checkpointer", e))?;
        let (checkpoints, stop) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("lienthong-checkpoint".into())
            .spawn(move || checkpoint(checkpointer, stop, &restart_wanted, &written, limits))
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
        Ok(self.append_shared(log_id, entries, bodies).await?.index)
    }

    /// Append one record handed in alone, in the commit it shares with whatever else is
    /// queued ([`crate::LedgerStore::append_grouped`]).
    pub(crate) async fn append_grouped(
        &self,
        log_id: &str,
        entry: NewLedgerEntry,
        bodies: Option<LedgerBodies>,
    ) -> Result<Appended, StoreError> {
        self.append_shared(log_id, vec![entry], vec![bodies]).await
    }

    async fn append_shared(
        &self,
        log_id: &str,
        entries: Vec<NewLedgerEntry>,
        bodies: Vec<Option<LedgerBodies>>,
    ) -> Result<Appended, StoreError> {
        let (reply, answer) = oneshot::channel();
        let packed = entries.iter().map(|entry| pack(&entry.record)).collect();
        self.queue
            .send(Job::Append {
                log_id: log_id.to_owned(),
                entries,
                packed,
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

/// When the checkpointer copies the write-ahead log and when it starts it over.
#[derive(Debug, Clone, Copy)]
struct WalLimits {
    /// How often the log is copied into the database file, once `after_rows` rows were
    /// written since the last copy.
    every: Duration,
    /// Rows written since the last copy that make the next one due at `every`.
    after_rows: u64,
    /// Fewer rows than `after_rows` are copied after this long.
    at_least_every: Duration,
    /// A log longer than this many pages is started over from its beginning (see
    /// [`checkpoint`]).
    restart_at: i64,
    /// The pages of the log still to copy that the writer thread copies itself before the
    /// log starts over: a moment's work.
    handover: i64,
    /// A log past this many pages is checkpointed even if that makes writers wait: readers
    /// that never let a passive checkpoint finish must not grow it without bound.
    limit: i64,
}

impl WalLimits {
    const DEFAULT: Self = Self {
        // Often, so that each checkpoint has few pages to write and its fsync of the
        // database file is short: a commit's fsync of the log that meets it waits for it.
        // At 730 exchanges/s, in five alternating pairs of 20 s runs, the 99th percentile
        // of the whole exchange was 18-27 ms with 50 ms against 27-48 ms with 250 ms, at
        // the same throughput; 1 s was worse than 250 ms.
        every: Duration::from_millis(50),
        // But not after every commit at low rates. A commit that finds the whole log
        // copied starts it over, and SQLite then writes and fsyncs the log's header
        // before the commit's pages and their fsync: two fsyncs. With a copy every 50 ms
        // whatever the rate, that was every commit below about 20 exchanges/s, the
        // national platform's average load (about 0.4 ms more per commit on this disk),
        // and 1 commit in 9 at 100/s. 64 rows is about 2 copies in 3 at 850 exchanges/s
        // (a log record and an op-monitoring record per exchange).
        after_rows: 64,
        at_least_every: Duration::from_secs(5),
        // 32 MiB: at 600 exchanges/s a gateway's log starts over about every 3 s.
        restart_at: 8_192,
        // About a millisecond's copy, and the database file's fsync.
        handover: 256,
        // 64 MiB.
        limit: 16_384,
    };
}

/// Passive checkpoints run back to back at most, to bring the pages still to copy down to
/// [`WalLimits::handover`].
const CATCH_UP_PASSES: usize = 8;

/// Copy the write-ahead log into the database file every `limits.every` until `stop`
/// is dropped. With SQLite's automatic checkpoints, the commit that crossed 1,000 pages
/// did the copy and its fsyncs itself, and every exchange waiting on that commit waited
/// too: at 500 exchanges/s that was several commits a second held up by milliseconds,
/// most of the 99th percentile. A passive checkpoint here runs beside the writers.
///
/// A passive checkpoint never lets the log start over while commits keep coming: SQLite
/// starts a log over only when a write transaction begins with every page already copied,
/// and under steady load new pages arrive while each checkpoint runs. The log then grew to
/// the limit, about every 20 s at 600 exchanges/s, and the checkpoint that restarted it
/// held the writer for 300-400 ms: one stall that was the whole 99th percentile of a
/// 30-second run. So once the log is past `limits.restart_at`, this thread copies until
/// little is left and asks the writer thread (`restart_wanted`) to copy the rest between
/// two of its transactions; the writer's next transaction then starts the log over.
fn checkpoint(
    connection: Connection,
    stop: mpsc::Receiver<()>,
    restart_wanted: &AtomicBool,
    written: &AtomicU64,
    limits: WalLimits,
) {
    let passive = || {
        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        })
    };
    let (mut copied_rows, mut copied_at) = (0, Instant::now());
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(limits.every) {
        let rows = written.load(Ordering::Acquire);
        let new_rows = rows.wrapping_sub(copied_rows);
        if new_rows == 0
            || (new_rows < limits.after_rows && copied_at.elapsed() < limits.at_least_every)
        {
            continue;
        }
        (copied_rows, copied_at) = (rows, Instant::now());
        let result = passive().and_then(|(mut pages, mut copied)| {
            if pages <= limits.restart_at || restart_wanted.load(Ordering::Acquire) {
                return Ok(());
            }
            for _ in 0..CATCH_UP_PASSES {
                if pages - copied <= limits.handover {
                    restart_wanted.store(true, Ordering::Release);
                    return Ok(());
                }
                (pages, copied) = passive()?;
            }
            if pages > limits.limit {
                connection.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))?;
                tracing::warn!(
                    pages,
                    "write-ahead log past its limit (a reader held it?); checkpointed with writers held"
                );
            }
            Ok(())
        });
        if let Err(error) = result {
            tracing::warn!(%error, "cannot checkpoint the embedded store's write-ahead log");
        }
    }
}

/// The writer thread's share of starting the log over (see [`checkpoint`]): copy what is
/// left of it while no transaction of this thread is open.
fn finish_checkpoint(connection: &Connection) {
    match connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    }) {
        Ok((pages, copied)) => {
            tracing::debug!(pages, copied, "write-ahead log copied to restart it")
        }
        Err(error) => {
            tracing::warn!(%error, "cannot checkpoint the embedded store's write-ahead log")
        }
    }
}

fn serve(
    mut connection: Connection,
    jobs: mpsc::Receiver<Job>,
    restart_wanted: &AtomicBool,
    written: &AtomicU64,
) {
    let mut upserted = Upserted::default();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let rows = batch.iter().map(Job::rows).sum::<u64>();
        match commit(&mut connection, &batch, &mut upserted) {
            Ok(results) => {
                written.fetch_add(rows, Ordering::Release);
                let mut records = Some(batch.iter().map(Job::records).sum::<u64>());
                for (job, result) in batch.into_iter().zip(results) {
                    let commit_records = if job.records() > 0 {
                        records.take()
                    } else {
                        None
                    };
                    job.answer(Ok(result), commit_records);
                }
            }
            // One failing write must not fail the others queued with it: retry each in a
            // transaction of its own, so each caller gets its own answer.
            Err(_) if batch.len() > 1 => {
                for job in batch {
                    let result = commit(&mut connection, std::slice::from_ref(&job), &mut upserted)
                        .map(|results| results.first().copied().unwrap_or_default());
                    if result.is_ok() {
                        written.fetch_add(job.rows(), Ordering::Release);
                    }
                    let records = Some(job.records());
                    job.answer(result, records);
                }
            }
            Err(error) => {
                if let Some(job) = batch.pop() {
                    job.answer(Err(error), None);
                }
            }
        }
        // After the answers, so that no caller of this batch waits for it.
        if restart_wanted.swap(false, Ordering::AcqRel) {
            finish_checkpoint(&connection);
        }
    }
}

/// Write every job in one transaction; each job's result.
fn commit(
    connection: &mut Connection,
    batch: &[Job],
    upserted: &mut Upserted,
) -> rusqlite::Result<Vec<u64>> {
    let written = (|| {
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let results = batch
            .iter()
            .map(|job| job.write(&tx, upserted))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(results)
    })();
    if written.is_err() {
        // Values counted as upserted in the transaction that failed may not be there.
        upserted.forget();
    }
    written
}

fn insert_op_records(tx: &rusqlite::Transaction<'_>, records: &[OpRecord]) -> rusqlite::Result<()> {
    // SQLite's placeholders, rewritten once from the shared statement.
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| crate::opmon::INSERT.replace('$', "?"));
    let mut insert = tx.prepare_cached(&SQL)?;
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
    packed: &[Packed],
    bodies: &[Option<LedgerBodies>],
    upserted: &mut Upserted,
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
    let mut upsert = tx.prepare_cached(crate::pack::UPSERT)?;
    for ((idx, entry), packed) in (first..).zip(entries).zip(packed) {
        for (hash, content) in packed.values(&entry.record) {
            if upserted.needed(log_id, hash, entry.recorded_at) {
                upsert.execute(params![log_id, hash, content, entry.recorded_at])?;
            }
        }
        insert.execute(params![
            log_id,
            idx,
            entry.message_id,
            entry.leaf_hash,
            packed.stored,
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
        // As the sqlx backends name it (`StoreError::db`): what the write was about.
        let what = match action {
            "append to a message log" => "ledger record",
            "insert op-monitoring records" => "op-monitoring record",
            other => other,
        };
        return StoreError::Duplicate { what: what.into() };
    }
    StoreError::Sqlite {
        action,
        source: error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database at `path` with the message log's tables.
    fn ledger_database(path: &Path) {
        let setup = open(path).expect("open");
        setup
            .execute_batch(include_str!("../migrations/sqlite/0003_ledger.sql"))
            .and_then(|()| {
                setup.execute_batch(include_str!("../migrations/sqlite/0006_ledger_bodies.sql"))
            })
            .and_then(|()| {
                setup.execute_batch(include_str!("../migrations/sqlite/0008_ledger_blobs.sql"))
            })
            .expect("schema");
    }

    fn entry(name: String, record_bytes: usize) -> NewLedgerEntry {
        NewLedgerEntry {
            message_id: name,
            leaf_hash: [7; 32],
            record: vec![b'x'; record_bytes],
            recorded_at: 1,
        }
    }

    /// How many times the write-ahead log started over while `count` records were appended
    /// one at a time, `gap` apart, with `limits`: a start over gives its header a new
    /// checkpoint sequence number and salts.
    async fn starts_over(limits: WalLimits, count: usize, gap: Duration) -> usize {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("store.db");
        ledger_database(&path);
        let writer = LedgerWriter::start_with(&path, limits).expect("writer");
        let header = || {
            let wal = std::fs::read(dir.path().join("store.db-wal")).expect("write-ahead log");
            wal.get(12..24).expect("a header").to_vec()
        };
        let mut headers = Vec::new();
        for n in 0..count {
            writer
                .append("gw", vec![entry(format!("m-{n}"), 1_000)], vec![None])
                .await
                .expect("append");
            headers.push(header());
            tokio::time::sleep(gap).await;
        }
        headers.windows(2).filter(|w| w[0] != w[1]).count()
    }

    /// At a low rate, commits go on appending to the write-ahead log: it is copied (and
    /// then started over, which costs a commit a second fsync) only every
    /// `at_least_every`, not after every commit as when a copy followed every 50 ms.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_low_rate_does_not_start_the_log_over_at_every_commit() {
        let gap = Duration::from_millis(30);
        let limits = WalLimits {
            every: Duration::from_millis(5),
            at_least_every: Duration::from_secs(60),
            ..WalLimits::DEFAULT
        };
        assert_eq!(starts_over(limits, 20, gap).await, 0);
        // The former policy, a copy at every tick with anything new: nearly every commit
        // finds the log copied and starts it over.
        let every_tick = WalLimits {
            after_rows: 1,
            at_least_every: Duration::ZERO,
            ..limits
        };
        let restarts = starts_over(every_tick, 20, gap).await;
        assert!(restarts >= 10, "{restarts} starts over in 19 commits");
    }

    /// Under appends that never pause, the write-ahead log still starts over: before, it
    /// grew until the hard limit and a checkpoint that held the writer for 300-400 ms.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_starts_over_under_steady_appends() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("store.db");
        ledger_database(&path);
        // 64 pages (256 KiB) between restarts; the hard limit (16 MiB) is never reached.
        let limits = WalLimits {
            every: Duration::from_millis(5),
            after_rows: 1,
            at_least_every: Duration::from_millis(5),
            restart_at: 64,
            handover: 16,
            limit: 4_096,
        };
        let writer = Arc::new(LedgerWriter::start_with(&path, limits).expect("writer"));
        const TASKS: usize = 8;
        const EACH: usize = 400;
        let mut appenders = tokio::task::JoinSet::new();
        for task in 0..TASKS {
            let writer = writer.clone();
            appenders.spawn(async move {
                for n in 0..EACH {
                    writer
                        .append(
                            "gw",
                            vec![entry(format!("m-{task}-{n}"), 4_000)],
                            vec![None],
                        )
                        .await
                        .expect("append");
                }
            });
        }
        appenders.join_all().await;
        drop(writer);
        // 3,200 records of 4 KB: 13 MB of pages and more went through the log.
        let wal = std::fs::metadata(dir.path().join("store.db-wal"))
            .expect("write-ahead log")
            .len();
        assert!(wal < 4 << 20, "the write-ahead log grew to {wal} bytes");
        let check = open(&path).expect("open");
        let count: i64 = check
            .query_row("SELECT count(*) FROM ledger_records", [], |row| row.get(0))
            .expect("count");
        assert_eq!(count, (TASKS * EACH) as i64);
    }
}
