//! Sealing the message log: a signed tree head over every record so far, timestamped by
//! the federation's TSA — one TSA call per interval however many exchanges there were.
//! If the TSA cannot be reached the head is stored without a token and sealed again at the
//! next interval.

use crate::gateway::{Gateway, unix_now, unix_now_ms};
use base64::Engine as _;
use lienthong_crypto::HashAlgorithm;
use lienthong_ledger::{MerkleLog, TreeHead, sign_head};
use std::time::Duration;

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

impl Gateway {
    /// Seal the log now: sign a tree head over all records and timestamp it.
    pub async fn seal_log(&self) -> Result<SealOutcome, String> {
        let log = self.server_id().to_string();
        let ledger = self.store.ledger();
        let size = ledger.size(&log).await.map_err(|e| e.to_string())?;
        if let Some(latest) = ledger.latest_head(&log).await.map_err(|e| e.to_string())?
            && latest.size == size
            && latest.tsa_token.is_some()
        {
            self.metrics.timestamped(unix_now()); // every record is covered: as fresh
            return Ok(SealOutcome::Unchanged { size });
        }
        let leaves = ledger
            .leaf_hashes(&log, 0, size)
            .await
            .map_err(|e| e.to_string())?;
        let root = MerkleLog::from_leaves(leaves).root();
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
                tracing::warn!(%reason, size, "message log head signed but not timestamped; retrying at the next interval");
                SealOutcome::SignedOnly {
                    size,
                    reason: reason.clone(),
                }
            }
        };
        // A head of the same size stored earlier without a token is completed, not replaced.
        let existing = ledger.heads(&log).await.map_err(|e| e.to_string())?;
        let stored_head = existing
            .iter()
            .find(|h| h.size == size)
            .map(|h| h.head.clone())
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
        Ok(outcome)
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

    /// Seal every `timestamping_interval_seconds` (from the global configuration).
    pub(crate) async fn seal_periodically(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let interval = self
                .trust
                .get()
                .map(|v| v.conf.conf.policy.timestamping_interval_seconds)
                .unwrap_or(60)
                .max(1);
            tokio::select! {
                _ = crate::gateway::stopped(&mut stop) => return,
                _ = tokio::time::sleep(Duration::from_secs(interval)) => {
                    if let Err(error) = self.seal_log().await {
                        tracing::error!(%error, at = unix_now(), "cannot seal the message log");
                    }
                }
            }
        }
    }
}
