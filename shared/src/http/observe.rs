//! Middleware around every request: request id (taken from `X-Request-Id` or generated, and
//! echoed), trace context, a tracing span, metrics by route, and problem+json for errors the
//! framework produced itself.

use std::time::Instant;

use actix_web::{
    Error, HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
};
use tracing::Instrument;

use super::ServiceName;
use crate::telemetry;

/// The request id of the current request, in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `App::wrap(from_fn(observe))`.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let service = req.app_data::<ServiceName>().map_or("unknown", |s| s.0);
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let incoming = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let traceparent = telemetry::continue_or_start_trace(incoming.as_deref());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().to_string();
    let span =
        tracing::info_span!("http", service, %method, path = %req.path(), request_id = %request_id);
    telemetry::set_remote_parent(&span, incoming.as_deref());
    let result = telemetry::with_traceparent(traceparent, next.call(req))
        .instrument(span.clone())
        .await;
    let mut res = result?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let status = res.status();
    let elapsed = started.elapsed().as_secs_f64();
    let m = telemetry::metrics();
    m.http_requests
        .with_label_values(&[service, &method, &route, status.as_str()])
        .inc();
    m.http_latency
        .with_label_values(&[service, &method, &route])
        .observe(elapsed);
    if status.is_server_error() {
        m.http_errors
            .with_label_values(&[service, &method, &route])
            .inc();
    }
    span.in_scope(|| {
        tracing::debug!(
            status = status.as_u16(),
            elapsed_ms = elapsed * 1000.0,
            "request"
        )
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(res)
}
