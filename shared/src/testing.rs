//! Test support: fresh stores for each test. SQLite always; PostgreSQL when
//! `AGORA_TEST_DATABASE_URL` names a server (a new database is created per store and dropped
//! afterwards). With `AGORA_TEST_REQUIRE_INFRA=1` a missing server fails instead of skipping.

use std::sync::Arc;

pub mod load;

use diesel::{Connection, PgConnection, RunQueryDsl};

use crate::{
    bus::InProcessBus,
    config::{CommonConfig, ConfigSource},
    db::{Db, Migrations},
    service::ServiceContext,
    tokens::MemoryDenylist,
};

/// What a service under test runs with: configuration from `toml` (set addresses to port 0),
/// a real in-process bus (returned too, to watch events), an in-memory denylist, and
/// migrations applied at start.
pub fn service_context(toml: &str) -> (ServiceContext, InProcessBus) {
    let bus = InProcessBus::new();
    let ctx = ServiceContext {
        common: CommonConfig::default(),
        config: ConfigSource::from_toml(toml),
        bus: Arc::new(bus.clone()),
        denylist: Arc::new(MemoryDenylist::default()),
        migrate_on_start: true,
        redis: None,
        discovered: Vec::new(),
        provided: Default::default(),
        local_invalidations: Default::default(),
        auth_peer: ConfigSource::from_toml(toml)
            .section::<crate::config::AuthPeerConfig>("auth_peer")
            .expect("valid [auth_peer]")
            .with_process_secret(),
    };
    (ctx, bus)
}

/// A fresh, empty store that is removed when dropped.
pub struct TestDb {
    pub url: String,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A new SQLite file in a temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        Self {
            url,
            backend: "sqlite",
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A new database on the server named by `AGORA_TEST_DATABASE_URL`, or `None` (reported as
    /// skipped; a failure when infrastructure is required).
    pub fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var("AGORA_TEST_DATABASE_URL") else {
            skip_or_fail("postgres", "AGORA_TEST_DATABASE_URL is not set");
            return None;
        };
        Some(Self::postgres_at(&admin_url))
    }

    /// A new database on the server at `admin_url` (any database URL of that server).
    pub fn postgres_at(admin_url: &str) -> Self {
        let admin_url = admin_url.to_owned();
        let name = format!("agora_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("the test PostgreSQL server does not answer: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("create test database");
        let url = with_database(&admin_url, &name);
        Self {
            url,
            backend: "postgres",
            _dir: None,
            pg: Some((admin_url, name)),
        }
    }

    /// This store with `migrations` applied, behind a pool of `pool_size` connections.
    pub async fn migrated(&self, migrations: Migrations, pool_size: u32) -> Db {
        let url = self.url.clone();
        tokio::task::spawn_blocking(move || Db::migrate(&url, migrations))
            .await
            .expect("migrations ran")
            .expect("migrations applied");
        Db::connect(&self.url, pool_size).expect("store connects")
    }

    /// SQLite, plus PostgreSQL when configured.
    pub fn all() -> Vec<Self> {
        let mut dbs = vec![Self::sqlite()];
        dbs.extend(Self::postgres());
        dbs
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.pg
            && let Ok(mut conn) = PgConnection::establish(admin)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

/// `AGORA_TEST_REDIS_URL`, or `None` (reported as skipped; a failure when infrastructure is
/// required).
fn test_redis_url() -> Option<String> {
    let url = std::env::var("AGORA_TEST_REDIS_URL").ok();
    if url.is_none() {
        skip_or_fail("redis", "AGORA_TEST_REDIS_URL is not set");
    }
    url
}

/// A Redis on the server named by `AGORA_TEST_REDIS_URL`, under a key prefix of its own (so
/// tests never see each other's keys), or `None` (skipped, or failing under
/// `AGORA_TEST_REQUIRE_INFRA`).
pub fn redis() -> Option<crate::redis::Redis> {
    Some(redis_at(&test_redis_url()?))
}

/// The test Redis with room for a loaded machine: round trips may take 5 s and the rate
/// limiter fails closed, so exact counts never depend on the 250 ms default timeout (past it
/// the failure policy, not Redis, would decide).
pub fn patient_redis() -> Option<crate::redis::Redis> {
    Some(redis_tuned(&test_redis_url()?, |config| {
        config.timeout_ms = 5_000;
        config.rate_limit_failure = crate::redis::FailurePolicy::Closed;
    }))
}

/// A Redis at `url` under a fresh key prefix (a dead address gives a Redis that never answers).
pub fn redis_at(url: &str) -> crate::redis::Redis {
    redis_tuned(url, |_| {})
}

fn redis_tuned(
    url: &str,
    tune: impl FnOnce(&mut crate::redis::RedisConfig),
) -> crate::redis::Redis {
    let mut config = crate::redis::RedisConfig {
        url: Some(crate::config::Secret::new(url)),
        key_prefix: format!("agora-test:{}:", uuid::Uuid::now_v7().simple()),
        ..Default::default()
    };
    tune(&mut config);
    crate::redis::Redis::connect(&config)
        .expect("redis pool")
        .expect("a configured url")
}

/// A Kafka-protocol broker of the test's own (tansu, in-memory storage) that the test can stop
/// and start again, for fault tests. Found as `AGORA_TEST_TANSU`, on `PATH`, or in
/// `~/.cargo/bin`; `None` (skipped, or a failure when infrastructure is required) without it.
pub struct Broker {
    pub port: u16,
    binary: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl Broker {
    pub fn start() -> Option<Self> {
        let candidates = [
            std::env::var("AGORA_TEST_TANSU")
                .ok()
                .map(std::path::PathBuf::from),
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join("tansu"))
                    .find(|p| p.is_file())
            }),
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo/bin/tansu")),
        ];
        let Some(binary) = candidates.into_iter().flatten().find(|p| p.is_file()) else {
            skip_or_fail(
                "kafka fault",
                "no tansu binary (AGORA_TEST_TANSU, PATH, ~/.cargo/bin)",
            );
            return None;
        };
        let port = unclaimed_port();
        let mut broker = Self {
            port,
            binary,
            child: None,
        };
        broker.resume();
        Some(broker)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker (its in-memory data is gone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) and waits until it accepts connections.
    pub fn resume(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = std::process::Command::new(&self.binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("tansu did not listen on {}", self.port);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether CI demands every real server be present.
pub fn infra_required() -> bool {
    std::env::var("AGORA_TEST_REQUIRE_INFRA").is_ok_and(|v| v == "1" || v == "true")
}

/// Reports a suite as skipped, or panics when infrastructure is required.
pub fn skip_or_fail(what: &str, why: &str) {
    if infra_required() {
        panic!("{what} is required (AGORA_TEST_REQUIRE_INFRA=1) but {why}");
    }
    // Written to the process's stderr itself, not through `eprintln!`, which the test
    // harness captures and shows only for failing tests: a skip must be seen in a normal run.
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test}: no {what} ({why})"
    );
}

/// Sending test requests: a transport failure is a test failure, not a case to handle.
pub trait Call {
    /// Sends the request.
    fn call(self) -> impl std::future::Future<Output = reqwest::Response> + Send;
    /// Sends the request and reads a JSON body.
    fn value(self) -> impl std::future::Future<Output = serde_json::Value> + Send;
}

impl Call for reqwest::RequestBuilder {
    async fn call(self) -> reqwest::Response {
        self.send().await.expect("request reaches the server")
    }

    async fn value(self) -> serde_json::Value {
        self.call().await.json().await.expect("a JSON body")
    }
}

/// Asserts an RFC 9457 problem+json response with `status`; returns its body.
pub async fn problem(resp: reqwest::Response, status: u16) -> serde_json::Value {
    let got = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.expect("a response body");
    assert_eq!(got, status, "status (body: {text})");
    assert_eq!(content_type, "application/problem+json", "content type");
    let body: serde_json::Value = serde_json::from_str(&text).expect("problem json");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    body
}

/// Makes a fresh store of the backend under test (what [`on_sqlite_and_postgres!`] hands each
/// test; a test may make several, one per service).
pub type Store = fn() -> TestDb;

/// Runs each `async fn name(store: Store)` of the calling module once on SQLite and
/// once on PostgreSQL (skipped, or failed under `AGORA_TEST_REQUIRE_INFRA`, without
/// `AGORA_TEST_DATABASE_URL`): `agora_shared::on_sqlite_and_postgres!(a, b);`.
#[macro_export]
macro_rules! on_sqlite_and_postgres {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::TestDb::sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if std::env::var("AGORA_TEST_DATABASE_URL").is_err() {
                        $crate::testing::skip_or_fail("postgres", "AGORA_TEST_DATABASE_URL is not set");
                        return;
                    }
                    super::$name(|| $crate::testing::TestDb::postgres().expect("postgres")).await
                }
            )*
        }
    };
}

/// A loopback port nothing listens on now, drawn at random from below the kernel's ephemeral
/// range. The servers tests bind to port 0 get ports from that range, so none of them can take
/// this one meanwhile (as happened with ports found by binding port 0 and releasing them): for
/// a process the test starts, which binds the port itself, or an address that must refuse
/// connections.
pub fn unclaimed_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let range = 10_000..low.max(10_001);
    loop {
        // std's hasher keys are random per instance: a random port each time.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let port = range.start + (random % u64::from(range.end - range.start)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_name() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
