//! HTTP: the public configuration download, the gateways' registration endpoint, and the
//! token-protected, audited admin API under `/api/v1` (described by `/api/v1/openapi.json`).

use crate::auth::{Caller, audit, guard};
use crate::{CentralError, Registry};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use lienthong_model::conf::{ApprovedCa, ApprovedTsa, FederationPolicy};
use lienthong_model::registry::{
    AuditRecord, GroupMember, NewGroup, NewMember, NewSubsystem, NewToken, SignedRegistration,
};
use lienthong_model::{GlobalGroupId, MemberId};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Largest admin request body.
const MAX_BODY: usize = 1024 * 1024;

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) registry: Arc<Registry>,
}

/// The registry's routes.
pub fn router(registry: Arc<Registry>) -> Router {
    let state = AppState { registry };
    let admin = Router::new()
        .route("/members", get(list_members).post(add_member))
        .route(
            "/members/{instance}/{class}/{code}",
            get(get_member).delete(delete_member),
        )
        .route(
            "/members/{instance}/{class}/{code}/subsystems",
            post(add_subsystem),
        )
        .route("/gateways", get(list_gateways))
        .route("/groups", get(list_groups).post(add_group))
        .route("/groups/{instance}/{code}/members", post(add_group_member))
        .route("/cas", get(list_cas).post(add_ca))
        .route("/tsas", get(list_tsas).post(add_tsa))
        .route("/policy", get(get_policy).put(put_policy))
        .route("/registrations", get(list_registrations))
        .route("/registrations/{id}/approve", post(approve))
        .route("/registrations/{id}/reject", post(reject))
        .route("/tokens", post(create_token))
        .route("/audit", get(list_audit))
        .route("/globalconf/status", get(conf_status))
        .route("/globalconf/publish", post(publish))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard));
    Router::new()
        .route("/globalconf", get(download))
        .route("/health", get(health))
        .route(
            "/live",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/api/v1/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/api/v1/registration-requests", post(submit_registration))
        .nest("/api/v1", admin)
        .fallback(|| async { CentralError::NotFound("route".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Serve the registry on `listener` until `shutdown` resolves, re-publishing the
/// configuration every `republish` so that its expiry keeps moving forward.
pub async fn run(
    listener: TcpListener,
    registry: Arc<Registry>,
    republish: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Err(error) = registry.publish(unix_now()).await {
        tracing::error!(%error, "cannot publish the global configuration at startup");
    }
    let publisher = {
        let registry = registry.clone();
        tokio::spawn(async move {
            // After a pause (a suspended machine, a moved test clock) publish once, not once
            // for every missed interval.
            let mut ticker = tokio::time::interval(republish);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if let Err(error) = registry.publish(unix_now()).await {
                    tracing::error!(%error, "cannot re-publish the global configuration");
                }
            }
        })
    };
    let served = axum::serve(listener, router(registry))
        .with_graceful_shutdown(shutdown)
        .await;
    publisher.abort();
    served
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// JSON body extractor whose rejections are our JSON errors (400, or 413 when too large).
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequest<S> for ApiJson<T> {
    type Rejection = CentralError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(CentralError::TooLarge)
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(CentralError::BadRequest(
                "send Content-Type: application/json".into(),
            )),
            Err(rejection) => Err(CentralError::BadRequest(rejection.body_text())),
        }
    }
}

type ApiResult<T> = Result<Json<T>, CentralError>;

fn member_id(instance: &str, class: &str, code: &str) -> Result<MemberId, CentralError> {
    Ok(MemberId::new(instance, class, code)?)
}

async fn download(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, CentralError> {
    let latest = state
        .registry
        .latest()
        .await?
        .ok_or_else(|| CentralError::NotFound("global configuration".into()))?;
    let etag = format!("\"v{}\"", latest.version);
    let cache = [
        (header::CACHE_CONTROL, "no-cache".to_owned()),
        (header::ETAG, etag.clone()),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Ok((
        cache,
        [(header::CONTENT_TYPE, "application/json")],
        latest.envelope,
    )
        .into_response())
}

async fn submit_registration(
    State(state): State<AppState>,
    body: Result<ApiJson<SignedRegistration>, CentralError>,
) -> Response {
    let (actor, response) = match body {
        Ok(ApiJson(signed)) => {
            let actor = signed.request.server.to_string();
            let result = state.registry.submit_registration(signed, unix_now()).await;
            (
                actor,
                result
                    .map(|r| (StatusCode::ACCEPTED, Json(r)))
                    .into_response(),
            )
        }
        Err(error) => ("anonymous".to_owned(), error.into_response()),
    };
    audit(
        &state,
        &actor,
        "POST /api/v1/registration-requests",
        "",
        response.status(),
    )
    .await;
    response
}

async fn changed<T>(state: &AppState, value: T) -> ApiResult<T> {
    state.registry.publish(unix_now()).await?;
    Ok(Json(value))
}

async fn list_members(
    State(state): State<AppState>,
) -> ApiResult<Vec<lienthong_model::conf::Member>> {
    Ok(Json(state.registry.members().await?))
}

async fn add_member(
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewMember>,
) -> ApiResult<lienthong_model::conf::Member> {
    let member = state.registry.add_member(new).await?;
    changed(&state, member).await
}

async fn get_member(
    State(state): State<AppState>,
    Path((instance, class, code)): Path<(String, String, String)>,
) -> ApiResult<lienthong_model::conf::Member> {
    Ok(Json(
        state
            .registry
            .member(&member_id(&instance, &class, &code)?)
            .await?,
    ))
}

async fn delete_member(
    State(state): State<AppState>,
    Path((instance, class, code)): Path<(String, String, String)>,
) -> ApiResult<serde_json::Value> {
    let id = member_id(&instance, &class, &code)?;
    state.registry.delete_member(&id).await?;
    changed(&state, serde_json::json!({"deleted": id.to_string()})).await
}

async fn add_subsystem(
    State(state): State<AppState>,
    Path((instance, class, code)): Path<(String, String, String)>,
    ApiJson(new): ApiJson<NewSubsystem>,
) -> ApiResult<lienthong_model::conf::Member> {
    let member = state
        .registry
        .add_subsystem(&member_id(&instance, &class, &code)?, &new.code)
        .await?;
    changed(&state, member).await
}

async fn list_gateways(
    State(state): State<AppState>,
) -> ApiResult<Vec<lienthong_model::conf::Gateway>> {
    Ok(Json(state.registry.gateways().await?))
}

async fn list_groups(
    State(state): State<AppState>,
) -> ApiResult<Vec<lienthong_model::conf::GlobalGroup>> {
    Ok(Json(state.registry.groups().await?))
}

async fn add_group(
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewGroup>,
) -> ApiResult<lienthong_model::conf::GlobalGroup> {
    let group = state.registry.add_group(new).await?;
    changed(&state, group).await
}

async fn add_group_member(
    State(state): State<AppState>,
    Path((instance, code)): Path<(String, String)>,
    ApiJson(body): ApiJson<GroupMember>,
) -> ApiResult<lienthong_model::conf::GlobalGroup> {
    let group = GlobalGroupId::new(&instance, &code)?;
    let group = state.registry.add_group_member(&group, body.client).await?;
    changed(&state, group).await
}

async fn list_cas(State(state): State<AppState>) -> ApiResult<Vec<ApprovedCa>> {
    Ok(Json(state.registry.cas().await?))
}

async fn add_ca(
    State(state): State<AppState>,
    ApiJson(ca): ApiJson<ApprovedCa>,
) -> ApiResult<ApprovedCa> {
    let ca = state.registry.add_ca(ca).await?;
    changed(&state, ca).await
}

async fn list_tsas(State(state): State<AppState>) -> ApiResult<Vec<ApprovedTsa>> {
    Ok(Json(state.registry.tsas().await?))
}

async fn add_tsa(
    State(state): State<AppState>,
    ApiJson(tsa): ApiJson<ApprovedTsa>,
) -> ApiResult<ApprovedTsa> {
    let tsa = state.registry.add_tsa(tsa).await?;
    changed(&state, tsa).await
}

/// `GET`/`PUT /api/v1/policy` body: the values and the revision they were read at.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDocument {
    policy: FederationPolicy,
    revision: i64,
}

async fn get_policy(State(state): State<AppState>) -> ApiResult<PolicyDocument> {
    let (policy, revision) = state.registry.policy().await?;
    Ok(Json(PolicyDocument { policy, revision }))
}

async fn put_policy(
    State(state): State<AppState>,
    ApiJson(document): ApiJson<PolicyDocument>,
) -> ApiResult<PolicyDocument> {
    let revision = state
        .registry
        .set_policy(document.policy.clone(), document.revision)
        .await?;
    changed(
        &state,
        PolicyDocument {
            policy: document.policy,
            revision,
        },
    )
    .await
}

async fn list_registrations(
    State(state): State<AppState>,
) -> ApiResult<Vec<lienthong_model::registry::Registration>> {
    Ok(Json(state.registry.registrations().await?))
}

async fn approve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<lienthong_model::registry::Registration> {
    let decided = state
        .registry
        .decide_registration(&id, true, &caller.name)
        .await?;
    changed(&state, decided).await
}

async fn reject(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<lienthong_model::registry::Registration> {
    Ok(Json(
        state
            .registry
            .decide_registration(&id, false, &caller.name)
            .await?,
    ))
}

async fn create_token(
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewToken>,
) -> ApiResult<lienthong_model::registry::CreatedToken> {
    Ok(Json(state.registry.create_token(new, unix_now()).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    1000
}

async fn list_audit(
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Vec<AuditRecord>> {
    let Query(query) = query.map_err(|e| CentralError::BadRequest(e.body_text()))?;
    let entries = state
        .registry
        .store()
        .registry()
        .audit(query.after, query.limit.clamp(1, 10_000))
        .await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|e| AuditRecord {
                id: e.id,
                at: e.entry.at,
                actor: e.entry.actor,
                action: e.entry.action,
                target: e.entry.target,
                result: e.entry.result,
                detail: e.entry.detail,
            })
            .collect(),
    ))
}

/// How long the store may take to answer the health query.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Readiness: the store answers and the newest published configuration has not expired
/// (if publication keeps failing, every gateway stops exchanging once it expires). 200
/// with `"status": "ok"`, or 503 with `"status": "fail"`; each check says what it saw.
/// `/live` only says the process serves HTTP.
async fn health(State(state): State<AppState>) -> Response {
    let now = unix_now();
    let pass = |detail: String| serde_json::json!({"ok": true, "detail": detail});
    let fail = |detail: String| serde_json::json!({"ok": false, "detail": detail});
    let (store, configuration) = match tokio::time::timeout(HEALTH_TIMEOUT, state.registry.latest())
        .await
    {
        Err(_) => (
            fail(format!(
                "the store did not answer within {HEALTH_TIMEOUT:?}"
            )),
            fail("not checked: the store did not answer".into()),
        ),
        Ok(Err(error)) => (
            fail(format!("the store failed: {error}")),
            fail("not checked: the store failed".into()),
        ),
        Ok(Ok(None)) => (
            pass("the store answered".into()),
            fail("no global configuration has been published".into()),
        ),
        Ok(Ok(Some(latest))) if latest.expires_at <= now => (
            pass("the store answered".into()),
            fail(format!(
                "the newest global configuration (version {}) expired at {}: publication is failing",
                latest.version, latest.expires_at
            )),
        ),
        Ok(Ok(Some(latest))) => (
            pass("the store answered".into()),
            pass(format!(
                "version {} valid until {}",
                latest.version, latest.expires_at
            )),
        ),
    };
    let ok = store["ok"] == true && configuration["ok"] == true;
    if !ok {
        tracing::warn!(%store, %configuration, "registry health check failed");
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "fail" },
        "checks": {"store": store, "configuration": configuration},
    });
    (status, Json(body)).into_response()
}

async fn conf_status(State(state): State<AppState>) -> ApiResult<serde_json::Value> {
    let latest = state.registry.latest().await?;
    Ok(Json(match latest {
        Some(v) => {
            serde_json::json!({"version": v.version, "generated_at": v.generated_at, "expires_at": v.expires_at})
        }
        None => serde_json::json!({"version": null}),
    }))
}

async fn publish(State(state): State<AppState>) -> ApiResult<serde_json::Value> {
    let v = state.registry.publish(unix_now()).await?;
    Ok(Json(
        serde_json::json!({"version": v.version, "expires_at": v.expires_at}),
    ))
}
