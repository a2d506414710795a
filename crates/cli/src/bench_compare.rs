//! `lienthong bench compare`: the side-by-side benchmark of the whole exchange. In one run,
//! with the same load generator (`wrk`), payloads and concurrency, it measures
//!
//! - direct: wrk -> sample provider (a process of its own, `lienthong sample serve`);
//! - the plain proxy chain: wrk -> nginx -> nginx -> provider;
//! - the gateways' transport alone: wrk -> relay -> (mTLS, HTTP/2) -> relay -> provider,
//!   two `lienthong bench relay` processes on the gateways' own HTTP and TLS stack with
//!   no security work ([`lienthong_gateway::relay`]);
//! - lienthong: wrk -> client gateway -> (mTLS) -> provider gateway -> provider, both
//!   gateways as `lienthong gateway serve` processes, on the embedded store and again on
//!   PostgreSQL;
//!
//! and reports throughput, latency percentiles, CPU seconds per 1,000 exchanges per
//! process, the gateways' peak RSS, their cold start to the first served request, and a
//! 10 MB body's transfer time. Then, at half the gateways' throughput, the latency of each
//! path under an open-loop load ([`open_loop`]), and optionally (`--soak`) the gateways'
//! memory over a long run at that rate. The trust services and the registry run in this
//! process (`lienthong_federation::start_without_gateways`).

use crate::bench_tools::{self as tools, Load, Process, WrkResult};
use crate::machine_probe::MachineProbe;
use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod half_load;
mod large_body;
pub(crate) mod open_loop;
mod report;

use half_load::{
    HalfLoad, IN_MEMORY, OPEN_LOOP_CONNECTIONS, OpenPath, RssSample, SOAK_SAMPLE_EVERY, Soak,
};
use large_body::Direction;

#[derive(Debug, clap::Args)]
pub(crate) struct CompareArgs {
    /// A smoke run of a few seconds per path (proves the harness works; not for figures).
    #[arg(long)]
    quick: bool,
    /// Seconds of load per measurement (default 10; 2 with --quick).
    #[arg(long)]
    seconds: Option<u64>,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Threads of the load generator.
    #[arg(long, default_value_t = 2)]
    wrk_threads: usize,
    /// Worker processes of each nginx.
    #[arg(long, default_value_t = 2)]
    nginx_workers: usize,
    /// Worker threads of each gateway (default: one per core).
    #[arg(long)]
    gateway_threads: Option<u16>,
    /// Skip the run with the gateways' stores on PostgreSQL.
    #[arg(long)]
    no_postgres: bool,
    /// After the rest, run the gateways (SQLite) this many seconds at the half-load rate,
    /// reading their memory every 10 s (0: no soak run).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    soak: u64,
    /// Rewrite this file's `compare` section, and write the figures as JSON beside it
    /// (same name, `.json`).
    #[arg(long)]
    write: Option<PathBuf>,
}

/// The path of the runs through the gateways, after the store setting.
const GATEWAYS_PATH: &str = "wrk -> client gateway -> mTLS -> provider gateway -> provider";

/// The direct row: wrk to the sample provider.
const DIRECT_PATH: &str = "direct: wrk -> provider";
/// The plain proxy chain's row.
const CHAIN_PATH: &str = "nginx chain: wrk -> nginx -> nginx -> provider";
/// The relay chain's row: the gateways' HTTP and TLS stack with nothing else on it.
const RELAY_PATH: &str = "relay chain (transport only): wrk -> relay -> mTLS -> relay -> provider";

/// The payload sizes of the throughput runs.
const PAYLOADS: [(&str, usize); 2] = [("100 B", 100), ("10 KB", 10 * 1024)];
const LARGE_BODY: usize = 10 * 1024 * 1024;

pub(crate) async fn run(args: CompareArgs) -> anyhow::Result<()> {
    let command = std::env::var("LIENTHONG_BENCH_COMMAND").unwrap_or_else(|_| {
        let rest: Vec<String> = std::env::args().skip(1).collect();
        format!("lienthong {}", rest.join(" "))
    });
    let load_before = load_average();
    let probe_before = MachineProbe::read().await?;
    let machine = crate::bench_tools::CpuTime::now();
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<Report> {
        let runtime = tokio::runtime::Handle::current();
        let mut bench = Bench::prepare(&args, &runtime)?;
        bench.measure(&runtime)
    });
    let mut report = report.await.context("run the benchmark")??;
    // Other work on the machine shows here: the figures are only as quiet as it was.
    report.settings["load_average_before"] = json!(load_before);
    report.settings["load_average_after"] = json!(load_average());
    report.settings["cpu_stolen_percent"] =
        json!(machine.and_then(crate::bench_tools::CpuTime::stolen_percent_since));
    report.machine = Some((probe_before, MachineProbe::read().await?));
    report.settings["commit"] = json!(commit());
    let markdown = report.markdown(&command);
    println!("{markdown}");
    if let Some(path) = &report.write {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        crate::bench::write_section(
            path,
            "compare",
            &crate::bench::with_header(&command, &markdown),
        )?;
        let json_path = path.with_extension("json");
        let document = report.json(&command);
        std::fs::write(&json_path, serde_json::to_vec_pretty(&document)?)
            .with_context(|| format!("write {}", json_path.display()))?;
        println!("written to {} and {}", path.display(), json_path.display());
    }
    Ok(())
}

/// Everything started once for the whole run.
struct Bench {
    quick: bool,
    seconds: u64,
    connections: usize,
    wrk_threads: usize,
    nginx_workers: usize,
    gateway_threads: Option<u16>,
    postgres: bool,
    soak: u64,
    write: Option<PathBuf>,
    wrk: PathBuf,
    exe: PathBuf,
    ticks: f64,
    passphrase: String,
    sample: Process,
    sample_url: String,
    nginx: [Process; 2],
    nginx_url: String,
    /// The relay chain: client relay, server relay.
    relays: [Process; 2],
    relay_url: String,
    federation: Option<lienthong_federation::Federation>,
    bodies: Vec<(&'static str, PathBuf)>,
    large_body: Vec<u8>,
    /// Last: removed after every process above has stopped.
    work: tempfile::TempDir,
}

/// One throughput measurement.
struct Row {
    path: String,
    payload: &'static str,
    wrk: WrkResult,
    /// CPU seconds used during the run, per process (tree).
    cpu: Vec<(String, f64)>,
    /// CPU seconds of processes not on the request path (the harness: trust services).
    cpu_aside: Vec<(String, f64)>,
    /// Peak RSS during the run, KiB, per gateway.
    peak_rss: Vec<(String, u64)>,
    /// The share of the machine's CPU time the hypervisor gave elsewhere during the run.
    stolen_percent: Option<f64>,
}

impl Row {
    fn cpu_total(&self) -> f64 {
        self.cpu.iter().map(|(_, s)| s).sum()
    }

    fn per_thousand(&self, seconds: f64) -> f64 {
        seconds * 1000.0 / (self.wrk.requests.max(1) as f64)
    }
}

struct ColdStart {
    store: String,
    millis: f64,
    /// Peak RSS of each gateway right after start (KiB): includes unlocking the keys.
    peak_rss: Vec<(String, u64)>,
}

struct LargeBody {
    path: String,
    /// The 10 MB went to the provider (POST), or came from it (GET).
    direction: Direction,
    seconds: Vec<f64>,
    peak_rss: Vec<(String, u64)>,
}

struct Report {
    write: Option<PathBuf>,
    settings: Value,
    rows: Vec<Row>,
    cold: Vec<ColdStart>,
    large: Vec<LargeBody>,
    scaling: Option<(Row, Row)>,
    half_load: Option<HalfLoad>,
    soak: Option<Soak>,
    /// The machine's state before and after the run.
    machine: Option<(MachineProbe, MachineProbe)>,
}

/// Where the gateways' databases are.
#[derive(Clone, Copy)]
enum StoreAt<'a> {
    /// SQLite files in their state directories.
    Disk,
    /// SQLite files in this directory on tmpfs (RAM).
    Memory(&'a Path),
    /// Databases on this PostgreSQL server.
    Postgres(&'a lienthong_testkit::PgServer),
}

/// The two gateways of one store setting, running as separate processes.
struct Gateways {
    client: Process,
    provider: Process,
    postgres_pid: Option<u32>,
}

impl Gateways {
    fn processes(&self) -> [&Process; 2] {
        [&self.client, &self.provider]
    }
}

impl Bench {
    fn prepare(args: &CompareArgs, runtime: &tokio::runtime::Handle) -> anyhow::Result<Self> {
        let missing = |name: &str| {
            format!(
                "{name} not found: install it (Debian: apt-get install wrk nginx-light), or run scripts/bench"
            )
        };
        let wrk = tools::find_program("wrk").with_context(|| missing("wrk"))?;
        let nginx = tools::find_program("nginx").with_context(|| missing("nginx"))?;
        let exe = std::env::current_exe().context("find the lienthong binary")?;
        let work = tempfile::Builder::new()
            .prefix("lienthong-bench-")
            .tempdir()?;
        let mut secret = [0u8; 18];
        lienthong_crypto::fill_random(&mut secret)?;
        let passphrase: String = secret.iter().map(|b| format!("{b:02x}")).collect();

        println!("starting the sample provider and the nginx chain");
        let sample_port = tools::free_port()?;
        let mut command = Command::new(&exe);
        command
            .args(["sample", "serve", "--listen"])
            .arg(format!("127.0.0.1:{sample_port}"))
            .env("LIENTHONG_LOG", "warn");
        let mut sample =
            Process::spawn("sample provider", command, work.path().join("sample.log"))?;
        let sample_url = format!("http://127.0.0.1:{sample_port}");
        wait_ready(runtime, &mut sample, &format!("{sample_url}/health"))?;
        let inner_port = tools::free_port()?;
        let outer_port = tools::free_port()?;
        let inner = tools::spawn_nginx(
            &nginx,
            &work.path().join("nginx-2"),
            "nginx 2 (next to the provider)",
            inner_port,
            sample_port,
            args.nginx_workers,
        )?;
        let mut outer = tools::spawn_nginx(
            &nginx,
            &work.path().join("nginx-1"),
            "nginx 1 (next to the client)",
            outer_port,
            inner_port,
            args.nginx_workers,
        )?;
        let nginx_url = format!("http://127.0.0.1:{outer_port}");
        wait_ready(runtime, &mut outer, &format!("{nginx_url}/health"))?;
        let (mut relays, relay_url) = spawn_relays(&exe, work.path(), &sample_url)?;
        wait_ready(runtime, &mut relays[0], &format!("{relay_url}/health"))?;

        println!("starting the trust services and the registry (demo federation, no gateways)");
        let federation = runtime.block_on(lienthong_federation::start_without_gateways(
            lienthong_federation::Options {
                dir: work.path().join("federation"),
                port_base: None,
                passphrase: Some(passphrase.clone().into_bytes()),
                dangerous_fast_kdf: false,
            },
        ))?;
        for name in ["gw-client", "gw-provider"] {
            let config = federation.dir.join(name).join("gateway.toml");
            std::fs::copy(&config, config.with_extension("toml.orig"))?;
        }
        let mut bodies = Vec::new();
        for (name, size) in PAYLOADS {
            let path = work.path().join(format!("body-{size}.json"));
            std::fs::write(&path, tools::json_payload(size))?;
            bodies.push((name, path));
        }
        Ok(Self {
            quick: args.quick,
            seconds: args.seconds.unwrap_or(if args.quick { 2 } else { 10 }),
            connections: args.connections,
            wrk_threads: args.wrk_threads,
            nginx_workers: args.nginx_workers,
            gateway_threads: args.gateway_threads,
            postgres: !args.no_postgres,
            soak: args.soak,
            write: args.write.clone(),
            wrk,
            exe,
            ticks: tools::clock_ticks(),
            passphrase,
            sample,
            sample_url,
            nginx: [outer, inner],
            nginx_url,
            relays,
            relay_url,
            federation: Some(federation),
            bodies,
            large_body: tools::json_payload(LARGE_BODY),
            work,
        })
    }

    fn federation(&self) -> anyhow::Result<&lienthong_federation::Federation> {
        self.federation
            .as_ref()
            .context("the federation has stopped")
    }

    fn client_gateway_url(&self) -> anyhow::Result<String> {
        let federation = self.federation()?;
        Ok(format!(
            "{}/r1/{}",
            federation.endpoint("client_gateway_url"),
            lienthong_federation::PROVIDER_SUBSYSTEM
        ))
    }

    fn measure(&mut self, runtime: &tokio::runtime::Handle) -> anyhow::Result<Report> {
        let mut rows = Vec::new();
        let mut cold = Vec::new();
        let mut large = Vec::new();
        let mut half_load = None;
        let direct_url = format!("{}/persons", self.sample_url);
        let chain_url = format!("{}/persons", self.nginx_url);
        let relay_url = format!("{}/persons", self.relay_url);
        for (payload, body) in self.bodies.clone() {
            for (name, url, proxies) in [
                (DIRECT_PATH, &direct_url, &[][..]),
                (CHAIN_PATH, &chain_url, &self.nginx[..]),
                (RELAY_PATH, &relay_url, &self.relays[..]),
            ] {
                check_exchange(runtime, url, None, &body)?;
                self.warm_up(url, None, &body)?;
                println!("measuring {name}, {payload}");
                let measured = self.served_by(proxies);
                rows.push(self.row(name, payload, url, None, &body, &measured, &[])?);
            }
        }
        for direction in [Direction::Upload, Direction::Download] {
            println!("10 MB {}, direct", direction.name());
            large.push(self.large_body(
                runtime,
                ("direct: client -> provider", direction),
                &self.sample_url,
                None,
                &[],
            )?);
            println!("10 MB {} through the relay chain", direction.name());
            large.push(self.large_body(
                runtime,
                ("relay chain (transport only)", direction),
                &self.relay_url,
                None,
                &[&self.relays[0], &self.relays[1]],
            )?);
        }

        let mut stores = vec!["SQLite"];
        if self.postgres {
            stores.push("PostgreSQL");
        }
        let postgres = if self.postgres {
            println!("starting a throwaway PostgreSQL server");
            Some(lienthong_testkit::PgServer::start().context("start PostgreSQL")?)
        } else {
            None
        };
        let gateway_url = self.client_gateway_url()?;
        let client_id = lienthong_federation::CLIENT_SUBSYSTEM;
        let service_url = format!("{gateway_url}/{}", lienthong_federation::SERVICE_CODE);
        for (index, store) in stores.iter().enumerate() {
            let database = match (&postgres, *store) {
                (Some(server), "PostgreSQL") => Some(server),
                _ => None,
            };
            let at = database.map_or(StoreAt::Disk, StoreAt::Postgres);
            println!("lienthong on {store}: first start and service registration");
            self.first_start(runtime, at, &format!("run{index}"))?;
            println!("lienthong on {store}: cold start");
            let (gateways, millis) = self.cold_start(runtime, database, self.gateway_threads)?;
            cold.push(ColdStart {
                store: store.to_string(),
                millis,
                peak_rss: peak_rss(&gateways),
            });
            let path = format!("lienthong ({store}): {GATEWAYS_PATH}");
            for (payload, body) in self.bodies.clone() {
                check_exchange(runtime, &service_url, Some(client_id), &body)?;
                self.warm_up(&service_url, Some(client_id), &body)?;
                println!("measuring {path}, {payload}");
                let harness = [(
                    "trust services + registry (harness)".into(),
                    std::process::id(),
                )];
                rows.push(self.gateway_row(&gateways, &path, payload, &body, &harness)?);
            }
            if *store == "SQLite" {
                // Before the 10 MB body, which leaves the allocators' high-water marks up.
                let (payload, _) = PAYLOADS[0];
                let throughput = rows
                    .iter()
                    .find(|r| r.path == path && r.payload == payload)
                    .map_or(0.0, |r| r.wrk.per_second());
                ensure!(
                    throughput >= 2.0,
                    "no throughput through the gateways to take half of"
                );
                let paths = [
                    OpenPath {
                        name: "direct: client -> provider",
                        url: &direct_url,
                        client: None,
                        measured: self.served_by(&[]),
                        closed: DIRECT_PATH.into(),
                    },
                    OpenPath {
                        name: "nginx chain: client -> nginx -> nginx -> provider",
                        url: &chain_url,
                        client: None,
                        measured: self.served_by(&self.nginx),
                        closed: CHAIN_PATH.into(),
                    },
                    OpenPath {
                        name: "relay chain: client -> relay -> mTLS -> relay -> provider",
                        url: &relay_url,
                        client: None,
                        measured: self.served_by(&self.relays),
                        closed: RELAY_PATH.into(),
                    },
                    OpenPath {
                        name: "lienthong (SQLite): client -> client gateway -> mTLS -> provider gateway -> provider",
                        url: &service_url,
                        client: Some(client_id),
                        measured: self.gateway_processes(&gateways),
                        closed: path.clone(),
                    },
                ];
                half_load = Some(self.half_load(runtime, &gateways, throughput / 2.0, &paths)?);
            }
            for direction in [Direction::Upload, Direction::Download] {
                println!("10 MB {} through the gateways on {store}", direction.name());
                large.push(self.large_body(
                    runtime,
                    (&format!("lienthong ({store})"), direction),
                    &gateway_url,
                    Some(client_id),
                    &gateways.processes(),
                )?);
            }
        }

        // The same gateways with their databases in RAM: what the disk's flushes cost.
        if let Some(half) = &mut half_load
            && let Some((row, open)) = self.without_disk_flush(runtime, half.rate, &service_url)?
        {
            rows.push(row);
            half.rows.push(open);
        }

        // Scaling: the gateways with one worker thread each vs the default.
        let mut scaling = None;
        if !self.quick {
            self.configure_store(StoreAt::Disk, "run0")?;
            let (payload, body) = self.bodies[0].clone();
            let mut pair = Vec::new();
            for threads in [1u16, 2] {
                let (gateways, _) = self.cold_start(runtime, None, Some(threads))?;
                self.warm_up(&service_url, Some(client_id), &body)?;
                println!("scaling: gateways with {threads} worker thread(s), {payload}");
                let path = format!("lienthong (SQLite), {threads} worker thread(s) per gateway");
                pair.push(self.gateway_row(&gateways, &path, payload, &body, &[])?);
            }
            let [one, two] = <[Row; 2]>::try_from(pair)
                .ok()
                .context("two scaling rows")?;
            scaling = Some((one, two));
        }
        let soak = match &half_load {
            Some(half) if self.soak > 0 => Some(self.soak(runtime, half.rate, &service_url)?),
            _ => None,
        };
        if let Some(federation) = self.federation.take() {
            runtime.block_on(federation.stop());
        }
        let settings = json!({
            "seconds_per_run": self.seconds,
            "connections": self.connections,
            "wrk_threads": self.wrk_threads,
            "nginx_workers": self.nginx_workers,
            "gateway_worker_threads": self.gateway_threads.map_or(json!("one per core"), |t| json!(t)),
            "quick": self.quick,
            "large_body_bytes": LARGE_BODY,
        });
        Ok(Report {
            write: self.write.clone(),
            settings,
            rows,
            cold,
            large,
            scaling,
            half_load,
            soak,
            machine: None,
        })
    }

    /// A row through `gateways` (as the demo client, to the sample service) with their
    /// peak RSS during it; `aside` as in [`Self::row`].
    fn gateway_row(
        &self,
        gateways: &Gateways,
        path: &str,
        payload: &'static str,
        body: &Path,
        aside: &[(String, u32)],
    ) -> anyhow::Result<Row> {
        let measured = self.gateway_processes(gateways);
        for process in gateways.processes() {
            tools::reset_peak_rss(process.pid());
        }
        let url = format!(
            "{}/{}",
            self.client_gateway_url()?,
            lienthong_federation::SERVICE_CODE
        );
        let client = Some(lienthong_federation::CLIENT_SUBSYSTEM);
        let mut row = self.row(path, payload, &url, client, body, &measured, aside)?;
        row.peak_rss = peak_rss(gateways);
        Ok(row)
    }

    /// The processes measured for a run through `proxies` to the sample provider.
    fn served_by(&self, proxies: &[Process]) -> Vec<(String, u32)> {
        std::iter::once(&self.sample)
            .chain(proxies)
            .map(|p| (p.name.clone(), p.pid()))
            .collect()
    }

    /// The processes measured for a run through the gateways.
    fn gateway_processes(&self, gateways: &Gateways) -> Vec<(String, u32)> {
        let mut measured = vec![
            (gateways.client.name.clone(), gateways.client.pid()),
            (gateways.provider.name.clone(), gateways.provider.pid()),
            (self.sample.name.clone(), self.sample.pid()),
        ];
        if let Some(pid) = gateways.postgres_pid {
            measured.push(("PostgreSQL server".into(), pid));
        }
        measured
    }

    fn load<'a>(
        &self,
        url: &'a str,
        client: Option<&'a str>,
        body: &'a Path,
        seconds: u64,
    ) -> Load<'a> {
        Load {
            url,
            client,
            body,
            seconds,
            connections: self.connections,
            threads: self.wrk_threads,
        }
    }

    fn warm_up(&self, url: &str, client: Option<&str>, body: &Path) -> anyhow::Result<()> {
        let seconds = if self.quick { 1 } else { 2 };
        tools::run_wrk(
            &self.wrk,
            self.work.path(),
            &self.load(url, client, body, seconds),
            self.ticks,
        )?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        path: &str,
        payload: &'static str,
        url: &str,
        client: Option<&str>,
        body: &Path,
        measured: &[(String, u32)],
        aside: &[(String, u32)],
    ) -> anyhow::Result<Row> {
        // Servers with their children (nginx workers, PostgreSQL backends); the processes
        // aside (this harness) alone, as every other process is its child.
        let before = self.cpu_seconds(measured, true);
        let before_aside = self.cpu_seconds(aside, false);
        let machine = tools::CpuTime::now();
        let wrk = tools::run_wrk(
            &self.wrk,
            self.work.path(),
            &self.load(url, client, body, self.seconds),
            self.ticks,
        )?;
        Ok(Row {
            path: path.to_owned(),
            payload,
            cpu: self.cpu_used(measured, &before, true),
            cpu_aside: self.cpu_used(aside, &before_aside, false),
            wrk,
            peak_rss: Vec::new(),
            stolen_percent: machine.and_then(tools::CpuTime::stolen_percent_since),
        })
    }

    /// CPU seconds so far of each process in `list`, with its children if `tree`.
    fn cpu_seconds(&self, list: &[(String, u32)], tree: bool) -> Vec<f64> {
        list.iter()
            .map(|(_, pid)| {
                if tree {
                    tools::tree_cpu_seconds(*pid, self.ticks)
                } else {
                    tools::process_cpu_seconds(*pid, self.ticks)
                }
            })
            .collect()
    }

    /// CPU seconds each process in `list` used since `before` ([`Self::cpu_seconds`]).
    fn cpu_used(&self, list: &[(String, u32)], before: &[f64], tree: bool) -> Vec<(String, f64)> {
        list.iter()
            .zip(self.cpu_seconds(list, tree).into_iter().zip(before))
            .map(|((name, _), (after, before))| (name.clone(), (after - before).max(0.0)))
            .collect()
    }

    /// Point both gateways' `database_url` at a fresh store, start them once and register
    /// the sample provider's services in it.
    fn first_start(
        &self,
        runtime: &tokio::runtime::Handle,
        at: StoreAt<'_>,
        tag: &str,
    ) -> anyhow::Result<()> {
        self.configure_store(at, tag)?;
        let postgres = match at {
            StoreAt::Postgres(server) => Some(server),
            _ => None,
        };
        let _gateways = self.start_gateways(postgres, self.gateway_threads)?;
        self.register_services(runtime)
    }

    /// Point both gateways' `database_url` at a fresh store: a new SQLite file (in the
    /// gateway's state directory, or in `dir`), or new databases on the PostgreSQL server.
    fn configure_store(&self, at: StoreAt<'_>, tag: &str) -> anyhow::Result<()> {
        let federation = self.federation()?;
        for name in ["gw-client", "gw-provider"] {
            let config = federation.dir.join(name).join("gateway.toml");
            let original = std::fs::read_to_string(config.with_extension("toml.orig"))?;
            let url = match at {
                StoreAt::Memory(dir) => {
                    format!("sqlite://{}/{name}-{tag}.db", dir.display())
                }
                StoreAt::Postgres(server) => {
                    let database = format!("bench_{}_{tag}", name.replace('-', "_"));
                    match server.create_database(&database) {
                        Ok(url) => url,
                        // Already created by an earlier setting of this run: reuse it.
                        Err(_) => server.url().replace("/postgres", &format!("/{database}")),
                    }
                }
                StoreAt::Disk => format!("sqlite://state/gateway-{tag}.db"),
            };
            let text: String = original
                .lines()
                .map(|line| {
                    if line.starts_with("database_url") {
                        format!("database_url = \"{url}\"\n")
                    } else {
                        format!("{line}\n")
                    }
                })
                .collect();
            std::fs::write(&config, text)?;
        }
        Ok(())
    }

    fn start_gateways(
        &self,
        postgres: Option<&lienthong_testkit::PgServer>,
        threads: Option<u16>,
    ) -> anyhow::Result<Gateways> {
        let federation = self.federation()?;
        let spawn = |name: &str, dir: &str| {
            let mut command = Command::new(&self.exe);
            command
                .args(["gateway", "serve", "--config"])
                .arg(federation.dir.join(dir).join("gateway.toml"))
                .env("LIENTHONG_PASSPHRASE", &self.passphrase)
                .env("LIENTHONG_LOG", "warn");
            if let Some(threads) = threads {
                command.arg("--worker-threads").arg(threads.to_string());
            }
            Process::spawn(name, command, self.work.path().join(format!("{dir}.log")))
        };
        let postgres_pid = postgres.and_then(|server| {
            let pid_file = server.log_file().parent()?.join("data/postmaster.pid");
            std::fs::read_to_string(pid_file)
                .ok()?
                .lines()
                .next()?
                .trim()
                .parse()
                .ok()
        });
        Ok(Gateways {
            client: spawn("client gateway", "gw-client")?,
            provider: spawn("provider gateway", "gw-provider")?,
            postgres_pid,
        })
    }

    fn register_services(&self, runtime: &tokio::runtime::Handle) -> anyhow::Result<()> {
        let federation = self.federation()?;
        let admin = federation.endpoint("provider_gateway_admin_url");
        let token = federation.endpoint("admin_token");
        let deadline = Instant::now() + Duration::from_secs(60);
        runtime.block_on(async {
            let http = reqwest::Client::new();
            loop {
                let up = http
                    .get(format!("{admin}/api/v1/services"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if up {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "the provider gateway's admin API did not come up"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            lienthong_federation::register_services(&admin, &token, &self.sample_url).await
        })
    }

    /// Start both gateways and time them to the first exchange answered with 200.
    fn cold_start(
        &self,
        runtime: &tokio::runtime::Handle,
        postgres: Option<&lienthong_testkit::PgServer>,
        threads: Option<u16>,
    ) -> anyhow::Result<(Gateways, f64)> {
        let url = format!(
            "{}/{}/001099012345",
            self.client_gateway_url()?,
            lienthong_federation::SERVICE_CODE
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let started = Instant::now();
        let mut gateways = self.start_gateways(postgres, threads)?;
        let deadline = started + Duration::from_secs(60);
        loop {
            let ok = runtime.block_on(async {
                http.get(&url)
                    .header("X-Road-Client", lienthong_federation::CLIENT_SUBSYSTEM)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            });
            if ok {
                break;
            }
            gateways.client.check_alive()?;
            gateways.provider.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "no exchange through the gateways within 60 s; client gateway: {}; provider gateway: {}",
                    tools::tail(&gateways.client.log, 1500),
                    tools::tail(&gateways.provider.log, 1500)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        Ok((gateways, millis))
    }
}

/// Start the relay chain in front of the provider at `sample_url`: the server relay, then
/// the client relay dialling it, with a fresh self-signed pair of certificates each pins.
/// Returns them (client relay first) and the client relay's URL.
fn spawn_relays(
    exe: &Path,
    work: &Path,
    sample_url: &str,
) -> anyhow::Result<([Process; 2], String)> {
    let dir = work.join("relay");
    lienthong_gateway::relay::write_certificates(&dir)?;
    let server_port = tools::free_port()?;
    let client_port = tools::free_port()?;
    let relay = |name: &str, role: &str, port: u16, upstream: &str| {
        let mut command = Command::new(exe);
        command
            .args(["bench", "relay", "--role", role, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--upstream")
            .arg(upstream)
            .arg("--tls-dir")
            .arg(&dir)
            .env("LIENTHONG_LOG", "warn");
        Process::spawn(name, command, work.join(format!("relay-{role}.log")))
    };
    let server = relay(
        "relay 2 (next to the provider)",
        "server",
        server_port,
        sample_url,
    )?;
    let client = relay(
        "relay 1 (next to the client)",
        "client",
        client_port,
        &format!("127.0.0.1:{server_port}"),
    )?;
    Ok(([client, server], format!("http://127.0.0.1:{client_port}")))
}

fn peak_rss(gateways: &Gateways) -> Vec<(String, u64)> {
    gateways
        .processes()
        .iter()
        .map(|p| (p.name.clone(), tools::peak_rss_kib(p.pid()).unwrap_or(0)))
        .collect()
}

/// Wait until `url` answers 200 (or the process exits).
fn wait_ready(
    runtime: &tokio::runtime::Handle,
    process: &mut Process,
    url: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = reqwest::Client::new();
    loop {
        let ok = runtime.block_on(async {
            http.get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        });
        if ok {
            return Ok(());
        }
        process.check_alive()?;
        ensure!(
            Instant::now() < deadline,
            "{} did not answer at {url}",
            process.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One POST of `body` must be answered with the sample provider's echo.
fn check_exchange(
    runtime: &tokio::runtime::Handle,
    url: &str,
    client: Option<&str>,
    body: &Path,
) -> anyhow::Result<()> {
    let body = std::fs::read(body)?;
    runtime.block_on(async {
        let mut request = reqwest::Client::new()
            .post(url)
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(client) = client {
            request = request.header("X-Road-Client", client);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let text = response.text().await?;
        ensure!(
            status == 201 && text.contains("\"stored\":true"),
            "POST {url} answered {status}: {}",
            text.chars().take(300).collect::<String>()
        );
        Ok(())
    })
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The checked-out commit, and whether the working tree had changes, when run in a checkout.
fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(hash) => {
            let changes = git(&["status", "--porcelain", "--untracked-files=no"]);
            tools::commit_label(&hash, changes.as_deref().unwrap_or_default())
        }
        None => "unknown".into(),
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}
