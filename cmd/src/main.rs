//! `agora`: with no subcommand, the whole platform in one process (embedded mode); `serve`
//! runs chosen services (distributed mode); `migrate` and `admin` are operator tools.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use agora::{context, select};
use agora_shared::{
    config::{CommonConfig, ConfigSource, Mode},
    db::Db,
    http::Role,
    redis::{Redis, RedisConfig},
    telemetry::TelemetryGuard,
    tokens::KeyPair,
};

/// mimalloc: the proxy path is allocation-heavy, and glibc malloc showed as ~12% of CPU there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "agora",
    version,
    about = "Agora: a multi-tenant backend platform"
)]
struct Cli {
    /// TOML configuration file (environment variables `AGORA_...` override it).
    #[arg(long, global = true, env = "AGORA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Read one uploaded document (stdin) into text (stdout) within memory and CPU limits:
    /// the process the ai service reads HTML, PDF and DOCX files in. Not for people.
    #[command(hide = true)]
    ExtractDocument {
        #[arg(long)]
        format: String,
        #[arg(long)]
        max_bytes: usize,
        #[arg(long)]
        memory_mib: u64,
        #[arg(long)]
        cpu_secs: u64,
    },
    /// Run the chosen services (distributed mode).
    Serve {
        /// Service to run, by name (`all` for every one); repeat for several. An unknown name
        /// is refused with the list of known ones.
        #[arg(long = "service", required = true)]
        services: Vec<String>,
        /// Apply pending migrations before serving.
        #[arg(long)]
        migrate: bool,
    },
    /// Apply pending migrations of a service's store (the kernel's tables first).
    Migrate {
        /// A service that keeps a store, by name, or `all`.
        #[arg(long = "service", default_value = "all")]
        service: String,
        /// Apply nothing: wait until another process (the migration Job) has applied every
        /// migration, then exit 0; exit non-zero after `--timeout-secs`. For init containers.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value_t = 600, requires = "wait")]
        timeout_secs: u64,
    },
    /// Exit 0 when a health endpoint answers 2xx within the timeout, 1 otherwise (a container
    /// health check; the runtime image has no curl).
    Health {
        /// The endpoint: the gateway's (and the embedded platform's) liveness by default.
        #[arg(long, default_value = "http://127.0.0.1:8080/health/live")]
        url: String,
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
    /// Analytics maintenance.
    Analytics {
        #[command(subcommand)]
        command: AnalyticsCommand,
    },
    /// Operator tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AnalyticsCommand {
    /// Re-read every tenant's tickets from the running tickets service (gRPC) and recompute
    /// the rollups from the facts. Safe while analytics runs: newer facts are kept.
    Rebuild,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an active user with a password (the tenant is created when missing).
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long, env = "AGORA_NEW_USER_PASSWORD")]
        password: String,
        #[arg(long, default_value = "Administrator")]
        name: String,
        #[arg(long, default_value = "TENANT_ADMIN", value_parser = ["PLATFORM_ADMIN", "TENANT_ADMIN", "TENANT_USER"])]
        role: String,
        /// Tenant name; platform admins go to the `platform` tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Rotate the store-managed token signing key (running services pick it up within a minute).
    RotateSigningKey,
    /// Print a new Ed25519 signing key (PKCS#8 PEM) for `AGORA_AUTH__SIGNING_KEY`.
    GenerateSigningKey,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::ExtractDocument {
        format,
        max_bytes,
        memory_mib,
        cpu_secs,
    }) = &cli.command
    {
        // No runtime, no configuration: this process reads one document and exits.
        let code =
            agora_ai::knowledge::extract::child_main(format, *max_bytes, *memory_mib, *cpu_secs);
        return ExitCode::from(code as u8);
    }
    // The ai service reads HTML, PDF and DOCX files in child processes of this binary, under a
    // memory limit. mimalloc reserves 1 GiB of address space as it starts, which the limit
    // would count but not bound (the heap grows inside it): the readers reserve none.
    agora_ai::knowledge::extract::read_in_child_processes(
        // The running binary itself, even once an upgrade has replaced its file.
        match std::path::Path::new("/proc/self/exe").exists() {
            true => "/proc/self/exe".into(),
            false => std::env::current_exe().unwrap_or_default(),
        },
        vec![("MIMALLOC_ARENA_RESERVE".into(), "0".into())],
    );
    // Container runtimes read 1 as unhealthy (and reserve 2).
    let failed = match cli.command {
        Some(Command::Health { .. }) => 1,
        _ => 2,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut telemetry = None;
    let result = runtime.block_on(run(cli, &mut telemetry));
    // Flush exported traces while the runtime's workers still drive the exporter.
    drop(telemetry);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(failed)
        }
    }
}

async fn run(cli: Cli, telemetry: &mut Option<TelemetryGuard>) -> anyhow::Result<()> {
    // A health probe reads no configuration: it runs every few seconds in the container.
    let load = || -> anyhow::Result<(ConfigSource, CommonConfig)> {
        let config = ConfigSource::load(cli.config.clone())?;
        for key in agora::unknown_config_keys(&config) {
            eprintln!(
                "warning: `{key}` (AGORA_{}) is not a configuration key; it is ignored",
                key.replace('.', "__").to_ascii_uppercase()
            );
        }
        let common: CommonConfig = config.section("")?;
        Ok((config, common))
    };
    match cli.command {
        None => {
            let (config, mut common) = load()?;
            common.mode = Mode::Embedded;
            let specs = select(&["all".to_owned()])?;
            *telemetry = Some(agora_shared::telemetry::init(&common)?);
            run_services(config, common, true, specs).await
        }
        Some(Command::Serve { services, migrate }) => {
            let (config, common) = load()?;
            let specs = select(&services)?;
            *telemetry = Some(agora_shared::telemetry::init(&common)?);
            run_services(config, common, migrate, specs).await
        }
        Some(Command::Migrate {
            service,
            wait,
            timeout_secs,
        }) => {
            let (config, common) = load()?;
            let mut specs = select(std::slice::from_ref(&service))?;
            if service == "all" {
                specs.retain(|spec| spec.migrations.is_some());
            }
            let ctx = context(config, common, true)?;
            match wait {
                true => {
                    let (every, timeout) = (
                        std::time::Duration::from_secs(2),
                        std::time::Duration::from_secs(timeout_secs),
                    );
                    agora::wait_migrated(&ctx, specs, every, timeout).await
                }
                false => agora::migrate(&ctx, specs).await,
            }
        }
        Some(Command::Health { url, timeout_secs }) => {
            health(&url, std::time::Duration::from_secs(timeout_secs)).await
        }
        Some(Command::Admin { command }) => {
            let (config, common) = load()?;
            admin(config, common, command).await
        }
        Some(Command::Analytics {
            command: AnalyticsCommand::Rebuild,
        }) => {
            let (config, common) = load()?;
            rebuild_analytics(config, common).await
        }
        // Answered in `main`, before any runtime.
        Some(Command::ExtractDocument { .. }) => Ok(()),
    }
}

/// Starts `specs` in order and supervises them until a signal or the first failure.
async fn run_services(
    config: ConfigSource,
    common: CommonConfig,
    migrate: bool,
    specs: Vec<agora_shared::service::ServiceSpec>,
) -> anyhow::Result<()> {
    let embedded = common.mode == Mode::Embedded;
    if !embedded {
        agora::check_distributed(&config)?;
    }
    let ctx = context(config, common, migrate)?;
    // Listen before anything starts: a SIGTERM that arrives while the services start, or just
    // after, stops them (a listener made later would never see it, and the process would run on).
    let signals = StopSignals::listen()?;
    let stop = CancellationToken::new();
    let signalled = stop.clone();
    tokio::spawn(async move {
        signals.recv().await;
        tracing::info!("shutting down");
        signalled.cancel();
    });
    let running = agora::start(ctx, specs).await?;
    println!(
        "agora is running ({} mode); Ctrl-C stops it",
        if embedded { "embedded" } else { "distributed" }
    );
    agora_shared::service::supervise(running, stop).await
}

/// `agora health`: one GET; 2xx within `timeout` is healthy.
async fn health(url: &str, timeout: std::time::Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let status = client
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url} does not answer: {e}"))?
        .status();
    anyhow::ensure!(status.is_success(), "{url} answers {status}");
    println!("{url}: {status}");
    Ok(())
}

/// SIGINT and SIGTERM, listened for from the moment this is made.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind: SignalKind| {
                signal(kind).map_err(|e| anyhow::anyhow!("cannot listen for signals: {e}"))
            };
            Ok(Self {
                interrupt: listen(SignalKind::interrupt())?,
                terminate: listen(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn admin(
    config: ConfigSource,
    common: CommonConfig,
    command: AdminCommand,
) -> anyhow::Result<()> {
    match command {
        AdminCommand::GenerateSigningKey => print!("{}", KeyPair::generate().private_pem()),
        AdminCommand::CreateUser {
            email,
            password,
            name,
            role,
            tenant,
        } => {
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let tenant = match (role, tenant) {
                (Role::PlatformAdmin, _) => agora_auth::domain::PLATFORM_TENANT.to_owned(),
                (_, Some(t)) => t,
                (_, None) => anyhow::bail!("--tenant is required for tenant users"),
            };
            let db = open_auth_store(config, common).await?;
            let id = agora_auth::admin::create_user(&db, &email, &password, &name, role, &tenant)
                .await?;
            println!(
                "created user {id} ({}, {role}) in tenant {tenant}",
                agora_auth::domain::normalize_email(&email)
            );
        }
        AdminCommand::RotateSigningKey => {
            let auth: agora_auth::AuthConfig = config.section("auth")?;
            if auth.signing_key.is_some() {
                return Err(agora_shared::config::ConfigError::new(
                    "auth.signing_key",
                    "is set, so keys come from configuration: put the new key there and the old one in auth.previous_signing_keys",
                )
                .into());
            }
            let sealer = auth.sealer();
            if sealer.is_none() && common.mode == Mode::Distributed {
                return Err(agora_shared::config::ConfigError::new(
                    "auth.key_encryption_key",
                    "is required in distributed mode (signing keys are never stored in clear there)",
                )
                .into());
            }
            let redis = Redis::connect(&config.section::<RedisConfig>("redis")?)?;
            let db = open_auth_store(config, common).await?;
            let kid = agora_auth::keys::rotate(&db, sealer).await?;
            // Replicas pick the new key up on their own; this makes them drop cached keys now.
            if let Some(redis) = redis {
                redis.publish_invalidation("jwks").await;
            }
            println!(
                "new signing key {kid}; the previous key keeps verifying until its tokens expire"
            );
        }
    }
    Ok(())
}

/// `agora analytics rebuild`: backfills from the tickets service with the configured
/// credential, or with tokens signed by the auth store's key when none is configured.
async fn rebuild_analytics(config: ConfigSource, common: CommonConfig) -> anyhow::Result<()> {
    let settings: agora_analytics::AnalyticsConfig = config.section(agora_analytics::NAME)?;
    let credential = match settings.tickets_credential.clone() {
        Some(secret) => agora_analytics::Credential::Static(secret),
        None => {
            let auth_config: agora_auth::AuthConfig = config.section("auth")?;
            let auth_db = open_auth_store(config.clone(), common.clone()).await?;
            let keyring = agora_auth::keys::Keyring::load(&auth_db, &auth_config).await?;
            agora_analytics::Credential::Issued(Arc::new(agora_auth::admin::service_token_issuer(
                keyring,
                "analytics",
            )))
        }
    };
    let ctx = context(config, common, true)?;
    let url = agora::store_url(&ctx, agora_analytics::NAME)?;
    let migrate_url = url.clone();
    tokio::task::spawn_blocking(move || Db::migrate(&migrate_url, agora_analytics::MIGRATIONS))
        .await??;
    let db = Db::connect(&url, 2)?;
    let channel = agora_shared::grpc::channel(
        &settings.tickets_grpc,
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(60),
    )?;
    let report = agora_analytics::backfill::run(&db, channel, &credential)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read tickets from {} (is the tickets service running?): {e}",
                settings.tickets_grpc
            )
        })?;
    println!(
        "analytics rebuilt from {} ticket(s) of {} tenant(s)",
        report.tickets, report.tenants
    );
    Ok(())
}

/// The auth store, migrated.
async fn open_auth_store(config: ConfigSource, common: CommonConfig) -> anyhow::Result<Db> {
    let ctx = context(config, common, true)?;
    let url = agora::store_url(&ctx, agora_auth::NAME)?;
    let migrate_url = url.clone();
    tokio::task::spawn_blocking(move || Db::migrate(&migrate_url, agora_auth::MIGRATIONS))
        .await??;
    Db::connect(&url, 2)
}
