//! Helpers for tests across the workspace: start real servers the code under test talks to.
//!
//! Use it from `[dev-dependencies]` only (`lienthong-testkit.workspace = true`).

mod postgres;

pub use postgres::{Frozen, PgServer, PgServerError};
