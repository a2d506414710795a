//! Batch signing: one signature over the Merkle root of many message digests, so that
//! throughput never waits on a slow key (an HSM may take 10-100 ms per signature).
//!
//! The leaves of a batch are [`merkle::leaf_hash`] of each message's SHA-256 digest, in the
//! order the requests were taken; the key signs `"lienthong-batch-v1\0" || batch_size as
//! u32 big-endian || root`. The size is signed because an inclusion path alone does not bind
//! it (see [`merkle::root_from_inclusion_proof`]). Each message then carries a
//! [`BatchSignature`]: the root signature, its leaf index and the path to the root.
//!
//! [`BatchSigner`] batches the way a database group-commits: while one signature is being
//! made, new requests queue, and the next batch is whatever is waiting. At low load a request
//! costs one signature; at high load one signature covers up to `max_batch` messages.
//! [`BatchVerifier`] remembers verified root signatures, so the other messages of a batch
//! cost only their hash path.
//!
//! A quick key signs in microseconds, so under moderate load nothing queues behind it and
//! every batch holds one message: the signer's side is cheap, but every message then costs
//! the *verifier* a full signature check, several times the price of signing. A signer
//! spawned with a [`Gather`] policy, when its owner says it is busy (a gateway: many
//! exchanges in flight, so the machine is saturated), lets the tasks that are ready to run
//! go first and takes the requests they make into the batch (`gather_ready`). It waits on
//! no timer, so a batch costs its messages a few task switches. Idle or lightly loaded, it
//! signs at once as before.
//!
//! A quick key with nothing else to sign does not use the task at all: the caller signs its
//! message in a batch of one itself ([`BatchSigner::sign`]). Handing the request to the task
//! and being woken with the answer cost two task switches, each of which can wake another
//! of the runtime's threads, and a thread's wake-up costs more than the signature. The moment
//! another request is waiting or being signed, or the owner is busy, requests go through the
//! task and batch as above.

use crate::{CryptoError, PublicKey, Signer, Suite, merkle};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The most messages one root signature covers; [`sign_batch`] splits longer inputs.
/// It keeps paths at most 16 hashes, so a [`BatchSignature`] fits an HTTP header.
pub const MAX_BATCH: usize = 1 << 16;

/// Domain separation of what the key signs for a batch.
const SIGNED_PREFIX: &[u8] = b"lienthong-batch-v1\0";
/// Version tag of the text form.
const TEXT_VERSION: &str = "v1";
/// Longer text is refused before it is split or decoded.
const MAX_TEXT_LEN: usize = 8192;

/// The signature of one message of a batch: the signature over the batch's root, and the
/// inclusion path from the message's leaf to that root.
#[derive(Clone, PartialEq, Eq)]
pub struct BatchSignature {
    /// The suite of the root signature.
    pub suite: Suite,
    /// The signature over the signed form of the root (see the module documentation).
    pub root_signature: Vec<u8>,
    /// How many messages the batch has (at least 1).
    pub batch_size: u32,
    /// The position of this message's leaf in the batch.
    pub index: u32,
    /// Sibling hashes from the leaf up to the root; empty for a batch of one.
    pub path: Vec<[u8; 32]>,
}

/// Why the text of a [`BatchSignature`] was refused. Says which rule broke, never echoes input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed batch signature: {reason}")]
pub struct MalformedBatchSignature {
    reason: &'static str,
}

impl MalformedBatchSignature {
    /// The rule the text broke, for logs and error responses.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl BatchSignature {
    /// The text form, for an HTTP header:
    ///
    /// ```text
    /// v1;SUITE;BATCH_SIZE;INDEX;SIGNATURE;PATH
    /// ```
    ///
    /// `SUITE` is [`Suite::id`]; `BATCH_SIZE` and `INDEX` are decimal `u32`s without sign
    /// or leading zeros, with `INDEX < BATCH_SIZE`; `SIGNATURE` is the root signature and
    /// `PATH` the concatenated 32-byte path hashes (leaf to root), both in padded standard
    /// base64 (RFC 4648, section 4); `PATH` is empty for a batch of one. Every value has one
    /// text form only, so the text can itself be hashed or compared.
    pub fn to_text(&self) -> String {
        format!(
            "{TEXT_VERSION};{};{};{};{};{}",
            self.suite.id(),
            self.batch_size,
            self.index,
            STANDARD.encode(&self.root_signature),
            STANDARD.encode(self.path.concat()),
        )
    }

    /// Parse the text form of [`BatchSignature::to_text`], strictly: anything but the one
    /// canonical form is refused, including a path of the wrong length for the index and size.
    pub fn from_text(text: &str) -> Result<Self, MalformedBatchSignature> {
        let malformed = |reason| MalformedBatchSignature { reason };
        if text.len() > MAX_TEXT_LEN {
            return Err(malformed("longer than 8192 bytes"));
        }
        let mut fields = text.split(';');
        let mut next = || {
            fields
                .next()
                .ok_or(malformed("expected 6 fields separated by ';'"))
        };
        let (version, suite, batch_size, index, signature, path) =
            (next()?, next()?, next()?, next()?, next()?, next()?);
        if fields.next().is_some() {
            return Err(malformed("expected 6 fields separated by ';'"));
        }
        if version != TEXT_VERSION {
            return Err(malformed("unknown version (expected v1)"));
        }
        let suite = Suite::from_id(suite).map_err(|_| malformed("unknown signature suite"))?;
        let batch_size = parse_decimal(batch_size).ok_or(malformed("batch size is not a u32"))?;
        let index = parse_decimal(index).ok_or(malformed("index is not a u32"))?;
        let path_len = merkle::inclusion_proof_len(index.into(), batch_size.into())
            .ok_or(malformed("index is not below the batch size"))?;
        let root_signature = STANDARD
            .decode(signature)
            .map_err(|_| malformed("signature is not canonical base64"))?;
        if root_signature.is_empty() {
            return Err(malformed("signature is empty"));
        }
        let path = STANDARD
            .decode(path)
            .map_err(|_| malformed("path is not canonical base64"))?;
        if path.len() != path_len * 32 {
            return Err(malformed(
                "path length does not match the index and batch size",
            ));
        }
        let path = path
            .chunks_exact(32)
            .map(|hash| hash.try_into().map_err(|_| malformed("path hash length")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            suite,
            root_signature,
            batch_size,
            index,
            path,
        })
    }
}

impl std::fmt::Debug for BatchSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BatchSignature({})", self.to_text())
    }
}

/// Sign `digests` (SHA-256 digests of messages) in batches of at most [`MAX_BATCH`], one
/// signature per batch, returning one [`BatchSignature`] per digest in the same order.
///
/// This is the synchronous core of [`BatchSigner`], for callers that already have a batch.
pub fn sign_batch(
    signer: &dyn Signer,
    digests: &[[u8; 32]],
) -> Result<Vec<BatchSignature>, CryptoError> {
    let mut signatures = Vec::with_capacity(digests.len());
    for batch in digests.chunks(MAX_BATCH) {
        let tree = merkle::Tree::new(batch.iter().map(|d| merkle::leaf_hash(d)).collect());
        let batch_size = u32::try_from(tree.len()).map_err(|_| too_large())?;
        let signature = signer.sign(&signed_message(batch_size, &tree.root()))?;
        for (index, position) in (0..batch_size).zip(0..) {
            signatures.push(BatchSignature {
                suite: signature.suite,
                root_signature: signature.bytes.clone(),
                batch_size,
                index,
                path: tree.inclusion_proof(position).ok_or_else(too_large)?,
            });
        }
    }
    Ok(signatures)
}

/// Unreachable while batches are at most [`MAX_BATCH`]; an error rather than a panic.
fn too_large() -> CryptoError {
    CryptoError::Backend("batch larger than MAX_BATCH")
}

/// A handle to a background task that batches signing requests. Cheap to clone; the task
/// ends when the last handle is dropped.
#[derive(Clone)]
pub struct BatchSigner {
    requests: mpsc::Sender<Request>,
    signer: Arc<dyn Signer>,
    counters: Arc<Counters>,
    /// Whether the owner is busy (the gather policy's question); never, without one.
    busy: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

/// Counters of a [`BatchSigner`], for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSignerStats {
    /// Root signatures made successfully.
    pub batches_signed: u64,
    /// Messages covered by those signatures.
    pub messages_signed: u64,
    /// Requests waiting for the next batch (callers blocked on a full queue not counted).
    pub queued: usize,
}

/// When a [`BatchSigner`] gathers more requests before it signs.
#[derive(Clone)]
pub struct Gather {
    /// Asked when a batch's first requests have been taken: whether to gather more.
    pub busy: Arc<dyn Fn() -> bool + Send + Sync>,
    /// The longest a batch gathers, from then, while requests keep coming.
    pub wait: Duration,
}

impl std::fmt::Debug for Gather {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gather").field("wait", &self.wait).finish()
    }
}

struct Request {
    digest: [u8; 32],
    reply: oneshot::Sender<Result<BatchSignature, CryptoError>>,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    messages: AtomicU64,
    /// Callers inside [`BatchSigner::sign`]: queued, being signed, or signing alone.
    active: AtomicUsize,
}

impl Counters {
    fn signed(&self, messages: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.messages.fetch_add(messages as u64, Ordering::Relaxed);
    }
}

/// Counts a caller as active until dropped (answered, failed or withdrawn).
struct Active<'a>(&'a AtomicUsize);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl BatchSigner {
    /// Start the batching task on the current tokio runtime. A batch holds at most
    /// `max_batch` messages (clamped to `1..=MAX_BATCH`); at most that many requests wait
    /// in the queue, and further callers wait to enter it.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn spawn(signer: Arc<dyn Signer>, max_batch: usize) -> Self {
        Self::spawn_gathering(signer, max_batch, None)
    }

    /// [`BatchSigner::spawn`], waiting for more requests as `gather` says (see the module
    /// documentation); `None` never waits.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn spawn_gathering(
        signer: Arc<dyn Signer>,
        max_batch: usize,
        gather: Option<Gather>,
    ) -> Self {
        let max_batch = max_batch.clamp(1, MAX_BATCH);
        let (requests, receiver) = mpsc::channel(max_batch);
        let counters = Arc::new(Counters::default());
        let busy = gather.as_ref().map(|gather| Arc::clone(&gather.busy));
        tokio::spawn(run(
            Arc::clone(&signer),
            receiver,
            max_batch,
            gather,
            Arc::clone(&counters),
        ));
        Self {
            requests,
            signer,
            counters,
            busy,
        }
    }

    /// Sign the SHA-256 `digest` of a message, in the next batch; or, if the key is quick,
    /// nothing else is waiting or being signed and the owner is not busy, in a batch of
    /// one right here (see the module documentation).
    ///
    /// Dropping the future before it completes withdraws the request if its batch has not
    /// started yet.
    pub async fn sign(&self, digest: [u8; 32]) -> Result<BatchSignature, CryptoError> {
        if let Some(signed) = self.sign_alone(&digest) {
            return signed;
        }
        self.counters.active.fetch_add(1, Ordering::AcqRel);
        let _active = Active(&self.counters.active);
        let stopped = || CryptoError::Backend("batch signer has stopped");
        let (reply, response) = oneshot::channel();
        self.requests
            .send(Request { digest, reply })
            .await
            .map_err(|_| stopped())?;
        response.await.map_err(|_| stopped())?
    }

    /// Sign `digest` alone on the caller's thread, if the key is quick, the owner is not
    /// busy and no other caller is active; `None` otherwise. Two callers at once: one signs
    /// alone, the other queues and is signed by the task meanwhile.
    fn sign_alone(&self, digest: &[u8; 32]) -> Option<Result<BatchSignature, CryptoError>> {
        if !self.signer.signs_in_microseconds() || self.busy.as_ref().is_some_and(|busy| busy()) {
            return None;
        }
        let active = &self.counters.active;
        active
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        let _active = Active(active);
        let signed = sign_batch(&*self.signer, std::slice::from_ref(digest)).and_then(|mut one| {
            one.pop()
                .ok_or(CryptoError::Backend("a batch of one gave no signature"))
        });
        if signed.is_ok() {
            self.counters.signed(1);
        }
        Some(signed)
    }

    /// The suite of every signature this signer makes.
    pub fn suite(&self) -> Suite {
        self.signer.suite()
    }

    /// The public key that verifies this signer's batch signatures.
    pub fn public_key(&self) -> &PublicKey {
        self.signer.public_key()
    }

    /// Counters since the task started.
    pub fn stats(&self) -> BatchSignerStats {
        BatchSignerStats {
            batches_signed: self.counters.batches.load(Ordering::Relaxed),
            messages_signed: self.counters.messages.load(Ordering::Relaxed),
            queued: self.requests.max_capacity() - self.requests.capacity(),
        }
    }
}

impl std::fmt::Debug for BatchSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchSigner")
            .field("signer", &self.signer)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Rounds in a row that bring no request before a gathering batch is signed.
const GATHER_IDLE_ROUNDS: u32 = 2;

/// Gather into `batch` the requests of tasks that are ready to run: yield to the runtime
/// (which runs them, and polls the sockets, before it comes back here), take what they
/// queued, and again, until [`GATHER_IDLE_ROUNDS`] rounds in a row bring nothing, the
/// batch is full, or `wait` has passed. No timer: a request that is not already on its way
/// is not waited for, so a batch costs its messages a few task switches, not a timer tick.
async fn gather_ready(
    receiver: &mut mpsc::Receiver<Request>,
    batch: &mut Vec<Request>,
    max_batch: usize,
    wait: Duration,
) {
    let until = tokio::time::Instant::now() + wait;
    let mut idle_rounds = 0;
    while batch.len() < max_batch && tokio::time::Instant::now() < until {
        tokio::task::yield_now().await;
        let before = batch.len();
        while batch.len() < max_batch {
            match receiver.try_recv() {
                Ok(request) => batch.push(request),
                // Nothing queued, or every handle is gone: sign what there is.
                Err(_) => break,
            }
        }
        if batch.len() > before {
            idle_rounds = 0;
        } else {
            idle_rounds += 1;
            if idle_rounds == GATHER_IDLE_ROUNDS {
                break;
            }
        }
    }
}

/// The batching task: take the first waiting request and everything queued behind it,
/// gather more if `gather` says so ([`gather_ready`]), sign once off the async threads,
/// answer everyone, repeat. Without a gather policy, batches form while the previous
/// signature is being made.
async fn run(
    signer: Arc<dyn Signer>,
    mut receiver: mpsc::Receiver<Request>,
    max_batch: usize,
    gather: Option<Gather>,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::new();
    while receiver.recv_many(&mut batch, max_batch).await > 0 {
        if let Some(gather) = &gather
            && batch.len() < max_batch
            && (gather.busy)()
        {
            gather_ready(&mut receiver, &mut batch, max_batch, gather.wait).await;
        }
        // Callers that gave up are not worth a leaf.
        batch.retain(|request: &Request| !request.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let digests: Vec<[u8; 32]> = batch.iter().map(|request| request.digest).collect();
        // A quick software key signs right here: waking a blocking thread and waiting for
        // it costs more than the signature. Anything slower (an HSM, RSA) goes off the
        // async threads.
        let signed = if signer.signs_in_microseconds() {
            Ok(sign_batch(&*signer, &digests))
        } else {
            let signer = Arc::clone(&signer);
            tokio::task::spawn_blocking(move || sign_batch(&*signer, &digests)).await
        };
        match signed {
            Ok(Ok(signatures)) => {
                counters.signed(signatures.len());
                for (request, signature) in batch.drain(..).zip(signatures) {
                    // The caller may have gone away meanwhile; nothing to do then.
                    let _ = request.reply.send(Ok(signature));
                }
            }
            Ok(Err(error)) => {
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(duplicate(&error)));
                }
            }
            Err(_join_error) => {
                for request in batch.drain(..) {
                    let _ = request
                        .reply
                        .send(Err(CryptoError::Backend("signer panicked")));
                }
            }
        }
    }
}

/// A copy of a signing error for each caller of a failed batch (`CryptoError` is not
/// `Clone`: it can hold an `io::Error`, which a signer does not return).
fn duplicate(error: &CryptoError) -> CryptoError {
    match error {
        CryptoError::BadSignature => CryptoError::BadSignature,
        CryptoError::InvalidKey(reason) => CryptoError::InvalidKey(reason.clone()),
        CryptoError::UnsupportedAlgorithm(reason) => {
            CryptoError::UnsupportedAlgorithm(reason.clone())
        }
        CryptoError::SuiteMismatch { key, suite } => CryptoError::SuiteMismatch {
            key: key.clone(),
            suite: suite.clone(),
        },
        CryptoError::Policy(violation) => CryptoError::Policy(violation.clone()),
        CryptoError::Backend(reason) => CryptoError::Backend(reason),
        _ => CryptoError::Backend("batch signing failed"),
    }
}

/// Verifies batch signatures, remembering a bounded number of verified root signatures so
/// that the other messages of a batch cost only their hash path.
///
/// The memory is keyed on everything the signature check depended on (public key, suite,
/// batch size, root and signature bytes) and filled only after a check succeeds, so it can
/// never make a signature pass that would fail. Whether the key is still trusted (certificate
/// validity, revocation) is the caller's question, asked before calling.
#[derive(Debug)]
pub struct BatchVerifier {
    capacity: usize,
    verified: Mutex<Verified>,
    signature_checks: AtomicU64,
    cache_hits: AtomicU64,
}

/// Counters of a [`BatchVerifier`], for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchVerifierStats {
    /// Root signatures checked with the public key (successfully or not).
    pub signature_checks: u64,
    /// Verifications answered from the memory of verified root signatures.
    pub cache_hits: u64,
}

/// Verified root signatures. Evicted oldest first: the messages of a batch arrive close
/// together, so recency of insertion is as good as recency of use, and costs O(1).
#[derive(Debug, Default)]
struct Verified {
    keys: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl BatchVerifier {
    /// A verifier remembering up to `capacity` root signatures (0 remembers none).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            verified: Mutex::new(Verified::default()),
            signature_checks: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        }
    }

    /// Check that `signature` signs the message whose SHA-256 digest is `digest` under
    /// `public_key`. A wrong digest, index, size, path or signature gives
    /// [`CryptoError::BadSignature`]; a suite the key cannot have gives the key's error.
    pub fn verify(
        &self,
        public_key: &PublicKey,
        digest: &[u8; 32],
        signature: &BatchSignature,
    ) -> Result<(), CryptoError> {
        let root = merkle::root_from_inclusion_proof(
            &merkle::leaf_hash(digest),
            signature.index.into(),
            signature.batch_size.into(),
            &signature.path,
        )
        .ok_or(CryptoError::BadSignature)?;
        let message = signed_message(signature.batch_size, &root);
        let key = cache_key(
            public_key,
            signature.suite,
            &message,
            &signature.root_signature,
        );
        if self.lock().keys.contains(&key) {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.signature_checks.fetch_add(1, Ordering::Relaxed);
        public_key.verify_x509(signature.suite.x509(), &message, &signature.root_signature)?;
        self.remember(key);
        Ok(())
    }

    /// Counters since the verifier was made.
    pub fn stats(&self) -> BatchVerifierStats {
        BatchVerifierStats {
            signature_checks: self.signature_checks.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
        }
    }

    fn remember(&self, key: [u8; 32]) {
        if self.capacity == 0 {
            return;
        }
        let mut verified = self.lock();
        if !verified.keys.insert(key) {
            return;
        }
        verified.order.push_back(key);
        while verified.order.len() > self.capacity {
            if let Some(oldest) = verified.order.pop_front() {
                verified.keys.remove(&oldest);
            }
        }
    }

    /// The set is consistent after any panic (each change is one insert or remove), so a
    /// poisoned lock is still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, Verified> {
        self.verified.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the key signs for a batch of `batch_size` leaves with this root.
fn signed_message(batch_size: u32, root: &[u8; 32]) -> Vec<u8> {
    [SIGNED_PREFIX, &batch_size.to_be_bytes(), root].concat()
}

/// The memory key of a verified root signature: a hash over everything the check used.
/// Only the last field has a variable length without a prefix, so the encoding is unambiguous.
fn cache_key(
    public_key: &PublicKey,
    suite: Suite,
    signed_message: &[u8],
    signature: &[u8],
) -> [u8; 32] {
    let spki = public_key.spki_der();
    let suite = suite.id().as_bytes();
    Sha256::new()
        .chain_update(b"lienthong-batch-verified-v1\0")
        .chain_update((spki.len() as u64).to_be_bytes())
        .chain_update(spki)
        .chain_update((suite.len() as u64).to_be_bytes())
        .chain_update(suite)
        .chain_update((signed_message.len() as u64).to_be_bytes())
        .chain_update(signed_message)
        .chain_update(signature)
        .finalize()
        .into()
}

/// A decimal `u32` in its one canonical spelling: digits only, no leading zero.
fn parse_decimal(text: &str) -> Option<u32> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests;
