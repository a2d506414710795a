//! The open-loop runs of `bench compare`: each path's latency at half the gateways'
//! throughput (wrk's closed loop would hide a stall), and the soak run that reads the
//! gateways' memory over a long run at that rate.

use super::*;

/// The gateways with their databases on tmpfs: a measurement only, never a deployment.
pub(super) const IN_MEMORY: &str =
    "lienthong, databases in RAM (tmpfs: no disk flush, not durable; measurement only)";

/// Requests in flight at most (keep-alive connections) of the open-loop generator.
pub(super) const OPEN_LOOP_CONNECTIONS: usize = 64;
/// How often the soak run reads the gateways' RSS.
pub(super) const SOAK_SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// The open-loop runs at half the gateways' throughput.
pub(super) struct HalfLoad {
    pub(super) rate: f64,
    pub(super) seconds: u64,
    pub(super) rows: Vec<OpenRow>,
    /// The floor under a durable commit on the disk the gateways use, measured in the run.
    pub(super) durable_write: DurableWrite,
}

/// Durable writes the size of one exchange's log commit on the gateways' disk: the floor
/// under each gateway's commit, which an exchange waits for twice in series (the provider
/// gateway's, then the client gateway's). Measured back to back, and again with a pause
/// before each write of the interval between one gateway's commits at the half-load rate,
/// as the gateways' log writers meet the disk in the open loop (on this virtual machine a
/// flush after an idle gap has measured up to half as long again as one back to back).
pub(super) struct DurableWrite {
    pub(super) bytes: usize,
    pub(super) count: usize,
    pub(super) back_to_back: Quantiles,
    pub(super) pause_ms: f64,
    pub(super) paced: Quantiles,
}

/// The median and p99 of a series of durations, in milliseconds.
pub(super) struct Quantiles {
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
}

/// Bytes per durable write: about what SQLite writes to its write-ahead log for one
/// exchange's record (7 pages of 4 KiB with their frame headers).
const DURABLE_WRITE_BYTES: usize = 7 * (4096 + 24);
const DURABLE_WRITES: usize = 300;

/// The longest pause [`durable_write`] makes before a write (a slow machine's half-load
/// rate must not make the probe take minutes).
const LONGEST_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// The interval between one gateway's log commits at `rate` exchanges per second when no
/// two are grouped, at most [`LONGEST_PAUSE`].
fn commit_interval(rate: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(1.0 / rate)
        .unwrap_or(LONGEST_PAUSE)
        .min(LONGEST_PAUSE)
}

/// Append [`DURABLE_WRITE_BYTES`] and `fdatasync`, [`DURABLE_WRITES`] times back to back,
/// then as many times with `pause` before each, in a file under `dir`.
pub(super) fn durable_write(
    dir: &std::path::Path,
    pause: std::time::Duration,
) -> anyhow::Result<DurableWrite> {
    use std::io::Write as _;
    let mut file = tempfile::tempfile_in(dir)?;
    let block = vec![0x5a_u8; DURABLE_WRITE_BYTES];
    let mut series = |pause: std::time::Duration| -> anyhow::Result<Quantiles> {
        let mut millis = Vec::with_capacity(DURABLE_WRITES);
        for _ in 0..DURABLE_WRITES {
            std::thread::sleep(pause);
            let started = std::time::Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            millis.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        millis.sort_by(f64::total_cmp);
        let at = |q: f64| millis[((millis.len() - 1) as f64 * q).round() as usize];
        Ok(Quantiles {
            p50_ms: at(0.5),
            p99_ms: at(0.99),
        })
    };
    let back_to_back = series(std::time::Duration::ZERO)?;
    let paced = series(pause)?;
    Ok(DurableWrite {
        bytes: DURABLE_WRITE_BYTES,
        count: DURABLE_WRITES,
        back_to_back,
        pause_ms: pause.as_secs_f64() * 1000.0,
        paced,
    })
}

/// A path to drive open-loop: its URL, the client to send as, the server processes on it
/// whose CPU is read, and the closed-loop row (wrk) of the same path to read it beside.
pub(super) struct OpenPath<'a> {
    pub(super) name: &'a str,
    pub(super) url: &'a str,
    pub(super) client: Option<&'a str>,
    pub(super) measured: Vec<(String, u32)>,
    pub(super) closed: String,
}

pub(super) struct OpenRow {
    pub(super) path: String,
    pub(super) result: open_loop::OpenLoopResult,
    /// Peak RSS during the run, KiB, per gateway.
    pub(super) peak_rss: Vec<(String, u64)>,
    /// CPU seconds used during the run by each server process on the path (with children).
    pub(super) cpu: Vec<(String, f64)>,
    /// The share of the machine's CPU time that was idle during the run.
    pub(super) idle_percent: Option<f64>,
    /// The path of the closed-loop row of the same servers.
    pub(super) closed: String,
}

impl OpenRow {
    /// The servers' CPU seconds during the run.
    pub(super) fn cpu_total(&self) -> f64 {
        self.cpu.iter().map(|(_, s)| s).sum()
    }

    /// `seconds` per 1,000 answered requests.
    pub(super) fn per_thousand(&self, seconds: f64) -> f64 {
        seconds * 1000.0 / (self.result.answered.max(1) as f64)
    }

    /// The servers' CPU seconds per 1,000 answered requests.
    pub(super) fn cpu_per_thousand(&self) -> f64 {
        self.per_thousand(self.cpu_total())
    }
}

/// A long open-loop run through the gateways, with their memory read along the way.
pub(super) struct Soak {
    pub(super) rate: f64,
    pub(super) seconds: u64,
    pub(super) result: open_loop::OpenLoopResult,
    pub(super) samples: Vec<RssSample>,
    /// Peak RSS (VmHWM) over the whole run, KiB, per gateway.
    pub(super) peak_rss: Vec<(String, u64)>,
    /// CPU time stolen by the hypervisor over the whole run, percent.
    pub(super) stolen_percent: Option<f64>,
}

/// The gateways' RSS (VmRSS, KiB) some seconds into the soak run.
pub(super) struct RssSample {
    pub(super) seconds: f64,
    pub(super) rss: Vec<(String, u64)>,
    /// CPU time stolen by the hypervisor since the sample before, percent: a disturbance
    /// from outside shows in the seconds it happened.
    pub(super) stolen_percent: Option<f64>,
}

impl Bench {
    /// An open-loop run of `seconds` at `rate` along each of `paths`, with the CPU its
    /// servers used and the gateways' peak RSS of the runs through them.
    pub(super) fn half_load(
        &self,
        runtime: &tokio::runtime::Handle,
        gateways: &Gateways,
        rate: f64,
        paths: &[OpenPath<'_>],
    ) -> anyhow::Result<HalfLoad> {
        let body = std::fs::read(&self.bodies[0].1)?;
        let mut rows = Vec::new();
        for path in paths {
            println!(
                "half load, open loop at {rate:.0} requests/s: {}",
                path.name
            );
            let through_gateways = path.client.is_some();
            if through_gateways {
                for process in gateways.processes() {
                    tools::reset_peak_rss(process.pid());
                }
            }
            let load = self.open_load(path.url, path.client, &body, rate, self.seconds);
            let mut row = self.open_row(runtime, &load, path)?;
            if through_gateways {
                row.peak_rss = peak_rss(gateways);
            }
            rows.push(row);
        }
        Ok(HalfLoad {
            rate,
            seconds: self.seconds,
            rows,
            durable_write: durable_write(self.work.path(), commit_interval(rate))?,
        })
    }

    /// One open-loop run along `path`, with the CPU its servers and the machine spent.
    fn open_row(
        &self,
        runtime: &tokio::runtime::Handle,
        load: &open_loop::OpenLoad<'_>,
        path: &OpenPath<'_>,
    ) -> anyhow::Result<OpenRow> {
        let before = self.cpu_seconds(&path.measured, true);
        let machine = tools::CpuTime::now();
        let result = open_loop::run(runtime, load)?;
        Ok(OpenRow {
            path: path.name.to_owned(),
            result,
            peak_rss: Vec::new(),
            cpu: self.cpu_used(&path.measured, &before, true),
            idle_percent: machine.and_then(tools::CpuTime::idle_percent_since),
            closed: path.closed.clone(),
        })
    }

    /// The gateways with their SQLite databases on tmpfs (RAM), where `fdatasync` returns
    /// at once: their 100 B throughput and their latency at `rate`, to read beside the
    /// same runs on disk as what the disk's flushes cost. A measurement only: a message
    /// log in RAM is not durable. `None` if there is no `/dev/shm`.
    pub(super) fn without_disk_flush(
        &self,
        runtime: &tokio::runtime::Handle,
        rate: f64,
        service_url: &str,
    ) -> anyhow::Result<Option<(Row, OpenRow)>> {
        let Ok(memory) = tempfile::Builder::new()
            .prefix("lienthong-bench-")
            .tempdir_in("/dev/shm")
        else {
            println!("no /dev/shm: no run with the gateways' databases in RAM");
            return Ok(None);
        };
        let client = lienthong_federation::CLIENT_SUBSYSTEM;
        println!("{IN_MEMORY}: first start and service registration");
        self.first_start(runtime, StoreAt::Memory(memory.path()), "memory")?;
        let (gateways, _) = self.cold_start(runtime, None, self.gateway_threads)?;
        let (payload, body) = self.bodies[0].clone();
        self.warm_up(service_url, Some(client), &body)?;
        println!("measuring {IN_MEMORY}, {payload}");
        let path = format!("{IN_MEMORY}: {GATEWAYS_PATH}");
        let row = self.gateway_row(&gateways, &path, payload, &body, &[])?;
        println!("half load, open loop at {rate:.0} requests/s: {IN_MEMORY}");
        for process in gateways.processes() {
            tools::reset_peak_rss(process.pid());
        }
        let bytes = std::fs::read(&body)?;
        let load = self.open_load(service_url, Some(client), &bytes, rate, self.seconds);
        let open_path = OpenPath {
            name: &format!(
                "{IN_MEMORY}: client -> client gateway -> mTLS -> provider gateway -> provider"
            ),
            url: service_url,
            client: Some(client),
            measured: self.gateway_processes(&gateways),
            closed: row.path.clone(),
        };
        let mut open = self.open_row(runtime, &load, &open_path)?;
        open.peak_rss = peak_rss(&gateways);
        // The gateways stop before their databases go.
        drop(gateways);
        drop(memory);
        Ok(Some((row, open)))
    }

    /// Restart the gateways on SQLite and drive them open-loop at `rate` for the soak's
    /// seconds, reading their RSS every [`SOAK_SAMPLE_EVERY`].
    pub(super) fn soak(
        &self,
        runtime: &tokio::runtime::Handle,
        rate: f64,
        service_url: &str,
    ) -> anyhow::Result<Soak> {
        self.configure_store(StoreAt::Disk, "run0")?;
        let (mut gateways, _) = self.cold_start(runtime, None, self.gateway_threads)?;
        for process in gateways.processes() {
            tools::reset_peak_rss(process.pid());
        }
        println!(
            "soak: lienthong (SQLite), open loop at {rate:.0} requests/s for {} s",
            self.soak
        );
        let body = std::fs::read(&self.bodies[0].1)?;
        let load = self.open_load(
            service_url,
            Some(lienthong_federation::CLIENT_SUBSYSTEM),
            &body,
            rate,
            self.soak,
        );
        let started = Instant::now();
        let machine = tools::CpuTime::now();
        let since = std::cell::Cell::new(machine);
        let sample = || RssSample {
            seconds: started.elapsed().as_secs_f64(),
            rss: gateways
                .processes()
                .iter()
                .map(|p| (p.name.clone(), tools::rss_kib(p.pid()).unwrap_or(0)))
                .collect(),
            stolen_percent: since
                .replace(tools::CpuTime::now())
                .and_then(tools::CpuTime::stolen_percent_since),
        };
        let mut samples = vec![sample()];
        let result = std::thread::scope(|scope| {
            let generator = scope.spawn(|| open_loop::run(runtime, &load));
            let mut next = SOAK_SAMPLE_EVERY;
            while !generator.is_finished() {
                std::thread::sleep(Duration::from_millis(100));
                if started.elapsed() >= next {
                    samples.push(sample());
                    next += SOAK_SAMPLE_EVERY;
                }
            }
            generator
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?;
        let last = samples.last().map_or(0.0, |s| s.seconds);
        if started.elapsed().as_secs_f64() - last >= 1.0 {
            samples.push(sample());
        }
        gateways.client.check_alive()?;
        gateways.provider.check_alive()?;
        Ok(Soak {
            rate,
            seconds: self.soak,
            result,
            samples,
            peak_rss: peak_rss(&gateways),
            stolen_percent: machine.and_then(tools::CpuTime::stolen_percent_since),
        })
    }

    fn open_load<'a>(
        &self,
        url: &'a str,
        client: Option<&'a str>,
        body: &'a [u8],
        rate: f64,
        seconds: u64,
    ) -> open_loop::OpenLoad<'a> {
        open_loop::OpenLoad {
            url,
            client,
            body,
            rate,
            seconds: seconds as f64,
            connections: OPEN_LOOP_CONNECTIONS,
        }
    }
}
