//! `lienthong bench ...`: measure on this machine, print, and record in BENCHMARKS.md.
//!
//! Each benchmark rewrites only its own section of BENCHMARKS.md (between
//! `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->`), with the date, the machine and
//! the exact command, so that re-running one never erases another.

use anyhow::Context as _;
use clap::Subcommand;
use lienthong_crypto::{CryptoPolicy, HashAlgorithm, Signer, SoftwareKey, Suite};
use lienthong_pki::{
    CertificateAuthority, CertificateState, IssueRequest, OcspResponder, Profile, Serial,
    TimeStampAuthority, TimestampRequest,
};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Signatures/s and verifications/s per suite, OCSP responses/s and TSA tokens/s
    /// (one core, in process).
    Trust {
        /// Seconds to run each measurement.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Rewrite this file's `trust` section with the results.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

pub(crate) async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Trust { seconds, write } => {
            let duration = Duration::from_secs_f64(seconds);
            let table = tokio::task::spawn_blocking(move || trust(duration))
                .await
                .context("run the benchmark")??;
            println!("{table}");
            if let Some(path) = write {
                let command = format!(
                    "lienthong bench trust --seconds {seconds} --write {}",
                    path.display()
                );
                write_section(&path, "trust", &with_header(&command, &table))?;
                println!("written to {}", path.display());
            }
            Ok(())
        }
    }
}

/// Run `operation` repeatedly for about `duration`; operations per second.
fn rate(
    duration: Duration,
    mut operation: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    // Warm up caches and lazy initialisation.
    for _ in 0..20 {
        operation()?;
    }
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < duration {
        for _ in 0..32 {
            operation()?;
        }
        count += 32;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

fn trust(duration: Duration) -> anyhow::Result<String> {
    let mut table = String::from("| operation | suite | per second (one core) |\n|---|---|---:|\n");
    let message = [0x5au8; 256];
    for suite in Suite::ALL {
        let (key, _) = SoftwareKey::generate(suite)?;
        let signature = key.sign(&message)?;
        let signs = rate(duration, || Ok(key.sign(&message).map(drop)?))?;
        let verifies = rate(duration, || {
            Ok(key.public_key().verify(&message, &signature)?)
        })?;
        writeln!(table, "| sign (256 B message) | {suite} | {signs:.0} |")?;
        writeln!(
            table,
            "| verify (256 B message) | {suite} | {verifies:.0} |"
        )?;
    }

    let now = SystemTime::now();
    let (root_key, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256)?;
    let ca = CertificateAuthority::create_root(
        Arc::new(root_key),
        "bench",
        "bench root",
        &Serial::random()?,
        now - Duration::from_secs(60),
        now + Duration::from_secs(86_400),
        CryptoPolicy::vn(),
    )?;
    let issue = |profile, key: &SoftwareKey| {
        ca.issue(&IssueRequest {
            profile,
            identity: None,
            common_name: "bench",
            public_key: key.public_key(),
            serial: &Serial::random()?,
            not_before: now,
            not_after: now + Duration::from_secs(3600),
            ocsp_url: None,
        })
    };
    let (ocsp_key, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256)?;
    let ocsp_certificate = issue(Profile::OcspSigning, &ocsp_key)?;
    let responder = OcspResponder::new(
        ca.certificate(),
        &ocsp_certificate,
        Arc::new(ocsp_key),
        Duration::from_secs(3600),
    )?;
    let request = lienthong_pki::ocsp_request(
        ca.certificate(),
        &[0x42; 16],
        HashAlgorithm::Sha1,
        Some(&[7; 16]),
    )?;
    let ocsp = rate(duration, || {
        let reply = responder.respond(&request, SystemTime::now(), |_| CertificateState::Good);
        anyhow::ensure!(reply.der.len() > 100, "OCSP responder failed");
        Ok(())
    })?;
    writeln!(
        table,
        "| OCSP response, signed per request (nonce) | ecdsa-p256-sha256 | {ocsp:.0} |"
    )?;

    let (tsa_key, _) = SoftwareKey::generate(Suite::EcdsaP256Sha256)?;
    let tsa_certificate = issue(Profile::TimeStamping, &tsa_key)?;
    let tsa =
        TimeStampAuthority::new(&tsa_certificate, Arc::new(tsa_key), "1.3.6.1.4.1.57264.1.1")?;
    let timestamp_request = TimestampRequest::for_digest(HashAlgorithm::Sha256, &[9; 32], true)?;
    let mut serial = 0u64;
    let tokens = rate(duration, || {
        serial += 1;
        tsa.grant(&timestamp_request, serial, SystemTime::now())
            .map(drop)?;
        Ok(())
    })?;
    writeln!(
        table,
        "| RFC 3161 token (certReq) | ecdsa-p256-sha256 | {tokens:.0} |"
    )?;
    Ok(table)
}

/// The date, machine and command above a table.
pub(crate) fn with_header(command: &str, body: &str) -> String {
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!(
        "Measured {date} on {cores} cores ({cpu}), release build.\n\nCommand: `{command}`\n\n{body}"
    )
}

/// Replace (or append) the section `name` of the Markdown file at `path`.
pub(crate) fn write_section(path: &Path, name: &str, content: &str) -> anyhow::Result<()> {
    let start = format!("<!-- bench:{name}:start -->");
    let end = format!("<!-- bench:{name}:end -->");
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let block = format!("{start}\n{content}\n{end}");
    let updated = match (existing.find(&start), existing.find(&end)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{block}{}", &existing[..a], &existing[b + end.len()..])
        }
        _ => format!("{}\n{block}\n", existing.trim_end()),
    };
    std::fs::write(path, updated).with_context(|| format!("write {}", path.display()))
}
