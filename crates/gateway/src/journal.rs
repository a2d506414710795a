//! The gateway's message log writer: every exchange's record is appended to the store's
//! tamper-evident log, and the answer is released only once its record is committed.
//! Records arriving while a commit is in progress are committed together in the next
//! transaction (group commit), so durability costs one fsync per batch, not per message.
//!
//! Where the store groups appends by itself (the embedded store's writer thread takes
//! whatever is queued whenever it is free), each exchange hands its record straight to it.
//! Elsewhere (PostgreSQL) a task of the journal's own gathers the records that arrive during
//! a commit into the next one. A task in front of the writer thread cost every record two
//! more task switches, on a thread that had to be woken for them.

use crate::XRoadError;
use crate::metrics::Metrics;
use lienthong_ledger::LogRecord;
use lienthong_store::{LedgerBodies, NewLedgerEntry, Store};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Records committed at most per transaction.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<u64, String>>;
/// A record and the bodies kept beside it, if any.
type Logged = (NewLedgerEntry, Option<LedgerBodies>);

/// A handle to the log's writer.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    way: Way,
    /// Records handed in and not yet answered (queued or being committed).
    pending: Arc<AtomicUsize>,
    /// The leaf hashes of the records this journal committed since the last seal.
    pub(crate) leaves: Arc<RecentLeaves>,
    /// Failed commits, told to the gateway's log without a line for every record.
    failures: Arc<Failures>,
}

/// How records reach the store.
#[derive(Debug, Clone)]
enum Way {
    /// Straight to a store that groups appends itself.
    Direct {
        store: Store,
        log_id: Arc<str>,
        metrics: Arc<Metrics>,
    },
    /// Through the journal's task, which batches them.
    Batched(mpsc::Sender<(Logged, Reply)>),
}

/// Leaf hashes kept at most (8 MiB; about 5 minutes at 850 records/s). Past that the
/// oldest are dropped, and the next seal reads the leaves it misses from the store.
const MAX_RECENT_LEAVES: usize = 1 << 18;
/// Leaf hashes a seal copies at a time from those kept (128 KiB).
const LEAVES_PER_CHUNK: usize = 4096;

/// The leaf hashes of the records a journal committed lately, by their index in the log,
/// so that a seal need not read them back. Reading them was a query per 1,024 records,
/// each leaf hash on a page of its own beside its 2.3 KB record: at 850 exchanges/s a
/// seal read about 51,000 pages in 1.4 s, and while it did, the saturated machine's
/// queues grew into the 100-400 ms stalls of the soak's slowest answers. A leaf is kept
/// only for an index its own commit returned, so what is kept is the log's leaf there,
/// whoever else appends to the log (the nodes of a cluster): the indexes in between are
/// holes, filled if their commits are told later (exchanges learn of one commit in any
/// order), and a seal uses the leaves kept only when they cover the whole range it needs
/// without a hole, reading the store otherwise.
#[derive(Debug, Default)]
pub(crate) struct RecentLeaves {
    kept: std::sync::Mutex<KeptLeaves>,
}

/// The leaf hashes of indexes `first..first + hashes.len()`, `None` where none is known.
#[derive(Debug, Default)]
struct KeptLeaves {
    first: u64,
    hashes: VecDeque<Option<[u8; 32]>>,
}

impl KeptLeaves {
    /// Where indexes `from..to` are in `hashes`, if all of them are there.
    fn offsets(&self, from: u64, to: u64) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(from.checked_sub(self.first)?).ok()?;
        let end = usize::try_from(to.checked_sub(self.first)?).ok()?;
        (start <= end && end <= self.hashes.len()).then_some(start..end)
    }
}

impl RecentLeaves {
    fn kept(&self) -> std::sync::MutexGuard<'_, KeptLeaves> {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The records with `hashes` were committed at `first`, `first + 1`, ...
    pub(crate) fn committed(&self, first: u64, hashes: &[[u8; 32]]) {
        let mut kept = self.kept();
        let end = kept.first + kept.hashes.len() as u64;
        let before_all = first < kept.first && kept.hashes.is_empty();
        if before_all || first > end + MAX_RECENT_LEAVES as u64 {
            // Nothing kept that it could join, or so far ahead that nothing kept would stay.
            kept.hashes.clear();
            kept.first = first;
        }
        for (index, hash) in (first..).zip(hashes) {
            let Some(offset) = index.checked_sub(kept.first) else {
                continue; // forgotten already (a seal covered it)
            };
            let offset = usize::try_from(offset).unwrap_or(usize::MAX);
            if offset >= kept.hashes.len() {
                kept.hashes.resize(offset + 1, None);
            }
            kept.hashes[offset] = Some(*hash);
        }
        let over = kept.hashes.len().saturating_sub(MAX_RECENT_LEAVES);
        if over > 0 {
            kept.hashes.drain(..over);
            kept.first += over as u64;
        }
    }

    /// `tree` extended with the leaves of indexes `tree.size()..to`, if every one of them
    /// is kept. They are read a chunk at a time, the lock held only to copy each chunk: a
    /// seal may need minutes of leaves (7 MB at 3,670 exchanges/s), which a copy of them
    /// all would add to the gateway's peak memory, and which exchanges' commits must not
    /// wait for.
    pub(crate) fn extended(
        &self,
        tree: &lienthong_ledger::CompactTree,
        to: u64,
    ) -> Option<lienthong_ledger::CompactTree> {
        let mut tree = tree.clone();
        let mut chunk = Vec::with_capacity(LEAVES_PER_CHUNK);
        while tree.size() < to {
            let from = tree.size();
            let end = to.min(from + LEAVES_PER_CHUNK as u64);
            if !self.copy(from, end, &mut chunk) {
                return None;
            }
            for leaf in chunk.drain(..) {
                tree.append(leaf);
            }
        }
        Some(tree)
    }

    /// The leaf hashes of indexes `from..to`, if every one is kept.
    #[cfg(test)]
    fn range(&self, from: u64, to: u64) -> Option<Vec<[u8; 32]>> {
        let mut hashes = Vec::new();
        self.copy(from, to, &mut hashes).then_some(hashes)
    }

    /// Copy the leaf hashes of indexes `from..to` into `into` (emptied first), if every
    /// one is kept.
    fn copy(&self, from: u64, to: u64, into: &mut Vec<[u8; 32]>) -> bool {
        into.clear();
        let kept = self.kept();
        let Some(offsets) = kept.offsets(from, to) else {
            return false;
        };
        into.reserve(offsets.len());
        for hash in kept.hashes.range(offsets) {
            let Some(hash) = hash else {
                into.clear();
                return false;
            };
            into.push(*hash);
        }
        true
    }

    /// Forget the leaves of indexes before `index` (a seal covers them).
    pub(crate) fn forget_before(&self, index: u64) {
        let mut kept = self.kept();
        let Some(covered) = index.checked_sub(kept.first) else {
            return;
        };
        let dropped = usize::try_from(covered)
            .unwrap_or(usize::MAX)
            .min(kept.hashes.len());
        kept.hashes.drain(..dropped);
        kept.first += dropped as u64;
    }
}

impl Journal {
    /// Start the writer for the log `log_id` in `store`.
    pub(crate) fn spawn(store: Store, log_id: String, metrics: Arc<Metrics>) -> Self {
        let leaves = Arc::new(RecentLeaves::default());
        let failures = Arc::new(Failures::new(FAILURES_TOLD_EVERY));
        let way = if store.ledger().groups_appends() {
            Way::Direct {
                store,
                log_id: log_id.into(),
                metrics,
            }
        } else {
            Way::Batched(spawn_batching(
                store,
                log_id,
                metrics,
                leaves.clone(),
                failures.clone(),
            ))
        };
        Self {
            way,
            pending: Arc::default(),
            leaves,
            failures,
        }
    }

    /// Records waiting for their commit.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Wait (at most `limit`) until every record handed in so far is committed or failed;
    /// `false` if some were still pending.
    pub(crate) async fn flush(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.pending() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Append `record` (and the `bodies` kept beside it) and wait until it is committed;
    /// returns its index in the log.
    pub(crate) async fn record(
        &self,
        record: &LogRecord,
        bodies: Option<LedgerBodies>,
        now: i64,
    ) -> Result<u64, XRoadError> {
        crate::opmon::note_logged(record);
        self.append(entry(record, now), bodies, Pending::enter(&self.pending))
            .await
    }

    /// Hand `record` in now and commit it without the caller waiting, timed as `stage`:
    /// the caller goes on (to send the answer's bytes, not to release it) and learns the
    /// outcome from the [`Committing`] it gets. The record counts as pending from this call
    /// on, and its commit goes on even if the [`Committing`] is dropped unfinished.
    pub(crate) fn record_in_background(
        &self,
        record: &LogRecord,
        bodies: Option<LedgerBodies>,
        now: i64,
        metrics: Arc<Metrics>,
        stage: crate::metrics::Stage,
    ) -> Committing {
        crate::opmon::note_logged(record);
        let entry = entry(record, now);
        let pending = Pending::enter(&self.pending);
        let journal = self.clone();
        Committing::start(async move {
            metrics
                .time(stage, journal.append(entry, bodies, pending))
                .await
        })
    }

    async fn append(
        &self,
        entry: NewLedgerEntry,
        bodies: Option<LedgerBodies>,
        _pending: Pending,
    ) -> Result<u64, XRoadError> {
        let failed = |why: String| {
            XRoadError::server_proxy(
                "InternalError",
                format!("the message log could not record the exchange: {why}"),
            )
        };
        match &self.way {
            Way::Direct {
                store,
                log_id,
                metrics,
            } => {
                let hash = entry.leaf_hash;
                match store.ledger().append_grouped(log_id, entry, bodies).await {
                    Ok(appended) => {
                        self.failures.succeeded();
                        if let Some(records) = appended.commit_records {
                            metrics.log_batch(usize::try_from(records).unwrap_or(usize::MAX));
                        }
                        self.leaves.committed(appended.index, &[hash]);
                        Ok(appended.index)
                    }
                    Err(error) => {
                        metrics.log_failed(1);
                        self.failures.failed(1, &error);
                        Err(failed(error.to_string()))
                    }
                }
            }
            Way::Batched(queue) => {
                let (reply, committed) = oneshot::channel();
                queue
                    .send(((entry, bodies), reply))
                    .await
                    .map_err(|_| failed("the log writer has stopped".into()))?;
                committed
                    .await
                    .map_err(|_| failed("the log writer has stopped".into()))?
                    .map_err(failed)
            }
        }
    }
}

/// The batching task for a store that does not group appends itself: the records that
/// arrive during a commit go into the next.
fn spawn_batching(
    store: Store,
    log_id: String,
    metrics: Arc<Metrics>,
    recent: Arc<RecentLeaves>,
    failures: Arc<Failures>,
) -> mpsc::Sender<(Logged, Reply)> {
    let (queue, mut incoming) = mpsc::channel::<(Logged, Reply)>(4 * MAX_BATCH);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while incoming.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let (entries, replies): (Vec<_>, Vec<_>) =
                std::mem::take(&mut batch).into_iter().unzip();
            let (entries, bodies): (Vec<_>, Vec<_>) = entries.into_iter().unzip();
            let records = entries.len();
            metrics.log_batch(records);
            let hashes: Vec<[u8; 32]> = entries.iter().map(|e| e.leaf_hash).collect();
            match store.ledger().append_owned(&log_id, entries, bodies).await {
                Ok(first) => {
                    failures.succeeded();
                    recent.committed(first, &hashes);
                    for (offset, reply) in replies.into_iter().enumerate() {
                        let _ = reply.send(Ok(first + offset as u64));
                    }
                }
                Err(error) => {
                    metrics.log_failed(records);
                    failures.failed(records, &error);
                    for reply in replies {
                        let _ = reply.send(Err(error.to_string()));
                    }
                }
            }
        }
    });
    queue
}

/// A record's commit, handed in and not awaited yet: the answer to
/// [`Journal::record_in_background`].
///
/// It is polled once when made, in the caller's task: that hands the record to the store
/// (on the embedded store, to its writer thread) at once, the way a task of its own would,
/// without spawning one for every exchange and waking it from the writer thread and then
/// waking its awaiter in turn. Dropped unfinished (the peer went away), what is left is
/// spawned so that the commit and its bookkeeping still end.
pub(crate) struct Committing {
    rest: Option<CommitFuture>,
    done: Option<Result<u64, XRoadError>>,
}

type CommitFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, XRoadError>> + Send>>;

impl Committing {
    fn start(
        commit: impl std::future::Future<Output = Result<u64, XRoadError>> + Send + 'static,
    ) -> Self {
        let mut rest: CommitFuture = Box::pin(commit);
        // No waker is needed yet: whoever awaits the commit polls again with its own.
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match rest.as_mut().poll(&mut context) {
            std::task::Poll::Ready(done) => Self {
                rest: None,
                done: Some(done),
            },
            std::task::Poll::Pending => Self {
                rest: Some(rest),
                done: None,
            },
        }
    }
}

impl std::future::Future for Committing {
    type Output = Result<u64, XRoadError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if let Some(done) = self.done.take() {
            return std::task::Poll::Ready(done);
        }
        let Some(rest) = self.rest.as_mut() else {
            return std::task::Poll::Ready(Err(XRoadError::server_proxy(
                "InternalError",
                "the log commit was awaited again after its outcome",
            )));
        };
        let outcome = std::task::ready!(rest.as_mut().poll(context));
        self.rest = None;
        std::task::Poll::Ready(outcome)
    }
}

impl Drop for Committing {
    fn drop(&mut self) {
        if let Some(rest) = self.rest.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(rest);
        }
    }
}

/// How often at most a failing log is told again in the gateway's own log.
const FAILURES_TOLD_EVERY: Duration = Duration::from_secs(10);

/// Failed commits, as the gateway's own log tells them: the first at once, then at most
/// one line every interval with how many records failed since the last line, and one line
/// when commits succeed again. A failing disk under load fails every record; a line for
/// each (thousands a second) would bury everything else an operator needs to read, and
/// could fill the disk that holds the gateway's own log. Every failure still counts in
/// `lienthong_gateway_log_commit_failures_total` and refuses its exchange.
#[derive(Debug)]
struct Failures {
    every: Duration,
    /// Whether commits failed since the last success: read without the lock by every
    /// success, changed only under it.
    failing: std::sync::atomic::AtomicBool,
    told: std::sync::Mutex<Told>,
}

#[derive(Debug, Default)]
struct Told {
    /// When the last line was written.
    at: Option<std::time::Instant>,
    /// Records failed since then.
    untold: u64,
    /// Records failed since commits last succeeded.
    since_success: u64,
}

impl Failures {
    fn new(every: Duration) -> Self {
        Self {
            every,
            failing: std::sync::atomic::AtomicBool::new(false),
            told: std::sync::Mutex::default(),
        }
    }

    fn told(&self) -> std::sync::MutexGuard<'_, Told> {
        self.told
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `records` failed to commit with `error`; whether a line was written for them.
    fn failed(&self, records: usize, error: &dyn std::fmt::Display) -> bool {
        let mut told = self.told();
        // Set under the lock, as `succeeded` clears it: a failure told while a success
        // waited for the lock is then not left without its "commits again".
        self.failing.store(true, Ordering::Release);
        let records = records as u64;
        told.untold += records;
        told.since_success += records;
        if told.at.is_some_and(|at| at.elapsed() < self.every) {
            return false;
        }
        tracing::error!(
            %error,
            records = told.untold,
            failed_since_last_success = told.since_success,
            "cannot commit message log records; their exchanges were refused (told at most every {} s while it lasts)",
            self.every.as_secs()
        );
        told.at = Some(std::time::Instant::now());
        told.untold = 0;
        true
    }

    /// A commit succeeded; the records that had failed before it, if any had since the
    /// last success (and a line says the log commits again).
    fn succeeded(&self) -> Option<u64> {
        if !self.failing.load(Ordering::Acquire) {
            return None;
        }
        let mut told = self.told();
        if !self.failing.swap(false, Ordering::AcqRel) {
            return None; // another success told it
        }
        let failed = std::mem::take(&mut told.since_success);
        told.untold = 0;
        told.at = None;
        tracing::warn!(failed_records = failed, "the message log commits again");
        Some(failed)
    }
}

/// The entry for `record`, serialised once: the leaf hash is over exactly the bytes stored.
fn entry(record: &LogRecord, now: i64) -> NewLedgerEntry {
    let bytes = record.to_canonical_bytes();
    NewLedgerEntry {
        message_id: record.message_id.clone(),
        leaf_hash: lienthong_crypto::merkle::leaf_hash(&bytes),
        record: bytes,
        recorded_at: now,
    }
}

/// Counts a record as pending until dropped (answered, failed or abandoned).
struct Pending(Arc<AtomicUsize>);

impl Pending {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u64) -> [u8; 32] {
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&i.to_be_bytes());
        hash
    }

    fn leaves(range: std::ops::Range<u64>) -> Vec<[u8; 32]> {
        range.map(leaf).collect()
    }

    /// A provider's record numbered `n`, as its canonical JSON reads.
    fn record(n: u64) -> LogRecord {
        let digest = "11".repeat(32);
        serde_json::from_value(serde_json::json!({
            "message_id": format!("msg-{n}"),
            "side": "provider",
            "client": "VN/GOV/000001/hue-portal",
            "service": "VN/GOV/000002/registry/getPerson",
            "request_in": 1_790_000_000_000_i64,
            "request_out": null,
            "response_in": null,
            "response_out": null,
            "request_description": "e30=",
            "response_description": null,
            "request_signature": "ed25519:AAAA",
            "response_signature": null,
            "request_signer_certificate": "MAA=",
            "response_signer_certificate": null,
            "request_signer_ocsp": null,
            "response_signer_ocsp": null,
            "request_body_sha256": digest,
            "response_body_sha256": null,
            "status": 200,
            "body": { "kind": "digest_only" },
        }))
        .expect("a record")
    }

    /// A record handed in the background commits whether or not its [`Committing`] is
    /// awaited: awaited, it tells the record's index; dropped at once, the commit still
    /// ends, counted as pending until it does, and its leaf is kept.
    #[tokio::test]
    async fn background_records_commit_awaited_or_dropped() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = Store::open(&url).await.expect("open the store");
        let metrics = Arc::new(Metrics::default());
        let journal = Journal::spawn(store.clone(), "log".into(), metrics.clone());
        let stage = crate::metrics::Stage::ProviderLogCommit;
        let first = journal.record_in_background(&record(0), None, 1, metrics.clone(), stage);
        assert_eq!(first.await.expect("committed"), 0);
        for n in 1..=3 {
            drop(journal.record_in_background(&record(n), None, 1, metrics.clone(), stage));
        }
        assert!(
            journal.flush(Duration::from_secs(10)).await,
            "still pending"
        );
        assert_eq!(store.ledger().size("log").await.expect("size"), 4);
        let kept = journal.leaves.range(0, 4).expect("every leaf kept");
        let stored = store
            .ledger()
            .leaf_hashes("log", 0, 4)
            .await
            .expect("leaves");
        assert_eq!(kept, stored);
    }

    /// A failing log is told once, then not again within the interval, while every
    /// failure is counted; the first success after failures tells how many failed, and the
    /// next failure is told at once.
    #[test]
    fn failures_are_told_once_per_interval_and_on_recovery() {
        let failures = Failures::new(Duration::from_secs(3600));
        assert_eq!(failures.succeeded(), None, "nothing failed");
        assert!(failures.failed(1, &"disk full"));
        for _ in 0..99 {
            assert!(!failures.failed(1, &"disk full"));
        }
        assert!(!failures.failed(28, &"disk full"));
        assert_eq!(failures.succeeded(), Some(128));
        assert_eq!(failures.succeeded(), None, "told once");
        assert!(
            failures.failed(2, &"I/O error"),
            "a new failure is told at once"
        );
        assert_eq!(failures.succeeded(), Some(2));
        let often = Failures::new(Duration::ZERO);
        assert!(often.failed(1, &"disk full"));
        assert!(often.failed(1, &"disk full"), "the interval has passed");
    }

    /// Leaves are kept by index while commits follow each other; a range is given only
    /// when every leaf of it is kept, and a seal's covered leaves are forgotten.
    #[test]
    fn recent_leaves_give_only_whole_ranges_of_consecutive_commits() {
        let recent = RecentLeaves::default();
        assert_eq!(recent.range(0, 0), Some(Vec::new()));
        assert_eq!(recent.range(0, 1), None);
        recent.committed(10, &leaves(10..13));
        recent.committed(13, &leaves(13..20));
        assert_eq!(recent.range(10, 20), Some(leaves(10..20)));
        assert_eq!(recent.range(12, 15), Some(leaves(12..15)));
        assert_eq!(
            recent.range(9, 15),
            None,
            "index 9 was never committed here"
        );
        assert_eq!(recent.range(15, 21), None, "index 20 is not committed yet");
        recent.forget_before(15);
        assert_eq!(recent.range(14, 20), None);
        assert_eq!(recent.range(15, 20), Some(leaves(15..20)));
        // Another node appended 20..25: holes, which no range may cover.
        recent.committed(25, &leaves(25..27));
        assert_eq!(recent.range(15, 20), Some(leaves(15..20)));
        assert_eq!(recent.range(20, 27), None);
        assert_eq!(recent.range(19, 21), None);
        assert_eq!(recent.range(25, 27), Some(leaves(25..27)));
        recent.forget_before(3);
        assert_eq!(recent.range(25, 27), Some(leaves(25..27)));
        assert_eq!(recent.range(27, 25), None);
    }

    /// A seal's tree extended from the kept leaves, a chunk at a time across several
    /// chunks, has the root of the tree built from every leaf at once; a hole anywhere in
    /// the range, or a range that starts before the leaves kept, gives nothing.
    #[test]
    fn trees_extend_from_kept_leaves_in_chunks() {
        let total = 2 * LEAVES_PER_CHUNK as u64 + 5;
        let mut whole = lienthong_ledger::CompactTree::new();
        for leaf in leaves(0..total) {
            whole.append(leaf);
        }
        let mut sealed = lienthong_ledger::CompactTree::new();
        for leaf in leaves(0..3) {
            sealed.append(leaf);
        }
        let recent = RecentLeaves::default();
        recent.committed(3, &leaves(3..total));
        let extended = recent.extended(&sealed, total).expect("every leaf kept");
        assert_eq!(extended, whole);
        assert_eq!(extended.root(), whole.root());
        assert_eq!(recent.extended(&sealed, 3), Some(sealed.clone()));
        assert_eq!(
            recent.extended(&lienthong_ledger::CompactTree::new(), total),
            None,
            "leaves 0..3 were never kept here"
        );
        // A hole in the last chunk: the commit of `total + 1` is told before `total`'s.
        recent.committed(total + 1, &leaves(total + 1..total + 2));
        assert_eq!(recent.extended(&sealed, total + 2), None);
        recent.committed(total, &leaves(total..total + 1));
        let mut longer = whole.clone();
        longer.append(leaf(total));
        longer.append(leaf(total + 1));
        assert_eq!(recent.extended(&sealed, total + 2), Some(longer));
    }

    /// Exchanges learn of their commits in any order: a commit told after a later one
    /// fills its hole. One far ahead (another node's records) starts the keeping again.
    #[test]
    fn recent_leaves_fill_holes_told_late() {
        let recent = RecentLeaves::default();
        recent.committed(100, &leaves(100..101));
        recent.committed(102, &leaves(102..104));
        assert_eq!(recent.range(100, 104), None, "101 not told yet");
        recent.committed(101, &leaves(101..102));
        assert_eq!(recent.range(100, 104), Some(leaves(100..104)));
        // A seal covered everything; the next two are told in the other order.
        recent.forget_before(104);
        recent.committed(105, &leaves(105..106));
        recent.committed(104, &leaves(104..105));
        assert_eq!(recent.range(104, 106), Some(leaves(104..106)));
        // Told after a seal forgot its index: nothing to keep.
        recent.committed(50, &leaves(50..51));
        assert_eq!(recent.range(50, 51), None);
        let far = 106 + MAX_RECENT_LEAVES as u64 + 1;
        recent.committed(far, &leaves(far..far + 1));
        assert_eq!(recent.range(104, 106), None);
        assert_eq!(recent.range(far, far + 1), Some(leaves(far..far + 1)));
    }

    /// At most [`MAX_RECENT_LEAVES`] are kept: the oldest go first.
    #[test]
    fn recent_leaves_are_bounded() {
        let recent = RecentLeaves::default();
        let max = MAX_RECENT_LEAVES as u64;
        recent.committed(0, &leaves(0..max));
        recent.committed(max, &leaves(max..max + 5));
        assert_eq!(recent.range(0, 1), None);
        assert_eq!(recent.range(4, 6), None);
        assert_eq!(recent.range(5, max + 5), Some(leaves(5..max + 5)));
    }
}
