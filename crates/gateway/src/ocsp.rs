//! Certificate status: fetching OCSP responses for our own certificates (to staple them)
//! and for peers' certificates, caching them, and checking stapled ones cheaply.

use crate::XRoadError;
use crate::trust::TrustedCa;
use lienthong_crypto::HashAlgorithm;
use lienthong_pki::{CertificateInfo, VerifiedStatus, verify_ocsp_response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Verified statuses kept at most.
const CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
struct Entry {
    der: Arc<Vec<u8>>,
    status: VerifiedStatus,
    this_update: i64,
    fetched_at: i64,
}

/// Fetched and verified OCSP responses, by certificate hash; and verified staples, by
/// the hash of certificate and staple together.
#[derive(Debug)]
pub(crate) struct OcspCache {
    http: reqwest::Client,
    fetched: Mutex<HashMap<[u8; 32], Entry>>,
    staples: Mutex<HashMap<[u8; 32], (VerifiedStatus, i64)>>,
}

impl Default for OcspCache {
    fn default() -> Self {
        Self::new()
    }
}

impl OcspCache {
    /// An empty cache.
    pub(crate) fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            fetched: Mutex::new(HashMap::new()),
            staples: Mutex::new(HashMap::new()),
        }
    }

    /// A verified OCSP response for `certificate`, fresh within `freshness` seconds:
    /// from the cache if it is younger than half of that, otherwise fetched from the
    /// issuer's OCSP URLs (in order).
    pub(crate) async fn response_for(
        &self,
        certificate: &CertificateInfo,
        issuer: &TrustedCa,
        freshness: i64,
        now: i64,
    ) -> Result<(Arc<Vec<u8>>, VerifiedStatus), XRoadError> {
        let key = digest(&certificate.der);
        if let Some(entry) = self.fetched.lock().ok().and_then(|m| m.get(&key).cloned())
            && now - entry.this_update < freshness / 2
        {
            return Ok((entry.der, entry.status));
        }
        self.fetch(certificate, issuer, freshness, now).await
    }

    /// Fetch a new response from the responder (bypassing the cache) and remember it.
    pub(crate) async fn fetch(
        &self,
        certificate: &CertificateInfo,
        issuer: &TrustedCa,
        freshness: i64,
        now: i64,
    ) -> Result<(Arc<Vec<u8>>, VerifiedStatus), XRoadError> {
        let key = digest(&certificate.der);
        let request = lienthong_pki::ocsp_request(
            &issuer.certificate,
            &certificate.serial,
            HashAlgorithm::Sha256,
            None,
        )
        .map_err(|e| XRoadError::server_proxy("InternalError", e.to_string()))?;
        let mut last = String::from("the CA lists no OCSP responder");
        for url in &issuer.ocsp_urls {
            let reply = self
                .http
                .post(url)
                .header("content-type", "application/ocsp-request")
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
            match body.and_then(|der| {
                verify_ocsp_response(&der, certificate, &issuer.certificate, now, freshness)
                    .map(|status| (der, status))
                    .map_err(|e| e.to_string())
            }) {
                Ok((der, status)) => {
                    let this_update = match status {
                        VerifiedStatus::Good { this_update } => this_update,
                        _ => now,
                    };
                    let der = Arc::new(der);
                    if let Ok(mut map) = self.fetched.lock() {
                        if map.len() >= CAPACITY {
                            map.clear();
                        }
                        map.insert(
                            key,
                            Entry {
                                der: der.clone(),
                                status,
                                this_update,
                                fetched_at: now,
                            },
                        );
                    }
                    return Ok((der, status));
                }
                Err(reason) => last = format!("{url}: {reason}"),
            }
        }
        Err(XRoadError::server_proxy(
            "CertValidation",
            format!(
                "cannot obtain a fresh OCSP response for certificate {}: {last}",
                certificate.serial_hex()
            ),
        ))
    }

    /// `(thisUpdate, fetched at)` of the response last fetched for `certificate`.
    pub(crate) fn held(&self, certificate: &CertificateInfo) -> Option<(i64, i64)> {
        let key = digest(&certificate.der);
        let fetched = self.fetched.lock().ok()?;
        fetched.get(&key).map(|e| (e.this_update, e.fetched_at))
    }

    /// Check a stapled response; verified staples are remembered (until they go stale).
    pub(crate) fn check_staple(
        &self,
        staple: &[u8],
        certificate: &CertificateInfo,
        issuer: &CertificateInfo,
        freshness: i64,
        now: i64,
    ) -> Result<VerifiedStatus, String> {
        let mut material = certificate.der.clone();
        material.extend_from_slice(staple);
        let key = digest(&material);
        if let Some((status, this_update)) =
            self.staples.lock().ok().and_then(|m| m.get(&key).copied())
            && now - this_update <= freshness
        {
            return Ok(status);
        }
        let status = verify_ocsp_response(staple, certificate, issuer, now, freshness)
            .map_err(|e| e.to_string())?;
        let this_update = match status {
            VerifiedStatus::Good { this_update } => this_update,
            _ => now,
        };
        if let Ok(mut map) = self.staples.lock() {
            if map.len() >= CAPACITY {
                map.clear();
            }
            map.insert(key, (status, this_update));
        }
        Ok(status)
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    crate::message::digest(bytes)
}
