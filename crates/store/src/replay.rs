//! Replay memory shared by the nodes of a gateway cluster: a message (its id and signature,
//! hashed) is accepted once by whichever node sees it first. Keys older than the accepted
//! clock skew are forgotten, since such messages are refused by their time anyway.

use crate::StoreError;

/// Storage of the messages already accepted.
#[async_trait::async_trait]
pub trait ReplayStore: Send + Sync {
    /// Remember each `(key, message time in Unix ms)` in one transaction; for each key,
    /// `true` if it was new (this caller is the first to see it), `false` if any node had
    /// remembered it before. A key given twice in one call is new only the first time.
    async fn remember_messages(&self, keys: &[([u8; 32], i64)]) -> Result<Vec<bool>, StoreError>;
    /// Forget the keys whose message time is before `before` (Unix ms); returns how many.
    async fn forget_messages_before(&self, before: i64) -> Result<u64, StoreError>;
}

pub(crate) const INSERT: &str =
    "INSERT INTO replay_seen (key, message_time) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
pub(crate) const DELETE: &str = "DELETE FROM replay_seen WHERE message_time < $1";
/// PostgreSQL: remember arrays of keys and times (`$1`, `$2`) in one statement; the keys
/// that were new come back.
pub(crate) const INSERT_ARRAYS: &str = "INSERT INTO replay_seen (key, message_time) \
    SELECT * FROM unnest($1::bytea[], $2::bigint[]) ON CONFLICT (key) DO NOTHING RETURNING key";

/// For each of `keys`, whether it is among `inserted` (the keys a statement inserted), the
/// first time it is given only.
pub(crate) fn new_once(keys: &[([u8; 32], i64)], inserted: &[Vec<u8>]) -> Vec<bool> {
    let mut unclaimed: std::collections::HashSet<&[u8]> =
        inserted.iter().map(Vec::as_slice).collect();
    keys.iter()
        .map(|(key, _)| unclaimed.remove(&key[..]))
        .collect()
}

/// Implement [`ReplayStore`] for a backend (`$backend` with a `pool`).
macro_rules! impl_replay_store {
    ($backend:ty) => {
        #[async_trait::async_trait]
        impl crate::ReplayStore for $backend {
            async fn remember_messages(
                &self,
                keys: &[([u8; 32], i64)],
            ) -> Result<Vec<bool>, crate::StoreError> {
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                self.remember_rows(keys).await
            }

            async fn forget_messages_before(&self, before: i64) -> Result<u64, crate::StoreError> {
                let done = sqlx::query(crate::replay::DELETE)
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map_err(crate::StoreError::db("forget old messages"))?;
                Ok(done.rows_affected())
            }
        }
    };
}
pub(crate) use impl_replay_store;
