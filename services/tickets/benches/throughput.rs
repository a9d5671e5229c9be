//! Prints ticket creates/s and list requests/s through the gateway, with the real auth service,
//! against a store already holding 100k tickets.
//!
//! `cargo bench -p agora-tickets --bench throughput` (SQLite stores in a temp dir; set
//! `AGORA_BENCH_DATABASE_URL=postgres://...` to use PostgreSQL). `AGORA_BENCH_TICKETS` changes
//! the store size. Each phase runs for a bounded time on loopback only.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use diesel::RunQueryDsl;

use agora_shared::{
    db::{DbConnection, now},
    testing::{
        TestDb,
        load::{report, run},
    },
};
use agora_tickets::{changes, model::TicketFields, store};

const PHASE: Duration = Duration::from_secs(8);
const CLIENTS: usize = 16;
use agora_testkit::PASSWORD;

fn store_db() -> TestDb {
    match std::env::var("AGORA_BENCH_DATABASE_URL") {
        Ok(admin) => TestDb::postgres_at(&admin),
        Err(_) => TestDb::sqlite(),
    }
}

#[tokio::main]
async fn main() {
    let seed: i64 = std::env::var("AGORA_BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut kit = agora_testkit::Platform::builder(store_db)
        .default_workers()
        .service("tickets", "")
        .toml("[gateway.rate_limits]\napi = { limit = 100000000, period_secs = 1 }")
        .start()
        .await;
    let tickets = agora_tickets::start(&kit.context(), kit.shutdown.clone())
        .await
        .expect("tickets starts");
    let state = tickets.state.clone();
    kit.serve(tickets.service);
    kit.gateway().await;
    let base = kit.base.clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();

    let session: Value = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": "bench@example.test", "password": PASSWORD, "name": "Bench", "tenant_name": "Bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["access_token"].as_str().unwrap().to_owned();
    let tenant = session["user"]["tenant_id"].as_str().unwrap().to_owned();

    // Seed straight into the store (numbered as creates would be), 1000 per transaction.
    let seeded_at = Instant::now();
    for batch in 0..(seed + 999) / 1000 {
        let tenant = tenant.clone();
        state
            .db
            .write(move |conn| {
                for i in batch * 1000..((batch + 1) * 1000).min(seed) {
                    // Different strides keep the attributes independent of each other.
                    let pick = |stride: i64, options: &[&'static str]| {
                        options[(i / stride) as usize % options.len()]
                    };
                    let fields: TicketFields = serde_json::from_value(json!({
                        "title": format!("Seeded job {i}"),
                        "description": "Replace the splitter in the roadside cabinet",
                        "category": pick(1, &["REPAIR", "INSPECTION", "MAINTENANCE", "FIBER_INSTALLATION", "EMERGENCY"]),
                        "priority": pick(5, &["LOW", "MEDIUM", "HIGH", "URGENT"]),
                        "zone": pick(20, &["Northern", "Southern", "Central", "East Coast", "Borneo"]),
                    }))
                    .expect("seed fields");
                    let number = store::tickets::next_number(conn, &tenant)?;
                    let mut row = changes::new_ticket(&tenant, number, &fields, "bench", now());
                    row.status = pick(100, &["OPEN", "IN_PROGRESS", "ON_HOLD", "COMPLETED"]).parse().expect("status");
                    store::tickets::insert(conn, &row)?;
                }
                Ok(())
            })
            .await
            .expect("seed");
    }
    // The planner statistics autovacuum would gather within a minute of such a bulk load.
    state
        .db
        .write(|conn| {
            if let DbConnection::Postgres(pg) = conn {
                diesel::sql_query("ANALYZE tickets").execute(pg)?;
            }
            Ok(())
        })
        .await
        .expect("analyze");
    println!(
        "tickets through the gateway, {CLIENTS} concurrent clients, {}s per phase, stores {}, \
         {seed} tickets seeded in {:.1}s",
        PHASE.as_secs(),
        kit.store(1).backend,
        seeded_at.elapsed().as_secs_f64()
    );

    let lat = run(PHASE, CLIENTS, |i| {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        async move {
            let resp = client
                .post(format!("{base}/api/v1/tickets"))
                .bearer_auth(token)
                .json(&json!({"title": format!("Bench job {i}"), "category": "REPAIR", "priority": "HIGH", "zone": "Central"}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
        }
    })
    .await;
    report("creates (POST /tickets)", PHASE, &lat);

    let lists = [
        ("list 50, newest first", "limit=50"),
        (
            "list 50, status+priority+zone filtered",
            "limit=50&status=OPEN&priority=HIGH,URGENT&zone=Central",
        ),
        (
            "list 50, sla_status=PENDING by due time",
            "limit=50&sla_status=PENDING&sort=due_at",
        ),
        ("list 50, text search (11 hits)", "limit=50&q=job%204242"),
    ];
    for (what, query) in lists {
        let lat = run(PHASE, CLIENTS, |_| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            async move {
                let resp = client
                    .get(format!("{base}/api/v1/tickets?{query}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                let page: Value = resp.json().await.unwrap();
                assert!(
                    !page["items"].as_array().unwrap().is_empty(),
                    "{what} found nothing"
                );
            }
        })
        .await;
        report(what, PHASE, &lat);
    }
    kit.shutdown.cancel();
}
