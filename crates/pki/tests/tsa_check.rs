//! Verifying RFC 3161 timestamp tokens as a relying party: tokens from our own TSA (bare
//! and inside a response, with and without certificates), tokens from `openssl ts -reply`,
//! and every way a token can be wrong.

use lienthong_crypto::{CryptoPolicy, HashAlgorithm, SoftwareKey, Suite};
use lienthong_pki::{
    CertificateAuthority, CertificateInfo, IssueRequest, PkiError, Profile, Serial,
    TimeStampAuthority, TimestampRequest, TsaRejection, VerifiedTimestamp, verify_timestamp_token,
};
use proptest::prelude::*;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const POLICY: &str = "1.3.6.1.4.1.99999.1.1";

struct Fixture {
    ca: CertificateAuthority,
    tsa: TimeStampAuthority,
}

fn fixture(suite: Suite) -> Fixture {
    let now = SystemTime::now();
    let (root_key, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256).expect("root key");
    let ca = CertificateAuthority::create_root(
        Arc::new(root_key),
        "Test Federation",
        "Test Root CA",
        &Serial::random().expect("serial"),
        now - Duration::from_secs(60),
        now + Duration::from_secs(86400),
        CryptoPolicy::vn(),
    )
    .expect("root");
    let (tsa_key, _) = SoftwareKey::generate(suite).expect("TSA key");
    let certificate = ca
        .issue(&IssueRequest {
            profile: Profile::TimeStamping,
            identity: None,
            common_name: "Test TSA",
            public_key: lienthong_crypto::Signer::public_key(&tsa_key),
            serial: &Serial::random().expect("serial"),
            not_before: now - Duration::from_secs(60),
            not_after: now + Duration::from_secs(3600),
            ocsp_url: None,
        })
        .expect("TSA certificate");
    let tsa = TimeStampAuthority::new(&certificate, Arc::new(tsa_key), POLICY).expect("TSA");
    Fixture { ca, tsa }
}

fn digest() -> Vec<u8> {
    HashAlgorithm::Sha256.digest(b"the message log root")
}

fn request(cert_req: bool) -> TimestampRequest {
    TimestampRequest::for_digest(HashAlgorithm::Sha256, &digest(), cert_req).expect("request")
}

fn verify(
    token: &[u8],
    tsa_certificate: Option<&CertificateInfo>,
    issuer: &CertificateInfo,
) -> Result<VerifiedTimestamp, PkiError> {
    verify_timestamp_token(
        token,
        (HashAlgorithm::Sha256, &digest()),
        tsa_certificate,
        issuer,
    )
}

fn unix(time: SystemTime) -> i64 {
    i64::try_from(
        time.duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs(),
    )
    .expect("i64")
}

#[test]
fn our_token_and_response_verify_and_state_gen_time_serial_and_policy() {
    for suite in [
        Suite::EcdsaP256Sha256,
        Suite::EcdsaP384Sha384,
        Suite::RsaPssSha256,
    ] {
        let f = fixture(suite);
        let now = SystemTime::now();
        let token = f.tsa.token_der(&request(true), 0x1234, now).expect("token");
        let response = f.tsa.grant(&request(true), 0x1234, now).expect("response");
        for input in [&token, &response] {
            let verified = verify(input, None, f.ca.certificate()).expect("verifies");
            assert_eq!(verified.gen_time_unix, unix(now), "{suite}");
            assert_eq!(verified.serial, vec![0x12, 0x34]);
            assert_eq!(verified.policy, POLICY);
            assert_eq!(verified.tsa_certificate.der, f.tsa.certificate().der);
        }
    }
}

#[test]
fn without_certificates_verifies_only_given_the_tsa_certificate() {
    let f = fixture(Suite::EcdsaP256Sha256);
    let token = f
        .tsa
        .token_der(&request(false), 7, SystemTime::now())
        .expect("token");
    let error = verify(&token, None, f.ca.certificate()).expect_err("no certificate");
    assert!(
        error.to_string().contains("no TSA certificate was given"),
        "{error}"
    );
    let verified = verify(&token, Some(f.tsa.certificate()), f.ca.certificate()).expect("verifies");
    assert_eq!(verified.serial, vec![7]);

    // A certificate other than the one the token names does not stand in for it.
    let other = fixture(Suite::EcdsaP256Sha256);
    let error = verify(&token, Some(other.tsa.certificate()), f.ca.certificate())
        .expect_err("wrong certificate");
    assert!(
        error.to_string().contains("signing-certificate-v2"),
        "{error}"
    );
}

#[test]
fn a_wrong_imprint_fails() {
    let f = fixture(Suite::EcdsaP256Sha256);
    let token = f
        .tsa
        .token_der(&request(true), 1, SystemTime::now())
        .expect("token");
    let other_digest = HashAlgorithm::Sha256.digest(b"another message");
    let error = verify_timestamp_token(
        &token,
        (HashAlgorithm::Sha256, &other_digest),
        None,
        f.ca.certificate(),
    )
    .expect_err("wrong digest");
    assert!(
        error.to_string().contains("not the expected digest"),
        "{error}"
    );
    let error = verify_timestamp_token(
        &token,
        (HashAlgorithm::Sha3_256, &digest()),
        None,
        f.ca.certificate(),
    )
    .expect_err("wrong algorithm");
    assert!(
        error.to_string().contains("message imprint uses"),
        "{error}"
    );
}

#[test]
fn a_token_from_another_tsa_or_ca_fails() {
    let ours = fixture(Suite::EcdsaP256Sha256);
    let theirs = fixture(Suite::EcdsaP256Sha256);
    let token = theirs
        .tsa
        .token_der(&request(true), 1, SystemTime::now())
        .expect("token");
    let error = verify(&token, None, ours.ca.certificate()).expect_err("foreign CA");
    assert!(error.to_string().contains("trusted issuer"), "{error}");

    // A certificate issued by our CA for another profile cannot sign tokens either.
    let (key, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256).expect("key");
    let now = SystemTime::now();
    let ocsp_certificate = ours
        .ca
        .issue(&IssueRequest {
            profile: Profile::OcspSigning,
            identity: None,
            common_name: "Test OCSP",
            public_key: lienthong_crypto::Signer::public_key(&key),
            serial: &Serial::random().expect("serial"),
            not_before: now - Duration::from_secs(60),
            not_after: now + Duration::from_secs(3600),
            ocsp_url: None,
        })
        .expect("OCSP certificate");
    let impostor = TimeStampAuthority::new(&ocsp_certificate, Arc::new(key), POLICY).expect("TSA");
    let token = impostor.token_der(&request(true), 1, now).expect("token");
    let error = verify(&token, None, ours.ca.certificate()).expect_err("not a TSA");
    assert!(error.to_string().contains("timeStamping"), "{error}");

    // A token dated outside the TSA certificate's validity.
    let late = ours
        .tsa
        .token_der(&request(true), 1, now + Duration::from_secs(7200))
        .expect("token");
    let error = verify(&late, None, ours.ca.certificate()).expect_err("expired");
    assert!(error.to_string().contains("validity"), "{error}");
}

#[test]
fn every_flipped_byte_of_the_token_fails() {
    let f = fixture(Suite::EcdsaP256Sha256);
    let token = f
        .tsa
        .token_der(&request(true), 99, SystemTime::now())
        .expect("token");
    verify(&token, None, f.ca.certificate()).expect("the original verifies");
    for position in 0..token.len() {
        for mask in [0x01, 0x80] {
            let mut mutated = token.clone();
            mutated[position] ^= mask;
            let result = verify(&mutated, None, f.ca.certificate());
            assert!(
                result.is_err(),
                "byte {position} ^ {mask:#04x} of {} still verifies",
                token.len()
            );
        }
    }
}

#[test]
fn garbage_and_rejections_fail_with_a_clear_message() {
    let f = fixture(Suite::EcdsaP256Sha256);
    let rejection = TsaRejection::BadAlg.to_response_der();
    let inputs: [&[u8]; 6] = [
        b"",
        b"\x30",
        b"\x30\x00",
        b"not DER at all",
        &[0x30, 0x03, 0x06, 0x01, 0x00],
        &rejection,
    ];
    for input in inputs {
        let error = verify(input, None, f.ca.certificate()).expect_err("garbage");
        assert!(error.to_string().contains("timestamp token: "), "{error}");
    }
    let error = verify(&rejection, None, f.ca.certificate()).expect_err("rejected");
    assert!(error.to_string().contains("refused"), "{error}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_tokens_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let f = shared_fixture();
        let mut token = f.1.clone();
        for (index, value) in edits {
            let position = index.index(token.len());
            token[position] = value;
        }
        if truncate {
            token.truncate(cut.index(token.len()));
        }
        // Must return, never panic; a replaced byte may coincide with the original.
        let _ = verify(&token, None, f.0.ca.certificate());
    }
}

/// One fixture and response for all property cases (key generation dominates otherwise).
fn shared_fixture() -> &'static (Fixture, Vec<u8>) {
    static SHARED: std::sync::OnceLock<(Fixture, Vec<u8>)> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let f = fixture(Suite::EcdsaP256Sha256);
        let response = f
            .tsa
            .grant(&request(true), 5, SystemTime::now())
            .expect("response");
        (f, response)
    })
}

#[test]
fn a_token_from_openssl_ts_reply_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path();
    let tsa_config = format!(
        "[ tsa ]\ndefault_tsa = tsa_config\n\n[ tsa_config ]\n\
         serial = {serial}\ncrypto_device = builtin\nsigner_digest = sha256\n\
         default_policy = {POLICY}\ndigests = sha256, sha384, sha512\naccuracy = secs:1\n\
         ordering = no\ntsa_name = no\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n",
        serial = path.join("serial").display()
    );
    std::fs::write(path.join("serial"), "2a\n").expect("serial file");
    std::fs::write(path.join("tsa.cnf"), tsa_config).expect("config");
    std::fs::write(
        path.join("ext.cnf"),
        "[ tsa ]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
         extendedKeyUsage = critical,timeStamping\n",
    )
    .expect("extensions");
    let digest_hex: String = digest().iter().map(|b| format!("{b:02x}")).collect();
    for args in [
        "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key",
        "req -x509 -new -key ca.key -subj /CN=OpenSSL-Root -days 2 -out ca.pem \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign",
        "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out tsa.key",
        "req -new -key tsa.key -subj /CN=OpenSSL-TSA -out tsa.csr",
        "x509 -req -in tsa.csr -CA ca.pem -CAkey ca.key -set_serial 7 -days 1 \
         -extfile ext.cnf -extensions tsa -out tsa.pem",
        &format!("ts -query -digest {digest_hex} -sha256 -cert -no_nonce -out with-cert.tsq"),
        &format!("ts -query -digest {digest_hex} -sha256 -no_nonce -out without-cert.tsq"),
        "ts -reply -config tsa.cnf -queryfile with-cert.tsq -signer tsa.pem -inkey tsa.key \
         -out with-cert.tsr",
        "ts -reply -config tsa.cnf -queryfile without-cert.tsq -signer tsa.pem -inkey tsa.key \
         -token_out -out without-cert.tst",
    ] {
        openssl(path, &args.split_whitespace().collect::<Vec<_>>());
    }
    let read = |name: &str| std::fs::read(path.join(name)).expect(name);
    let pem = |name: &str| {
        let der = lienthong_pki::parse_certificate_pem(&read(name)).expect("PEM");
        CertificateInfo::from_der(&der).expect("certificate")
    };
    let (root, tsa) = (pem("ca.pem"), pem("tsa.pem"));

    let verified = verify(&read("with-cert.tsr"), None, &root).expect("response verifies");
    assert_eq!(
        verified.serial,
        vec![0x2b],
        "openssl increments the serial file first"
    );
    assert_eq!(verified.policy, POLICY);
    assert_eq!(verified.tsa_certificate.der, tsa.der);
    assert!((verified.gen_time_unix - unix(SystemTime::now())).abs() < 600);

    let bare = read("without-cert.tst");
    assert!(verify(&bare, None, &root).is_err(), "no certificate in it");
    let verified = verify(&bare, Some(&tsa), &root).expect("token verifies");
    assert_eq!(verified.serial, vec![0x2c]);
    for position in 0..bare.len() {
        let mut mutated = bare.clone();
        mutated[position] ^= 0x01;
        assert!(
            verify(&mutated, Some(&tsa), &root).is_err(),
            "byte {position} of the OpenSSL token"
        );
    }

    let stranger = fixture(Suite::EcdsaP256Sha256);
    assert!(verify(&read("with-cert.tsr"), None, stranger.ca.certificate()).is_err());
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (this test needs the openssl command)");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}
