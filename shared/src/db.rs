//! Storage: one Diesel connection type over PostgreSQL and SQLite (the backend comes from the
//! URL scheme), an r2d2 pool, embedded migrations per backend, and async helpers that run Diesel
//! work on the blocking pool so the async runtime never waits on I/O.

use std::{
    cell::Cell,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use diesel::migration::MigrationSource;
use diesel::{
    Connection, PgConnection, SqliteConnection, connection::SimpleConnection, r2d2::R2D2Connection,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use prometheus::IntCounter;
use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore};

use crate::error::{AppError, AppResult};

mod json;
pub use json::Json;
pub mod outbox_schema;
pub mod text_column;

/// A connection to either backend; queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Postgres(String),
    /// Path of the database file.
    Sqlite(PathBuf),
}

impl Backend {
    /// `postgres://` / `postgresql://` or `sqlite://<path>` (also `sqlite:<path>`).
    pub fn from_url(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("sqlite URL names no file".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(format!(
            "unknown database scheme `{scheme}`; use postgres:// or sqlite://<path>"
        ))
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }

    /// A short name for metrics: the SQLite file's stem or the PostgreSQL database name.
    fn store_name(&self) -> String {
        match self {
            Self::Sqlite(path) => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Self::Postgres(url) => url
                .rsplit('/')
                .next()
                .and_then(|tail| tail.split('?').next())
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

/// The two migration sets of a service, with identical names.
pub struct Migrations {
    pub postgres: EmbeddedMigrations,
    pub sqlite: EmbeddedMigrations,
}

/// The kernel's own tables (outbox, relay lease, inbox), which every store gets before the
/// service's own migrations run.
pub const KERNEL_MIGRATIONS: Migrations = Migrations {
    postgres: embed_migrations!("migrations/postgres"),
    sqlite: embed_migrations!("migrations/sqlite"),
};

thread_local! {
    /// Set by `Outbox::enqueue` on the thread running a write transaction, so that `Db::write`
    /// wakes the relay after that transaction commits (no call site has to remember).
    static ENQUEUED: Cell<bool> = const { Cell::new(false) };
}

/// Records that the transaction running on this thread wrote an outbox row.
pub(crate) fn note_enqueued() {
    ENQUEUED.with(|e| e.set(true));
}

/// The longest one statement of a pooled PostgreSQL connection may run, and the longest one
/// unit of store work (a read or a write transaction) may run on SQLite.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite virtual-machine instructions between two looks at the clock (well under a
/// millisecond of work: the check costs nothing measurable).
const PROGRESS_STEPS: std::num::NonZeroU32 = std::num::NonZeroU32::new(100_000).unwrap();

thread_local! {
    /// When the SQLite work running on this thread must stop (its progress handler interrupts
    /// it past this instant).
    static SQLITE_DEADLINE: Cell<Option<std::time::Instant>> = const { Cell::new(None) };
}

/// Shortens the bound on the store work running on this thread to `within` from now (SQLite;
/// PostgreSQL bounds each statement with `statement_timeout`). Every read and write starts
/// with [`STATEMENT_TIMEOUT`]; work can only shorten it.
pub fn bound_sqlite_work(within: Duration) {
    let at = std::time::Instant::now() + within;
    SQLITE_DEADLINE.with(|d| d.set(Some(d.get().map_or(at, |was| was.min(at)))));
}

/// Clears this thread's deadline when the work ends, however it ends.
struct Deadline;

impl Drop for Deadline {
    fn drop(&mut self) {
        SQLITE_DEADLINE.with(|d| d.set(None));
    }
}

/// Runs `f` with this thread's SQLite work bounded by [`STATEMENT_TIMEOUT`]. Work that failed
/// after its deadline passed is the timeout's doing (SQLite may already have rolled the
/// transaction back, so the error diesel reports is about the rollback).
fn bounded<T>(f: impl FnOnce() -> AppResult<T>) -> AppResult<T> {
    SQLITE_DEADLINE.with(|d| d.set(Some(std::time::Instant::now() + STATEMENT_TIMEOUT)));
    let _clear = Deadline;
    let out = f();
    let late = SQLITE_DEADLINE.with(|d| d.get().is_some_and(|t| std::time::Instant::now() > t));
    match out {
        Err(err) if late && !matches!(err, AppError::Unavailable(_)) => {
            tracing::warn!(error = %err, "store work interrupted past its deadline");
            Err(crate::error::store_timeout())
        }
        out => out,
    }
}

/// Opens connections for the pool, setting SQLite's pragmas on every one.
#[derive(Debug)]
struct Manager {
    backend: Backend,
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        match &self.backend {
            Backend::Postgres(url) => open_postgres(url)
                .map(DbConnection::Postgres)
                .map_err(diesel::r2d2::Error::ConnectionError),
            Backend::Sqlite(path) => open_pooled_sqlite(path)
                .map(DbConnection::Sqlite)
                .map_err(diesel::r2d2::Error::ConnectionError),
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// Diesel keeps prepared statements per connection, and after five runs PostgreSQL may switch
/// a statement to a generic plan that ignores the bound values; for list queries with filters
/// and text search that plan walks the whole table (measured: 75 ms instead of 3 ms on 130k
/// tickets). Planning each run costs well under a millisecond.
///
/// Every statement of the pool is bounded by `statement_timeout`, so that no request can hold
/// a connection for long (a 503 `store.timeout`); migrations use their own connection.
fn open_postgres(url: &str) -> Result<PgConnection, diesel::ConnectionError> {
    let mut conn = PgConnection::establish(url)?;
    conn.batch_execute(&format!(
        "SET plan_cache_mode = force_custom_plan; SET statement_timeout = {}",
        STATEMENT_TIMEOUT.as_millis()
    ))
    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
    Ok(conn)
}

/// A pooled SQLite connection interrupts work that runs past its thread's deadline (a 503
/// `store.timeout`, as on PostgreSQL), so no request holds the store for long.
fn open_pooled_sqlite(path: &Path) -> Result<SqliteConnection, diesel::ConnectionError> {
    let mut conn = open_sqlite(path)?;
    conn.on_progress(PROGRESS_STEPS, || {
        let late = SQLITE_DEADLINE.with(|d| d.get().is_some_and(|t| std::time::Instant::now() > t));
        match late {
            true => diesel::sqlite::ProgressDecision::Interrupt,
            false => diesel::sqlite::ProgressDecision::Continue,
        }
    });
    Ok(conn)
}

fn open_sqlite(path: &Path) -> Result<SqliteConnection, diesel::ConnectionError> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
    conn.batch_execute(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
    )
    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
    Ok(conn)
}

/// A pooled store. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<Manager>,
    sqlite: bool,
    /// SQLite has one writer at a time; serialising write transactions in-process avoids
    /// `database is locked` failures when a deferred transaction upgrades to a write lock.
    /// Writers wait for it here, holding neither a blocking thread nor a connection.
    write_lock: Arc<Mutex<()>>,
    /// Store work in flight (one permit per pooled connection): callers queue here, not on
    /// the blocking pool, and give up with a 503 after `queue_timeout`.
    permits: Arc<Semaphore>,
    queue_timeout: Duration,
    /// Notified after a committed transaction that enqueued events (the relay waits on it).
    committed_events: Arc<Notify>,
    writes: IntCounter,
}

impl Db {
    /// Connects (creating an SQLite file and its directory when needed) and checks one connection.
    pub fn connect(url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let backend = Backend::from_url(url).map_err(anyhow::Error::msg)?;
        if let Backend::Sqlite(path) = &backend {
            ensure_parent_writable(path)?;
        }
        let sqlite = backend.is_sqlite();
        let writes = crate::telemetry::metrics()
            .store_writes
            .with_label_values(&[&backend.store_name()]);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .connection_timeout(Duration::from_secs(5))
            .build(Manager { backend })
            .context("cannot connect to the database")?;
        Ok(Self {
            pool,
            sqlite,
            write_lock: Arc::new(Mutex::new(())),
            permits: Arc::new(Semaphore::new(pool_size.max(1) as usize)),
            queue_timeout: Duration::from_secs(5),
            committed_events: Arc::new(Notify::new()),
            writes,
        })
    }

    /// How long a caller waits for its turn before the store answers 503 (default 5 s).
    pub fn with_queue_timeout(mut self, timeout: Duration) -> Self {
        self.queue_timeout = timeout;
        self
    }

    /// A turn at the store, or 503 when none comes within the queue timeout.
    async fn turn(&self) -> AppResult<OwnedSemaphorePermit> {
        match tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(busy()),
        }
    }

    /// Applies the kernel's pending migrations, then the service's; returns how many ran.
    /// On PostgreSQL it holds an advisory lock meanwhile, so that replicas started with
    /// `--migrate` and a migration Job running at once apply each migration once.
    pub fn migrate(url: &str, migrations: Migrations) -> anyhow::Result<usize> {
        let backend = Backend::from_url(url).map_err(anyhow::Error::msg)?;
        let applied = match backend {
            Backend::Postgres(url) => {
                let mut conn = migration_connection(&url)?;
                run_both(&mut conn, KERNEL_MIGRATIONS.postgres, migrations.postgres)
            }
            Backend::Sqlite(path) => {
                ensure_parent_writable(&path)?;
                let mut conn = open_sqlite(&path).context("cannot open sqlite database")?;
                run_both(&mut conn, KERNEL_MIGRATIONS.sqlite, migrations.sqlite)
            }
        };
        applied.map_err(|e| anyhow::anyhow!("migration failed: {e}"))
    }

    /// How many of the kernel's and the service's migrations the store has not applied yet.
    /// Read-only: it creates nothing (not even diesel's bookkeeping table) and takes no lock,
    /// so it never waits for a migration in progress and needs no DDL rights.
    pub fn pending(url: &str, migrations: &Migrations) -> anyhow::Result<usize> {
        let backend = Backend::from_url(url).map_err(anyhow::Error::msg)?;
        match backend {
            Backend::Postgres(url) => {
                let mut conn =
                    PgConnection::establish(&url).context("cannot connect to postgres")?;
                let applied = applied_versions(
                    &mut conn,
                    "SELECT count(*) AS n FROM pg_catalog.pg_tables \
                     WHERE schemaname = current_schema() AND tablename = '__diesel_schema_migrations'",
                )?;
                count_missing::<diesel::pg::Pg>(
                    &applied,
                    &[&KERNEL_MIGRATIONS.postgres, &migrations.postgres],
                )
            }
            Backend::Sqlite(path) => {
                let applied = match path.exists() {
                    true => {
                        let mut conn = open_sqlite(&path).context("cannot open sqlite database")?;
                        applied_versions(
                            &mut conn,
                            "SELECT count(*) AS n FROM sqlite_master \
                             WHERE type = 'table' AND name = '__diesel_schema_migrations'",
                        )?
                    }
                    false => Vec::new(),
                };
                count_missing::<diesel::sqlite::Sqlite>(
                    &applied,
                    &[&KERNEL_MIGRATIONS.sqlite, &migrations.sqlite],
                )
            }
        }
    }

    /// Resolves after a transaction that enqueued events has committed (in this process).
    pub(crate) async fn events_committed(&self) {
        self.committed_events.notified().await
    }

    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// Runs `f` on a pooled connection on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> AppResult<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let trace = crate::telemetry::current_traceparent();
        let permit = self.turn().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut conn = pool.get()?;
            crate::telemetry::with_traceparent_sync(trace, || bounded(|| f(&mut conn)))
        })
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("store task failed: {e}")))?
    }

    /// Runs `f` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    pub async fn write<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> AppResult<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let trace = crate::telemetry::current_traceparent();
        let (committed_events, writes) = (self.committed_events.clone(), self.writes.clone());
        // Writers queue for SQLite's one write slot before taking a turn, so queued writers
        // never hold the turns (and connections) that readers are waiting for.
        let guard = match self.sqlite {
            true => Some(
                tokio::time::timeout(self.queue_timeout, self.write_lock.clone().lock_owned())
                    .await
                    .map_err(|_| busy())?,
            ),
            false => None,
        };
        let permit = self.turn().await?;
        tokio::task::spawn_blocking(move || {
            let (_guard, _permit) = (guard, permit);
            let mut conn = pool.get()?;
            ENQUEUED.with(|e| e.set(false));
            let result = crate::telemetry::with_traceparent_sync(trace, || {
                bounded(|| (*conn).transaction(f))
            });
            let enqueued = ENQUEUED.with(|e| e.replace(false));
            if result.is_ok() {
                writes.inc();
                if enqueued {
                    committed_events.notify_one();
                }
            }
            result
        })
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("store task failed: {e}")))?
    }

    /// Readiness check: one round trip to the store.
    pub async fn ping(&self) -> AppResult<()> {
        self.read(|conn| conn.batch_execute("SELECT 1").map_err(AppError::from))
            .await
    }
}

/// Runs the kernel's pending migrations, then the service's, on one connection.
fn run_both<DB, C>(
    conn: &mut C,
    kernel: EmbeddedMigrations,
    service: EmbeddedMigrations,
) -> diesel::migration::Result<usize>
where
    DB: diesel::backend::Backend,
    C: MigrationHarness<DB>,
{
    let kernel = conn.run_pending_migrations(kernel)?.len();
    Ok(kernel + conn.run_pending_migrations(service)?.len())
}

/// The versions diesel recorded as applied; none when its table does not exist
/// (`exists` counts that table).
fn applied_versions<C>(conn: &mut C, exists: &str) -> anyhow::Result<Vec<String>>
where
    C: Connection,
    C::Backend: diesel::backend::Backend,
    diesel::query_builder::SqlQuery: diesel::query_dsl::LoadQuery<'static, C, Count>
        + diesel::query_dsl::LoadQuery<'static, C, Version>,
{
    use diesel::RunQueryDsl;
    let tables: Vec<Count> = diesel::sql_query(exists)
        .load(conn)
        .context("cannot read the store's tables")?;
    if tables.first().is_none_or(|t| t.n == 0) {
        return Ok(Vec::new());
    }
    let versions: Vec<Version> =
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
            .load(conn)
            .context("cannot read the applied migrations")?;
    Ok(versions.into_iter().map(|v| v.version).collect())
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// How many migrations of `sets` are not among `applied`.
fn count_missing<DB: diesel::backend::Backend>(
    applied: &[String],
    sets: &[&EmbeddedMigrations],
) -> anyhow::Result<usize>
where
    EmbeddedMigrations: MigrationSource<DB>,
{
    let mut missing = 0;
    for set in sets {
        for migration in MigrationSource::<DB>::migrations(*set)
            .map_err(|e| anyhow::anyhow!("cannot list the migrations: {e}"))?
        {
            let version = migration.name().version().to_string();
            missing += usize::from(!applied.contains(&version));
        }
    }
    Ok(missing)
}

/// A PostgreSQL connection holding the migration lock (a session advisory lock, released
/// when the connection closes).
fn migration_connection(url: &str) -> anyhow::Result<PgConnection> {
    /// The lock's key: "agora:migrate" read as eight bytes.
    const MIGRATION_LOCK: i64 = i64::from_be_bytes(*b"agoramig");
    let mut conn = PgConnection::establish(url).context("cannot connect to postgres")?;
    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .context("cannot take the migration lock")?;
    Ok(conn)
}

fn busy() -> AppError {
    AppError::Unavailable("the store is busy, retry shortly".into()).with_code("store.busy")
}

fn ensure_parent_writable(path: &Path) -> anyhow::Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let probe = dir.join(format!(".agora-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("data directory {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Makes concurrent transactions that lock the same `key` take turns until this one ends: on
/// PostgreSQL a transaction-scoped advisory lock on the key's hash; SQLite has one writer at a
/// time anyway. Taking it twice in one transaction is fine.
pub fn xact_lock(conn: &mut DbConnection, key: &str) -> AppResult<()> {
    if let DbConnection::Postgres(pg) = conn {
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind::<diesel::sql_types::Text, _>(key)
            .execute(pg)?;
    }
    Ok(())
}

/// Current UTC time as stored (`TIMESTAMP` without zone, microsecond precision).
pub fn now() -> chrono::NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    // PostgreSQL keeps microseconds; truncate so values read back compare equal.
    now.with_nanosecond_truncated()
}

trait TruncateNanos {
    fn with_nanosecond_truncated(self) -> Self;
}

impl TruncateNanos for chrono::NaiveDateTime {
    fn with_nanosecond_truncated(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(self.nanosecond() / 1000 * 1000)
            .unwrap_or(self)
    }
}

/// Converts a stored timestamp to UTC.
pub fn utc(ts: chrono::NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    ts.and_utc()
}

/// A stored timestamp as events carry it: RFC 3339 in UTC with microseconds and a `Z`.
pub fn rfc3339(ts: chrono::NaiveDateTime) -> String {
    utc(ts).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_url() {
        assert!(matches!(
            Backend::from_url("postgres://u@h/db"),
            Ok(Backend::Postgres(_))
        ));
        assert_eq!(
            Backend::from_url("sqlite://./data/auth.db"),
            Ok(Backend::Sqlite(PathBuf::from("./data/auth.db")))
        );
        assert!(
            Backend::from_url("mysql://x")
                .unwrap_err()
                .contains("unknown database scheme `mysql`")
        );
        assert!(Backend::from_url("sqlite://").is_err());
    }

    #[test]
    fn unwritable_directory_is_reported() {
        let err = Db::connect("sqlite:///proc/agora/x.db", 1)
            .err()
            .expect("must fail");
        assert!(format!("{err:#}").contains("/proc/agora"), "{err:#}");
    }

    /// A store with `pool` connections whose callers give up after 200 ms in the queue.
    fn small_store(pool: u32) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let db = Db::connect(&url, pool)
            .unwrap()
            .with_queue_timeout(Duration::from_millis(200));
        (dir, db)
    }

    /// Starts store work that holds its connection until `release` is sent.
    fn hold(
        db: &Db,
        write: bool,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<AppResult<()>>,
    ) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let db = db.clone();
        let task = tokio::spawn(async move {
            let work = move |_: &mut DbConnection| {
                let _ = wait.recv();
                Ok(())
            };
            if write {
                db.write(work).await
            } else {
                db.read(work).await
            }
        });
        (release, task)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_beyond_the_pool_wait_then_get_a_503() {
        let (_dir, db) = small_store(1);
        let (release, held) = hold(&db, false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let err = db.read(|_| Ok(())).await.unwrap_err();
        assert_eq!(err.status().as_u16(), 503);
        assert_eq!(err.problem().code, "store.busy");
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        db.read(|_| Ok(()))
            .await
            .expect("served once the turn is free");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_are_served_while_writers_queue() {
        let (_dir, db) = small_store(2);
        // One writer holds SQLite's write slot; five more queue behind it.
        let (release, first) = hold(&db, true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued: Vec<_> = (0..5)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.with_queue_timeout(Duration::from_secs(30))
                        .write(|_| Ok(()))
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Queued writers hold no connection: a reader gets the free one at once.
        db.read(|conn| conn.batch_execute("SELECT 1").map_err(AppError::from))
            .await
            .expect("a reader is not starved by queued writers");
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        for writer in queued {
            writer.await.unwrap().unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_sets_round_trip_and_a_corrupt_value_is_an_error() {
        use crate::http::Role;
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Stored {
            #[diesel(sql_type = diesel::sql_types::Text)]
            role: Role,
        }
        let (_dir, db) = small_store(1);
        let roles = db
            .write(|conn| {
                conn.batch_execute("CREATE TABLE t (n INTEGER, role TEXT NOT NULL)")?;
                diesel::sql_query("INSERT INTO t VALUES (1, ?)")
                    .bind::<diesel::sql_types::Text, _>(Role::TenantAdmin)
                    .execute(conn)?;
                let rows: Vec<Stored> = diesel::sql_query("SELECT role FROM t").load(conn)?;
                Ok(rows.into_iter().map(|r| r.role).collect::<Vec<_>>())
            })
            .await
            .unwrap();
        assert_eq!(roles, [Role::TenantAdmin]);
        let err = db
            .write(|conn| {
                conn.batch_execute("UPDATE t SET role = 'ROOT'")?;
                let rows: Vec<Stored> = diesel::sql_query("SELECT role FROM t").load(conn)?;
                Ok(rows.len())
            })
            .await
            .expect_err("a role outside the set is never read as some default");
        assert_eq!(err.status().as_u16(), 500);
        let AppError::Internal(cause) = &err else {
            panic!("{err:?}")
        };
        assert!(
            format!("{cause:#}").contains("corrupt stored Role: \"ROOT\""),
            "{cause:#}"
        );
    }
}
