//! The security gateway.
//!
//! Client side: local information systems call `/r1/{service id}/...` with the X-Road REST
//! headers; the gateway signs and sends the request over mutual TLS to the provider's
//! gateway. Provider side: it verifies the peer, the signature, the certificate status and
//! the access right before anything reaches the provider's system, then signs the answer.

pub mod admin;
pub mod archive;
mod audit;
mod backend;
pub mod body;
pub mod catalog;
pub mod client_proxy;
pub mod config;
mod error;
mod evidence;
mod gateway;
pub mod health;
mod journal;
mod late_answer;
mod log_bodies;
pub mod message;
pub mod meta;
mod metrics;
mod ocsp;
pub mod opmon;
pub mod peer;
mod proxy_common;
pub mod relay;
mod replay;
mod seal;
pub mod server;
pub mod server_proxy;
pub mod tls;
pub mod trust;

pub use audit::{AuditSummary, audit_stored_log};
pub use error::XRoadError;
pub use gateway::{Gateway, GatewayKeys, MemberKey, StartError};
pub use seal::SealOutcome;

pub use server::{Listeners, run};

/// The admin API's state for a running gateway.
pub(crate) fn admin_state(gateway: &std::sync::Arc<Gateway>) -> admin::AdminState {
    admin::AdminState::new(
        gateway.store().clone(),
        gateway.catalog().clone(),
        gateway.config().admin_token_sha256.clone(),
    )
}
