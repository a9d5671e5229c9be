//! HTTP plumbing every service shares: request ids and trace context, metrics, the
//! authenticated caller, role guards, JSON bodies with field errors, pagination, health checks
//! and problem+json for every framework-level failure.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::AppError;

pub mod allowed;
pub mod caller;
pub mod client_ip;
pub mod health;
pub mod json;
pub mod observe;
pub mod openapi;
pub mod page;

pub use caller::{ApiKeyResolver, Authenticator, Caller, Credential, Role};
pub use json::ValidJson;
pub use page::{Page, PageParams};

/// Name of the service answering, stored in app data for metrics and logs.
#[derive(Debug, Clone, Copy)]
pub struct ServiceName(pub &'static str);

/// Registers the error handlers for path and query extraction, and the JSON body limit.
pub fn configure_extractors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::PathConfig::default()
            .error_handler(|err, _| AppError::BadRequest(format!("invalid path: {err}")).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|err, _| AppError::BadRequest(format!("invalid query: {err}")).into()),
    );
}

/// The fallback for unknown routes: 404 problem+json.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&AppError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// `GET /metrics` in the Prometheus text format.
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::telemetry::render_metrics())
}

/// The versions an `If-Match` header accepts (`"7"`, `W/"7"`, a list): `None` when absent
/// or `*`.
pub fn if_match(req: &HttpRequest) -> Result<Option<Vec<i64>>, AppError> {
    let Some(value) = req.headers().get(actix_web::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AppError::BadRequest("If-Match must be ASCII".into()))?;
    if value.trim() == "*" {
        return Ok(None);
    }
    value
        .split(',')
        .map(|tag| {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag.strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| {
                    AppError::BadRequest(format!("If-Match holds `{tag}`, not an ETag of this API"))
                })
        })
        .collect::<Result<Vec<i64>, AppError>>()
        .map(Some)
}
