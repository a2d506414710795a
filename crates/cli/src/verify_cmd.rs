//! `lienthong verify`: check an evidence bundle offline, against the federation's anchor.

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lienthong_crypto::PublicKey;
use lienthong_ledger::{Outcome, TrustRoots, Verdict, read_bundle, verify_bundle};
use lienthong_model::conf::Anchor;
use lienthong_pki::CertificateInfo;
use std::path::{Path, PathBuf};

/// Check an evidence bundle offline: inclusion in the log, the log's signature, the
/// timestamp, and the request and response signatures at the time of the message.
///
/// Exits 0 only if every check passed; a check not made counts as not holding.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The evidence bundle (ASiC-E ZIP), a message-log archive, or a directory of a log's
    /// archives (checked in name order, each linked to the one before).
    bundle: PathBuf,
    /// The configuration anchor (JSON): the keys that sign the global configuration.
    /// It is the trust root of the whole check.
    #[arg(long)]
    anchor: PathBuf,
    /// The signed global configuration listing the approved CAs and TSAs. Required:
    /// bundles do not carry one yet.
    #[arg(long)]
    conf: PathBuf,
    /// The log's public key: SubjectPublicKeyInfo as PEM, DER or base64 text. Without it
    /// the tree head signature is not checked. (The gateway will publish it later.)
    #[arg(long)]
    log_key: Option<PathBuf>,
    /// The member's X25519 private key (PEM PKCS #8, as `openssl genpkey -algorithm X25519`
    /// writes it), to open bodies the log kept encrypted and check them against the record.
    #[arg(long)]
    body_key: Option<PathBuf>,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: VerifyArgs) -> anyhow::Result<()> {
    if args.bundle.is_dir() || crate::verify_archive::is_archive(&read(&args.bundle)?) {
        let anchor: Anchor = serde_json::from_slice(&read(&args.anchor)?)
            .with_context(|| format!("parse anchor {}", args.anchor.display()))?;
        let roots = trust_roots(&read(&args.conf)?, &anchor)
            .with_context(|| format!("verify configuration {}", args.conf.display()))?;
        let log_key = match &args.log_key {
            Some(path) => Some(
                parse_public_key(&read(path)?)
                    .with_context(|| format!("parse log key {}", path.display()))?,
            ),
            None => None,
        };
        return crate::verify_archive::run(&args.bundle, log_key.as_ref(), &roots, args.json);
    }
    let mut bundle = read_bundle(&read(&args.bundle)?)
        .with_context(|| format!("read bundle {}", args.bundle.display()))?;
    if let Some(path) = &args.body_key {
        let key = lienthong_crypto::BoxSecretKey::parse(&read(path)?)
            .with_context(|| format!("parse body key {}", path.display()))?;
        lienthong_ledger::open_bodies(&mut bundle, &key)
            .map_err(anyhow::Error::msg)
            .context("open the encrypted bodies")?;
    }
    let anchor: Anchor = serde_json::from_slice(&read(&args.anchor)?)
        .with_context(|| format!("parse anchor {}", args.anchor.display()))?;
    let roots = trust_roots(&read(&args.conf)?, &anchor)
        .with_context(|| format!("verify configuration {}", args.conf.display()))?;
    let log_key = match &args.log_key {
        Some(path) => Some(
            parse_public_key(&read(path)?)
                .with_context(|| format!("parse log key {}", path.display()))?,
        ),
        None => None,
    };
    let verdict = verify_bundle(&bundle, log_key.as_ref(), &roots);
    if args.json {
        let report = serde_json::json!({
            "valid": verdict.is_valid() && verdict.is_complete(),
            "checks": verdict.checks,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", human(&verdict));
    }
    let not_holding: Vec<&str> = verdict
        .checks
        .iter()
        .filter(|check| check.outcome != Outcome::Passed)
        .map(|check| check.name.as_str())
        .collect();
    anyhow::ensure!(
        not_holding.is_empty(),
        "the bundle does not verify: {} did not pass",
        not_holding.join(", ")
    );
    Ok(())
}

/// The CAs and TSAs of the signed configuration `envelope`, verified against `anchor`.
///
/// Expiry is ignored (the check runs as at the earliest possible time): evidence is
/// checked years after the configuration of its day expired, and the expiry only keeps
/// gateways from running on stale data. What matters is that the anchor's key signed it.
fn trust_roots(envelope: &[u8], anchor: &Anchor) -> anyhow::Result<TrustRoots> {
    let verified = lienthong_conf::verify(envelope, anchor, i64::MIN)?;
    let certificate = |name: &str, base64: &str| {
        STANDARD
            .decode(base64)
            .map_err(anyhow::Error::from)
            .and_then(|der| Ok(CertificateInfo::from_der(&der)?))
            .with_context(|| format!("parse the certificate of {name:?}"))
    };
    let conf = &verified.conf;
    Ok(TrustRoots {
        cas: conf
            .certificate_authorities
            .iter()
            .map(|ca| certificate(&ca.name, &ca.certificate))
            .collect::<anyhow::Result<_>>()?,
        tsas: conf
            .timestamp_authorities
            .iter()
            .map(|tsa| certificate(&tsa.name, &tsa.certificate))
            .collect::<anyhow::Result<_>>()?,
    })
}

/// A SubjectPublicKeyInfo from PEM, DER or base64 text.
fn parse_public_key(bytes: &[u8]) -> anyhow::Result<PublicKey> {
    let der = if bytes.first() == Some(&0x30) {
        bytes.to_vec()
    } else {
        let text = std::str::from_utf8(bytes).context("neither DER nor text")?;
        let body: String = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with("-----"))
            .collect();
        STANDARD.decode(body).context("not base64")?
    };
    Ok(PublicKey::from_spki_der(&der)?)
}

/// One line per check: PASS, FAIL or NOT CHECKED, the name and what was found.
pub(crate) fn human(verdict: &Verdict) -> String {
    let mut out = String::new();
    for check in &verdict.checks {
        let mark = match check.outcome {
            Outcome::Passed => "PASS",
            Outcome::Failed => "FAIL",
            Outcome::NotChecked => "NOT CHECKED",
        };
        out.push_str(&format!("{mark:<11} {}: {}\n", check.name, check.detail));
    }
    let summary = match (verdict.is_valid(), verdict.is_complete()) {
        (true, true) => "VALID: every check passed",
        (true, false) => "NOT VERIFIED: some checks were not made",
        (false, _) => "INVALID",
    };
    out.push_str(summary);
    out.push('\n');
    out
}

pub(crate) fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("read {}", path.display()))
}
