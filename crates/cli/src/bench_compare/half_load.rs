//! The open-loop runs of `bench compare`: each path's latency at half the gateways'
//! throughput (wrk's closed loop would hide a stall), direct and the gateways again at an
//! eighth and a quarter of it (with how much the gateways' signatures and log commits
//! batched at each rate), and the soak run that reads the gateways' memory over a long run
//! at the half-load rate.

use super::*;

/// The gateways with their databases on tmpfs: a measurement only, never a deployment.
pub(super) const IN_MEMORY: &str =
    "lienthong, databases in RAM (tmpfs: no disk flush, not durable; measurement only)";

/// Requests in flight at most (keep-alive connections) of the open-loop generator.
pub(super) const OPEN_LOOP_CONNECTIONS: usize = 64;
/// How often the soak run reads the gateways' RSS.
pub(super) const SOAK_SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Below half load, direct and the gateways again at these shares of the gateways'
/// throughput: where the added latency stands when the machine has room to spare.
pub(super) const LIGHTER_SHARES: [f64; 2] = [0.125, 0.25];

/// The open-loop runs at half the gateways' throughput.
pub(super) struct HalfLoad {
    pub(super) rate: f64,
    pub(super) seconds: u64,
    pub(super) rows: Vec<OpenRow>,
    /// Direct and the gateways at each of [`LIGHTER_SHARES`].
    pub(super) lighter: Vec<LoadPoint>,
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

/// Direct and the gateways at one rate below half load.
pub(super) struct LoadPoint {
    /// The rate's share of the gateways' closed-loop throughput.
    pub(super) share: f64,
    pub(super) direct: OpenRow,
    pub(super) gateways: OpenRow,
}

/// How much a gateway's work batched during a run, from its `/metrics` before and after:
/// root signatures and the messages they covered, message-log commits and the records they
/// held. At low rates every exchange costs its own signature, its peer's verification of
/// it, and its own commit (one fsync); under load one of each serves several exchanges.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Batching {
    pub(super) signatures: u64,
    pub(super) messages: u64,
    pub(super) commits: u64,
    pub(super) records: u64,
}

impl Batching {
    /// The counters in a gateway's metrics text (summed over their labels: members).
    pub(super) fn parse(metrics: &str) -> Self {
        let total = |name: &str| -> u64 {
            metrics
                .lines()
                .filter_map(|line| {
                    let rest = line.strip_prefix(name)?;
                    let value = match rest.as_bytes().first() {
                        Some(b'{') => rest.rsplit_once(' ')?.1,
                        Some(b' ') => rest.trim_start(),
                        _ => return None,
                    };
                    value.trim().parse::<f64>().ok()
                })
                .map(|v| v as u64)
                .sum()
        };
        Self {
            signatures: total("lienthong_gateway_signature_batches_total"),
            messages: total("lienthong_gateway_signed_messages_total"),
            commits: total("lienthong_gateway_log_commit_batch_records_count"),
            records: total("lienthong_gateway_log_commit_batch_records_sum"),
        }
    }

    /// What was counted after `before`.
    pub(super) fn since(self, before: Self) -> Self {
        Self {
            signatures: self.signatures.saturating_sub(before.signatures),
            messages: self.messages.saturating_sub(before.messages),
            commits: self.commits.saturating_sub(before.commits),
            records: self.records.saturating_sub(before.records),
        }
    }

    /// Messages per root signature.
    pub(super) fn per_signature(&self) -> Option<f64> {
        (self.signatures > 0).then(|| self.messages as f64 / self.signatures as f64)
    }

    /// Records per log commit.
    pub(super) fn per_commit(&self) -> Option<f64> {
        (self.commits > 0).then(|| self.records as f64 / self.commits as f64)
    }
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
    /// Through the gateways: how much their work batched (client gateway, provider gateway).
    pub(super) batching: Option<[Batching; 2]>,
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
        let mut lighter = Vec::new();
        let direct = paths.iter().find(|p| p.client.is_none());
        let through = paths.iter().find(|p| p.client.is_some());
        if let (Some(direct), Some(through)) = (direct, through) {
            for share in LIGHTER_SHARES {
                // `rate` is half the throughput.
                let rate = 2.0 * rate * share;
                let mut point = Vec::new();
                for path in [direct, through] {
                    println!("open loop at {rate:.0} requests/s: {}", path.name);
                    let load = self.open_load(path.url, path.client, &body, rate, self.seconds);
                    point.push(self.open_row(runtime, &load, path)?);
                }
                let [direct, gateways] = <[OpenRow; 2]>::try_from(point)
                    .ok()
                    .context("two rows per rate")?;
                lighter.push(LoadPoint {
                    share,
                    direct,
                    gateways,
                });
            }
        }
        Ok(HalfLoad {
            rate,
            seconds: self.seconds,
            rows,
            lighter,
            durable_write: durable_write(self.work.path(), commit_interval(rate))?,
        })
    }

    /// Both gateways' batching counters now (client, provider), from their `/metrics`.
    fn batching_now(&self, runtime: &tokio::runtime::Handle) -> anyhow::Result<[Batching; 2]> {
        let federation = self.federation()?;
        let token = federation.endpoint("admin_token");
        let http = reqwest::Client::new();
        let read = |key: &str| -> anyhow::Result<Batching> {
            let url = format!("{}/metrics", federation.endpoint(key));
            let text = runtime.block_on(async {
                let response = http
                    .get(&url)
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await?
                    .error_for_status()?;
                response.text().await
            });
            Ok(Batching::parse(
                &text.with_context(|| format!("reading {url}"))?,
            ))
        };
        Ok([
            read("client_gateway_admin_url")?,
            read("provider_gateway_admin_url")?,
        ])
    }

    /// One open-loop run along `path`, with the CPU its servers and the machine spent.
    fn open_row(
        &self,
        runtime: &tokio::runtime::Handle,
        load: &open_loop::OpenLoad<'_>,
        path: &OpenPath<'_>,
    ) -> anyhow::Result<OpenRow> {
        let batching = match path.client {
            Some(_) => Some(self.batching_now(runtime)?),
            None => None,
        };
        let before = self.cpu_seconds(&path.measured, true);
        let machine = tools::CpuTime::now();
        let result = open_loop::run(runtime, load)?;
        let cpu = self.cpu_used(&path.measured, &before, true);
        let idle_percent = machine.and_then(tools::CpuTime::idle_percent_since);
        let batching = match batching {
            Some([client, provider]) => {
                let [client_after, provider_after] = self.batching_now(runtime)?;
                Some([client_after.since(client), provider_after.since(provider)])
            }
            None => None,
        };
        Ok(OpenRow {
            path: path.name.to_owned(),
            result,
            peak_rss: Vec::new(),
            cpu,
            idle_percent,
            closed: path.closed.clone(),
            batching,
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

#[cfg(test)]
mod tests {
    use super::Batching;

    /// The counters as a gateway's `/metrics` renders them: labelled by member, or not.
    const METRICS: &str = "\
# HELP lienthong_gateway_signature_batches_total Batch signatures made.
# TYPE lienthong_gateway_signature_batches_total counter
lienthong_gateway_signature_batches_total{member=\"VN/GOV/000101\"} 40
lienthong_gateway_signature_batches_total{member=\"VN/GOV/000102\"} 10
lienthong_gateway_signed_messages_total{member=\"VN/GOV/000101\"} 120
lienthong_gateway_signed_messages_total{member=\"VN/GOV/000102\"} 10
lienthong_gateway_log_commit_batch_records_bucket{le=\"1\"} 7
lienthong_gateway_log_commit_batch_records_sum 90
lienthong_gateway_log_commit_batch_records_count 30
lienthong_gateway_log_commit_failures_total 0
";

    #[test]
    fn batching_is_read_from_the_metrics_and_taken_as_a_difference() {
        let now = Batching::parse(METRICS);
        assert_eq!(
            now,
            Batching {
                signatures: 50,
                messages: 130,
                commits: 30,
                records: 90,
            }
        );
        let before = Batching {
            signatures: 10,
            messages: 10,
            commits: 10,
            records: 10,
        };
        let run = now.since(before);
        assert_eq!(run.per_signature(), Some(3.0));
        assert_eq!(run.per_commit(), Some(4.0));
        assert_eq!(Batching::default().per_signature(), None, "nothing signed");
        assert_eq!(Batching::default().per_commit(), None, "nothing committed");
        assert_eq!(
            Batching::default().since(now),
            Batching::default(),
            "a restarted gateway's counters do not go negative"
        );
        assert_eq!(Batching::parse(""), Batching::default());
    }
}
