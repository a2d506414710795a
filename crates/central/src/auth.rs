//! Bearer-token authentication, role checks and the audit trail of the admin API.
//!
//! Every request to a protected route is audited — accepted, refused (401/403) or failed —
//! with who, what, when and the result.

use crate::CentralError;
use crate::api::AppState;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lienthong_model::registry::Role;
use lienthong_store::NewAuditEntry;

/// SHA-256 (hex) of a token: what the store keeps instead of the secret.
pub fn hash_token(token: &str) -> String {
    lienthong_crypto::HashAlgorithm::Sha256
        .digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The authenticated caller, available to handlers.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) name: String,
}

/// Authenticate, authorise by method (reads: any role; writes: registry officer), run the
/// handler, and audit the outcome.
pub(crate) async fn guard(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    // Inside a nested router the URI is relative; audit the path the client called.
    let path = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(
            || request.uri().path().to_owned(),
            |uri| uri.path().to_owned(),
        );
    let action = format!("{} {path}", request.method());
    let needs_officer = !matches!(*request.method(), Method::GET | Method::HEAD);
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned);
    // Ok(name) or Err((actor for the audit record, error)).
    let caller: Result<String, (String, CentralError)> = match token {
        None => Err((
            "anonymous".into(),
            CentralError::Unauthorized("send Authorization: Bearer TOKEN".into()),
        )),
        Some(token) => match state.registry.authenticate(&token).await {
            Ok(Some((name, Role::ReadOnly))) if needs_officer => {
                let error = CentralError::Forbidden(format!("token {name:?} is read-only"));
                Err((name, error))
            }
            Ok(Some((name, _))) => Ok(name),
            Ok(None) => Err((
                "anonymous".into(),
                CentralError::Unauthorized("unknown or revoked token".into()),
            )),
            Err(error) => Err(("anonymous".into(), error)),
        },
    };
    let (actor, response) = match caller {
        Ok(name) => {
            request
                .extensions_mut()
                .insert(Caller { name: name.clone() });
            (name, next.run(request).await)
        }
        Err((actor, error)) => (actor, error.into_response()),
    };
    audit(&state, &actor, &action, "", response.status()).await;
    response
}

/// Append one audit record for a request that ended with `status`.
pub(crate) async fn audit(
    state: &AppState,
    actor: &str,
    action: &str,
    target: &str,
    status: StatusCode,
) {
    let result = if status.is_success() || status.is_redirection() {
        "ok"
    } else if matches!(status.as_u16(), 401 | 403) {
        "refused"
    } else {
        "failed"
    };
    let entry = NewAuditEntry {
        at: crate::api::unix_now(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        result: result.to_owned(),
        detail: status.to_string(),
    };
    if let Err(error) = state.registry.store().registry().append_audit(&entry).await {
        // The audit trail is part of the security record: make a failure loud.
        tracing::error!(%error, actor, action, "cannot write the audit log");
    }
}
