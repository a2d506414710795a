//! The trust services against an independent peer: the real `openssl` command line checks
//! the certificates the CA issues, the RFC 3161 tokens the TSA grants and the OCSP responses
//! the responder signs, fetched over HTTP from a server started in-process on 127.0.0.1:0.
//!
//! Every check asserts on openssl's exit status *and* on what it prints, so a test fails
//! when openssl disagrees with us, not only when it crashes.

use lienthong_crypto::{KdfParams, Suite};
use lienthong_pki::{CertificateInfo, Profile, RevocationReason};
use lienthong_store::RevokeOutcome;
use lienthong_trust::server::{self, MAX_BODY, TrustServices};
use lienthong_trust::{Authority, InitOptions, IssueOptions};
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const PASSPHRASE: &[u8] = b"openssl peer test passphrase";
const ROOT: &str = "pki/root-ca.pem";
const TSA: &str = "pki/tsa.pem";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_verifies_issued_certificates_and_sees_exactly_the_profile_usages() {
    let federation = Federation::new(Suite::EcdsaP256Sha256).await;
    for key in [KeyType::EcP256, KeyType::Rsa(3072)] {
        let csr = federation.openssl_csr(key);
        let auth = federation
            .issue(&csr, Profile::Auth, "VN/GOV/000123/gw-1")
            .await;
        let sign = federation.issue(&csr, Profile::Sign, "VN/GOV/000123").await;
        let verify = federation.openssl(&["verify", "-CAfile", ROOT, &auth.file, &sign.file]);
        assert_success(&verify);
        assert_eq!(
            verify.stdout,
            format!("{}: OK\n{}: OK\n", auth.file, sign.file),
            "{key:?}"
        );
        for purpose in ["sslserver", "sslclient"] {
            let verify =
                federation.openssl(&["verify", "-purpose", purpose, "-CAfile", ROOT, &auth.file]);
            assert_success(&verify);
            assert_eq!(
                verify.stdout,
                format!("{}: OK\n", auth.file),
                "auth is fit for {purpose}"
            );
        }

        assert_eq!(
            federation.usages(&auth.file),
            vec![
                (
                    "X509v3 Key Usage".to_owned(),
                    true,
                    "Digital Signature".to_owned()
                ),
                (
                    "X509v3 Extended Key Usage".to_owned(),
                    false,
                    "TLS Web Server Authentication, TLS Web Client Authentication".to_owned()
                ),
            ],
            "auth profile, {key:?}"
        );
        assert_eq!(
            federation.usages(&sign.file),
            vec![(
                "X509v3 Key Usage".to_owned(),
                true,
                "Digital Signature, Non Repudiation".to_owned()
            )],
            "sign profile has no EKU, {key:?}"
        );
        let sign_text = federation.openssl(&["x509", "-in", &sign.file, "-noout", "-text"]);
        assert_success(&sign_text);
        assert!(
            sign_text.stdout.contains("X509v3 Key Usage"),
            "{}",
            sign_text.stdout
        );
        assert!(
            !sign_text.stdout.contains("Extended Key Usage"),
            "{}",
            sign_text.stdout
        );

        assert_eq!(
            federation.subject(&auth.file),
            "subject=O = VN, OU = GOV, CN = gw-1, serialNumber = VN/GOV/000123/gw-1"
        );
        assert_eq!(
            federation.subject(&sign.file),
            "subject=O = VN, OU = GOV, CN = 000123, serialNumber = VN/GOV/000123"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_verifies_timestamp_tokens_for_every_accepted_hash() {
    let federation = Federation::new(Suite::EcdsaP256Sha256).await;
    let server = Server::start(&federation.authority).await;
    federation.write("data.txt", b"a document to timestamp\n");
    let mut serials = HashSet::new();
    for (index, (hash, cert_req)) in [
        ("sha256", true),
        ("sha384", true),
        ("sha512", true),
        ("sha256", false),
    ]
    .into_iter()
    .enumerate()
    {
        let query = format!("q{index}.tsq");
        let reply = format!("r{index}.tsr");
        let flag = format!("-{hash}");
        let mut args = vec![
            "ts",
            "-query",
            "-data",
            "data.txt",
            flag.as_str(),
            "-out",
            query.as_str(),
        ];
        if cert_req {
            args.push("-cert");
        }
        assert_success(&federation.openssl(&args));
        federation.post_tsa(&server, &query, &reply).await;

        let verify = federation.openssl(&[
            "ts",
            "-verify",
            "-data",
            "data.txt",
            "-in",
            &reply,
            "-CAfile",
            ROOT,
            "-untrusted",
            TSA,
        ]);
        assert_success(&verify);
        assert!(
            verify.stdout.contains("Verification: OK"),
            "{hash} certReq={cert_req}: {verify:?}"
        );
        // With certReq the token carries the TSA certificate; without it, openssl must be
        // handed the certificate to find the signer.
        let without_tsa = federation.openssl(&[
            "ts", "-verify", "-data", "data.txt", "-in", &reply, "-CAfile", ROOT,
        ]);
        assert_eq!(without_tsa.status.success(), cert_req, "{without_tsa:?}");
        assert_eq!(
            without_tsa.stdout.contains("Verification: OK"),
            cert_req,
            "{without_tsa:?}"
        );

        let query_text = federation.openssl(&["ts", "-query", "-in", &query, "-text"]);
        let reply_text = federation.openssl(&["ts", "-reply", "-in", &reply, "-text"]);
        assert_success(&query_text);
        assert_success(&reply_text);
        assert!(
            reply_text.stdout.contains("Status: Granted."),
            "{}",
            reply_text.stdout
        );
        assert!(
            reply_text
                .stdout
                .contains(&format!("Hash Algorithm: {hash}\n")),
            "{}",
            reply_text.stdout
        );
        let nonce = field(&query_text.stdout, "Nonce").expect("openssl puts a nonce in the query");
        assert_eq!(
            field(&reply_text.stdout, "Nonce").as_deref(),
            Some(nonce.as_str()),
            "nonce echoed"
        );
        let serial = field(&reply_text.stdout, "Serial number").expect("token serial");
        assert!(serials.insert(serial.clone()), "serial {serial} repeated");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_serials_stay_unique_across_a_restart() {
    let federation = Federation::new(Suite::EcdsaP256Sha256).await;
    federation.write("data.txt", b"restart\n");
    assert_success(&federation.openssl(&[
        "ts", "-query", "-data", "data.txt", "-sha256", "-cert", "-out", "q.tsq",
    ]));
    let mut serials = Vec::new();
    for run in 0..3 {
        // A restart as a process sees it: reopen the directory and unlock the keys again.
        let authority = Authority::open(&federation.pki_dir())
            .await
            .expect("reopen the PKI directory");
        let server = Server::start(&authority).await;
        for request in 0..2 {
            let reply = format!("r{run}-{request}.tsr");
            federation.post_tsa(&server, "q.tsq", &reply).await;
            let verify = federation.openssl(&[
                "ts",
                "-verify",
                "-data",
                "data.txt",
                "-in",
                &reply,
                "-CAfile",
                ROOT,
                "-untrusted",
                TSA,
            ]);
            assert_success(&verify);
            assert!(verify.stdout.contains("Verification: OK"), "{verify:?}");
            let text = federation.openssl(&["ts", "-reply", "-in", &reply, "-text"]);
            assert_success(&text);
            serials.push(field(&text.stdout, "Serial number").expect("token serial"));
        }
        server.stop().await;
    }
    let unique: HashSet<_> = serials.iter().collect();
    assert_eq!(
        unique.len(),
        serials.len(),
        "serials repeated across restarts: {serials:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_sees_good_then_revoked_and_unknown_serials() {
    let federation = Federation::new(Suite::EcdsaP256Sha256).await;
    let server = Server::start(&federation.authority).await;
    let csr = federation.openssl_csr(KeyType::EcP256);
    let auth = federation
        .issue(&csr, Profile::Auth, "VN/GOV/000123/gw-1")
        .await;
    let url = format!("{}/ocsp", server.base);
    let ask = |extra: &[&str]| {
        let mut args = vec![
            "ocsp",
            "-issuer",
            ROOT,
            "-url",
            url.as_str(),
            "-CAfile",
            ROOT,
        ];
        args.extend_from_slice(extra);
        federation.openssl(&args)
    };

    // With a nonce (openssl's default): good, verified, and the nonce echoed (no warning).
    let good = ask(&["-cert", &auth.file]);
    assert_ocsp_verified(&good);
    assert!(
        good.stdout.starts_with(&format!("{}: good\n", auth.file)),
        "{good:?}"
    );
    assert!(
        !good.stderr.contains("WARNING") && !good.stdout.contains("WARNING"),
        "{good:?}"
    );
    assert!(!good.stderr.to_lowercase().contains("nonce"), "{good:?}");

    // Without a nonce: served from the pre-signed cache, byte for byte. ECDSA signatures
    // are randomised, so identical bytes cannot come from signing twice.
    for name in ["cached1.der", "cached2.der"] {
        let cached = ask(&["-cert", &auth.file, "-no_nonce", "-respout", name]);
        assert_ocsp_verified(&cached);
        assert!(
            cached.stdout.starts_with(&format!("{}: good\n", auth.file)),
            "{cached:?}"
        );
    }
    assert_eq!(
        federation.read("cached1.der"),
        federation.read("cached2.der"),
        "no-nonce responses differ"
    );
    for name in ["fresh1.der", "fresh2.der"] {
        assert_ocsp_verified(&ask(&["-cert", &auth.file, "-respout", name]));
    }
    assert_ne!(
        federation.read("fresh1.der"),
        federation.read("fresh2.der"),
        "nonce responses must be fresh"
    );

    let unknown = ask(&["-serial", "0x1234"]);
    assert_ocsp_verified(&unknown);
    assert!(
        unknown.stdout.starts_with("0x1234: unknown\n"),
        "{unknown:?}"
    );

    let outcome = federation
        .authority
        .revoke(
            &auth.info.serial_hex(),
            Some(RevocationReason::KeyCompromise),
            SystemTime::now(),
        )
        .await
        .expect("revoke");
    assert_eq!(outcome, RevokeOutcome::Revoked);
    // Both the fresh path and the (previously cached) no-nonce path must now say revoked.
    for extra in [&[][..], &["-no_nonce"][..]] {
        let mut args = vec!["-cert", auth.file.as_str()];
        args.extend_from_slice(extra);
        let revoked = ask(&args);
        assert_ocsp_verified(&revoked);
        assert!(
            revoked
                .stdout
                .starts_with(&format!("{}: revoked\n", auth.file)),
            "{revoked:?}"
        );
        assert!(
            revoked.stdout.contains("\tReason: keyCompromise\n"),
            "{revoked:?}"
        );
        assert!(
            revoked.stdout.contains("\tRevocation Time: "),
            "{revoked:?}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsp_get_with_a_url_encoded_request_is_answered() {
    let federation = Federation::new(Suite::EcdsaP256Sha256).await;
    let server = Server::start(&federation.authority).await;
    let csr = federation.openssl_csr(KeyType::EcP256);
    let sign = federation.issue(&csr, Profile::Sign, "VN/GOV/000123").await;
    let request = federation.openssl(&[
        "ocsp",
        "-issuer",
        ROOT,
        "-cert",
        &sign.file,
        "-no_nonce",
        "-reqout",
        "req.der",
    ]);
    assert_success(&request);
    let encoded = url_encode(&base64_encode(&federation.read("req.der")));
    let response = http()
        .get(format!("{}/ocsp/{encoded}", server.base))
        .send()
        .await
        .expect("GET /ocsp");
    assert_eq!(response.status(), 200);
    assert_eq!(content_type(&response), "application/ocsp-response");
    federation.write("get.der", &response.bytes().await.expect("body"));
    let check = federation.openssl(&[
        "ocsp",
        "-respin",
        "get.der",
        "-CAfile",
        ROOT,
        "-issuer",
        ROOT,
        "-cert",
        &sign.file,
        "-no_nonce",
    ]);
    assert_ocsp_verified(&check);
    assert!(
        check.stdout.starts_with(&format!("{}: good\n", sign.file)),
        "{check:?}"
    );
    server.stop().await;
}

/// RSA-PSS everywhere: the root, OCSP and TSA keys sign with RSASSA-PSS (SHA-256).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_pss_federation_is_accepted_by_openssl() {
    let federation = Federation::new(Suite::RsaPssSha256).await;
    let server = Server::start(&federation.authority).await;
    let root_text = federation.openssl(&["x509", "-in", ROOT, "-noout", "-text"]);
    assert_success(&root_text);
    assert!(
        root_text.stdout.contains("Signature Algorithm: rsassaPss"),
        "{}",
        root_text.stdout
    );
    let ec_csr = federation.openssl_csr(KeyType::EcP256);
    let rsa_csr = federation.openssl_csr(KeyType::Rsa(2048));
    let auth = federation
        .issue(&ec_csr, Profile::Auth, "VN/GOV/000123/gw-1")
        .await;
    let sign = federation
        .issue(&rsa_csr, Profile::Sign, "VN/GOV/000123")
        .await;
    let verify = federation.openssl(&[
        "verify",
        "-CAfile",
        ROOT,
        &auth.file,
        &sign.file,
        TSA,
        "pki/ocsp.pem",
    ]);
    assert_success(&verify);
    assert_eq!(
        verify.stdout,
        format!(
            "{}: OK\n{}: OK\n{TSA}: OK\npki/ocsp.pem: OK\n",
            auth.file, sign.file
        )
    );

    let ocsp_url = format!("{}/ocsp", server.base);
    let ocsp = federation.openssl(&[
        "ocsp", "-issuer", ROOT, "-cert", &sign.file, "-url", &ocsp_url, "-CAfile", ROOT,
    ]);
    assert_ocsp_verified(&ocsp);
    assert!(
        ocsp.stdout.starts_with(&format!("{}: good\n", sign.file)),
        "{ocsp:?}"
    );

    federation.write("data.txt", b"signed with RSA-PSS\n");
    assert_success(&federation.openssl(&[
        "ts", "-query", "-data", "data.txt", "-sha256", "-cert", "-out", "q.tsq",
    ]));
    federation.post_tsa(&server, "q.tsq", "r.tsr").await;
    let verify = federation.openssl(&[
        "ts",
        "-verify",
        "-data",
        "data.txt",
        "-in",
        "r.tsr",
        "-CAfile",
        ROOT,
        "-untrusted",
        TSA,
    ]);
    if !verify.stdout.contains("Verification: OK") {
        // `openssl ts -verify` checks the token through the PKCS #7 API, which verifies every
        // RSA signature as PKCS #1 v1.5 and so cannot verify RSASSA-PSS tokens at all
        // (openssl/openssl#7904, still open). Accept exactly that failure and nothing else,
        // and prove the token right with `openssl cms -verify`, which does support PSS.
        assert!(!verify.status.success(), "{verify:?}");
        assert!(
            verify.stderr.contains("RSA_padding_check_PKCS1_type_1")
                && verify.stderr.contains("PKCS7_signatureVerify"),
            "ts -verify failed for another reason than openssl#7904: {verify:?}"
        );
    }
    assert_success(&federation.openssl(&[
        "ts",
        "-reply",
        "-in",
        "r.tsr",
        "-token_out",
        "-out",
        "token.der",
    ]));
    let cms = federation.openssl(&[
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        "token.der",
        "-CAfile",
        ROOT,
        "-purpose",
        "timestampsign",
        "-binary",
        "-out",
        "tst-info.der",
    ]);
    assert_success(&cms);
    assert!(
        cms.stderr.contains("CMS Verification successful"),
        "{cms:?}"
    );
    // The signed content is the TSTInfo for our query: same imprint and nonce.
    let query_text = federation.openssl(&["ts", "-query", "-in", "q.tsq", "-text"]);
    let reply_text = federation.openssl(&["ts", "-reply", "-in", "r.tsr", "-text"]);
    assert!(
        reply_text.stdout.contains("Status: Granted."),
        "{}",
        reply_text.stdout
    );
    assert_eq!(imprint(&reply_text.stdout), imprint(&query_text.stdout));
    assert!(
        imprint(&query_text.stdout).is_some_and(|lines| lines.len() == 2),
        "{}",
        query_text.stdout
    );
    assert_eq!(
        field(&reply_text.stdout, "Nonce"),
        field(&query_text.stdout, "Nonce")
    );
    let tst_info = federation.read("tst-info.der");
    let token = federation.read("token.der");
    assert!(
        !tst_info.is_empty() && token.windows(tst_info.len()).any(|w| w == tst_info),
        "the CMS content is the token's TSTInfo"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_protocol_errors_and_oversized_bodies_413() {
    let federation = Federation::new(Suite::EcdsaP256Sha256).await;
    let server = Server::start(&federation.authority).await;
    federation.write("data.txt", b"bad input\n");
    assert_success(&federation.openssl(&[
        "ts", "-query", "-data", "data.txt", "-sha256", "-cert", "-out", "q.tsq",
    ]));
    let csr = federation.openssl_csr(KeyType::EcP256);
    let auth = federation
        .issue(&csr, Profile::Auth, "VN/GOV/000123/gw-1")
        .await;
    assert_success(&federation.openssl(&[
        "ocsp", "-issuer", ROOT, "-cert", &auth.file, "-reqout", "req.der",
    ]));
    let query = federation.read("q.tsq");
    let ocsp_request = federation.read("req.der");
    let garbage: &[u8] = b"\x30\x82\xff\xffthis is not DER at all";

    for (name, body) in [
        ("empty", &b""[..]),
        ("garbage", garbage),
        ("truncated", &query[..query.len() / 2]),
        ("truncated-by-one", &query[..query.len() - 1]),
    ] {
        let reply = format!("bad-{name}.tsr");
        federation.write(&format!("bad-{name}.tsq"), body);
        federation
            .post_tsa(&server, &format!("bad-{name}.tsq"), &reply)
            .await;
        let text = federation.openssl(&["ts", "-reply", "-in", &reply, "-text"]);
        assert_success(&text);
        assert!(
            text.stdout.contains("Status: Rejected."),
            "{name}: {}",
            text.stdout
        );
        // OpenSSL's wording of PKIFailureInfo badRequest.
        assert!(
            text.stdout
                .contains("Failure info: transaction not permitted or supported\n"),
            "{name}: {}",
            text.stdout
        );
    }

    assert_success(&federation.openssl(&[
        "ts", "-query", "-data", "data.txt", "-sha1", "-cert", "-out", "sha1.tsq",
    ]));
    federation.post_tsa(&server, "sha1.tsq", "sha1.tsr").await;
    let text = federation.openssl(&["ts", "-reply", "-in", "sha1.tsr", "-text"]);
    assert_success(&text);
    assert!(text.stdout.contains("Status: Rejected."), "{}", text.stdout);
    // OpenSSL's wording of PKIFailureInfo badAlg.
    assert!(
        text.stdout
            .contains("Failure info: unrecognized or unsupported algorithm identifier\n"),
        "{}",
        text.stdout
    );

    let ocsp_url = format!("{}/ocsp", server.base);
    for (name, body) in [
        ("garbage", garbage),
        ("truncated", &ocsp_request[..ocsp_request.len() / 2]),
        ("truncated-by-one", &ocsp_request[..ocsp_request.len() - 1]),
    ] {
        let response = http()
            .post(&ocsp_url)
            .header("content-type", "application/ocsp-request")
            .body(body.to_vec())
            .send()
            .await
            .expect("POST /ocsp");
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(content_type(&response), "application/ocsp-response");
        assert_malformed_request(&federation, name, &response.bytes().await.expect("body"));
    }
    let response = http()
        .get(format!(
            "{ocsp_url}/{}",
            url_encode(&base64_encode(garbage))
        ))
        .send()
        .await
        .expect("GET /ocsp");
    assert_eq!(response.status(), 200);
    assert_malformed_request(
        &federation,
        "get-garbage",
        &response.bytes().await.expect("body"),
    );

    let oversized = vec![0x30u8; MAX_BODY + 1];
    for (path, content_type) in [
        ("/ocsp", "application/ocsp-request"),
        ("/tsa", "application/timestamp-query"),
    ] {
        let response = http()
            .post(format!("{}{path}", server.base))
            .header("content-type", content_type)
            .body(oversized.clone())
            .send()
            .await
            .expect("POST oversized");
        assert_eq!(response.status(), 413, "{path}");
    }
    server.stop().await;
}

// ---- helpers ----

/// A PKI directory made with `Authority::init`, inside a scratch directory where openssl runs.
struct Federation {
    work: TempDir,
    authority: Authority,
}

/// A certificate issued in a test: its file (relative to the scratch directory) and contents.
struct Issued {
    file: String,
    info: CertificateInfo,
}

#[derive(Debug, Clone, Copy)]
enum KeyType {
    EcP256,
    Rsa(u32),
}

impl Federation {
    async fn new(suite: Suite) -> Self {
        let work = tempfile::tempdir().expect("temp dir");
        let options = InitOptions {
            suite,
            kdf: KdfParams::DANGEROUS_FAST_FOR_TESTS,
            ..InitOptions::default()
        };
        let authority = Authority::init(&work.path().join("pki"), &options, PASSPHRASE)
            .await
            .expect("initialise the PKI");
        Self { work, authority }
    }

    fn pki_dir(&self) -> PathBuf {
        self.work.path().join("pki")
    }

    /// A key and CSR made by `openssl req` (the subject is ignored by the CA).
    fn openssl_csr(&self, key: KeyType) -> String {
        let (name, key_options): (String, Vec<String>) = match key {
            KeyType::EcP256 => (
                "ec-p256".into(),
                vec![
                    "-newkey".into(),
                    "ec".into(),
                    "-pkeyopt".into(),
                    "ec_paramgen_curve:P-256".into(),
                ],
            ),
            KeyType::Rsa(bits) => (
                format!("rsa-{bits}"),
                vec!["-newkey".into(), format!("rsa:{bits}")],
            ),
        };
        let (key_file, csr_file) = (format!("{name}.key"), format!("{name}.csr"));
        let mut args = vec![
            "req",
            "-new",
            "-nodes",
            "-subj",
            "/CN=requested by openssl/O=ignored",
        ];
        args.extend(key_options.iter().map(String::as_str));
        args.extend(["-keyout", key_file.as_str(), "-out", csr_file.as_str()]);
        assert_success(&self.openssl(&args));
        csr_file
    }

    async fn issue(&self, csr: &str, profile: Profile, id: &str) -> Issued {
        let ca = self.authority.unlock_ca(PASSPHRASE).expect("unlock the CA");
        let info = self
            .authority
            .issue(&ca, &self.read(csr), profile, id, &IssueOptions::default())
            .await
            .expect("issue");
        let file = format!("{}-{}.pem", profile.name(), csr.trim_end_matches(".csr"));
        self.write(
            &file,
            lienthong_pki::pem_encode_certificate(&info.der).as_bytes(),
        );
        Issued { file, info }
    }

    /// Key usage and extended key usage as openssl prints them: (name, critical, value).
    fn usages(&self, certificate: &str) -> Vec<(String, bool, String)> {
        let out = self.openssl(&[
            "x509",
            "-in",
            certificate,
            "-noout",
            "-ext",
            "keyUsage,extendedKeyUsage",
        ]);
        assert_success(&out);
        let mut usages: Vec<(String, bool, String)> = Vec::new();
        for line in out.stdout.lines() {
            if let Some(value) = line.strip_prefix("    ") {
                let last = usages
                    .last_mut()
                    .unwrap_or_else(|| panic!("value before a name: {}", out.stdout));
                last.2.push_str(value.trim());
            } else if let Some((name, rest)) = line.split_once(':') {
                usages.push((name.to_owned(), rest.trim() == "critical", String::new()));
            } else {
                panic!("unexpected line {line:?} in {}", out.stdout);
            }
        }
        usages
    }

    fn subject(&self, certificate: &str) -> String {
        let out = self.openssl(&["x509", "-in", certificate, "-noout", "-subject"]);
        assert_success(&out);
        out.stdout.trim_end().to_owned()
    }

    /// POST a timestamp query file to /tsa and save the reply.
    async fn post_tsa(&self, server: &Server, query: &str, reply: &str) {
        let response = http()
            .post(format!("{}/tsa", server.base))
            .header("content-type", "application/timestamp-query")
            .body(self.read(query))
            .send()
            .await
            .expect("POST /tsa");
        assert_eq!(response.status(), 200, "{query}");
        assert_eq!(content_type(&response), "application/timestamp-reply");
        self.write(reply, &response.bytes().await.expect("body"));
    }

    fn openssl(&self, args: &[&str]) -> Run {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.work.path())
            .output()
            .expect("run openssl (is it installed?)");
        Run::from(output, args)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.work.path().join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.work.path().join(name), bytes)
            .unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
}

/// The trust server, started in-process on an ephemeral port.
struct Server {
    base: String,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(authority: &Authority) -> Self {
        let services = TrustServices::load(authority, PASSPHRASE)
            .await
            .expect("load the trust services");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("local address");
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(listener, Arc::new(services), async move {
            let _ = stop.await;
        }));
        Self {
            base: format!("http://{address}"),
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops within 10 s of shutdown")
            .expect("server task")
            .expect("server ran without IO error");
    }
}

/// One openssl run, with its output as text.
#[derive(Debug)]
struct Run {
    command: String,
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(output: Output, args: &[&str]) -> Self {
        Self {
            command: format!("openssl {}", args.join(" ")),
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

fn assert_success(run: &Run) {
    assert!(
        run.status.success(),
        "`{}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
        run.command,
        run.status,
        run.stdout,
        run.stderr
    );
}

/// openssl ocsp succeeded and verified the response's signature and chain.
fn assert_ocsp_verified(run: &Run) {
    assert_success(run);
    assert!(run.stderr.contains("Response verify OK"), "{run:?}");
}

fn assert_malformed_request(federation: &Federation, name: &str, der: &[u8]) {
    let file = format!("malformed-{name}.der");
    federation.write(&file, der);
    let text = federation.openssl(&["ocsp", "-respin", &file, "-resp_text"]);
    // openssl exits 1 on any unsuccessful responseStatus, after printing it.
    assert_eq!(text.status.code(), Some(1), "{name}: {text:?}");
    assert!(
        text.stdout
            .contains("Responder Error: malformedrequest (1)"),
        "{name}: {text:?}"
    );
}

/// The value of `Name: value` in openssl's text output.
fn field(text: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}: ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(str::to_owned)
}

/// The hex dump lines after `Message data:` in `openssl ts -text` output.
fn imprint(text: &str) -> Option<Vec<String>> {
    let mut lines = text.lines().skip_while(|line| *line != "Message data:");
    lines.next()?;
    Some(
        lines
            .take_while(|line| line.starts_with("    "))
            .map(str::to_owned)
            .collect(),
    )
}

fn http() -> reqwest::Client {
    // reqwest is built without a default crypto provider; plain HTTP needs none, but the
    // client builder insists on one being installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Percent-encode everything outside RFC 3986's unreserved set (so `+`, `/`, `=` too).
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[test]
fn helpers_parse_openssl_text() {
    let text = "Version: 1\nMessage data:\n    0000 - 58 91\n    0010 - 1b b4\nPolicy OID: unspecified\nNonce: 0xBA86\n";
    assert_eq!(field(text, "Nonce").as_deref(), Some("0xBA86"));
    assert_eq!(field(text, "Serial number"), None);
    assert_eq!(imprint(text).map(|lines| lines.len()), Some(2));
    assert_eq!(url_encode("a+b/c="), "a%2Bb%2Fc%3D");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_the_store_and_both_signing_certificates() {
    let federation = Federation::new(Suite::EcdsaP256Sha256).await;
    let server = Server::start(&federation.authority).await;
    let response = http()
        .get(format!("{}/health", server.base))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(response.status().as_u16(), 200);
    let report: serde_json::Value = response.json().await.expect("json");
    assert_eq!(report["status"], "ok", "{report}");
    for check in ["store", "ocsp_certificate", "tsa_certificate"] {
        assert_eq!(report["checks"][check]["ok"], true, "{check}: {report}");
    }
    let live = http()
        .get(format!("{}/live", server.base))
        .send()
        .await
        .expect("GET /live");
    assert_eq!(live.status().as_u16(), 200);
    server.stop().await;
}
