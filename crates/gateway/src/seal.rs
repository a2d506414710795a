//! Sealing the message log: a signed tree head over every record so far, timestamped by
//! the federation's TSA — one TSA call per interval however many exchanges there were.
//!
//! If the TSA cannot be reached the head is stored without a token, exchanges go on, and
//! the seal is retried every few seconds (doubling up to the interval) until a TSA answers.
//! Once the oldest record no timestamped head covers is older than the configured
//! tolerance (`timestamp_failure_tolerance_seconds`, as X-Road's acceptable timestamp
//! failure period), new exchanges are refused; the first successful seal lifts that.

use crate::XRoadError;
use crate::gateway::{Gateway, unix_now, unix_now_ms};
use base64::Engine as _;
use lienthong_crypto::HashAlgorithm;
use lienthong_ledger::{LogRecord, SignedTreeHead, TreeHead, sign_head};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The first retry after a failed seal; each further failure doubles the wait, up to the
/// timestamping interval.
const FIRST_RETRY: Duration = Duration::from_secs(2);

/// What a seal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealOutcome {
    /// Nothing new since the last timestamped head.
    Unchanged { size: u64 },
    /// A head over `size` records, timestamped.
    Timestamped { size: u64 },
    /// A head over `size` records, signed but not yet timestamped (the TSA failed).
    SignedOnly { size: u64, reason: String },
}

/// Whether the log's records are being timestamped: since when they are not, if so.
///
/// The age of the oldest untimestamped record is measured on Tokio's clock (an `Instant`
/// placed that long before the failed seal), so that tests can move it with paused time.
#[derive(Debug, Default)]
pub(crate) struct TimestampHealth {
    failing: Mutex<Option<TimestampFailure>>,
}

#[derive(Debug, Clone)]
struct TimestampFailure {
    /// Unix milliseconds of the oldest record no timestamped head covers.
    since_ms: i64,
    /// The same moment on Tokio's clock.
    since: Instant,
    /// What the TSA (or the way to it) said last.
    reason: String,
}

impl TimestampHealth {
    /// Records from `oldest_ms` on are not timestamped: `reason`. Keeps an earlier start.
    fn failed(&self, oldest_ms: i64, reason: &str) {
        let age = Duration::from_millis(u64::try_from(unix_now_ms() - oldest_ms).unwrap_or(0));
        let now = Instant::now();
        if let Ok(mut failing) = self.failing.lock() {
            let since = failing.as_ref().map_or_else(
                || now.checked_sub(age).unwrap_or(now),
                |earlier| earlier.since,
            );
            let since_ms = failing.as_ref().map_or(oldest_ms, |f| f.since_ms);
            *failing = Some(TimestampFailure {
                since_ms,
                since,
                reason: reason.to_owned(),
            });
        }
    }

    /// Every record is covered by a timestamped head again (or none waits for one).
    fn recovered(&self) {
        if let Ok(mut failing) = self.failing.lock()
            && failing.take().is_some()
        {
            tracing::info!("message log timestamped again; exchanges are accepted");
        }
    }

    /// The refusal to send while the oldest untimestamped record is older than `tolerance`
    /// (never when `tolerance` is zero). `refuse` builds the side's X-Road error.
    pub(crate) fn check(
        &self,
        tolerance: Duration,
        refuse: fn(&str, String) -> XRoadError,
    ) -> Result<(), XRoadError> {
        let Ok(failing) = self.failing.lock() else {
            return Ok(());
        };
        match failing.as_ref() {
            Some(failure) if !tolerance.is_zero() && failure.since.elapsed() > tolerance => {
                Err(refuse(
                    "TimestampFailure",
                    format!(
                        "the message log could not be timestamped since {} (for more than the tolerated {} s): {}; exchanges resume once a timestamp authority answers",
                        utc_text(failure.since_ms),
                        tolerance.as_secs(),
                        failure.reason
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

impl Gateway {
    /// Seal the log now: sign a tree head over all records and timestamp it. Seals run one
    /// at a time; one asked for while another runs waits for it, then finds the log
    /// unchanged or seals what came since.
    pub async fn seal_log(&self) -> Result<SealOutcome, String> {
        let mut sealed = self.sealed_frontier.lock().await;
        let log = self.server_id().to_string();
        let ledger = self.store.ledger();
        let size = ledger.size(&log).await.map_err(|e| e.to_string())?;
        let latest = ledger.latest_head(&log).await.map_err(|e| e.to_string())?;
        if let Some(latest) = &latest
            && latest.size == size
            && latest.tsa_token.is_some()
        {
            self.timestamping.recovered();
            self.metrics.timestamped(unix_now()); // every record is covered: as fresh
            return Ok(SealOutcome::Unchanged { size });
        }
        let (root, frontier) = self.log_root(&log, size, &mut sealed).await?;
        let head = TreeHead {
            log_id: log.clone(),
            size,
            root,
            time_ms: unix_now_ms(),
        };
        let signed = sign_head(head, self.log_signer.as_ref()).map_err(|e| e.to_string())?;
        let head_json = signed.to_canonical_json();
        let token = self.timestamp(&signed.timestamp_imprint()).await;
        let outcome = match &token {
            Ok(_) => SealOutcome::Timestamped { size },
            Err(reason) => {
                tracing::warn!(%reason, size, "message log head signed but not timestamped; retrying soon");
                SealOutcome::SignedOnly {
                    size,
                    reason: reason.clone(),
                }
            }
        };
        match &token {
            Ok(_) => self.timestamping.recovered(),
            Err(reason) => {
                // Only while the TSA fails: every head is read to find the last one with a
                // token (heads are one per interval; a healthy seal never reads them all).
                let existing = ledger.heads(&log).await.map_err(|e| e.to_string())?;
                let covered = existing
                    .iter()
                    .filter(|h| h.tsa_token.is_some())
                    .map(|h| h.size)
                    .max()
                    .unwrap_or(0);
                if covered < size {
                    // The oldest record no timestamped head covers: when it came in.
                    let oldest = ledger
                        .record(&log, covered)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|(_, _, bytes)| serde_json::from_slice::<LogRecord>(&bytes).ok())
                        .map_or_else(unix_now_ms, |record| record.request_in);
                    self.timestamping.failed(oldest, reason);
                }
            }
        }
        // A head of the same size stored earlier without a token is completed, not replaced;
        // it can only be the latest, as `size` is the log's size now.
        let stored_head = latest
            .filter(|h| h.size == size)
            .map(|h| h.head)
            .unwrap_or(head_json);
        ledger
            .put_head(
                &log,
                size,
                &stored_head,
                token.as_ref().ok().map(Vec::as_slice),
            )
            .await
            .map_err(|e| e.to_string())?;
        // Not needed for this head's worth: a restart without it reads the log again.
        if let Err(error) = ledger.put_head_frontier(&log, size, &frontier).await {
            tracing::warn!(%error, size, "cannot keep the tree's frontier beside the log's head");
        }
        Ok(outcome)
    }

    /// The root of the log's first `size` records, and the tree's frontier there. The tree
    /// at the previous seal is kept as its frontier (at most 64 hashes), so a seal needs
    /// only the leaves appended since: those the journal committed and still keeps
    /// ([`crate::journal::RecentLeaves`]), or else (another node's records among them)
    /// read from the store, in constant memory. After a restart, the previous seal's
    /// frontier is the one stored beside its head ([`Self::stored_frontier`]). If those
    /// leaves cannot be read (purged), the tree is rebuilt from the purged start's frontier
    /// and the records after it. `sealed` is that previous tree, and becomes this one.
    async fn log_root(
        &self,
        log: &str,
        size: u64,
        sealed: &mut Option<lienthong_ledger::CompactTree>,
    ) -> Result<([u8; 32], Vec<[u8; 32]>), String> {
        let ledger = self.store.ledger();
        // Without one, the empty tree: a new log's first seal then takes every leaf from
        // the journal too.
        let previous = match sealed.take() {
            Some(tree) => tree,
            None => self
                .stored_frontier(log)
                .await
                .unwrap_or_else(lienthong_ledger::CompactTree::new),
        };
        let previous = Some(previous).filter(|tree| tree.size() <= size);
        let kept = previous
            .as_ref()
            .and_then(|tree| self.journal.leaves.extended(tree, size));
        let tree = match (previous, kept) {
            (_, Some(tree)) => tree,
            (previous, None) => {
                match crate::archive::compact_tree(ledger, log, previous, size).await {
                    Ok(tree) => tree,
                    Err(error) => {
                        tracing::debug!(%error, "rebuilding the log's tree from the store");
                        crate::archive::compact_tree(ledger, log, None, size).await?
                    }
                }
            }
        };
        self.journal.leaves.forget_before(size);
        let root = tree.root();
        let frontier = tree.frontier().to_vec();
        *sealed = Some(tree);
        Ok((root, frontier))
    }

    /// The tree at the last head stored with its frontier, if that frontier gives the root
    /// the head signs, under this gateway's log key: a frontier altered in the database is
    /// not built on (the tree is then rebuilt from the records, as without one).
    async fn stored_frontier(&self, log: &str) -> Option<lienthong_ledger::CompactTree> {
        let stored = match self.store.ledger().latest_head_with_frontier(log).await {
            Ok(found) => found?,
            Err(error) => {
                tracing::warn!(%error, "cannot read the frontier kept beside the log's last head");
                return None;
            }
        };
        let signed: Option<SignedTreeHead> = serde_json::from_slice(&stored.head).ok();
        let tree = stored.kept_frontier().and_then(|frontier| {
            lienthong_ledger::CompactTree::from_frontier(stored.size, &frontier)
        });
        let (Some(signed), Some(tree)) = (signed, tree) else {
            tracing::warn!(
                size = stored.size,
                "the log's head or the frontier kept beside it cannot be read; rebuilding the tree from the records"
            );
            return None;
        };
        if signed.head.log_id != log
            || signed.head.size != stored.size
            || signed.head.root != tree.root()
        {
            tracing::warn!(
                size = stored.size,
                "the frontier kept beside the log's head does not give the root signed there; rebuilding the tree from the records"
            );
            return None;
        }
        if signed.verify(self.log_signer.public_key()).is_err() {
            // A head signed before the auth key was renewed, or altered.
            tracing::info!(
                size = stored.size,
                "the log's last head does not verify with the current auth key; rebuilding the tree from the records"
            );
            return None;
        }
        tracing::debug!(
            size = stored.size,
            "going on from the frontier kept beside the log's head"
        );
        Some(tree)
    }

    /// An RFC 3161 token over `imprint` from the first approved TSA that answers, verified.
    async fn timestamp(&self, imprint: &[u8; 32]) -> Result<Vec<u8>, String> {
        let view = self.trust.get().ok_or("no global configuration")?;
        let request =
            lienthong_pki::timestamp_request_der(HashAlgorithm::Sha256, imprint, None, true)
                .map_err(|e| e.to_string())?;
        let mut last = String::from("the global configuration lists no TSA");
        for tsa in &view.conf.conf.timestamp_authorities {
            let reply = self
                .http
                .post(&tsa.url)
                .header("content-type", "application/timestamp-query")
                .timeout(Duration::from_secs(10))
                .body(request.clone())
                .send()
                .await;
            let body = match reply {
                Ok(r) if r.status().is_success() => r
                    .bytes()
                    .await
                    .map(|b| b.to_vec())
                    .map_err(|e| e.to_string()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(e.to_string()),
            };
            let checked = body.and_then(|reply| {
                let certificate = base64::engine::general_purpose::STANDARD
                    .decode(&tsa.certificate)
                    .ok()
                    .and_then(|der| lienthong_pki::CertificateInfo::from_der(&der).ok())
                    .ok_or("the approved TSA certificate is unreadable")?;
                let issuer = view
                    .issuer_of(&certificate)
                    .ok_or("the TSA certificate is not from an approved CA")?;
                lienthong_pki::verify_timestamp_token(
                    &reply,
                    (HashAlgorithm::Sha256, imprint),
                    Some(&certificate),
                    &issuer.certificate,
                )
                .map(|_| reply)
                .map_err(|e| e.to_string())
            });
            match checked {
                Ok(token) => {
                    self.metrics.timestamped(unix_now());
                    return Ok(token);
                }
                Err(reason) => last = format!("{}: {reason}", tsa.url),
            }
        }
        Err(last)
    }

    /// Refuse a new exchange while the log has gone untimestamped for longer than the
    /// tolerance; `refuse` is the side's error constructor.
    pub(crate) fn check_timestamping(
        &self,
        refuse: fn(&str, String) -> XRoadError,
    ) -> Result<(), XRoadError> {
        self.timestamping
            .check(self.config.timestamp_failure_tolerance, refuse)
    }

    /// Seal every `timestamping_interval_seconds` (from the global configuration); after
    /// a failure, retry sooner (2 s, doubling up to the interval).
    pub(crate) async fn seal_periodically(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut retry: Option<Duration> = None;
        loop {
            let interval = Duration::from_secs(
                self.trust
                    .get()
                    .map(|v| v.conf.conf.policy.timestamping_interval_seconds)
                    .unwrap_or(60)
                    .max(1),
            );
            let wait = retry.map_or(interval, |retry| retry.min(interval));
            tokio::select! {
                _ = crate::gateway::stopped(&mut stop) => return,
                _ = tokio::time::sleep(wait) => {
                    retry = match self.seal_log().await {
                        Ok(SealOutcome::SignedOnly { .. }) => Some(retry.map_or(FIRST_RETRY, |r| r * 2)),
                        Ok(_) => None,
                        Err(error) => {
                            tracing::error!(%error, at = unix_now(), "cannot seal the message log");
                            Some(retry.map_or(FIRST_RETRY, |r| r * 2))
                        }
                    };
                }
            }
        }
    }
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC), for messages.
fn utc_text(unix_ms: i64) -> String {
    let seconds = unix_ms.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_is_iso_8601() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_text(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc_text(1_790_000_000_123), "2026-09-21T14:13:20Z");
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_past_the_tolerance_and_recovers() {
        let health = TimestampHealth::default();
        let tolerance = Duration::from_secs(600);
        let refuse = XRoadError::client_proxy;
        assert!(health.check(tolerance, refuse).is_ok());
        // The oldest untimestamped record came in 500 s ago: still tolerated.
        health.failed(unix_now_ms() - 500_000, "TSA unreachable");
        assert!(health.check(tolerance, refuse).is_ok());
        tokio::time::advance(Duration::from_secs(101)).await;
        let error = health
            .check(tolerance, refuse)
            .expect_err("past the tolerance");
        assert_eq!(error.kind, "Server.ClientProxy.TimestampFailure");
        assert!(
            error.message.contains("TSA unreachable"),
            "{}",
            error.message
        );
        // A later failure keeps the earlier start; zero tolerance never refuses.
        health.failed(unix_now_ms(), "still down");
        assert!(health.check(tolerance, refuse).is_err());
        assert!(health.check(Duration::ZERO, refuse).is_ok());
        health.recovered();
        assert!(health.check(tolerance, refuse).is_ok());
    }
}
