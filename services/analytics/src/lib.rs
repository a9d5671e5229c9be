//! The analytics service: consumes other services' events (see `ingest`) into facts and
//! rollups, and answers `/api/v1/analytics/*` and `/api/v1/dashboard/*` (see `http`) and gRPC
//! `agora.analytics.v1.AnalyticsService` (see `grpc`).

use std::{sync::Arc, time::Duration};

use diesel_migrations::embed_migrations;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use agora_shared::{
    bus::{run_batch_consumer, topic_for},
    db::{Db, Migrations},
    peer_auth,
    service::{Discovered, Parts, RunningService, ServiceContext, ServiceSpec, ServiceTokens},
};

pub mod backfill;
pub mod config;
pub mod domain;
pub mod forecast;
pub mod grpc;
pub mod http;
pub mod ingest;
pub mod openapi;
pub mod planning;
pub mod query;
pub mod schema;
pub mod scrape;
pub mod store;

pub use backfill::Credential;
pub use config::AnalyticsConfig;

/// Service name: config section, store file, metrics label.
pub const NAME: &str = "analytics";

/// The store's migrations for both backends.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: embed_migrations!("migrations/postgres"),
    sqlite: embed_migrations!("migrations/sqlite"),
};

/// HTTP and gRPC ports when none are configured.
pub const PORTS: (u16, u16) = (8083, 9083);

/// The service contract the binary starts it by. In one process with auth, backfills read
/// tickets with tokens auth signs for `service:analytics`; distributed mode configures
/// `analytics.tickets_credential`.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: NAME,
        migrations: Some(MIGRATIONS),
        default_ports: (PORTS.0, Some(PORTS.1)),
        publishes: false,
        openapi: Some(openapi::document),
        config_keys: || {
            let mut keys = agora_shared::service::config_keys::<AnalyticsConfig>();
            // A secret, never serialized.
            keys["tickets_credential"] = serde_json::Value::Null;
            keys
        },
        open_config_maps: &[],
        start: |ctx, shutdown| {
            Box::pin(async move {
                let credential = ctx
                    .provided
                    .get::<ServiceTokens>()
                    .map(|tokens| Credential::Issued(Arc::new(move || (tokens.0)(NAME))));
                Ok(start(&ctx, shutdown, credential).await?.service)
            })
        },
    }
}

/// Everything handlers need.
pub struct AnalyticsState {
    pub db: Db,
    pub config: AnalyticsConfig,
    /// The tickets service's gRPC API (backfill).
    pub tickets_channel: Channel,
    /// Samples of the platform's Prometheus metrics (`/dashboard/performance`).
    pub scraper: Arc<scrape::Scraper>,
}

/// A started analytics service and its state (tests reach into the state).
pub struct Started {
    pub service: RunningService,
    pub state: Arc<AnalyticsState>,
}

/// Starts HTTP, gRPC, one consumer per source topic, the first-start backfill, the hourly
/// rollup pruning and the metrics scraper; all stop on `shutdown`. Services in `ctx.discovered` replace the
/// configured auth and tickets addresses (and metrics targets) when they run in this process;
/// `credential` is how backfills read tickets when none is configured (embedded mode).
pub async fn start(
    ctx: &ServiceContext,
    shutdown: CancellationToken,
    credential: Option<Credential>,
) -> anyhow::Result<Started> {
    let mut config: AnalyticsConfig = ctx.config.section(NAME)?;
    let auth_peer = ctx.auth_peer();
    if let Some(tickets) = Discovered::find(&ctx.discovered, "tickets") {
        config.tickets_grpc = tickets.grpc.to_string();
    }
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
    let tickets_channel = agora_shared::grpc::channel(
        &config.tickets_grpc,
        Duration::from_secs(2),
        Duration::from_secs(30),
    )?;
    let credential = config
        .tickets_credential
        .clone()
        .map(Credential::Static)
        .or(credential);
    let scraper = Arc::new(scrape::Scraper::new(config.metrics_targets.clone()));
    let own_metrics = config.metrics_targets.is_empty();
    let state = Arc::new(AnalyticsState {
        db: db.clone(),
        config: config.clone(),
        tickets_channel,
        scraper: scraper.clone(),
    });

    let mut service = agora_shared::service::start(
        ctx,
        Parts {
            name: NAME,
            endpoints: config.endpoints.clone(),
            http_workers: config.http_workers,
            state: state.clone(),
            db: db.clone(),
            authenticator: authenticator.clone(),
            http_routes: http::routes,
            openapi: openapi::document,
            grpc_routes: grpc::routes(state.clone(), authenticator),
            publishes: false,
        },
        shutdown.clone(),
    )
    .await?;
    if own_metrics {
        scraper.add_target(format!("http://{}/metrics", service.http_addr));
    }
    service
        .tasks
        .spawn(ctx.invalidations().watch(peer, shutdown.clone()));
    for source in ingest::SOURCES {
        service.tasks.spawn(run_batch_consumer(
            ctx.bus.clone(),
            db.clone(),
            topic_for(source),
            ingest::GROUP.to_owned(),
            ingest::handler(),
            ingest::batch_handler(),
            shutdown.clone(),
        ));
    }
    if config.backfill_on_start {
        match credential {
            Some(credential) => {
                service.tasks.spawn(backfill::on_first_start(
                    state.clone(),
                    credential,
                    shutdown.clone(),
                ));
            }
            None => tracing::warn!(
                "no analytics.tickets_credential: tickets created before analytics ran are not backfilled"
            ),
        }
    }
    service.tasks.spawn(prune_hours(db, shutdown.clone()));
    service
        .tasks
        .spawn(scraper.run(Duration::from_secs(config.metrics_scrape_secs), shutdown));
    Ok(Started { service, state })
}

/// Drops hourly rollups older than the 48-hour window, every ten minutes.
async fn prune_hours(db: Db, shutdown: CancellationToken) -> anyhow::Result<()> {
    loop {
        let at = agora_shared::db::now();
        if let Err(err) = db
            .write(move |conn| store::rollups::prune_hours(conn, at))
            .await
        {
            tracing::warn!(error = %err, "pruning hourly rollups failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}
