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

    /// The leaf hashes of indexes `from..to`, if every one is kept.
    pub(crate) fn range(&self, from: u64, to: u64) -> Option<Vec<[u8; 32]>> {
        let kept = self.kept();
        let start = usize::try_from(from.checked_sub(kept.first)?).ok()?;
        let end = usize::try_from(to.checked_sub(kept.first)?).ok()?;
        if start > end || end > kept.hashes.len() {
            return None;
        }
        // Allocated once at its size: a seal may ask for minutes of leaves (megabytes), and
        // collecting into `Option<Vec<_>>` would grow the vector by doubling.
        let mut hashes = Vec::with_capacity(end - start);
        for hash in kept.hashes.range(start..end) {
            hashes.push((*hash)?);
        }
        Some(hashes)
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
        let way = if store.ledger().groups_appends() {
            Way::Direct {
                store,
                log_id: log_id.into(),
                metrics,
            }
        } else {
            Way::Batched(spawn_batching(store, log_id, metrics, leaves.clone()))
        };
        Self {
            way,
            pending: Arc::default(),
            leaves,
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

    /// Hand `record` in now and commit it in a task of its own, timed as `stage`: the
    /// caller goes on (to send the answer's bytes, not to release it) and learns the
    /// outcome from the handle. The record counts as pending from this call on, so a drain
    /// waits for it even if the handle is dropped.
    pub(crate) fn record_in_background(
        &self,
        record: &LogRecord,
        bodies: Option<LedgerBodies>,
        now: i64,
        metrics: Arc<Metrics>,
        stage: crate::metrics::Stage,
    ) -> tokio::task::JoinHandle<Result<u64, XRoadError>> {
        crate::opmon::note_logged(record);
        let entry = entry(record, now);
        let pending = Pending::enter(&self.pending);
        let journal = self.clone();
        tokio::spawn(async move {
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
                        if let Some(records) = appended.commit_records {
                            metrics.log_batch(usize::try_from(records).unwrap_or(usize::MAX));
                        }
                        self.leaves.committed(appended.index, &[hash]);
                        Ok(appended.index)
                    }
                    Err(error) => {
                        metrics.log_failed(1);
                        tracing::error!(%error, "cannot commit a message log record");
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
                    recent.committed(first, &hashes);
                    for (offset, reply) in replies.into_iter().enumerate() {
                        let _ = reply.send(Ok(first + offset as u64));
                    }
                }
                Err(error) => {
                    metrics.log_failed(records);
                    tracing::error!(%error, records, "cannot commit message log records");
                    for reply in replies {
                        let _ = reply.send(Err(error.to_string()));
                    }
                }
            }
        }
    });
    queue
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
