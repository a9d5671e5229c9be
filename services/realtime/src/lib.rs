//! The realtime service: channels with history and recovery, presence and typing, for clients
//! over a native WebSocket protocol (see `native`) and Socket.IO v4 (see `socketio`), both
//! through one hub (see `hub`, `conn`). Services publish over gRPC (see `grpc`) and the bus
//! (see `events`); admins over HTTP (see `http`). Channel state lives in this process or,
//! for replicas, in Redis (see `redis_engine`).

use std::{
    sync::{Arc, atomic::AtomicUsize},
    time::Duration,
};

use diesel_migrations::embed_migrations;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use agora_shared::{
    config::Mode,
    db::{Db, Migrations},
    grpc::ServiceCredential,
    http::Authenticator,
    peer_auth,
    service::{Discovered, Parts, RunningService, ServiceContext, ServiceSpec, ServiceTokens},
};

pub mod channel;
pub mod config;
pub mod conn;
pub mod events;
pub mod grpc;
pub mod http;
pub mod hub;
pub mod native;
pub mod openapi;
pub mod redis_engine;
pub mod schema;
pub mod socketio;
pub mod store;

pub use config::RealtimeConfig;

/// Service name: config section, store file, metrics label.
pub const NAME: &str = "realtime";

/// The store's migrations for both backends.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: embed_migrations!("migrations/postgres"),
    sqlite: embed_migrations!("migrations/sqlite"),
};

/// HTTP and gRPC ports when none are configured.
pub const PORTS: (u16, u16) = (8086, 9086);

/// The service contract the binary starts it by.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: NAME,
        migrations: Some(MIGRATIONS),
        default_ports: (PORTS.0, Some(PORTS.1)),
        publishes: false,
        openapi: Some(openapi::document),
        config_keys: || {
            let mut keys = agora_shared::service::config_keys::<RealtimeConfig>();
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
                    .map(|tokens| ServiceCredential::Issued(Arc::new(move || (tokens.0)(NAME))));
                Ok(start(&ctx, shutdown, credential).await?.service)
            })
        },
    }
}

/// Everything connections and handlers need.
pub struct RealtimeState {
    pub db: Db,
    pub config: RealtimeConfig,
    pub hub: hub::Hub,
    pub authenticator: Authenticator,
    /// The tickets service's gRPC API (may a caller see `ticket:<id>`).
    pub tickets: Channel,
    /// How realtime asks tickets itself, for connections that came with a connection token.
    pub service_credential: Option<ServiceCredential>,
    /// Open client connections of this process, both protocols.
    pub connections: AtomicUsize,
    /// Open connections per (tenant, user).
    pub per_user: std::sync::Mutex<std::collections::HashMap<(String, String), usize>>,
    /// Connections and Socket.IO sessions not yet authenticated.
    pub pending: AtomicUsize,
    /// Socket.IO sessions of this process.
    pub sessions: socketio::Sessions,
    /// Fires when the service stops: connections are closed (1001) so clients reconnect
    /// elsewhere.
    pub shutdown: CancellationToken,
}

/// A started realtime service and its state (tests reach into the state).
pub struct Started {
    pub service: RunningService,
    pub state: Arc<RealtimeState>,
}

/// Starts HTTP (with the WebSocket and Socket.IO endpoints), gRPC, the tickets consumer and
/// the engine's upkeep; all stop on `shutdown`. `credential` is how realtime asks tickets
/// about a ticket when none is configured (embedded mode).
pub async fn start(
    ctx: &ServiceContext,
    shutdown: CancellationToken,
    credential: Option<ServiceCredential>,
) -> anyhow::Result<Started> {
    let mut config: RealtimeConfig = ctx.config.section(NAME)?;
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
    let peer = Arc::new(peer_auth::connect(&ctx.auth_peer(), ctx.denylist.clone())?);
    let authenticator = peer.authenticator.clone();
    let tickets = agora_shared::grpc::channel(
        &config.tickets_grpc,
        Duration::from_secs(2),
        Duration::from_secs(10),
    )?;
    let service_credential = config
        .tickets_credential
        .clone()
        .map(ServiceCredential::Static)
        .or(credential);
    if service_credential.is_none() {
        tracing::warn!(
            "realtime.tickets_credential is not set: connections made with a connection token cannot subscribe to ticket channels"
        );
    }
    let local = Arc::new(hub::Local::default());
    let retention = hub::Retention {
        size: config.history_size,
        ttl: Duration::from_secs(config.history_ttl_secs),
        meta_ttl: Duration::from_secs(config.history_meta_ttl_secs),
    };
    let mut upkeep: Vec<futures::future::BoxFuture<'static, anyhow::Result<()>>> = Vec::new();
    let engine: Arc<dyn hub::Engine> = match config.engine {
        config::Engine::Memory => {
            if ctx.common.mode == Mode::Distributed {
                tracing::warn!(
                    "realtime.engine is memory: run one replica, or set it to redis so replicas share channels"
                );
            }
            let engine = Arc::new(hub::MemoryEngine::new(local.clone(), retention));
            let sweeper = engine.clone();
            let stop = shutdown.clone();
            upkeep.push(Box::pin(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(10)) => sweeper.sweep(),
                        _ = stop.cancelled() => return Ok(()),
                    }
                }
            }));
            engine
        }
        config::Engine::Redis => {
            let redis = ctx.redis.clone().ok_or_else(|| {
                anyhow::anyhow!("realtime.engine = redis needs redis.url to be set")
            })?;
            let engine = Arc::new(redis_engine::RedisEngine::new(
                redis,
                local.clone(),
                retention,
            ));
            upkeep.push(Box::pin(engine.clone().listen(shutdown.clone())));
            engine
        }
    };
    let state = Arc::new(RealtimeState {
        db: db.clone(),
        config: config.clone(),
        hub: hub::Hub {
            local,
            engine: engine.clone(),
        },
        authenticator: authenticator.clone(),
        tickets,
        service_credential,
        connections: AtomicUsize::new(0),
        per_user: Default::default(),
        pending: AtomicUsize::new(0),
        sessions: socketio::Sessions::default(),
        shutdown: shutdown.clone(),
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
    for task in upkeep {
        service.tasks.spawn(task);
    }
    service
        .tasks
        .spawn(ctx.invalidations().watch(peer, shutdown.clone()));
    for (source, map) in events::SOURCES {
        service.tasks.spawn(events::run(
            ctx.bus.clone(),
            state.hub.clone(),
            source,
            map,
            shutdown.clone(),
        ));
    }
    service.tasks.spawn(forget_tokens(db, shutdown));
    Ok(Started { service, state })
}

/// Drops expired connection tokens every minute.
async fn forget_tokens(db: Db, shutdown: CancellationToken) -> anyhow::Result<()> {
    loop {
        let now = agora_shared::db::now();
        if let Err(err) = db.write(move |conn| store::forget_expired(conn, now)).await {
            tracing::warn!(error = %err, "forgetting expired connection tokens failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}
