//! The global configuration: what the central registry publishes, signed, for every
//! gateway — members, gateways, groups, trusted CAs and TSAs, and policy values — and the
//! anchor that tells a gateway which keys may sign it.
//!
//! Canonical encoding: the content is compact JSON (no insignificant whitespace, UTF-8),
//! fields in the order of these structs, every list sorted by its identifier. The
//! signature covers those exact bytes, which travel base64-encoded inside the
//! [`SignedConf`] envelope, so a verifier never re-encodes anything.

use crate::{ClientId, GlobalGroupId, MemberId, ServerId};
use serde::{Deserialize, Serialize};

/// Format tag of the content.
pub const CONF_FORMAT: &str = "lienthong-globalconf/1";
/// Format tag of the signed envelope.
pub const SIGNED_CONF_FORMAT: &str = "lienthong-signed-globalconf/1";
/// Format tag of the anchor.
pub const ANCHOR_FORMAT: &str = "lienthong-anchor/1";

/// The global configuration content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConf {
    /// Always [`CONF_FORMAT`].
    pub format: String,
    /// The federation instance identifier.
    pub instance: String,
    /// Increases with every publication.
    pub version: u64,
    /// When it was generated, Unix seconds.
    pub generated_at: i64,
    /// After this instant (Unix seconds) gateways must not exchange on it.
    pub expires_at: i64,
    /// Federation-wide policy values.
    pub policy: FederationPolicy,
    /// Members and their subsystems, sorted by id.
    pub members: Vec<Member>,
    /// Gateways, sorted by id.
    pub gateways: Vec<Gateway>,
    /// Global groups, sorted by id.
    pub global_groups: Vec<GlobalGroup>,
    /// Approved certificate authorities, sorted by name.
    pub certificate_authorities: Vec<ApprovedCa>,
    /// Approved timestamp authorities, sorted by name.
    pub timestamp_authorities: Vec<ApprovedTsa>,
}

/// Policy values every gateway applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationPolicy {
    /// An OCSP response older than this (seconds since thisUpdate) is not fresh.
    pub ocsp_freshness_seconds: u64,
    /// A configuration expires this long after it is generated.
    pub conf_expiry_seconds: u64,
    /// Gateways timestamp their message log this often.
    pub timestamping_interval_seconds: u64,
    /// Gateways refuse exchanges when timestamping has failed for this long.
    pub timestamp_failure_tolerance_seconds: u64,
    /// The crypto policy (`vn` or `international`).
    pub crypto_policy: String,
}

impl Default for FederationPolicy {
    fn default() -> Self {
        Self {
            ocsp_freshness_seconds: 3600,
            conf_expiry_seconds: 600,
            timestamping_interval_seconds: 60,
            timestamp_failure_tolerance_seconds: 14_400,
            crypto_policy: "vn".into(),
        }
    }
}

/// A member organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// `INSTANCE/CLASS/CODE`.
    pub id: MemberId,
    /// The organisation's name.
    pub name: String,
    /// Subsystem codes, sorted.
    pub subsystems: Vec<String>,
}

/// A security gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// `INSTANCE/CLASS/CODE/SERVERCODE`.
    pub id: ServerId,
    /// Where other gateways reach it: `host:port`.
    pub address: String,
    /// SHA-256 (hex) of each accepted `auth` certificate (several during a rollover).
    pub auth_certificate_hashes: Vec<String>,
    /// The members and subsystems this gateway serves, sorted.
    pub clients: Vec<ClientId>,
}

/// A global group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalGroup {
    /// `INSTANCE/GROUPCODE`.
    pub id: GlobalGroupId,
    /// What the group is for.
    pub description: String,
    /// Members of the group, sorted.
    pub members: Vec<ClientId>,
}

/// A certificate authority whose certificates gateways accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovedCa {
    /// A name for people.
    pub name: String,
    /// The CA certificate, base64 DER.
    pub certificate: String,
    /// OCSP responder URLs for certificates this CA issued.
    pub ocsp_urls: Vec<String>,
}

/// A timestamp authority whose tokens gateways accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovedTsa {
    /// A name for people.
    pub name: String,
    /// Where to send RFC 3161 requests.
    pub url: String,
    /// The TSA certificate, base64 DER.
    pub certificate: String,
}

/// The signed envelope served by the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedConf {
    /// Always [`SIGNED_CONF_FORMAT`].
    pub format: String,
    /// Base64 of the canonical content bytes.
    pub content: String,
    /// One signature per current signing key.
    pub signatures: Vec<ConfSignature>,
}

/// One signature over the content bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfSignature {
    /// Identifies the key in the anchor.
    pub key_id: String,
    /// `SUITE:BASE64`.
    pub signature: String,
}

/// The bootstrap anchor: how a gateway finds and trusts the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// Always [`ANCHOR_FORMAT`].
    pub format: String,
    /// The federation instance.
    pub instance: String,
    /// Where to download the signed configuration (tried in order).
    pub download_urls: Vec<String>,
    /// Keys that may sign the configuration (several during a key rotation).
    pub keys: Vec<AnchorKey>,
}

/// A configuration-signing key listed in an anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorKey {
    /// Key identifier (hex of the first 16 bytes of SHA-256 of the SubjectPublicKeyInfo).
    pub key_id: String,
    /// Base64 DER SubjectPublicKeyInfo.
    pub public_key: String,
}
