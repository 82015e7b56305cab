//! The API's one error type and its JSON shape: `{"success":false,"error":"…"}`.
//! Expected outcomes map to 4xx; a 500 logs the detail and answers a generic body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::domain::DomainError;
use crate::store::{StoreError, WriteError};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is too large")]
    TooLarge,
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("insufficient storage")]
    InsufficientStorage,
    /// Detail for the log only.
    #[error("internal error: {0}")]
    Internal(String),
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
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
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
            WriteError::ReadOnly => ApiError::Unavailable(e.to_string()),
            WriteError::NoSpace => ApiError::InsufficientStorage,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}
