//! The federation's trust services as pure functions over DER: a certificate authority that
//! issues from PKCS #10 requests, an OCSP responder (RFC 6960) and a timestamp authority
//! (RFC 3161). Nothing here does IO; state (issued certificates, revocations, serial
//! counters) is passed in by the caller, and keys are [`lienthong_crypto::Signer`]s.

mod ca;
mod cert;
mod csr;
mod der_util;
mod error;
mod name;
mod ocsp;
mod ocsp_check;
mod tsa;
mod tsa_check;

pub use ca::{CertificateAuthority, IssueRequest, Serial};
pub use cert::{CertificateInfo, Profile, parse_certificate_pem, pem_encode_certificate};
pub use csr::{VerifiedCsr, create_csr, verify_csr};
pub use error::PkiError;
pub use name::FederationIdentity;
pub use ocsp::{CertificateState, OcspReply, OcspResponder, RevocationReason, ocsp_request};
pub use ocsp_check::{VerifiedStatus, verify_ocsp_response};
pub use tsa::{
    TimeStampAuthority, TimeStampReply, TimestampRequest, TsaRejection, timestamp_request_der,
};
pub use tsa_check::{VerifiedTimestamp, verify_timestamp_token};
