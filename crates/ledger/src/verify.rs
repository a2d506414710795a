//! The offline verifier of an evidence [`Bundle`]: every check it makes, passed or failed,
//! in a [`Verdict`] an auditor can read or file as JSON.

use crate::Bundle;
use lienthong_crypto::{BatchSignature, BatchVerifier, HashAlgorithm, PublicKey, merkle};
use lienthong_pki::{
    CertificateInfo, VerifiedStatus, verify_ocsp_response, verify_timestamp_token,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
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

/// How old an OCSP response may be, at the time of the message it vouched for, in seconds.
///
/// A gateway uses a response fresh by the federation policy (minutes), but the policy of
/// that day is not in the bundle; a day bounds how stale a logged response can be without
/// refusing evidence over a policy the auditor cannot see.
pub const OCSP_MAX_AGE_SECONDS: i64 = 24 * 60 * 60;

/// What the auditor trusts, as the signed global configuration lists it: the approved
/// certificate authorities (which issue the signing certificates, the OCSP responders'
/// and the TSAs' certificates) and the approved timestamp authorities' certificates.
#[derive(Debug, Clone, Default)]
pub struct TrustRoots {
    /// Approved CA certificates.
    pub cas: Vec<CertificateInfo>,
    /// Approved TSA certificates.
    pub tsas: Vec<CertificateInfo>,
}

/// Verify `bundle` with the log's public key (if the auditor has it) and the trust roots.
///
/// The timestamp is checked with [`pki_timestamp_verifier`]. The request and response
/// signatures are checked as the receiving gateway did, but at the time the record gives
/// rather than now: the batch signature over SHA-256 of the description verifies with the
/// signer certificate's key, a trusted CA issued that certificate, it was valid then, and
/// the logged OCSP response (if any) said it was good then (at most
/// [`OCSP_MAX_AGE_SECONDS`] old). Every check is made even after one fails, so the verdict
/// names all that is wrong. Without `log_key` the head signature is
/// [`Outcome::NotChecked`]. Each body the bundle carries in clear is checked against the
/// record's digest ([`crate::CHECK_BODY`]); an encrypted one is not checked until opened
/// with [`crate::open_bodies`].
pub fn verify_bundle(bundle: &Bundle, log_key: Option<&PublicKey>, roots: &TrustRoots) -> Verdict {
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
            "record {} (message {:?}, leaf {}) does not lead to root {} of the head",
            proof.leaf_index,
            record.message_id,
            hex::encode(leaf),
            hex::encode(head.root)
        ))
    };
    checks.push(check(CHECK_INCLUSION, inclusion));

    checks.push(match log_key {
        Some(log_key) => {
            let signature = signed
                .verify(log_key)
                .map(|()| format!("signed by the log key of {:?}", head.log_id))
                .map_err(|e| format!("the head signature does not verify: {e}"));
            check(CHECK_HEAD_SIGNATURE, signature)
        }
        None => Check {
            name: CHECK_HEAD_SIGNATURE.into(),
            outcome: Outcome::NotChecked,
            detail: "no log public key was given".into(),
        },
    });

    let imprint = signed.timestamp_imprint();
    let timestamp = pki_timestamp_verifier(roots)(&bundle.head.tsa_token, &imprint)
        .map(|generated| {
            format!(
                "the head (made at {} ms) was stamped at {generated} ms: the record existed then",
                head.time_ms
            )
        })
        .map_err(|e| format!("the token does not stamp this head: {e}"));
    checks.push(check(CHECK_TIMESTAMP, timestamp));

    // Each message is checked on its own; no batch root is worth remembering.
    let verifier = BatchVerifier::new(0);
    let (request, response) = record_signatures(record, roots, &verifier);
    checks.push(check(CHECK_REQUEST_SIGNATURE, request));
    if let Some(response) = response {
        checks.push(check(CHECK_RESPONSE_SIGNATURE, response));
    }
    checks.extend(crate::body::check_bodies(bundle));
    Verdict { checks }
}

/// The request signature's check of `record`, and the response signature's if it has one.
pub(crate) fn record_signatures(
    record: &crate::LogRecord,
    roots: &TrustRoots,
    verifier: &BatchVerifier,
) -> (Result<String, String>, Option<Result<String, String>>) {
    let request = SignedMessage {
        description: &record.request_description,
        signature: &record.request_signature,
        certificate: &record.request_signer_certificate,
        ocsp: record.request_signer_ocsp.as_deref(),
        time_ms: record.request_in,
    }
    .verify(roots, verifier);
    let response = record.response_signature.as_ref().map(|signature| {
        match (
            &record.response_description,
            &record.response_signer_certificate,
        ) {
            (Some(description), Some(certificate)) => SignedMessage {
                description,
                signature,
                certificate,
                ocsp: record.response_signer_ocsp.as_deref(),
                time_ms: record.response_in.unwrap_or(record.request_in),
            }
            .verify(roots, verifier),
            _ => Err("the record has a response signature but no response description or signer certificate".into()),
        }
    });
    (request, response)
}

/// The RFC 3161 check of [`verify_bundle`]: `(token, imprint)` is valid when the DER token
/// is a timestamp over the SHA-256 `imprint`, signed by one of `roots.tsas` whose
/// certificate one of `roots.cas` issued; gives the generation time in Unix milliseconds.
pub fn pki_timestamp_verifier(
    roots: &TrustRoots,
) -> impl Fn(&[u8], &[u8; 32]) -> Result<i64, String> + '_ {
    move |token, imprint| {
        let mut why = String::from("no trusted CA and TSA were given");
        for ca in &roots.cas {
            for tsa in &roots.tsas {
                match verify_timestamp_token(token, (HashAlgorithm::Sha256, imprint), Some(tsa), ca)
                {
                    // A token carrying its own certificate names it: it must be approved.
                    Ok(verified)
                        if roots
                            .tsas
                            .iter()
                            .any(|t| t.der == verified.tsa_certificate.der) =>
                    {
                        return Ok(verified.gen_time_unix.saturating_mul(1000));
                    }
                    Ok(verified) => {
                        why = format!(
                            "signed by {}, which is not an approved TSA",
                            verified.tsa_certificate.subject()
                        );
                    }
                    Err(e) => why = e.to_string(),
                }
            }
        }
        Err(why)
    }
}

/// One signed message of a record: what the signature covers and what vouched for the key.
struct SignedMessage<'a> {
    description: &'a [u8],
    signature: &'a str,
    certificate: &'a [u8],
    ocsp: Option<&'a [u8]>,
    /// When the gateway received the message: the moment the certificate had to be good.
    time_ms: i64,
}

impl SignedMessage<'_> {
    fn verify(&self, roots: &TrustRoots, verifier: &BatchVerifier) -> Result<String, String> {
        let certificate = CertificateInfo::from_der(self.certificate)
            .map_err(|e| format!("the signer certificate does not parse: {e}"))?;
        let subject = certificate.subject();
        let signature = BatchSignature::from_text(self.signature)
            .map_err(|e| format!("the signature does not parse: {e}"))?;
        let digest: [u8; 32] = Sha256::digest(self.description).into();
        verifier
            .verify(&certificate.public_key, &digest, &signature)
            .map_err(|e| {
                format!("the signature over the description does not verify with the key of {subject}: {e}")
            })?;
        let issuer = roots
            .cas
            .iter()
            .find(|ca| certificate.verify_signed_by(&ca.public_key).is_ok())
            .ok_or_else(|| {
                format!("the certificate of {subject} was not issued by a trusted CA")
            })?;
        let at = self.time_ms.div_euclid(1000);
        if at < certificate.not_before || at > certificate.not_after {
            return Err(format!(
                "the certificate of {subject} (valid {} to {}) was not valid at the message time {at}",
                certificate.not_before, certificate.not_after
            ));
        }
        let revocation = match self.ocsp {
            None => "no OCSP response was logged".to_owned(),
            Some(der) => {
                match verify_ocsp_response(der, &certificate, issuer, at, OCSP_MAX_AGE_SECONDS) {
                    Ok(VerifiedStatus::Good { this_update }) => {
                        format!("OCSP said good at {this_update}")
                    }
                    Ok(VerifiedStatus::Revoked { time, .. }) => {
                        return Err(format!(
                            "OCSP said the certificate of {subject} was revoked at {time}"
                        ));
                    }
                    Ok(VerifiedStatus::Unknown) => {
                        return Err(format!("OCSP did not know the certificate of {subject}"));
                    }
                    Err(e) => return Err(format!("the logged OCSP response does not hold: {e}")),
                }
            }
        };
        Ok(format!(
            "signed by {subject} (certificate {} from {}, valid at {at}); {revocation}",
            certificate.serial_hex(),
            issuer.subject()
        ))
    }
}

pub(crate) fn check(name: &str, result: Result<String, String>) -> Check {
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
    use crate::bundle::tests::{entries, raw_zip};
    use crate::{LogRecord, MerkleLog, TimestampedHead, TreeHead, read_bundle, sign_head};
    use lienthong_crypto::{CryptoPolicy, Signer as _, SoftwareKey, Suite, sign_batch};
    use lienthong_pki::{
        CertificateAuthority, CertificateState, FederationIdentity, IssueRequest, OcspResponder,
        Profile, Serial, TimeStampAuthority, TimestampRequest, ocsp_request,
    };
    use proptest::prelude::*;
    use std::sync::{Arc, LazyLock};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

    /// A genuine federation: a CA, signing certificates for a client and a provider, an
    /// OCSP responder and a TSA, and a bundle of a record they signed.
    pub(crate) struct Fixture {
        pub(crate) log_key: SoftwareKey,
        pub(crate) ca: CertificateAuthority,
        pub(crate) roots: TrustRoots,
        pub(crate) bundle: Bundle,
        /// The ten signed records the bundle's is one of.
        pub(crate) records: Vec<LogRecord>,
        /// The federation's TSA.
        pub(crate) tsa: TimeStampAuthority,
    }

    impl Fixture {
        /// A token from the fixture's TSA over `imprint`.
        pub(crate) fn stamp(&self, imprint: &[u8; 32]) -> Vec<u8> {
            let request = TimestampRequest::for_digest(HashAlgorithm::Sha256, imprint, true)
                .expect("request");
            self.tsa
                .token_der(&request, 2, SystemTime::now())
                .expect("token")
        }
    }

    fn new_ca(name: &str, now: SystemTime) -> CertificateAuthority {
        let (key, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256).expect("CA key");
        CertificateAuthority::create_root(
            Arc::new(key),
            "Test Federation",
            name,
            &Serial::random().expect("serial"),
            now - Duration::from_secs(60),
            now + Duration::from_secs(86_400),
            CryptoPolicy::vn(),
        )
        .expect("root")
    }

    fn issue(
        ca: &CertificateAuthority,
        profile: Profile,
        identity: Option<FederationIdentity>,
        key: &SoftwareKey,
        now: SystemTime,
    ) -> CertificateInfo {
        ca.issue(&IssueRequest {
            profile,
            identity,
            common_name: "Test service",
            public_key: key.public_key(),
            serial: &Serial::random().expect("serial"),
            not_before: now - Duration::from_secs(60),
            not_after: now + Duration::from_secs(3600),
            ocsp_url: None,
        })
        .expect("certificate")
    }

    fn unix_ms(time: SystemTime) -> i64 {
        i64::try_from(
            time.duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_millis(),
        )
        .expect("i64")
    }

    /// A signer: its key, certificate (from `ca`) and OCSP response in state `state`.
    fn signer(
        ca: &CertificateAuthority,
        responder: &OcspResponder,
        member: &str,
        state: CertificateState,
        now: SystemTime,
    ) -> (SoftwareKey, CertificateInfo, Vec<u8>) {
        let (key, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256).expect("key");
        let identity = FederationIdentity::Member(member.parse().expect("member id"));
        let certificate = issue(ca, Profile::Sign, Some(identity), &key, now);
        let request = ocsp_request(
            ca.certificate(),
            &certificate.serial,
            HashAlgorithm::Sha1,
            None,
        )
        .expect("OCSP request");
        let ocsp = responder.respond(&request, now, |_| state).der;
        (key, certificate, ocsp)
    }

    /// The fixture, with the request signer's certificate in OCSP state `state`.
    pub(crate) fn fixture_with(state: CertificateState) -> Fixture {
        let now = SystemTime::now();
        let ca = new_ca("Test Root CA", now);
        let (ocsp_key, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256).expect("key");
        let ocsp_certificate = issue(&ca, Profile::OcspSigning, None, &ocsp_key, now);
        let responder = OcspResponder::new(
            ca.certificate(),
            &ocsp_certificate,
            Arc::new(ocsp_key),
            Duration::from_secs(3600),
        )
        .expect("responder");
        let (client_key, client_certificate, client_ocsp) =
            signer(&ca, &responder, "VN/GOV/000001", state, now);
        let (provider_key, provider_certificate, provider_ocsp) = signer(
            &ca,
            &responder,
            "VN/GOV/000002",
            CertificateState::Good,
            now,
        );

        // Ten exchanges, the requests signed in one batch and the responses in another.
        let request_in = unix_ms(now) + 1000;
        let requests: Vec<Vec<u8>> = (0..10)
            .map(|n| format!("request {n}\nGET /persons/{n}\n").into_bytes())
            .collect();
        let responses: Vec<Vec<u8>> = (0..10)
            .map(|n| format!("response {n}\n200\n").into_bytes())
            .collect();
        let digests = |all: &[Vec<u8>]| -> Vec<[u8; 32]> {
            all.iter().map(|d| Sha256::digest(d).into()).collect()
        };
        let request_signatures = sign_batch(&client_key, &digests(&requests)).expect("signs");
        let response_signatures = sign_batch(&provider_key, &digests(&responses)).expect("signs");
        let records: Vec<LogRecord> = (0..10)
            .map(|n| {
                let mut record = crate::record::tests::sample(n as u64);
                record.request_in = request_in + n as i64;
                record.response_in = Some(request_in + 40 + n as i64);
                record.request_description = requests[n].clone();
                record.response_description = Some(responses[n].clone());
                record.request_signature = request_signatures[n].to_text();
                record.response_signature = Some(response_signatures[n].to_text());
                record.request_signer_certificate = client_certificate.der.clone();
                record.response_signer_certificate = Some(provider_certificate.der.clone());
                record.request_signer_ocsp = Some(client_ocsp.clone());
                record.response_signer_ocsp = Some(provider_ocsp.clone());
                record
            })
            .collect();

        let log_key = crate::log::tests::key();
        let log = MerkleLog::from_leaves(records.iter().map(LogRecord::leaf_hash));
        let head = TreeHead {
            log_id: "gw-1".into(),
            size: 9,
            root: log.root_at(9).expect("root"),
            time_ms: request_in + 1000,
        };
        let signed = sign_head(head, &log_key).expect("signs");
        let (tsa_key, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256).expect("key");
        let tsa_certificate = issue(&ca, Profile::TimeStamping, None, &tsa_key, now);
        let tsa =
            TimeStampAuthority::new(&tsa_certificate, Arc::new(tsa_key), "1.3.6.1.4.1.99999.1.1")
                .expect("TSA");
        let request =
            TimestampRequest::for_digest(HashAlgorithm::Sha256, &signed.timestamp_imprint(), true)
                .expect("request");
        let tsa_token = tsa.token_der(&request, 1, now).expect("token");
        let bundle = Bundle::from_log(
            &log,
            records[3].clone(),
            3,
            TimestampedHead { signed, tsa_token },
        )
        .expect("record 3 is in the log");
        Fixture {
            log_key,
            roots: TrustRoots {
                cas: vec![ca.certificate().clone()],
                tsas: vec![tsa_certificate],
            },
            ca,
            bundle,
            records,
            tsa,
        }
    }

    /// One fixture shared by the tests: making keys and certificates is not free.
    pub(crate) static FIXTURE: LazyLock<Fixture> =
        LazyLock::new(|| fixture_with(CertificateState::Good));

    fn verify(bundle: &Bundle) -> Verdict {
        verify_bundle(bundle, Some(FIXTURE.log_key.public_key()), &FIXTURE.roots)
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
    fn a_genuine_bundle_is_valid_and_complete() {
        let verdict = verify(&FIXTURE.bundle);
        assert!(verdict.is_valid(), "{verdict}");
        assert!(verdict.is_complete(), "{verdict}");
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
        assert!(text.starts_with("VALID\n"), "{text}");
        assert!(text.contains("[ok  ] timestamp: "), "{text}");
        assert!(
            text.contains("[ok  ] request-signature: signed by ")
                && text.contains("OCSP said good"),
            "{text}"
        );
        let json = serde_json::to_string(&verdict).expect("JSON");
        assert!(json.contains(r#""outcome":"passed""#));
        assert_eq!(
            serde_json::from_str::<Verdict>(&json).expect("parses"),
            verdict
        );
    }

    #[test]
    fn without_the_log_key_the_head_signature_is_not_checked() {
        let verdict = verify_bundle(&FIXTURE.bundle, None, &FIXTURE.roots);
        assert!(verdict.is_valid(), "{verdict}");
        assert!(!verdict.is_complete());
        assert_eq!(
            verdict.check(CHECK_HEAD_SIGNATURE).map(|c| c.outcome),
            Some(Outcome::NotChecked)
        );
        assert!(verdict.to_string().starts_with("VALID so far"));
    }

    #[test]
    fn a_tampered_description_fails_its_signature() {
        let mut request = FIXTURE.bundle.clone();
        request.record.request_description[0] ^= 1;
        let verdict = verify(&request);
        assert_eq!(
            failures(&verdict),
            [CHECK_INCLUSION, CHECK_REQUEST_SIGNATURE]
        );
        let detail = &verdict.check(CHECK_REQUEST_SIGNATURE).expect("made").detail;
        assert!(detail.contains("does not verify"), "{detail}");

        let mut response = FIXTURE.bundle.clone();
        if let Some(description) = &mut response.record.response_description {
            description.push(b'x');
        }
        assert_eq!(
            failures(&verify(&response)),
            [CHECK_INCLUSION, CHECK_RESPONSE_SIGNATURE]
        );

        // Another message's signature does not sign this description.
        let mut swapped = FIXTURE.bundle.clone();
        swapped.record.request_signature =
            swapped.record.response_signature.clone().expect("response");
        assert_eq!(
            failures(&verify(&swapped)),
            [CHECK_INCLUSION, CHECK_REQUEST_SIGNATURE]
        );
    }

    #[test]
    fn a_certificate_from_an_untrusted_ca_fails() {
        let stranger = new_ca("Stranger CA", SystemTime::now());
        let roots = TrustRoots {
            cas: vec![stranger.certificate().clone()],
            tsas: FIXTURE.roots.tsas.clone(),
        };
        let verdict = verify_bundle(&FIXTURE.bundle, Some(FIXTURE.log_key.public_key()), &roots);
        assert_eq!(
            failures(&verdict),
            [
                CHECK_TIMESTAMP,
                CHECK_REQUEST_SIGNATURE,
                CHECK_RESPONSE_SIGNATURE
            ]
        );
        let detail = &verdict.check(CHECK_REQUEST_SIGNATURE).expect("made").detail;
        assert!(detail.contains("not issued by a trusted CA"), "{detail}");

        // The same CA, but the TSA is not an approved one.
        let no_tsa = TrustRoots {
            cas: FIXTURE.roots.cas.clone(),
            tsas: vec![FIXTURE.ca.certificate().clone()],
        };
        let verdict = verify_bundle(&FIXTURE.bundle, Some(FIXTURE.log_key.public_key()), &no_tsa);
        assert_eq!(failures(&verdict), [CHECK_TIMESTAMP]);
        let no_roots = verify_bundle(&FIXTURE.bundle, None, &TrustRoots::default());
        assert_eq!(
            failures(&no_roots),
            [
                CHECK_TIMESTAMP,
                CHECK_REQUEST_SIGNATURE,
                CHECK_RESPONSE_SIGNATURE
            ]
        );
    }

    #[test]
    fn a_revoked_or_unknown_signer_fails() {
        let revoked = fixture_with(CertificateState::Revoked {
            time: 1_700_000_000,
            reason: None,
        });
        let verdict = verify_bundle(
            &revoked.bundle,
            Some(revoked.log_key.public_key()),
            &revoked.roots,
        );
        assert_eq!(failures(&verdict), [CHECK_REQUEST_SIGNATURE]);
        let detail = &verdict.check(CHECK_REQUEST_SIGNATURE).expect("made").detail;
        assert!(detail.contains("revoked"), "{detail}");

        // An OCSP response for another certificate does not vouch for this one.
        let mut other = FIXTURE.bundle.clone();
        other.record.request_signer_ocsp = other.record.response_signer_ocsp.clone();
        let verdict = verify(&other);
        assert!(
            failures(&verdict).contains(&CHECK_REQUEST_SIGNATURE),
            "{verdict}"
        );
    }

    #[test]
    fn a_message_time_outside_the_evidence_fails() {
        // Long after the certificate expired and the OCSP response went stale.
        let mut late = FIXTURE.bundle.clone();
        late.record.request_in += 10 * 86_400_000;
        let verdict = verify(&late);
        assert_eq!(
            failures(&verdict),
            [CHECK_INCLUSION, CHECK_REQUEST_SIGNATURE]
        );
        let detail = &verdict.check(CHECK_REQUEST_SIGNATURE).expect("made").detail;
        assert!(detail.contains("not valid at the message time"), "{detail}");
    }

    #[test]
    fn each_tampered_part_fails_its_check() {
        let good = &FIXTURE.bundle;

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
        let last = token.head.tsa_token.len() - 5;
        token.head.tsa_token[last] ^= 1;
        assert_eq!(failures(&verify(&token)), [CHECK_TIMESTAMP]);

        let other = crate::log::tests::key();
        let verdict = verify_bundle(good, Some(other.public_key()), &FIXTURE.roots);
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
            let bytes = crate::write_bundle(&FIXTURE.bundle).expect("writes");
            let mut entries = entries(&bytes);
            let content = &mut entries[entry].1;
            let at = position.index(content.len());
            content[at] ^= 1 << bit;
            let borrowed: Vec<(&str, &[u8])> =
                entries.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
            match read_bundle(&raw_zip(&borrowed)) {
                Err(_) => {}
                Ok(bundle) => {
                    let verdict = verify(&bundle);
                    // The token's copy of the TSA certificate is not signed: spoiled, it
                    // is passed over for the approved certificate, and the stamp holds.
                    if entries[entry].0 == "timestamp.tsr" && verdict.is_valid() {
                        let certificate = &FIXTURE.roots.tsas[0].der;
                        let token = &FIXTURE.bundle.head.tsa_token;
                        let start = token
                            .windows(certificate.len())
                            .position(|window| window == certificate.as_slice())
                            .expect("the token carries the TSA certificate");
                        prop_assert!(
                            (start..start + certificate.len()).contains(&at),
                            "timestamp.tsr byte {}: {}", at, verdict
                        );
                        return Ok(());
                    }
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
