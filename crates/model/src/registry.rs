//! Wire types of the central registry's admin API (the registry's stored objects are the
//! [`crate::conf`] types themselves).

use crate::{ClientId, GlobalGroupId, MemberId, ServerId};
use serde::{Deserialize, Serialize};

/// Roles of admin API tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May read and change the registry.
    RegistryOfficer,
    /// May only read.
    ReadOnly,
}

/// `POST /api/v1/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// `INSTANCE/CLASS/CODE`; the instance must be the registry's.
    pub id: MemberId,
    /// Organisation name.
    pub name: String,
}

/// `POST /api/v1/members/{id}/subsystems`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSubsystem {
    /// Subsystem code.
    pub code: String,
}

/// `POST /api/v1/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// `INSTANCE/GROUPCODE`.
    pub id: GlobalGroupId,
    /// Description.
    pub description: String,
}

/// `POST /api/v1/groups/{id}/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMember {
    /// The member or subsystem to add.
    pub client: ClientId,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Who will use it (appears in the audit log).
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// A token as created: the secret is shown once and only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatedToken {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The secret bearer token.
    pub token: String,
}

/// A stored token (the `token` object): never the secret, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, if revoked.
    pub revoked_at: Option<i64>,
}

/// What a gateway signs to register (`POST /api/v1/registration-requests`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRequest {
    /// The gateway.
    pub server: ServerId,
    /// `host:port` where peers reach it.
    pub address: String,
    /// The gateway's `auth` certificate, base64 DER, issued by an approved CA.
    pub auth_certificate: String,
    /// The members and subsystems it will serve.
    pub clients: Vec<ClientId>,
    /// Unix seconds when signed; requests older than five minutes are refused.
    pub signed_at: i64,
}

impl RegistrationRequest {
    /// The bytes the auth key signs: the request's compact JSON in field order.
    pub fn signing_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A registration request with its proof of possession of the auth key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRegistration {
    /// The request.
    pub request: RegistrationRequest,
    /// `SUITE:BASE64` signature by the auth key over the request's compact JSON.
    pub signature: String,
}

/// State of a registration request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationStatus {
    /// Waiting for an officer.
    Pending,
    /// Approved: the gateway is in the configuration.
    Approved,
    /// Rejected.
    Rejected,
}

/// A registration as stored and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Identifier (sequence number).
    pub id: String,
    /// Status.
    pub status: RegistrationStatus,
    /// The verified request.
    pub request: RegistrationRequest,
    /// Unix seconds.
    pub submitted_at: i64,
    /// Who decided, if decided.
    pub decided_by: Option<String>,
}

/// An audit record as listed by `GET /api/v1/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Increasing identifier.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// `ok`, `refused` or `failed`.
    pub result: String,
    /// Status and reason.
    pub detail: String,
}

/// The JSON body of every API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiError {
    /// Machine-readable kind, e.g. `BadRequest`, `Unauthorized`, `Conflict`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What happened.
    pub message: String,
    /// More detail, or empty.
    pub detail: String,
}
