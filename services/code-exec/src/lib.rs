//! The code-exec service: a Judge0-compatible API (see `http`) in front of a sandbox that
//! runs untrusted programs (see `sandbox`). Submissions are stored, queued and run by a worker
//! per sandbox slot (see `worker`): the source in a fresh box, compiled there, run with the
//! submission's input and limits, judged against its expected output (see `judge`), in the
//! languages whose toolchains this host has (see `languages`), with Judge0's statuses.

#![cfg(target_os = "linux")]

use std::sync::Arc;

use diesel_migrations::embed_migrations;
use tokio_util::sync::CancellationToken;

use agora_shared::{
    config::Mode,
    db::{Db, Migrations},
    peer_auth,
    service::{Parts, RunningService, ServiceContext, ServiceSpec},
};

pub mod config;
pub mod events;
pub mod exercises;
pub mod http;
pub mod judge;
pub mod languages;
pub mod openapi;
#[allow(unsafe_code)]
pub mod sandbox;
pub mod schema;
pub mod status;
pub mod store;
pub mod worker;

pub use config::CodeExecConfig;

/// Service name: `--service` value, store file, metrics label.
pub const NAME: &str = "code-exec";

/// Its configuration section (`AGORA_CODE_EXEC__*`).
pub const SECTION: &str = "code_exec";

/// The store's migrations for both backends.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: embed_migrations!("migrations/postgres"),
    sqlite: embed_migrations!("migrations/sqlite"),
};

/// HTTP and gRPC ports when none are configured.
pub const PORTS: (u16, u16) = (8085, 9085);

/// The service contract the binary starts it by.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: NAME,
        migrations: Some(MIGRATIONS),
        default_ports: (PORTS.0, Some(PORTS.1)),
        publishes: true,
        openapi: Some(openapi::document),
        config_keys: agora_shared::service::config_keys::<CodeExecConfig>,
        open_config_maps: &[],
        start: |ctx, shutdown| Box::pin(async move { Ok(start(&ctx, shutdown).await?.service) }),
    }
}

/// Everything handlers and workers need.
pub struct CodeExecState {
    pub db: Db,
    pub config: CodeExecConfig,
    /// The sandbox, or why this host cannot have one (embedded mode then starts without it:
    /// submissions get 503 and `/system_info` says why).
    pub sandbox: Result<sandbox::Sandbox, String>,
    /// The languages whose toolchains this host has.
    pub languages: Vec<languages::Language>,
    /// Wakes the workers when submissions are queued.
    pub wake: tokio::sync::Notify,
    /// Delivers callbacks (public addresses only, unless configured otherwise).
    pub callbacks: reqwest::Client,
    /// The host's kernel release, read at start for `/system_info`.
    pub kernel: Option<String>,
}

/// A started code-exec service and its state (tests reach into the state).
pub struct Started {
    pub service: RunningService,
    pub state: Arc<CodeExecState>,
}

/// Starts HTTP, gRPC (health) and the workers; all stop on `shutdown`. In distributed mode a
/// host that cannot sandbox programs stops start-up, naming what it lacks; in embedded mode the
/// platform starts without running programs, and says so.
pub async fn start(ctx: &ServiceContext, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let config: CodeExecConfig = ctx.config.section(SECTION)?;
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
    let mut sandbox_config = sandbox::Config::new(
        config
            .work_dir
            .clone()
            .unwrap_or_else(|| ctx.common.data_dir.join(NAME)),
    );
    if let Some(slots) = config.slots {
        sandbox_config.slots = slots;
    }
    sandbox_config.first_uid = config.first_uid;
    sandbox_config.allow_weaker_isolation = config.allow_weaker_isolation;
    let (sandbox, languages, kernel) = tokio::task::spawn_blocking(move || {
        (
            sandbox::Sandbox::new(sandbox_config).map_err(|e| format!("{e:#}")),
            languages::discover(),
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_owned()),
        )
    })
    .await?;
    if let Err(reason) = &sandbox {
        if ctx.common.mode == Mode::Distributed {
            anyhow::bail!("code-exec cannot sandbox programs on this host: {reason}");
        }
        tracing::warn!(%reason, "code-exec cannot sandbox programs on this host; submissions are refused");
    }
    let state = Arc::new(CodeExecState {
        db: db.clone(),
        config: config.clone(),
        sandbox,
        languages,
        wake: tokio::sync::Notify::new(),
        callbacks: agora_shared::outbound::client(
            worker::CALLBACK_TIMEOUT,
            config.callbacks_allow_private,
        )?,
        kernel,
    });
    let (reporter, health) = agora_shared::grpc::health();
    tokio::spawn(async move {
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await
    });
    let mut service = agora_shared::service::start(
        ctx,
        Parts {
            name: NAME,
            endpoints: config.endpoints.clone(),
            http_workers: config.http_workers,
            state: state.clone(),
            db,
            authenticator,
            http_routes: http::routes,
            openapi: openapi::document,
            grpc_routes: tonic::service::Routes::new(health),
            publishes: true,
        },
        shutdown.clone(),
    )
    .await?;
    service
        .tasks
        .spawn(ctx.invalidations().watch(peer, shutdown.clone()));
    service
        .tasks
        .spawn(worker::forget(state.clone(), shutdown.clone()));
    service.tasks.spawn(worker::run(state.clone(), shutdown));
    Ok(Started { service, state })
}
