//! The API error type and MSR's error body.
//!
//! Every failure an API client sees is `{"errors":[{"code","message","detail"?}]}`
//! with the HTTP status of its code, as in MSR/DTR. Server-side failures are
//! logged in full and answered with `INTERNAL_ERROR` and the request id only,
//! so no SQL text or stack ever reaches a client.

use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::request_id;
use crate::registry;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    detail: Option<Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn not_authenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "NOT_AUTHENTICATED", message)
    }

    pub fn not_authorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "NOT_AUTHORIZED", message)
    }

    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_JSON", message)
    }

    pub fn invalid_settings(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_SETTINGS", message)
    }

    pub fn invalid_parameters(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETERS", message)
    }

    /// Logs `cause` with the request id and hides it from the client.
    pub fn internal(cause: impl fmt::Display) -> Self {
        let request_id = request_id::current();
        tracing::error!(request_id = %request_id, error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "an internal error occurred; quote the request ID when reporting it",
        )
        .with_detail(json!({ "requestID": request_id }))
    }

    /// The same failure under another API's code (the OCI distribution API
    /// says `UNAUTHORIZED` where MSR's says `NOT_AUTHENTICATED`).
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::internal(format_args!("database: {err}"))
    }
}

impl From<registry::Invalid> for ApiError {
    fn from(invalid: registry::Invalid) -> Self {
        Self::invalid_parameters(invalid.to_string()).with_detail(json!({ "field": invalid.field }))
    }
}

impl From<registry::Error> for ApiError {
    fn from(err: registry::Error) -> Self {
        use registry::{Error, Thing};
        match err {
            Error::Invalid(invalid) => invalid.into(),
            Error::NotFound { thing, message } => {
                let code = match thing {
                    Thing::Account => "NO_SUCH_ACCOUNT",
                    Thing::Team => "NO_SUCH_TEAM",
                    Thing::Repository => "NO_SUCH_REPOSITORY",
                };
                Self::new(StatusCode::NOT_FOUND, code, message)
            }
            Error::Exists { thing, message } => {
                let code = match thing {
                    Thing::Account => "ACCOUNT_EXISTS",
                    Thing::Team => "TEAM_EXISTS",
                    Thing::Repository => "REPOSITORY_EXISTS",
                };
                Self::new(StatusCode::CONFLICT, code, message)
            }
            Error::NotAuthorized(message) => Self::not_authorized(message),
            Error::Refused(message) => Self::invalid_parameters(message),
            Error::Database(err) => err.into(),
            Error::Internal(err) => err.into(),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        Self::internal(format_args!("{err:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(detail) = self.detail {
            error["detail"] = detail;
        }
        let mut response = (self.status, axum::Json(json!({ "errors": [error] }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"msr\", charset=\"UTF-8\""),
            );
        }
        response
    }
}
