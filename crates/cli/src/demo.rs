//! `lienthong demo --dir DIR`: a whole federation on loopback (see lienthong-federation).
//! Writes `DIR/endpoints.json`, prints a curl command and runs until interrupted;
//! `--smoke` makes one exchange, checks it and exits 0 on success.

use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Directory for everything the federation creates (recreated if it holds a demo).
    #[arg(long)]
    dir: PathBuf,
    /// Use ports N, N+1, ..., N+8 instead of free ones.
    #[arg(long)]
    port_base: Option<u16>,
    /// Make one exchange, check it, and exit (0 on success).
    #[arg(long, conflicts_with = "no_gateways")]
    smoke: bool,
    /// Set up both gateways (keys, certificates, registration, DIR/gw-*/gateway.toml) but do
    /// not run them: start each as its own process with `lienthong gateway serve --config
    /// DIR/gw-*/gateway.toml`, then register the services at the provider's gateway through
    /// its admin API (`lienthong bench compare` does all this).
    #[arg(long)]
    no_gateways: bool,
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let passphrase = std::env::var(crate::passphrase::ENV)
        .ok()
        .map(String::into_bytes);
    let options = lienthong_federation::Options {
        dir: args.dir,
        port_base: args.port_base,
        passphrase,
        dangerous_fast_kdf: false,
    };
    let federation = if args.no_gateways {
        lienthong_federation::start_without_gateways(options).await?
    } else {
        lienthong_federation::start(options).await?
    };
    println!(
        "federation running; endpoints in {}\n\n  {}\n",
        federation.dir.join("endpoints.json").display(),
        lienthong_federation::curl_command(&federation)
    );
    if args.smoke {
        let result = lienthong_federation::smoke(&federation).await;
        federation.stop().await;
        result?;
        println!("smoke test passed");
        return Ok(());
    }
    println!("press Ctrl-C to stop");
    crate::shutdown_signal().await;
    federation.stop().await;
    Ok(())
}
