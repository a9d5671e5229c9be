//! Redis, shared by the replicas of a distributed deployment: the `[redis]` section, the
//! connections, the token denylist kept there, and cache invalidation over pub/sub.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use futures::StreamExt;
use redis::{
    AsyncCommands,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::{
    AppError,
    config::{ConfigError, Secret, Validate},
    tokens::{Denylist, Entries},
};

/// What to do with a rate-limit check when Redis cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// Let the request through (counted in `agora_rate_limit_store_errors_total`, logged).
    #[default]
    Open,
    /// Refuse the request with 503.
    Closed,
}

/// The `[redis]` section (`AGORA_REDIS__*`). Without `url` everything stays in process memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]` (`rediss://` for TLS).
    pub url: Option<Secret>,
    /// PEM file of the CA that signs the server's certificate (`rediss://`), when it is not
    /// in the system's store.
    pub ca_file: Option<std::path::PathBuf>,
    /// Connections per process for tasks on its multi-threaded runtime, each multiplexed: the
    /// commands of concurrent tasks share one connection and travel pipelined (fewer system
    /// calls on both sides than a command per pooled connection), spread over the connections
    /// in turn. Each HTTP worker thread keeps one more of its own.
    pub pool_size: usize,
    /// Longest wait for one Redis round trip before the failure policy applies.
    pub timeout_ms: u64,
    /// Prefix of every key this platform writes (several platforms can share one Redis).
    pub key_prefix: String,
    pub rate_limit_failure: FailurePolicy,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            ca_file: None,
            pool_size: 2,
            timeout_ms: 250,
            key_prefix: "agora:".into(),
            rate_limit_failure: FailurePolicy::Open,
        }
    }
}

impl Validate for RedisConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        if let Some(url) = &self.url
            && !(url.expose().starts_with("redis://") || url.expose().starts_with("rediss://"))
        {
            return Err(ConfigError::new(
                key("url"),
                "must start with redis:// or rediss://",
            ));
        }
        if let Some(url) = &self.url
            && url.expose().contains('#')
        {
            // redis-rs reads `#insecure` as "skip certificate checks".
            return Err(ConfigError::new(
                key("url"),
                "must not carry a #fragment (certificate checks cannot be turned off)",
            ));
        }
        if self.ca_file.is_some()
            && !self
                .url
                .as_ref()
                .is_some_and(|u| u.expose().starts_with("rediss://"))
        {
            return Err(ConfigError::new(
                key("ca_file"),
                "applies to rediss:// URLs only (redis.url is not one)",
            ));
        }
        if self.pool_size == 0 {
            return Err(ConfigError::new(key("pool_size"), "must be at least 1"));
        }
        if self.timeout_ms == 0 {
            return Err(ConfigError::new(key("timeout_ms"), "must be at least 1"));
        }
        Ok(())
    }
}

/// Least time between two remakes of one connection.
const REMAKE_BACKOFF: Duration = Duration::from_secs(1);

/// One multiplexed connection. redis-rs reconnects by itself only after an I/O error; a
/// connection that stopped answering (dropped silently by the network: every command times
/// out) or whose set-up failed otherwise (AUTH refused) would stay broken, so the slot is
/// remade after a failure, at most once per [`REMAKE_BACKOFF`].
struct Slot {
    conn: Mutex<ConnectionManager>,
    /// Failures in a row since the last answer or remake; a failing slot is passed over
    /// while another is not.
    failing: AtomicU32,
    remade: Mutex<Instant>,
}

impl Slot {
    fn new(client: &redis::Client, settings: &ConnectionManagerConfig) -> anyhow::Result<Self> {
        Ok(Slot {
            conn: Mutex::new(connection(client, settings)?),
            failing: AtomicU32::new(0),
            remade: Mutex::new(Instant::now()),
        })
    }
}

/// Numbers each [`Redis::connect`], so a thread's own connections are told apart per handle.
static HANDLES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The connections of this thread's single-threaded runtime (an HTTP worker's), one per
    /// handle: `(handle, runtime, slot)`. A command sent on one of them, its answer read and the
    /// request that waits for it woken all happen on this thread; on a connection driven by
    /// another runtime each of those is a wake-up of another thread (two context switches a
    /// command more, measured on the authenticated edge).
    static LOCAL_SLOTS: std::cell::RefCell<Vec<(u64, tokio::runtime::Id, Arc<Slot>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A connected Redis: its connections and the settings that go with them.
#[derive(Clone)]
pub struct Redis {
    /// Multiplexed connections, made on first use and remade after failures, for tasks on
    /// multi-threaded runtimes; a thread running a single-threaded runtime (each HTTP worker)
    /// has one of its own ([`LOCAL_SLOTS`]).
    slots: Arc<[Slot]>,
    /// Which handle this is (clones share it), for [`LOCAL_SLOTS`].
    id: u64,
    settings: ConnectionManagerConfig,
    next: Arc<AtomicUsize>,
    /// For pub/sub, which needs a connection of its own.
    client: redis::Client,
    pub timeout: Duration,
    pub key_prefix: String,
    pub rate_limit_failure: FailurePolicy,
    /// Round trips made through `run` by this handle and its clones.
    round_trips: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// The connections for `config`, or `None` when no URL is configured. They connect on
    /// first use.
    pub fn connect(config: &RedisConfig) -> anyhow::Result<Option<Self>> {
        let Some(url) = &config.url else {
            return Ok(None);
        };
        use redis::IntoConnectionInfo;
        let info = url
            .expose()
            .into_connection_info()
            .map_err(|e| anyhow::anyhow!("redis.url: {e}"))?
            // Commands of concurrent requests are written as they come, not held for an ACK.
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = match &config.ca_file {
            None => redis::Client::open(info),
            Some(path) => {
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca_file(path)?),
                };
                redis::Client::build_with_tls(info, certificates)
            }
        }
        .map_err(|e| anyhow::anyhow!("redis.url: {e}"))?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let settings = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // A reconnection is tried again on the next command, not waited for by this one.
            .set_number_of_retries(1);
        let slots = (0..config.pool_size)
            .map(|_| Slot::new(&client, &settings))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Some(Self {
            slots: slots.into(),
            id: HANDLES.fetch_add(1, Ordering::Relaxed),
            settings,
            next: Arc::default(),
            client,
            timeout,
            key_prefix: config.key_prefix.clone(),
            rate_limit_failure: config.rate_limit_failure,
            round_trips: Arc::default(),
        }))
    }

    /// Round trips made so far through this handle and its clones (one command, pipeline or
    /// script each).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// `<prefix><name>`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.key_prefix)
    }

    fn invalidation_channel(&self) -> String {
        self.key("invalidate")
    }

    /// Tells every replica's caches to forget `what` (`jwks`, `api_key:<id>`). Best effort:
    /// the caches also expire on their own.
    pub async fn publish_invalidation(&self, what: &str) {
        let (channel, what) = (self.invalidation_channel(), what.to_owned());
        let sent = self
            .run(|mut conn| async move { conn.publish::<_, _, ()>(channel, what).await })
            .await;
        if let Err(err) = sent {
            tracing::warn!(error = %err, "cache invalidation not published");
        }
    }

    /// Hands every invalidation published by any replica to `target` until `shutdown`,
    /// reconnecting after failures. Whenever it (re)subscribes, `target` forgets everything
    /// (`*`), since messages sent meanwhile are lost.
    pub async fn watch_invalidations(
        self,
        target: Arc<dyn Invalidate>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            let session = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(self.invalidation_channel()).await?;
                target.invalidate("*").await;
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    if let Ok(what) = msg.get_payload::<String>() {
                        target.invalidate(&what).await;
                    }
                }
                Ok::<(), redis::RedisError>(())
            };
            tokio::select! {
                ended = session => if let Err(err) = ended {
                    tracing::warn!(error = %err, "cache invalidation feed lost; reconnecting");
                },
                _ = shutdown.cancelled() => return Ok(()),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// A connection of its own for pub/sub (subscribing takes a connection over).
    pub async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        self.client.get_async_pubsub().await
    }

    /// This thread's own connection when it runs a single-threaded runtime (made on first
    /// use, so its driver runs on that runtime), else `None`.
    fn local_slot(&self) -> Option<Arc<Slot>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        if runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread {
            return None;
        }
        let runtime = runtime.id();
        LOCAL_SLOTS.with_borrow_mut(|slots| {
            if let Some((.., slot)) = slots
                .iter()
                .find(|(handle, rt, _)| *handle == self.id && *rt == runtime)
            {
                return Some(slot.clone());
            }
            // Another runtime's connections on this thread belong to one that ran here
            // before (a test's): its driver is gone with it.
            slots.retain(|(_, rt, _)| *rt == runtime);
            let slot = Arc::new(Slot::new(&self.client, &self.settings).ok()?);
            slots.push((self.id, runtime, slot.clone()));
            Some(slot)
        })
    }

    /// Runs `f` on this thread's own connection (see [`LOCAL_SLOTS`]) or one of the shared
    /// ones (in turn, passing over failing ones while another is not) within the timeout.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let local = self.local_slot();
        let slot = match &local {
            Some(slot) => slot,
            None => {
                let n = self.slots.len();
                let turn = self.next.fetch_add(1, Ordering::Relaxed) % n;
                (0..n)
                    .map(|i| &self.slots[(turn + i) % n])
                    .find(|s| s.failing.load(Ordering::Relaxed) == 0)
                    .unwrap_or(&self.slots[turn])
            }
        };
        let conn = slot.conn.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(value)) => {
                slot.failing.store(0, Ordering::Relaxed);
                Ok(value)
            }
            // The server answered this command with an error: the connection works.
            Ok(Err(e)) if matches!(e.kind(), redis::ErrorKind::Server(_)) => {
                slot.failing.store(0, Ordering::Relaxed);
                Err(e.to_string())
            }
            Ok(Err(e)) => {
                self.failed(slot);
                Err(e.to_string())
            }
            Err(_) => {
                self.failed(slot);
                Err("timed out".to_owned())
            }
        }
    }

    /// Counts a failure on `slot` and remakes its connection unless that was done within
    /// [`REMAKE_BACKOFF`] (the new one connects on its first command).
    fn failed(&self, slot: &Slot) {
        slot.failing.fetch_add(1, Ordering::Relaxed);
        let mut remade = slot.remade.lock().unwrap_or_else(|p| p.into_inner());
        if remade.elapsed() < REMAKE_BACKOFF {
            return;
        }
        match connection(&self.client, &self.settings) {
            Ok(conn) => {
                *slot.conn.lock().unwrap_or_else(|p| p.into_inner()) = conn;
                *remade = Instant::now();
                // Tried again by the next command that comes its way.
                slot.failing.store(0, Ordering::Relaxed);
                tracing::debug!("redis connection remade after a failure");
            }
            Err(err) => tracing::warn!(error = %err, "redis connection cannot be remade"),
        }
    }
}

fn connection(
    client: &redis::Client,
    settings: &ConnectionManagerConfig,
) -> anyhow::Result<ConnectionManager> {
    ConnectionManager::new_lazy_with_config(client.clone(), settings.clone())
        .map_err(|e| anyhow::anyhow!("redis: {e}"))
}

/// The CA certificates in `path` (PEM): at least one, or the reason there is none.
fn ca_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let pem = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("redis.ca_file: cannot read {}: {e}", path.display()))?;
    let found = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("redis.ca_file: {}: {e}", path.display()))?;
    if found.is_empty() {
        anyhow::bail!(
            "redis.ca_file: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    Ok(pem)
}

/// A cache that other replicas can tell to forget entries.
#[async_trait]
pub trait Invalidate: Send + Sync {
    /// `*` forgets everything; other values are the publisher's and the cache's business.
    async fn invalidate(&self, what: &str);
}

/// The token denylist in Redis, shared by every replica: an entry lives as long as the tokens
/// it refuses would have. A local copy answers for tokens already known to be refused; a token
/// Redis cannot be asked about is refused (503), never let through. One round trip per check:
/// the token id and its subjects' cut-offs in one MGET.
pub struct RedisDenylist {
    redis: Redis,
    local: Mutex<Entries>,
}

impl RedisDenylist {
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            local: Mutex::default(),
        }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn store(&self, key: String, value: i64, until: i64, what: &str) {
        // Kept a little past expiry, for clock skew between replicas.
        let ttl = (until - chrono::Utc::now().timestamp()).max(0) as u64 + 60;
        let key = self.redis.key(&key);
        let stored = self
            .redis
            .run(|mut conn| async move { conn.set_ex::<_, _, ()>(key, value, ttl).await })
            .await;
        if let Err(err) = stored {
            // The revoking service also keeps it in its own store; this replica's copy holds.
            tracing::warn!(error = %err, "{what} not stored in redis");
        }
    }
}

#[async_trait]
impl Denylist for RedisDenylist {
    async fn deny(&self, jti: &str, expires_at: i64) {
        self.local().deny(jti, expires_at);
        self.store(
            format!("deny:{jti}"),
            expires_at,
            expires_at,
            "token revocation",
        )
        .await;
    }

    async fn cut_off(&self, subject: &str, at: i64, until: i64) {
        self.local().cut_off(subject, at, until);
        self.store(format!("cut:{subject}"), at, until, "token cut-off")
            .await;
    }

    async fn refuses(
        &self,
        jti: &str,
        subjects: &[String],
        issued_ms: i64,
    ) -> Result<bool, AppError> {
        if self.refuses_locally(jti, subjects, issued_ms) {
            return Ok(true);
        }
        let keys = self.keys(jti, subjects);
        let found: Vec<Option<i64>> = self
            .redis
            .run(|mut conn| async move { conn.mget(keys).await })
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, "token revocation check failed");
                unavailable()
            })?;
        Ok(self.refuses_from(jti, subjects, issued_ms, &found))
    }

    fn in_redis(&self) -> Option<&RedisDenylist> {
        Some(self)
    }

    fn refuses_locally(&self, jti: &str, subjects: &[String], issued_ms: i64) -> bool {
        self.local().refuses(jti, subjects, issued_ms)
    }
}

/// A revocation that could not be checked refuses the token, retryably.
pub fn unavailable() -> AppError {
    AppError::Unavailable("token revocation cannot be checked right now".into())
}

impl RedisDenylist {
    /// Where the token's revocation and its subjects' cut-offs are kept, in that order.
    pub fn keys(&self, jti: &str, subjects: &[String]) -> Vec<String> {
        let mut keys = vec![self.redis.key(&format!("deny:{jti}"))];
        keys.extend(subjects.iter().map(|s| self.redis.key(&format!("cut:{s}"))));
        keys
    }

    /// The verdict from the values read at `keys` (remembered locally).
    pub fn refuses_from(
        &self,
        jti: &str,
        subjects: &[String],
        issued_ms: i64,
        found: &[Option<i64>],
    ) -> bool {
        let mut local = self.local();
        let horizon = chrono::Utc::now().timestamp() + 3600;
        if let Some(Some(expires_at)) = found.first() {
            local.deny(jti, *expires_at);
        }
        for (subject, at) in subjects.iter().zip(found.iter().skip(1)) {
            if let Some(at) = at {
                // Kept locally for an hour at most: longer than any access token lives.
                local.cut_off(subject, *at, horizon);
            }
        }
        local.refuses(jti, subjects, issued_ms)
    }
}
