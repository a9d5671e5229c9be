//! Prints a full Amazon sync of `AGORA_BENCH_SKUS` (100,000) SKUs against the local fake
//! SP-API at its documented usage plan (2 requests a second, burst 2; `AGORA_BENCH_RATE`
//! raises both sides' rate for a quick run): time, pages, requests, throttled requests; then
//! the discrepancy scan of every item, with 10% of them off by 3 to 150 units and again with
//! nothing to change.
//!
//! `cargo bench -p agora-inventory-sync --bench sync` (SQLite in a temp dir;
//! `AGORA_BENCH_DATABASE_URL=postgres://...` for PostgreSQL).

use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::{Value, json};

use agora_inventory_sync::schema::items;
use agora_shared::testing::TestDb;
use agora_testkit::{
    PASSWORD,
    fake_amazon::{FakeAmazon, FbaItem},
};

const MARKETPLACE: &str = "ATVPDKIKX0DER";

fn store_db() -> TestDb {
    match std::env::var("AGORA_BENCH_DATABASE_URL") {
        Ok(admin) => TestDb::postgres_at(&admin),
        Err(_) => TestDb::sqlite(),
    }
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let skus: usize = env("AGORA_BENCH_SKUS", 100_000);
    let rate: u32 = env("AGORA_BENCH_RATE", 2);
    let fake = FakeAmazon::start("bench-client", "bench-secret", &["Atzr|bench"]);
    fake.plan(f64::from(rate), 2.0);
    fake.stock(
        MARKETPLACE,
        (0..skus)
            .map(|i| FbaItem::new(&format!("SKU-{i:07}"), 20 + (i % 50) as i64))
            .collect(),
    );
    let settings = format!(
        "key_encryption_key = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n\
         [inventory_sync.amazon]\nlwa_url = \"{u}/auth/o2/token\"\nsp_api_url = \"{u}\"\n\
         client_id = \"bench-client\"\nclient_secret = \"bench-secret\"\n\
         requests_per_second = {rate}\n",
        u = fake.url
    );
    let mut kit = agora_testkit::Platform::builder(store_db)
        .default_workers()
        .service("inventory_sync", &settings)
        .toml("[gateway.rate_limits]\napi = { limit = 100000000, period_secs = 1 }")
        .start()
        .await;
    let started = agora_inventory_sync::start(&kit.context(), kit.shutdown.clone())
        .await
        .expect("inventory-sync starts");
    let state = started.state.clone();
    kit.serve(started.service);
    kit.gateway().await;
    let base = kit.base.clone();
    let client = reqwest::Client::new();
    let session: Value = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": "bench@example.test", "password": PASSWORD, "name": "Bench", "tenant_name": "Bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // An API key: the sync at the documented rate outlasts an access token.
    let key: Value = client
        .post(format!("{base}/api/v1/api-keys"))
        .bearer_auth(session["access_token"].as_str().unwrap())
        .json(&json!({"name": "bench", "role": "TENANT_ADMIN"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = key["key"].as_str().expect("an API key").to_owned();
    let call = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{base}{path}"))
            .bearer_auth(&token)
    };
    let connection: Value = call(reqwest::Method::POST, "/api/v1/inventory/connections")
        .json(&json!({"provider": "amazon", "marketplace_id": MARKETPLACE, "refresh_token": "Atzr|bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = connection["id"].as_str().expect("connected").to_owned();
    let before = fake.counts();
    let started_at = Instant::now();
    let run: Value = call(
        reqwest::Method::POST,
        &format!("/api/v1/inventory/connections/{id}/syncs"),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let run_path = format!("/api/v1/inventory/syncs/{}", run["id"].as_str().unwrap());
    let run = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let run: Value = call(reqwest::Method::GET, &run_path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if run["status"] != "running" {
            break run;
        }
    };
    let elapsed = started_at.elapsed();
    let after = fake.counts();
    let pages = run["pages"].as_i64().unwrap_or_default();
    println!(
        "sync of {skus} SKUs at {rate} req/s (burst 2): {} in {:.1} s; {pages} pages, {} requests ({} throttled), {} items, {:.0} items/s; the plan's floor is {:.1} s",
        run["status"],
        elapsed.as_secs_f64(),
        after.1 - before.1,
        after.2 - before.2,
        run["items_seen"],
        skus as f64 / elapsed.as_secs_f64(),
        (pages as f64 - 2.0).max(0.0) / f64::from(rate),
    );

    // 10% of our counts move away from Amazon's, then two full scans.
    let step = 10;
    state
        .db
        .write(move |conn| {
            let rows: Vec<(String, i64)> = items::table
                .select((items::id, items::on_hand))
                .load(conn)?;
            for (i, (id, on_hand)) in rows.into_iter().enumerate().filter(|(i, _)| i % step == 0) {
                let off = 3 + (i as i64 % 148);
                diesel::update(items::table.find(id))
                    .set(items::on_hand.eq(on_hand + off))
                    .execute(conn)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    for label in ["with 10% off", "with nothing to change"] {
        let started_at = Instant::now();
        let report: Value = call(reqwest::Method::POST, "/api/v1/inventory/scan")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        println!(
            "scan of {skus} items {label}: {:.2} s; {}",
            started_at.elapsed().as_secs_f64(),
            report
        );
    }
}
