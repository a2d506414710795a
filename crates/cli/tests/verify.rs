//! `lienthong verify` on evidence bundles built in-process with genuine keys, certificates,
//! OCSP responses, timestamp tokens and a signed global configuration.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lienthong_crypto::{CryptoPolicy, HashAlgorithm, Signer, SoftwareKey, Suite, sign_batch};
use lienthong_ledger::{
    BodyEvidence, Bundle, LogRecord, MerkleLog, Side, TimestampedHead, TreeHead, sign_head,
    write_bundle,
};
use lienthong_model::conf::{ApprovedCa, ApprovedTsa, CONF_FORMAT, FederationPolicy, GlobalConf};
use lienthong_pki::{
    CertificateAuthority, CertificateInfo, CertificateState, FederationIdentity, IssueRequest,
    OcspResponder, Profile, Serial, TimeStampAuthority, TimestampRequest, ocsp_request,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Files {
    _dir: tempfile::TempDir,
    anchor: PathBuf,
    conf: PathBuf,
    log_key: PathBuf,
    dir: PathBuf,
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

fn key() -> SoftwareKey {
    SoftwareKey::generate(Suite::EcdsaP256Sha256)
        .expect("key")
        .0
}

/// A bundle of a one-record log, and the anchor, configuration and log key to check it.
fn fixture() -> (Bundle, Files) {
    let now = SystemTime::now();
    let ca = CertificateAuthority::create_root(
        Arc::new(key()),
        "Test Federation",
        "Test Root CA",
        &Serial::random().expect("serial"),
        now - Duration::from_secs(60),
        now + Duration::from_secs(86_400),
        CryptoPolicy::vn(),
    )
    .expect("root");
    let ocsp_key = key();
    let ocsp_certificate = issue(&ca, Profile::OcspSigning, None, &ocsp_key, now);
    let responder = OcspResponder::new(
        ca.certificate(),
        &ocsp_certificate,
        Arc::new(ocsp_key),
        Duration::from_secs(3600),
    )
    .expect("responder");
    let signer_key = key();
    let identity = FederationIdentity::Member("VN/GOV/000001".parse().expect("member"));
    let signer = issue(&ca, Profile::Sign, Some(identity), &signer_key, now);
    let request = ocsp_request(ca.certificate(), &signer.serial, HashAlgorithm::Sha1, None)
        .expect("OCSP request");
    let ocsp = responder
        .respond(&request, now, |_| CertificateState::Good)
        .der;

    let description = b"request 1\nGET /persons/1\n".to_vec();
    let digest: [u8; 32] = HashAlgorithm::Sha256
        .digest(&description)
        .try_into()
        .expect("32 bytes");
    let signature = sign_batch(&signer_key, &[digest]).expect("signs")[0].to_text();
    let request_in = i64::try_from(
        now.duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("i64")
        + 1000;
    let record = LogRecord {
        message_id: "msg-1".into(),
        side: Side::Client,
        client: "VN/GOV/000001/portal".into(),
        service: "VN/GOV/000002/registry/getPerson/v1".into(),
        request_in,
        request_out: None,
        response_in: None,
        response_out: None,
        request_description: description,
        response_description: None,
        request_signature: signature,
        response_signature: None,
        request_signer_certificate: signer.der.clone(),
        response_signer_certificate: None,
        request_signer_ocsp: Some(ocsp),
        response_signer_ocsp: None,
        request_body_sha256: [1; 32],
        response_body_sha256: None,
        status: 502,
        body: BodyEvidence::DigestOnly,
    };
    let log = MerkleLog::from_leaves([record.leaf_hash()]);
    let log_key = SoftwareKey::generate(Suite::Ed25519).expect("key").0;
    let head = TreeHead {
        log_id: "gw-1".into(),
        size: 1,
        root: log.root(),
        time_ms: request_in + 1000,
    };
    let signed = sign_head(head, &log_key).expect("signs");
    let tsa_key = key();
    let tsa_certificate = issue(&ca, Profile::TimeStamping, None, &tsa_key, now);
    let tsa = TimeStampAuthority::new(&tsa_certificate, Arc::new(tsa_key), "1.3.6.1.4.1.99999.1")
        .expect("TSA");
    let stamp =
        TimestampRequest::for_digest(HashAlgorithm::Sha256, &signed.timestamp_imprint(), true)
            .expect("request");
    let tsa_token = tsa.token_der(&stamp, 1, now).expect("token");
    let bundle = Bundle::from_log(&log, record, 0, TimestampedHead { signed, tsa_token })
        .expect("in the log");

    // The configuration expired long ago: the verifier must not care.
    let conf = GlobalConf {
        format: CONF_FORMAT.into(),
        instance: "VN".into(),
        version: 1,
        generated_at: 0,
        expires_at: 1,
        policy: FederationPolicy::default(),
        members: Vec::new(),
        gateways: Vec::new(),
        global_groups: Vec::new(),
        certificate_authorities: vec![ApprovedCa {
            name: "Test Root CA".into(),
            certificate: STANDARD.encode(&ca.certificate().der),
            ocsp_urls: Vec::new(),
        }],
        timestamp_authorities: vec![ApprovedTsa {
            name: "Test TSA".into(),
            url: "http://127.0.0.1:1/tsa".into(),
            certificate: STANDARD.encode(&tsa_certificate.der),
        }],
    };
    let conf_key = SoftwareKey::generate(Suite::Ed25519).expect("key").0;
    let envelope = lienthong_conf::sign(&conf, &[&conf_key as &dyn Signer]).expect("signs");
    let anchor = lienthong_conf::make_anchor("VN", Vec::new(), &[conf_key.public_key()]);

    let dir = tempfile::tempdir().expect("temporary directory");
    let path = |name: &str| dir.path().join(name);
    std::fs::write(
        path("anchor.json"),
        serde_json::to_vec(&anchor).expect("JSON"),
    )
    .expect("write");
    std::fs::write(path("conf.json"), envelope).expect("write");
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(log_key.public_key().spki_der())
    );
    std::fs::write(path("log-key.pem"), pem).expect("write");
    let files = Files {
        anchor: path("anchor.json"),
        conf: path("conf.json"),
        log_key: path("log-key.pem"),
        dir: dir.path().to_path_buf(),
        _dir: dir,
    };
    (bundle, files)
}

fn run(files: &Files, bundle: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .arg("verify")
        .arg(bundle)
        .arg("--anchor")
        .arg(&files.anchor)
        .arg("--conf")
        .arg(&files.conf)
        .args(extra)
        .output()
        .expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn verify_accepts_a_genuine_bundle_and_names_a_tampered_check() {
    let (bundle, files) = fixture();
    let good = files.dir.join("good.asice");
    std::fs::write(&good, write_bundle(&bundle).expect("writes")).expect("write");
    let log_key = files.log_key.to_str().expect("UTF-8 path");

    let output = run(&files, &good, &["--log-key", log_key]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains("PASS        request-signature: signed by"),
        "{stdout}"
    );
    assert!(stdout.contains("VALID: every check passed"), "{stdout}");

    let output = run(&files, &good, &["--log-key", log_key, "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["valid"], true);
    assert_eq!(report["checks"].as_array().map(Vec::len), Some(4));

    // Without the log key the head signature is not checked: not a pass.
    let output = run(&files, &good, &[]);
    assert!(!output.status.success());
    assert!(
        text(&output.stdout).contains("NOT CHECKED tree-head-signature"),
        "{}",
        text(&output.stdout)
    );

    let mut tampered = bundle.clone();
    tampered.record.request_description[0] ^= 1;
    let bad = files.dir.join("bad.asice");
    std::fs::write(&bad, write_bundle(&tampered).expect("writes")).expect("write");
    let output = run(&files, &bad, &["--log-key", log_key]);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stdout.contains("FAIL        request-signature: "),
        "{stdout}"
    );
    assert!(stdout.contains("INVALID"), "{stdout}");
    assert!(
        stderr.contains("inclusion, request-signature did not pass"),
        "{stderr}"
    );
}

#[test]
fn verify_explains_unreadable_files() {
    let (_, files) = fixture();
    let missing = files.dir.join("missing.asice");
    let output = run(&files, &missing, &[]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("read ") && stderr.contains("missing.asice"),
        "{stderr}"
    );

    let garbage = files.dir.join("garbage.asice");
    std::fs::write(&garbage, b"not a zip").expect("write");
    let output = run(&files, &garbage, &[]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("read bundle"),
        "{}",
        text(&output.stderr)
    );
}
