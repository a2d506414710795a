//! The security gateway.
//!
//! Client side: local information systems call `/r1/{service id}/...` with the X-Road REST
//! headers; the gateway signs and sends the request over mutual TLS to the provider's
//! gateway. Provider side: it verifies the peer, the signature, the certificate status and
//! the access right before anything reaches the provider's system, then signs the answer.

pub mod admin;
pub mod catalog;
pub mod meta;
