//! The gateway's admin API under `/api/v1`: services, access rights, local groups and the
//! audit log. Every call is authenticated with a bearer token and audited — accepted,
//! refused or failed — before its answer leaves.
//!
//! A token is accepted when its SHA-256 (hex) is in the configured list or is the id of a
//! `gw.token` object that is not revoked ([`create_token`] makes one): its holder is the
//! gateway's owner ([`Caller::Owner`]). A *client token* (a `gw.client-token` object,
//! [`create_client_token`]) speaks for one client subsystem ([`Caller::Client`]) and opens
//! only the routes put behind [`protect_for_clients`], which show it only its own data;
//! elsewhere it is refused with 403. Errors are JSON
//! `{type, message, detail}`; bodies are limited to 1 MiB (413) and unknown fields are 400.
//!
//! More admin routes (message-log export, monitoring, health) join by merging:
//! `admin::router(state.clone()).merge(admin::protect(routes, &state).with_state(theirs))`.
//! [`router`] sets the JSON 404 fallback, so merged routers must not set their own.

use crate::catalog::{CatalogError, ServiceCatalog};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, OriginalUri, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use lienthong_model::gateway::{AdminToken, Grant, LocalGroup, LocalGroupMember, Service};
use lienthong_model::registry::{ApiError, AuditRecord};
use lienthong_model::{IdError, MemberId, SubsystemId};
use lienthong_store::{NewAuditEntry, Store, StoreError};
use serde::Deserialize;
use std::sync::Arc;

/// Largest request body.
pub const MAX_BODY: usize = 1024 * 1024;
/// Store kind of admin tokens; id = SHA-256 (hex) of the secret.
pub const TOKEN_KIND: &str = "gw.token";
/// Store kind of client tokens; id = SHA-256 (hex) of the secret.
pub const CLIENT_TOKEN_KIND: &str = "gw.client-token";

/// Who is calling, as authenticated by the guard; in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The gateway's owner (an admin token).
    Owner,
    /// A client subsystem (a client token).
    Client(SubsystemId),
}

/// A stored client token.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
struct ClientToken {
    subsystem: SubsystemId,
    name: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

/// What the admin handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AdminState {
    store: Store,
    catalog: Arc<ServiceCatalog>,
    token_sha256: Arc<[String]>,
}

impl AdminState {
    /// State over `store` and `catalog`, accepting the tokens whose SHA-256 (hex) is in
    /// `token_sha256` in addition to the stored `gw.token` objects.
    pub fn new(store: Store, catalog: Arc<ServiceCatalog>, token_sha256: Vec<String>) -> Self {
        Self {
            store,
            catalog,
            token_sha256: token_sha256
                .into_iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<ServiceCatalog> {
        &self.catalog
    }

    /// The store (audit log, tokens).
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// The admin routes, guarded and audited, with a (guarded, audited) JSON 404 for unknown
/// routes.
pub fn router(state: AdminState) -> Router {
    let routes = Router::new()
        .route("/api/v1/services", get(list_services).post(add_service))
        .route(
            "/api/v1/services/{instance}/{class}/{code}/{subsystem}/{service}",
            axum::routing::delete(remove_service),
        )
        .route(
            "/api/v1/grants",
            get(list_grants).post(add_grant).delete(revoke_grant),
        )
        .route(
            "/api/v1/local-groups",
            get(list_local_groups).post(add_local_group),
        )
        .route(
            "/api/v1/local-groups/{instance}/{class}/{code}/{subsystem}/{group}/members",
            post(add_local_group_member),
        )
        .route("/api/v1/audit", get(list_audit));
    // Unknown routes are guarded and audited too (and tell an anonymous caller nothing).
    let not_found = Router::new()
        .fallback(|| async { AdminError::NotFound("route".into()) })
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard));
    protect(routes, &state)
        .fallback_service(not_found)
        .with_state(state)
}

/// Put `routes` behind the admin guard (bearer token, audit of every call) and the body
/// limit. For routers added beside [`router`].
pub fn protect<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    state: &AdminState,
) -> Router<S> {
    routes
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// Like [`protect`], but client tokens are accepted too: handlers must read the
/// [`Caller`] extension and show a client only its own data.
pub fn protect_for_clients<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    state: &AdminState,
) -> Router<S> {
    routes
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            client_guard,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// SHA-256 (hex) of a token: what configuration and store keep instead of the secret.
pub fn hash_token(token: &str) -> String {
    lienthong_crypto::HashAlgorithm::Sha256
        .digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Create a stored admin token named `name`; returns the secret, shown once.
pub async fn create_token(store: &Store, name: &str, now: i64) -> Result<String, AdminError> {
    let record = AdminToken {
        name: name.to_owned(),
        created_at: now,
        revoked_at: None,
    };
    mint_token(store, TOKEN_KIND, "ltg_", name, &record).await
}

/// Create a stored client token for `subsystem`, named `name`; returns the secret, shown
/// once.
pub async fn create_client_token(
    store: &Store,
    subsystem: &SubsystemId,
    name: &str,
    now: i64,
) -> Result<String, AdminError> {
    let record = ClientToken {
        subsystem: subsystem.clone(),
        name: name.to_owned(),
        created_at: now,
        revoked_at: None,
    };
    mint_token(store, CLIENT_TOKEN_KIND, "ltc_", name, &record).await
}

/// A new random secret `PREFIX` + 32 random bytes (base64url), stored as `record` of
/// `kind` under the secret's SHA-256; returns the secret.
async fn mint_token<T: serde::Serialize>(
    store: &Store,
    kind: &str,
    prefix: &str,
    name: &str,
    record: &T,
) -> Result<String, AdminError> {
    if name.trim().is_empty() || name.len() > 128 {
        return Err(AdminError::BadRequest(
            "token name must be 1 to 128 characters".into(),
        ));
    }
    let mut secret = [0u8; 32];
    lienthong_crypto::fill_random(&mut secret)
        .map_err(|e| AdminError::Internal(format!("cannot make a token: {e}")))?;
    let token = format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    let body = serde_json::to_string(record).map_err(|e| AdminError::Internal(e.to_string()))?;
    store
        .registry()
        .insert_object(kind, &hash_token(&token), &body)
        .await?;
    Ok(token)
}

/// Revoke the client token whose SHA-256 (hex) is `sha256`; returns its subsystem.
pub async fn revoke_client_token(
    store: &Store,
    sha256: &str,
    now: i64,
) -> Result<SubsystemId, AdminError> {
    let sha256 = sha256.to_ascii_lowercase();
    let object = store
        .registry()
        .object(CLIENT_TOKEN_KIND, &sha256)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("client token {sha256}")))?;
    let mut record: ClientToken = serde_json::from_str(&object.body)
        .map_err(|e| AdminError::Internal(format!("stored token {sha256} is unreadable: {e}")))?;
    record.revoked_at.get_or_insert(now);
    let body = serde_json::to_string(&record).map_err(|e| AdminError::Internal(e.to_string()))?;
    store
        .registry()
        .update_object(CLIENT_TOKEN_KIND, &sha256, &body, object.revision)
        .await?;
    Ok(record.subsystem)
}

/// An admin request failed. Shown to the caller as JSON `{type, message, detail}`; our own
/// failures are logged and shown without detail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The request is malformed or names something invalid.
    #[error("{0}")]
    BadRequest(String),
    /// No or unknown credentials.
    #[error("authentication required: {0}")]
    Unauthorized(String),
    /// Known credentials that do not allow this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No such object or route.
    #[error("{0} not found")]
    NotFound(String),
    /// The object exists, or changed concurrently.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than [`MAX_BODY`].
    #[error("request body larger than {MAX_BODY} bytes")]
    TooLarge,
    /// A catalog operation failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something else on our side.
    #[error("{0}")]
    Internal(String),
}

impl AdminError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Catalog(error) => match error {
                CatalogError::Invalid(_) | CatalogError::BadRequest(_) => StatusCode::BAD_REQUEST,
                CatalogError::NotFound(_) => StatusCode::NOT_FOUND,
                CatalogError::Conflict(_) => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::Store(StoreError::Duplicate { .. } | StoreError::Conflict { .. }) => {
                StatusCode::CONFLICT
            }
            Self::Store(StoreError::NotFound { .. }) => StatusCode::NOT_FOUND,
            Self::Store(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self.status() {
            StatusCode::BAD_REQUEST => "BadRequest",
            StatusCode::UNAUTHORIZED => "Unauthorized",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::NOT_FOUND => "NotFound",
            StatusCode::CONFLICT => "Conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLarge",
            _ => "InternalError",
        }
    }
}

impl From<IdError> for AdminError {
    fn from(error: IdError) -> Self {
        Self::BadRequest(format!("invalid identifier: {error}"))
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "admin request failed");
            "internal error; see the gateway's log".to_owned()
        } else {
            self.to_string()
        };
        let body = ApiError {
            kind: self.kind().to_owned(),
            message: message.clone(),
            detail: String::new(),
        };
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(AuditNote(message));
        response
    }
}

/// JSON body extractor whose rejections are [`AdminError`]s: 413 when too large, else 400
/// (syntax, unknown fields, wrong types, missing `Content-Type`).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequest<S> for ApiJson<T> {
    type Rejection = AdminError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(AdminError::TooLarge)
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AdminError::BadRequest(
                "send Content-Type: application/json".into(),
            )),
            Err(rejection) => Err(AdminError::BadRequest(rejection.body_text())),
        }
    }
}

/// What a response was about, for the audit record (set by handlers).
#[derive(Debug, Clone)]
struct AuditTarget(String);

/// Why a request failed, for the audit record (set by [`AdminError`]).
#[derive(Debug, Clone)]
struct AuditNote(String);

/// Authenticate an owner, run the handler, and audit the outcome with who, what, on what
/// and how.
async fn guard(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    guarded(state, request, next, false).await
}

/// [`guard`], accepting client tokens too.
async fn client_guard(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    guarded(state, request, next, true).await
}

async fn guarded(state: AdminState, mut request: Request, next: Next, clients: bool) -> Response {
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path(), |uri| uri.path())
        .to_owned();
    let action = format!("{} {path}", request.method());
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let (actor, response) = match authenticate(&state, token.as_deref()).await {
        Ok((actor, Caller::Client(_))) if !clients => (
            actor,
            AdminError::Forbidden("a client token opens only its monitoring records".into())
                .into_response(),
        ),
        Ok((actor, caller)) => {
            request.extensions_mut().insert(caller);
            (actor, next.run(request).await)
        }
        Err(error) => ("anonymous".to_owned(), error.into_response()),
    };
    let target = response
        .extensions()
        .get::<AuditTarget>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let status = response.status();
    let result = if status.is_success() || status.is_redirection() {
        "ok"
    } else if matches!(status.as_u16(), 401 | 403) {
        "refused"
    } else {
        "failed"
    };
    let detail = match response.extensions().get::<AuditNote>() {
        Some(note) => format!("{status}: {}", note.0.chars().take(300).collect::<String>()),
        None => status.to_string(),
    };
    let entry = NewAuditEntry {
        at: unix_now(),
        actor,
        action,
        target,
        result: result.to_owned(),
        detail,
    };
    if let Err(error) = state.store.registry().append_audit(&entry).await {
        // The audit trail is part of the security record: make a failure loud.
        tracing::error!(%error, actor = %entry.actor, action = %entry.action, "cannot write the audit log");
    }
    response
}

/// The caller's name for the audit log, and who it is.
async fn authenticate(
    state: &AdminState,
    token: Option<&str>,
) -> Result<(String, Caller), AdminError> {
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AdminError::Unauthorized("send Authorization: Bearer TOKEN".into()))?;
    let hash = hash_token(token);
    // Comparing hashes, not secrets: timing can reveal at most a prefix of a hash.
    if state.token_sha256.contains(&hash) {
        return Ok((format!("configured-token:{}", &hash[..12]), Caller::Owner));
    }
    let unknown = || AdminError::Unauthorized("unknown or revoked token".into());
    let unreadable = |e: serde_json::Error| {
        AdminError::Internal(format!("stored token {hash} is unreadable: {e}"))
    };
    let registry = state.store.registry();
    if let Some(object) = registry.object(TOKEN_KIND, &hash).await? {
        let record: AdminToken = serde_json::from_str(&object.body).map_err(unreadable)?;
        return match record.revoked_at {
            None => Ok((record.name, Caller::Owner)),
            Some(_) => Err(unknown()),
        };
    }
    let object = registry
        .object(CLIENT_TOKEN_KIND, &hash)
        .await?
        .ok_or_else(unknown)?;
    let record: ClientToken = serde_json::from_str(&object.body).map_err(unreadable)?;
    match record.revoked_at {
        None => Ok((
            format!("client:{}:{}", record.subsystem, record.name),
            Caller::Client(record.subsystem),
        )),
        Some(_) => Err(unknown()),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A JSON answer with its audit target.
pub(crate) fn answer<T: serde::Serialize>(
    status: StatusCode,
    target: String,
    value: T,
) -> Response {
    let mut response = (status, Json(value)).into_response();
    response.extensions_mut().insert(AuditTarget(target));
    response
}

type PathParts = Result<Path<(String, String, String, String, String)>, PathRejection>;

/// `{instance}/{class}/{code}/{subsystem}/{last}` → subsystem and last part.
fn subsystem_path(path: PathParts) -> Result<(SubsystemId, String), AdminError> {
    let Path((instance, class, code, subsystem, last)) =
        path.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let provider = SubsystemId::new(MemberId::new(&instance, &class, &code)?, &subsystem)?;
    Ok((provider, last))
}

async fn list_services(State(state): State<AdminState>) -> Json<Vec<Service>> {
    Json(
        state
            .catalog
            .services()
            .iter()
            .map(|s| Service::clone(s))
            .collect(),
    )
}

async fn add_service(
    State(state): State<AdminState>,
    ApiJson(service): ApiJson<Service>,
) -> Result<Response, AdminError> {
    let target = format!("{}/{}", service.provider, service.code);
    let service = state.catalog.add_service(service).await?;
    Ok(answer(
        StatusCode::CREATED,
        target,
        Service::clone(&service),
    ))
}

async fn remove_service(
    State(state): State<AdminState>,
    path: PathParts,
) -> Result<Response, AdminError> {
    let (provider, code) = subsystem_path(path)?;
    let target = format!("{provider}/{code}");
    state.catalog.remove_service(&provider, &code).await?;
    Ok(answer(
        StatusCode::OK,
        target.clone(),
        serde_json::json!({ "deleted": target }),
    ))
}

async fn list_grants(State(state): State<AdminState>) -> Json<Vec<Grant>> {
    Json(state.catalog.grants())
}

async fn add_grant(
    State(state): State<AdminState>,
    ApiJson(grant): ApiJson<Grant>,
) -> Result<Response, AdminError> {
    let target = grant.service.to_string();
    let added = state.catalog.grant(grant.clone()).await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(answer(status, target, grant))
}

async fn revoke_grant(
    State(state): State<AdminState>,
    ApiJson(grant): ApiJson<Grant>,
) -> Result<Response, AdminError> {
    let target = grant.service.to_string();
    if !state.catalog.revoke(&grant).await? {
        return Err(AdminError::NotFound(format!(
            "grant of {} to {}",
            grant.service, grant.subject
        )));
    }
    Ok(answer(
        StatusCode::OK,
        target,
        serde_json::json!({ "revoked": grant }),
    ))
}

async fn list_local_groups(State(state): State<AdminState>) -> Json<Vec<LocalGroup>> {
    Json(
        state
            .catalog
            .local_groups()
            .iter()
            .map(|g| LocalGroup::clone(g))
            .collect(),
    )
}

async fn add_local_group(
    State(state): State<AdminState>,
    ApiJson(group): ApiJson<LocalGroup>,
) -> Result<Response, AdminError> {
    let target = format!("{}/{}", group.owner, group.code);
    let group = state.catalog.add_local_group(group).await?;
    Ok(answer(
        StatusCode::CREATED,
        target,
        LocalGroup::clone(&group),
    ))
}

async fn add_local_group_member(
    State(state): State<AdminState>,
    path: PathParts,
    ApiJson(member): ApiJson<LocalGroupMember>,
) -> Result<Response, AdminError> {
    let (owner, code) = subsystem_path(path)?;
    let target = format!("{owner}/{code}");
    let group = state
        .catalog
        .add_local_group_member(&owner, &code, member.client)
        .await?;
    Ok(answer(StatusCode::OK, target, LocalGroup::clone(&group)))
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
    State(state): State<AdminState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditRecord>>, AdminError> {
    let Query(query) = query.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    let entries = state
        .store
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
