//! Identifiers: `INSTANCE/CLASS/CODE` for a member, plus `/SUBSYSTEM` for a subsystem,
//! `/SERVERCODE` for a gateway, and `/SERVICECODE[/VERSION]` after a subsystem for a service.
//!
//! Each part is 1 to 255 characters from the set X-Road's REST protocol allows
//! (pr-rest 4.8): letters `A-Z a-z`, digits, and `'()+,-.=?`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// An identifier did not follow the grammar. Names the part and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Wrong number of `/`-separated parts.
    #[error("{kind} identifier must have the form {form}, found {found} part(s) in {value:?}")]
    Shape {
        kind: &'static str,
        form: &'static str,
        found: usize,
        value: String,
    },
    /// A part is empty, too long, or has a character outside the allowed set.
    #[error("{part} {value:?} {rule}")]
    Part {
        part: &'static str,
        value: String,
        rule: &'static str,
    },
}

const MAX_PART_LEN: usize = 255;

fn check_part(part: &'static str, value: &str) -> Result<(), IdError> {
    let fail = |rule| {
        Err(IdError::Part {
            part,
            value: value.chars().take(64).collect(),
            rule,
        })
    };
    if value.is_empty() {
        return fail("must not be empty");
    }
    if value.len() > MAX_PART_LEN {
        return fail("must be at most 255 characters");
    }
    if !value.chars().all(is_allowed) {
        return fail("may contain only letters A-Z a-z, digits 0-9 and the symbols '()+,-.=?");
    }
    Ok(())
}

fn is_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "'()+,-.=?".contains(c)
}

fn split<'a>(
    value: &'a str,
    kind: &'static str,
    form: &'static str,
    counts: &[usize],
) -> Result<Vec<&'a str>, IdError> {
    let parts: Vec<&str> = value.split('/').collect();
    if counts.contains(&parts.len()) {
        Ok(parts)
    } else {
        Err(IdError::Shape {
            kind,
            form,
            found: parts.len(),
            value: value.chars().take(200).collect(),
        })
    }
}

/// A member organisation: `INSTANCE/CLASS/CODE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId {
    instance: String,
    class: String,
    code: String,
}

impl MemberId {
    /// Build from parts, checking each.
    pub fn new(instance: &str, class: &str, code: &str) -> Result<Self, IdError> {
        check_part("instance", instance)?;
        check_part("member class", class)?;
        check_part("member code", code)?;
        Ok(Self {
            instance: instance.into(),
            class: class.into(),
            code: code.into(),
        })
    }

    /// The federation instance.
    pub fn instance(&self) -> &str {
        &self.instance
    }
    /// The member class (e.g. `GOV`).
    pub fn class(&self) -> &str {
        &self.class
    }
    /// The member code.
    pub fn code(&self) -> &str {
        &self.code
    }
}

impl FromStr for MemberId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let p = split(s, "member", "INSTANCE/CLASS/CODE", &[3])?;
        Self::new(p[0], p[1], p[2])
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.instance, self.class, self.code)
    }
}

/// A subsystem of a member: `INSTANCE/CLASS/CODE/SUBSYSTEM`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubsystemId {
    member: MemberId,
    subsystem: String,
}

impl SubsystemId {
    /// Build from a member and a subsystem code.
    pub fn new(member: MemberId, subsystem: &str) -> Result<Self, IdError> {
        check_part("subsystem code", subsystem)?;
        Ok(Self {
            member,
            subsystem: subsystem.into(),
        })
    }
    /// The owning member.
    pub fn member(&self) -> &MemberId {
        &self.member
    }
    /// The subsystem code.
    pub fn subsystem(&self) -> &str {
        &self.subsystem
    }
}

impl FromStr for SubsystemId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let p = split(s, "subsystem", "INSTANCE/CLASS/CODE/SUBSYSTEM", &[4])?;
        Self::new(MemberId::new(p[0], p[1], p[2])?, p[3])
    }
}

impl fmt::Display for SubsystemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.member, self.subsystem)
    }
}

/// A client of the federation: a member, or one of its subsystems.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientId {
    /// The member itself.
    Member(MemberId),
    /// A subsystem.
    Subsystem(SubsystemId),
}

impl ClientId {
    /// The member behind the client.
    pub fn member(&self) -> &MemberId {
        match self {
            Self::Member(m) => m,
            Self::Subsystem(s) => s.member(),
        }
    }
}

impl FromStr for ClientId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let p = split(s, "client", "INSTANCE/CLASS/CODE[/SUBSYSTEM]", &[3, 4])?;
        let member = MemberId::new(p[0], p[1], p[2])?;
        match p.get(3) {
            Some(sub) => Ok(Self::Subsystem(SubsystemId::new(member, sub)?)),
            None => Ok(Self::Member(member)),
        }
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Member(m) => m.fmt(f),
            Self::Subsystem(s) => s.fmt(f),
        }
    }
}

/// A security gateway: `INSTANCE/CLASS/CODE/SERVERCODE` (owner member plus server code).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId {
    owner: MemberId,
    code: String,
}

impl ServerId {
    /// Build from the owner and a server code.
    pub fn new(owner: MemberId, code: &str) -> Result<Self, IdError> {
        check_part("server code", code)?;
        Ok(Self {
            owner,
            code: code.into(),
        })
    }
    /// The member that owns the gateway.
    pub fn owner(&self) -> &MemberId {
        &self.owner
    }
    /// The server code.
    pub fn code(&self) -> &str {
        &self.code
    }
}

impl FromStr for ServerId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let p = split(s, "server", "INSTANCE/CLASS/CODE/SERVERCODE", &[4])?;
        Self::new(MemberId::new(p[0], p[1], p[2])?, p[3])
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.code)
    }
}

/// A service: `INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICECODE[/VERSION]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId {
    provider: SubsystemId,
    code: String,
    version: Option<String>,
}

impl ServiceId {
    /// Build from a provider subsystem, a service code and an optional version.
    pub fn new(provider: SubsystemId, code: &str, version: Option<&str>) -> Result<Self, IdError> {
        check_part("service code", code)?;
        if let Some(v) = version {
            check_part("service version", v)?;
        }
        Ok(Self {
            provider,
            code: code.into(),
            version: version.map(Into::into),
        })
    }
    /// The subsystem that provides the service.
    pub fn provider(&self) -> &SubsystemId {
        &self.provider
    }
    /// The service code.
    pub fn code(&self) -> &str {
        &self.code
    }
    /// The version, if any.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
}

impl FromStr for ServiceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let p = split(
            s,
            "service",
            "INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICECODE[/VERSION]",
            &[5, 6],
        )?;
        let provider = SubsystemId::new(MemberId::new(p[0], p[1], p[2])?, p[3])?;
        Self::new(provider, p[4], p.get(5).copied())
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.code)?;
        if let Some(v) = &self.version {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A global group defined in the registry: `INSTANCE/GROUPCODE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GlobalGroupId {
    instance: String,
    code: String,
}

impl GlobalGroupId {
    /// Build from parts.
    pub fn new(instance: &str, code: &str) -> Result<Self, IdError> {
        check_part("instance", instance)?;
        check_part("group code", code)?;
        Ok(Self {
            instance: instance.into(),
            code: code.into(),
        })
    }
    /// The instance.
    pub fn instance(&self) -> &str {
        &self.instance
    }
    /// The group code.
    pub fn code(&self) -> &str {
        &self.code
    }
}

impl FromStr for GlobalGroupId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let p = split(s, "global group", "INSTANCE/GROUPCODE", &[2])?;
        Self::new(p[0], p[1])
    }
}

impl fmt::Display for GlobalGroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.instance, self.code)
    }
}

macro_rules! string_serde {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
string_serde!(
    MemberId,
    SubsystemId,
    ClientId,
    ServerId,
    ServiceId,
    GlobalGroupId
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_each_form() {
        let member: MemberId = "VN/GOV/000123".parse().expect("member");
        assert_eq!(
            (member.instance(), member.class(), member.code()),
            ("VN", "GOV", "000123")
        );
        let sub: SubsystemId = "VN/GOV/000123/citizen-registry".parse().expect("subsystem");
        assert_eq!(sub.subsystem(), "citizen-registry");
        let service: ServiceId = "VN/GOV/1/SUB/getPerson/v1".parse().expect("service");
        assert_eq!(service.version(), Some("v1"));
        assert!(matches!(
            "VN/GOV/1".parse::<ClientId>(),
            Ok(ClientId::Member(_))
        ));
        let server: ServerId = "VN/GOV/1/gw1".parse().expect("server");
        assert_eq!(server.to_string(), "VN/GOV/1/gw1");
    }

    #[test]
    fn errors_name_the_part_and_the_rule() {
        let err = "VN/GO V/1".parse::<MemberId>().expect_err("space");
        assert_eq!(
            err.to_string(),
            "member class \"GO V\" may contain only letters A-Z a-z, digits 0-9 and the symbols '()+,-.=?"
        );
        let err = "VN//1".parse::<MemberId>().expect_err("empty");
        assert!(
            err.to_string()
                .starts_with("member class \"\" must not be empty")
        );
        let err = "VN/GOV/1/a_b"
            .parse::<SubsystemId>()
            .expect_err("underscore");
        assert!(err.to_string().starts_with("subsystem code \"a_b\""));
        let err = "VN/GOV".parse::<SubsystemId>().expect_err("shape");
        assert!(err.to_string().contains("INSTANCE/CLASS/CODE/SUBSYSTEM"));
        assert!("VN/GOV/1/x".parse::<MemberId>().is_err());
        assert!("x".repeat(256).parse::<GlobalGroupId>().is_err());
    }

    #[test]
    fn serde_uses_the_string_form_and_validates() {
        let sub: SubsystemId = "VN/GOV/1/SUB".parse().expect("parse");
        assert_eq!(
            serde_json::to_string(&sub).expect("ser"),
            "\"VN/GOV/1/SUB\""
        );
        assert!(serde_json::from_str::<SubsystemId>("\"VN/GOV/1/S%B\"").is_err());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(
            parts in proptest::collection::vec("[A-Za-z0-9'()+,.=?-]{1,12}", 6)
        ) {
            let text = parts.join("/");
            let service: ServiceId = text.parse().expect("valid parts parse");
            prop_assert_eq!(service.to_string(), text);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,80}") {
            let _ = s.parse::<ServiceId>();
            let _ = s.parse::<ClientId>();
        }
    }
}
