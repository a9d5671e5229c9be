//! The auth service: tenants, users, teams, API keys, sessions and the token signing keys.
//! HTTP under `/api/v1` (see `http`), gRPC `agora.auth.v1.AuthService` (see `grpc`), events on
//! `agora.auth.events` (see `events`).

use std::sync::Arc;

use async_trait::async_trait;
use diesel_migrations::embed_migrations;
use tokio_util::sync::CancellationToken;

use agora_shared::{
    AppError,
    config::{ConfigError, Mode},
    db::{Db, Migrations},
    http::{ApiKeyResolver, Authenticator, Caller, Credential},
    service::{Parts, RunningService, ServiceContext, ServiceSpec, ServiceTokens},
    tokens::{Denylist, Verifier},
};

pub mod admin;
pub mod config;
pub mod cutoffs;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod http;
pub mod keys;
pub mod mail;
pub mod model;
pub mod openapi;
pub mod schema;
pub mod sessions;
pub mod store;

pub use config::AuthConfig;

/// Service name: config section, store file, metrics label.
pub const NAME: &str = "auth";

/// The store's migrations for both backends.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: embed_migrations!("migrations/postgres"),
    sqlite: embed_migrations!("migrations/sqlite"),
};

/// HTTP and gRPC ports when none are configured.
pub const PORTS: (u16, u16) = (8081, 9081);

/// The service contract the binary starts it by. In embedded mode it also creates the first
/// platform admin (printing a generated password once), and it offers the services started
/// after it tokens signed for their own principal (`service:<name>`).
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        name: NAME,
        migrations: Some(MIGRATIONS),
        default_ports: (PORTS.0, Some(PORTS.1)),
        publishes: true,
        openapi: Some(openapi::document),
        config_keys: agora_shared::service::config_keys::<AuthConfig>,
        open_config_maps: &[],
        start: |ctx, shutdown| {
            Box::pin(async move {
                let started = start(&ctx, shutdown).await?;
                if ctx.common.mode == Mode::Embedded {
                    let created = admin::bootstrap_platform_admin(
                        &started.state.db,
                        ctx.common.bootstrap_admin_email.as_deref(),
                        ctx.common
                            .bootstrap_admin_password
                            .as_ref()
                            .map(|s| s.expose()),
                    )
                    .await?;
                    if let Some((email, generated)) = created {
                        println!("created platform admin {email}");
                        if let Some(password) = generated {
                            println!("  password (shown once): {password}");
                        }
                    }
                }
                let keyring = started.state.keyring.clone();
                ctx.provided
                    .insert(ServiceTokens(Arc::new(move |service: &str| {
                        admin::service_token_issuer(keyring.clone(), service)()
                    })));
                Ok(started.service)
            })
        },
    }
}

/// Everything handlers need.
pub struct AuthState {
    pub db: Db,
    pub config: AuthConfig,
    pub keyring: Arc<keys::Keyring>,
    pub denylist: Arc<dyn Denylist>,
    pub mailer: Option<mail::Mailer>,
    /// Where caches (of every replica, with Redis) are told to forget revoked or changed
    /// credentials.
    pub invalidations: agora_shared::invalidation::Invalidations,
    /// Work started after the answer (password reset mails), bounded.
    pub background: Arc<tokio::sync::Semaphore>,
    /// Who the client is behind the gateways (`auth.trusted_proxies`).
    pub client_ip: agora_shared::http::client_ip::ClientIp,
    /// Credential requests per client IP (`auth.credential_requests_per_minute`; none at 0).
    pub credential_limiter: Option<CredentialLimiter>,
}

/// Credential requests per client IP.
pub type CredentialLimiter = governor::DefaultKeyedRateLimiter<std::net::IpAddr>;

fn credential_limiter(per_minute: u32) -> Option<CredentialLimiter> {
    let burst = std::num::NonZeroU32::new(per_minute)?;
    Some(governor::RateLimiter::keyed(governor::Quota::per_minute(
        burst,
    )))
}

#[async_trait]
impl ApiKeyResolver for AuthState {
    async fn resolve(&self, key: &str) -> Result<Option<Caller>, AppError> {
        let hash = domain::secret_hash(key);
        let Some((row, email, creator_role)) = self
            .db
            .read(move |conn| store::api_keys::resolve(conn, &hash))
            .await?
        else {
            return Ok(None);
        };
        // Last use is recorded at most once a minute, so verification stays a read.
        let stale = chrono::Duration::seconds(60);
        if row
            .last_used_at
            .is_none_or(|t| agora_shared::db::now() - t > stale)
        {
            let id = row.id.clone();
            self.db
                .write(move |conn| store::api_keys::touch(conn, &id))
                .await?;
        }
        Ok(Some(Caller {
            user_id: row.created_by,
            tenant_id: row.tenant_id,
            // A key acts with at most its creator's rights today (a demoted creator's keys shrink).
            role: row.role.min(creator_role),
            permissions: Vec::new(),
            email,
            plan: None,
            credential: Credential::ApiKey {
                key_id: row.id,
                key: key.to_owned(),
            },
        }))
    }
}

/// A started auth service and its state (tests reach into the state).
pub struct Started {
    pub service: RunningService,
    pub state: Arc<AuthState>,
    pub authenticator: Authenticator,
}

/// Starts HTTP, gRPC, the outbox relay and the key reloader; all stop on `shutdown`.
pub async fn start(ctx: &ServiceContext, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let config: AuthConfig = ctx.config.section(NAME)?;
    let url = config
        .endpoints
        .resolve_database_url(NAME, &ctx.common, NAME)?;
    if ctx.common.mode == Mode::Distributed
        && config.signing_key.is_none()
        && config.key_encryption_key.is_none()
    {
        return Err(ConfigError::new(
            "auth.signing_key",
            "or auth.key_encryption_key is required in distributed mode (signing keys are never stored in clear there)",
        )
        .into());
    }
    if ctx.migrate_on_start {
        let url = url.clone();
        tokio::task::spawn_blocking(move || Db::migrate(&url, MIGRATIONS)).await??;
    }
    let db = Db::connect(&url, config.endpoints.database_pool_size)?;
    let keyring = keys::Keyring::load(&db, &config).await?;
    let denied = db.read(store::sessions::live_denied_tokens).await?;
    for (jti, exp) in denied {
        ctx.denylist.deny(&jti, exp.and_utc().timestamp()).await;
    }
    for cut in db.read(cutoffs::live).await? {
        ctx.denylist
            .cut_off(&cut.subject, cut.at_ms, cut.until)
            .await;
    }
    // Trusts the gateway's vouch that a token's revocation was just checked (one Redis round
    // trip per request on the whole path); everything else it checks itself.
    let verifier = Arc::new(
        Verifier::new(
            &config.issuer,
            &config.audience,
            keyring.verify_keys(),
            ctx.denylist.clone(),
        )
        .with_vouches(ctx.auth_peer.secret.as_ref()),
    );
    let mailer = config
        .smtp_url
        .as_ref()
        .map(|url| mail::Mailer::new(url, &config.mail_from))
        .transpose()?;
    if mailer.is_none() {
        tracing::warn!(
            "auth.smtp_url is not set: password reset links cannot be delivered, and invitations reach only the inviter"
        );
    }
    // Embedded mode: the gateway reaches auth over loopback in the same process.
    let trusted = match (config.trusted_proxies.is_empty(), ctx.common.mode) {
        (true, Mode::Embedded) => vec!["127.0.0.1".to_owned(), "::1".to_owned()],
        _ => config.trusted_proxies.clone(),
    };
    let client_ip =
        agora_shared::http::client_ip::ClientIp::new(&trusted).map_err(anyhow::Error::msg)?;
    let state = Arc::new(AuthState {
        db: db.clone(),
        config: config.clone(),
        keyring: keyring.clone(),
        denylist: ctx.denylist.clone(),
        mailer,
        invalidations: ctx.invalidations(),
        background: Arc::new(tokio::sync::Semaphore::new(16)),
        client_ip,
        credential_limiter: credential_limiter(config.credential_requests_per_minute),
    });
    let authenticator = Authenticator {
        verifier,
        api_keys: Some(state.clone()),
    };

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
            grpc_routes: grpc::routes(
                state.clone(),
                authenticator.clone(),
                ctx.auth_peer.secret.clone(),
            ),
            publishes: true,
        },
        shutdown.clone(),
    )
    .await?;
    // The key set may have changed while this auth was down (a key removed from config):
    // every verifier that cached it refetches now rather than at its max-age.
    state.invalidations.publish("jwks").await;
    let reload_state = state.clone();
    let reload_shutdown = shutdown.clone();
    service.tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                _ = reload_shutdown.cancelled() => return Ok(()),
            }
            match reload_state.keyring.reload(&reload_state.db).await {
                Ok(true) => reload_state.invalidations.publish("jwks").await,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "signing key reload failed")
                }
            }
        }
    });
    Ok(Started {
        service,
        state,
        authenticator,
    })
}
