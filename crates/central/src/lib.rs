//! The central registry: who belongs to the federation, which gateways act for them, and
//! which CAs and TSAs to trust — kept in the store (embedded or PostgreSQL, so several
//! registry nodes can share it), changed through an authenticated and audited admin API,
//! and published as a signed global configuration.

mod api;
mod auth;
mod config;
mod error;
mod openapi;
mod registry;

pub use api::{router, run};
pub use auth::hash_token;
pub use config::{Config, RawConfig};
pub use error::CentralError;
pub use registry::Registry;
