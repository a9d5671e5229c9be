//! The inventory-sync service: a tenant's items and our count of each, counts reported by
//! sources (Amazon, manual stock takes, warehouses), the discrepancies between them scored by
//! the commerce rules, reconciliation, and claims for what the tenant is owed. HTTP under
//! `/api/v1/inventory` (see `http`), gRPC `agora.inventory.v1.InventoryService` (see `grpc`),
//! events on `agora.inventory-sync.events` (see `events`).

use std::{sync::Arc, time::Duration};

use diesel_migrations::embed_migrations;
use tokio_util::sync::CancellationToken;

use agora_shared::{
    config::Mode,
    db::{Db, Migrations},
    peer_auth,
    sealed::Sealer,
    service::{Parts, RunningService, ServiceContext, ServiceSpec},
};

pub mod amazon;
pub mod answer;
pub mod config;
pub mod domain;
pub mod events;
pub mod google;
pub mod grpc;
pub mod http;
pub mod import;
pub mod mail;
pub mod model;
pub mod openapi;
pub mod scan;
pub mod schema;
pub mod stock;
pub mod store;
pub mod stripe;
pub mod sync;

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
    /// Seals connections' credentials; `None` in distributed mode without
    /// `key_encryption_key` (connecting is then refused, naming the key).
    pub sealer: Option<Sealer>,
    pub amazon: amazon::Amazon,
    pub stripe: stripe::Stripe,
    pub google: google::Google,
    /// This process among the replicas (sync run leases name it).
    pub worker_id: String,
    /// Wakes the sync worker when a run is started.
    pub wake: tokio::sync::Notify,
}

impl InventoryState {
    /// The sealer of connections' credentials; 503 naming the key when it is not configured.
    pub fn sealer(&self) -> agora_shared::AppResult<&Sealer> {
        self.sealer.as_ref().ok_or_else(|| {
            agora_shared::AppError::Unavailable(
                "connections need inventory_sync.key_encryption_key, which is not set".into(),
            )
            .with_code("inventory.sealing_unconfigured")
        })
    }
}

/// A started inventory-sync service and its state (tests reach into the state).
pub struct Started {
    pub service: RunningService,
    pub state: Arc<InventoryState>,
}

/// Starts HTTP, gRPC, the outbox relay and the periodic scan; all stop on `shutdown`.
pub async fn start(ctx: &ServiceContext, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let config: InventoryConfig = ctx.config.section(SECTION)?;
    providers_over_tls(&config, ctx.common.mode)?;
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
    let sealer = sealer(&config, ctx)?;
    if sealer.is_none() {
        tracing::warn!(
            "inventory_sync.key_encryption_key is not set: connections to Amazon and Stripe cannot be made"
        );
    }
    let state = Arc::new(InventoryState {
        db: db.clone(),
        config: config.clone(),
        sealer,
        amazon: amazon::Amazon::new(config.amazon.clone())?,
        stripe: stripe::Stripe::new(config.stripe.clone())?,
        google: google::Google::new(config.google.clone())?,
        worker_id: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7()),
        wake: tokio::sync::Notify::new(),
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
        shutdown.clone(),
    ));
    service.tasks.spawn(mail::run(
        state.clone(),
        Duration::from_secs(config.google.scan_interval_secs),
        shutdown.clone(),
    ));
    service.tasks.spawn(sync::worker(state.clone(), shutdown));
    Ok(Started { service, state })
}

/// Outside embedded mode Amazon and Stripe are reached over TLS only: the LWA client secret,
/// the sellers' tokens and their Stripe keys never cross a network in clear (embedded mode and
/// tests may point at a local fake over http).
fn providers_over_tls(
    config: &InventoryConfig,
    mode: Mode,
) -> Result<(), agora_shared::config::ConfigError> {
    if mode == Mode::Embedded {
        return Ok(());
    }
    for (key, url) in [
        ("amazon.lwa_url", &config.amazon.lwa_url),
        ("amazon.sp_api_url", &config.amazon.sp_api_url),
        ("stripe.api_url", &config.stripe.api_url),
        ("google.auth_url", &config.google.auth_url),
        ("google.token_url", &config.google.token_url),
        ("google.revoke_url", &config.google.revoke_url),
        ("google.gmail_url", &config.google.gmail_url),
    ] {
        if !url.starts_with("https://") {
            return Err(agora_shared::config::ConfigError::new(
                format!("{SECTION}.{key}"),
                "must be an https:// URL in distributed mode",
            ));
        }
    }
    Ok(())
}

/// The configured key-encryption key; in embedded mode without one, the key in
/// `<data_dir>/inventory-sync.key`, made on first start (readable by its owner alone).
fn sealer(config: &InventoryConfig, ctx: &ServiceContext) -> anyhow::Result<Option<Sealer>> {
    if let Some(kek) = &config.key_encryption_key {
        return Ok(Some(
            Sealer::from_base64(kek.expose()).map_err(anyhow::Error::msg)?,
        ));
    }
    if ctx.common.mode != Mode::Embedded {
        return Ok(None);
    }
    use base64::Engine;
    use std::io::Write;
    let path = ctx.common.data_dir.join(format!("{NAME}.key"));
    if !path.exists() {
        std::fs::create_dir_all(&ctx.common.data_dir)?;
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => file.write_all(
                base64::engine::general_purpose::STANDARD
                    .encode(key)
                    .as_bytes(),
            )?,
            // Another process made it first.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
        }
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Sealer::from_base64(&text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_only_over_tls_outside_embedded_mode() {
        let mut config = InventoryConfig::default();
        assert!(providers_over_tls(&config, Mode::Distributed).is_ok());
        config.amazon.sp_api_url = "http://sellingpartnerapi-na.amazon.com".into();
        let err = providers_over_tls(&config, Mode::Distributed).unwrap_err();
        assert_eq!(err.key, "inventory_sync.amazon.sp_api_url");
        assert!(providers_over_tls(&config, Mode::Embedded).is_ok());
        let mut config = InventoryConfig::default();
        config.stripe.api_url = "http://api.stripe.com".into();
        let err = providers_over_tls(&config, Mode::Distributed).unwrap_err();
        assert_eq!(err.key, "inventory_sync.stripe.api_url");
    }

    #[test]
    fn embedded_mode_keeps_its_key_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ctx, _) = agora_shared::testing::service_context("");
        ctx.common.data_dir = dir.path().join("data");
        let config = InventoryConfig::default();
        let first = sealer(&config, &ctx)
            .unwrap()
            .expect("a key in embedded mode");
        let sealed = first.seal(b"Atzr|token", "connection-1");
        // The next start reads the same key, which only its owner may read.
        let again = sealer(&config, &ctx).unwrap().unwrap();
        assert_eq!(again.open(&sealed, "connection-1").unwrap(), b"Atzr|token");
        let path = dir.path().join("data/inventory-sync.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Distributed mode never makes one.
        ctx.common.mode = Mode::Distributed;
        std::fs::remove_file(&path).unwrap();
        assert!(sealer(&config, &ctx).unwrap().is_none());
        assert!(!path.exists());
    }
}
