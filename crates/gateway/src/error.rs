//! Errors the platform itself returns to a client, in X-Road's REST form: HTTP 400 (the
//! client's fault) or 500, the `X-Road-Error` header, and `{"type","message","detail"}`.

use crate::body::{GatewayBody, full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

/// A platform error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct XRoadError {
    /// HTTP status.
    pub status: StatusCode,
    /// `Client.*`, `Server.ClientProxy.*` or `Server.ServerProxy.*`.
    pub kind: String,
    /// What happened, for the client.
    pub message: String,
}

impl XRoadError {
    /// A client error (400): `Client.{code}`.
    pub fn client(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, format!("Client.{code}"), message)
    }
    /// A client-side gateway error (500): `Server.ClientProxy.{code}`.
    pub fn client_proxy(code: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Server.ClientProxy.{code}"),
            message,
        )
    }
    /// A provider-side gateway error (500): `Server.ServerProxy.{code}`.
    pub fn server_proxy(code: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Server.ServerProxy.{code}"),
            message,
        )
    }

    fn new(status: StatusCode, kind: String, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    /// The HTTP response.
    pub fn into_response(self, message_id: Option<&str>) -> Response<GatewayBody> {
        let body = serde_json::json!({"type": self.kind, "message": self.message, "detail": message_id.unwrap_or("")});
        let mut response = Response::new(full(body.to_string()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(kind) = HeaderValue::from_str(&self.kind) {
            headers.insert("x-road-error", kind);
        }
        if let Some(id) = message_id.and_then(|id| HeaderValue::from_str(id).ok()) {
            headers.insert("x-road-id", id);
        }
        response
    }
}
