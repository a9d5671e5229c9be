//! The platform as the `agora` binary runs it: one table of service specs from which
//! `serve`, `migrate`, the embedded start order and the reverse shutdown are built.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use agora_shared::{
    bus::{
        InProcessBus, SharedBus,
        kafka::{KafkaBus, KafkaConfig},
        topic_for,
    },
    config::{AuthPeerConfig, CommonConfig, ConfigError, ConfigSource},
    db::Db,
    redis::{Redis, RedisConfig, RedisDenylist},
    service::{Discovered, RunningService, ServiceContext, ServiceSpec},
    tokens::{Denylist, MemoryDenylist},
};

/// Every service the binary runs, in start order: auth first (the others verify its tokens),
/// the gateway last (it routes to the rest). Adding a service is one line here.
pub const SERVICES: &[fn() -> ServiceSpec] = &[
    agora_auth::spec,
    agora_tickets::spec,
    agora_analytics::spec,
    agora_inventory_sync::spec,
    agora_code_exec::spec,
    agora_realtime::spec,
    agora_ai::spec,
    agora_gateway::spec,
];

/// The names of every service, in start order.
pub fn known() -> Vec<&'static str> {
    SERVICES.iter().map(|spec| spec()).map(|s| s.name).collect()
}

/// The specs `names` choose, in start order; an unknown name is an error naming the known
/// ones. `all` chooses every service.
pub fn select(names: &[String]) -> anyhow::Result<Vec<ServiceSpec>> {
    let known = known();
    if let Some(unknown) = names
        .iter()
        .find(|n| *n != "all" && !known.contains(&n.as_str()))
    {
        anyhow::bail!(
            "unknown service `{unknown}`; the services are: {}",
            known.join(", ")
        );
    }
    let all = names.iter().any(|n| n == "all");
    Ok(SERVICES
        .iter()
        .map(|spec| spec())
        .filter(|s| all || names.iter().any(|n| n == s.name))
        .collect())
}

/// What every service of this process shares. With `[kafka] brokers` set, events go through
/// Kafka (otherwise the in-process bus). With `[redis] url` set, token revocations live
/// in Redis (shared by replicas); otherwise in memory.
pub fn context(
    config: ConfigSource,
    common: CommonConfig,
    migrate: bool,
) -> anyhow::Result<ServiceContext> {
    let kafka: KafkaConfig = config.section("kafka")?;
    let bus: SharedBus = match kafka.brokers {
        Some(_) => Arc::new(KafkaBus::new(&kafka)?),
        None => Arc::new(InProcessBus::new()),
    };
    let redis = Redis::connect(&config.section::<RedisConfig>("redis")?)?;
    let denylist: Arc<dyn Denylist> = match &redis {
        Some(redis) => Arc::new(RedisDenylist::new(redis.clone())),
        None => Arc::new(MemoryDenylist::default()),
    };
    Ok(ServiceContext {
        common,
        bus,
        denylist,
        migrate_on_start: migrate,
        redis,
        discovered: Vec::new(),
        provided: Default::default(),
        local_invalidations: Default::default(),
        auth_peer: config
            .section::<AuthPeerConfig>("auth_peer")?
            .with_process_secret(),
        config,
    })
}

/// What serving in distributed mode needs beyond each service's own settings: Redis (token
/// revocations, cut-offs and cache invalidations reach the other processes through it) and
/// the peer secret the services present to auth.
pub fn check_distributed(config: &ConfigSource) -> Result<(), ConfigError> {
    let redis: RedisConfig = config.section("redis")?;
    if redis.url.is_none() {
        return Err(ConfigError::new(
            "redis.url",
            "is required in distributed mode (token revocations and cache invalidations reach the other processes through it)",
        ));
    }
    let peer: AuthPeerConfig = config.section("auth_peer")?;
    if peer.secret.is_none() {
        return Err(ConfigError::new(
            "auth_peer.secret",
            "is required in distributed mode (services present it to auth's VerifyApiKey)",
        ));
    }
    Ok(())
}

/// Starts `specs` in order, each with its own shutdown token, telling each the addresses of
/// those before it. If one cannot start, those already started are stopped (in reverse).
pub async fn start(
    mut ctx: ServiceContext,
    specs: Vec<ServiceSpec>,
) -> anyhow::Result<Vec<RunningService>> {
    let mut running: Vec<RunningService> = Vec::with_capacity(specs.len());
    for spec in specs {
        match (spec.start)(ctx.clone(), CancellationToken::new()).await {
            Ok(service) => {
                match service.grpc_addr {
                    Some(grpc) => {
                        println!(
                            "{:<14} http://{}  grpc {grpc}",
                            spec.name, service.http_addr
                        );
                        ctx.discovered.push(Discovered {
                            name: spec.name.to_owned(),
                            http: service.http_addr,
                            grpc,
                        });
                    }
                    None => println!("{:<14} http://{}", spec.name, service.http_addr),
                }
                running.push(service);
            }
            Err(err) => {
                let stop = CancellationToken::new();
                stop.cancel();
                let _ = agora_shared::service::supervise(running, stop).await;
                // A configuration error already names its key, which names the service.
                if err.downcast_ref::<ConfigError>().is_some() {
                    return Err(err);
                }
                return Err(err.context(format!("service {} did not start", spec.name)));
            }
        }
    }
    Ok(running)
}

/// Applies the migrations of `specs` that keep a store, then creates the event topics of
/// those that publish when Kafka is configured (every store first: brokers that refuse the
/// topics leave no store behind).
pub async fn migrate(ctx: &ServiceContext, specs: Vec<ServiceSpec>) -> anyhow::Result<()> {
    let kafka_config: KafkaConfig = ctx.config.section("kafka")?;
    let kafka = match kafka_config.brokers {
        Some(_) => Some(KafkaBus::new(&kafka_config)?),
        None => None,
    };
    let mut publishers = Vec::new();
    for spec in specs {
        if spec.publishes {
            publishers.push(spec.name);
        }
        let Some(migrations) = spec.migrations else {
            println!("{}: keeps no store", spec.name);
            continue;
        };
        let url = store_url(ctx, spec.name)?;
        let applied = tokio::task::spawn_blocking(move || Db::migrate(&url, migrations)).await??;
        println!("{}: {applied} migration(s) applied", spec.name);
    }
    for name in publishers {
        // Its event topic and that topic's dead letters, never created on first use.
        if let Some(kafka) = kafka.as_ref() {
            let topic = topic_for(name);
            kafka
                .create_topics(
                    &[topic.clone(), format!("{topic}.dlq")],
                    kafka_config.partitions,
                    kafka_config.replication,
                )
                .await?;
            println!("{}: topics {topic} and {topic}.dlq ready", name);
        }
    }
    Ok(())
}

/// Waits until the stores of `specs` have no pending migration (another process, such as the
/// migration Job, applies them), checking every `every`; gives up after `timeout`.
pub async fn wait_migrated(
    ctx: &ServiceContext,
    specs: Vec<ServiceSpec>,
    every: std::time::Duration,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    for spec in specs {
        let Some(mut migrations) = spec.migrations else {
            continue;
        };
        let url = store_url(ctx, spec.name)?;
        let mut reported = String::new();
        loop {
            let check = url.clone();
            // The migrations go to the blocking pool and come back (they are not `Clone`).
            let (pending, back) =
                tokio::task::spawn_blocking(move || (Db::pending(&check, &migrations), migrations))
                    .await?;
            migrations = back;
            let state = match pending {
                Ok(0) => break,
                Ok(n) => format!("{n} migration(s) pending"),
                Err(err) => format!("{err:#}"),
            };
            if state != reported {
                println!("{}: waiting: {state}", spec.name);
                reported = state;
            }
            if tokio::time::Instant::now() + every > deadline {
                anyhow::bail!(
                    "{}: the store is not migrated after {}s ({reported}); is the migration Job running?",
                    spec.name,
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(every).await;
        }
        println!("{}: the store is up to date", spec.name);
    }
    Ok(())
}

/// Keys the configuration file or the `AGORA_*` environment sets that mean nothing to this
/// binary (misspelt, or from another release), as dotted paths.
pub fn unknown_config_keys(config: &ConfigSource) -> Vec<String> {
    use agora_shared::service::config_keys;
    let mut known = config_keys::<CommonConfig>();
    known["auth_peer"] = config_keys::<AuthPeerConfig>();
    known["redis"] = config_keys::<RedisConfig>();
    known["kafka"] = config_keys::<KafkaConfig>();
    // Read as command-line options, not as configuration: `--config` and the new user's
    // password of `admin create-user`.
    known["config"] = serde_json::Value::Null;
    known["new_user_password"] = serde_json::Value::Null;
    let mut open = Vec::new();
    for spec in SERVICES.iter().map(|spec| spec()) {
        let section = agora_shared::service::config_section(spec.name);
        known[&section] = (spec.config_keys)();
        open.extend(
            spec.open_config_maps
                .iter()
                .map(|map| format!("{section}.{map}")),
        );
    }
    let open: Vec<&str> = open.iter().map(String::as_str).collect();
    config.unknown_keys(&known, &open)
}

/// The store URL of the service called `name`: `<section>.database_url`, or its SQLite file
/// `<name>.db` under the data directory in embedded mode.
pub fn store_url(ctx: &ServiceContext, name: &str) -> anyhow::Result<String> {
    let section = agora_shared::service::config_section(name);
    let endpoints: agora_shared::config::StoreSection = ctx.config.section(&section)?;
    Ok(endpoints.resolve(&section, name, &ctx.common)?)
}
