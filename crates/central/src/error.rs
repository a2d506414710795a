//! Errors of the registry, and how each is shown to an API client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lienthong_model::registry::ApiError;

/// A registry operation failed. `status()` says whose fault it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CentralError {
    /// The request is malformed or names something invalid (client's fault).
    #[error("{0}")]
    BadRequest(String),
    /// No or unknown credentials.
    #[error("authentication required: {0}")]
    Unauthorized(String),
    /// Authenticated, but the role does not allow this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The object exists, or changed concurrently.
    #[error("{0}")]
    Conflict(String),
    /// The body is too large.
    #[error("request body too large")]
    TooLarge,
    /// Storage failed (our fault; details go to the log, not to the client).
    #[error(transparent)]
    Store(#[from] lienthong_store::StoreError),
    /// Signing the configuration failed.
    #[error(transparent)]
    Conf(#[from] lienthong_conf::ConfError),
    /// The configuration file is wrong.
    #[error("configuration: {0}")]
    Config(String),
}

impl CentralError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Store(lienthong_store::StoreError::Duplicate { .. })
            | Self::Store(lienthong_store::StoreError::Conflict { .. }) => StatusCode::CONFLICT,
            Self::Store(lienthong_store::StoreError::NotFound { .. }) => StatusCode::NOT_FOUND,
            Self::Store(_) | Self::Conf(_) | Self::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
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

impl IntoResponse for CentralError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "registry request failed");
            "internal error; see the registry's log".to_owned()
        } else {
            self.to_string()
        };
        let body = ApiError {
            kind: self.kind().to_owned(),
            message,
            detail: String::new(),
        };
        (status, axum::Json(body)).into_response()
    }
}

impl From<lienthong_model::IdError> for CentralError {
    fn from(error: lienthong_model::IdError) -> Self {
        Self::BadRequest(format!("invalid identifier: {error}"))
    }
}
