//! `lienthong gateway ...`: run a security gateway and drive its admin API.

use crate::passphrase;
use anyhow::Context as _;
use clap::Subcommand;
use lienthong_gateway::config::Config;
use lienthong_gateway::{Gateway, Listeners};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(crate) enum GatewayCommand {
    /// Run the gateway described by a configuration file.
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// Validate the configuration file and exit.
        #[arg(long)]
        check_config: bool,
        /// Threads of the async runtime (default: one per core).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
        worker_threads: Option<u16>,
    },
    /// Call a gateway's admin API (services, access rights, local groups, audit), e.g.
    /// `gateway call --url ADMIN_URL --token T POST /api/v1/grants --data '{...}'`.
    Call {
        /// The gateway's admin base URL.
        #[arg(long, env = "LIENTHONG_GATEWAY_ADMIN_URL")]
        url: String,
        /// Bearer token.
        #[arg(long, env = "LIENTHONG_TOKEN", hide_env_values = true)]
        token: String,
        /// HTTP method.
        method: String,
        /// Path, e.g. /api/v1/services.
        path: String,
        /// JSON body.
        #[arg(long)]
        data: Option<String>,
    },
}

pub(crate) async fn run(command: GatewayCommand) -> anyhow::Result<()> {
    match command {
        GatewayCommand::Call {
            url,
            token,
            method,
            path,
            data,
        } => crate::central_cmd::call(&url, &token, &method, &path, data).await,
        GatewayCommand::Serve {
            config,
            check_config,
            worker_threads: _,
        } => {
            let config = Config::load(&config).map_err(anyhow::Error::msg)?;
            if check_config {
                println!("configuration is valid");
                return Ok(());
            }
            let passphrase = passphrase::read("the gateway's keys", false)?;
            let keys = lienthong_federation::unlock(&config, &passphrase)?;
            drop(passphrase);
            let listeners = bind(&config).await?;
            let gateway = Gateway::start(config, keys).await?;
            tracing::info!(server = %gateway.server_id(), "gateway started");
            lienthong_gateway::run(gateway, listeners, crate::shutdown_signal()).await?;
            Ok(())
        }
    }
}

/// Bind the configured listeners.
async fn bind(config: &Config) -> anyhow::Result<Listeners> {
    let bind = |address| async move {
        tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("listen on {address}"))
    };
    Ok(Listeners {
        client: bind(config.client_listen).await?,
        client_tls: match config.client_tls_listen {
            Some(address) => Some(bind(address).await?),
            None => None,
        },
        peer: bind(config.peer_listen).await?,
        admin: bind(config.admin_listen).await?,
    })
}
