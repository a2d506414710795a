//! The tamper-evident message log of a lienthong gateway, as pure functions and data: the
//! [`LogRecord`] kept per message, the append-only RFC 9162 [`MerkleLog`] over record
//! hashes, signed and timestamped tree heads, the [`audit`] of a whole log, evidence
//! bundles (ASiC-E ZIP files holding one record and its proofs) and their offline
//! [`verify_bundle`]. No IO, no clocks: times are passed in, trust roots are given.

mod audit;
mod body;
mod bundle;
mod encoding;
mod log;
mod record;
mod verify;

pub use audit::{AuditFailure, audit, audit_records};
pub use body::{BodyPart, CHECK_BODY, body_aad, body_matches, open_bodies};
pub use bundle::{
    BODY_NAMES, Bundle, BundleError, InclusionProof, MAX_ENTRIES, MAX_ENTRY_SIZE, MAX_TOTAL_SIZE, MIMETYPE,
    read_bundle, write_bundle,
};
pub use log::{MerkleLog, SignedTreeHead, TimestampedHead, TreeHead, sign_head};
pub use record::{BodyEvidence, LogRecord, Side};
pub use verify::{
    CHECK_HEAD_SIGNATURE, CHECK_INCLUSION, CHECK_REQUEST_SIGNATURE, CHECK_RESPONSE_SIGNATURE,
    CHECK_TIMESTAMP, Check, OCSP_MAX_AGE_SECONDS, Outcome, TrustRoots, Verdict,
    pki_timestamp_verifier, verify_bundle,
};
