//! The API's one error type and its JSON shape: `{"success":false,"error":"…"}`.
//! Expected outcomes map to 4xx; a 500 logs the detail and answers a generic body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::domain::DomainError;
use crate::store::{StoreError, WriteError};

/// Why a request failed; each variant is one HTTP status, written beside it.
/// Expected outcomes carry the message the client sees; a fault keeps its cause
/// for the log and shows the client nothing of it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 400: invalid input.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing, invalid or expired token, or a failed login.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: not allowed for this role.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown resource.
    #[error("{0}")]
    NotFound(String),
    /// 409: conflicts with the current state (a taken name, a backup running).
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is over its limit.
    #[error("request body is too large")]
    TooLarge,
    /// 429: over a per-user limit (open event streams).
    #[error("{0}")]
    TooMany(String),
    /// 422: a file (backup, snapshot) that fails verification.
    #[error("{0}")]
    Unprocessable(String),
    /// 503: read-only after a write failure, shutting down, a dependency down.
    #[error("{0}")]
    Unavailable(String),
    /// 507: the disk is full; nothing was acknowledged.
    #[error("insufficient storage")]
    InsufficientStorage,
    /// 500: a fault. The cause and its chain are logged once, here at the edge;
    /// the body is generic.
    #[error("internal error")]
    Internal(#[source] Cause),
}

/// The cause of a fault, kept whole (its `source()` chain included).
pub(crate) type Cause = Box<dyn std::error::Error + Send + Sync>;

impl ApiError {
    pub(crate) fn internal(cause: impl Into<Cause>) -> ApiError {
        ApiError::Internal(cause.into())
    }
}

/// "outer: inner: innermost", for one log line.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn error_body(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"success": false, "error": msg}))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(cause) => {
                tracing::error!(error = %chain(cause.as_ref()), "internal error");
                return error_body(StatusCode::INTERNAL_SERVER_ERROR, "internal server error");
            }
        };
        error_body(status, &self.to_string())
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(m) => ApiError::BadRequest(m),
            DomainError::NotFound(m) => ApiError::NotFound(m),
            DomainError::Conflict(m) => ApiError::Conflict(m),
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Domain(ref d) => d.clone().into(),
            WriteError::Closed => ApiError::Unavailable("server is shutting down".into()),
            WriteError::ReadOnly | WriteError::Fenced | WriteError::NotCommitted(_) => {
                ApiError::Unavailable(e.to_string())
            }
            WriteError::NoSpace => ApiError::InsufficientStorage,
            WriteError::OutOfOrder { .. } => ApiError::internal(e),
        }
    }
}

/// Faults of the layers below: 500, cause kept.
macro_rules! faults {
    ($($t:ty),+) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                ApiError::internal(e)
            }
        }
    )+};
}
faults!(StoreError, std::io::Error, tokio::task::JoinError);
