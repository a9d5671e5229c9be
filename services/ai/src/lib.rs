//! The ai service: knowledge bases (collections of documents, chunked and embedded, searched
//! semantically, by keyword or both; see `knowledge`), grounded answers quoting them,
//! summaries, fact-checks and emotion (see `http`), and an OpenAI-compatible API (see
//! `openai`), all answered by the built-in local model (see `local`), which needs no key and
//! no network and says what it is in every response.

use std::{sync::Arc, time::Duration};

use diesel_migrations::embed_migrations;
use tokio_util::sync::CancellationToken;

use agora_shared::{
    db::{Db, Migrations},
    peer_auth,
    service::{Discovered, Parts, RunningService, ServiceContext, ServiceSpec},
};

pub mod assistant;
pub mod budget;
pub mod config;
pub mod embedders;
pub mod grpc;
pub mod http;
pub mod insights;
pub mod keys;
pub mod knowledge;
pub mod local;
pub mod models;
pub mod openai;
pub mod openapi;
pub mod providers;
pub mod recommend;
pub mod router;
pub mod schema;
pub mod usage;

pub use config::AiConfig;

/// Service name: `--service` value, store file, metrics label.
pub const NAME: &str = "ai";

/// Its configuration section (`AGORA_AI__*`).
pub const SECTION: &str = "ai";

/// The store's migrations for both backends.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: embed_migrations!("migrations/postgres"),
    sqlite: embed_migrations!("migrations/sqlite"),
};

/// HTTP and gRPC ports when none are configured.
pub const PORTS: (u16, u16) = (8087, 9087);

/// Document workers per replica.
pub const WORKERS: usize = 2;

/// Local-model requests computed at once per replica (others wait their turn).
pub const LOCAL_WORK: usize = 4;

/// The service contract the binary starts it by.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: NAME,
        migrations: Some(MIGRATIONS),
        default_ports: (PORTS.0, Some(PORTS.1)),
        publishes: true,
        openapi: Some(openapi::document),
        config_keys: agora_shared::service::config_keys::<AiConfig>,
        open_config_maps: &[],
        start: |ctx, shutdown| Box::pin(async move { Ok(start(&ctx, shutdown).await?.service) }),
    }
}

/// Everything handlers and workers need.
pub struct AiState {
    pub db: Db,
    pub config: AiConfig,
    /// The embedding models this replica has.
    pub embedders: embedders::Embedders,
    /// Chunk vectors of recently searched collections.
    pub vectors: knowledge::vectors::VectorCache,
    /// Wakes the document workers when documents are queued.
    pub wake: tokio::sync::Notify,
    /// Every call to a model provider.
    pub router: router::Router,
    /// Seals and opens tenants' provider keys (`ai.key_encryption_key`; none: not configured).
    pub sealer: Option<agora_shared::sealed::Sealer>,
    /// Documents read at once (extraction threads).
    pub extraction: Arc<tokio::sync::Semaphore>,
    /// Blocking work of the local model (summaries, fact-checks, answers) at once.
    pub local_work: Arc<tokio::sync::Semaphore>,
    /// The tickets service (tickets and teams' loads, for recommendations).
    pub tickets: tonic::transport::Channel,
    /// The analytics service (insights).
    pub analytics: tonic::transport::Channel,
    /// The auth service (teams), and the secret it wants of peers.
    pub auth: tonic::transport::Channel,
    pub auth_peer_secret: Option<agora_shared::config::Secret>,
}

/// A started ai service and its state (tests reach into the state).
pub struct Started {
    pub service: RunningService,
    pub state: Arc<AiState>,
}

/// Starts HTTP, gRPC (health) and the document workers; all stop on `shutdown`.
pub async fn start(ctx: &ServiceContext, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let mut config: AiConfig = ctx.config.section(SECTION)?;
    if let Some(tickets) = Discovered::find(&ctx.discovered, "tickets") {
        config.tickets_grpc = tickets.grpc.to_string();
    }
    if let Some(analytics) = Discovered::find(&ctx.discovered, "analytics") {
        config.analytics_grpc = analytics.grpc.to_string();
    }
    let url = config
        .endpoints
        .resolve_database_url(SECTION, &ctx.common, NAME)?;
    if ctx.migrate_on_start {
        let url = url.clone();
        tokio::task::spawn_blocking(move || Db::migrate(&url, MIGRATIONS)).await??;
    }
    let db = Db::connect(&url, config.endpoints.database_pool_size)?;
    let loading = config.clone();
    let embedders =
        tokio::task::spawn_blocking(move || embedders::Embedders::load(&loading)).await??;
    let peer = Arc::new(peer_auth::connect(&ctx.auth_peer(), ctx.denylist.clone())?);
    let authenticator = peer.authenticator.clone();
    let auth_peer = ctx.auth_peer();
    let (connect, request) = (Duration::from_secs(2), Duration::from_secs(10));
    let tickets = agora_shared::grpc::channel(&config.tickets_grpc, connect, request)?;
    let auth = agora_shared::grpc::channel(&auth_peer.grpc, connect, request)?;
    let analytics = agora_shared::grpc::channel(&config.analytics_grpc, connect, request)?;
    let state = Arc::new(AiState {
        db: db.clone(),
        embedders,
        vectors: knowledge::vectors::VectorCache::new(config.vector_cache_mib * 1024 * 1024),
        config: config.clone(),
        wake: tokio::sync::Notify::new(),
        router: router::Router::new(),
        sealer: config
            .key_encryption_key
            .as_ref()
            .map(|k| agora_shared::sealed::Sealer::from_base64(k.expose()))
            .transpose()
            .map_err(|e| anyhow::anyhow!("ai.key_encryption_key: {e}"))?,
        extraction: Arc::new(tokio::sync::Semaphore::new(WORKERS)),
        local_work: Arc::new(tokio::sync::Semaphore::new(LOCAL_WORK)),
        tickets,
        analytics,
        auth,
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
    for _ in 0..WORKERS {
        let (state, shutdown) = (state.clone(), shutdown.clone());
        service.tasks.spawn(async move {
            knowledge::process::run(state, shutdown).await;
            Ok(())
        });
    }
    Ok(Started { service, state })
}
