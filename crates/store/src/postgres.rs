//! The shared store: PostgreSQL, for several nodes serving one federation or gateway.

use crate::StoreError;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

/// PostgreSQL backend.
#[derive(Debug)]
pub(crate) struct PgBackend {
    pool: PgPool,
}

impl PgBackend {
    pub(crate) async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|source| StoreError::Open {
                url: redact(url),
                source,
            })?;
        // Several nodes may start at once: serialise their migrations on an advisory lock.
        let mut lock = pool
            .acquire()
            .await
            .map_err(StoreError::db("acquire a connection"))?;
        sqlx::query("SELECT pg_advisory_lock(7432001)")
            .execute(&mut *lock)
            .await
            .map_err(StoreError::db("take the migration lock"))?;
        let migrated =
            crate::migrate::run_migrations!(&pool, crate::migrate::POSTGRES, "BEGIN").await;
        sqlx::query("SELECT pg_advisory_unlock(7432001)")
            .execute(&mut *lock)
            .await
            .map_err(StoreError::db("release the migration lock"))?;
        migrated?;
        Ok(Self { pool })
    }
}

/// A database URL without its password, for logs and errors.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

crate::queries::impl_stores!(PgBackend, sqlx::postgres::PgRow, "BEGIN");
crate::opmon::impl_opmon_store!(PgBackend, sqlx::postgres::PgRow);
crate::replay::impl_replay_store!(PgBackend);
