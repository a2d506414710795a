//! Prometheus metrics of one gateway (`GET /metrics` on the admin listener), written in the
//! text exposition format by hand from atomics.
//!
//! The hot path stays cheap: a stage timing is a few relaxed atomic adds; an exchange
//! counter is a read-locked map lookup (the write lock is taken only the first time a
//! label set is seen, and the number of label sets is capped, because client and service
//! identifiers come from requests). Values that are cheap to read at scrape time —
//! certificate expiry, OCSP and TSA freshness, queue depths — are computed then.

use crate::gateway::Gateway;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Label sets of the exchange counter kept at most; later ones count as `_other`.
const MAX_EXCHANGE_SERIES: usize = 10_000;
/// Upper bounds (seconds) of the latency buckets.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the log-commit batch size buckets.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Which side of an exchange a gateway played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Side {
    /// The client's gateway (local system in, peer out).
    Client,
    /// The provider's gateway (peer in, service out).
    Provider,
}

impl Side {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Provider => "provider",
        }
    }
}

/// A timed stage of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Client side: reading (hashing, spooling) the local client's request body.
    ClientBodyRead,
    /// Client side: signing the request description (batched).
    ClientSigning,
    /// Client side: the round trip to the provider's gateway, until its answer's headers.
    Peer,
    /// Client side: committing the record to the message log.
    ClientLogCommit,
    /// Provider side: reading the peer's request body (one passed through: until the
    /// whole body has come and matched, overlapping the call).
    ProviderBodyRead,
    /// Provider side: the call to the provider's system, until its answer's headers (a
    /// body passed through streams to the service meanwhile).
    ProviderCall,
    /// Provider side: signing the answer.
    ProviderSigning,
    /// Provider side: committing the record to the message log.
    ProviderLogCommit,
}

const STAGES: [Stage; 8] = [
    Stage::ClientBodyRead,
    Stage::ClientSigning,
    Stage::Peer,
    Stage::ClientLogCommit,
    Stage::ProviderBodyRead,
    Stage::ProviderCall,
    Stage::ProviderSigning,
    Stage::ProviderLogCommit,
];

impl Stage {
    /// `(side, stage)` labels.
    fn labels(self) -> (&'static str, &'static str) {
        match self {
            Self::ClientBodyRead => ("client", "body_read"),
            Self::ClientSigning => ("client", "signing"),
            Self::Peer => ("client", "peer"),
            Self::ClientLogCommit => ("client", "log_commit"),
            Self::ProviderBodyRead => ("provider", "body_read"),
            Self::ProviderCall => ("provider", "provider"),
            Self::ProviderSigning => ("provider", "signing"),
            Self::ProviderLogCommit => ("provider", "log_commit"),
        }
    }
}

/// The counters and histograms of one gateway.
#[derive(Debug)]
pub(crate) struct Metrics {
    exchanges: RwLock<HashMap<ExchangeLabels, Arc<AtomicU64>>>,
    stages: [Histogram; STAGES.len()],
    log_batches: Histogram,
    /// Message-log records whose commit failed.
    log_failures: AtomicU64,
    /// Large answers passed on to local clients as they came: checked whole, and refused
    /// after their head.
    streamed_answers: [AtomicU64; 2],
    in_flight: [AtomicI64; 2],
    /// Unix seconds of the last successful timestamp of the message log (0: none yet).
    last_timestamp: AtomicI64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ExchangeLabels {
    side: Side,
    client: String,
    service: String,
    outcome: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            exchanges: RwLock::new(HashMap::new()),
            stages: std::array::from_fn(|_| Histogram::new(&LATENCY_BUCKETS, 1e-9)),
            log_batches: Histogram::new(&BATCH_BUCKETS, 1.0),
            log_failures: AtomicU64::new(0),
            streamed_answers: [AtomicU64::new(0), AtomicU64::new(0)],
            in_flight: [AtomicI64::new(0), AtomicI64::new(0)],
            last_timestamp: AtomicI64::new(0),
        }
    }
}

impl Metrics {
    /// Await `future`, recording how long it took as `stage`.
    pub(crate) async fn time<F: Future>(&self, stage: Stage, future: F) -> F::Output {
        let started = Instant::now();
        let output = future.await;
        self.observe(stage, started.elapsed());
        output
    }

    /// Record one duration of `stage`.
    pub(crate) fn observe(&self, stage: Stage, elapsed: Duration) {
        let index = STAGES.iter().position(|s| *s == stage).unwrap_or(0);
        self.stages[index].observe(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Record the size of one message-log commit.
    pub(crate) fn log_batch(&self, records: usize) {
        self.log_batches.observe(records as u64);
    }

    /// A message-log commit of `records` records failed.
    pub(crate) fn log_failed(&self, records: usize) {
        self.log_failures
            .fetch_add(records as u64, Ordering::Relaxed);
    }

    /// A large answer was passed on as it came: its trailer checked out (`passed`), or
    /// the client's body ended short.
    pub(crate) fn streamed_answer(&self, passed: bool) {
        self.streamed_answers[usize::from(!passed)].fetch_add(1, Ordering::Relaxed);
    }

    /// The message log was timestamped at `now`.
    pub(crate) fn timestamped(&self, now: i64) {
        self.last_timestamp.store(now, Ordering::Relaxed);
    }

    /// An exchange begins on `side` for `client` and `service` (as far as the request
    /// says; `-` when unreadable); count it when the returned guard is finished.
    pub(crate) fn begin(&self, side: Side, client: String, service: String) -> Exchange<'_> {
        self.in_flight[side as usize].fetch_add(1, Ordering::Relaxed);
        Exchange {
            metrics: self,
            side,
            client,
            service,
        }
    }

    /// Exchanges in progress on `side`.
    pub(crate) fn in_flight(&self, side: Side) -> i64 {
        self.in_flight[side as usize].load(Ordering::Relaxed)
    }

    fn count(&self, labels: ExchangeLabels) {
        if let Some(counter) = self
            .exchanges
            .read()
            .ok()
            .and_then(|m| m.get(&labels).cloned())
        {
            counter.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Ok(mut map) = self.exchanges.write() else {
            return;
        };
        let labels = if map.len() >= MAX_EXCHANGE_SERIES && !map.contains_key(&labels) {
            ExchangeLabels {
                client: "_other".into(),
                service: "_other".into(),
                ..labels
            }
        } else {
            labels
        };
        map.entry(labels)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// An exchange in progress (counted in flight until finished or dropped).
#[derive(Debug)]
pub(crate) struct Exchange<'a> {
    metrics: &'a Metrics,
    side: Side,
    client: String,
    service: String,
}

impl Exchange<'_> {
    /// Count the exchange with the outcome its response shows: `ok`, or its X-Road error.
    pub(crate) fn finish<B>(mut self, response: hyper::Response<B>) -> hyper::Response<B> {
        let outcome = response
            .headers()
            .get("x-road-error")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| "ok".to_owned(), str::to_owned);
        self.metrics.count(ExchangeLabels {
            side: self.side,
            client: std::mem::take(&mut self.client),
            service: std::mem::take(&mut self.service),
            outcome,
        });
        response
    }
}

impl Drop for Exchange<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight[self.side as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

/// A histogram with fixed buckets; observations are in units of `scale` (e.g. ns for s).
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    scale: f64,
    /// Non-cumulative counts per bucket, then the `+Inf` bucket.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64], scale: f64) -> Self {
        Self {
            bounds,
            scale,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    fn observe(&self, units: u64) {
        let value = units as f64 * self.scale;
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(units, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let separator = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (index, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = self
                .bounds
                .get(index)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum.load(Ordering::Relaxed) as f64 * self.scale;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// `(client, service)` labels of a local client's request: what its header and path say
/// if they parse, `-` otherwise.
pub(crate) fn request_labels<B>(request: &hyper::Request<B>) -> (String, String) {
    let client = crate::proxy_common::last_header(request.headers(), "x-road-client")
        .and_then(|c| c.parse::<lienthong_model::ClientId>().ok())
        .map_or_else(|| "-".to_owned(), |c| c.to_string());
    let service = crate::proxy_common::parse_r1(request.uri().path())
        .map_or_else(|_| "-".to_owned(), |p| p.service.to_string());
    (client, service)
}

/// `(client, service)` labels of a peer's request, from its (not yet verified) signed
/// description.
pub(crate) fn described_labels(
    described: Option<&crate::message::RequestHeader>,
) -> (String, String) {
    described.map_or_else(
        || ("-".to_owned(), "-".to_owned()),
        |h| (h.client.to_string(), h.service.to_string()),
    )
}

/// The exposition text of `gateway`'s metrics at `now` (Unix seconds).
pub(crate) fn render(gateway: &Gateway, now: i64, database_bytes: Option<u64>) -> String {
    let metrics = &gateway.metrics;
    let mut out = String::with_capacity(8192);
    let server = escape(&gateway.server_id().to_string());

    header(
        &mut out,
        "lienthong_gateway_exchanges_total",
        "counter",
        "Exchanges handled, by side, client, service and outcome (ok or the X-Road error type).",
    );
    if let Ok(map) = metrics.exchanges.read() {
        let mut series: Vec<_> = map.iter().collect();
        series.sort_by(|a, b| {
            (a.0.side.name(), &a.0.client, &a.0.service, &a.0.outcome).cmp(&(
                b.0.side.name(),
                &b.0.client,
                &b.0.service,
                &b.0.outcome,
            ))
        });
        for (labels, counter) in series {
            let _ = writeln!(
                out,
                "lienthong_gateway_exchanges_total{{side=\"{}\",client=\"{}\",service=\"{}\",outcome=\"{}\"}} {}",
                labels.side.name(),
                escape(&labels.client),
                escape(&labels.service),
                escape(&labels.outcome),
                counter.load(Ordering::Relaxed)
            );
        }
    }

    header(
        &mut out,
        "lienthong_gateway_exchanges_in_flight",
        "gauge",
        "Exchanges in progress, by side.",
    );
    for side in [Side::Client, Side::Provider] {
        let _ = writeln!(
            out,
            "lienthong_gateway_exchanges_in_flight{{side=\"{}\"}} {}",
            side.name(),
            metrics.in_flight(side)
        );
    }

    header(
        &mut out,
        "lienthong_gateway_stage_duration_seconds",
        "histogram",
        "Time spent per stage of an exchange: body_read, signing, peer (round trip to the provider's gateway), provider (call to the provider's system), log_commit.",
    );
    for (stage, histogram) in STAGES.iter().zip(&metrics.stages) {
        let (side, name) = stage.labels();
        histogram.render(
            &mut out,
            "lienthong_gateway_stage_duration_seconds",
            &format!("side=\"{side}\",stage=\"{name}\""),
        );
    }

    header(
        &mut out,
        "lienthong_gateway_log_commit_batch_records",
        "histogram",
        "Records per message-log commit (group commit).",
    );
    metrics
        .log_batches
        .render(&mut out, "lienthong_gateway_log_commit_batch_records", "");

    single(
        &mut out,
        "lienthong_gateway_log_commit_failures_total",
        "counter",
        "Message-log records whose commit failed: their exchanges got an error, not the answer.",
        metrics.log_failures.load(Ordering::Relaxed),
    );
    let _ = writeln!(
        out,
        "# HELP lienthong_gateway_streamed_answers_total Large answers passed on to local clients as they came, signed in their trailer: passed, or refused once the trailer came (the client's body ended short of its length)."
    );
    let _ = writeln!(
        out,
        "# TYPE lienthong_gateway_streamed_answers_total counter"
    );
    for (outcome, count) in ["passed", "refused"].iter().zip(&metrics.streamed_answers) {
        let _ = writeln!(
            out,
            "lienthong_gateway_streamed_answers_total{{outcome=\"{outcome}\"}} {}",
            count.load(Ordering::Relaxed)
        );
    }

    single(
        &mut out,
        "lienthong_gateway_log_queue_depth",
        "gauge",
        "Message-log records waiting for their commit.",
        gateway.journal.pending(),
    );

    if let Some(bytes) = database_bytes {
        single(
            &mut out,
            "lienthong_gateway_store_database_bytes",
            "gauge",
            "Size of the gateway's database (message log, op monitoring and the rest): the embedded store's pages, or pg_database_size on PostgreSQL (shared by a cluster's nodes).",
            bytes,
        );
    }

    type SignerStats = lienthong_crypto::BatchSignerStats;
    let mut members: Vec<_> = gateway.members.values().collect();
    members.sort_by_key(|m| m.id.to_string());
    let signers: Vec<_> = members
        .iter()
        .map(|member| (escape(&member.id.to_string()), member.signer.stats()))
        .collect();
    for (name, kind, help, value) in [
        (
            "lienthong_gateway_signer_queue_depth",
            "gauge",
            "Signing requests waiting for the next batch, by member.",
            (|stats: &SignerStats| stats.queued as u64) as fn(&SignerStats) -> u64,
        ),
        (
            "lienthong_gateway_signature_batches_total",
            "counter",
            "Batch signatures made, by member (one root signature covers a batch of messages).",
            |stats: &SignerStats| stats.batches_signed,
        ),
        (
            "lienthong_gateway_signed_messages_total",
            "counter",
            "Messages signed, by member; divided by the batches, the mean batch size.",
            |stats: &SignerStats| stats.messages_signed,
        ),
    ] {
        header(&mut out, name, kind, help);
        for (member, stats) in &signers {
            let _ = writeln!(out, "{name}{{member=\"{member}\"}} {}", value(stats));
        }
    }
    let verified = gateway.verifier.stats();
    single(
        &mut out,
        "lienthong_gateway_signature_checks_total",
        "counter",
        "Peers' batch signatures checked with their public key.",
        verified.signature_checks,
    );
    single(
        &mut out,
        "lienthong_gateway_signature_check_cache_hits_total",
        "counter",
        "Peers' messages whose batch signature had already been checked (hash path only).",
        verified.cache_hits,
    );

    // Certificates: expiry and OCSP freshness.
    let mut certificates = vec![("auth", server.clone(), &gateway.auth_certificate)];
    for member in &members {
        certificates.push(("sign", escape(&member.id.to_string()), &member.certificate));
    }
    header(
        &mut out,
        "lienthong_gateway_certificate_expiry_days",
        "gauge",
        "Days until the certificate's notAfter (negative: expired).",
    );
    for (kind, id, certificate) in &certificates {
        let days = (certificate.not_after - now) as f64 / 86_400.0;
        let _ = writeln!(
            out,
            "lienthong_gateway_certificate_expiry_days{{certificate=\"{kind}\",id=\"{id}\"}} {days:.3}"
        );
    }
    header(
        &mut out,
        "lienthong_gateway_ocsp_response_age_seconds",
        "gauge",
        "Age (now - thisUpdate) of the OCSP response held for the certificate.",
    );
    let held: Vec<_> = certificates
        .iter()
        .map(|(kind, id, certificate)| (kind, id, gateway.ocsp.held(certificate)))
        .collect();
    for (kind, id, entry) in &held {
        if let Some((this_update, _)) = entry {
            let _ = writeln!(
                out,
                "lienthong_gateway_ocsp_response_age_seconds{{certificate=\"{kind}\",id=\"{id}\"}} {}",
                now - this_update
            );
        }
    }
    header(
        &mut out,
        "lienthong_gateway_ocsp_last_fetch_age_seconds",
        "gauge",
        "Seconds since the last successful OCSP fetch for the certificate.",
    );
    for (kind, id, entry) in &held {
        if let Some((_, fetched_at)) = entry {
            let _ = writeln!(
                out,
                "lienthong_gateway_ocsp_last_fetch_age_seconds{{certificate=\"{kind}\",id=\"{id}\"}} {}",
                now - fetched_at
            );
        }
    }

    header(
        &mut out,
        "lienthong_gateway_timestamp_last_success_age_seconds",
        "gauge",
        "Seconds since a TSA last timestamped the message log, or a seal found every record already timestamped (absent: neither yet since start).",
    );
    let last = metrics.last_timestamp.load(Ordering::Relaxed);
    if last > 0 {
        let _ = writeln!(
            out,
            "lienthong_gateway_timestamp_last_success_age_seconds {}",
            now - last
        );
    }

    header(
        &mut out,
        "lienthong_gateway_global_configuration_expiry_seconds",
        "gauge",
        "Seconds until the global configuration in hand expires (negative: expired).",
    );
    if let Some(conf) = gateway.conf.current() {
        let _ = writeln!(
            out,
            "lienthong_gateway_global_configuration_expiry_seconds {}",
            conf.conf.expires_at - now
        );
    }

    header(
        &mut out,
        "lienthong_gateway_draining",
        "gauge",
        "1 while the gateway is in maintenance mode (refusing new exchanges).",
    );
    let _ = writeln!(
        out,
        "lienthong_gateway_draining {}",
        u8::from(gateway.ops.draining())
    );

    header(
        &mut out,
        "lienthong_gateway_opmon_queue_depth",
        "gauge",
        "Operational-monitoring records waiting for the writer.",
    );
    let _ = writeln!(
        out,
        "lienthong_gateway_opmon_queue_depth {}",
        gateway.opmon.queued()
    );
    header(
        &mut out,
        "lienthong_gateway_opmon_dropped_total",
        "counter",
        "Operational-monitoring records lost: the queue was full, or the store failed.",
    );
    let _ = writeln!(
        out,
        "lienthong_gateway_opmon_dropped_total {}",
        gateway.opmon.dropped()
    );
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A series without labels: its header and its one sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// A label value as the exposition format wants it.
fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::new(&BATCH_BUCKETS, 1.0);
        for size in [1, 3, 3, 600] {
            histogram.observe(size);
        }
        let mut out = String::new();
        histogram.render(&mut out, "h", "");
        assert!(out.contains("h_bucket{le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"2\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"4\"} 3\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"512\"} 3\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("h_sum 607\n"), "{out}");
        assert!(out.contains("h_count 4\n"), "{out}");
    }

    #[test]
    fn exchange_series_are_capped_and_counted() {
        let metrics = Metrics::default();
        for i in 0..MAX_EXCHANGE_SERIES + 5 {
            let exchange = metrics.begin(Side::Client, format!("c{i}"), "s".into());
            assert_eq!(metrics.in_flight(Side::Client), 1);
            let _ = exchange.finish(hyper::Response::new(()));
        }
        assert_eq!(metrics.in_flight(Side::Client), 0);
        let map = metrics.exchanges.read().expect("lock");
        assert_eq!(map.len(), MAX_EXCHANGE_SERIES + 1);
        let other = ExchangeLabels {
            side: Side::Client,
            client: "_other".into(),
            service: "_other".into(),
            outcome: "ok".into(),
        };
        assert_eq!(map[&other].load(Ordering::Relaxed), 5);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
