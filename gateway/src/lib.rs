//! The gateway: the one front door. Routes by path prefix to the services, authenticates at the
//! edge, rate-limits, answers CORS, adds security headers, limits bodies, streams bodies and
//! WebSockets through, and aggregates health, metrics and OpenAPI.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_cors::Cors;
use actix_web::{
    App, HttpServer,
    middleware::{Condition, DefaultHeaders, from_fn},
    web,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use agora_shared::{
    http::{Authenticator, ServiceName, configure_extractors, observe::observe},
    service::{RunningService, ServiceContext, ServiceSpec},
};

mod canonical;
pub use agora_shared::http::client_ip;
pub mod config;
mod edge;
pub mod edge_auth;
mod metrics;
pub mod ops;
pub mod proxy;
pub mod ratelimit;
pub mod routing;
pub mod upstream;
mod ws;

pub use config::GatewayConfig;

pub const NAME: &str = "gateway";

/// The HTTP port when none is configured.
pub const PORT: u16 = 8080;

/// The service contract the binary starts it by (last: it routes to the services started
/// before it in the same process).
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: NAME,
        migrations: None,
        default_ports: (PORT, None),
        publishes: false,
        openapi: None,
        config_keys: agora_shared::service::config_keys::<GatewayConfig>,
        open_config_maps: &["services", "rate_limits.routes", "rate_limits.plans"],
        start: |ctx, shutdown| Box::pin(async move { start(&ctx, shutdown).await }),
    }
}

/// Client addresses remembered past their failed-auth budget (least recently seen forgotten).
const AUTH_BLOCKED_ADDRESSES: std::num::NonZeroUsize = std::num::NonZeroUsize::new(10_000).unwrap();

/// Shared by every worker.
pub struct Gateway {
    pub config: GatewayConfig,
    pub router: routing::Router,
    pub limits: Arc<dyn ratelimit::RateLimitStore>,
    pub auth: Authenticator,
    pub client_ip: client_ip::ClientIp,
    /// Client IPs past their failed-authentication budget, until when (bounded).
    pub auth_blocked: Mutex<lru::LruCache<std::net::IpAddr, Instant>>,
    /// The last round of upstream health checks: when, healthy, per-service detail.
    health_cache: tokio::sync::Mutex<Option<(Instant, bool, serde_json::Value)>>,
    openapi_cache: Mutex<Option<(Instant, serde_json::Value)>>,
    /// Relayed WebSockets open now, per caller.
    pub websockets: Arc<ws::Connections>,
}

impl Gateway {
    /// Whether `path` needs no credential.
    pub fn is_public(&self, path: &str) -> bool {
        self.config.public_paths.iter().any(|p| {
            if p.ends_with('/') {
                path.starts_with(p.as_str())
            } else {
                path == p
            }
        })
    }
}

pub use agora_shared::service::Discovered;

/// Starts the gateway; it stops on `shutdown`.
pub async fn start(
    ctx: &ServiceContext,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningService> {
    let mut config: GatewayConfig = ctx.config.section(NAME)?;
    for d in &ctx.discovered {
        let key = agora_shared::service::config_section(&d.name);
        if let Some(svc) = config.services.get_mut(&key) {
            svc.url = format!("http://{}", d.http);
        }
    }
    let peer = Arc::new(edge_auth::authenticator(
        &ctx.auth_peer(),
        ctx.denylist.clone(),
    )?);
    let memory = Arc::new(ratelimit::MemoryStore::default());
    let limits: Arc<dyn ratelimit::RateLimitStore> = match &ctx.redis {
        Some(redis) => Arc::new(ratelimit::RedisStore::new(redis.clone())),
        None => memory.clone(),
    };
    let gateway = Arc::new(Gateway {
        router: routing::Router::new(&config)?,
        limits,
        auth: peer.authenticator.clone(),
        client_ip: client_ip::ClientIp::new(&config.trusted_proxies).map_err(anyhow::Error::msg)?,
        auth_blocked: Mutex::new(lru::LruCache::new(AUTH_BLOCKED_ADDRESSES)),
        health_cache: tokio::sync::Mutex::new(None),
        openapi_cache: Mutex::new(None),
        websockets: Default::default(),
        config,
    });

    let listener = std::net::TcpListener::bind(gateway.config.http_addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", gateway.config.http_addr))?;
    let http_addr = listener.local_addr()?;
    let workers = gateway.config.http_workers;
    let local_origins = gateway
        .config
        .cors
        .local_origins
        .unwrap_or(ctx.common.mode == agora_shared::config::Mode::Embedded);
    let data = web::Data::from(gateway.clone());
    let server = HttpServer::new(move || {
        let cfg = &data.config;
        let client = awc::Client::builder()
            .no_default_headers()
            .disable_redirects()
            .timeout(Duration::from_secs(300))
            .finish();
        let mut security = DefaultHeaders::new()
            .add(("X-Content-Type-Options", "nosniff"))
            .add(("X-Frame-Options", "DENY"))
            .add(("Referrer-Policy", "no-referrer"))
            .add((
                "Content-Security-Policy",
                "default-src 'none'; frame-ancestors 'none'",
            ));
        if cfg.hsts {
            security = security.add((
                "Strict-Transport-Security",
                "max-age=31536000; includeSubDomains",
            ));
        }
        App::new()
            .app_data(ServiceName(NAME))
            .app_data(data.clone())
            .app_data(web::Data::new(client))
            .app_data(web::Data::new(upstream::Client::new(&data.router)))
            .wrap(Condition::new(
                !cfg.cors.origins.is_empty() || local_origins,
                cors(&cfg.cors, local_origins),
            ))
            .wrap(security)
            .wrap(from_fn(observe))
            .wrap(from_fn(canonical::canonicalize))
            .configure(configure_extractors)
            .configure(ops::routes)
            .default_service(web::to(edge::handle))
    })
    .workers(workers)
    .shutdown_timeout(10)
    // Signals are the supervisor's (agora_shared::service::supervise stops the gateway first).
    .disable_signals()
    .tcp_nodelay(true)
    .listen(listener)?
    .run();

    let mut tasks = JoinSet::new();
    tasks.spawn(agora_shared::service::run_http(server, shutdown.clone()));
    tasks.spawn(ctx.invalidations().watch(peer, shutdown.clone()));
    let sweep_shutdown = shutdown.clone();
    tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => memory.sweep(),
                _ = sweep_shutdown.cancelled() => return Ok(()),
            }
        }
    });
    tracing::info!(%http_addr, "gateway started");
    Ok(RunningService {
        name: NAME,
        http_addr,
        grpc_addr: None,
        tasks,
        shutdown,
    })
}

/// CORS from configuration; preflights are answered here, never forwarded.
fn cors(c: &config::CorsConfig, local_origins: bool) -> Cors {
    let mut cors = Cors::default();
    if local_origins {
        cors = cors.allowed_origin_fn(|origin, _| is_local_origin(origin.as_bytes()));
    }
    for origin in &c.origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors = cors
        .allowed_methods(c.methods.iter().map(String::as_str))
        .allowed_headers(c.headers.iter().map(String::as_str))
        .expose_headers([
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "retry-after",
            "x-request-id",
        ])
        .max_age(c.max_age_secs);
    if c.credentials {
        cors.supports_credentials()
    } else {
        cors
    }
}

/// `http://localhost[:port]` or `http://127.0.0.1[:port]`, exactly (not `localhost.evil.test`).
fn is_local_origin(origin: &[u8]) -> bool {
    let Some(rest) = origin.strip_prefix(b"http://") else {
        return false;
    };
    let Some(port) = rest
        .strip_prefix(b"localhost")
        .or_else(|| rest.strip_prefix(b"127.0.0.1"))
    else {
        return false;
    };
    match port.strip_prefix(b":") {
        None => port.is_empty(),
        Some(digits) => {
            !digits.is_empty() && digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn local_origins_are_exactly_loopback_dev_servers() {
        for ok in [
            "http://localhost:5173",
            "http://127.0.0.1:3000",
            "http://localhost",
        ] {
            assert!(super::is_local_origin(ok.as_bytes()), "{ok}");
        }
        for no in [
            "https://localhost:5173",
            "http://localhost.evil.test:5173",
            "http://localhost:5173.evil.test",
            "http://127.0.0.1.nip.io:80",
            "http://localhost:",
            "http://evil.test",
            "null",
        ] {
            assert!(!super::is_local_origin(no.as_bytes()), "{no}");
        }
    }
}
