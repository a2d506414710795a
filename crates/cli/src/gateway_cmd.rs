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
    },
}

pub(crate) async fn run(command: GatewayCommand) -> anyhow::Result<()> {
    match command {
        GatewayCommand::Serve {
            config,
            check_config,
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
