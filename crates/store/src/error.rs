//! The error type of the store.

/// A storage failure. Database details are kept for the operator's log, never sent to peers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or reached.
    #[error("cannot open the store at {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    /// A migration failed.
    #[error("cannot apply migration {version}: {source}")]
    Migration { version: i64, source: sqlx::Error },
    /// A row with this key already exists.
    #[error("{what} already exists")]
    Duplicate { what: String },
    /// The object changed since it was read (optimistic concurrency): re-read and retry.
    #[error("{what} was changed by someone else since it was read")]
    Conflict { what: String },
    /// No such object.
    #[error("{what} does not exist")]
    NotFound { what: String },
    /// Any other database error.
    #[error("database error while trying to {action}: {source}")]
    Database {
        action: &'static str,
        source: sqlx::Error,
    },
    /// An error of the embedded store's log appender, which reaches SQLite directly.
    #[error("database error while trying to {action}: {source}")]
    Sqlite {
        action: &'static str,
        source: rusqlite::Error,
    },
    /// Stored data is not what this version expects.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub(crate) fn db(action: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| {
            if let sqlx::Error::Database(e) = &source
                && e.is_unique_violation()
            {
                return Self::Duplicate {
                    what: action.trim_start_matches("insert ").to_owned(),
                };
            }
            Self::Database { action, source }
        }
    }
}
