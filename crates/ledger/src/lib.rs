//! The tamper-evident message log of a lienthong gateway, as pure functions and data: the
//! [`LogRecord`] kept per message, the append-only RFC 9162 [`MerkleLog`] over record
//! hashes, signed and timestamped tree heads, the [`audit`] of a whole log, evidence
//! bundles (ASiC-E ZIP files holding one record and its proofs) and their offline
//! [`verify_bundle`], and hash-chained [`Archive`]s of record ranges ([`verify_archive`]).
//! No IO, no clocks: times are passed in, trust roots are given.

mod archive;
mod audit;
mod body;
mod bundle;
mod encoding;
mod log;
mod recent;
mod record;
mod verify;

pub use archive::{
    ARCHIVE_FORMAT, ARCHIVE_MIMETYPE, Archive, ArchiveManifest, ArchivedHead, CHECK_ARCHIVE_CHAIN,
    CHECK_ARCHIVE_RECORDS, CHECK_RECORD_SIGNATURES, PreviousArchive, archive_sha256, read_archive,
    verify_archive, write_archive,
};
pub use audit::{AuditFailure, audit, audit_log, audit_records};
pub use body::{BodyPart, CHECK_BODY, body_aad, body_matches, open_bodies};
pub use bundle::{
    BODY_NAMES, Bundle, BundleError, InclusionProof, MAX_ENTRIES, MAX_ENTRY_SIZE, MAX_TOTAL_SIZE,
    MIMETYPE, read_bundle, write_bundle,
};
pub use log::{CompactTree, MerkleLog, SignedTreeHead, TimestampedHead, TreeHead, sign_head};
pub use recent::Recent;
pub use record::{BodyEvidence, LogRecord, Side};
pub use verify::{
    CHECK_HEAD_SIGNATURE, CHECK_INCLUSION, CHECK_REQUEST_SIGNATURE, CHECK_RESPONSE_SIGNATURE,
    CHECK_TIMESTAMP, Check, OCSP_MAX_AGE_SECONDS, Outcome, TrustRoots, Verdict,
    pki_timestamp_verifier, verify_bundle,
};
