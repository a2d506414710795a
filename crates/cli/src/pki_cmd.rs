//! `lienthong pki ...`: the federation's certificate authority and trust services.

use crate::passphrase;
use anyhow::{Context as _, bail};
use clap::Subcommand;
use lienthong_crypto::{CryptoPolicy, KdfParams, Suite};
use lienthong_pki::{Profile, RevocationReason};
use lienthong_store::RevokeOutcome;
use lienthong_trust::server::TrustServices;
use lienthong_trust::{Authority, InitOptions, IssueOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(Debug, Subcommand)]
pub(crate) enum PkiCommand {
    /// Create the root CA, OCSP-signing and TSA keys and certificates in DIR.
    ///
    /// Writes DIR/root-ca.pem, DIR/ocsp.pem, DIR/tsa.pem, the encrypted keys under
    /// DIR/keys/ and the CA's store DIR/pki.db. The passphrase comes from
    /// LIENTHONG_PASSPHRASE or a prompt.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Organisation name in the CA certificates.
        #[arg(long, default_value = "lienthong federation")]
        organisation: String,
        /// Suite of the CA, OCSP and TSA keys.
        #[arg(long, default_value = "ecdsa-p256-sha256")]
        suite: Suite,
        /// Crypto policy enforced on every CSR: `vn` or `international`.
        #[arg(long, default_value = "vn")]
        policy: String,
        /// OCSP URL to write into issued certificates (AuthorityInfoAccess).
        #[arg(long)]
        ocsp_url: Option<String>,
        /// TSA policy OID.
        #[arg(long, default_value = "1.3.6.1.4.1.57264.1.1")]
        tsa_policy: String,
        /// Root CA validity in days.
        #[arg(long, default_value_t = 7300)]
        root_days: u64,
        /// Validity of OCSP responses in seconds (nextUpdate - thisUpdate).
        #[arg(long, default_value_t = 3600)]
        ocsp_validity_seconds: u64,
        /// DANGEROUS: encrypt the keys with a cheap KDF. Only for throwaway test federations.
        #[arg(long)]
        dangerous_fast_kdf: bool,
        /// Keep the CA's state in PostgreSQL (postgres://...) instead of DIR/pki.db.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Issue a certificate from a PKCS #10 CSR.
    ///
    /// The subject is built from --id (INSTANCE/CLASS/CODE for `sign`,
    /// INSTANCE/CLASS/CODE/SERVERCODE for `auth`); only the CSR's key is used.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// The CSR (PEM or DER).
        #[arg(long)]
        csr: PathBuf,
        /// `auth` (gateway TLS) or `sign` (member signatures).
        #[arg(long, value_parser = ["auth", "sign"])]
        profile: String,
        /// The federation identifier to certify.
        #[arg(long)]
        id: String,
        /// Where to write the certificate (PEM).
        #[arg(long)]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u64,
    },
    /// Revoke a certificate; the OCSP responder reports it revoked from then on.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        /// The certificate (PEM or DER) to revoke.
        #[arg(long, conflicts_with = "serial", required_unless_present = "serial")]
        cert: Option<PathBuf>,
        /// Or its serial number in hex.
        #[arg(long)]
        serial: Option<String>,
        /// RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, certificateHold, privilegeWithdrawn.
        #[arg(long)]
        reason: Option<String>,
    },
    /// List issued certificates and their status.
    List {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Serve OCSP (POST /ocsp, GET /ocsp/{base64}) and the TSA (POST /tsa).
    Serve {
        #[arg(long)]
        dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8900")]
        listen: SocketAddr,
    },
}

pub(crate) async fn run(command: PkiCommand) -> anyhow::Result<()> {
    match command {
        PkiCommand::Init {
            dir,
            organisation,
            suite,
            policy,
            ocsp_url,
            tsa_policy,
            root_days,
            ocsp_validity_seconds,
            dangerous_fast_kdf,
            database_url,
        } => {
            let policy = CryptoPolicy::by_name(&policy).with_context(|| {
                format!("unknown crypto policy {policy:?} (use vn or international)")
            })?;
            if dangerous_fast_kdf {
                tracing::warn!(
                    "DANGEROUS: keys are encrypted with a cheap KDF (--dangerous-fast-kdf); never use this for a real federation"
                );
            }
            let passphrase = passphrase::read("the PKI keys", true)?;
            let options = InitOptions {
                organisation,
                suite,
                policy,
                ocsp_url,
                tsa_policy,
                root_days,
                ocsp_validity: Duration::from_secs(ocsp_validity_seconds),
                kdf: if dangerous_fast_kdf {
                    KdfParams::DANGEROUS_FAST_FOR_TESTS
                } else {
                    KdfParams::default()
                },
                database_url,
                ..InitOptions::default()
            };
            let authority = Authority::init(&dir, &options, &passphrase).await?;
            let files = authority.files();
            println!("PKI initialised in {}", dir.display());
            for path in [files.root_pem(), files.ocsp_pem(), files.tsa_pem()] {
                println!("  {}", path.display());
            }
            Ok(())
        }
        PkiCommand::Issue {
            dir,
            csr,
            profile,
            id,
            out,
            days,
        } => {
            let profile = Profile::from_name(&profile).context("unknown profile")?;
            let csr_bytes =
                std::fs::read(&csr).with_context(|| format!("read {}", csr.display()))?;
            let authority = Authority::open(&dir).await?;
            let passphrase = passphrase::read("the root CA key", false)?;
            let ca = authority.unlock_ca(&passphrase)?;
            let certificate = authority
                .issue(&ca, &csr_bytes, profile, &id, &IssueOptions { days })
                .await
                .with_context(|| {
                    format!(
                        "issue the {} certificate for {id} from {}",
                        profile.name(),
                        csr.display()
                    )
                })?;
            std::fs::write(
                &out,
                lienthong_pki::pem_encode_certificate(&certificate.der),
            )
            .with_context(|| format!("write {}", out.display()))?;
            println!(
                "issued {} certificate serial {} for {id}: {}",
                profile.name(),
                certificate.serial_hex(),
                out.display()
            );
            Ok(())
        }
        PkiCommand::Revoke {
            dir,
            cert,
            serial,
            reason,
        } => {
            let reason = match reason {
                Some(name) => Some(RevocationReason::from_name(&name).with_context(|| {
                    let names: Vec<_> = RevocationReason::ALL.iter().map(|r| r.name()).collect();
                    format!("unknown reason {name:?}; use one of {}", names.join(", "))
                })?),
                None => None,
            };
            let serial = match (cert, serial) {
                (Some(path), _) => {
                    let bytes =
                        std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
                    let der = lienthong_pki::parse_certificate_pem(&bytes)?;
                    lienthong_pki::CertificateInfo::from_der(&der)?.serial_hex()
                }
                (None, Some(serial)) => serial.trim_start_matches("0x").to_ascii_lowercase(),
                (None, None) => bail!("give --cert or --serial"),
            };
            let authority = Authority::open(&dir).await?;
            match authority.revoke(&serial, reason, SystemTime::now()).await? {
                RevokeOutcome::Revoked => println!("revoked certificate serial {serial}"),
                RevokeOutcome::AlreadyRevoked(first) => {
                    println!(
                        "certificate serial {serial} was already revoked at {} (unchanged)",
                        first.time
                    )
                }
                RevokeOutcome::NotFound => {
                    bail!("no certificate with serial {serial} was issued by this CA")
                }
            }
            Ok(())
        }
        PkiCommand::List { dir } => {
            let authority = Authority::open(&dir).await?;
            println!("serial\tprofile\tidentity\tnot_after\tstatus\tsubject");
            for record in authority.store().pki().certificates().await? {
                let status = match &record.revocation {
                    Some(r) => format!(
                        "revoked@{}({})",
                        r.time,
                        r.reason.as_deref().unwrap_or("unspecified")
                    ),
                    None => "good".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    record.serial,
                    record.profile,
                    record.identity.as_deref().unwrap_or("-"),
                    record.not_after,
                    status,
                    record.subject
                );
            }
            Ok(())
        }
        PkiCommand::Serve { dir, listen } => {
            let authority = Authority::open(&dir).await?;
            let passphrase = passphrase::read("the OCSP and TSA keys", false)?;
            let services = Arc::new(TrustServices::load(&authority, &passphrase).await?);
            drop(passphrase);
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listen on {listen}"))?;
            let local = listener.local_addr()?;
            tracing::info!(%local, "trust services listening: OCSP at /ocsp, TSA at /tsa");
            println!("listening on http://{local} (OCSP: /ocsp, TSA: /tsa)");
            lienthong_trust::server::run(listener, services, crate::shutdown_signal()).await?;
            Ok(())
        }
    }
}
