//! Replay protection: a message (id + signature) is accepted once. Messages older than the
//! accepted clock skew are refused outright, so the memory of seen messages only needs to
//! span that window.
//!
//! A gateway alone keeps that memory in its process. Nodes of a cluster (gateways sharing a
//! PostgreSQL store) also share it through the store, so a message accepted by one node is
//! refused by every other: the keys of concurrent requests are written together in one
//! transaction by a writer task (as the message log's group commit does), and a key
//! counts as new only for the node whose insert created it.

use lienthong_store::Store;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::{mpsc, oneshot};

/// Keys written per transaction at most.
const MAX_BATCH: usize = 256;
/// Seen keys kept in process before the expired ones are dropped.
const LOCAL_CAPACITY: usize = 100_000;

type Key = [u8; 32];
type Reply = oneshot::Sender<Result<bool, String>>;

/// The keys seen in process, and the size at which expired ones are next swept out. A key
/// is kept as the first 128 bits of its SHA-256 (a chance collision between two messages
/// of one window is about 2^-90 at a million a second), with its message time: 24 bytes,
/// not 40, as the map holds every message of the clock-skew window (150,000 at 500/s).
#[derive(Debug)]
struct Seen {
    keys: HashMap<u128, i64>,
    sweep_at: usize,
}

/// The in-process form of a key.
fn local_key(key: &Key) -> u128 {
    let mut half = [0u8; 16];
    half.copy_from_slice(&key[..16]);
    u128::from_be_bytes(half)
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            keys: HashMap::new(),
            sweep_at: LOCAL_CAPACITY,
        }
    }
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
            seen: Mutex::new(Seen::default()),
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
            seen: Mutex::new(Seen::default()),
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
        {
            let mut seen = self.seen.lock().map_err(|_| "replay memory unavailable")?;
            // Expired keys are dropped when the map has grown by a quarter since the last
            // sweep (and holds more than LOCAL_CAPACITY), so the sweep's cost is spread
            // over the insertions that made it necessary (four key visits per insertion)
            // instead of paid by every request once the window holds many messages, and
            // the map stays within 1.25 x the window's messages.
            if seen.keys.len() > seen.sweep_at {
                let horizon = now_ms - self.window_ms;
                seen.keys.retain(|_, &mut time| time >= horizon);
                seen.sweep_at = LOCAL_CAPACITY.max(seen.keys.len() + seen.keys.len() / 4);
            }
            if seen.keys.contains_key(&local_key(&key)) {
                return Err("this message (id and signature) was already received");
            }
            seen.keys.insert(local_key(&key), message_time_ms);
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
                if let Ok(mut seen) = self.seen.lock() {
                    seen.keys.remove(&local_key(&key));
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
    async fn expired_keys_are_swept_once_the_map_grows() {
        let window = 1_000;
        let guard = ReplayGuard::new(window);
        let count = i64::try_from(LOCAL_CAPACITY).expect("small") + 1;
        for n in 0..count {
            assert!(guard.check(&n.to_string(), "sig", 0, 0).await.is_ok());
        }
        let later = window + 1;
        assert!(guard.check("late", "sig", later, later).await.is_ok());
        let seen = guard.seen.lock().expect("lock");
        assert_eq!(
            seen.keys.len(),
            1,
            "only the late message is still remembered"
        );
        assert_eq!(seen.sweep_at, LOCAL_CAPACITY);
    }

    /// A steady stream over three windows: the map never holds more than a quarter over
    /// the messages of one window, and a message of the window is still refused.
    #[tokio::test]
    async fn the_memory_stays_within_a_quarter_of_the_window() {
        let window = 1_000;
        let per_ms = 120;
        let guard = ReplayGuard::new(window);
        let mut most = 0;
        for time in 0..3 * window {
            for k in 0..per_ms {
                let id = format!("{time}-{k}");
                assert!(guard.check(&id, "sig", time, time).await.is_ok());
            }
            most = most.max(guard.seen.lock().expect("lock").keys.len());
        }
        let in_window = usize::try_from(per_ms * (window + 1)).expect("small");
        assert!(most > LOCAL_CAPACITY, "the test reaches the sweeps");
        assert!(most <= in_window + in_window / 4 + 1, "{most} keys held");
        let now = 3 * window - 1;
        assert!(guard.check("2500-7", "sig", 2500, now).await.is_err());
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
