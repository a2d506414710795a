//! `lienthong central ...`: run the registry, and drive its admin API.

use crate::passphrase;
use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::Subcommand;
use lienthong_central::{Config, Registry};
use lienthong_crypto::{KeyStore, Signer, Suite};
use lienthong_model::registry::{NewToken, RegistrationRequest, Role, SignedRegistration};
use lienthong_model::{ClientId, ServerId};
use lienthong_store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub(crate) enum CentralCommand {
    /// Create the store, the configuration-signing keys named in the config file, a first
    /// registry-officer token, the first configuration, and the anchor file.
    Init {
        #[arg(long)]
        config: PathBuf,
        /// Where to write the anchor that gateways trust.
        #[arg(long)]
        anchor_out: PathBuf,
        /// Where to write the first officer token (mode 0600); it is not shown again.
        #[arg(long)]
        token_out: PathBuf,
        /// Suite of new signing keys.
        #[arg(long, default_value = "ecdsa-p256-sha256")]
        suite: Suite,
    },
    /// Run the registry.
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// Validate the configuration file and exit.
        #[arg(long)]
        check_config: bool,
    },
    /// Generate another configuration-signing key (for a rotation: add it to
    /// `signing_keys`, re-issue the anchor, restart; later drop the old key).
    NewKey {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "ecdsa-p256-sha256")]
        suite: Suite,
    },
    /// Write the anchor listing every key in `signing_keys` (no passphrase needed).
    Anchor {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Call the admin API: `central call GET /api/v1/members`.
    Call {
        /// Registry base URL.
        #[arg(long, env = "LIENTHONG_CENTRAL_URL")]
        url: String,
        /// Bearer token.
        #[arg(long, env = "LIENTHONG_TOKEN", hide_env_values = true)]
        token: String,
        /// HTTP method.
        method: String,
        /// Path, e.g. /api/v1/members.
        path: String,
        /// JSON body.
        #[arg(long)]
        data: Option<String>,
    },
    /// Register a gateway: sign a registration request with its auth key and submit it.
    Register {
        /// Registry base URL.
        #[arg(long)]
        url: String,
        /// Key store holding the gateway's auth key.
        #[arg(long)]
        keystore: PathBuf,
        /// Name of the auth key.
        #[arg(long)]
        key: String,
        /// The auth certificate (PEM) issued by the federation CA.
        #[arg(long)]
        cert: PathBuf,
        /// The gateway's id INSTANCE/CLASS/CODE/SERVERCODE.
        #[arg(long)]
        id: ServerId,
        /// host:port where other gateways reach it.
        #[arg(long)]
        address: String,
        /// Members or subsystems it serves (repeatable).
        #[arg(long = "client")]
        clients: Vec<ClientId>,
    },
}

pub(crate) async fn run(command: CentralCommand) -> anyhow::Result<()> {
    match command {
        CentralCommand::Init {
            config,
            anchor_out,
            token_out,
            suite,
        } => {
            let config = Config::load(&config)?;
            let passphrase = passphrase::read("the configuration-signing keys", true)?;
            let keys = KeyStore::new(&config.keystore);
            let mut signers: Vec<Arc<dyn Signer>> = Vec::new();
            for name in &config.signing_keys {
                let key = if keys.contains(name) {
                    keys.load(name, &passphrase)?
                } else {
                    keys.generate(name, suite, &passphrase)?
                };
                signers.push(Arc::new(key));
            }
            let store = Store::open(&config.database_url).await?;
            let registry = Registry::new(store, &config.instance, signers);
            let token = registry
                .create_token(
                    NewToken {
                        name: "bootstrap-officer".into(),
                        role: Role::RegistryOfficer,
                    },
                    unix_now(),
                )
                .await?;
            write_private(&token_out, token.token.as_bytes())?;
            registry.publish(unix_now()).await?;
            write_anchor(&registry, &config, &anchor_out)?;
            println!(
                "registry initialised for instance {}; anchor: {}; officer token: {}",
                config.instance,
                anchor_out.display(),
                token_out.display()
            );
            Ok(())
        }
        CentralCommand::Serve {
            config,
            check_config,
        } => {
            let config = Config::load(&config)?;
            if check_config {
                println!("configuration is valid");
                return Ok(());
            }
            let passphrase = passphrase::read("the configuration-signing keys", false)?;
            let keys = KeyStore::new(&config.keystore);
            let mut signers: Vec<Arc<dyn Signer>> = Vec::new();
            for name in &config.signing_keys {
                signers.push(Arc::new(
                    keys.load(name, &passphrase)
                        .with_context(|| format!("unlock signing key {name}"))?,
                ));
            }
            drop(passphrase);
            let store = Store::open(&config.database_url).await?;
            let registry = Arc::new(Registry::new(store, &config.instance, signers));
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("listen on {}", config.listen))?;
            tracing::info!(listen = %listener.local_addr()?, instance = %config.instance, "central registry listening");
            lienthong_central::run(
                listener,
                registry,
                config.republish_interval,
                crate::shutdown_signal(),
            )
            .await?;
            Ok(())
        }
        CentralCommand::NewKey {
            config,
            name,
            suite,
        } => {
            let config = Config::load(&config)?;
            let passphrase = passphrase::read("the new configuration-signing key", true)?;
            KeyStore::new(&config.keystore).generate(&name, suite, &passphrase)?;
            println!(
                "generated {name}; add it to signing_keys, then run `lienthong central anchor` and distribute the anchor"
            );
            Ok(())
        }
        CentralCommand::Anchor { config, out } => {
            let config = Config::load(&config)?;
            let keys = KeyStore::new(&config.keystore);
            let mut public_keys = Vec::new();
            for name in &config.signing_keys {
                public_keys.push(keys.public_key(name)?.1);
            }
            let anchor = lienthong_conf::make_anchor(
                &config.instance,
                vec![config.download_url()],
                &public_keys.iter().collect::<Vec<_>>(),
            );
            std::fs::write(&out, serde_json::to_vec_pretty(&anchor)?)
                .with_context(|| format!("write {}", out.display()))?;
            println!("anchor written to {}", out.display());
            Ok(())
        }
        CentralCommand::Call {
            url,
            token,
            method,
            path,
            data,
        } => call(&url, &token, &method, &path, data).await,
        CentralCommand::Register {
            url,
            keystore,
            key,
            cert,
            id,
            address,
            clients,
        } => {
            let passphrase = passphrase::read(&format!("key {key}"), false)?;
            let signer = KeyStore::new(&keystore).load(&key, &passphrase)?;
            let pem = std::fs::read(&cert).with_context(|| format!("read {}", cert.display()))?;
            let der = lienthong_pki::parse_certificate_pem(&pem)?;
            let request = RegistrationRequest {
                server: id,
                address,
                auth_certificate: base64::engine::general_purpose::STANDARD.encode(der),
                clients,
                signed_at: unix_now(),
            };
            let signature = signer.sign(&request.signing_bytes())?.to_text();
            let response = reqwest::Client::new()
                .post(format!(
                    "{}/api/v1/registration-requests",
                    url.trim_end_matches('/')
                ))
                .json(&SignedRegistration { request, signature })
                .send()
                .await
                .context("submit the registration")?;
            let status = response.status();
            println!("{}", response.text().await.unwrap_or_default());
            if !status.is_success() {
                bail!("the registry refused the registration ({status})");
            }
            Ok(())
        }
    }
}

/// Call an admin API (the registry's or a gateway's) and print the JSON answer.
pub(crate) async fn call(
    url: &str,
    token: &str,
    method: &str,
    path: &str,
    data: Option<String>,
) -> anyhow::Result<()> {
    let method: reqwest::Method = method.to_uppercase().parse().context("HTTP method")?;
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", url.trim_end_matches('/')))
        .bearer_auth(token);
    if let Some(data) = data {
        request = request
            .header("content-type", "application/json")
            .body(data);
    }
    let response = request.send().await.context("call the admin API")?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    println!("{body}");
    if !status.is_success() {
        bail!("the server answered {status}");
    }
    Ok(())
}

fn write_anchor(registry: &Registry, config: &Config, out: &Path) -> anyhow::Result<()> {
    let anchor = registry.anchor(vec![config.download_url()]);
    std::fs::write(out, serde_json::to_vec_pretty(&anchor)?)
        .with_context(|| format!("write {}", out.display()))
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("write {}", path.display()))
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
