//! The pieces of `lienthong bench compare`: child processes, their CPU time and peak memory
//! read from `/proc`, the nginx chain's configuration, and `wrk` runs with a Lua script that
//! reports what `wrk --latency` does not (p99.9, errors) as one JSON line.

use anyhow::{Context as _, bail};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A child process that is terminated (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Process {
    pub(crate) name: String,
    child: std::process::Child,
    pub(crate) log: PathBuf,
}

impl Process {
    /// Spawn `command` with standard output and error to `log`.
    pub(crate) fn spawn(name: &str, mut command: Command, log: PathBuf) -> anyhow::Result<Self> {
        let out =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = command
            .spawn()
            .with_context(|| format!("start {name} ({command:?})"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fail with the end of its log if it has exited.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}): {}", self.name, tail(&self.log, 2000));
        }
        Ok(())
    }

    /// SIGTERM, wait up to 10 s, then SIGKILL.
    pub(crate) fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `max` bytes of a log file.
pub(crate) fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].trim().to_owned()
}

/// A free TCP port on 127.0.0.1 (released for the process that will bind it).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Find a program on `PATH` or in the sbin directories (nginx lives in /usr/sbin).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The machine's CPU time so far, in clock ticks: all of it, the part no process wanted
/// (idle and waiting for I/O), and the part the hypervisor gave to other guests while
/// this one wanted to run ("steal"), from `/proc/stat`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuTime {
    total: u64,
    idle: u64,
    steal: u64,
}

impl CpuTime {
    /// Now; `None` where `/proc/stat` is not there.
    pub(crate) fn now() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = text
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .take(8)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        Some(Self {
            total: fields.iter().sum(),
            idle: fields.get(3)? + fields.get(4)?,
            steal: *fields.get(7)?,
        })
    }

    /// The percentage of the CPU time since `self` that was stolen.
    pub(crate) fn stolen_percent_since(self) -> Option<f64> {
        self.percent_since(|t| t.steal)
    }

    /// The percentage of the CPU time since `self` that was idle.
    pub(crate) fn idle_percent_since(self) -> Option<f64> {
        self.percent_since(|t| t.idle)
    }

    fn percent_since(self, part: fn(&Self) -> u64) -> Option<f64> {
        let now = Self::now()?;
        let total = now.total.checked_sub(self.total).filter(|t| *t > 0)?;
        Some(100.0 * part(&now).saturating_sub(part(&self)) as f64 / total as f64)
    }
}

pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// State, parent, CPU ticks of its own (utime + stime) and of the children it has reaped
/// (cutime + cstime), of one process.
fn stat(pid: u32) -> Option<(char, u32, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = text
        .get(text.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let state = fields.first()?.chars().next()?;
    let parent = fields.get(1)?.parse().ok()?;
    let sum = |range: std::ops::Range<usize>| -> Option<u64> {
        Some(
            fields
                .get(range)?
                .iter()
                .map(|f| f.parse::<u64>().unwrap_or(0))
                .sum(),
        )
    };
    Some((state, parent, sum(11..13)?, sum(13..15)?))
}

/// CPU seconds used so far by `root` and all its descendants (nginx workers, PostgreSQL
/// backends), including children they have reaped.
pub(crate) fn tree_cpu_seconds(root: u32, ticks_per_second: f64) -> f64 {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut ticks: HashMap<u32, u64> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some((_, parent, own, reaped)) = stat(pid) {
                children.entry(parent).or_default().push(pid);
                ticks.insert(pid, own + reaped);
            }
        }
    }
    let mut total = 0;
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        total += ticks.get(&pid).copied().unwrap_or(0);
        todo.extend(children.get(&pid).into_iter().flatten());
    }
    total as f64 / ticks_per_second
}

/// CPU seconds used so far by one process alone (all its threads, no children).
pub(crate) fn process_cpu_seconds(pid: u32, ticks_per_second: f64) -> f64 {
    stat(pid).map_or(0.0, |(_, _, own, _)| own as f64 / ticks_per_second)
}

/// Peak resident set size (VmHWM) of one process, in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resident set size now (VmRSS) of one process, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// One `KiB` field of `/proc/PID/status`.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Reset a process's VmHWM to its current RSS (Linux >= 4.0; needs the right to write
/// `/proc/PID/clear_refs`, which the owner or root has).
pub(crate) fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// One nginx instance as a reverse proxy from `listen` to `upstream` (both on loopback):
/// keep-alive upstream connections, no access log, no TLS, `workers` worker processes.
pub(crate) fn spawn_nginx(
    nginx: &Path,
    dir: &Path,
    name: &str,
    listen: u16,
    upstream: u16,
    workers: usize,
) -> anyhow::Result<Process> {
    std::fs::create_dir_all(dir)?;
    let d = dir.display();
    let config = format!(
        "# Generated by `lienthong bench compare`: a plain reverse proxy, the baseline.
daemon off;
master_process on;
user root;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 64m;
    keepalive_requests 1000000;
    upstream next {{
        server 127.0.0.1:{upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{listen} reuseport;
        location / {{
            proxy_pass http://next;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
}}
"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, config)?;
    let mut command = Command::new(nginx);
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(dir.join("error.log"));
    Process::spawn(name, command, dir.join("stdout.log"))
}

/// One load-generator run.
#[derive(Debug, Clone)]
pub(crate) struct Load<'a> {
    pub(crate) url: &'a str,
    /// The X-Road-Client header, for requests through a gateway.
    pub(crate) client: Option<&'a str>,
    /// The JSON body to POST.
    pub(crate) body: &'a Path,
    pub(crate) seconds: u64,
    pub(crate) connections: usize,
    pub(crate) threads: usize,
}

/// What `wrk` measured, and the CPU it used itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct WrkResult {
    pub(crate) requests: u64,
    pub(crate) seconds: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) mean_ms: f64,
    /// Connect, read, write errors, timeouts and answers with status >= 400.
    pub(crate) errors: u64,
    pub(crate) cpu_seconds: f64,
}

impl WrkResult {
    pub(crate) fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }
}

const RESULT_MARK: &str = "LIENTHONG_RESULT ";

/// Run `wrk` (POST the body file, with the X-Road-Client header when given).
pub(crate) fn run_wrk(
    wrk: &Path,
    work: &Path,
    load: &Load<'_>,
    ticks_per_second: f64,
) -> anyhow::Result<WrkResult> {
    let lua_string = |s: &str| format!("{s:?}");
    let client = load
        .client
        .map(|c| format!("wrk.headers[\"X-Road-Client\"] = {}\n", lua_string(c)))
        .unwrap_or_default();
    let script = format!(
        r#"-- Generated by `lienthong bench compare`.
local file = assert(io.open({body}, "rb"))
wrk.body = file:read("*a")
file:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{client}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{RESULT_MARK}{{"requests":%.0f,"duration_us":%.0f,"errors":%.0f,"status_errors":%.0f,"p50_us":%.0f,"p99_us":%.0f,"p999_us":%.0f,"mean_us":%.3f}}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.mean))
end
"#,
        body = lua_string(&load.body.display().to_string()),
    );
    let script_path = work.join("wrk.lua");
    std::fs::write(&script_path, script)?;
    let mut child = Command::new(wrk)
        .arg("-t")
        .arg(load.threads.to_string())
        .arg("-c")
        .arg(load.connections.to_string())
        .arg("-d")
        .arg(format!("{}s", load.seconds.max(1)))
        .args(["--timeout", "10s", "-s"])
        .arg(&script_path)
        .arg(load.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", wrk.display()))?;
    // Read wrk's own CPU time while it is a zombie, before reaping it.
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(load.seconds + 60);
    let mut cpu_seconds = 0.0;
    while Instant::now() < deadline {
        match stat(pid) {
            Some(('Z', _, ticks, _)) => {
                cpu_seconds = ticks as f64 / ticks_per_second;
                break;
            }
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
            None => break,
        }
    }
    if Instant::now() >= deadline {
        let _ = child.kill();
    }
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(RESULT_MARK))
        .with_context(|| {
            format!(
                "wrk gave no result ({}): {stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let value: Value = serde_json::from_str(line).context("parse wrk's result")?;
    let number = |key: &str| value[key].as_f64().unwrap_or(0.0);
    Ok(WrkResult {
        requests: number("requests") as u64,
        seconds: number("duration_us") / 1e6,
        p50_ms: number("p50_us") / 1e3,
        p99_ms: number("p99_us") / 1e3,
        p999_ms: number("p999_us") / 1e3,
        mean_ms: number("mean_us") / 1e3,
        errors: number("errors") as u64,
        cpu_seconds,
    })
}

/// A JSON document of exactly `size` bytes (`size` >= 32).
pub(crate) fn json_payload(size: usize) -> Vec<u8> {
    let head = br#"{"id":"001099012345","data":""#;
    let tail = br#""}"#;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head);
    body.resize(size.saturating_sub(tail.len()).max(head.len()), b'x');
    body.extend_from_slice(tail);
    body
}

/// The commit a run measured, as the report names it: `hash`, and the files that differed
/// from it (`git status --porcelain` lines), so that a reader can tell a run of changed
/// code from one whose working tree only had a document edited.
pub(crate) fn commit_label(hash: &str, porcelain: &str) -> String {
    const NAMED: usize = 4;
    let files: Vec<&str> = porcelain
        .lines()
        // `XY PATH`; the caller's output may have lost the first line's leading blank.
        .filter_map(|line| line.trim_start().split_once(' '))
        .map(|(_, path)| path.trim_start())
        .map(|path| path.rsplit(" -> ").next().unwrap_or(path))
        .filter(|path| !path.is_empty())
        .collect();
    match files.len() {
        0 => hash.to_owned(),
        n if n <= NAMED => format!("{hash} (with uncommitted changes to {})", files.join(", ")),
        n => format!(
            "{hash} (with uncommitted changes to {n} files: {}, ...)",
            files[..NAMED].join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_json_of_the_asked_size() {
        for size in [100, 10 * 1024, 1_000_003] {
            let body = json_payload(size);
            assert_eq!(body.len(), size);
            let value: Value = serde_json::from_slice(&body).expect("valid JSON");
            assert_eq!(value["id"], "001099012345");
        }
    }

    #[test]
    fn own_cpu_time_and_peak_memory_are_read_from_proc() {
        let pid = std::process::id();
        let mut spin = 0u64;
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(50) {
            spin = spin.wrapping_add(1);
        }
        assert!(spin > 0);
        assert!(tree_cpu_seconds(pid, clock_ticks()) > 0.0);
        assert!(peak_rss_kib(pid).is_some_and(|kib| kib > 0));
        assert!(rss_kib(pid).is_some_and(|kib| kib > 0 && Some(kib) <= peak_rss_kib(pid)));
        assert!(tree_cpu_seconds(u32::MAX, 100.0) == 0.0);
    }

    #[test]
    fn a_commit_is_named_with_the_files_that_differed_from_it() {
        assert_eq!(commit_label("abc1234", ""), "abc1234");
        assert_eq!(
            commit_label("abc1234", " M BENCHMARKS.md\n"),
            "abc1234 (with uncommitted changes to BENCHMARKS.md)"
        );
        assert_eq!(
            commit_label("abc1234", "M BENCHMARKS.md\n M README.md"),
            "abc1234 (with uncommitted changes to BENCHMARKS.md, README.md)",
            "output trimmed at its start"
        );
        assert_eq!(
            commit_label("abc1234", "M  crates/a.rs\nR  old.rs -> new.rs\n"),
            "abc1234 (with uncommitted changes to crates/a.rs, new.rs)"
        );
        let many = " M a\n M b\n M c\n M d\n M e\n";
        assert_eq!(
            commit_label("abc1234", many),
            "abc1234 (with uncommitted changes to 5 files: a, b, c, d, ...)"
        );
    }
}
