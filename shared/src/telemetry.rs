//! Logs, trace context and Prometheus metrics. Logs are readable lines in embedded mode and
//! JSON otherwise. The W3C `traceparent` of the current request travels with its work: across
//! `Db` calls, into published events and onto outgoing gRPC calls.

use std::{cell::RefCell, sync::OnceLock};

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use rand::RngCore;

use crate::config::{CommonConfig, LogFormat, Mode};

/// Flushes exported traces when dropped (hold it until the process ends).
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("warning: trace export did not flush: {err}");
        }
    }
}

/// Installs the global tracing subscriber once (later calls only return a guard): logs in the
/// configured format and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans exported over OTLP
/// gRPC. Call inside the tokio runtime.
pub fn init(common: &CommonConfig) -> anyhow::Result<TelemetryGuard> {
    use tracing_subscriber::{
        EnvFilter, Layer, fmt, layer::SubscriberExt, util::SubscriberInitExt,
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&common.log_level));
    let json = match common.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => common.mode == Mode::Distributed,
    };
    let logs = if json {
        fmt::layer().json().with_current_span(true).boxed()
    } else {
        fmt::layer().with_target(false).compact().boxed()
    };
    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(otlp_provider(&endpoint)?),
        _ => None,
    };
    let traces = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer().with_tracer(p.tracer("agora"))
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init();
    if installed.is_ok()
        && let Some(p) = &provider
    {
        opentelemetry::global::set_tracer_provider(p.clone());
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
    }
    Ok(TelemetryGuard {
        provider: installed.is_ok().then_some(provider).flatten(),
    })
}

fn otlp_provider(endpoint: &str) -> anyhow::Result<opentelemetry_sdk::trace::SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| anyhow::anyhow!("invalid configuration: OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("agora");
    }
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Makes `span` a child of the remote span named by `traceparent` (when traces are exported).
pub fn set_remote_parent(span: &tracing::Span, traceparent: Option<&str>) {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let Some(tp) = traceparent else { return };
    let carrier = std::collections::HashMap::from([("traceparent".to_owned(), tp.to_owned())]);
    let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(cx);
}

tokio::task_local! {
    static TASK_TRACEPARENT: String;
}

thread_local! {
    static THREAD_TRACEPARENT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The trace context of the work in progress, if any.
pub fn current_traceparent() -> Option<String> {
    TASK_TRACEPARENT
        .try_with(|tp| tp.clone())
        .ok()
        .or_else(|| THREAD_TRACEPARENT.with(|tp| tp.borrow().clone()))
}

/// Runs `fut` with `traceparent` as its trace context.
pub async fn with_traceparent<F: std::future::Future>(traceparent: String, fut: F) -> F::Output {
    TASK_TRACEPARENT.scope(traceparent, fut).await
}

/// Runs blocking `f` with `traceparent` as its trace context (used on the blocking pool).
pub fn with_traceparent_sync<T>(traceparent: Option<String>, f: impl FnOnce() -> T) -> T {
    let previous = THREAD_TRACEPARENT.with(|tp| tp.replace(traceparent));
    let out = f();
    THREAD_TRACEPARENT.with(|tp| *tp.borrow_mut() = previous);
    out
}

/// Accepts a valid incoming `traceparent` (keeping its trace id, new span id) or starts a trace.
pub fn continue_or_start_trace(incoming: Option<&str>) -> String {
    let mut rng = rand::thread_rng();
    let mut span = [0u8; 8];
    rng.fill_bytes(&mut span);
    let parts: Vec<&str> = incoming.map(|s| s.split('-').collect()).unwrap_or_default();
    let valid = parts.len() == 4
        && parts[0] == "00"
        && parts[1].len() == 32
        && parts[2].len() == 16
        && parts[1]
            .chars()
            .chain(parts[2].chars())
            .all(|c| c.is_ascii_hexdigit())
        && parts[1] != "00000000000000000000000000000000";
    if valid {
        return format!("00-{}-{}-{}", parts[1], hex_encode(&span), parts[3]);
    }
    let mut trace = [0u8; 16];
    rng.fill_bytes(&mut trace);
    format!("00-{}-{}-01", hex_encode(&trace), hex_encode(&span))
}

fn hex_encode(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// The process-wide Prometheus registry and the HTTP metrics every service records.
pub struct Metrics {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_errors: IntCounterVec,
    pub http_latency: HistogramVec,
    /// Committed write transactions per store (an idle platform commits none).
    pub store_writes: IntCounterVec,
}

/// The metrics of this process (one registry shared by every service in it).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "agora_http_requests_total",
                "HTTP requests by service, route and status",
            ),
            &["service", "method", "route", "status"],
        )
        .expect("metric definition is valid");
        let http_errors = IntCounterVec::new(
            Opts::new(
                "agora_http_errors_total",
                "HTTP responses with status >= 500",
            ),
            &["service", "method", "route"],
        )
        .expect("metric definition is valid");
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "agora_http_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["service", "method", "route"],
        )
        .expect("metric definition is valid");
        let store_writes = IntCounterVec::new(
            Opts::new(
                "agora_store_write_transactions_total",
                "Committed write transactions by store",
            ),
            &["store"],
        )
        .expect("metric definition is valid");
        for c in [&http_requests, &http_errors, &store_writes] {
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
        }
        registry
            .register(Box::new(http_latency.clone()))
            .expect("registered once");
        Metrics {
            registry,
            http_requests,
            http_errors,
            http_latency,
            store_writes,
        }
    })
}

/// Renders every registered metric in the Prometheus text format.
pub fn render_metrics() -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    let _ = encoder.encode(&metrics().registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_continued_or_started() {
        let tp = continue_or_start_trace(Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
        assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!tp.contains("00f067aa0ba902b7"));
        let fresh = continue_or_start_trace(Some("garbage"));
        assert_eq!(fresh.len(), 55);
        assert!(fresh.starts_with("00-") && fresh.ends_with("-01"));
    }

    #[test]
    fn thread_trace_context_is_scoped() {
        assert_eq!(current_traceparent(), None);
        let seen = with_traceparent_sync(Some("x".into()), current_traceparent);
        assert_eq!(seen.as_deref(), Some("x"));
        assert_eq!(current_traceparent(), None);
    }
}
