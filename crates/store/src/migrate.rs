//! A small migration runner: numbered SQL files embedded at build time, applied in order,
//! each in its own transaction, recorded in `schema_migrations`.

/// One migration: its version and SQL.
pub(crate) type Migration = (i64, &'static str);

pub(crate) const SQLITE: &[Migration] = &[
    (1, include_str!("../migrations/sqlite/0001_pki.sql")),
    (2, include_str!("../migrations/sqlite/0002_registry.sql")),
    (3, include_str!("../migrations/sqlite/0003_ledger.sql")),
    (
        4,
        include_str!("../migrations/sqlite/0004_ledger_archives.sql"),
    ),
    (5, include_str!("../migrations/sqlite/0005_opmon.sql")),
    (
        6,
        include_str!("../migrations/sqlite/0006_ledger_bodies.sql"),
    ),
    (7, include_str!("../migrations/sqlite/0007_replay.sql")),
    (
        8,
        include_str!("../migrations/sqlite/0008_ledger_blobs.sql"),
    ),
    (
        9,
        include_str!("../migrations/sqlite/0009_ledger_head_frontiers.sql"),
    ),
];
pub(crate) const POSTGRES: &[Migration] = &[
    (1, include_str!("../migrations/postgres/0001_pki.sql")),
    (2, include_str!("../migrations/postgres/0002_registry.sql")),
    (3, include_str!("../migrations/postgres/0003_ledger.sql")),
    (
        4,
        include_str!("../migrations/postgres/0004_ledger_archives.sql"),
    ),
    (5, include_str!("../migrations/postgres/0005_opmon.sql")),
    (
        6,
        include_str!("../migrations/postgres/0006_ledger_bodies.sql"),
    ),
    (7, include_str!("../migrations/postgres/0007_replay.sql")),
    (
        8,
        include_str!("../migrations/postgres/0008_ledger_blobs.sql"),
    ),
    (
        9,
        include_str!("../migrations/postgres/0009_ledger_head_frontiers.sql"),
    ),
];

/// Apply `migrations` to `$pool` (a sqlx pool of any backend), opening each transaction
/// with `$begin` (SQLite needs `BEGIN IMMEDIATE` so that two processes opening a new file
/// at once wait for each other instead of failing): expands to an async block.
macro_rules! run_migrations {
    ($pool:expr, $migrations:expr, $begin:expr) => {
        async {
            use crate::StoreError;
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .execute($pool)
            .await
            .map_err(|source| StoreError::Migration { version: 0, source })?;
            for &(version, sql) in $migrations {
                let mut tx = $pool
                    .begin_with($begin)
                    .await
                    .map_err(|source| StoreError::Migration { version, source })?;
                let done: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Migration { version, source })?;
                if done.is_some() {
                    continue;
                }
                sqlx::raw_sql(sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Migration { version, source })?;
                sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(version)
                    .bind(crate::migrate::now())
                    .execute(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Migration { version, source })?;
                tx.commit()
                    .await
                    .map_err(|source| StoreError::Migration { version, source })?;
                tracing::info!(version, "applied store migration");
            }
            Ok::<(), StoreError>(())
        }
    };
}
pub(crate) use run_migrations;

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
