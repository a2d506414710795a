//! `lienthong`: the e-Government data exchange platform's single binary.

mod bench;
mod bench_compare;
mod bench_log;
mod bench_tools;
mod central_cmd;
mod demo;
mod gateway_cmd;
mod key_cmd;
mod log_cmd;
mod machine_probe;
mod passphrase;
mod pki_cmd;
mod sample_cmd;
mod verify_archive;
mod verify_cmd;

use clap::{Parser, Subcommand};

/// lienthong — secure data exchange between government agencies.
#[derive(Debug, Parser)]
#[command(name = "lienthong", version, about)]
struct Cli {
    /// Log format on standard error: `auto` is text on a terminal and JSON lines otherwise
    /// (under systemd, in a container); JSON lines carry the exchange's span (message id).
    #[arg(long, global = true, value_enum, default_value = "auto")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The federation's PKI: certificate authority, OCSP responder, timestamp authority.
    #[command(subcommand)]
    Pki(pki_cmd::PkiCommand),
    /// Keys in an encrypted key store, and certificate signing requests for them.
    #[command(subcommand)]
    Key(key_cmd::KeyCommand),
    /// The central registry and its admin API.
    #[command(subcommand)]
    Central(central_cmd::CentralCommand),
    /// The security gateway.
    #[command(subcommand)]
    Gateway(gateway_cmd::GatewayCommand),
    /// Start a whole federation on loopback: PKI, registry, two gateways, a sample service.
    Demo(demo::DemoArgs),
    /// Measure throughput on this machine and write the figures to BENCHMARKS.md.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The message log: export evidence for one message.
    #[command(subcommand)]
    Log(log_cmd::LogCommand),
    /// Check an evidence bundle from the message log, offline.
    Verify(verify_cmd::VerifyArgs),
    /// The sample provider system as a process of its own (benchmarks).
    #[command(subcommand, hide = true)]
    Sample(sample_cmd::SampleCommand),
}

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // One TLS crypto provider for the whole process (rustls, reqwest).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    init_logging(cli.log_format);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Command::Gateway(gateway_cmd::GatewayCommand::Serve {
        worker_threads: Some(threads),
        ..
    }) = &cli.command
    {
        builder.worker_threads(usize::from(*threads));
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Pki(command) => pki_cmd::run(command).await,
            Command::Key(command) => key_cmd::run(command),
            Command::Central(command) => central_cmd::run(command).await,
            Command::Gateway(command) => gateway_cmd::run(command).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Bench(command) => bench::run(command).await,
            Command::Log(command) => log_cmd::run(command).await,
            Command::Verify(args) => verify_cmd::run(args),
            Command::Sample(command) => sample_cmd::run(command).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LIENTHONG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(terminal);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Auto if terminal => builder.init(),
        // Each line names its span and the spans around it: an exchange's carry its message id.
        LogFormat::Json | LogFormat::Auto => builder.json().init(),
    }
}

/// Resolve on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested");
}
