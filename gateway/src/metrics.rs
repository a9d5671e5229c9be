//! Gateway metrics, registered in the process registry served at `/metrics`.

use std::sync::OnceLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

struct GatewayMetrics {
    proxied: IntCounterVec,
    latency: HistogramVec,
    upstream_errors: IntCounterVec,
    upstream_replays: IntCounterVec,
    rate_limited: IntCounterVec,
    limit_store_errors: prometheus::IntCounter,
}

fn get() -> &'static GatewayMetrics {
    static M: OnceLock<GatewayMetrics> = OnceLock::new();
    M.get_or_init(|| {
        let registry = &agora_shared::telemetry::metrics().registry;
        let proxied = IntCounterVec::new(
            Opts::new(
                "agora_gateway_requests_total",
                "Requests through the gateway by service, route prefix and status",
            ),
            &["service", "route", "status"],
        )
        .expect("metric definition is valid");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "agora_gateway_request_duration_seconds",
                "Gateway latency by service and route prefix",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["service", "route"],
        )
        .expect("metric definition is valid");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "agora_gateway_upstream_errors_total",
                "Failed upstream calls by service and kind",
            ),
            &["service", "kind"],
        )
        .expect("metric definition is valid");
        let upstream_replays = IntCounterVec::new(
            Opts::new(
                "agora_gateway_upstream_replays_total",
                "Requests sent again after their upstream refused them unprocessed (HTTP/2)",
            ),
            &["service"],
        )
        .expect("metric definition is valid");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "agora_gateway_rate_limited_total",
                "Requests refused with 429 by class",
            ),
            &["class"],
        )
        .expect("metric definition is valid");
        let limit_store_errors = prometheus::IntCounter::new(
            "agora_rate_limit_store_errors_total",
            "Rate-limit checks the shared store could not answer (the failure policy applied)",
        )
        .expect("metric definition is valid");
        let _ = registry.register(Box::new(limit_store_errors.clone()));
        for c in [&proxied, &upstream_errors, &upstream_replays, &rate_limited] {
            let _ = registry.register(Box::new(c.clone()));
        }
        let _ = registry.register(Box::new(latency.clone()));
        GatewayMetrics {
            proxied,
            latency,
            upstream_errors,
            upstream_replays,
            rate_limited,
            limit_store_errors,
        }
    })
}

pub fn proxied(service: &str, route: &str, status: actix_web::http::StatusCode, seconds: f64) {
    let m = get();
    m.proxied
        .with_label_values(&[service, route, status.as_str()])
        .inc();
    m.latency
        .with_label_values(&[service, route])
        .observe(seconds);
}

pub fn upstream_error(service: &str, kind: &str) {
    get()
        .upstream_errors
        .with_label_values(&[service, kind])
        .inc();
}

pub fn upstream_replayed(service: &str) {
    get().upstream_replays.with_label_values(&[service]).inc();
}

pub fn rate_limited(class: &str) {
    get().rate_limited.with_label_values(&[class]).inc();
}

pub fn limit_store_error() {
    get().limit_store_errors.inc();
}
