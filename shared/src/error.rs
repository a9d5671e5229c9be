//! One error type for every service, rendered as RFC 9457 problem+json over HTTP and mapped to
//! `tonic::Status` over gRPC. Internal causes are logged once, here, and never sent to clients.

use std::borrow::Cow;

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde::{Deserialize, Serialize};

/// Result alias used across services.
pub type AppResult<T> = Result<T, AppError>;

/// A per-field validation failure, listed in a 422 problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything a handler can fail with. Variants carry client-safe text only; `Internal` carries
/// the cause, which is logged and replaced by a generic detail.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    HeadersTooLarge(String),
    /// A body in a format the route does not take (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Unavailable(String),
    /// An upstream answered badly or not at all (gateway).
    #[error("{0}")]
    BadGateway(String),
    /// An upstream did not answer in time (gateway).
    #[error("{0}")]
    GatewayTimeout(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
    /// Any of the above with a specific machine-readable code (`tickets.stale_version`).
    #[error("{error}")]
    Coded {
        code: Cow<'static, str>,
        error: Box<AppError>,
    },
}

/// gRPC metadata carrying the problem document (JSON), so a peer's error becomes the same
/// HTTP answer on the other side of the hop.
pub const PROBLEM_METADATA: &str = "agora-problem-bin";

impl AppError {
    /// A 422 with a single field error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    /// This error with the stable machine-readable `code` clients match on (`<service>.<what>`).
    pub fn with_code(self, code: impl Into<Cow<'static, str>>) -> Self {
        let error = match self {
            Self::Coded { error, .. } => error,
            other => Box::new(other),
        };
        Self::Coded {
            code: code.into(),
            error,
        }
    }

    /// A write lost to a concurrent one (the row's version moved): 412 everywhere.
    pub fn stale(code: &'static str, detail: impl Into<String>) -> Self {
        Self::PreconditionFailed(detail.into()).with_code(code)
    }

    /// The error without its code.
    fn inner(&self) -> &AppError {
        match self {
            Self::Coded { error, .. } => error.inner(),
            other => other,
        }
    }

    /// The machine-readable code: the specific one, or one for the status.
    pub fn code(&self) -> Cow<'static, str> {
        if let Self::Coded { code, .. } = self {
            return code.clone();
        }
        Cow::Borrowed(match self {
            Self::BadRequest(_) => "bad_request",
            Self::Validation(_) => "validation_failed",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::PreconditionFailed(_) => "precondition_failed",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::HeadersTooLarge(_) => "headers_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::BadGateway(_) => "bad_gateway",
            Self::GatewayTimeout(_) => "gateway_timeout",
            Self::Internal(_) | Self::Coded { .. } => "internal",
        })
    }

    pub fn status(&self) -> StatusCode {
        match self.inner() {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) | Self::Coded { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem document sent to clients.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let detail = match self.inner() {
            Self::Internal(_) => "an internal error occurred; it has been logged".to_owned(),
            Self::Validation(errors) => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                format!("invalid fields: {}", fields.join(", "))
            }
            other => other.to_string(),
        };
        Problem {
            kind: format!(
                "https://agora.dev/problems/{}",
                status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_lowercase()
                    .replace(' ', "-")
            ),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: self.code().into_owned(),
            detail,
            instance: None,
            errors: match self.inner() {
                Self::Validation(errors) => Some(errors.clone()),
                _ => None,
            },
        }
    }

    /// Seconds a client should wait before retrying, where the error says.
    fn retry_after(&self) -> Option<u64> {
        match self.inner() {
            Self::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::Unavailable(_) => Some(1),
            _ => None,
        }
    }

    /// The error a peer's problem document describes (what it answered over gRPC).
    fn from_problem(problem: Problem) -> Self {
        let detail = problem.detail;
        let error = match problem.status {
            400 => Self::BadRequest(detail),
            401 => Self::Unauthorized(detail),
            403 => Self::Forbidden(detail),
            404 => Self::NotFound(detail),
            409 => Self::Conflict(detail),
            412 => Self::PreconditionFailed(detail),
            413 => Self::PayloadTooLarge(detail),
            415 => Self::UnsupportedMediaType(detail),
            422 => Self::Validation(problem.errors.unwrap_or_default()),
            429 => Self::TooManyRequests {
                detail,
                retry_after_secs: 1,
            },
            503 => Self::Unavailable(detail),
            504 => Self::GatewayTimeout(detail),
            _ => Self::BadGateway("a peer service failed".into()),
        };
        error.with_code(problem.code)
    }
}

/// RFC 9457 problem details, with a stable machine-readable `code`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(cause) = self.inner() {
            tracing::error!(error = %format!("{cause:#}"), "internal error");
        }
        let mut builder = HttpResponse::build(self.status());
        if let Some(secs) = self.retry_after() {
            builder.insert_header(("Retry-After", secs.to_string()));
        }
        builder
            .content_type("application/problem+json")
            .json(self.problem())
    }
}

impl From<AppError> for tonic::Status {
    fn from(err: AppError) -> Self {
        use tonic::Code;
        let code = match err.inner() {
            AppError::BadRequest(_)
            | AppError::Validation(_)
            | AppError::UnsupportedMediaType(_) => Code::InvalidArgument,
            AppError::Unauthorized(_) => Code::Unauthenticated,
            AppError::Forbidden(_) => Code::PermissionDenied,
            AppError::NotFound(_) => Code::NotFound,
            AppError::MethodNotAllowed(_) => Code::Unimplemented,
            AppError::Conflict(_) => Code::AlreadyExists,
            AppError::PreconditionFailed(_) => Code::FailedPrecondition,
            AppError::PayloadTooLarge(_)
            | AppError::HeadersTooLarge(_)
            | AppError::TooManyRequests { .. } => Code::ResourceExhausted,
            AppError::Unavailable(_) | AppError::BadGateway(_) => Code::Unavailable,
            AppError::GatewayTimeout(_) => Code::DeadlineExceeded,
            AppError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "internal error");
                Code::Internal
            }
            AppError::Coded { .. } => Code::Internal,
        };
        let problem = err.problem();
        let mut status = tonic::Status::new(code, problem.detail.clone());
        if let Ok(json) = serde_json::to_vec(&problem) {
            status.metadata_mut().insert_bin(
                PROBLEM_METADATA,
                tonic::metadata::MetadataValue::from_bytes(&json),
            );
        }
        status
    }
}

/// A peer's gRPC error as this service's error: the peer's problem when it sent one (same
/// status, code and field errors), otherwise by gRPC code. A peer's internal failure is a 502.
impl From<tonic::Status> for AppError {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        if let Some(problem) = status
            .metadata()
            .get_bin(PROBLEM_METADATA)
            .and_then(|v| v.to_bytes().ok())
            .and_then(|bytes| serde_json::from_slice::<Problem>(&bytes).ok())
        {
            return Self::from_problem(problem);
        }
        let message = status.message().to_owned();
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => Self::BadRequest(message),
            Code::Unauthenticated => Self::Unauthorized(message),
            Code::PermissionDenied => Self::Forbidden(message),
            Code::NotFound => Self::NotFound(message),
            Code::AlreadyExists | Code::Aborted => Self::Conflict(message),
            Code::FailedPrecondition => Self::PreconditionFailed(message),
            Code::ResourceExhausted => Self::TooManyRequests {
                detail: message,
                retry_after_secs: 1,
            },
            Code::Unavailable => Self::Unavailable("a peer service is unavailable".into()),
            Code::DeadlineExceeded | Code::Cancelled => {
                Self::GatewayTimeout("a peer service did not answer in time".into())
            }
            other => {
                tracing::warn!(code = ?other, message = %message, "peer service failed");
                Self::BadGateway("a peer service failed".into())
            }
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match err {
            Error::NotFound => AppError::NotFound("resource not found".into()),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                AppError::Conflict("a resource with the same unique value already exists".into())
            }
            // SQLite's one writer was busy past busy_timeout: a retry will likely succeed.
            Error::DatabaseError(_, info)
                if info.message().contains("database is locked")
                    || info.message().contains("database is busy")
                    || info.message().contains("database table is locked") =>
            {
                tracing::warn!(error = %info.message(), "store busy");
                AppError::Unavailable("the store is busy, retry shortly".into())
                    .with_code("store.busy")
            }
            // PostgreSQL's statement_timeout, or SQLite's progress handler past the deadline,
            // ended the work: no request holds the pool longer.
            Error::DatabaseError(_, info)
                if info
                    .message()
                    .contains("canceling statement due to statement timeout")
                    || info.message() == "interrupted" =>
            {
                tracing::warn!("store statement timed out");
                store_timeout()
            }
            // A row this one refers to was deleted meanwhile (or is still referred to).
            Error::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => AppError::Conflict(
                "a resource this change refers to was changed or removed meanwhile".into(),
            )
            .with_code("store.reference_changed"),
            // PostgreSQL keeps no NUL in text; what a client sent with one is refused.
            Error::DatabaseError(_, info)
                if info
                    .message()
                    .contains("invalid byte sequence for encoding")
                    && info.message().contains("0x00") =>
            {
                AppError::BadRequest("text must not contain NUL (\\u0000) characters".into())
                    .with_code("store.nul_in_text")
            }
            // Two transactions waited on each other; PostgreSQL ended one. Sent again, it passes.
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                AppError::Unavailable("the store ended a conflicting transaction; retry".into())
                    .with_code("store.retry")
            }
            Error::DatabaseError(_, info) if info.message().contains("deadlock detected") => {
                AppError::Unavailable("the store ended a conflicting transaction; retry".into())
                    .with_code("store.retry")
            }
            other => AppError::Internal(anyhow::Error::new(other).context("database")),
        }
    }
}

impl From<r2d2::Error> for AppError {
    fn from(err: r2d2::Error) -> Self {
        tracing::warn!(error = %err, "database pool exhausted or unreachable");
        AppError::Unavailable("the store is unavailable, retry shortly".into())
    }
}

/// The answer when store work ran past its bound.
pub(crate) fn store_timeout() -> AppError {
    AppError::Unavailable("the request took the store too long; narrow it or retry".into())
        .with_code("store.timeout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_causes_never_reach_the_client() {
        let err = AppError::Internal(anyhow::anyhow!("password=hunter2 at db"));
        let problem = err.problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("hunter2"));
        let status: tonic::Status = AppError::Internal(anyhow::anyhow!("secret")).into();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("secret"));
    }

    #[test]
    fn validation_lists_fields() {
        let err = AppError::Validation(vec![FieldError::new("email", "must be an email")]);
        let body = serde_json::to_value(err.problem()).unwrap();
        assert_eq!(body["status"], 422);
        assert_eq!(body["errors"][0]["field"], "email");
        assert_eq!(
            body["type"],
            "https://agora.dev/problems/unprocessable-entity"
        );
    }

    #[test]
    fn problems_cross_grpc_hops_unchanged() {
        let sent = AppError::invalid("team_id", "no such team").with_code("tickets.unknown_team");
        let status: tonic::Status = sent.into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let back = AppError::from(status);
        assert_eq!(back.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let problem = back.problem();
        assert_eq!(problem.code, "tickets.unknown_team");
        assert_eq!(problem.errors.unwrap()[0].field, "team_id");
        let stale: tonic::Status = AppError::stale("tickets.stale_version", "moved").into();
        assert_eq!(
            AppError::from(stale).status(),
            StatusCode::PRECONDITION_FAILED
        );
    }

    #[test]
    fn a_plain_peer_status_maps_by_code() {
        let cases = [
            (tonic::Code::NotFound, 404),
            (tonic::Code::PermissionDenied, 403),
            (tonic::Code::InvalidArgument, 400),
            (tonic::Code::Unauthenticated, 401),
            (tonic::Code::Unavailable, 503),
            (tonic::Code::DeadlineExceeded, 504),
            (tonic::Code::Internal, 502),
        ];
        for (code, http) in cases {
            let err = AppError::from(tonic::Status::new(code, "x"));
            assert_eq!(err.status().as_u16(), http, "{code:?}");
        }
        // A peer's internal detail never reaches the client.
        let err = AppError::from(tonic::Status::internal("panic at store.rs:12"));
        assert!(!err.problem().detail.contains("store.rs"));
    }

    #[test]
    fn a_busy_store_is_a_retryable_503() {
        use diesel::result::{DatabaseErrorKind, Error};
        let err = AppError::from(Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_owned()),
        ));
        let response = err.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get("retry-after").unwrap(), "1");
        assert_eq!(err.problem().code, "store.busy");
        // Other database failures stay internal (logged, 500).
        let other = AppError::from(Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("no such column: x".to_owned()),
        ));
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn problems_carry_a_code() {
        assert_eq!(AppError::not_found("user").problem().code, "not_found");
        let coded = AppError::Conflict("taken".into()).with_code("auth.email_taken");
        assert_eq!(coded.status(), StatusCode::CONFLICT);
        assert_eq!(coded.problem().code, "auth.email_taken");
        assert_eq!(coded.problem().detail, "taken");
    }

    #[test]
    fn maps_to_grpc_codes() {
        let status: tonic::Status = AppError::not_found("user").into();
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "user not found");
    }
}
