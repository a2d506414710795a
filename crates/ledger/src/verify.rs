//! The offline verifier of an evidence [`Bundle`]: every check it makes, passed or failed,
//! in a [`Verdict`] an auditor can read or file as JSON.

use crate::Bundle;
use lienthong_crypto::{PublicKey, merkle};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The outcome of each check on a bundle, in the order they were made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// The checks.
    pub checks: Vec<Check>,
}

/// One check on a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// What was checked: one of the `CHECK_*` names, such as [`CHECK_INCLUSION`].
    pub name: String,
    /// How it came out.
    pub outcome: Outcome,
    /// What was found, for a person.
    pub detail: String,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The evidence holds.
    Passed,
    /// The evidence does not hold: the bundle is not valid.
    Failed,
    /// This verifier does not make the check yet; it neither confirms nor refutes.
    NotChecked,
}

impl Verdict {
    /// Whether no check failed. See [`Verdict::is_complete`] for whether all were made.
    pub fn is_valid(&self) -> bool {
        !self
            .checks
            .iter()
            .any(|check| check.outcome == Outcome::Failed)
    }

    /// Whether every check was made (none is [`Outcome::NotChecked`]).
    pub fn is_complete(&self) -> bool {
        !self
            .checks
            .iter()
            .any(|check| check.outcome == Outcome::NotChecked)
    }

    /// The first failed check, if any.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks
            .iter()
            .find(|check| check.outcome == Outcome::Failed)
    }

    /// The check with this name, if it was made.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|check| check.name == name)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let summary = match (self.is_valid(), self.is_complete()) {
            (false, _) => "INVALID",
            (true, true) => "VALID",
            (true, false) => "VALID so far (some checks not yet made)",
        };
        writeln!(f, "{summary}")?;
        for check in &self.checks {
            let mark = match check.outcome {
                Outcome::Passed => "ok  ",
                Outcome::Failed => "FAIL",
                Outcome::NotChecked => "--  ",
            };
            writeln!(f, "  [{mark}] {}: {}", check.name, check.detail)?;
        }
        Ok(())
    }
}

/// The record's leaf hash leads through the proof to the head's root.
pub const CHECK_INCLUSION: &str = "inclusion";
/// The log's signature over the tree head.
pub const CHECK_HEAD_SIGNATURE: &str = "tree-head-signature";
/// The TSA token stamps the signed head.
pub const CHECK_TIMESTAMP: &str = "timestamp";
/// The request signature over the request description.
pub const CHECK_REQUEST_SIGNATURE: &str = "request-signature";
/// The response signature over the response description.
pub const CHECK_RESPONSE_SIGNATURE: &str = "response-signature";

/// Checks an RFC 3161 token (DER) over a SHA-256 imprint; returns its generation time in
/// Unix milliseconds, or why it is not valid.
pub type TimestampVerifier<'a> = dyn Fn(&[u8], &[u8; 32]) -> Result<i64, String> + 'a;

/// Verify `bundle` with the log's public key and an RFC 3161 checker.
///
/// `verify_timestamp(token, imprint)` must check that the DER token is a valid time-stamp
/// token of a trusted TSA over the SHA-256 `imprint`, and return its generation time (Unix
/// milliseconds); the real check lives in the PKI crate. Every check is made even after one
/// fails, so the verdict names all that is wrong.
pub fn verify_bundle(
    bundle: &Bundle,
    log_key: &PublicKey,
    verify_timestamp: &TimestampVerifier<'_>,
) -> Verdict {
    let record = &bundle.record;
    let signed = &bundle.head.signed;
    let head = &signed.head;
    let proof = &bundle.proof;
    let mut checks = Vec::with_capacity(5);

    let leaf = record.leaf_hash();
    let inclusion = if proof.tree_size != head.size {
        Err(format!(
            "the proof is for a tree of {} records, the head for {}",
            proof.tree_size, head.size
        ))
    } else if merkle::verify_inclusion(&leaf, proof.leaf_index, head.size, &proof.path, &head.root)
    {
        Ok(format!(
            "message {:?} (leaf {}) is record {} of the {} in log {:?}",
            record.message_id,
            hex::encode(leaf),
            proof.leaf_index,
            head.size,
            head.log_id
        ))
    } else {
        Err(format!(
            "record {} (leaf {}) does not lead to root {} of the head",
            proof.leaf_index,
            hex::encode(leaf),
            hex::encode(head.root)
        ))
    };
    checks.push(check(CHECK_INCLUSION, inclusion));

    let signature = signed
        .verify(log_key)
        .map(|()| format!("signed by the log key of {:?}", head.log_id))
        .map_err(|e| format!("the head signature does not verify: {e}"));
    checks.push(check(CHECK_HEAD_SIGNATURE, signature));

    let imprint = signed.timestamp_imprint();
    let timestamp = verify_timestamp(&bundle.head.tsa_token, &imprint)
        .map(|generated| {
            format!(
                "the head (made at {} ms) was stamped at {generated} ms: the record existed then",
                head.time_ms
            )
        })
        .map_err(|e| format!("the token does not stamp this head: {e}"));
    checks.push(check(CHECK_TIMESTAMP, timestamp));

    let not_checked = "not yet checked: needs certificate path and OCSP validation (crates/pki)";
    checks.push(Check {
        name: CHECK_REQUEST_SIGNATURE.into(),
        outcome: Outcome::NotChecked,
        detail: not_checked.into(),
    });
    if record.response_signature.is_some() {
        checks.push(Check {
            name: CHECK_RESPONSE_SIGNATURE.into(),
            outcome: Outcome::NotChecked,
            detail: not_checked.into(),
        });
    }
    Verdict { checks }
}

fn check(name: &str, result: Result<String, String>) -> Check {
    let (outcome, detail) = match result {
        Ok(detail) => (Outcome::Passed, detail),
        Err(detail) => (Outcome::Failed, detail),
    };
    Check {
        name: name.into(),
        outcome,
        detail,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bundle::tests::{entries, raw_zip, sample_bundle};
    use crate::log::tests::key;
    use crate::{read_bundle, write_bundle};
    use lienthong_crypto::Signer as _;
    use proptest::prelude::*;
    use sha2::{Digest as _, Sha256};

    /// A stand-in for an RFC 3161 token: imprint, time, and a keyed hash over both.
    pub(crate) fn fake_token(imprint: &[u8; 32], generated: i64) -> Vec<u8> {
        let mut token = imprint.to_vec();
        token.extend_from_slice(&generated.to_be_bytes());
        let mac = Sha256::new()
            .chain_update(b"fake-tsa")
            .chain_update(&token)
            .finalize();
        token.extend_from_slice(&mac);
        token
    }

    /// The checker for [`fake_token`].
    pub(crate) fn check_fake_token(token: &[u8], imprint: &[u8; 32]) -> Result<i64, String> {
        let (body, mac) = token.split_at_checked(40).ok_or("token too short")?;
        let (stamped, time) = body.split_at(32);
        let expected = Sha256::new()
            .chain_update(b"fake-tsa")
            .chain_update(body)
            .finalize();
        if mac != expected.as_slice() {
            return Err("bad TSA signature".into());
        }
        if stamped != imprint {
            return Err("token stamps another imprint".into());
        }
        let time: [u8; 8] = time.try_into().map_err(|_| "bad time")?;
        Ok(i64::from_be_bytes(time))
    }

    #[test]
    fn a_good_bundle_is_valid_but_incomplete() {
        let key = key();
        let bundle = sample_bundle(&key);
        let verdict = verify_bundle(&bundle, key.public_key(), &check_fake_token);
        assert!(verdict.is_valid(), "{verdict}");
        assert!(!verdict.is_complete());
        assert_eq!(verdict.first_failure(), None);
        let names: Vec<&str> = verdict.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                CHECK_INCLUSION,
                CHECK_HEAD_SIGNATURE,
                CHECK_TIMESTAMP,
                CHECK_REQUEST_SIGNATURE,
                CHECK_RESPONSE_SIGNATURE
            ]
        );
        let text = verdict.to_string();
        assert!(text.starts_with("VALID so far"), "{text}");
        assert!(text.contains("[ok  ] timestamp: "), "{text}");
        assert!(
            text.contains("[--  ] request-signature: not yet checked"),
            "{text}"
        );
        let json = serde_json::to_string(&verdict).expect("JSON");
        assert!(json.contains(r#""outcome":"not_checked""#));
        assert_eq!(
            serde_json::from_str::<Verdict>(&json).expect("parses"),
            verdict
        );
    }

    /// The names of the failed checks.
    fn failures(verdict: &Verdict) -> Vec<&str> {
        verdict
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Failed)
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn each_tampered_part_fails_its_check() {
        let key = key();
        let good = sample_bundle(&key);
        let verify =
            |bundle: &crate::Bundle| verify_bundle(bundle, key.public_key(), &check_fake_token);

        let mut record = good.clone();
        record.record.request_description[0] ^= 1;
        assert_eq!(failures(&verify(&record)), [CHECK_INCLUSION]);

        let mut path = good.clone();
        path.proof.path[1][7] ^= 0x10;
        assert_eq!(failures(&verify(&path)), [CHECK_INCLUSION]);

        let mut index = good.clone();
        index.proof.leaf_index = 4;
        assert_eq!(failures(&verify(&index)), [CHECK_INCLUSION]);

        let mut size = good.clone();
        size.proof.tree_size = 10;
        assert_eq!(failures(&verify(&size)), [CHECK_INCLUSION]);

        // The root is under the signature and the timestamp too.
        let mut root = good.clone();
        root.head.signed.head.root[0] ^= 1;
        assert_eq!(
            failures(&verify(&root)),
            [CHECK_INCLUSION, CHECK_HEAD_SIGNATURE, CHECK_TIMESTAMP]
        );

        let mut time = good.clone();
        time.head.signed.head.time_ms += 1;
        assert_eq!(
            failures(&verify(&time)),
            [CHECK_HEAD_SIGNATURE, CHECK_TIMESTAMP]
        );

        let mut token = good.clone();
        token.head.tsa_token[45] ^= 1;
        assert_eq!(failures(&verify(&token)), [CHECK_TIMESTAMP]);

        let other = crate::log::tests::key();
        let verdict = verify_bundle(&good, other.public_key(), &check_fake_token);
        assert_eq!(failures(&verdict), [CHECK_HEAD_SIGNATURE]);
        assert!(verdict.to_string().starts_with("INVALID"));
        assert_eq!(
            verdict.first_failure().map(|c| c.name.as_str()),
            Some(CHECK_HEAD_SIGNATURE)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// One bit flipped anywhere in the evidence entries of a bundle file: the bundle is
        /// refused when read, or the verdict names a failed check.
        #[test]
        fn a_flipped_bit_in_any_evidence_entry_is_caught(
            entry in 2usize..6,
            position in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let key = key();
            let bytes = write_bundle(&sample_bundle(&key)).expect("writes");
            let mut entries = entries(&bytes);
            let content = &mut entries[entry].1;
            let at = position.index(content.len());
            content[at] ^= 1 << bit;
            let borrowed: Vec<(&str, &[u8])> =
                entries.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
            match read_bundle(&raw_zip(&borrowed)) {
                Err(_) => {}
                Ok(bundle) => {
                    let verdict = verify_bundle(&bundle, key.public_key(), &check_fake_token);
                    let expected = match entries[entry].0.as_str() {
                        "record.json" | "proof.json" => CHECK_INCLUSION,
                        "tree-head.json" => CHECK_HEAD_SIGNATURE,
                        _ => CHECK_TIMESTAMP,
                    };
                    prop_assert!(
                        failures(&verdict).contains(&expected),
                        "{} byte {}: {}", entries[entry].0, at, verdict
                    );
                }
            }
        }
    }
}
