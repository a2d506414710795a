//! Rendering a `bench compare` run: the Markdown section of BENCHMARKS.md and the JSON
//! beside it.

use super::*;

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
            "One run of `{command}`: every row uses the same load generator (wrk, {} threads, {} connections, {} s per row after a warm-up, POST of a JSON body that the provider echoes back), on this machine's cores shared by wrk and every server. nginx: {} worker processes each, keep-alive upstreams, no access log. Gateways: separate `lienthong gateway serve` processes, {} worker threads each, with signing, verification, OCSP, access control and the durable message log on. CPU = user + system seconds of each server process (and its children) during the row, per 1,000 exchanges; wrk's own CPU is listed apart.\n",
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
            "Commit {}; load average (1, 5, 15 min) before the run {}, after it {}.\n",
            s["commit"].as_str().unwrap_or("unknown"),
            s["load_average_before"].as_str().unwrap_or("?"),
            s["load_average_after"].as_str().unwrap_or("?"),
        );
        out.push_str("| path | payload | requests/s | p50 ms | p99 ms | p99.9 ms | CPU s / 1,000 (servers) | per process | gateways' peak RSS MiB (client / provider) | errors | wrk CPU s / 1,000 |\n|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|\n");
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
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.3} | {} | {} | {} | {:.3} |",
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
            );
        }
        out.push_str("\n**Ratios** (same run):\n\n| payload | store | throughput lienthong / nginx chain | throughput lienthong / direct | p50 added over direct, ms | p99 lienthong ms | CPU per exchange lienthong / nginx chain |\n|---|---|---:|---:|---:|---:|---:|\n");
        for (payload, _) in PAYLOADS {
            for store in ["SQLite", "PostgreSQL"] {
                let (Some(direct), Some(chain), Some(ours)) = (
                    self.find("direct", payload),
                    self.find("nginx", payload),
                    self.find(&format!("lienthong ({store})"), payload),
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
            "\n**10 MB body** (one POST at a time of {} bytes to the provider's streaming digest endpoint, {} times; peak RSS during these transfers):\n\n| path | median transfer s | MB/s | peak RSS MiB |\n|---|---:|---:|---|",
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
                "| {} | {:.3} | {:.1} | {} |",
                l.path,
                seconds,
                LARGE_BODY as f64 / 1e6 / seconds.max(1e-9),
                rss.join("; ")
            );
        }
        if let (Some(direct), Some(ours)) = (self.large.first(), self.large.get(1)) {
            let _ = writeln!(
                out,
                "\n10 MB through the gateways = {:.2} x the direct transfer time.",
                median(&ours.seconds) / median(&direct.seconds).max(1e-9)
            );
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
        out
    }

    pub(super) fn json(&self, command: &str) -> Value {
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
            })
        };
        let mut ratios = Vec::new();
        for (payload, _) in PAYLOADS {
            for store in ["SQLite", "PostgreSQL"] {
                if let (Some(direct), Some(chain), Some(ours)) = (
                    self.find("direct", payload),
                    self.find("nginx", payload),
                    self.find(&format!("lienthong ({store})"), payload),
                ) {
                    ratios.push(json!({
                        "payload": payload,
                        "store": store,
                        "throughput_lienthong_over_nginx_chain": ours.wrk.per_second() / chain.wrk.per_second().max(1e-9),
                        "throughput_lienthong_over_direct": ours.wrk.per_second() / direct.wrk.per_second().max(1e-9),
                        "p50_added_over_direct_ms": ours.wrk.p50_ms - direct.wrk.p50_ms,
                        "cpu_per_exchange_lienthong_over_nginx_chain": ours.per_thousand(ours.cpu_total()) / chain.per_thousand(chain.cpu_total()).max(1e-9),
                    }));
                }
            }
        }
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_owned())
            })
            .unwrap_or_default();
        json!({
            "date": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "machine": {
                "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                "cpu_model": cpu_model,
            },
            "command": command,
            "build": if cfg!(debug_assertions) { "debug" } else { "release" },
            "settings": self.settings,
            "rows": self.rows.iter().map(row).collect::<Vec<_>>(),
            "ratios": ratios,
            "cold_start": self.cold.iter().map(|c| json!({
                "store": c.store,
                "ms": c.millis,
                "peak_rss_kib": c.peak_rss.iter().map(|(n, k)| (n.clone(), json!(k))).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
            "large_body": self.large.iter().map(|l| json!({
                "path": l.path,
                "bytes": LARGE_BODY,
                "seconds": l.seconds,
                "median_seconds": median(&l.seconds),
                "peak_rss_kib": l.peak_rss.iter().map(|(n, k)| (n.clone(), json!(k))).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
            "scaling": self.scaling.as_ref().map(|(one, two)| json!({"one_thread": row(one), "two_threads": row(two)})),
        })
    }
}
