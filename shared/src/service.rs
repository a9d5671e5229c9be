//! The service contract: each service crate exports a `ServiceSpec` (name, migrations, default
//! ports, OpenAPI document, `start`), and the binary builds `serve`, `migrate` and the embedded
//! platform from one table of them. Here too: the context handed to every `start`, the handle a
//! started service returns, and the starter that mounts what every service serves (health,
//! metrics, OpenAPI) beside its own routes.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use futures::future::BoxFuture;

use actix_web::{App, HttpServer, middleware::from_fn, web};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    bus::{SharedBus, run_relay},
    config::{AuthPeerConfig, CommonConfig, ConfigSource, ServiceEndpoints},
    db::{Db, Migrations},
    http::{Authenticator, ServiceName, configure_extractors, health, observe::observe},
    tokens::Denylist,
};

/// What the binary knows of a service: one value per service crate, from its `spec()`.
pub struct ServiceSpec {
    /// Its name: `--service` value, config section, store file, metrics label.
    pub name: &'static str,
    /// Its store's migrations (`None`: it keeps no store).
    pub migrations: Option<Migrations>,
    /// Its HTTP port and gRPC port (if it has a gRPC API) when none are configured.
    pub default_ports: (u16, Option<u16>),
    /// Whether it publishes events (its topic and dead-letter topic are created by `migrate`).
    pub publishes: bool,
    /// Its OpenAPI document (the gateway has none of its own: it merges the services').
    pub openapi: Option<fn() -> serde_json::Value>,
    /// Its configuration section's keys: the defaults as JSON ([`config_keys`]), from which
    /// a misspelt `AGORA_<NAME>__...` variable or file key is named at start.
    pub config_keys: fn() -> serde_json::Value,
    /// Maps under its section whose keys are the operator's (`services` for
    /// `gateway.services.<name>`).
    pub open_config_maps: &'static [&'static str],
    /// Starts it; everything it runs stops on the token. The same signature for every service.
    pub start:
        fn(ServiceContext, CancellationToken) -> BoxFuture<'static, anyhow::Result<RunningService>>,
}

/// The configuration section of the service called `name`: the name with `-` as `_`, so that
/// every key can be set from the environment (`inventory-sync` reads `[inventory_sync]`,
/// `AGORA_INVENTORY_SYNC__*`).
pub fn config_section(name: &str) -> String {
    name.replace('-', "_")
}

/// A configuration section's keys as JSON: `T`'s defaults serialized (a struct's fields, `null`
/// for an unset option), for [`crate::config::ConfigSource::unknown_keys`].
pub fn config_keys<T: serde::Serialize + Default>() -> serde_json::Value {
    serde_json::to_value(T::default()).unwrap_or_default()
}

/// How a service is started: its context and its own shutdown token.
pub type StartFn =
    fn(ServiceContext, CancellationToken) -> BoxFuture<'static, anyhow::Result<RunningService>>;

/// Values one service started in this process offers the ones started after it (auth's
/// service-token issuer, say), by type.
#[derive(Clone, Default)]
pub struct Provided(Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>);

impl Provided {
    pub fn insert<T: Send + Sync + 'static>(&self, value: T) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(TypeId::of::<T>(), Arc::new(value));
    }

    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&TypeId::of::<T>())
            .cloned()
            .and_then(|v| v.downcast::<T>().ok())
    }
}

/// Signs short-lived platform-admin tokens for the service named by the argument (offered by
/// auth when it runs in the same process; services use it to call peers as themselves).
#[derive(Clone)]
pub struct ServiceTokens(pub Arc<IssueToken>);

/// Signs a token for the service it is given.
pub type IssueToken = dyn Fn(&str) -> anyhow::Result<String> + Send + Sync;

/// Everything a service gets from the process that runs it.
#[derive(Clone)]
pub struct ServiceContext {
    pub common: CommonConfig,
    pub config: ConfigSource,
    pub bus: SharedBus,
    /// Revoked access tokens, shared by every service of this process.
    pub denylist: Arc<dyn Denylist>,
    /// Apply migrations at start (always in embedded mode; opt-in in distributed mode).
    pub migrate_on_start: bool,
    /// Redis, when configured (distributed gateways share rate limits and revocations there).
    pub redis: Option<crate::redis::Redis>,
    /// The services started before this one in this process; their addresses replace the
    /// configured ones.
    pub discovered: Vec<Discovered>,
    /// What earlier services of this process offer.
    pub provided: Provided,
    /// How to reach and trust the auth service (`[auth_peer]`), validated once.
    pub auth_peer: AuthPeerConfig,
    /// The channel cache invalidations take among this process's services (without Redis).
    pub local_invalidations: crate::invalidation::LocalInvalidations,
}

impl ServiceContext {
    /// The auth peer settings, with the addresses of an auth service started in this process.
    pub fn auth_peer(&self) -> AuthPeerConfig {
        let mut peer = self.auth_peer.clone();
        if let Some(auth) = Discovered::find(&self.discovered, "auth") {
            peer.url = format!("http://{}", auth.http);
            peer.grpc = auth.grpc.to_string();
        }
        peer
    }

    /// Where to publish cache invalidations and hear them: Redis when configured, else the
    /// services of this process.
    pub fn invalidations(&self) -> crate::invalidation::Invalidations {
        crate::invalidation::Invalidations {
            redis: self.redis.clone(),
            local: self.local_invalidations.clone(),
        }
    }

    /// This context, telling the service it starts about `discovered` (tests that start
    /// services one by one).
    pub fn with_discovered(&self, discovered: &[Discovered]) -> Self {
        Self {
            discovered: discovered.to_vec(),
            ..self.clone()
        }
    }
}

/// A service started in this process, whose addresses replace the configured ones of its
/// peers (embedded mode binds what it can and tells the others).
#[derive(Debug, Clone)]
pub struct Discovered {
    pub name: String,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
}

impl Discovered {
    /// The started service called `name`, if any.
    pub fn find<'a>(all: &'a [Discovered], name: &str) -> Option<&'a Discovered> {
        all.iter().find(|d| d.name == name)
    }
}

/// A started service: where it listens and the tasks that make it up.
pub struct RunningService {
    pub name: &'static str,
    pub http_addr: SocketAddr,
    /// Where its gRPC API listens (services without one: `None`).
    pub grpc_addr: Option<SocketAddr>,
    /// Its HTTP server, gRPC server and background jobs; they end after `shutdown` fires.
    pub tasks: JoinSet<anyhow::Result<()>>,
    /// Cancelled when any task fails, so the rest of the process stops instead of limping on.
    pub shutdown: CancellationToken,
}

impl RunningService {
    /// Waits for every task; the first failure is returned.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut result = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            let outcome = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(err) = outcome
                && result.is_ok()
            {
                self.shutdown.cancel();
                result = Err(err.context(format!("{} stopped", self.name)));
            }
        }
        result
    }
}

/// Runs an actix server until `shutdown`, then stops it gracefully (in-flight requests finish).
pub async fn run_http(
    server: actix_web::dev::Server,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let handle = server.handle();
    let stopper = tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop(true).await;
    });
    let result = server.await;
    stopper.abort();
    result.map_err(Into::into)
}

/// What every service runs: its HTTP API, its gRPC API and its outbox relay.
pub struct Parts<S> {
    pub name: &'static str,
    pub endpoints: ServiceEndpoints,
    pub http_workers: usize,
    /// Handler state, as `web::Data<S>`.
    pub state: Arc<S>,
    pub db: Db,
    pub authenticator: Authenticator,
    /// The service's routes; health, metrics, OpenAPI and problem+json 404s are added here.
    pub http_routes: fn(&mut web::ServiceConfig),
    /// The OpenAPI document served at `/openapi.json`.
    pub openapi: fn() -> serde_json::Value,
    /// The service's gRPC services (with `grpc.health.v1`).
    pub grpc_routes: tonic::service::Routes,
    /// Whether the service publishes events: only then does it run an outbox relay.
    pub publishes: bool,
}

/// Binds and starts the parts; the returned service's `tasks` take the service's own jobs too.
/// Everything stops on `shutdown`.
pub async fn start<S: Send + Sync + 'static>(
    ctx: &ServiceContext,
    parts: Parts<S>,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningService> {
    let Parts {
        name,
        endpoints,
        http_workers,
        state,
        db,
        authenticator,
        http_routes,
        openapi,
        grpc_routes,
        publishes,
    } = parts;
    let document = crate::http::openapi::complete(openapi());
    let allowed = web::Data::new(crate::http::allowed::AllowedMethods::from_openapi(
        &document,
    ));
    let document = web::Data::new(OpenApiDocument(document));
    let http_listener = std::net::TcpListener::bind(endpoints.http_addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", endpoints.http_addr))?;
    let http_addr = http_listener.local_addr()?;
    let grpc_listener = crate::grpc::bind(endpoints.grpc_addr).await?;
    let grpc_addr = grpc_listener.local_addr()?;

    let state = web::Data::from(state);
    let authenticator = web::Data::new(authenticator);
    let pool = web::Data::new(db.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(ServiceName(name))
            .app_data(state.clone())
            .app_data(authenticator.clone())
            .app_data(pool.clone())
            .app_data(document.clone())
            .app_data(allowed.clone())
            .wrap(from_fn(observe))
            .configure(configure_extractors)
            .configure(health::configure)
            .route("/metrics", web::get().to(crate::http::metrics))
            .route("/openapi.json", web::get().to(serve_openapi))
            .configure(http_routes)
            .default_service(web::to(crate::http::allowed::unrouted))
    })
    .workers(http_workers)
    .shutdown_timeout(10)
    // The process's supervisor owns the signals and stops the services in order; actix's own
    // handlers would stop every HTTP server at once on SIGTERM and leave the rest running.
    .disable_signals()
    // HTTP/2 writes a response's frames one by one: without TCP_NODELAY, Nagle would hold
    // the last of them until the peer's delayed ACK (tens of milliseconds).
    .tcp_nodelay(true)
    // HTTP/1.1 for clients and probes, HTTP/2 with prior knowledge for the gateway, which
    // multiplexes its requests over a few connections.
    .listen_auto_h2c(http_listener)?
    .run();

    let mut tasks = JoinSet::new();
    tasks.spawn(run_http(server, shutdown.clone()));
    tasks.spawn(crate::grpc::serve(
        grpc_listener,
        grpc_routes,
        shutdown.clone(),
    ));
    if publishes {
        let (bus, relay_shutdown) = (ctx.bus.clone(), shutdown.clone());
        tasks.spawn(async move {
            run_relay(db, bus, relay_shutdown).await;
            Ok(())
        });
    }
    tracing::info!(service = name, %http_addr, %grpc_addr, "service started");
    Ok(RunningService {
        name,
        http_addr,
        grpc_addr: Some(grpc_addr),
        tasks,
        shutdown,
    })
}

/// A service's OpenAPI document, rendered once at start.
struct OpenApiDocument(serde_json::Value);

async fn serve_openapi(doc: web::Data<OpenApiDocument>) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().json(&doc.0)
}

/// How long a service has to stop before its remaining tasks are aborted.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs started services until `stop` fires or any task of any of them fails, then stops them
/// in reverse start order, each drained before the one before it is told to stop. The first
/// failure is returned, naming its service and cause; failures during the shutdown it caused
/// are logged.
pub async fn supervise(
    services: Vec<RunningService>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let (failed, mut failures) = tokio::sync::mpsc::unbounded_channel();
    let mut watched = Vec::with_capacity(services.len());
    for service in services {
        let RunningService {
            name,
            mut tasks,
            shutdown,
            ..
        } = service;
        let failed = failed.clone();
        let watcher = tokio::spawn(async move {
            while let Some(joined) = tasks.join_next().await {
                if let Err(err) = joined.map_err(anyhow::Error::from).and_then(|r| r) {
                    let _ = failed.send((name, err));
                }
            }
        });
        watched.push((name, shutdown, watcher));
    }
    drop(failed);
    let first = tokio::select! {
        _ = stop.cancelled() => None,
        failure = failures.recv() => failure,
    };
    for (name, shutdown, mut watcher) in watched.into_iter().rev() {
        shutdown.cancel();
        match tokio::time::timeout(STOP_GRACE, &mut watcher).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(service = name, error = %err, "service watcher ended abnormally")
            }
            Err(_) => {
                // Dropping the watcher's task set aborts the tasks still running.
                watcher.abort();
                tracing::warn!(
                    service = name,
                    grace_secs = STOP_GRACE.as_secs(),
                    "service did not stop in time; its tasks were aborted"
                );
            }
        }
    }
    while let Ok((name, err)) = failures.try_recv() {
        tracing::warn!(service = name, error = %format!("{err:#}"), "service failed while stopping");
    }
    match first {
        Some((name, err)) => Err(err.context(format!("service {name} failed"))),
        None => Ok(()),
    }
}
