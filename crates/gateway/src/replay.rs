//! Replay protection: a message (id + signature) is accepted once. Messages older than the
//! accepted clock skew are refused outright, so the memory of seen messages only needs to
//! span that window. The check runs after the message's signature has verified, over a
//! description that holds the message's time: a message is looked for only among the keys
//! of its time's slice.
//!
//! A gateway alone keeps that memory in its process. Nodes of a cluster (gateways sharing a
//! PostgreSQL store) also share it through the store, so a message accepted by one node is
//! refused by every other: the keys of concurrent requests are written together in one
//! transaction by a writer task (as the message log's group commit does), and a key
//! counts as new only for the node whose insert created it.

use lienthong_store::Store;
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use tokio::sync::{mpsc, oneshot};

/// Keys written per transaction at most.
const MAX_BATCH: usize = 256;
/// The seen keys are grouped by message time into this many slices per window: the memory
/// holds the keys of at most one slice more than a window.
const SLICES_PER_WINDOW: i64 = 16;

type Key = [u8; 32];
type Reply = oneshot::Sender<Result<bool, String>>;

/// The keys seen in process, grouped by the slice of the window their message time falls
/// in (slice `n` holds times `n * slice_ms .. (n + 1) * slice_ms`). A slice is dropped whole
/// once all its times are past the window: no sweep visits keys, and memory is given back
/// and taken again in slices of about the same size, so it stays flat once the window is
/// full (the 10-minute soak saw one map that swept in place grow in steps, 8 MiB at once
/// when it doubled). The map holds at most the messages of 1 1/16 windows (plus any sent
/// with a clock ahead of ours). A key is kept as the first 64 bits of its SHA-256, and a
/// message is looked for only among the keys of its own slice: with 100,000 keys in a
/// slice (5,300 messages a second), the chance that a new message is taken for one of
/// them is about 2^-47, and a replay always has the very same key. At 2,162 messages a
/// second (5-minute window) the memory grew the process by 23 MiB with 128-bit keys in 8
/// slices and SipHash, and by 15 MiB with 96-bit keys in 16 slices; at 3,141 a second, by
/// 30 MiB with 96-bit keys and every slice a hash set, by 18 MiB with past slices packed
/// ([`SliceKeys`]), and by 13 MiB with 64-bit keys (`rss_probe` below).
#[derive(Debug, Default)]
struct Seen {
    slices: BTreeMap<i64, SliceKeys>,
    /// The slices before this one have been packed.
    packed_below: i64,
}

#[cfg(test)]
impl Seen {
    fn len(&self) -> usize {
        self.slices.values().map(SliceKeys::len).sum()
    }
}

/// The keys of one slice: a hash set while messages of its times arrive; packed
/// ([`Packed`]) once its times are a whole slice in the past.
///
/// A hash set grows by doubling, so it is between 44 % and 88 % full: at 3,141 messages a
/// second (5-minute window) each slice held 62,000 keys in a table of 131,072 slots (13
/// bytes each with 96-bit keys), and the memory grew the process by 30 MiB (`rss_probe`);
/// packed, a key costs its 8 bytes and about a byte of bucket index.
#[derive(Debug)]
enum SliceKeys {
    Open(HashSet<LocalKey, BuildKeyHasher>),
    Packed(Packed),
}

impl Default for SliceKeys {
    fn default() -> Self {
        Self::Open(HashSet::default())
    }
}

impl SliceKeys {
    fn contains(&self, key: &LocalKey) -> bool {
        match self {
            Self::Open(keys) => keys.contains(key),
            Self::Packed(packed) => packed.contains(key),
        }
    }

    fn insert(&mut self, key: LocalKey) {
        match self {
            Self::Open(keys) => {
                keys.insert(key);
            }
            Self::Packed(packed) => {
                packed.late.insert(key);
            }
        }
    }

    fn remove(&mut self, key: &LocalKey) {
        match self {
            Self::Open(keys) => {
                keys.remove(key);
            }
            Self::Packed(packed) => packed.remove(key),
        }
    }

    /// Pack an open slice; a packed one stays as it is.
    fn pack(&mut self) {
        if let Self::Open(keys) = self {
            *self = Self::Packed(Packed::new(std::mem::take(keys)));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Self::Open(keys) => keys.len(),
            Self::Packed(packed) => packed.keys.len() + packed.late.len(),
        }
    }
}

/// Keys packed end to end (8 bytes each), grouped by their mixed hash into buckets of
/// [`KEYS_PER_BUCKET`] to twice that on average; a lookup scans one bucket. The bucket comes from the same
/// secret mix as a hash set's slot, so a peer cannot pile its keys into one bucket.
/// Messages whose time falls in the slice after it was packed (a peer's clock well
/// behind) go to `late`.
#[derive(Debug)]
struct Packed {
    /// Where each bucket's keys start in `keys`, and where the last ends.
    starts: Vec<usize>,
    /// log2 of the number of buckets.
    bits: u32,
    keys: Vec<LocalKey>,
    late: HashSet<LocalKey, BuildKeyHasher>,
}

/// Keys a packed slice's bucket holds on average, at least (fewer buckets than a power of
/// two above `len / KEYS_PER_BUCKET`, so at most twice this).
const KEYS_PER_BUCKET: usize = 8;

impl Packed {
    fn new(open: HashSet<LocalKey, BuildKeyHasher>) -> Self {
        let bits = (open.len() / KEYS_PER_BUCKET).max(1).ilog2();
        let mut starts = vec![0usize; (1 << bits) + 1];
        for key in &open {
            starts[bucket(key, bits) + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut next = starts.clone();
        let mut keys = vec![LocalKey([0; 8]); open.len()];
        for key in open {
            let at = &mut next[bucket(&key, bits)];
            keys[*at] = key;
            *at += 1;
        }
        Self {
            starts,
            bits,
            keys,
            late: HashSet::default(),
        }
    }

    /// `key`'s bucket, and where its keys lie in `keys`.
    fn bucket_of(&self, key: &LocalKey) -> (usize, std::ops::Range<usize>) {
        let b = bucket(key, self.bits);
        (b, self.starts[b]..self.starts[b + 1])
    }

    fn contains(&self, key: &LocalKey) -> bool {
        self.keys[self.bucket_of(key).1].contains(key) || self.late.contains(key)
    }

    /// Forget `key` (a message refused after all: rare, so the keys after it move down).
    fn remove(&mut self, key: &LocalKey) {
        if self.late.remove(key) {
            return;
        }
        let (b, range) = self.bucket_of(key);
        let start = range.start;
        let Some(offset) = self.keys[range].iter().position(|k| k == key) else {
            return;
        };
        self.keys.remove(start + offset);
        for end in &mut self.starts[b + 1..] {
            *end -= 1;
        }
    }
}

/// The bucket of `key` among `2^bits`: the top bits of its mixed hash.
fn bucket(key: &LocalKey, bits: u32) -> usize {
    let hash = mix(u64::from_le_bytes(key.0), &MIX);
    // Two shifts, so that no bits (one bucket) shifts by 64.
    usize::try_from((hash >> (63 - bits)) >> 1).unwrap_or(0)
}

/// The in-process form of a key: 8 bytes, aligned to 1, so a table slot is 9 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LocalKey([u8; 8]);

impl std::hash::Hash for LocalKey {
    /// Its bytes as one word, which [`KeyHasher`] mixes with a secret of the process: a key
    /// is already a uniform hash (SHA-256), and SipHash was most of a check's time.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from_le_bytes(self.0));
    }
}

/// The hasher of [`LocalKey`]s: the value it is given, mixed with a random secret of the
/// process ([`mix`]: two folded multiplies). Unmixed, the table's slot would be the key's
/// low bits, which a peer could choose by trying message ids, to pile its messages into
/// one run of slots; mixed, it cannot tell where they go.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

/// The secret of [`KeyHasher`]: four random words of this process.
static MIX: std::sync::LazyLock<[u64; 4]> = std::sync::LazyLock::new(|| {
    use std::hash::{BuildHasher as _, Hasher as _};
    let random = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    [random(), random() | 1, random(), random() | 1]
});

/// `value` mixed with `secret`: two rounds of a folded multiply (the 128-bit product's
/// halves xored). One round leaves the low bits of its result depending on few bits of
/// the value when only its high bits vary (keys differing in 10 bits at bit 40 fell in
/// 338 slots of 65,536 for one secret in 1,000 keys); the second round spreads them.
fn mix(value: u64, secret: &[u64; 4]) -> u64 {
    let fold = |a: u64, b: u64| {
        let product = u128::from(a) * u128::from(b);
        (product as u64) ^ ((product >> 64) as u64)
    };
    fold(fold(value ^ secret[0], secret[1]) ^ secret[2], secret[3])
}

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by `LocalKey`; folded in for any other input.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = mix(value, &MIX);
    }
}

type BuildKeyHasher = std::hash::BuildHasherDefault<KeyHasher>;

/// The in-process form of a key.
fn local_key(key: &Key) -> LocalKey {
    let mut kept = [0u8; 8];
    kept.copy_from_slice(&key[..8]);
    LocalKey(kept)
}

/// Seen messages within the window.
#[derive(Debug)]
pub(crate) struct ReplayGuard {
    window_ms: i64,
    seen: Mutex<Seen>,
    shared: Option<mpsc::Sender<(Key, i64, Reply)>>,
}

impl ReplayGuard {
    /// A guard accepting message times within `window_ms` of now, remembering in process.
    pub(crate) fn new(window_ms: i64) -> Self {
        Self {
            window_ms,
            seen: Mutex::default(),
            shared: None,
        }
    }

    /// A guard that also shares its memory with the other nodes using `store`, and
    /// forgets expired keys there every minute. Must be called within a Tokio runtime.
    pub(crate) fn shared(window_ms: i64, store: Store) -> Self {
        let (queue, mut incoming) = mpsc::channel::<(Key, i64, Reply)>(4 * MAX_BATCH);
        let writer = store.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while incoming.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let keys: Vec<(Key, i64)> = batch.iter().map(|(k, t, _)| (*k, *t)).collect();
                match writer.replay().remember_messages(&keys).await {
                    Ok(fresh) => {
                        for ((_, _, reply), fresh) in batch.drain(..).zip(fresh) {
                            let _ = reply.send(Ok(fresh));
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot reach the shared replay memory");
                        for (_, _, reply) in batch.drain(..) {
                            let _ = reply.send(Err(error.to_string()));
                        }
                    }
                }
            }
        });
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let horizon = crate::gateway::unix_now_ms() - 2 * window_ms;
                if let Err(error) = store.replay().forget_messages_before(horizon).await {
                    tracing::warn!(%error, "cannot forget expired keys of the replay memory");
                }
            }
        });
        Self {
            window_ms,
            seen: Mutex::default(),
            shared: Some(queue),
        }
    }

    /// Accept a message once. `Err` says why not.
    pub(crate) async fn check(
        &self,
        message_id: &str,
        signature: &str,
        message_time_ms: i64,
        now_ms: i64,
    ) -> Result<(), &'static str> {
        if (now_ms - message_time_ms).abs() > self.window_ms {
            return Err("message time is outside the accepted clock skew");
        }
        let mut key_material = Vec::with_capacity(message_id.len() + signature.len() + 1);
        key_material.extend_from_slice(message_id.as_bytes());
        key_material.push(0);
        key_material.extend_from_slice(signature.as_bytes());
        let key = crate::message::digest(&key_material);
        let slice_ms = (self.window_ms / SLICES_PER_WINDOW).max(1);
        let slice = message_time_ms.div_euclid(slice_ms);
        {
            let mut seen = self.seen.lock().map_err(|_| "replay memory unavailable")?;
            let horizon = now_ms - self.window_ms;
            while let Some(entry) = seen.slices.first_entry()
                && (entry.key() + 1) * slice_ms <= horizon
            {
                entry.remove();
            }
            // Slices whose times ended a whole slice ago get few new keys: pack them.
            let settled = now_ms.div_euclid(slice_ms) - 1;
            if settled > seen.packed_below {
                for keys in seen.slices.range_mut(..settled).map(|(_, keys)| keys) {
                    keys.pack();
                }
                seen.packed_below = settled;
            }
            // Only the slice of the message's time is looked in: the signature has verified
            // over the description that holds the time, so a message's id and signature
            // always come with the same time.
            let local = local_key(&key);
            let keys = seen.slices.entry(slice).or_default();
            if keys.contains(&local) {
                return Err("this message (id and signature) was already received");
            }
            keys.insert(local);
        }
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let (reply, answer) = oneshot::channel();
        let fresh = match shared.send((key, message_time_ms, reply)).await {
            Ok(()) => answer.await.unwrap_or(Err("writer stopped".into())),
            Err(_) => Err("writer stopped".into()),
        };
        match fresh {
            Ok(true) => Ok(()),
            Ok(false) => {
                Err("this message (id and signature) was already received by another node")
            }
            Err(error) => {
                tracing::error!(%error, "refusing a message: the shared replay memory is unavailable");
                // Not remembered anywhere else: let a retry of the same message through
                // once the store is back.
                if let Ok(mut seen) = self.seen.lock()
                    && let Some(keys) = seen.slices.get_mut(&slice)
                {
                    keys.remove(&local_key(&key));
                }
                Err("the shared replay memory is unavailable")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepts_once_and_refuses_stale() {
        let guard = ReplayGuard::new(300_000);
        assert!(guard.check("id", "sig", 1_000_000, 1_000_000).await.is_ok());
        assert!(
            guard
                .check("id", "sig", 1_000_000, 1_000_001)
                .await
                .is_err()
        );
        assert!(
            guard
                .check("id", "other-sig", 1_000_000, 1_000_001)
                .await
                .is_ok()
        );
        assert!(guard.check("old", "sig", 0, 1_000_000).await.is_err());
    }

    #[tokio::test]
    async fn expired_slices_are_dropped() {
        let window = 1_000;
        let guard = ReplayGuard::new(window);
        for n in 0..10_000 {
            assert!(guard.check(&n.to_string(), "sig", 0, 0).await.is_ok());
        }
        assert_eq!(guard.seen.lock().expect("lock").len(), 10_000);
        // The slice holding time 0 ends at window / SLICES_PER_WINDOW: past the window
        // after that.
        let later = window + window / SLICES_PER_WINDOW;
        assert!(guard.check("late", "sig", later, later).await.is_ok());
        let seen = guard.seen.lock().expect("lock");
        assert_eq!(seen.len(), 1, "only the late message is still remembered");
        assert_eq!(seen.slices.len(), 1);
    }

    /// A steady stream over three windows: the memory never holds more than the messages
    /// of a window and a slice, and a message of the window is still refused.
    #[tokio::test]
    async fn the_memory_stays_within_a_slice_over_the_window() {
        let window = 1_000;
        let per_ms = 120;
        let guard = ReplayGuard::new(window);
        let mut most = 0;
        for time in 0..3 * window {
            for k in 0..per_ms {
                let id = format!("{time}-{k}");
                assert!(guard.check(&id, "sig", time, time).await.is_ok());
            }
            most = most.max(guard.seen.lock().expect("lock").len());
        }
        let bound = usize::try_from(per_ms * (window + window / SLICES_PER_WINDOW)).expect("small");
        assert!(most <= bound, "{most} keys held, at most {bound} expected");
        let in_window = usize::try_from(per_ms * window).expect("small");
        assert!(most >= in_window, "a whole window is remembered: {most}");
        let now = 3 * window - 1;
        assert!(guard.check("2500-7", "sig", 2500, now).await.is_err());
        assert!(guard.check("2001-7", "sig", 2001, now).await.is_err());
    }

    /// A slice packed once its times are a slice in the past still refuses every message
    /// it holds, takes a late message (a peer's clock behind) and refuses it the second
    /// time; a message of the current slice is taken as before.
    #[tokio::test]
    async fn a_packed_slice_still_refuses_its_messages() {
        let window = 16_000;
        let guard = ReplayGuard::new(window);
        for n in 0..5_000 {
            assert!(
                guard
                    .check(&format!("m-{n}"), "sig", 100, 100)
                    .await
                    .is_ok()
            );
        }
        // Slices are 1 s; the one holding time 100 is packed from time 2,000 on.
        assert!(guard.check("now", "sig", 2_500, 2_500).await.is_ok());
        {
            let seen = guard.seen.lock().expect("lock");
            assert!(matches!(seen.slices.get(&0), Some(SliceKeys::Packed(_))));
            assert!(matches!(seen.slices.get(&2), Some(SliceKeys::Open(_))));
        }
        for n in 0..5_000 {
            assert_eq!(
                guard.check(&format!("m-{n}"), "sig", 100, 2_600).await,
                Err("this message (id and signature) was already received"),
                "m-{n}"
            );
        }
        assert!(guard.check("late", "sig", 200, 2_700).await.is_ok());
        assert!(guard.check("late", "sig", 200, 2_800).await.is_err());
        assert!(guard.check("now", "sig", 2_500, 2_900).await.is_err());
        assert_eq!(guard.seen.lock().expect("lock").len(), 5_002);
    }

    /// Packing keeps exactly the keys it was given, in buckets of the mixed hash; a key
    /// removed (a message refused by the shared memory after all) is forgotten, whether
    /// it was packed or came late, and the others stay.
    #[test]
    fn packing_keeps_its_keys_and_forgets_a_removed_one() {
        let key = |n: u32| {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&n.to_be_bytes());
            local_key(&crate::message::digest(&bytes))
        };
        for count in [0u32, 1, 7, 100, 10_000] {
            let mut slice = SliceKeys::default();
            for n in 0..count {
                slice.insert(key(n));
            }
            slice.pack();
            let SliceKeys::Packed(packed) = &slice else {
                panic!("packed");
            };
            let buckets = packed.starts.len() - 1;
            assert!(
                count < 16
                    || usize::try_from(count).expect("small") / buckets <= 2 * KEYS_PER_BUCKET
            );
            assert_eq!(slice.len(), usize::try_from(count).expect("small"));
            assert!((0..count).all(|n| slice.contains(&key(n))));
            assert!(!(count..count + 1_000).any(|n| slice.contains(&key(n))));
            slice.insert(key(count));
            if count > 0 {
                slice.remove(&key(0));
                assert!(!slice.contains(&key(0)));
            }
            slice.remove(&key(count));
            assert!(!slice.contains(&key(count)));
            assert!((1..count).all(|n| slice.contains(&key(n))));
        }
    }

    /// A kept key is 8 bytes. Keys a peer chose to share their low bits (their table slot,
    /// unmixed), or to differ only in a few high bits, still spread over the table once
    /// mixed, whatever the secret (500 random secrets).
    #[test]
    fn kept_keys_are_small_and_spread_whatever_their_bits() {
        use std::hash::{BuildHasher as _, Hasher as _};
        assert_eq!(std::mem::size_of::<LocalKey>(), 8);
        assert_eq!(std::mem::align_of::<LocalKey>(), 1);
        let random = || {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        for _ in 0..500 {
            let secret = [random(), random() | 1, random(), random() | 1];
            let shapes: [&dyn Fn(u64) -> u64; 3] =
                [&|n| n << 40, &|n| n << 16, &|_| random() << 16];
            for shape in shapes {
                let slots: HashSet<u64> = (0u64..1_000)
                    .map(|n| mix(shape(n), &secret) & 0xffff)
                    .collect();
                assert!(
                    slots.len() > 950,
                    "{} slots of 65,536 for 1,000 keys",
                    slots.len()
                );
            }
        }
        let build = BuildKeyHasher::default();
        let key = LocalKey(7u64.to_le_bytes());
        assert_eq!(build.hash_one(key), mix(7, &MIX));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_sharing_a_store_accept_a_message_once() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("shared.db").display());
        let store = Store::open(&url).await.expect("open the store");
        let now = crate::gateway::unix_now_ms();
        let one = ReplayGuard::shared(300_000, store.clone());
        let two = ReplayGuard::shared(300_000, store);
        assert!(one.check("id-1", "sig", now, now).await.is_ok());
        assert_eq!(
            two.check("id-1", "sig", now, now).await,
            Err("this message (id and signature) was already received by another node")
        );
        assert!(two.check("id-2", "sig", now, now).await.is_ok());
        assert!(one.check("id-2", "sig", now, now).await.is_err());
    }
}
/// What the memory of seen messages costs: not a test (it measures, asserts nothing about
/// the figure), run by hand with `cargo test --release -p lienthong-gateway --lib
/// rss_probe -- --ignored --nocapture`.
#[cfg(test)]
mod rss_probe {
    fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// 3,141 messages a second (the last soak's rate) for 12 minutes of message time with
    /// the 5-minute window: the keys held at the end and the process's growth.
    #[tokio::test]
    #[ignore = "a measurement, run by hand"]
    async fn rss_probe() {
        const RATE: i64 = 3_141;
        let guard = super::ReplayGuard::new(300_000);
        let before = rss_kib();
        for n in 0..RATE * 720 {
            let time = 1_000_000_000 + n * 1_000 / RATE;
            let id = format!("m-{n}");
            assert!(guard.check(&id, "signature", time, time).await.is_ok());
        }
        let held = guard.seen.lock().expect("lock").len();
        println!(
            "keys held {held}; growth {} KiB",
            rss_kib().saturating_sub(before)
        );
    }
}
