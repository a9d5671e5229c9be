//! What the binary needs to start a service: the shared context handed to each service's
//! `start`, and the handle a started service returns.

use std::{net::SocketAddr, sync::Arc};

use actix_web::{App, HttpServer, middleware::from_fn, web};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    bus::{Outbox, SharedBus, run_relay},
    config::{CommonConfig, ConfigSource, ServiceEndpoints},
    db::Db,
    http::{Authenticator, ServiceName, configure_extractors, health, not_found, observe::observe},
    tokens::Denylist,
};

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
    /// The service's routes; health, metrics middleware and problem+json 404s are added here.
    pub http_routes: fn(&mut web::ServiceConfig),
    /// The service's gRPC services (with `grpc.health.v1`).
    pub grpc_routes: tonic::service::Routes,
    pub outbox: Outbox,
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
        grpc_routes,
        outbox,
    } = parts;
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
            .wrap(from_fn(observe))
            .configure(configure_extractors)
            .configure(health::configure)
            .configure(http_routes)
            .default_service(web::to(not_found))
    })
    .workers(http_workers)
    .shutdown_timeout(10)
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
    let (bus, relay_shutdown) = (ctx.bus.clone(), shutdown.clone());
    tasks.spawn(async move {
        run_relay(db, bus, outbox, relay_shutdown).await;
        Ok(())
    });
    tracing::info!(service = name, %http_addr, %grpc_addr, "service started");
    Ok(RunningService {
        name,
        http_addr,
        grpc_addr: Some(grpc_addr),
        tasks,
        shutdown,
    })
}
