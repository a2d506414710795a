//! Trust services as a running service: [`Authority`] manages a PKI directory (the CA's
//! encrypted keys, certificates and its store), and [`server::run`] serves OCSP and the
//! timestamp authority over HTTP.

mod authority;
mod error;
pub mod server;

pub use authority::{Authority, InitOptions, IssueOptions, PkiFiles};
pub use error::TrustError;
