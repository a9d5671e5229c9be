//! The tickets service: field-force work orders with assignments, comments, an SLA clock and
//! statistics. HTTP under `/api/v1/tickets` (see `http`), gRPC `agora.tickets.v1.TicketService`
//! (see `grpc`), events on `agora.tickets.events` (see `events`).

use std::{sync::Arc, time::Duration};

use diesel_migrations::embed_migrations;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use agora_shared::{
    db::{Db, Migrations},
    peer_auth,
    service::{Parts, RunningService, ServiceContext, ServiceSpec},
};

pub mod changes;
pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod http;
pub mod listing;
pub mod model;
pub mod openapi;
pub mod schema;
pub mod sla_watch;
pub mod store;

pub use config::TicketsConfig;

/// Service name: config section, store file, metrics label.
pub const NAME: &str = "tickets";

/// The store's migrations for both backends.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: embed_migrations!("migrations/postgres"),
    sqlite: embed_migrations!("migrations/sqlite"),
};

/// HTTP and gRPC ports when none are configured.
pub const PORTS: (u16, u16) = (8082, 9082);

/// The service contract the binary starts it by.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: NAME,
        migrations: Some(MIGRATIONS),
        default_ports: (PORTS.0, Some(PORTS.1)),
        publishes: true,
        openapi: Some(openapi::document),
        config_keys: agora_shared::service::config_keys::<TicketsConfig>,
        open_config_maps: &[],
        start: |ctx, shutdown| Box::pin(async move { Ok(start(&ctx, shutdown).await?.service) }),
    }
}

/// Everything handlers need.
pub struct TicketsState {
    pub db: Db,
    pub config: TicketsConfig,
    /// The auth service's gRPC API (teams and their members).
    pub auth_channel: Channel,
    /// What this service presents to auth (`auth_peer.secret`).
    pub auth_peer_secret: Option<agora_shared::config::Secret>,
}

/// A started tickets service and its state (tests reach into the state).
pub struct Started {
    pub service: RunningService,
    pub state: Arc<TicketsState>,
}

/// Starts HTTP, gRPC, the outbox relay and the SLA breach watch; all stop on `shutdown`.
/// An auth service started in the same process (`ctx.discovered`) replaces the configured one.
pub async fn start(ctx: &ServiceContext, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let config: TicketsConfig = ctx.config.section(NAME)?;
    let auth_peer = ctx.auth_peer();
    let url = config
        .endpoints
        .resolve_database_url(NAME, &ctx.common, NAME)?;
    if ctx.migrate_on_start {
        let url = url.clone();
        tokio::task::spawn_blocking(move || Db::migrate(&url, MIGRATIONS)).await??;
    }
    let db = Db::connect(&url, config.endpoints.database_pool_size)?;
    let peer = Arc::new(peer_auth::connect(&auth_peer, ctx.denylist.clone())?);
    let authenticator = peer.authenticator.clone();
    let auth_channel = agora_shared::grpc::channel(
        &auth_peer.grpc,
        Duration::from_secs(2),
        Duration::from_secs(5),
    )?;
    let state = Arc::new(TicketsState {
        db: db.clone(),
        config: config.clone(),
        auth_channel,
        auth_peer_secret: auth_peer.secret.clone(),
    });

    let mut service = agora_shared::service::start(
        ctx,
        Parts {
            name: NAME,
            endpoints: config.endpoints.clone(),
            http_workers: config.http_workers,
            state: state.clone(),
            db,
            authenticator: authenticator.clone(),
            http_routes: http::routes,
            openapi: openapi::document,
            grpc_routes: grpc::routes(state.clone(), authenticator),
            publishes: true,
        },
        shutdown.clone(),
    )
    .await?;
    service
        .tasks
        .spawn(ctx.invalidations().watch(peer, shutdown.clone()));
    service.tasks.spawn(sla_watch::run(
        state.clone(),
        Duration::from_secs(config.sla_check_secs),
        shutdown,
    ));
    Ok(Started { service, state })
}
