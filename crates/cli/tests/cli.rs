//! The `lienthong` binary as an operator runs it: `pki init`, `pki issue` from CSRs that
//! `openssl req` made, `pki revoke`, `key generate`, and the refusals an operator must be
//! able to understand (each message names the rule or the part that is wrong).

use std::process::{Command, Output, Stdio};
use tempfile::TempDir;

const PASSPHRASE: &str = "cli test passphrase";

#[test]
fn init_issue_and_revoke_with_openssl_csrs() {
    let work = initialised();
    let ec = openssl_csr(
        &work,
        "ec",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let rsa = openssl_csr(&work, "rsa", &["-newkey", "rsa:2048"]);
    for name in ["root-ca.pem", "ocsp.pem", "tsa.pem", "pki.db"] {
        assert!(
            work.path().join("pki").join(name).is_file(),
            "pki init wrote {name}"
        );
    }

    let auth = lienthong(
        &work,
        &[
            "pki",
            "issue",
            "--dir",
            "pki",
            "--csr",
            &ec,
            "--profile",
            "auth",
            "--id",
            "VN/GOV/000123/gw-1",
            "--out",
            "auth.pem",
        ],
    );
    assert_success(&auth);
    let sign = lienthong(
        &work,
        &[
            "pki",
            "issue",
            "--dir",
            "pki",
            "--csr",
            &rsa,
            "--profile",
            "sign",
            "--id",
            "VN/GOV/000123",
            "--out",
            "sign.pem",
        ],
    );
    assert_success(&sign);
    let verify = openssl(
        &work,
        &[
            "verify",
            "-CAfile",
            "pki/root-ca.pem",
            "auth.pem",
            "sign.pem",
        ],
    );
    assert_success(&verify);
    assert_eq!(text(&verify.stdout), "auth.pem: OK\nsign.pem: OK\n");
    let subject = openssl(&work, &["x509", "-in", "auth.pem", "-noout", "-subject"]);
    assert_eq!(
        text(&subject.stdout).trim_end(),
        "subject=O = VN, OU = GOV, CN = gw-1, serialNumber = VN/GOV/000123/gw-1"
    );

    // The serial the CLI reports is the certificate's, as openssl reads it.
    let serial = openssl(&work, &["x509", "-in", "auth.pem", "-noout", "-serial"]);
    assert_success(&serial);
    let serial = text(&serial.stdout)
        .trim_end()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    assert!(
        text(&auth.stdout).contains(&format!("serial {serial}")),
        "{}",
        text(&auth.stdout)
    );

    let revoke = lienthong(
        &work,
        &[
            "pki",
            "revoke",
            "--dir",
            "pki",
            "--cert",
            "auth.pem",
            "--reason",
            "keyCompromise",
        ],
    );
    assert_success(&revoke);
    assert_eq!(
        text(&revoke.stdout),
        format!("revoked certificate serial {serial}\n")
    );
    let again = lienthong(
        &work,
        &["pki", "revoke", "--dir", "pki", "--cert", "auth.pem"],
    );
    assert_success(&again);
    assert!(
        text(&again.stdout).contains("already revoked"),
        "{}",
        text(&again.stdout)
    );
    let bad_reason = lienthong(
        &work,
        &[
            "pki", "revoke", "--dir", "pki", "--cert", "sign.pem", "--reason", "bored",
        ],
    );
    assert_failure_naming(&bad_reason, "unknown reason \"bored\"");

    let list = lienthong(&work, &["pki", "list", "--dir", "pki"]);
    assert_success(&list);
    let listing = text(&list.stdout);
    let row = |serial_prefix: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(serial_prefix))
            .map(str::to_owned)
    };
    let auth_row = row(&serial).unwrap_or_else(|| panic!("auth certificate listed: {listing}"));
    assert!(
        auth_row.contains("\tauth\tVN/GOV/000123/gw-1\t") && auth_row.contains("(keyCompromise)"),
        "{auth_row}"
    );
    let sign_row = listing
        .lines()
        .find(|l| l.contains("\tsign\t"))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(sign_row.contains("\tgood\t"), "{sign_row}");

    let reinit = lienthong(
        &work,
        &["pki", "init", "--dir", "pki", "--dangerous-fast-kdf"],
    );
    assert_failure_naming(&reinit, "already initialised");
}

#[test]
fn policy_and_identifier_refusals_name_what_is_wrong() {
    let work = initialised();
    let rsa1024 = openssl_csr(&work, "rsa1024", &["-newkey", "rsa:1024"]);
    let ed25519 = openssl_csr(&work, "ed25519", &["-newkey", "ed25519"]);
    let ec = openssl_csr(
        &work,
        "ec",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let issue = |csr: &str, profile: &str, id: &str| {
        lienthong(
            &work,
            &[
                "pki",
                "issue",
                "--dir",
                "pki",
                "--csr",
                csr,
                "--profile",
                profile,
                "--id",
                id,
                "--out",
                "refused.pem",
            ],
        )
    };

    let small = issue(&rsa1024, "sign", "VN/GOV/000123");
    assert_failure_naming(&small, "2048");
    assert_failure_naming(&small, "RSA-1024");
    assert_failure_naming(&issue(&ed25519, "sign", "VN/GOV/000123"), "EdDSA");
    assert_failure_naming(&issue(&ec, "sign", "VN/GO V/1"), "member class");
    assert_failure_naming(
        &issue(&ec, "auth", "VN/GOV/000123"),
        "INSTANCE/CLASS/CODE/SERVERCODE",
    );
    assert!(
        !work.path().join("refused.pem").exists(),
        "no certificate is written on refusal"
    );
}

#[test]
fn init_without_a_passphrase_or_terminal_fails_clearly() {
    let work = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["pki", "init", "--dir", "pki", "--dangerous-fast-kdf"])
        .current_dir(work.path())
        .env_remove("LIENTHONG_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .expect("run lienthong");
    assert_failure_naming(
        &output,
        "no passphrase: set LIENTHONG_PASSPHRASE or run on a terminal",
    );
    assert!(!work.path().join("pki/root-ca.pem").exists());
}

#[test]
fn key_generate_writes_a_csr_that_openssl_and_the_ca_accept() {
    let work = initialised();
    for (suite, profile, id) in [
        ("ecdsa-p256-sha256", "auth", "VN/GOV/000123/gw-1"),
        ("rsa-pss-sha256", "sign", "VN/GOV/000123"),
    ] {
        let csr = format!("{suite}.csr");
        let generate = lienthong(
            &work,
            &[
                "key",
                "generate",
                "--keystore",
                "keys",
                "--name",
                suite,
                "--suite",
                suite,
                "--csr",
                &csr,
            ],
        );
        assert_success(&generate);
        assert!(work.path().join("keys").is_dir());
        let verify = openssl(&work, &["req", "-verify", "-in", &csr, "-noout"]);
        assert_success(&verify);
        assert!(
            text(&verify.stderr).contains("self-signature verify OK")
                || text(&verify.stdout).contains("verify OK"),
            "{suite}: {verify:?}"
        );
        let certificate = format!("{suite}.pem");
        let issue = lienthong(
            &work,
            &[
                "pki",
                "issue",
                "--dir",
                "pki",
                "--csr",
                &csr,
                "--profile",
                profile,
                "--id",
                id,
                "--out",
                &certificate,
            ],
        );
        assert_success(&issue);
        let chain = openssl(
            &work,
            &["verify", "-CAfile", "pki/root-ca.pem", &certificate],
        );
        assert_success(&chain);
        assert_eq!(text(&chain.stdout), format!("{certificate}: OK\n"));
    }
}

// ---- helpers ----

/// A scratch directory with a PKI made by `lienthong pki init` in `pki/`.
fn initialised() -> TempDir {
    let work = tempfile::tempdir().expect("temp dir");
    let init = lienthong(
        &work,
        &["pki", "init", "--dir", "pki", "--dangerous-fast-kdf"],
    );
    assert_success(&init);
    assert!(
        text(&init.stdout).starts_with("PKI initialised in pki\n"),
        "{}",
        text(&init.stdout)
    );
    work
}

fn lienthong(work: &TempDir, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(args)
        .current_dir(work.path())
        .env("LIENTHONG_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::null())
        .output()
        .expect("run lienthong")
}

fn openssl(work: &TempDir, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(work.path())
        .output()
        .expect("run openssl (is it installed?)")
}

/// A key and CSR made by `openssl req` with these key options; returns the CSR's file name.
fn openssl_csr(work: &TempDir, name: &str, key_options: &[&str]) -> String {
    let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
    let mut args = vec!["req", "-new", "-nodes", "-subj", "/CN=requested by openssl"];
    args.extend_from_slice(key_options);
    args.extend(["-keyout", key.as_str(), "-out", csr.as_str()]);
    assert_success(&openssl(work, &args));
    assert!(work.path().join(&csr).is_file());
    csr
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// The command failed and its error message (on stderr) contains `expected`.
fn assert_failure_naming(output: &Output, expected: &str) {
    assert!(
        !output.status.success(),
        "expected a failure, got success: {}",
        text(&output.stdout)
    );
    let stderr = text(&output.stderr);
    let message = stderr
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        message.contains(expected),
        "error message lacks {expected:?}:\n{stderr}"
    );
}
