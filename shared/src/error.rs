//! One error type for every service, rendered as RFC 9457 problem+json over HTTP and mapped to
//! `tonic::Status` over gRPC. Internal causes are logged once, here, and never sent to clients.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde::Serialize;

/// Result alias used across services.
pub type AppResult<T> = Result<T, AppError>;

/// A per-field validation failure, listed in a 422 problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    HeadersTooLarge(String),
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
}

impl AppError {
    /// A 422 with a single field error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem document sent to clients.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
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
            detail,
            instance: None,
            errors: match self {
                Self::Validation(errors) => Some(errors.clone()),
                _ => None,
            },
        }
    }
}

/// RFC 9457 problem details.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
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
        if let Self::Internal(cause) = self {
            tracing::error!(error = %format!("{cause:#}"), "internal error");
        }
        let mut builder = HttpResponse::build(self.status());
        if let Self::TooManyRequests {
            retry_after_secs, ..
        } = self
        {
            builder.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        builder
            .content_type("application/problem+json")
            .json(self.problem())
    }
}

impl From<AppError> for tonic::Status {
    fn from(err: AppError) -> Self {
        use tonic::Code;
        let code = match &err {
            AppError::BadRequest(_) | AppError::Validation(_) => Code::InvalidArgument,
            AppError::Unauthorized(_) => Code::Unauthenticated,
            AppError::Forbidden(_) => Code::PermissionDenied,
            AppError::NotFound(_) => Code::NotFound,
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
        };
        tonic::Status::new(code, err.problem().detail)
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
    fn maps_to_grpc_codes() {
        let status: tonic::Status = AppError::not_found("user").into();
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "user not found");
    }
}
