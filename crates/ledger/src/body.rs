//! Message bodies kept beside log records: what binds an encrypted body to its record, and
//! the check of a body against the digest the record (and the sender's signature) holds.

use crate::verify::{Check, Outcome};
use crate::{Bundle, LogRecord};
use lienthong_crypto::{BoxSecretKey, open_body};
use sha2::{Digest as _, Sha256};

/// The check of each body a bundle carries against the record's digest.
pub const CHECK_BODY: &str = "body";

/// Which body of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPart {
    /// The request body.
    Request,
    /// The response body.
    Response,
}

impl BodyPart {
    /// `request` or `response`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Response => "response",
        }
    }

    /// The digest `record` holds for this body.
    pub fn digest(self, record: &LogRecord) -> Option<[u8; 32]> {
        match self {
            Self::Request => Some(record.request_body_sha256),
            Self::Response => record.response_body_sha256,
        }
    }
}

/// The associated data an encrypted body is bound to: its message, its side, which body
/// and its digest, so that a ciphertext cannot be passed off as another record's body.
pub fn body_aad(record: &LogRecord, part: BodyPart) -> Vec<u8> {
    let side = match record.side {
        crate::Side::Client => "client",
        crate::Side::Provider => "provider",
    };
    let digest = part.digest(record).map(hex::encode).unwrap_or_default();
    format!(
        "lienthong-body/1\n{}\n{side}\n{}\n{digest}",
        record.message_id,
        part.name()
    )
    .into_bytes()
}

/// Whether `body` is the one whose digest `record` holds for `part`.
pub fn body_matches(record: &LogRecord, part: BodyPart, body: &[u8]) -> Result<(), String> {
    let actual: [u8; 32] = Sha256::digest(body).into();
    match part.digest(record) {
        Some(expected) if expected == actual => Ok(()),
        Some(expected) => Err(format!(
            "the {} body of message {:?} ({} bytes, SHA-256 {}) does not match the digest {} in the record",
            part.name(),
            record.message_id,
            body.len(),
            hex::encode(actual),
            hex::encode(expected)
        )),
        None => Err(format!(
            "a {} body is kept for message {:?} but the record has no {0} digest",
            part.name(),
            record.message_id
        )),
    }
}

/// Decrypt the sealed bodies of `bundle` with the member's key, in place (`request.sealed`
/// becomes `request`); returns how many were opened.
pub fn open_bodies(bundle: &mut Bundle, key: &BoxSecretKey) -> Result<usize, String> {
    let mut opened = 0;
    for (name, content) in &mut bundle.bodies {
        let part = match name.as_str() {
            "request.sealed" => BodyPart::Request,
            "response.sealed" => BodyPart::Response,
            _ => continue,
        };
        *content = open_body(key, &body_aad(&bundle.record, part), content)
            .map_err(|e| format!("the {} body: {e}", part.name()))?;
        *name = part.name().to_owned();
        opened += 1;
    }
    Ok(opened)
}

/// One [`CHECK_BODY`] per body in `bundle`: bodies in clear must match the record's
/// digests; sealed ones are not checked (open them first with [`open_bodies`]).
pub(crate) fn check_bodies(bundle: &Bundle) -> Vec<Check> {
    let record = &bundle.record;
    bundle
        .bodies
        .iter()
        .map(|(name, content)| {
            let (outcome, detail) = match name.as_str() {
                "request" | "response" => {
                    let part = if name == "request" {
                        BodyPart::Request
                    } else {
                        BodyPart::Response
                    };
                    match body_matches(record, part, content) {
                        Ok(()) => (
                            Outcome::Passed,
                            format!(
                                "the {name} body ({} bytes) matches the digest in the record",
                                content.len()
                            ),
                        ),
                        Err(why) => (Outcome::Failed, why),
                    }
                }
                _ => (
                    Outcome::NotChecked,
                    format!(
                        "the {} body is encrypted to the member's key; give that key to check it",
                        name.trim_end_matches(".sealed")
                    ),
                ),
            };
            Check {
                name: CHECK_BODY.into(),
                outcome,
                detail,
            }
        })
        .collect()
}
