//! [`LogRecord`]: what one gateway logs about one message exchange, and its canonical
//! encoding, whose hash is the record's leaf in the message log.

use crate::encoding::{
    base64_bytes, base64_option, hex_hash, hex_hash_option, repeated_base64_bytes,
    repeated_base64_option,
};
use lienthong_crypto::merkle;
use serde::{Deserialize, Serialize};

/// One message exchange as seen by one gateway: the evidence an auditor later checks.
///
/// Times are Unix milliseconds, as read from the gateway's clock. The descriptions are the
/// exact canonical bytes that were signed, so that the signatures can be checked again
/// without reconstructing anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRecord {
    /// The message id the client chose.
    pub message_id: String,
    /// Which gateway of the exchange wrote this record.
    pub side: Side,
    /// The client subsystem's identifier.
    pub client: String,
    /// The service's identifier.
    pub service: String,
    /// When the request reached this gateway.
    pub request_in: i64,
    /// When this gateway passed the request on; `None` if it never did.
    pub request_out: Option<i64>,
    /// When the response reached this gateway; `None` if none came.
    pub response_in: Option<i64>,
    /// When this gateway passed the response on; `None` if it never did.
    pub response_out: Option<i64>,
    /// The signed canonical request description (base64 in JSON).
    #[serde(with = "base64_bytes")]
    pub request_description: Vec<u8>,
    /// The signed canonical response description, if there was a response.
    #[serde(with = "base64_option")]
    pub response_description: Option<Vec<u8>>,
    /// The request signature in its text form (`SUITE:BASE64`).
    pub request_signature: String,
    /// The response signature in its text form, if there was a response.
    pub response_signature: Option<String>,
    /// The request signer's certificate, DER (base64 in JSON).
    #[serde(with = "repeated_base64_bytes")]
    pub request_signer_certificate: Vec<u8>,
    /// The response signer's certificate, DER, if there was a response.
    #[serde(with = "repeated_base64_option")]
    pub response_signer_certificate: Option<Vec<u8>>,
    /// The OCSP response for the request signer's certificate, DER, if one was used.
    #[serde(with = "repeated_base64_option")]
    pub request_signer_ocsp: Option<Vec<u8>>,
    /// The OCSP response for the response signer's certificate, DER, if one was used.
    #[serde(with = "repeated_base64_option")]
    pub response_signer_ocsp: Option<Vec<u8>>,
    /// SHA-256 of the request body (hex in JSON).
    #[serde(with = "hex_hash")]
    pub request_body_sha256: [u8; 32],
    /// SHA-256 of the response body, if there was a response.
    #[serde(with = "hex_hash_option")]
    pub response_body_sha256: Option<[u8; 32]>,
    /// The HTTP status this gateway returned to whoever sent it the request.
    pub status: u16,
    /// How much of the bodies the log keeps.
    pub body: BodyEvidence,
}

/// Which gateway of an exchange wrote a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The client's gateway.
    Client,
    /// The service provider's gateway.
    Provider,
}

/// The message bodies as kept in the log; the body hashes are logged in every case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum BodyEvidence {
    /// The bodies in clear (base64 in JSON).
    Full {
        /// The request body.
        #[serde(with = "base64_bytes")]
        request: Vec<u8>,
        /// The response body, if there was one.
        #[serde(with = "base64_option")]
        response: Option<Vec<u8>>,
    },
    /// Only the hashes in the record; the bodies were not kept.
    DigestOnly,
    /// The bodies are stored beside the record, not in it: in clear when `encrypted_to` is
    /// `None`, else encrypted to the member's X25519 key of that id (see
    /// [`crate::body_aad`]). The record's digests are what they are checked against, so
    /// they can be removed earlier than the record without breaking the log.
    Beside {
        /// The id of the key the bodies are encrypted to, if they are.
        encrypted_to: Option<String>,
    },
    /// The bodies encrypted under a key held outside the log.
    Encrypted {
        /// Which key encrypted them.
        key_id: String,
        /// The AEAD nonce (base64 in JSON).
        #[serde(with = "base64_bytes")]
        nonce: Vec<u8>,
        /// The ciphertext (base64 in JSON).
        #[serde(with = "base64_bytes")]
        ciphertext: Vec<u8>,
    },
}

impl LogRecord {
    /// The canonical encoding, which the leaf hash covers.
    ///
    /// It is compact JSON (no whitespace) with the fields in the order of the struct
    /// declaration, absent values written as `null` (never omitted), bytes as padded
    /// standard base64, hashes as lowercase hex, and strings escaped as `serde_json` does
    /// (only `"`, `\` and control characters; everything else as UTF-8). The record holds no
    /// floats and no maps, so the encoding of a record is unique. Changing the field order
    /// or names changes every leaf hash: that is a new record version, not a refactoring.
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record serializes: it has no maps and no floats")
    }

    /// The record's leaf hash in the message log: `merkle::leaf_hash(canonical bytes)`.
    pub fn leaf_hash(&self) -> [u8; 32] {
        merkle::leaf_hash(&self.to_canonical_bytes())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A provider-side record numbered `n`, with every optional field present.
    pub(crate) fn sample(n: u64) -> LogRecord {
        LogRecord {
            message_id: format!("msg-{n}"),
            side: Side::Provider,
            client: "VN/GOV/000001/hue-portal".into(),
            service: "VN/GOV/000002/registry/getPerson/v1".into(),
            request_in: 1_790_000_000_000 + n as i64,
            request_out: Some(1_790_000_000_005 + n as i64),
            response_in: Some(1_790_000_000_040 + n as i64),
            response_out: Some(1_790_000_000_042 + n as i64),
            request_description: format!("{{\"request\":{n}}}").into_bytes(),
            response_description: Some(b"{\"response\":1}".to_vec()),
            request_signature: "ed25519:AAAA".into(),
            response_signature: Some("ed25519:BBBB".into()),
            request_signer_certificate: vec![0x30, 0x03, 1, 2, 3],
            response_signer_certificate: Some(vec![0x30, 0x01, 9]),
            request_signer_ocsp: None,
            response_signer_ocsp: Some(vec![0x30, 0x00]),
            request_body_sha256: [n as u8; 32],
            response_body_sha256: Some([7; 32]),
            status: 200,
            body: BodyEvidence::Full {
                request: b"hello".to_vec(),
                response: None,
            },
        }
    }

    #[test]
    fn canonical_bytes_are_compact_json_in_field_order() {
        let text = String::from_utf8(sample(1).to_canonical_bytes()).expect("UTF-8");
        assert!(text.starts_with(r#"{"message_id":"msg-1","side":"provider","client":"#));
        // The remembered values (certificates, OCSP responses) are plain JSON strings too.
        assert!(text.contains(
            r#""request_signer_certificate":"MAMBAgM=","response_signer_certificate":"MAEJ","request_signer_ocsp":null,"response_signer_ocsp":"MAA=","#
        ));
        assert!(text.ends_with(
            r#""status":200,"body":{"kind":"full","request":"aGVsbG8=","response":null}}"#
        ));
        assert!(!text.contains(' '));
    }

    #[test]
    fn unknown_fields_and_bad_encodings_are_refused() {
        let mut json: serde_json::Value =
            serde_json::from_slice(&sample(2).to_canonical_bytes()).expect("JSON");
        json["extra"] = 1.into();
        assert!(serde_json::from_value::<LogRecord>(json.clone()).is_err());
        let mut json: serde_json::Value =
            serde_json::from_slice(&sample(2).to_canonical_bytes()).expect("JSON");
        json["request_body_sha256"] = "AB".repeat(32).into();
        assert!(serde_json::from_value::<LogRecord>(json.clone()).is_err());
        json["request_body_sha256"] = "ab".repeat(31).into();
        assert!(serde_json::from_value::<LogRecord>(json.clone()).is_err());
        json["request_body_sha256"] = "ab".repeat(32).into();
        json["request_description"] = "@@".into();
        assert!(serde_json::from_value::<LogRecord>(json).is_err());
    }

    #[test]
    fn every_body_kind_round_trips() {
        for body in [
            BodyEvidence::DigestOnly,
            BodyEvidence::Encrypted {
                key_id: "k1".into(),
                nonce: vec![1; 12],
                ciphertext: vec![2; 40],
            },
        ] {
            let record = LogRecord { body, ..sample(3) };
            let bytes = record.to_canonical_bytes();
            let back: LogRecord = serde_json::from_slice(&bytes).expect("parses");
            assert_eq!(back, record);
        }
    }

    proptest! {
        #[test]
        fn canonical_bytes_round_trip_and_changes_change_the_leaf(
            n in any::<u64>(),
            message_id in ".{0,20}",
            description in proptest::collection::vec(any::<u8>(), 0..64),
            status in any::<u16>(),
        ) {
            let record = LogRecord {
                message_id,
                request_description: description,
                status,
                ..sample(n)
            };
            let bytes = record.to_canonical_bytes();
            let back: LogRecord = serde_json::from_slice(&bytes).expect("parses");
            prop_assert_eq!(back.to_canonical_bytes(), bytes);
            prop_assert_eq!(&back, &record);
            let changed = LogRecord { status: status.wrapping_add(1), ..record.clone() };
            prop_assert_ne!(changed.leaf_hash(), record.leaf_hash());
        }
    }
}
