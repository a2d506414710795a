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
    /// The side-by-side benchmark of the whole exchange (`scripts/bench` runs it): direct,
    /// a plain nginx -> nginx chain, and both lienthong gateways as separate processes (on
    /// SQLite and on PostgreSQL), with the same load generator (wrk), payloads and
    /// concurrency; throughput, latency, CPU per exchange, peak RSS, cold start, 10 MB body.
    Compare(crate::bench_compare::CompareArgs),
    /// A first look at the whole exchange: the demo federation in this process, an
    /// in-process HTTP load generator, the same request sent directly to the sample
    /// provider and through client gateway -> (mTLS) -> provider gateway. Everything
    /// shares this machine's cores, load generator included.
    Exchange {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Concurrent connections.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Rewrite this file's `exchange` section with the results.
        #[arg(long)]
        write: Option<PathBuf>,
    },
    /// The message log: append throughput on SQLite and PostgreSQL (batched and one record
    /// per commit) and verification speed (log audit, evidence bundles); see `bench_log`.
    Log {
        /// Records to append per run.
        #[arg(long, default_value_t = 20_000)]
        records: usize,
        /// Rewrite this file's `log` section with the results.
        #[arg(long)]
        write: Option<PathBuf>,
    },
    /// An open-loop load on one URL: requests at a fixed rate whatever the server does, so
    /// that a stall shows in the latencies (wrk's closed loop hides it); prints the
    /// percentiles and the slowest answers with the second of the run they were sent in.
    /// Point it at a running gateway (e.g. the demo's) and read the gateway's stage
    /// histograms at its admin `/metrics` to see where the slow ones spent their time.
    Load {
        /// The URL to POST to.
        #[arg(long)]
        url: String,
        /// The X-Road-Client header to send, for a request through a gateway.
        #[arg(long)]
        client: Option<String>,
        /// Requests per second.
        #[arg(long)]
        rate: f64,
        /// Seconds of load.
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        /// Size of the JSON body to POST, in bytes; 0 sends a GET without a body.
        #[arg(long, default_value_t = 100)]
        body_bytes: usize,
        /// Requests in flight at most (one keep-alive connection each).
        #[arg(long, default_value_t = 64)]
        connections: usize,
    },
    /// A relay on the gateways' own HTTP and TLS stack with nothing else on it (no
    /// signing, verification, access control or message log). `bench compare` runs a client
    /// and a server relay as a chain, to tell the transport's cost from the security work's.
    #[command(hide = true)]
    Relay {
        /// Which end: `client` (HTTP/1.1 in, mutual TLS and HTTP/2 out) or `server`.
        #[arg(long, value_enum)]
        role: RelayRole,
        /// Address to listen on.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The server relay's host:port (client), or the provider's base URL (server).
        #[arg(long)]
        upstream: String,
        /// Directory with both relays' certificates and keys (`bench compare` writes them).
        #[arg(long)]
        tls_dir: PathBuf,
    },
    /// A reading of this machine's state: one core's speed on a chain of integer steps, the
    /// latency of dependent loads over 256 KiB, 8 MiB and 128 MiB, memory copy bandwidth,
    /// a system call's cost and a wake-up round trip between two threads. On a virtual machine a neighbour that fills the host's shared cache slows
    /// the larger working sets without taking any CPU time; `bench compare` records this
    /// reading before and after its run.
    Machine {
        /// Readings to take, one after another.
        #[arg(long, default_value_t = 1)]
        times: usize,
    },
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

/// The ends of the relay chain.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum RelayRole {
    Client,
    Server,
}

pub(crate) async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Relay {
            role,
            listen,
            upstream,
            tls_dir,
        } => {
            use lienthong_gateway::relay;
            let role = match role {
                RelayRole::Client => relay::Role::Client,
                RelayRole::Server => relay::Role::Server,
            };
            let config = relay::RelayConfig::load(role, upstream, &tls_dir)?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listen on {listen}"))?;
            println!("relay listening on {}", listener.local_addr()?);
            relay::run(listener, config, crate::shutdown_signal())
                .await
                .context("relay")
        }
        BenchCommand::Compare(args) => crate::bench_compare::run(args).await,
        BenchCommand::Machine { times } => {
            for _ in 0..times {
                let probe = crate::machine_probe::MachineProbe::read().await?;
                println!("{}", probe.summary());
            }
            Ok(())
        }
        BenchCommand::Exchange {
            seconds,
            concurrency,
            write,
        } => {
            let table = exchange(Duration::from_secs_f64(seconds), concurrency).await?;
            println!("{table}");
            if let Some(path) = write {
                let command = format!(
                    "lienthong bench exchange --seconds {seconds} --concurrency {concurrency} --write {}",
                    path.display()
                );
                write_section(&path, "exchange", &with_header(&command, &table))?;
                println!("written to {}", path.display());
            }
            Ok(())
        }
        BenchCommand::Log { records, write } => {
            let table = crate::bench_log::log(records).await?;
            println!("{table}");
            if let Some(path) = write {
                let command = format!(
                    "lienthong bench log --records {records} --write {}",
                    path.display()
                );
                write_section(&path, "log", &with_header(&command, &table))?;
                println!("written to {}", path.display());
            }
            Ok(())
        }
        BenchCommand::Load {
            url,
            client,
            rate,
            seconds,
            body_bytes,
            connections,
        } => {
            let body = if body_bytes == 0 {
                Vec::new()
            } else {
                crate::bench_tools::json_payload(body_bytes)
            };
            let runtime = tokio::runtime::Handle::current();
            let result = tokio::task::spawn_blocking(move || {
                crate::bench_compare::open_loop::run(
                    &runtime,
                    &crate::bench_compare::open_loop::OpenLoad {
                        url: &url,
                        client: client.as_deref(),
                        body: &body,
                        rate,
                        seconds,
                        connections,
                    },
                )
            })
            .await
            .context("run the load")??;
            println!(
                "{} sent, {} answered 2xx, {} errors in {:.1} s ({:.0}/s)",
                result.sent,
                result.answered,
                result.errors,
                result.seconds,
                result.rate_achieved()
            );
            println!(
                "latency ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  mean {:.2}  (generator late by {:.2} at most)",
                result.p50_ms,
                result.p99_ms,
                result.p999_ms,
                result.max_ms,
                result.mean_ms,
                result.send_lag_max_ms
            );
            println!("slowest (sent at s: ms):");
            for (at, ms) in &result.slowest {
                println!("  {at:8.3}: {ms:8.2}");
            }
            Ok(())
        }
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

/// This machine's CPU model, from `/proc/cpuinfo`.
pub(crate) fn cpu_model() -> Option<String> {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
}

/// The date, machine and command above a table.
pub(crate) fn with_header(command: &str, body: &str) -> String {
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let cpu = cpu_model().unwrap_or_else(|| "unknown CPU".into());
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

/// Requests per second and latency percentiles of GETs to `url` from `concurrency` tasks.
async fn load(
    url: &str,
    client_id: Option<&str>,
    duration: Duration,
    concurrency: usize,
) -> anyhow::Result<(f64, Vec<u64>, u64)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let http = http.clone();
        let url = url.to_owned();
        let client_id = client_id.map(str::to_owned);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            while Instant::now() < deadline {
                let started = Instant::now();
                let mut request = http.get(&url);
                if let Some(id) = &client_id {
                    request = request.header("X-Road-Client", id.as_str());
                }
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        latencies.push(started.elapsed().as_micros() as u64);
                    }
                    _ => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (latencies, failed) = task.await?;
        all.extend(latencies);
        failures += failed;
    }
    let elapsed = started.elapsed().as_secs_f64().max(duration.as_secs_f64());
    all.sort_unstable();
    Ok((all.len() as f64 / elapsed, all, failures))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)] as f64 / 1000.0
}

async fn exchange(duration: Duration, concurrency: usize) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    let federation = lienthong_federation::start(lienthong_federation::Options {
        dir: dir.path().join("bench"),
        port_base: None,
        passphrase: Some(b"benchmark only".to_vec()),
        dangerous_fast_kdf: true,
    })
    .await?;
    let direct = format!(
        "{}/001099012345",
        federation.endpoint("provider_backend_url")
    );
    let through = format!(
        "{}{}/001099012345",
        federation.endpoint("client_gateway_url"),
        federation.endpoint("service_path")
    );
    let client_id = federation.endpoint("client_id");
    // Warm up pools, caches and OCSP staples.
    let _ = load(
        &through,
        Some(&client_id),
        Duration::from_secs(1),
        concurrency,
    )
    .await?;
    let mut table = format!(
        "In-process, {concurrency} concurrent connections, {duration:?} each, a ~300 B JSON answer; the load generator, both gateways and the provider share the machine's cores.\n\n| path | requests/s | p50 ms | p99 ms | p99.9 ms | failed |\n|---|---:|---:|---:|---:|---:|\n"
    );
    let mut rates = Vec::new();
    for (name, url, client) in [
        ("direct: client -> sample provider", direct.as_str(), None),
        (
            "lienthong: client -> client gateway -> mTLS -> provider gateway -> provider (signed both ways, OCSP, access control)",
            through.as_str(),
            Some(client_id.as_str()),
        ),
    ] {
        let (rate, latencies, failures) = load(url, client, duration, concurrency).await?;
        writeln!(
            table,
            "| {name} | {rate:.0} | {:.2} | {:.2} | {:.2} | {failures} |",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 0.999)
        )?;
        rates.push(rate);
    }
    if let [direct, through] = rates[..] {
        writeln!(
            table,
            "\nThroughput through both gateways = {:.2} x direct.",
            through / direct.max(1.0)
        )?;
    }
    writeln!(
        table,
        "\nBoth gateways commit every exchange to their message logs (embedded store, synchronous commits, group commit) before answering. The nginx baseline, an external load generator and separate gateway processes are in `lienthong bench compare` (the section above)."
    )?;
    federation.stop().await;
    Ok(table)
}
