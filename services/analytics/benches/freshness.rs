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
use tokio_util::sync::CancellationToken;

use agora_shared::{service::Discovered, testing::TestDb};

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("AGORA_BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let stores = [TestDb::sqlite(), TestDb::sqlite(), TestDb::sqlite()];
    let toml = format!(
        r#"
[auth]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
database_url = "{}"
[tickets]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
database_url = "{}"
[analytics]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
database_url = "{}"
[gateway]
http_addr = "127.0.0.1:0"
[gateway.rate_limits]
api = {{ limit = 1000000, period_secs = 60 }}
"#,
        stores[0].url, stores[1].url, stores[2].url
    );
    let (ctx, _bus) = agora_shared::testing::service_context(&toml);
    let shutdown = CancellationToken::new();
    let auth = agora_auth::start(&ctx, shutdown.clone()).await.unwrap();
    let credential = agora_analytics::Credential::Issued(Arc::new(
        agora_auth::admin::service_token_issuer(auth.state.keyring.clone(), "analytics"),
    ));
    let mut discovered = vec![Discovered {
        name: "auth".into(),
        http: auth.service.http_addr,
        grpc: auth.service.grpc_addr.unwrap(),
    }];
    tokio::spawn(auth.service.wait());
    let tickets = agora_tickets::start(&ctx.with_discovered(&discovered), shutdown.clone())
        .await
        .unwrap();
    discovered.push(Discovered {
        name: "tickets".into(),
        http: tickets.service.http_addr,
        grpc: tickets.service.grpc_addr.unwrap(),
    });
    tokio::spawn(tickets.service.wait());
    let analytics = agora_analytics::start(
        &ctx.with_discovered(&discovered),
        shutdown.clone(),
        Some(credential),
    )
    .await
    .unwrap();
    discovered.push(Discovered {
        name: "analytics".into(),
        http: analytics.service.http_addr,
        grpc: analytics.service.grpc_addr.unwrap(),
    });
    tokio::spawn(analytics.service.wait());
    let gateway = agora_gateway::start(&ctx.with_discovered(&discovered), shutdown.clone())
        .await
        .unwrap();
    let base = format!("http://{}/api/v1", gateway.http_addr);
    tokio::spawn(gateway.wait());

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
    shutdown.cancel();
}
