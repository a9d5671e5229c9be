//! Prints how long a ticket created through the gateway takes to show up in analytics in
//! embedded mode (auth, tickets, analytics and the gateway in one process on SQLite, the
//! in-process bus): the time from the create's 201 to the first `/analytics/query` answer that
//! counts it, p50/p99 over `AGORA_BENCH_TICKETS` tickets (200), one at a time.
//!
//! `cargo bench -p agora-analytics --bench freshness`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use agora_shared::testing::TestDb;

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("AGORA_BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut kit = agora_testkit::Platform::builder(TestDb::sqlite)
        .default_workers()
        .service("tickets", "")
        .service("analytics", "")
        .toml("[gateway.rate_limits]\napi = { limit = 1000000, period_secs = 60 }")
        .start()
        .await;
    let issuer = agora_auth::admin::service_token_issuer(kit.auth.keyring.clone(), "analytics");
    let credential = agora_analytics::Credential::Issued(Arc::new(issuer));
    let tickets = agora_tickets::start(&kit.context(), kit.shutdown.clone())
        .await
        .unwrap();
    kit.serve(tickets.service);
    let analytics = agora_analytics::start(&kit.context(), kit.shutdown.clone(), Some(credential))
        .await
        .unwrap();
    kit.serve(analytics.service);
    kit.gateway().await;
    let base = format!("{}/api/v1", kit.base);

    let client = reqwest::Client::new();
    let registered: Value = client
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": "bench@fresh.test", "password": "Sup3r-secret!", "name": "B", "tenant_name": "Fresh"}))
        .send().await.unwrap().json().await.unwrap();
    let token = registered["access_token"].as_str().unwrap().to_owned();
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let resp = client
            .post(format!("{base}/tickets"))
            .bearer_auth(&token)
            .json(&json!({"title": format!("t{i}"), "category": "REPAIR", "priority": "LOW"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let created = Instant::now();
        loop {
            let r: Value = client
                .post(format!("{base}/analytics/query"))
                .bearer_auth(&token)
                .json(&json!({"metrics": ["tickets"], "date_range": "all"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if r["results"][0]["metrics"][0].as_u64() == Some(i as u64 + 1) {
                break;
            }
            assert!(
                created.elapsed() < Duration::from_secs(10),
                "ticket {i} never showed up"
            );
        }
        lat.push(created.elapsed());
    }
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "{:<44} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms   ({n} tickets)",
        "gateway create -> counted by /analytics/query",
        pct(0.5),
        pct(0.99),
        lat[lat.len() - 1].as_secs_f64() * 1000.0
    );
    kit.shutdown.cancel();
}
