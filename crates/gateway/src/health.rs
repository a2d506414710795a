//! Health, liveness, maintenance mode and the metrics endpoint, on the admin listener.
//!
//! - `GET /health` (no token): 200 `{"status":"ok","checks":{...}}` only when the keys sign
//!   (a test signature per key, at most [`KEY_TEST_EVERY`] old), every certificate's held
//!   OCSP response is good and fresh, the store answers a query within [`STORE_TIMEOUT`],
//!   the global configuration is valid and the gateway is not draining; otherwise 503 with
//!   `"status":"fail"` (or `"draining"`) and each check's `{"ok":false,"detail":...}`.
//! - `GET /live` (no token): 200 while the process serves requests at all.
//! - `GET /metrics` (no token): Prometheus text format ([`crate::metrics`]).
//! - `GET|POST /api/v1/maintenance` (token, audited): `{"enabled":true}` drains: new
//!   exchanges get 503 with `X-Road-Error: Server.ClientProxy.Maintenance` (or
//!   `...ServerProxy...`), in-flight ones finish, `/health` answers 503 `draining`.
//!
//! The probes are neither authenticated nor audited: load balancers call them every few
//! seconds, and they reveal nothing the global configuration does not.

use crate::XRoadError;
use crate::admin::{AdminError, AdminState, ApiJson};
use crate::gateway::{Gateway, unix_now};
use crate::metrics::Side;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use lienthong_pki::{CertificateInfo, VerifiedStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// How long a test signature vouches for the keys.
pub const KEY_TEST_EVERY: Duration = Duration::from_secs(30);
/// How long the store may take to answer the health query.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a test signature may take.
const SIGN_TIMEOUT: Duration = Duration::from_secs(5);

/// The operational state: maintenance mode and the last key test.
#[derive(Debug, Default)]
pub(crate) struct OpsState {
    draining: AtomicBool,
    draining_since: AtomicI64,
    key_test: Mutex<Option<(Instant, Check)>>,
}

impl OpsState {
    /// Is the gateway draining (refusing new exchanges)?
    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Enter or leave maintenance mode.
    pub(crate) fn set_draining(&self, enabled: bool) {
        if enabled && !self.draining.swap(true, Ordering::SeqCst) {
            self.draining_since.store(unix_now(), Ordering::SeqCst);
            tracing::info!("maintenance mode: draining, new exchanges are refused");
        } else if !enabled && self.draining.swap(false, Ordering::SeqCst) {
            tracing::info!("maintenance mode off: accepting exchanges");
        }
    }

    /// `Err` (503, X-Road error) while draining: called first by both proxies.
    pub(crate) fn accepting(&self, side: Side) -> Result<(), XRoadError> {
        if !self.draining() {
            return Ok(());
        }
        let proxy = match side {
            Side::Client => "ClientProxy",
            Side::Provider => "ServerProxy",
        };
        Err(XRoadError {
            status: hyper::StatusCode::SERVICE_UNAVAILABLE,
            kind: format!("Server.{proxy}.Maintenance"),
            message: "the gateway is in maintenance mode; try another gateway or again later"
                .into(),
        })
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn pass(detail: impl Into<String>) -> Self {
        Self {
            ok: true,
            detail: detail.into(),
        }
    }
    fn fail(detail: impl Into<String>) -> Self {
        Self {
            ok: false,
            detail: detail.into(),
        }
    }
}

/// The answer of `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `ok`, `fail` (a check failed) or `draining` (maintenance mode; may also have failed
    /// checks).
    pub status: String,
    /// `keys`, `certificates`, `store`, `configuration`, `maintenance`.
    pub checks: BTreeMap<String, Check>,
}

impl HealthReport {
    /// Is the gateway fit to serve?
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

impl Gateway {
    /// Run the health checks as of `now` (Unix seconds; the HTTP endpoint passes the
    /// clock, tests may pass a later time to see what expires).
    pub async fn health(&self, now: i64) -> HealthReport {
        let (keys, store) = tokio::join!(self.check_keys(), self.check_store());
        let mut checks = BTreeMap::new();
        checks.insert("keys".to_owned(), keys);
        checks.insert("store".to_owned(), store);
        checks.insert("configuration".to_owned(), self.check_configuration(now));
        checks.insert("certificates".to_owned(), self.check_certificates(now));
        let draining = self.ops.draining();
        checks.insert(
            "maintenance".to_owned(),
            if draining {
                Check::fail(format!(
                    "draining since {}; {} client-side and {} provider-side exchanges in flight",
                    self.ops.draining_since.load(Ordering::SeqCst),
                    self.metrics.in_flight(Side::Client),
                    self.metrics.in_flight(Side::Provider)
                ))
            } else {
                Check::pass("accepting exchanges")
            },
        );
        let status = if draining {
            "draining"
        } else if checks.values().all(|c| c.ok) {
            "ok"
        } else {
            "fail"
        };
        HealthReport {
            status: status.to_owned(),
            checks,
        }
    }

    /// Enter or leave maintenance mode (also `POST /api/v1/maintenance`).
    pub fn set_maintenance(&self, enabled: bool) {
        self.ops.set_draining(enabled);
    }

    /// A test signature with every key, remembered for [`KEY_TEST_EVERY`].
    async fn check_keys(&self) -> Check {
        if let Ok(slot) = self.ops.key_test.lock()
            && let Some((at, check)) = slot.as_ref()
            && at.elapsed() < KEY_TEST_EVERY
        {
            return check.clone();
        }
        let check = match tokio::time::timeout(SIGN_TIMEOUT, self.test_signatures()).await {
            Ok(Ok(count)) => Check::pass(format!("{count} keys made a valid test signature")),
            Ok(Err(why)) => Check::fail(why),
            Err(_) => Check::fail(format!(
                "a test signature took longer than {SIGN_TIMEOUT:?}"
            )),
        };
        if let Ok(mut slot) = self.ops.key_test.lock() {
            *slot = Some((Instant::now(), check.clone()));
        }
        check
    }

    async fn test_signatures(&self) -> Result<usize, String> {
        let digest = crate::message::digest(format!("lienthong health {}", unix_now()).as_bytes());
        let auth = self
            .log_signer
            .sign(&digest)
            .map_err(|e| format!("the auth key cannot sign: {e}"))?;
        self.auth_certificate
            .public_key
            .verify(&digest, &auth)
            .map_err(|e| format!("the auth key's test signature does not verify: {e}"))?;
        let verifier = lienthong_crypto::BatchVerifier::new(0);
        for member in self.members.values() {
            let signature = member
                .signer
                .sign(digest)
                .await
                .map_err(|e| format!("the sign key of {} cannot sign: {e}", member.id))?;
            verifier
                .verify(&member.certificate.public_key, &digest, &signature)
                .map_err(|e| {
                    format!(
                        "the sign key of {}: test signature does not verify: {e}",
                        member.id
                    )
                })?;
        }
        Ok(1 + self.members.len())
    }

    async fn check_store(&self) -> Check {
        let query = self.store.registry().object("gw.health", "probe");
        match tokio::time::timeout(STORE_TIMEOUT, query).await {
            Ok(Ok(_)) => Check::pass("the store answered"),
            Ok(Err(error)) => Check::fail(format!("the store failed: {error}")),
            Err(_) => Check::fail(format!("the store did not answer within {STORE_TIMEOUT:?}")),
        }
    }

    fn check_configuration(&self, now: i64) -> Check {
        match self.conf.usable(now) {
            Ok(conf) => Check::pass(format!(
                "version {} valid until {}",
                conf.conf.version, conf.conf.expires_at
            )),
            Err(error) => Check::fail(error.to_string()),
        }
    }

    /// Every certificate's held OCSP response (the auth certificate's TLS staple, each
    /// member's response sent with its messages) is good and fresh at `now`.
    fn check_certificates(&self, now: i64) -> Check {
        let Some(view) = self.trust.get() else {
            return Check::fail("no global configuration: no approved CA to check against");
        };
        let freshness = i64::try_from(view.conf.conf.policy.ocsp_freshness_seconds).unwrap_or(3600);
        let auth_staple = self.identity.current().and_then(|key| key.ocsp.clone());
        let mut held = vec![(
            format!("auth certificate of {}", self.server_id()),
            &self.auth_certificate,
            auth_staple,
        )];
        for member in self.members.values() {
            let response = member
                .ocsp_header
                .read()
                .ok()
                .and_then(|h| h.clone())
                .and_then(|h| {
                    base64::engine::general_purpose::STANDARD
                        .decode(h.as_bytes())
                        .ok()
                });
            held.push((
                format!("sign certificate of {}", member.id),
                &member.certificate,
                response,
            ));
        }
        held.sort_by(|a, b| a.0.cmp(&b.0));
        let mut problems = Vec::new();
        for (name, certificate, response) in &held {
            if let Err(why) =
                certificate_fit(&view, certificate, response.as_deref(), freshness, now)
            {
                problems.push(format!("{name}: {why}"));
            }
        }
        if problems.is_empty() {
            Check::pass(format!(
                "{} certificates valid with good OCSP responses at most {freshness} s old",
                held.len()
            ))
        } else {
            Check::fail(problems.join("; "))
        }
    }
}

fn certificate_fit(
    view: &crate::trust::TrustView,
    certificate: &CertificateInfo,
    response: Option<&[u8]>,
    freshness: i64,
    now: i64,
) -> Result<(), String> {
    if now < certificate.not_before || now > certificate.not_after {
        return Err(format!(
            "not valid now (valid {} to {})",
            certificate.not_before, certificate.not_after
        ));
    }
    let issuer = view
        .issuer_of(certificate)
        .ok_or("not issued by an approved CA")?;
    let response = response.ok_or("no OCSP response held")?;
    match lienthong_pki::verify_ocsp_response(
        response,
        certificate,
        &issuer.certificate,
        now,
        freshness,
    ) {
        Ok(VerifiedStatus::Good { .. }) => Ok(()),
        Ok(VerifiedStatus::Revoked { time, .. }) => Err(format!("revoked at {time}")),
        Ok(VerifiedStatus::Unknown) => Err("unknown to the OCSP responder".into()),
        Err(error) => Err(format!("stale or invalid OCSP response: {error}")),
    }
}

/// The unauthenticated probes and `/metrics`, and the guarded maintenance switch, for
/// merging into the admin router.
pub(crate) fn routes(gateway: Arc<Gateway>, admin: &AdminState) -> Router {
    let open = Router::new()
        .route("/health", get(health))
        .route("/live", get(live))
        .route("/metrics", get(metrics))
        .with_state(gateway.clone());
    let guarded = crate::admin::protect(
        Router::new().route(
            "/api/v1/maintenance",
            get(maintenance_status).post(set_maintenance),
        ),
        admin,
    )
    .with_state(gateway);
    open.merge(guarded)
}

async fn health(State(gateway): State<Arc<Gateway>>) -> Response {
    let report = gateway.health(unix_now()).await;
    let status = if report.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "alive"}))
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    // Left out if the store cannot say (its health is in `/health`).
    let database_bytes = gateway.store.database_bytes().await.ok();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&gateway, unix_now(), database_bytes),
    )
        .into_response()
}

/// The maintenance switch's body and answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Maintenance {
    enabled: bool,
}

async fn maintenance_status(State(gateway): State<Arc<Gateway>>) -> Json<Maintenance> {
    Json(Maintenance {
        enabled: gateway.ops.draining(),
    })
}

async fn set_maintenance(
    State(gateway): State<Arc<Gateway>>,
    ApiJson(wanted): ApiJson<Maintenance>,
) -> Result<Json<Maintenance>, AdminError> {
    gateway.set_maintenance(wanted.enabled);
    Ok(Json(Maintenance {
        enabled: gateway.ops.draining(),
    }))
}
