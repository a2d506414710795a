//! The signed global configuration: build and sign it (registry side), verify it against
//! an anchor (gateway side), and keep a verified copy fresh with [`ConfClient`].

mod client;
mod document;
mod error;

pub use client::{ConfClient, ConfStatus, RefreshOutcome};
pub use document::{VerifiedConf, canonical_content, key_id, make_anchor, sign, verify};
pub use error::ConfError;
