//! Rendering a `bench compare` run: the Markdown section of BENCHMARKS.md and the JSON
//! beside it.

use super::*;

/// The paths compared with the baselines in the ratios: (label, prefix of the row's path).
const RATIO_PATHS: [(&str, &str); 3] = [
    ("lienthong (SQLite)", "lienthong (SQLite)"),
    ("lienthong (PostgreSQL)", "lienthong (PostgreSQL)"),
    ("relay chain (transport only)", "relay chain"),
];

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Peak RSS figures in MiB, one decimal, in the processes' order.
fn mib_list(peaks: &[(String, u64)]) -> Vec<String> {
    peaks
        .iter()
        .map(|(_, k)| format!("{:.1}", mib(*k)))
        .collect()
}

impl Report {
    fn find(&self, prefix: &str, payload: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.path.starts_with(prefix) && r.payload == payload)
    }

    pub(super) fn markdown(&self, command: &str) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "One run of `{command}`: every row uses the same load generator (wrk, {} threads, {} connections, {} s per row after a warm-up, POST of a JSON body that the provider echoes back), on this machine's cores shared by wrk and every server. nginx: {} worker processes each, keep-alive upstreams, no access log. Relays: two `lienthong bench relay` processes on the gateways' own HTTP/1.1, HTTP/2 and mutual TLS stack (same runtime, allocator, connection pool and HTTP/2 settings, bodies streamed), with no security work: the transport's share of the gateways' cost. Gateways: separate `lienthong gateway serve` processes, {} worker threads each, with signing, verification, OCSP, access control and the durable message log on. CPU = user + system seconds of each server process (and its children) during the row, per 1,000 exchanges; wrk's own CPU is listed apart.\n",
            s["wrk_threads"],
            s["connections"],
            s["seconds_per_run"],
            s["nginx_workers"],
            s["gateway_worker_threads"]
                .as_u64()
                .map_or("one per core (2)".into(), |t| t.to_string()),
        );
        let _ = writeln!(
            out,
            "Commit {}; load average (1, 5, 15 min) before the run {}, after it {}; CPU time stolen by the hypervisor for other guests during the run {} (per row in the last column: a row with much stolen time was disturbed from outside).\n",
            s["commit"].as_str().unwrap_or("unknown"),
            s["load_average_before"].as_str().unwrap_or("?"),
            s["load_average_after"].as_str().unwrap_or("?"),
            percent(s["cpu_stolen_percent"].as_f64()),
        );
        if let Some((before, after)) = &self.machine {
            let (before, after) = (before.summary(), after.summary());
            let _ = writeln!(
                out,
                "The machine's state (`lienthong bench machine`), before the run: {before}; after it: {after}. A neighbour on the host that fills the shared last-level cache slows the loads over 8 MiB (and every process with a working set that large) without stealing any CPU time, so runs whose readings differ did not run on the same machine in effect (how much that moves the gateways' figures is not known).\n",
            );
        }
        out.push_str("| path | payload | requests/s | p50 ms | p99 ms | p99.9 ms | CPU s / 1,000 (servers) | per process | gateways' peak RSS MiB (client / provider) | errors | wrk CPU s / 1,000 | CPU stolen |\n|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n");
        for row in &self.rows {
            let per_process: Vec<String> = row
                .cpu
                .iter()
                .chain(&row.cpu_aside)
                .map(|(name, seconds)| format!("{name} {:.3}", row.per_thousand(*seconds)))
                .collect();
            let rss = mib_list(&row.peak_rss);
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.3} | {} | {} | {} | {:.3} | {} |",
                row.path,
                row.payload,
                row.wrk.per_second(),
                row.wrk.p50_ms,
                row.wrk.p99_ms,
                row.wrk.p999_ms,
                row.per_thousand(row.cpu_total()),
                per_process.join("; "),
                if rss.is_empty() {
                    "-".into()
                } else {
                    rss.join(" / ")
                },
                row.wrk.errors,
                row.per_thousand(row.wrk.cpu_seconds),
                percent(row.stolen_percent),
            );
        }
        out.push_str("\n**Ratios** (same run; the relay chain's line is the gateways' transport alone):\n\n| payload | path | throughput / nginx chain | throughput / direct | p50 added over direct, ms | p99 ms | CPU per exchange / nginx chain |\n|---|---|---:|---:|---:|---:|---:|\n");
        for (payload, _) in PAYLOADS {
            for (store, prefix) in RATIO_PATHS {
                let (Some(direct), Some(chain), Some(ours)) = (
                    self.find("direct", payload),
                    self.find("nginx", payload),
                    self.find(prefix, payload),
                ) else {
                    continue;
                };
                let _ = writeln!(
                    out,
                    "| {payload} | {store} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
                    ours.wrk.per_second() / chain.wrk.per_second().max(1e-9),
                    ours.wrk.per_second() / direct.wrk.per_second().max(1e-9),
                    ours.wrk.p50_ms - direct.wrk.p50_ms,
                    ours.wrk.p99_ms,
                    ours.per_thousand(ours.cpu_total())
                        / chain.per_thousand(chain.cpu_total()).max(1e-9),
                );
            }
        }
        if let Some(half) = &self.half_load {
            half.markdown(&mut out, &self.rows);
        }
        out.push_str("\n**Gateway cold start** (both gateway processes spawned -> first exchange answered 200 through them; keys unlocked with the production KDF, configuration from the state directory, OCSP staples fetched, TLS session set up):\n\n| store | cold start ms | peak RSS after start MiB (client / provider) |\n|---|---:|---:|\n");
        for c in &self.cold {
            let rss = mib_list(&c.peak_rss);
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} |",
                c.store,
                c.millis,
                rss.join(" / ")
            );
        }
        let _ = writeln!(
            out,
            "\n**10 MB body** (one transfer at a time of {} bytes: upload, a POST to the provider's streaming digest endpoint; download, the provider's answer to a GET of its payload endpoint; {} times timed after one untimed; peak RSS during these transfers):\n\n| path | direction | median transfer s | MB/s | peak RSS MiB |\n|---|---|---:|---:|---|",
            LARGE_BODY,
            self.large.first().map_or(0, |l| l.seconds.len())
        );
        for l in &self.large {
            let seconds = median(&l.seconds);
            let rss: Vec<String> = l
                .peak_rss
                .iter()
                .map(|(name, k)| format!("{name} {:.1}", mib(*k)))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | {:.1} | {} |",
                l.path,
                l.direction.name(),
                seconds,
                LARGE_BODY as f64 / 1e6 / seconds.max(1e-9),
                rss.join("; ")
            );
        }
        for direction in [Direction::Upload, Direction::Download] {
            let large = |prefix: &str| {
                self.large
                    .iter()
                    .find(|l| l.direction == direction && l.path.starts_with(prefix))
            };
            let Some(direct) = large("direct") else {
                continue;
            };
            let times_direct =
                |l: &LargeBody| median(&l.seconds) / median(&direct.seconds).max(1e-9);
            if let Some(ours) = large("lienthong (SQLite)") {
                let _ = write!(
                    out,
                    "\n10 MB {} through the gateways = {:.2} x the direct transfer time",
                    direction.name(),
                    times_direct(ours)
                );
                if let Some(relays) = large("relay chain") {
                    let _ = write!(
                        out,
                        " (through the relay chain, the transport alone: {:.2} x)",
                        times_direct(relays)
                    );
                }
                out.push_str(".\n");
            }
        }
        if let Some((one, two)) = &self.scaling {
            let _ = writeln!(
                out,
                "\n**Scaling** (SQLite, 100 B, gateways restarted with `--worker-threads N`): 1 thread per gateway {:.0} req/s (CPU {:.3} s / 1,000), 2 threads {:.0} req/s (CPU {:.3} s / 1,000): x{:.2}.",
                one.wrk.per_second(),
                one.per_thousand(one.cpu_total()),
                two.wrk.per_second(),
                two.per_thousand(two.cpu_total()),
                two.wrk.per_second() / one.wrk.per_second().max(1e-9)
            );
        }
        if let Some(soak) = &self.soak {
            soak.markdown(&mut out);
        }
        out
    }

    pub(super) fn json(&self, command: &str) -> Value {
        let mut settings = self.settings.clone();
        if let Some((before, after)) = &self.machine {
            settings["machine_before"] = before.to_json();
            settings["machine_after"] = after.to_json();
        }
        let row = |r: &Row| {
            json!({
                "path": r.path,
                "payload": r.payload,
                "requests": r.wrk.requests,
                "seconds": r.wrk.seconds,
                "requests_per_second": r.wrk.per_second(),
                "latency_ms": {"p50": r.wrk.p50_ms, "p99": r.wrk.p99_ms, "p99_9": r.wrk.p999_ms, "mean": r.wrk.mean_ms},
                "errors": r.wrk.errors,
                "cpu_seconds_per_1000": {
                    "servers_total": r.per_thousand(r.cpu_total()),
                    "per_process": r.cpu.iter().chain(&r.cpu_aside).map(|(n, s)| (n.clone(), json!(r.per_thousand(*s)))).collect::<serde_json::Map<_, _>>(),
                    "wrk": r.per_thousand(r.wrk.cpu_seconds),
                },
                "peak_rss_kib": r.peak_rss.iter().map(|(n, k)| (n.clone(), json!(k))).collect::<serde_json::Map<_, _>>(),
                "cpu_stolen_percent": r.stolen_percent,
            })
        };
        let mut ratios = Vec::new();
        for (payload, _) in PAYLOADS {
            for (store, prefix) in RATIO_PATHS {
                if let (Some(direct), Some(chain), Some(ours)) = (
                    self.find("direct", payload),
                    self.find("nginx", payload),
                    self.find(prefix, payload),
                ) {
                    ratios.push(json!({
                        "payload": payload,
                        "path": store,
                        "throughput_lienthong_over_nginx_chain": ours.wrk.per_second() / chain.wrk.per_second().max(1e-9),
                        "throughput_lienthong_over_direct": ours.wrk.per_second() / direct.wrk.per_second().max(1e-9),
                        "p50_added_over_direct_ms": ours.wrk.p50_ms - direct.wrk.p50_ms,
                        "cpu_per_exchange_lienthong_over_nginx_chain": ours.per_thousand(ours.cpu_total()) / chain.per_thousand(chain.cpu_total()).max(1e-9),
                    }));
                }
            }
        }
        let cpu_model = crate::bench::cpu_model().unwrap_or_default();
        json!({
            "date": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "machine": {
                "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                "cpu_model": cpu_model,
            },
            "command": command,
            "build": if cfg!(debug_assertions) { "debug" } else { "release" },
            "settings": settings,
            "rows": self.rows.iter().map(row).collect::<Vec<_>>(),
            "ratios": ratios,
            "cold_start": self.cold.iter().map(|c| json!({
                "store": c.store,
                "ms": c.millis,
                "peak_rss_kib": c.peak_rss.iter().map(|(n, k)| (n.clone(), json!(k))).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
            "large_body": self.large.iter().map(|l| json!({
                "path": l.path,
                "direction": l.direction.name(),
                "bytes": LARGE_BODY,
                "seconds": l.seconds,
                "median_seconds": median(&l.seconds),
                "peak_rss_kib": l.peak_rss.iter().map(|(n, k)| (n.clone(), json!(k))).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
            "scaling": self.scaling.as_ref().map(|(one, two)| json!({"one_thread": row(one), "two_threads": row(two)})),
            "half_load": self.half_load.as_ref().map(|h| h.json(&self.rows)),
            "soak": self.soak.as_ref().map(Soak::json),
        })
    }
}

impl HalfLoad {
    /// Direct and the gateways at each rate, lightest first: the runs below half load,
    /// then the half-load rows themselves.
    fn by_load(&self) -> impl Iterator<Item = (f64, &half_load::OpenRow, &half_load::OpenRow)> {
        let half = self
            .row("direct")
            .zip(self.row("lienthong (SQLite)"))
            .map(|(direct, gateways)| (0.5, direct, gateways));
        self.lighter
            .iter()
            .map(|p| (p.share, &p.direct, &p.gateways))
            .chain(half)
    }

    /// The table of added latency by load, with what batched at each rate.
    fn by_load_markdown(&self, out: &mut String) {
        let points: Vec<_> = self.by_load().collect();
        if points.len() < 2 {
            return;
        }
        let _ = writeln!(
            out,
            "
**Latency by load** (the same open loop, direct and lienthong (SQLite) at an eighth, a quarter and half of the gateways' 100 B throughput above, {} s each; per gateway, the messages one root signature covered and the records one log commit held, from the gateways' `/metrics` before and after each run):

| share of the throughput | rate /s | direct p50 / p99 ms | lienthong p50 / p99 ms | p50 added over direct ms | p99 added over direct ms | messages per signature (client / provider) | records per log commit (client / provider) | CPU s / 1,000 (servers) | machine idle |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            self.seconds
        );
        for (share, direct, gateways) in points {
            let (d, g) = (&direct.result, &gateways.result);
            let pair = |f: fn(&half_load::Batching) -> Option<f64>| {
                gateways.batching.as_ref().map_or("-".into(), |b| {
                    b.iter()
                        .map(|x| f(x).map_or("-".into(), |v| format!("{v:.2}")))
                        .collect::<Vec<_>>()
                        .join(" / ")
                })
            };
            let _ = writeln!(
                out,
                "| 1/{:.0} | {:.0} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} | {:.2} | {} | {} | {:.3} | {} |",
                1.0 / share,
                g.rate_asked,
                d.p50_ms,
                d.p99_ms,
                g.p50_ms,
                g.p99_ms,
                g.p50_ms - d.p50_ms,
                g.p99_ms - d.p99_ms,
                pair(half_load::Batching::per_signature),
                pair(half_load::Batching::per_commit),
                gateways.cpu_per_thousand(),
                percent(gateways.idle_percent),
            );
        }
    }

    /// The half-load row whose path starts with `prefix`.
    fn row(&self, prefix: &str) -> Option<&half_load::OpenRow> {
        self.rows.iter().find(|r| r.path.starts_with(prefix))
    }

    /// The latencies of the path that has nothing in between, to subtract.
    fn direct(&self) -> Option<&open_loop::OpenLoopResult> {
        self.row("direct").map(|r| &r.result)
    }

    fn markdown(&self, out: &mut String, closed: &[Row]) {
        let lag = self
            .rows
            .iter()
            .map(|r| r.result.send_lag_max_ms)
            .fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "\n**Half load** (open loop: requests sent at a fixed {:.0} per second, half the lienthong (SQLite) 100 B throughput above, for {} s per path, POST of the 100 B body over at most {OPEN_LOOP_CONNECTIONS} keep-alive connections; each latency runs from the request's scheduled send time to the end of its answer, so a stall counts for every request queued behind it; the generator sent at worst {lag:.2} ms late):\n\n| path | rate asked /s | rate achieved /s | p50 ms | p99 ms | p99.9 ms | max ms | p50 added over direct ms | p99 added over direct ms | errors | gateways' peak RSS MiB (client / provider) | CPU s / 1,000 (servers) | x the closed loop's | machine idle |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            self.rate, self.seconds
        );
        let direct = self.direct();
        for row in &self.rows {
            let r = &row.result;
            let added = |ours: f64, theirs: fn(&open_loop::OpenLoopResult) -> f64| {
                direct.map_or("-".into(), |d| format!("{:.2}", ours - theirs(d)))
            };
            let rss = mib_list(&row.peak_rss);
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {:.3} | {} | {} |",
                row.path,
                r.rate_asked,
                r.rate_achieved(),
                r.p50_ms,
                r.p99_ms,
                r.p999_ms,
                r.max_ms,
                added(r.p50_ms, |d| d.p50_ms),
                added(r.p99_ms, |d| d.p99_ms),
                r.errors,
                if rss.is_empty() {
                    "-".into()
                } else {
                    rss.join(" / ")
                },
                row.cpu_per_thousand(),
                closed_ratio(row, closed).map_or("-".into(), |x| format!("{x:.1}")),
                percent(row.idle_percent),
            );
        }
        let ratios: Vec<String> = self
            .rows
            .iter()
            .filter_map(|row| {
                let name = match row.path.strip_prefix(IN_MEMORY) {
                    Some(_) => "lienthong, databases in RAM",
                    None => row.path.split(':').next().unwrap_or(&row.path),
                };
                closed_ratio(row, closed).map(|x| format!("{name} x{x:.1}"))
            })
            .collect();
        let _ = writeln!(
            out,
            "\nCPU per request of each path's servers in this open loop, as a multiple of the same servers' CPU per request under wrk's closed loop above (where one wake-up of a server can serve the requests of several connections, and one signature or log commit several exchanges): {}.",
            ratios.join(", ")
        );
        let d = &self.durable_write;
        let _ = writeln!(
            out,
            "\nThe floor under it, measured in this run on the gateways' disk: a durable write of {} bytes (about one exchange's log commit) takes {:.2} ms at the median and {:.2} ms at p99 back to back ({} writes, each `fdatasync`ed), and {:.2} ms and {:.2} ms when each follows a pause of {:.2} ms, one gateway's interval between commits at this rate when none are grouped, as the log writers meet the disk in this open loop. Every exchange waits for both gateways' log commits, which overlap: the provider gateway sends its answer while its record commits and confirms the commit in a trailer; the client gateway commits its own record meanwhile and releases the answer after both.",
            d.bytes,
            d.back_to_back.p50_ms,
            d.back_to_back.p99_ms,
            d.count,
            d.paced.p50_ms,
            d.paced.p99_ms,
            d.pause_ms,
        );
        let path = |prefix: &str| self.row(prefix).map(|r| &r.result);
        if let (Some(direct), Some(disk), Some(memory)) =
            (direct, path("lienthong (SQLite)"), path(IN_MEMORY))
        {
            let _ = writeln!(
                out,
                "\nThe same gateways with their databases in RAM (tmpfs, where `fdatasync` returns at once; a measurement, not a deployment) add {:.2} ms at p50 and {:.2} ms at p99 over direct, against {:.2} ms and {:.2} ms on disk: the disk's flushes under the log commits are {:.2} ms of the p50.",
                memory.p50_ms - direct.p50_ms,
                memory.p99_ms - direct.p99_ms,
                disk.p50_ms - direct.p50_ms,
                disk.p99_ms - direct.p99_ms,
                disk.p50_ms - memory.p50_ms,
            );
        }
        self.by_load_markdown(out);
    }

    fn json(&self, closed: &[Row]) -> Value {
        let direct = self.direct();
        json!({
            "rate_asked": self.rate,
            "seconds": self.seconds,
            "connections": OPEN_LOOP_CONNECTIONS,
            "rows": self.rows.iter().map(|row| open_row_json(row, direct, closed)).collect::<Vec<_>>(),
            "by_load": self.by_load().map(|(share, direct, gateways)| json!({
                "share_of_throughput": share,
                "direct": open_row_json(direct, Some(&direct.result), closed),
                "lienthong": open_row_json(gateways, Some(&direct.result), closed),
            })).collect::<Vec<_>>(),
            "durable_write": {
                "bytes": self.durable_write.bytes,
                "count": self.durable_write.count,
                "p50_ms": self.durable_write.back_to_back.p50_ms,
                "p99_ms": self.durable_write.back_to_back.p99_ms,
                "paced": {
                    "pause_ms": self.durable_write.pause_ms,
                    "p50_ms": self.durable_write.paced.p50_ms,
                    "p99_ms": self.durable_write.paced.p99_ms,
                },
            },
        })
    }
}

/// One gateway's memory over the soak run, KiB.
struct SoakMemory<'a> {
    name: &'a str,
    /// At the first sample a minute or more in (the last one if the run was shorter).
    after_first_minute: u64,
    at_end: u64,
    max_sampled: u64,
    peak: u64,
}

impl SoakMemory<'_> {
    fn growth(&self) -> i64 {
        self.at_end as i64 - self.after_first_minute as i64
    }
}

impl Soak {
    fn memory(&self) -> Vec<SoakMemory<'_>> {
        let first_minute = self
            .samples
            .iter()
            .find(|s| s.seconds >= 60.0)
            .or(self.samples.last());
        let of = |sample: Option<&RssSample>, index: usize| {
            sample.and_then(|s| s.rss.get(index)).map_or(0, |(_, k)| *k)
        };
        self.peak_rss
            .iter()
            .enumerate()
            .map(|(index, (name, peak))| SoakMemory {
                name,
                after_first_minute: of(first_minute, index),
                at_end: of(self.samples.last(), index),
                max_sampled: self
                    .samples
                    .iter()
                    .map(|s| of(Some(s), index))
                    .max()
                    .unwrap_or(0),
                peak: *peak,
            })
            .collect()
    }

    fn markdown(&self, out: &mut String) {
        let r = &self.result;
        let _ = writeln!(
            out,
            "\n**Soak** (lienthong on SQLite, gateways restarted, open loop at {:.0} requests/s for {} s, their RSS read every {} s): {} of {} requests answered 2xx ({:.0} /s), p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms, {} errors; CPU time stolen by the hypervisor during the soak {} (at most {} in any {} s between two readings).\n\n| gateway | RSS after 1 min MiB | RSS at end MiB | peak RSS MiB | growth from 1 min to end MiB |\n|---|---:|---:|---:|---:|",
            self.rate,
            self.seconds,
            SOAK_SAMPLE_EVERY.as_secs(),
            r.answered,
            r.sent,
            r.rate_achieved(),
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            r.max_ms,
            r.errors,
            percent(self.stolen_percent),
            percent(
                self.samples
                    .iter()
                    .filter_map(|s| s.stolen_percent)
                    .reduce(f64::max)
            ),
            SOAK_SAMPLE_EVERY.as_secs(),
        );
        for m in self.memory() {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {:.1} | {:+.1} |",
                m.name,
                mib(m.after_first_minute),
                mib(m.at_end),
                mib(m.peak),
                m.growth() as f64 / 1024.0,
            );
        }
    }

    fn json(&self) -> Value {
        json!({
            "rate_asked": self.rate,
            "seconds": self.seconds,
            "sample_every_seconds": SOAK_SAMPLE_EVERY.as_secs(),
            "result": open_json(&self.result),
            "memory": self.memory().iter().map(|m| json!({
                "gateway": m.name,
                "rss_after_first_minute_kib": m.after_first_minute,
                "rss_at_end_kib": m.at_end,
                "rss_max_sampled_kib": m.max_sampled,
                "peak_rss_kib": m.peak,
                "growth_kib": m.growth(),
            })).collect::<Vec<_>>(),
            "cpu_stolen_percent": self.stolen_percent,
            "samples": self.samples.iter().map(|s| json!({
                "seconds": s.seconds,
                "rss_kib": kib_map(&s.rss),
                "cpu_stolen_percent": s.stolen_percent,
            })).collect::<Vec<_>>(),
        })
    }
}

/// An open-loop row: its latencies, what they add over `direct`'s, its servers' CPU, and
/// through the gateways how much their work batched.
fn open_row_json(
    row: &half_load::OpenRow,
    direct: Option<&open_loop::OpenLoopResult>,
    closed: &[Row],
) -> Value {
    let r = &row.result;
    let mut value = open_json(r);
    value["path"] = json!(row.path);
    value["p50_added_over_direct_ms"] = json!(direct.map(|d| r.p50_ms - d.p50_ms));
    value["p99_added_over_direct_ms"] = json!(direct.map(|d| r.p99_ms - d.p99_ms));
    value["peak_rss_kib"] = kib_map(&row.peak_rss);
    value["cpu_seconds_per_1000"] = json!({
        "servers_total": row.cpu_per_thousand(),
        "per_process": row.cpu.iter().map(|(n, s)| (n.clone(), json!(row.per_thousand(*s)))).collect::<serde_json::Map<_, _>>(),
    });
    value["cpu_vs_closed_loop"] = json!(closed_ratio(row, closed));
    value["machine_idle_percent"] = json!(row.idle_percent);
    if let Some(batching) = &row.batching {
        value["batching"] = ["client gateway", "provider gateway"]
            .iter()
            .zip(batching)
            .map(|(name, b)| {
                let counts = json!({
                    "signatures": b.signatures,
                    "messages_signed": b.messages,
                    "messages_per_signature": b.per_signature(),
                    "log_commits": b.commits,
                    "records": b.records,
                    "records_per_commit": b.per_commit(),
                });
                ((*name).to_owned(), counts)
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    value
}

/// The figures of one open-loop run.
fn open_json(r: &open_loop::OpenLoopResult) -> Value {
    json!({
        "rate_asked": r.rate_asked,
        "rate_achieved": r.rate_achieved(),
        "sent": r.sent,
        "answered": r.answered,
        "seconds": r.seconds,
        "latency_ms": {"p50": r.p50_ms, "p99": r.p99_ms, "p99_9": r.p999_ms, "max": r.max_ms, "mean": r.mean_ms},
        "errors": r.errors,
        "non_2xx": r.non_2xx,
        "send_lag_max_ms": r.send_lag_max_ms,
    })
}

fn kib_map(values: &[(String, u64)]) -> Value {
    Value::Object(
        values
            .iter()
            .map(|(name, kib)| (name.clone(), json!(kib)))
            .collect(),
    )
}

/// A percentage as the tables show it ("-" if unknown).
fn percent(value: Option<f64>) -> String {
    value.map_or("-".into(), |p| format!("{p:.1} %"))
}

/// The servers' CPU per request in an open-loop row over that in the closed-loop row of the
/// same path (100 B, wrk).
fn closed_ratio(row: &half_load::OpenRow, closed: &[Row]) -> Option<f64> {
    let wrk = closed
        .iter()
        .find(|r| r.path == row.closed && r.payload == PAYLOADS[0].0)?;
    let per_thousand = wrk.per_thousand(wrk.cpu_total());
    (per_thousand > 0.0).then(|| row.cpu_per_thousand() / per_thousand)
}
