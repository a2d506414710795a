//! Distinguished names, and where the federation identity lives in a certificate subject.
//!
//! Layout (documented in ARCHITECTURE.md; parse with [`FederationIdentity::from_name`]):
//!
//! | profile | subject                                                                       |
//! |---------|-------------------------------------------------------------------------------|
//! | `sign`  | `O=INSTANCE, OU=CLASS, CN=CODE, serialNumber=INSTANCE/CLASS/CODE`              |
//! | `auth`  | `O=INSTANCE, OU=CLASS, CN=SERVERCODE, serialNumber=INSTANCE/CLASS/CODE/SERVERCODE` |
//!
//! The `serialNumber` attribute (2.5.4.5) is authoritative: it holds the identifier in
//! X-Road's string form. O, OU and CN repeat parts of it for people reading the certificate.
//! Every part uses only characters that PrintableString allows, so the encoding is exact.

use crate::PkiError;
use const_oid::ObjectIdentifier;
use const_oid::db::rfc4519::{CN, O, OU, SERIAL_NUMBER};
use der::asn1::{Any, PrintableStringRef, SetOfVec, Utf8StringRef};
use der::{Tag, Tagged};
use lienthong_model::{MemberId, ServerId};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

/// Who a certificate belongs to, in federation terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FederationIdentity {
    /// A member organisation (the `sign` profile).
    Member(MemberId),
    /// A gateway (the `auth` profile).
    Server(ServerId),
}

impl FederationIdentity {
    /// The subject distinguished name for this identity.
    pub fn subject(&self) -> Result<Name, PkiError> {
        let (member, common_name, serial) = match self {
            Self::Member(m) => (m, m.code().to_owned(), m.to_string()),
            Self::Server(s) => (s.owner(), s.code().to_owned(), s.to_string()),
        };
        build_name(&[
            (O, member.instance(), true),
            (OU, member.class(), true),
            (CN, &common_name, true),
            (SERIAL_NUMBER, &serial, true),
        ])
    }

    /// Read the identity back from a subject: the `serialNumber` attribute, parsed as a
    /// member id (3 parts) or a server id (4 parts).
    pub fn from_name(name: &Name) -> Option<Self> {
        let serial = attribute(name, SERIAL_NUMBER)?;
        match serial.split('/').count() {
            3 => serial.parse().ok().map(Self::Member),
            4 => serial.parse().ok().map(Self::Server),
            _ => None,
        }
    }
}

impl std::fmt::Display for FederationIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Member(m) => m.fmt(f),
            Self::Server(s) => s.fmt(f),
        }
    }
}

/// A name for the federation's own service certificates: `O=ORG, CN=COMMON NAME` (UTF-8).
pub(crate) fn service_name(organisation: &str, common_name: &str) -> Result<Name, PkiError> {
    build_name(&[(O, organisation, false), (CN, common_name, false)])
}

fn build_name(parts: &[(ObjectIdentifier, &str, bool)]) -> Result<Name, PkiError> {
    let mut rdns = Vec::with_capacity(parts.len());
    for &(oid, text, printable) in parts {
        let value = if printable {
            PrintableStringRef::new(text).and_then(|s| Any::encode_from(&s))
        } else {
            Utf8StringRef::new(text).and_then(|s| Any::encode_from(&s))
        }
        .map_err(PkiError::encoding("name attribute"))?;
        let set = SetOfVec::try_from(vec![AttributeTypeAndValue { oid, value }])
            .map_err(PkiError::encoding("name attribute set"))?;
        rdns.push(RelativeDistinguishedName(set));
    }
    Ok(RdnSequence(rdns))
}

/// The text of the first attribute `oid` in `name`, if it is a string type.
pub(crate) fn attribute(name: &Name, oid: ObjectIdentifier) -> Option<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == oid)
        .and_then(|atv| text_of(&atv.value))
}

fn text_of(value: &Any) -> Option<String> {
    match value.tag() {
        Tag::PrintableString => value
            .decode_as::<PrintableStringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        Tag::Utf8String => value
            .decode_as::<Utf8StringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_through_the_subject() {
        for text in ["VN/GOV/000123", "VN/GOV/000123/gw-1"] {
            let identity = match text.split('/').count() {
                3 => FederationIdentity::Member(text.parse().expect("member")),
                _ => FederationIdentity::Server(text.parse().expect("server")),
            };
            let name = identity.subject().expect("subject");
            assert_eq!(FederationIdentity::from_name(&name), Some(identity.clone()));
            assert_eq!(attribute(&name, SERIAL_NUMBER).as_deref(), Some(text));
        }
        let name = service_name("Lienthong", "Root CA").expect("name");
        assert_eq!(FederationIdentity::from_name(&name), None);
        assert_eq!(name.to_string(), "CN=Root CA,O=Lienthong", "RFC 4514 order");
    }
}
