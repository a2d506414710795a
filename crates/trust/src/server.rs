//! The OCSP responder and timestamp authority over HTTP.
//!
//! - `POST /ocsp` and `GET /ocsp/{base64}` (RFC 6960 Appendix A) -> `application/ocsp-response`
//! - `POST /tsa` (RFC 3161 section 3.4) -> `application/timestamp-reply`
//! - `GET /health` -> 200 `{"status":"ok","checks":{...}}` when the store answers and the
//!   OCSP responder's and TSA's certificates are valid now, else 503 `{"status":"fail",...}`
//! - `GET /live` -> 200 `{"status":"ok"}` while the process serves HTTP
//!
//! Bodies over 64 KiB get 413. Protocol errors use each protocol's own status
//! (malformedRequest, rejection with badRequest/badAlg/...), never an HTTP 500.

use crate::TrustError;
use crate::authority::{Authority, REVOCATION_EPOCH};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use lienthong_pki::{
    CertificateState, OcspResponder, RevocationReason, TimeStampAuthority, TsaRejection,
};
use lienthong_store::Store;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// TSA serials are reserved from the store in blocks of this size.
const SERIAL_BLOCK: i64 = 256;
/// At most this many cached OCSP responses.
const CACHE_CAPACITY: usize = 10_000;

/// The loaded trust services: OCSP responder and TSA with their keys unlocked.
#[derive(Debug)]
pub struct TrustServices {
    responder: OcspResponder,
    tsa: TimeStampAuthority,
    store: Store,
    /// The OCSP responder certificate's validity (not before, not after; Unix seconds).
    ocsp_validity: (i64, i64),
    cache: Mutex<OcspCache>,
    serials: tokio::sync::Mutex<SerialBlock>,
}

#[derive(Debug, Default)]
struct OcspCache {
    epoch: i64,
    entries: HashMap<Vec<u8>, (Vec<u8>, SystemTime)>,
}

#[derive(Debug, Default)]
struct SerialBlock {
    next: i64,
    end: i64,
}

impl TrustServices {
    /// Unlock the OCSP and TSA keys of the PKI directory (the root key stays locked).
    pub async fn load(authority: &Authority, passphrase: &[u8]) -> Result<Self, TrustError> {
        let files = authority.files();
        let root = authority.certificate(&files.root_pem())?;
        let ocsp_certificate = authority.certificate(&files.ocsp_pem())?;
        let tsa_certificate = authority.certificate(&files.tsa_pem())?;
        let settings = authority.settings();
        let responder = OcspResponder::new(
            &root,
            &ocsp_certificate,
            Arc::new(authority.unlock_service_key("ocsp", passphrase)?),
            Duration::from_secs(settings.ocsp_validity_seconds),
        )?;
        let tsa = TimeStampAuthority::new(
            &tsa_certificate,
            Arc::new(authority.unlock_service_key("tsa", passphrase)?),
            &settings.tsa_policy,
        )?;
        Ok(Self {
            responder,
            tsa,
            store: authority.store().clone(),
            ocsp_validity: (ocsp_certificate.not_before, ocsp_certificate.not_after),
            cache: Mutex::new(OcspCache::default()),
            serials: tokio::sync::Mutex::new(SerialBlock::default()),
        })
    }

    /// Answer a DER OCSP request.
    pub async fn ocsp(&self, request: &[u8]) -> Vec<u8> {
        let now = SystemTime::now();
        let Some(serials) = OcspResponder::requested_serials(request) else {
            // Let the responder produce the protocol's malformedRequest answer.
            return self
                .responder
                .respond(request, now, |_| CertificateState::Unknown)
                .der;
        };
        let epoch = match self.store.pki().counter(REVOCATION_EPOCH).await {
            Ok(epoch) => epoch,
            Err(error) => {
                tracing::error!(%error, "OCSP: cannot read the revocation epoch");
                return OcspResponder::internal_error_response();
            }
        };
        if let Some(cached) = self.cached(request, epoch, now) {
            return cached;
        }
        let mut states = HashMap::with_capacity(serials.len());
        for serial in serials {
            let hex: String = serial.iter().map(|b| format!("{b:02x}")).collect();
            let state = match self.store.pki().certificate(&hex).await {
                Ok(Some(record)) => match record.revocation {
                    Some(revocation) => CertificateState::Revoked {
                        time: revocation.time,
                        reason: revocation
                            .reason
                            .as_deref()
                            .and_then(RevocationReason::from_name),
                    },
                    None => CertificateState::Good,
                },
                Ok(None) => CertificateState::Unknown,
                Err(error) => {
                    tracing::error!(%error, "OCSP: cannot read certificate state");
                    return OcspResponder::internal_error_response();
                }
            };
            states.insert(serial, state);
        }
        let reply = self.responder.respond(request, now, |serial| {
            states
                .get(serial)
                .copied()
                .unwrap_or(CertificateState::Unknown)
        });
        if reply.cacheable {
            // Re-sign well before nextUpdate so relying parties always get a fresh answer.
            let refresh_at = now + (self.responder.validity() / 4).min(Duration::from_secs(300));
            self.store_in_cache(request, epoch, reply.der.clone(), refresh_at);
        }
        reply.der
    }

    fn cached(&self, request: &[u8], epoch: i64, now: SystemTime) -> Option<Vec<u8>> {
        let cache = self.cache.lock().ok()?;
        if cache.epoch != epoch {
            return None;
        }
        cache
            .entries
            .get(request)
            .filter(|(_, refresh_at)| now < *refresh_at)
            .map(|(der, _)| der.clone())
    }

    fn store_in_cache(&self, request: &[u8], epoch: i64, der: Vec<u8>, refresh_at: SystemTime) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.epoch != epoch || cache.entries.len() >= CACHE_CAPACITY {
            cache.entries.clear();
            cache.epoch = epoch;
        }
        cache.entries.insert(request.to_vec(), (der, refresh_at));
    }

    /// Answer a DER timestamp request.
    pub async fn timestamp(&self, request: &[u8]) -> Vec<u8> {
        let parsed = match self.tsa.parse_request(request) {
            Ok(parsed) => parsed,
            Err(rejection) => return rejection.to_response_der(),
        };
        let serial = match self.next_serial().await {
            Ok(serial) => serial,
            Err(error) => {
                tracing::error!(%error, "TSA: cannot allocate a serial number");
                return TsaRejection::SystemFailure.to_response_der();
            }
        };
        match self.tsa.grant(&parsed, serial, SystemTime::now()) {
            Ok(der) => der,
            Err(error) => {
                tracing::error!(%error, "TSA: cannot sign a token");
                TsaRejection::SystemFailure.to_response_der()
            }
        }
    }

    /// The next TSA serial: unique and increasing across restarts, because blocks are
    /// reserved durably in the store before use (a restart skips the rest of a block).
    async fn next_serial(&self) -> Result<u64, TrustError> {
        let mut block = self.serials.lock().await;
        if block.next >= block.end {
            let first = self.store.pki().reserve("tsa.serial", SERIAL_BLOCK).await?;
            *block = SerialBlock {
                next: first,
                end: first + SERIAL_BLOCK,
            };
        }
        let serial = block.next;
        block.next += 1;
        u64::try_from(serial)
            .map_err(|_| TrustError::Invalid("TSA serial counter is negative".into()))
    }
}

/// The HTTP routes over `services`.
pub fn router(services: Arc<TrustServices>) -> Router {
    Router::new()
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/{*encoded}", get(ocsp_get))
        .route("/tsa", post(tsa_post))
        .route("/health", get(health))
        .route(
            "/live",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"status":"ok"}"#,
                )
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(services)
}

/// How long the store may take to answer the health query.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Readiness: the store answers (every OCSP answer reads the revocation epoch from it) and
/// both signing certificates are valid now (a TSA token or OCSP response signed outside
/// its certificate's validity is refused by every relying party).
async fn health(State(services): State<Arc<TrustServices>>) -> Response {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let store = match tokio::time::timeout(
        HEALTH_TIMEOUT,
        services.store.pki().counter(REVOCATION_EPOCH),
    )
    .await
    {
        Ok(Ok(_)) => Ok("the store answered".to_owned()),
        Ok(Err(error)) => Err(format!("the store failed: {error}")),
        Err(_) => Err(format!(
            "the store did not answer within {HEALTH_TIMEOUT:?}"
        )),
    };
    let tsa = services.tsa.certificate();
    let checks = [
        ("store", store),
        (
            "ocsp_certificate",
            validity(services.ocsp_validity.0, services.ocsp_validity.1, now),
        ),
        (
            "tsa_certificate",
            validity(tsa.not_before, tsa.not_after, now),
        ),
    ];
    let ok = checks.iter().all(|(_, check)| check.is_ok());
    let report: serde_json::Map<String, serde_json::Value> = checks
        .into_iter()
        .map(|(name, check)| {
            let (ok, detail) = match check {
                Ok(detail) => (true, detail),
                Err(detail) => (false, detail),
            };
            (
                name.to_owned(),
                serde_json::json!({"ok": ok, "detail": detail}),
            )
        })
        .collect();
    if !ok {
        tracing::warn!(checks = %serde_json::Value::Object(report.clone()), "trust services health check failed");
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({"status": if ok { "ok" } else { "fail" }, "checks": report});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Is a certificate valid from `not_before` to `not_after` valid at `now`?
fn validity(not_before: i64, not_after: i64, now: i64) -> Result<String, String> {
    if now < not_before {
        Err(format!("not valid before {not_before} (now {now})"))
    } else if now > not_after {
        Err(format!("expired at {not_after} (now {now})"))
    } else {
        Ok(format!("valid until {not_after}"))
    }
}

/// Serve the trust services on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    services: Arc<TrustServices>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(services))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn ocsp_post(State(services): State<Arc<TrustServices>>, body: Bytes) -> Response {
    ocsp_response(services.ocsp(&body).await)
}

async fn ocsp_get(
    State(services): State<Arc<TrustServices>>,
    Path(encoded): Path<String>,
) -> Response {
    // Appendix A.1: the URL-encoded base64 of the DER request. Path<String> has already
    // percent-decoded it; accept the URL-safe alphabet and missing padding too.
    let cleaned: String = encoded
        .trim_matches('/')
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&cleaned)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cleaned.trim_end_matches('='))
        })
        .unwrap_or_default();
    if der.len() > MAX_BODY {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    ocsp_response(services.ocsp(&der).await)
}

async fn tsa_post(State(services): State<Arc<TrustServices>>, body: Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, "application/timestamp-reply")],
        services.timestamp(&body).await,
    )
        .into_response()
}

fn ocsp_response(der: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/ocsp-response")], der).into_response()
}

#[cfg(test)]
mod tests {
    use super::validity;

    #[test]
    fn a_certificate_is_valid_only_between_its_bounds() {
        assert_eq!(validity(100, 200, 150), Ok("valid until 200".into()));
        assert_eq!(validity(100, 200, 100), Ok("valid until 200".into()));
        assert_eq!(validity(100, 200, 200), Ok("valid until 200".into()));
        assert!(
            validity(100, 200, 99)
                .expect_err("early")
                .contains("not valid before 100")
        );
        assert!(
            validity(100, 200, 201)
                .expect_err("late")
                .contains("expired at 200")
        );
    }
}
