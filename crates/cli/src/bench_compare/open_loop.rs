//! An open-loop load generator: requests sent at a fixed rate, whatever the server does,
//! for latency at a given load (wrk is closed-loop: a slow answer holds back the requests
//! behind it, so a stall hides itself).
//!
//! Request `i` is due at `t0 + i / rate`. A thread of its own (the runtime's timer ticks
//! every millisecond, too coarse at thousands of requests per second) wakes at each due
//! time and hands the request to the runtime, where it waits for one of a bounded set of
//! keep-alive HTTP/1.1 connections. Its latency runs from the due time to the last byte of
//! the answer: the generator's own lateness and the wait for a free connection count, as
//! they would for a real client (no coordinated omission).

use anyhow::Context as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};

/// One open-loop run.
#[derive(Debug, Clone)]
pub(crate) struct OpenLoad<'a> {
    pub(crate) url: &'a str,
    /// The X-Road-Client header, for requests through a gateway.
    pub(crate) client: Option<&'a str>,
    /// The JSON body to POST; empty for a GET.
    pub(crate) body: &'a [u8],
    /// Requests per second.
    pub(crate) rate: f64,
    pub(crate) seconds: f64,
    /// Requests in flight at most (one keep-alive connection each).
    pub(crate) connections: usize,
}

/// What an open-loop run measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct OpenLoopResult {
    pub(crate) rate_asked: f64,
    pub(crate) sent: u64,
    /// Answers with a 2xx status.
    pub(crate) answered: u64,
    /// From the first due time to the last answer.
    pub(crate) seconds: f64,
    /// Of every complete answer, whatever its status.
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) mean_ms: f64,
    /// Answers with another status.
    pub(crate) non_2xx: u64,
    /// Connection errors, timeouts, and non-2xx answers.
    pub(crate) errors: u64,
    /// How late the generator itself handed a request over, at worst: a check that the
    /// latencies are the servers' and not this machine's scheduling.
    pub(crate) send_lag_max_ms: f64,
    /// The slowest answers, slowest first: when each was due (seconds into the run) and
    /// how long it took (ms). Periodic stalls show as evenly spaced times.
    pub(crate) slowest: Vec<(f64, f64)>,
}

impl OpenLoopResult {
    pub(crate) fn rate_achieved(&self) -> f64 {
        self.answered as f64 / self.seconds.max(1e-9)
    }
}

/// Seconds an answer may take before it counts as an error (as wrk's `--timeout`).
const TIMEOUT: Duration = Duration::from_secs(10);
/// How many of the slowest answers a result lists.
const SLOWEST: usize = 20;
/// Requests sent, in parallel, before the measured run: they open connections.
const WARM_UP: usize = 8;

/// Run `load`, blocking this thread (which must not be one of `runtime`'s workers) until
/// every request has been answered or has failed.
pub(crate) fn run(
    runtime: &tokio::runtime::Handle,
    load: &OpenLoad<'_>,
) -> anyhow::Result<OpenLoopResult> {
    anyhow::ensure!(
        load.rate > 0.0 && load.seconds > 0.0,
        "an open-loop run needs a rate and a duration"
    );
    let http = reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(load.connections)
        .timeout(TIMEOUT)
        .build()
        .context("build the load generator's HTTP client")?;
    let exchange = Exchange {
        http,
        url: load.url.to_owned(),
        client: load.client.map(str::to_owned),
        body: load.body.to_vec(),
    };
    runtime.block_on(async {
        let mut warm_up = tokio::task::JoinSet::new();
        for _ in 0..WARM_UP.min(load.connections) {
            let exchange = exchange.clone();
            warm_up.spawn(async move { exchange.send().await });
        }
        warm_up.join_all().await;
    });

    let total = request_count(load.rate, load.seconds);
    let connections = Arc::new(Semaphore::new(load.connections.max(1)));
    let (outcomes, mut received) = mpsc::unbounded_channel::<Outcome>();
    let tally = runtime.spawn(async move {
        let mut tally = Tally::default();
        while let Some(outcome) = received.recv().await {
            tally.add(outcome);
        }
        tally
    });
    let start = Instant::now();
    let mut send_lag_max = Duration::ZERO;
    for index in 0..total {
        let due = start + due_offset(index, load.rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else {
            send_lag_max = send_lag_max.max(now - due);
        }
        let exchange = exchange.clone();
        let connections = connections.clone();
        let outcomes = outcomes.clone();
        runtime.spawn(async move {
            // Never closed; were it, the request would go out without waiting.
            let _permit = connections.acquire_owned().await;
            let status = exchange.send().await;
            let _ = outcomes.send(Outcome {
                status,
                latency: due.elapsed(),
                due,
                done: Instant::now(),
            });
        });
    }
    // The tally ends when the last request's sender is dropped.
    drop(outcomes);
    let tally = runtime
        .block_on(tally)
        .context("collect the load generator's answers")?;
    Ok(tally.summary(load.rate, total, start, send_lag_max))
}

/// The number of requests of a run: one per `1 / rate` seconds, at least one.
pub(crate) fn request_count(rate: f64, seconds: f64) -> u64 {
    ((rate * seconds).round() as u64).max(1)
}

/// When request `index` is due, after the first.
pub(crate) fn due_offset(index: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(index as f64 / rate)
}

/// The nearest-rank percentile `q` (0-100) of sorted values; 0 if there are none.
pub(crate) fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // Less a hair, so that 99.9 % of 1,000 is rank 999 despite the floating point.
    let rank = (q / 100.0 * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One request, cloned for each send.
#[derive(Clone)]
struct Exchange {
    http: reqwest::Client,
    url: String,
    client: Option<String>,
    body: Vec<u8>,
}

impl Exchange {
    /// POST the body (GET if it is empty) and read the whole answer: its status, or `None` if it failed.
    async fn send(&self) -> Option<u16> {
        let mut request = if self.body.is_empty() {
            self.http.get(&self.url)
        } else {
            self.http
                .post(&self.url)
                .header("Content-Type", "application/json")
                .body(self.body.clone())
        };
        if let Some(client) = &self.client {
            request = request.header("X-Road-Client", client);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        response.bytes().await.ok()?;
        Some(status)
    }
}

struct Outcome {
    status: Option<u16>,
    latency: Duration,
    due: Instant,
    done: Instant,
}

#[derive(Default)]
struct Tally {
    /// Latencies of complete answers, microseconds.
    latencies: Vec<u64>,
    /// The due time of each answer in `latencies` (same order, before sorting).
    due: Vec<Instant>,
    answered: u64,
    non_2xx: u64,
    failed: u64,
    last_done: Option<Instant>,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        self.last_done = self.last_done.max(Some(outcome.done));
        match outcome.status {
            Some(status) => {
                self.latencies
                    .push(u64::try_from(outcome.latency.as_micros()).unwrap_or(u64::MAX));
                self.due.push(outcome.due);
                if (200..300).contains(&status) {
                    self.answered += 1;
                } else {
                    self.non_2xx += 1;
                }
            }
            None => self.failed += 1,
        }
    }

    fn summary(
        mut self,
        rate: f64,
        sent: u64,
        start: Instant,
        send_lag_max: Duration,
    ) -> OpenLoopResult {
        let mut order: Vec<usize> = (0..self.latencies.len()).collect();
        order.sort_unstable_by_key(|&i| std::cmp::Reverse(self.latencies[i]));
        let slowest = order
            .iter()
            .take(SLOWEST)
            .map(|&i| {
                let at = self.due[i].saturating_duration_since(start).as_secs_f64();
                (at, self.latencies[i] as f64 / 1e3)
            })
            .collect();
        self.latencies.sort_unstable();
        let ms = |micros: u64| micros as f64 / 1e3;
        let mean = self.latencies.iter().map(|&l| l as f64).sum::<f64>()
            / (self.latencies.len().max(1) as f64);
        OpenLoopResult {
            rate_asked: rate,
            sent,
            answered: self.answered,
            seconds: self
                .last_done
                .map_or(0.0, |done| done.duration_since(start).as_secs_f64()),
            p50_ms: ms(percentile(&self.latencies, 50.0)),
            p99_ms: ms(percentile(&self.latencies, 99.0)),
            p999_ms: ms(percentile(&self.latencies, 99.9)),
            max_ms: ms(self.latencies.last().copied().unwrap_or(0)),
            mean_ms: mean / 1e3,
            non_2xx: self.non_2xx,
            errors: self.non_2xx + self.failed,
            send_lag_max_ms: send_lag_max.as_secs_f64() * 1e3,
            slowest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&values, 50.0), 500);
        assert_eq!(percentile(&values, 99.0), 990);
        assert_eq!(percentile(&values, 99.9), 999);
        assert_eq!(percentile(&values, 100.0), 1000);
        assert_eq!(percentile(&values, 0.0), 1);
        assert_eq!(percentile(&[7], 99.9), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn requests_are_due_evenly_over_the_run() {
        assert_eq!(request_count(1000.0, 2.0), 2000);
        assert_eq!(request_count(0.1, 1.0), 1);
        assert_eq!(due_offset(0, 250.0), Duration::ZERO);
        assert_eq!(due_offset(1, 250.0), Duration::from_millis(4));
        assert_eq!(due_offset(250, 250.0), Duration::from_secs(1));
        let last = due_offset(request_count(300.0, 1.5) - 1, 300.0);
        assert!(last < Duration::from_secs_f64(1.5), "{last:?}");
    }

    #[test]
    fn failures_and_other_statuses_are_counted_apart_from_answers() {
        let start = Instant::now();
        let mut tally = Tally::default();
        let outcomes = [
            (Some(201), 3, 0),
            (Some(200), 1, 125),
            (Some(503), 2, 250),
            (None, 9, 375),
        ];
        for (status, millis, sent) in outcomes {
            tally.add(Outcome {
                status,
                latency: Duration::from_millis(millis),
                due: start + Duration::from_millis(sent),
                done: start + Duration::from_millis(500),
            });
        }
        let result = tally.summary(8.0, 4, start, Duration::ZERO);
        assert_eq!((result.answered, result.non_2xx, result.errors), (2, 1, 2));
        // The failed request has no latency; the 503 has one.
        assert_eq!((result.p50_ms, result.max_ms), (2.0, 3.0));
        assert_eq!(result.rate_achieved(), 4.0);
        // Slowest first, with when each was sent.
        assert_eq!(result.slowest, [(0.0, 3.0), (0.25, 2.0), (0.125, 1.0)]);
    }

    /// Against the sample provider in this process: every request sent is answered once,
    /// with the body and header given; a path it does not serve counts as errors.
    #[test]
    fn every_scheduled_request_reaches_the_server() {
        // As `main` does (reqwest is built without a default provider).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let served = lienthong_sample::Counter::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let address = listener.local_addr().expect("address");
        runtime.spawn(lienthong_sample::run(
            listener,
            served.clone(),
            std::future::pending(),
        ));
        let body = crate::bench_tools::json_payload(100);
        let url = format!("http://{address}/persons");
        let load = OpenLoad {
            url: &url,
            client: Some("CS/GOV/client"),
            body: &body,
            rate: 200.0,
            seconds: 0.5,
            connections: 4,
        };
        let result = run(runtime.handle(), &load).expect("open-loop run");
        assert_eq!((result.sent, result.answered, result.errors), (100, 100, 0));
        assert!(result.rate_achieved() > 0.0);
        assert!(result.p50_ms <= result.p99_ms && result.p99_ms <= result.max_ms);
        let warm_up = WARM_UP.min(load.connections) as u64;
        let count = || served.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(count(), 100 + warm_up);

        let missing = format!("http://{address}/nowhere");
        let result = run(
            runtime.handle(),
            &OpenLoad {
                url: &missing,
                ..load
            },
        )
        .expect("open-loop run");
        assert_eq!(
            (result.answered, result.non_2xx, result.errors),
            (0, 100, 100)
        );
    }
}
