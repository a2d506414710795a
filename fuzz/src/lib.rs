//! The fuzzed entry points, one per parser of untrusted bytes, shared by the cargo-fuzz
//! targets (`fuzz_targets/*.rs`) and by the stable-toolchain smoke test
//! `crates/pki/tests/fuzz_smoke.rs`, which includes this file as a module.
//!
//! Each function must not panic on any input; where a parser also has an invariant that is
//! cheap to state (an identifier prints back as it was read), it is asserted here too.

use lienthong_crypto::{CryptoPolicy, HashAlgorithm, PublicKey, Signer, SoftwareKey, Suite};
use lienthong_model::{ClientId, GlobalGroupId, MemberId, ServerId, ServiceId, SubsystemId};
use lienthong_pki::{
    CertificateAuthority, CertificateInfo, CertificateState, IssueRequest, OcspResponder, Profile,
    RevocationReason, Serial, TimeStampAuthority,
};
use std::fmt::Display;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// `OcspResponder::respond` (and `requested_serials`) over arbitrary bytes.
pub fn ocsp_request(data: &[u8]) {
    let fixture = fixture();
    let serials = OcspResponder::requested_serials(data);
    // The state depends on the serial, so that every kind of SingleResponse is encoded,
    // including revocation times far outside GeneralizedTime's range.
    let reply = fixture
        .responder
        .respond(data, fixture.now, |serial| match serial.first() {
            Some(0x01) => CertificateState::Revoked {
                time: serial
                    .iter()
                    .take(8)
                    .fold(0i64, |time, b| time.wrapping_shl(8) | i64::from(*b)),
                reason: Some(RevocationReason::KeyCompromise),
            },
            Some(0x02) => CertificateState::Unknown,
            _ => CertificateState::Good,
        });
    assert!(!reply.der.is_empty(), "every request gets an OCSPResponse");
    if serials.is_none() {
        assert!(
            !reply.cacheable,
            "a malformed request's answer is never cached"
        );
    }
}

/// `TimeStampAuthority::parse_request` and `respond` over arbitrary bytes.
pub fn tsa_request(data: &[u8]) {
    let fixture = fixture();
    let parsed = fixture.tsa.parse_request(data);
    let reply = fixture.tsa.respond(data, fixture.now, || Some(7));
    assert!(!reply.der.is_empty(), "every request gets a TimeStampResp");
    assert_eq!(
        parsed.is_ok(),
        reply.serial.is_some(),
        "a token exactly for accepted requests"
    );
}

/// `verify_csr` under both policies.
pub fn csr(data: &[u8]) {
    for policy in [CryptoPolicy::vn(), CryptoPolicy::international()] {
        if let Ok(verified) = lienthong_pki::verify_csr(data, &policy) {
            let _ = verified.public_key.fingerprint();
        }
    }
}

/// `CertificateInfo::from_der`, `parse_certificate_pem` and what is then done with a certificate.
pub fn certificate(data: &[u8]) {
    let der = match lienthong_pki::parse_certificate_pem(data) {
        Ok(der) => der,
        Err(_) => data.to_vec(),
    };
    for input in [data, der.as_slice()] {
        if let Ok(info) = CertificateInfo::from_der(input) {
            let _ = (info.serial_hex(), info.subject(), info.sha256());
            let _ = info.verify_signed_by(&info.public_key);
            let _ = info.verify_signed_by(&fixture().ca.certificate().public_key);
        }
    }
}

/// `PublicKey::from_spki_der`, then a verification with every algorithm.
pub fn spki(data: &[u8]) {
    if let Ok(key) = PublicKey::from_spki_der(data) {
        let _ = (
            key.algorithm(),
            key.fingerprint(),
            key.subject_public_key_bytes().len(),
        );
        let _ = CryptoPolicy::vn().check_key(&key);
        for suite in Suite::ALL {
            let _ = key.verify_x509(suite.x509(), b"message", data);
        }
        let _ = key.verify_x509(
            lienthong_crypto::X509SignatureAlgorithm::RsaPkcs1(HashAlgorithm::Sha256),
            b"message",
            data,
        );
    }
}

/// Every identifier type from arbitrary UTF-8; what parses prints back exactly as it was.
pub fn identifiers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    round_trip::<MemberId>(text);
    round_trip::<SubsystemId>(text);
    round_trip::<ClientId>(text);
    round_trip::<ServerId>(text);
    round_trip::<ServiceId>(text);
    round_trip::<GlobalGroupId>(text);
}

fn round_trip<T>(text: &str)
where
    T: FromStr + Display + PartialEq + std::fmt::Debug,
    T::Err: Display,
{
    match text.parse::<T>() {
        Ok(id) => {
            let printed = id.to_string();
            assert_eq!(printed, text, "an identifier prints as it was read");
            assert_eq!(
                printed.parse::<T>().ok().as_ref(),
                Some(&id),
                "and reads back the same"
            );
        }
        Err(error) => {
            // The message is shown to operators; building it must not panic either.
            let _ = error.to_string();
        }
    }
}

/// A throwaway CA with its OCSP responder and TSA, made once per process.
#[derive(Debug)]
pub struct Fixture {
    pub ca: CertificateAuthority,
    pub responder: OcspResponder,
    pub tsa: TimeStampAuthority,
    pub now: SystemTime,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let now = SystemTime::now();
        let key = |suite| Arc::new(SoftwareKey::generate(suite).expect("generate a key").0);
        let ca = CertificateAuthority::create_root(
            key(Suite::EcdsaP256Sha256),
            "fuzz",
            "fuzz root",
            &Serial::random().expect("serial"),
            now - Duration::from_secs(60),
            now + Duration::from_secs(86_400),
            CryptoPolicy::vn(),
        )
        .expect("root CA");
        let service = |profile, signer: &Arc<SoftwareKey>| {
            ca.issue(&IssueRequest {
                profile,
                identity: None,
                common_name: profile.name(),
                public_key: signer.public_key(),
                serial: &Serial::random().expect("serial"),
                not_before: now - Duration::from_secs(60),
                not_after: now + Duration::from_secs(3_600),
                ocsp_url: None,
            })
            .expect("service certificate")
        };
        let ocsp_key = key(Suite::EcdsaP256Sha256);
        let tsa_key = key(Suite::EcdsaP256Sha256);
        let responder = OcspResponder::new(
            ca.certificate(),
            &service(Profile::OcspSigning, &ocsp_key),
            ocsp_key,
            Duration::from_secs(3_600),
        )
        .expect("OCSP responder");
        let tsa = TimeStampAuthority::new(
            &service(Profile::TimeStamping, &tsa_key),
            tsa_key,
            "1.3.6.1.4.1.57264.1.1",
        )
        .expect("TSA");
        Fixture {
            ca,
            responder,
            tsa,
            now,
        }
    })
}
