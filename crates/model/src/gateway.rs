//! Wire and stored types of the security gateway: the services a provider publishes, the
//! access rights (grants) on them, local groups, admin tokens, and the JSON answers of the
//! X-Road metaservices (pr-meta `listClients`, pr-mrest `listMethods`/`allowedMethods`).
//!
//! Every stored type has a `validate` method; the gateway calls it before storing and after
//! loading, so a value in the catalog always follows these rules.

use crate::{ClientId, GlobalGroupId, IdError, MemberId, ServiceId, SubsystemId};
use serde::{Deserialize, Serialize};

/// Longest endpoint path pattern, in bytes.
pub const MAX_PATH_LEN: usize = 2048;
/// Longest backend base URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Longest backend timeout: one hour.
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Longest free-text description.
pub const MAX_DESCRIPTION_LEN: usize = 1024;

/// A stored gateway object breaks a rule. Says which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// An identifier part does not follow the grammar.
    #[error(transparent)]
    Id(#[from] IdError),
    /// Another field is wrong.
    #[error("{field} {reason}")]
    Field {
        /// The field, e.g. `base_url`.
        field: &'static str,
        /// What is wrong, e.g. `must start with http:// or https://`.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ValidationError {
    ValidationError::Field {
        field,
        reason: reason.into(),
    }
}

/// A service of a provider subsystem: where its backend is and what it offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The subsystem that provides it.
    pub provider: SubsystemId,
    /// The service code (the identifier grammar applies).
    pub code: String,
    /// The backend's base URL (`http` or `https`); the request path is appended to it.
    pub base_url: String,
    /// How long to wait for the backend, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How to check the backend's TLS certificate.
    #[serde(default)]
    pub backend_tls: BackendTls,
    /// An OpenAPI 3 document (JSON text); when present the endpoints are derived from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<String>,
    /// The endpoints it offers (`listMethods`); empty means "not described".
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

fn default_timeout_ms() -> u64 {
    60_000
}

impl Service {
    /// The service identifier (provider plus code).
    pub fn id(&self) -> Result<ServiceId, IdError> {
        ServiceId::new(self.provider.clone(), &self.code, None)
    }

    /// Check every field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.id()?;
        check_base_url(&self.base_url)?;
        if self.timeout_ms == 0 || self.timeout_ms > MAX_TIMEOUT_MS {
            return Err(invalid(
                "timeout_ms",
                format!("must be between 1 and {MAX_TIMEOUT_MS}"),
            ));
        }
        self.backend_tls.validate()?;
        self.endpoints.iter().try_for_each(Endpoint::validate)
    }
}

fn check_base_url(url: &str) -> Result<(), ValidationError> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(|| invalid("base_url", "must start with http:// or https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(invalid("base_url", "must name a host"));
    }
    if url.len() > MAX_URL_LEN {
        return Err(invalid(
            "base_url",
            format!("must be at most {MAX_URL_LEN} bytes"),
        ));
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "base_url",
            "must be ASCII without spaces (percent-encode other characters)",
        ));
    }
    if url.contains(['?', '#']) {
        return Err(invalid(
            "base_url",
            "must not have a query or a fragment (the request's are appended)",
        ));
    }
    Ok(())
}

/// How the gateway checks the backend's TLS certificate (for `https` base URLs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendTls {
    /// Check the certificate chain and host name (on unless explicitly turned off).
    #[serde(default = "default_true")]
    pub verify_certificate: bool,
    /// Trust this CA (PEM) instead of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_pem: Option<String>,
}

fn default_true() -> bool {
    true
}

impl Default for BackendTls {
    fn default() -> Self {
        Self {
            verify_certificate: true,
            ca_certificate_pem: None,
        }
    }
}

impl BackendTls {
    /// Check the fields.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match &self.ca_certificate_pem {
            Some(pem) if !pem.contains("-----BEGIN CERTIFICATE-----") => Err(invalid(
                "backend_tls.ca_certificate_pem",
                "must be a PEM certificate",
            )),
            _ => Ok(()),
        }
    }
}

/// A REST endpoint pattern: a method (or `*` for any) and a path pattern.
///
/// In a path pattern `*` stands for any run of characters within one segment (no `/`) and
/// `**` for any run of characters across segments; every other character is literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// `*` or an HTTP method in upper case (`GET`, `POST`, ...).
    pub method: String,
    /// Starts with `/`; may contain `*` and `**`.
    pub path: String,
}

impl Endpoint {
    /// An endpoint, checked.
    pub fn new(method: &str, path: &str) -> Result<Self, ValidationError> {
        let endpoint = Self {
            method: method.to_owned(),
            path: path.to_owned(),
        };
        endpoint.validate()?;
        Ok(endpoint)
    }

    /// Check the method and the path.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let method_ok = self.method == "*"
            || (!self.method.is_empty()
                && self.method.len() <= 32
                && self.method.bytes().all(|b| b.is_ascii_uppercase()));
        if !method_ok {
            return Err(invalid(
                "endpoint method",
                format!(
                    "{:?} must be * or an HTTP method in upper case",
                    truncate(&self.method)
                ),
            ));
        }
        if !self.path.starts_with('/') {
            return Err(invalid(
                "endpoint path",
                format!("{:?} must start with /", truncate(&self.path)),
            ));
        }
        if self.path.len() > MAX_PATH_LEN {
            return Err(invalid(
                "endpoint path",
                format!("must be at most {MAX_PATH_LEN} bytes"),
            ));
        }
        if !self.path.bytes().all(|b| b.is_ascii_graphic()) || self.path.contains(['?', '#']) {
            return Err(invalid(
                "endpoint path",
                format!(
                    "{:?} must be ASCII without spaces, '?' or '#' (percent-encode other characters)",
                    truncate(&self.path)
                ),
            ));
        }
        Ok(())
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

/// An access right: `subject` may call `service` (all of it, or one endpoint pattern).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The service (provider subsystem plus code, without a version).
    pub service: ServiceId,
    /// Who may call it.
    pub subject: GrantSubject,
    /// The endpoint pattern; `None` grants the whole service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
}

impl Grant {
    /// Check the fields.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.service.version().is_some() {
            return Err(invalid(
                "service",
                "must not have a version (REST services are not versioned)",
            ));
        }
        if let GrantSubject::LocalGroup(code) = &self.subject {
            check_group_code(self.service.provider().member().instance(), code)?;
        }
        self.endpoint.as_ref().map_or(Ok(()), Endpoint::validate)
    }
}

/// Who a grant is for. JSON: `{"subsystem": "VN/GOV/1/sub"}`, `{"member": "VN/GOV/1"}`,
/// `{"global_group": "VN/group"}` or `{"local_group": "code"}` (a local group of the
/// service's provider subsystem).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GrantSubject {
    /// Exactly this subsystem.
    Subsystem(SubsystemId),
    /// Exactly this member acting as a client itself (not its subsystems).
    Member(MemberId),
    /// Every member of the global group in the global configuration.
    GlobalGroup(GlobalGroupId),
    /// Every member of the provider's local group with this code.
    LocalGroup(String),
}

impl GrantSubject {
    /// The subject for one client.
    pub fn client(client: ClientId) -> Self {
        match client {
            ClientId::Member(member) => Self::Member(member),
            ClientId::Subsystem(subsystem) => Self::Subsystem(subsystem),
        }
    }
}

impl std::fmt::Display for GrantSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Subsystem(id) => write!(f, "subsystem {id}"),
            Self::Member(id) => write!(f, "member {id}"),
            Self::GlobalGroup(id) => write!(f, "global_group {id}"),
            Self::LocalGroup(code) => write!(f, "local_group {code}"),
        }
    }
}

/// A group of clients defined by a provider subsystem on its own gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalGroup {
    /// The subsystem that defines it; only its services' grants can name it.
    pub owner: SubsystemId,
    /// The group code (the identifier grammar applies).
    pub code: String,
    /// What the group is for.
    #[serde(default)]
    pub description: String,
    /// Its members, sorted.
    #[serde(default)]
    pub members: Vec<ClientId>,
}

impl LocalGroup {
    /// Check the fields.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_group_code(self.owner.member().instance(), &self.code)?;
        if self.description.len() > MAX_DESCRIPTION_LEN {
            return Err(invalid(
                "description",
                format!("must be at most {MAX_DESCRIPTION_LEN} bytes"),
            ));
        }
        Ok(())
    }
}

/// A group code follows the identifier part rules (checked through the global group grammar,
/// which has the same rules and names the part "group code").
fn check_group_code(instance: &str, code: &str) -> Result<(), ValidationError> {
    GlobalGroupId::new(instance, code)?;
    Ok(())
}

/// `POST .../local-groups/{owner}/{code}/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalGroupMember {
    /// The member or subsystem to add.
    pub client: ClientId,
}

/// A stored admin token (kind `gw.token`, id = SHA-256 hex of the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminToken {
    /// Who uses it (appears in the audit log).
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, if revoked.
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

/// `listClients` as JSON (pr-meta annex B): `{"member": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientList {
    /// Members and subsystems, members first, each followed by its subsystems.
    pub member: Vec<ClientEntry>,
}

/// One entry of [`ClientList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    /// The identifier.
    pub id: XRoadIdentifier,
    /// The member's name.
    pub name: String,
}

/// An identifier in the JSON form of X-Road's metaservices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XRoadIdentifier {
    /// `MEMBER`, `SUBSYSTEM` or `SERVICE`.
    pub object_type: String,
    /// Instance.
    pub xroad_instance: String,
    /// Member class.
    pub member_class: String,
    /// Member code.
    pub member_code: String,
    /// Subsystem code, for subsystems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsystem_code: Option<String>,
}

impl From<&ClientId> for XRoadIdentifier {
    fn from(client: &ClientId) -> Self {
        let member = client.member();
        let (object_type, subsystem_code) = match client {
            ClientId::Member(_) => ("MEMBER", None),
            ClientId::Subsystem(s) => ("SUBSYSTEM", Some(s.subsystem().to_owned())),
        };
        Self {
            object_type: object_type.to_owned(),
            xroad_instance: member.instance().to_owned(),
            member_class: member.class().to_owned(),
            member_code: member.code().to_owned(),
            subsystem_code,
        }
    }
}

/// `listMethods`/`allowedMethods` as JSON (pr-mrest annex B): `{"service": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestServiceList {
    /// The services, by code.
    pub service: Vec<RestServiceDetails>,
}

/// One service of a [`RestServiceList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestServiceDetails {
    /// Always `SERVICE`.
    pub object_type: String,
    /// Instance.
    pub xroad_instance: String,
    /// Member class.
    pub member_class: String,
    /// Member code.
    pub member_code: String,
    /// Subsystem code.
    pub subsystem_code: String,
    /// Service code.
    pub service_code: String,
    /// `REST` (base URL only) or `OPENAPI` (described by an OpenAPI document).
    pub service_type: String,
    /// The endpoints (all, or those open to the caller).
    pub endpoint_list: Vec<Endpoint>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service() -> Service {
        serde_json::from_value(json!({
            "provider": "VN/GOV/1/registry",
            "code": "persons",
            "base_url": "https://backend.example:8443/api",
        }))
        .expect("service")
    }

    #[test]
    fn service_defaults_are_safe() {
        let service = service();
        assert!(service.backend_tls.verify_certificate);
        assert_eq!(service.timeout_ms, 60_000);
        assert!(service.endpoints.is_empty());
        service.validate().expect("valid");
        assert_eq!(
            service.id().expect("id").to_string(),
            "VN/GOV/1/registry/persons"
        );
    }

    #[test]
    fn service_rules() {
        let mut bad = service();
        bad.code = "per sons".into();
        assert!(matches!(bad.validate(), Err(ValidationError::Id(_))));
        for url in [
            "ftp://x",
            "https://",
            "http:///path",
            "https://a b",
            "http://x?q=1",
        ] {
            let mut bad = service();
            bad.base_url = url.into();
            assert!(bad.validate().is_err(), "{url} accepted");
        }
        let mut ok = service();
        ok.base_url = "HTTP://10.0.0.1:8080".into();
        ok.validate().expect("upper-case scheme");
        let mut bad = service();
        bad.timeout_ms = 0;
        assert!(bad.validate().is_err());
        let mut bad = service();
        bad.endpoints = vec![Endpoint {
            method: "GET".into(),
            path: "persons".into(),
        }];
        assert_eq!(
            bad.validate().expect_err("relative").to_string(),
            "endpoint path \"persons\" must start with /"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = serde_json::from_value::<Service>(json!({
            "provider": "VN/GOV/1/registry", "code": "x", "base_url": "http://b", "colour": 1
        }))
        .expect_err("unknown field");
        assert!(error.to_string().contains("colour"), "{error}");
        assert!(
            serde_json::from_value::<Endpoint>(json!({"method": "GET", "path": "/", "x": 1}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<GrantSubject>(json!({"subsystem": "VN/GOV/1/a", "x": 1}))
                .is_err()
        );
    }

    #[test]
    fn endpoint_rules() {
        Endpoint::new("*", "/**").expect("any");
        Endpoint::new("GET", "/persons/*/address").expect("wildcard");
        for (method, path) in [
            ("get", "/a"),
            ("", "/a"),
            ("G T", "/a"),
            ("GET", ""),
            ("GET", "/a b"),
            ("GET", "/a?b"),
            ("GET", "/é"),
        ] {
            assert!(
                Endpoint::new(method, path).is_err(),
                "{method} {path} accepted"
            );
        }
    }

    #[test]
    fn grant_subjects_are_tagged() {
        let grant: Grant = serde_json::from_value(json!({
            "service": "VN/GOV/1/registry/persons",
            "subject": {"global_group": "VN/tax-offices"},
            "endpoint": {"method": "GET", "path": "/persons/*"}
        }))
        .expect("grant");
        grant.validate().expect("valid");
        assert_eq!(
            grant.subject,
            GrantSubject::GlobalGroup("VN/tax-offices".parse().expect("group"))
        );
        let whole: Grant = serde_json::from_value(json!({
            "service": "VN/GOV/1/registry/persons",
            "subject": {"local_group": "auditors"},
        }))
        .expect("whole-service grant");
        assert_eq!(whole.endpoint, None);
        let round_trip = serde_json::to_value(&whole).expect("json");
        assert_eq!(
            round_trip,
            json!({"service": "VN/GOV/1/registry/persons", "subject": {"local_group": "auditors"}})
        );
        let versioned: Grant = serde_json::from_value(json!({
            "service": "VN/GOV/1/registry/persons/v1",
            "subject": {"member": "VN/GOV/2"},
        }))
        .expect("parses");
        assert!(versioned.validate().is_err());
        let bad_group = Grant {
            subject: GrantSubject::LocalGroup("a b".into()),
            ..whole
        };
        assert!(bad_group.validate().is_err());
    }

    #[test]
    fn client_identifiers_in_metaservice_json() {
        let client: ClientId = "VN/GOV/1/registry".parse().expect("client");
        let id = XRoadIdentifier::from(&client);
        assert_eq!(
            serde_json::to_value(&id).expect("json"),
            json!({"object_type": "SUBSYSTEM", "xroad_instance": "VN", "member_class": "GOV",
                   "member_code": "1", "subsystem_code": "registry"})
        );
        let member: ClientId = "VN/GOV/1".parse().expect("member");
        let json = serde_json::to_value(XRoadIdentifier::from(&member)).expect("json");
        assert_eq!(json["object_type"], "MEMBER");
        assert!(json.get("subsystem_code").is_none());
    }
}
