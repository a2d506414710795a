//! `lienthong sample serve --listen ADDR` (hidden): the sample provider system as a process
//! of its own, so that a benchmark can measure it apart from the gateways in front of it.

use anyhow::Context as _;
use clap::Subcommand;
use std::net::SocketAddr;

#[derive(Debug, Subcommand)]
pub(crate) enum SampleCommand {
    /// Serve the sample citizen registry until interrupted.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:9000 (port 0: a free one, printed).
        #[arg(long)]
        listen: SocketAddr,
    },
}

pub(crate) async fn run(command: SampleCommand) -> anyhow::Result<()> {
    match command {
        SampleCommand::Serve { listen } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listen on {listen}"))?;
            println!(
                "sample provider listening on http://{}",
                listener.local_addr()?
            );
            lienthong_sample::run(listener, Default::default(), crate::shutdown_signal())
                .await
                .context("serve the sample provider")
        }
    }
}
