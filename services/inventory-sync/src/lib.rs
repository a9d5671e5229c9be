//! The inventory-sync service: a tenant's items and our count of each, counts reported by
//! sources (Amazon, manual stock takes, warehouses), the discrepancies between them scored by
//! the commerce rules, reconciliation, and claims for what the tenant is owed. HTTP under
//! `/api/v1/inventory` (see `http`), gRPC `agora.inventory.v1.InventoryService` (see `grpc`),
//! events on `agora.inventory-sync.events` (see `events`).

use std::{sync::Arc, time::Duration};

use diesel_migrations::embed_migrations;
use tokio_util::sync::CancellationToken;

use agora_shared::{
    db::{Db, Migrations},
    peer_auth,
    service::{Parts, RunningService, ServiceContext, ServiceSpec},
};

pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod http;
pub mod import;
pub mod model;
pub mod openapi;
pub mod scan;
pub mod schema;
pub mod stock;
pub mod store;

pub use config::InventoryConfig;

/// Service name: `--service` value, store file, topic, metrics label.
pub const NAME: &str = "inventory-sync";

/// Its configuration section (`AGORA_INVENTORY_SYNC__*`).
pub const SECTION: &str = "inventory_sync";

/// The store's migrations for both backends.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: embed_migrations!("migrations/postgres"),
    sqlite: embed_migrations!("migrations/sqlite"),
};

/// HTTP and gRPC ports when none are configured.
pub const PORTS: (u16, u16) = (8084, 9084);

/// The service contract the binary starts it by.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: NAME,
        migrations: Some(MIGRATIONS),
        default_ports: (PORTS.0, Some(PORTS.1)),
        publishes: true,
        openapi: Some(openapi::document),
        config_keys: agora_shared::service::config_keys::<InventoryConfig>,
        open_config_maps: &[],
        start: |ctx, shutdown| Box::pin(async move { Ok(start(&ctx, shutdown).await?.service) }),
    }
}

/// Everything handlers need.
pub struct InventoryState {
    pub db: Db,
    pub config: InventoryConfig,
}

/// A started inventory-sync service and its state (tests reach into the state).
pub struct Started {
    pub service: RunningService,
    pub state: Arc<InventoryState>,
}

/// Starts HTTP, gRPC, the outbox relay and the periodic scan; all stop on `shutdown`.
pub async fn start(ctx: &ServiceContext, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let config: InventoryConfig = ctx.config.section(SECTION)?;
    let url = config
        .endpoints
        .resolve_database_url(SECTION, &ctx.common, NAME)?;
    if ctx.migrate_on_start {
        let url = url.clone();
        tokio::task::spawn_blocking(move || Db::migrate(&url, MIGRATIONS)).await??;
    }
    let db = Db::connect(&url, config.endpoints.database_pool_size)?;
    let peer = Arc::new(peer_auth::connect(&ctx.auth_peer(), ctx.denylist.clone())?);
    let authenticator = peer.authenticator.clone();
    let state = Arc::new(InventoryState {
        db: db.clone(),
        config: config.clone(),
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
    service.tasks.spawn(scan::run(
        state.clone(),
        Duration::from_secs(config.scan_interval_secs),
        shutdown,
    ));
    Ok(Started { service, state })
}
