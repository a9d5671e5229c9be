//! A store made by the release before the kernel owned the outbox upgrades in place with
//! `agora migrate`: its rows and its unsent events survive, and the relay publishes them.

use std::{sync::Arc, time::Duration};

use diesel::{
    Connection, PgConnection, RunQueryDsl, SqliteConnection, connection::SimpleConnection,
};
use diesel_migrations::MigrationHarness;
use tokio_util::sync::CancellationToken;

use agora_shared::{
    bus::{EventBus, InProcessBus, Outbox, run_relay},
    db::Db,
    testing::TestDb,
};

/// The kernel tables as the services' own migrations created them before (auth's init made
/// the outbox and inbox, a second migration `2026-11-22-000001` the relay lease).
const LEGACY: &str = "
CREATE TABLE inbox (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    processed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE TABLE outbox (
    id {id},
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    event_key TEXT NOT NULL,
    event_type TEXT NOT NULL,
    source TEXT NOT NULL,
    tenant_id TEXT,
    traceparent TEXT,
    payload {blob} NOT NULL,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE sent_at IS NULL;
CREATE TABLE outbox_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
INSERT INTO __diesel_schema_migrations (version) VALUES ('20261122000001');
INSERT INTO tenants (id, name, name_key, plan, status, created_at, updated_at)
    VALUES ('t-old', 'Old Tenant', 'old tenant', 'FREE', 'ACTIVE', '2026-11-22 10:00:00', '2026-11-22 10:00:00');
INSERT INTO outbox (event_id, topic, event_key, event_type, source, tenant_id, payload, created_at, sent_at)
    VALUES ('ev-sent', 'agora.auth.events', 't-old', 'tenant.created', 'agora/auth', 't-old', {payload}, '2026-11-22 10:00:00', '2026-11-22 10:00:01');
INSERT INTO outbox (event_id, topic, event_key, event_type, source, tenant_id, payload, created_at)
    VALUES ('ev-unsent', 'agora.auth.events', 't-old', 'tenant.updated', 'agora/auth', 't-old', {payload}, '2026-11-22 10:05:00');
";

/// Builds the previous release's auth store: today's auth migrations (whose tables are the
/// same but for the kernel's) plus the kernel tables as they were made then, with data.
fn previous_release_store(db: &TestDb) {
    let postgres = db.url.starts_with("postgres");
    let sql = LEGACY
        .replace(
            "{id}",
            if postgres {
                "BIGSERIAL PRIMARY KEY"
            } else {
                "INTEGER PRIMARY KEY AUTOINCREMENT"
            },
        )
        .replace("{blob}", if postgres { "BYTEA" } else { "BLOB" })
        .replace(
            "{payload}",
            if postgres {
                "'\\x0102'::bytea"
            } else {
                "X'0102'"
            },
        );
    if postgres {
        let mut conn = PgConnection::establish(&db.url).unwrap();
        conn.run_pending_migrations(agora_auth::MIGRATIONS.postgres)
            .unwrap();
        conn.batch_execute(&sql).unwrap();
    } else {
        let path = db.url.trim_start_matches("sqlite://");
        let mut conn = SqliteConnection::establish(path).unwrap();
        conn.run_pending_migrations(agora_auth::MIGRATIONS.sqlite)
            .unwrap();
        conn.batch_execute(&sql).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_the_previous_release_upgrades_in_place() {
    for db in TestDb::all() {
        previous_release_store(&db);
        let out = crate::agora()
            .args(["migrate", "--service", "auth"])
            .env("AGORA_MODE", "distributed")
            .env("AGORA_AUTH__DATABASE_URL", &db.url)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {text}", db.backend);
        assert_eq!(
            text, "auth: 1 migration(s) applied\n",
            "{}: only the kernel's",
            db.backend
        );

        let store = Db::connect(&db.url, 2).unwrap();
        let tenants: i64 = store
            .read(|conn| {
                #[derive(diesel::QueryableByName)]
                struct Count {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                let row: Count =
                    diesel::sql_query("SELECT COUNT(*) AS n FROM tenants WHERE id = 't-old'")
                        .get_result(conn)?;
                Ok(row.n)
            })
            .await
            .unwrap();
        assert_eq!(tenants, 1, "{}: rows kept", db.backend);
        assert_eq!(
            Outbox::pending(&store).await.unwrap(),
            1,
            "{}: unsent event kept",
            db.backend
        );

        // The relay publishes the event the previous release left behind.
        let bus = InProcessBus::new();
        let mut sub = bus
            .subscribe("agora.auth.events", "upgrade-test")
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let relay = tokio::spawn(run_relay(
            store.clone(),
            Arc::new(bus.clone()),
            stop.clone(),
        ));
        let delivery = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("the old event is published")
            .unwrap();
        assert_eq!(delivery.event.id, "ev-unsent", "{}", db.backend);
        assert_eq!(delivery.event.data, vec![1, 2]);
        stop.cancel();
        relay.await.unwrap();
        assert_eq!(Outbox::pending(&store).await.unwrap(), 0, "{}", db.backend);
    }
}
