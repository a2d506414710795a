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
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(crate::StoreError::db("begin a replay-memory insert"))?;
                let mut fresh = Vec::with_capacity(keys.len());
                for (key, time) in keys {
                    let inserted = sqlx::query(crate::replay::INSERT)
                        .bind(&key[..])
                        .bind(*time)
                        .execute(&mut *tx)
                        .await
                        .map_err(crate::StoreError::db("remember a message"))?;
                    fresh.push(inserted.rows_affected() == 1);
                }
                tx.commit()
                    .await
                    .map_err(crate::StoreError::db("commit the replay memory"))?;
                Ok(fresh)
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
