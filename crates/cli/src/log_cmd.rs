//! `lienthong log ...`: the message log's evidence.

use anyhow::{Context as _, bail};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(crate) enum LogCommand {
    /// Check a gateway's whole message log in its store: every record against the tree,
    /// every signed head, consistency between successive heads. Names the first record
    /// that does not match; exit 0 only if all holds.
    Audit {
        /// The gateway's configuration file (for its store, log id and auth certificate).
        #[arg(long)]
        config: PathBuf,
    },
    /// Archive the timestamped records not yet archived into the gateway's
    /// `log_archive_dir` (what the gateway does every `log_archive_interval_seconds`), then
    /// purge from the database the archived records older than `log_retention_days`.
    Archive {
        /// The gateway's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Only write archives; purge nothing.
        #[arg(long)]
        no_purge: bool,
    },
    /// Fetch the evidence bundle of one message from a gateway's admin API, to check
    /// offline with `lienthong verify`.
    Export {
        /// The gateway's admin base URL.
        #[arg(long, env = "LIENTHONG_GATEWAY_ADMIN_URL")]
        admin_url: String,
        /// Admin bearer token.
        #[arg(long, env = "LIENTHONG_TOKEN", hide_env_values = true)]
        token: String,
        /// The message id (the exchange's X-Road-Id).
        #[arg(long)]
        message_id: String,
        /// Where to write the bundle.
        #[arg(long)]
        out: PathBuf,
    },
}

pub(crate) async fn run(command: LogCommand) -> anyhow::Result<()> {
    match command {
        LogCommand::Audit { config } => {
            let config =
                lienthong_gateway::config::Config::load(&config).map_err(anyhow::Error::msg)?;
            let pem = std::fs::read(&config.auth_certificate)
                .with_context(|| format!("read {}", config.auth_certificate.display()))?;
            let certificate = lienthong_pki::CertificateInfo::from_der(
                &lienthong_pki::parse_certificate_pem(&pem)?,
            )?;
            let store = lienthong_store::Store::open(&config.database_url).await?;
            let log_id = config.server_id.to_string();
            match lienthong_gateway::audit_stored_log(&store, &log_id, &certificate.public_key)
                .await
            {
                Ok(summary) => {
                    println!(
                        "message log {log_id}: OK — {} records, {} signed tree heads ({} timestamped), consistent",
                        summary.records, summary.heads, summary.timestamped
                    );
                    Ok(())
                }
                Err(failure) => bail!("message log {log_id} does not verify: {failure}"),
            }
        }
        LogCommand::Archive { config, no_purge } => {
            let config =
                lienthong_gateway::config::Config::load(&config).map_err(anyhow::Error::msg)?;
            let pem = std::fs::read(&config.auth_certificate)
                .with_context(|| format!("read {}", config.auth_certificate.display()))?;
            let der = lienthong_pki::parse_certificate_pem(&pem)?;
            let store = lienthong_store::Store::open(&config.database_url).await?;
            let log_id = config.server_id.to_string();
            let dir = &config.log_archive_dir;
            let written = lienthong_gateway::archive::write_archives(
                &store,
                &log_id,
                dir,
                &[("log-key".to_owned(), der)],
            )
            .await
            .map_err(anyhow::Error::msg)?;
            for archive in &written {
                println!(
                    "archive {} (records {}..{}) written to {}",
                    archive.sequence,
                    archive.first,
                    archive.end,
                    dir.join(&archive.file_name).display()
                );
            }
            if written.is_empty() {
                println!("no new timestamped records to archive");
            }
            if let (Some(retention), false) = (config.log_retention, no_purge) {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_secs();
                let cutoff = i64::try_from(now.saturating_sub(retention.as_secs()))?;
                let purged =
                    lienthong_gateway::archive::purge_archived(&store, &log_id, dir, cutoff)
                        .await
                        .map_err(anyhow::Error::msg)?;
                println!("{purged} archived records older than the retention period purged");
            }
            Ok(())
        }
        LogCommand::Export {
            admin_url,
            token,
            message_id,
            out,
        } => {
            let encoded: String = message_id
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            let url = format!(
                "{}/api/v1/log/bundles/{encoded}",
                admin_url.trim_end_matches('/')
            );
            let response = reqwest::Client::new()
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .with_context(|| format!("call {url}"))?;
            let status = response.status();
            let body = response.bytes().await.context("read the answer")?;
            if !status.is_success() {
                bail!(
                    "the gateway answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            std::fs::write(&out, &body).with_context(|| format!("write {}", out.display()))?;
            println!(
                "evidence for message {message_id} written to {} ({} bytes)",
                out.display(),
                body.len()
            );
            Ok(())
        }
    }
}
