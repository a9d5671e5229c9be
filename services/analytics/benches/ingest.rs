//! Prints analytics' ingest rate (ticket events through the in-process bus into facts and
//! rollups, each with its inbox row; the events already waiting share a transaction), first
//! one event at a time and set-based per batch over the same events, then set-based over all
//! of them, and the query engine's latency (p50/p99) over the resulting store.
//!
//! `cargo bench -p agora-analytics --bench ingest`. `AGORA_BENCH_EVENTS` (1,000,000): four
//! events per ticket (created, assigned, started, completed) over 365 days and 10 tenants;
//! `AGORA_BENCH_COMPARED_EVENTS` (100,000) for the comparison. SQLite in a temp dir;
//! `AGORA_BENCH_DATABASE_URL=postgres://...` for PostgreSQL.

use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use prost::Message;
use tokio_util::sync::CancellationToken;

use agora_analytics::query;
use agora_proto::{events::v1 as ev, tickets::v1 as pb};
use agora_shared::{
    bus::{Event, EventBus, InProcessBus, run_batch_consumer, run_consumer},
    db::{Db, outbox_schema::inbox},
    testing::{TestDb, load},
};

const TENANTS: usize = 10;
const ZONES: [&str; 5] = ["Northern", "Southern", "Central", "East Coast", "Borneo"];
const CATEGORIES: [&str; 5] = [
    "FIBER_INSTALLATION",
    "MAINTENANCE",
    "REPAIR",
    "INSPECTION",
    "EMERGENCY",
];
const PRIORITIES: [&str; 4] = ["URGENT", "HIGH", "MEDIUM", "LOW"];
const TEAMS: [&str; 4] = ["team-a", "team-b", "team-c", "team-d"];

fn store() -> TestDb {
    match std::env::var("AGORA_BENCH_DATABASE_URL") {
        Ok(admin) => TestDb::postgres_at(&admin),
        Err(_) => TestDb::sqlite(),
    }
}

fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The four events of ticket `i`.
fn ticket_events(i: usize, now: NaiveDateTime) -> Vec<Event> {
    let tenant = format!("tenant-{}", i % TENANTS);
    let id = format!("ticket-{i:08}");
    let created = now - chrono::Duration::minutes(((i * 7919) % (365 * 24 * 60)) as i64 + 600);
    let priority = PRIORITIES[i % 4];
    let due = created + chrono::Duration::hours([4, 8, 24, 72][i % 4]);
    let assigned = created + chrono::Duration::minutes((i % 300) as i64 + 10);
    let started = assigned + chrono::Duration::minutes(30);
    let done = started + chrono::Duration::minutes((i % 4000) as i64 + 5);
    let team = TEAMS[(i / 3) % 4];
    let ticket = |at: NaiveDateTime,
                  version: i64,
                  status: &str,
                  team: &str,
                  completed: Option<NaiveDateTime>| pb::Ticket {
        id: id.clone(),
        tenant_id: tenant.clone(),
        number: format!("CTT-{i:06}"),
        category: CATEGORIES[(i / 7) % 5].into(),
        priority: priority.into(),
        status: status.into(),
        zone: ZONES[(i / 11) % 5].into(),
        team_id: team.into(),
        due_at: rfc3339(due),
        sla_status: if completed.unwrap_or(at) > due {
            "BREACHED"
        } else {
            "ON_TIME"
        }
        .into(),
        completed_at: completed.map(rfc3339).unwrap_or_default(),
        created_at: rfc3339(created),
        updated_at: rfc3339(at),
        version,
        ..Default::default()
    };
    let event = |kind: &str, at: NaiveDateTime, data: Vec<u8>| Event {
        id: uuid::Uuid::now_v7().to_string(),
        source: "agora/tickets".into(),
        event_type: format!("agora.tickets.ticket.{kind}"),
        time: at.and_utc(),
        tenant_id: Some(tenant.clone()),
        traceparent: None,
        key: id.clone(),
        data,
    };
    vec![
        event(
            "created",
            created,
            ev::TicketCreated {
                ticket: Some(ticket(created, 1, "OPEN", "", None)),
                actor_id: "u".into(),
            }
            .encode_to_vec(),
        ),
        event(
            "assigned",
            assigned,
            ev::TicketAssigned {
                ticket: Some(ticket(assigned, 2, "OPEN", team, None)),
                team_id: team.into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        event(
            "status_changed",
            started,
            ev::TicketStatusChanged {
                ticket: Some(ticket(started, 3, "IN_PROGRESS", team, None)),
                from_status: "OPEN".into(),
                to_status: "IN_PROGRESS".into(),
                actor_id: "u".into(),
            }
            .encode_to_vec(),
        ),
        event(
            "status_changed",
            done,
            ev::TicketStatusChanged {
                ticket: Some(ticket(done, 4, "COMPLETED", team, Some(done))),
                from_status: "IN_PROGRESS".into(),
                to_status: "COMPLETED".into(),
                actor_id: "u".into(),
            }
            .encode_to_vec(),
        ),
    ]
}

async fn handled(db: &Db) -> i64 {
    db.read(|conn| Ok(inbox::table.count().get_result::<i64>(conn)?))
        .await
        .unwrap()
}

fn queries() -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    vec![
        (
            "created per day, 30d",
            json!({"metrics": ["created"], "date_range": "30d", "dimensions": ["time:day"]}),
        ),
        (
            "per team: completed, mttc, compliance, 12mo",
            json!({"metrics": ["completed", "mean_time_to_complete", "sla_compliance"], "date_range": "12mo", "dimensions": ["team"]}),
        ),
        (
            "per zone x category, or-filter, 12mo",
            json!({"metrics": ["created", "breached"], "date_range": "12mo", "dimensions": ["zone", "category"],
            "filters": [["or", [["is", "priority", ["URGENT"]], ["contains", "zone", ["ern"]]]]]}),
        ),
        (
            "created per week, 12mo",
            json!({"metrics": ["created"], "date_range": "12mo", "dimensions": ["time:week"]}),
        ),
        (
            "open, overdue by status (facts), all",
            json!({"metrics": ["tickets", "open", "overdue"], "date_range": "all", "dimensions": ["status"]}),
        ),
    ]
}

/// Ingests the events of `tickets` tickets into a fresh store, one handler call per event
/// (each in a savepoint) or set-based per batch; prints and returns the store.
async fn ingest(tickets: usize, batched: bool) -> (TestDb, Db) {
    let test_db = store();
    let db = test_db.migrated(agora_analytics::MIGRATIONS, 8).await;

    // The in-process bus keeps the newest 100,000 events: publishing stays at most 50,000
    // ahead of the consumer.
    let bus = InProcessBus::new();
    let now = Utc::now().naive_utc();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let (bus_arc, topic, group) = (
        std::sync::Arc::new(bus.clone()),
        "agora.tickets.events".to_owned(),
        "analytics".to_owned(),
    );
    let handler = agora_analytics::ingest::handler();
    let consumer = if batched {
        tokio::spawn(run_batch_consumer(
            bus_arc,
            db.clone(),
            topic,
            group,
            handler,
            agora_analytics::ingest::batch_handler(),
            shutdown.clone(),
        ))
    } else {
        tokio::spawn(run_consumer(
            bus_arc,
            db.clone(),
            topic,
            group,
            handler,
            shutdown.clone(),
        ))
    };
    let total = (tickets * 4) as i64;
    let mut last_report = Instant::now();
    let mut last_analyze = Instant::now();
    let mut published = 0i64;
    let mut next = 0;
    loop {
        let seen = handled(&db).await;
        if seen >= total {
            break;
        }
        // What autovacuum does on a PostgreSQL that runs it: fresh statistics, after which
        // cached plans made on the empty tables are made again. (A PostgreSQL with autovacuum
        // off keeps a plan chosen for an empty inbox, a scan, for as long as the connection.)
        if !db.is_sqlite() && last_analyze.elapsed() > Duration::from_secs(10) {
            db.write(|conn| {
                agora_analytics::store::sql::Sql::new(
                    "ANALYZE inbox, ticket_facts, rollups, activities",
                )
                .execute(conn)?;
                Ok(())
            })
            .await
            .expect("analyze");
            last_analyze = Instant::now();
        }
        while next < tickets && published - seen < 50_000 {
            for e in ticket_events(next, now) {
                bus.publish("agora.tickets.events", &e).await.unwrap();
                published += 1;
            }
            next += 1;
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            println!(
                "  {seen} events after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        // Counting a million inbox rows is a scan: polled often, it would take the CPU the
        // consumer is being measured on.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let took = started.elapsed();
    shutdown.cancel();
    let _ = consumer.await;
    let how = if batched {
        "set-based per batch"
    } else {
        "one event at a time"
    };
    println!(
        "{:<44} {:>10.0}/s   ({total} events in {:.1} s)",
        format!("ingest ({how})"),
        total as f64 / took.as_secs_f64(),
        took.as_secs_f64()
    );
    (test_db, db)
}

#[tokio::main]
async fn main() {
    let events: usize = std::env::var("AGORA_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // The one-at-a-time reference runs on the first events only (it is the slow one).
    let compared: usize = std::env::var("AGORA_BENCH_COMPARED_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
        .min(events);
    let backend = match std::env::var("AGORA_BENCH_DATABASE_URL") {
        Ok(_) => "PostgreSQL",
        Err(_) => "SQLite",
    };
    println!(
        "analytics ingest: {events} events ({} tickets, {TENANTS} tenants, 365 days), {backend}; \
         the first {compared} also one event at a time",
        events / 4
    );
    drop(ingest(compared / 4, false).await);
    drop(ingest(compared / 4, true).await);
    let (_test_db, db) = ingest(events / 4, true).await;

    let today = Utc::now().date_naive();
    for (name, body) in queries() {
        let q = query::parse(&body, today).unwrap();
        let phase = Duration::from_secs(5);
        let lat = load::run(phase, 4, |i| {
            let db = db.clone();
            let q = q.clone();
            async move {
                let tenant = format!("tenant-{}", i % TENANTS);
                let at = Utc::now().naive_utc();
                db.read(move |conn| query::run(conn, &tenant, &q, at))
                    .await
                    .unwrap();
            }
        })
        .await;
        load::report(&format!("query: {name}"), phase, &lat);
    }
}
