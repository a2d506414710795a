//! The gateway's message log writer: every exchange's record is appended to the store's
//! tamper-evident log, and the answer is released only once its record is committed.
//! Records arriving while a commit is in progress are committed together in the next
//! transaction (group commit), so durability costs one fsync per batch, not per message.

use crate::XRoadError;
use crate::metrics::Metrics;
use lienthong_ledger::LogRecord;
use lienthong_store::{LedgerBodies, NewLedgerEntry, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Records committed at most per transaction.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<u64, String>>;
/// A record and the bodies kept beside it, if any.
type Logged = (NewLedgerEntry, Option<LedgerBodies>);

/// A handle to the writer task.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    queue: mpsc::Sender<(Logged, Reply)>,
    /// Records handed in and not yet answered (queued or being committed).
    pending: Arc<AtomicUsize>,
}

impl Journal {
    /// Start the writer for the log `log_id` in `store`.
    pub(crate) fn spawn(store: Store, log_id: String, metrics: Arc<Metrics>) -> Self {
        let (queue, mut incoming) = mpsc::channel::<(Logged, Reply)>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while incoming.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (entries, replies): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut batch).into_iter().unzip();
                let (entries, bodies): (Vec<_>, Vec<_>) = entries.into_iter().unzip();
                let records = entries.len();
                metrics.log_batch(records);
                match store.ledger().append_owned(&log_id, entries, bodies).await {
                    Ok(first) => {
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
        Self {
            queue,
            pending: Arc::default(),
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
        let (reply, committed) = oneshot::channel();
        self.queue
            .send(((entry, bodies), reply))
            .await
            .map_err(|_| failed("the log writer has stopped".into()))?;
        committed
            .await
            .map_err(|_| failed("the log writer has stopped".into()))?
            .map_err(failed)
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
