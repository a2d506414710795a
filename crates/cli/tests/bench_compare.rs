//! The benchmark harness works end to end: `lienthong bench compare --quick` starts the
//! sample provider, the nginx chain, the trust services and both gateways as separate
//! processes (on SQLite and PostgreSQL), drives them with wrk, and writes its section of
//! BENCHMARKS.md (keeping the others) and BENCHMARKS.json, with the open-loop runs at half
//! the gateways' throughput. No figure is checked against a threshold: only that every path
//! was measured and every exchange succeeded.

use std::process::Command;

#[test]
fn quick_compare_measures_every_path_and_writes_its_section() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let markdown = dir.path().join("BENCHMARKS.md");
    std::fs::write(
        &markdown,
        "# Benchmarks\n\n<!-- bench:other:start -->\nkept\n<!-- bench:other:end -->\n",
    )
    .expect("write BENCHMARKS.md");
    let output = Command::new(env!("CARGO_BIN_EXE_lienthong"))
        .args(["bench", "compare", "--quick", "--seconds", "2", "--write"])
        .arg(&markdown)
        .env("LIENTHONG_LOG", "warn")
        .output()
        .expect("run lienthong bench compare");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench compare failed: {stdout}\n{stderr}"
    );

    let text = std::fs::read_to_string(&markdown).expect("read BENCHMARKS.md");
    assert!(
        text.contains("<!-- bench:other:start -->\nkept\n"),
        "{text}"
    );
    assert!(text.contains("<!-- bench:compare:start -->"), "{text}");
    assert!(text.contains("| nginx chain: wrk -> nginx -> nginx -> provider | 100 B |"));
    assert!(text.contains("**Half load** (open loop"), "{text}");
    assert!(text.contains("**Latency by load**"), "{text}");
    assert!(text.contains("a durable write of "), "{text}");
    assert!(text.contains("when each follows a pause of "), "{text}");
    assert!(
        text.contains("CPU per request of each path's servers in this open loop"),
        "{text}"
    );
    assert!(
        text.contains("The same gateways with their databases in RAM"),
        "{text}"
    );
    assert!(
        text.contains("| nginx chain: client -> nginx -> nginx -> provider | "),
        "{text}"
    );
    assert!(
        !text.contains("**Soak**"),
        "no soak run unless asked: {text}"
    );

    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("BENCHMARKS.json")).expect("read BENCHMARKS.json"),
    )
    .expect("BENCHMARKS.json is JSON");
    assert!(json["machine"]["nproc"].as_u64().is_some_and(|n| n >= 1));
    // The machine's state is read before and after the run, in the JSON and the text.
    for reading in ["machine_before", "machine_after"] {
        let probe = &json["settings"][reading];
        assert!(
            probe["compute_ns"].as_f64().is_some_and(|ns| ns > 0.0),
            "{probe}"
        );
        assert!(
            probe["copy_gb_per_s"].as_f64().is_some_and(|g| g > 0.0),
            "{probe}"
        );
        let chase = probe["chase"].as_array().expect("chase readings");
        assert_eq!(chase.len(), 3, "{probe}");
        assert!(
            chase
                .iter()
                .all(|c| c["ns_per_load"].as_f64().is_some_and(|ns| ns > 0.0)),
            "{probe}"
        );
    }
    assert!(
        text.contains("The machine's state (`lienthong bench machine`), before the run: compute "),
        "{text}"
    );
    assert!(
        json["command"]
            .as_str()
            .is_some_and(|c| c.contains("bench compare --quick"))
    );
    let rows = json["rows"].as_array().expect("rows");
    for (prefix, payloads) in [
        ("direct", &["100 B", "10 KB"][..]),
        ("nginx chain", &["100 B", "10 KB"]),
        ("relay chain", &["100 B", "10 KB"]),
        ("lienthong (SQLite)", &["100 B", "10 KB"]),
        ("lienthong (PostgreSQL)", &["100 B", "10 KB"]),
        ("lienthong, databases in RAM", &["100 B"]),
    ] {
        for &payload in payloads {
            let row = rows
                .iter()
                .find(|r| {
                    r["path"].as_str().is_some_and(|p| p.starts_with(prefix))
                        && r["payload"] == payload
                })
                .unwrap_or_else(|| panic!("no row for {prefix}, {payload}: {json:#}"));
            assert!(row["requests"].as_u64().is_some_and(|n| n > 0), "{row:#}");
            assert!(
                row["cpu_stolen_percent"]
                    .as_f64()
                    .is_some_and(|p| (0.0..=100.0).contains(&p)),
                "the CPU time stolen during the row, read from /proc/stat: {row:#}"
            );
            assert_eq!(row["errors"], 0, "{row:#}");
            assert!(
                row["cpu_seconds_per_1000"]["servers_total"]
                    .as_f64()
                    .is_some_and(|s| s > 0.0),
                "{row:#}"
            );
            if prefix.starts_with("lienthong") {
                for gateway in ["client gateway", "provider gateway"] {
                    assert!(
                        row["peak_rss_kib"][gateway].as_u64().is_some_and(|k| k > 0),
                        "{row:#}"
                    );
                }
            }
        }
    }
    assert_eq!(json["ratios"].as_array().map(Vec::len), Some(6), "{json:#}");
    assert_eq!(json["cold_start"].as_array().map(Vec::len), Some(2));
    let half = &json["half_load"];
    let rate = half["rate_asked"].as_f64().expect("half_load.rate_asked");
    assert!(rate > 0.0, "{half:#}");
    let durable = &half["durable_write"];
    assert_eq!(durable["count"].as_u64(), Some(300), "{durable:#}");
    assert!(
        durable["p50_ms"].as_f64().is_some_and(|ms| ms > 0.0)
            && durable["p99_ms"].as_f64() >= durable["p50_ms"].as_f64(),
        "a measured durable-write floor: {durable:#}"
    );
    let paced = &durable["paced"];
    assert!(
        paced["pause_ms"]
            .as_f64()
            .is_some_and(|ms| (ms - (1000.0 / rate).min(10.0)).abs() < 1e-6)
            && paced["p50_ms"].as_f64().is_some_and(|ms| ms > 0.0)
            && paced["p99_ms"].as_f64() >= paced["p50_ms"].as_f64(),
        "the floor again with a pause of one commit interval at the half-load rate (at most 10 ms): {durable:#}"
    );
    let half_rows = half["rows"].as_array().expect("half_load.rows");
    assert_eq!(
        half_rows.len(),
        5,
        "direct, nginx chain, relay chain, lienthong, lienthong with its databases in RAM: {half:#}"
    );
    for (row, prefix) in half_rows.iter().zip([
        "direct",
        "nginx chain",
        "relay chain",
        "lienthong (SQLite)",
        "lienthong, databases in RAM",
    ]) {
        assert!(
            row["path"].as_str().is_some_and(|p| p.starts_with(prefix)),
            "{row:#}"
        );
        assert_eq!(row["rate_asked"].as_f64(), Some(rate), "{row:#}");
        assert!(row["sent"].as_u64().is_some_and(|n| n > 0), "{row:#}");
        assert!(row["answered"].as_u64().is_some_and(|n| n > 0), "{row:#}");
        assert!(
            row["rate_achieved"].as_f64().is_some_and(|r| r > 0.0),
            "{row:#}"
        );
        assert!(
            row["cpu_seconds_per_1000"]["servers_total"]
                .as_f64()
                .is_some_and(|s| s > 0.0),
            "the CPU its servers used: {row:#}"
        );
        assert!(
            row["cpu_vs_closed_loop"].as_f64().is_some_and(|x| x > 0.0),
            "read beside the closed-loop row of the same path: {row:#}"
        );
        assert!(
            row["machine_idle_percent"]
                .as_f64()
                .is_some_and(|p| (0.0..=100.0).contains(&p)),
            "{row:#}"
        );
        let latency = &row["latency_ms"];
        assert!(
            latency["p50"].as_f64() <= latency["p99"].as_f64()
                && latency["p99"].as_f64() <= latency["max"].as_f64(),
            "{row:#}"
        );
    }
    assert_eq!(half_rows[0]["errors"], 0, "{:#}", half_rows[0]);
    assert_eq!(half_rows[0]["p50_added_over_direct_ms"], 0.0);
    for row in &half_rows[3..] {
        for gateway in ["client gateway", "provider gateway"] {
            assert!(
                row["peak_rss_kib"][gateway].as_u64().is_some_and(|k| k > 0),
                "{row:#}"
            );
        }
    }
    let by_load = half["by_load"].as_array().expect("half_load.by_load");
    let shares: Vec<f64> = by_load
        .iter()
        .filter_map(|p| p["share_of_throughput"].as_f64())
        .collect();
    assert_eq!(shares, [0.125, 0.25, 0.5], "{by_load:#?}");
    for point in by_load {
        let share = point["share_of_throughput"].as_f64().unwrap_or_default();
        for path in ["direct", "lienthong"] {
            let row = &point[path];
            assert!(
                row["rate_asked"]
                    .as_f64()
                    .is_some_and(|r| (r - 2.0 * rate * share).abs() < 1e-6),
                "{point:#}"
            );
            assert!(row["answered"].as_u64().is_some_and(|n| n > 0), "{point:#}");
        }
        for gateway in ["client gateway", "provider gateway"] {
            let batching = &point["lienthong"]["batching"][gateway];
            for ratio in ["messages_per_signature", "records_per_commit"] {
                assert!(
                    batching[ratio].as_f64().is_some_and(|x| x >= 1.0),
                    "each signature covers a message or more, each commit a record or more: {point:#}"
                );
            }
        }
        assert!(point["direct"]["batching"].is_null(), "{point:#}");
    }
    assert!(json["soak"].is_null(), "no soak run unless asked");
    let large = json["large_body"].as_array().expect("large_body");
    assert_eq!(
        large.len(),
        8,
        "direct, relay chain, SQLite, PostgreSQL; upload and download"
    );
    for direction in ["upload", "download"] {
        assert_eq!(
            large.iter().filter(|l| l["direction"] == direction).count(),
            4,
            "{direction}"
        );
    }
    assert!(
        large
            .iter()
            .all(|l| l["median_seconds"].as_f64().is_some_and(|s| s > 0.0))
    );
}
