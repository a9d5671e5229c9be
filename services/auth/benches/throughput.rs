//! Prints logins/s, refreshes/s and token verifications/s of the auth service on this machine.
//!
//! `cargo bench -p agora-auth --bench throughput` (SQLite store in a temp dir; set
//! `AGORA_BENCH_DATABASE_URL=postgres://...` to use PostgreSQL). Each phase runs for a bounded
//! time on loopback only.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use agora_shared::{
    testing::{
        TestDb,
        load::{report, run},
    },
    tokens::KeyPair,
};

const PHASE: Duration = Duration::from_secs(8);
const CLIENTS: usize = 16;
const PASSWORD: &str = "Sup3r-secret!";

#[tokio::main]
async fn main() {
    let db = match std::env::var("AGORA_BENCH_DATABASE_URL") {
        Ok(admin) => TestDb::postgres_at(&admin),
        Err(_) => TestDb::sqlite(),
    };
    let url = db.url.clone();
    let key = KeyPair::generate();
    let toml = format!(
        "[auth]\nhttp_addr = \"127.0.0.1:0\"\ngrpc_addr = \"127.0.0.1:0\"\ndatabase_url = \"{url}\"\n\
         lockout_threshold = 1000000\nsigning_key = '''{}'''\n",
        key.private_pem()
    );
    let (ctx, _bus) = agora_shared::testing::service_context(&toml);
    let shutdown = CancellationToken::new();
    let started = agora_auth::start(&ctx, shutdown.clone())
        .await
        .expect("auth starts");
    let base = format!("http://{}", started.service.http_addr);
    let authenticator = started.authenticator.clone();
    tokio::spawn(started.service.wait());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();

    let mut emails = Vec::new();
    for i in 0..CLIENTS {
        let email = format!("bench{i}@example.test");
        let resp = client
            .post(format!("{base}/api/v1/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD, "name": "Bench", "tenant_name": format!("Bench {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        emails.push(email);
    }
    println!(
        "auth throughput, {CLIENTS} concurrent clients, {}s per phase, store {}",
        PHASE.as_secs(),
        db.backend
    );

    // Logins: argon2id verification dominates.
    let lat = run(PHASE, CLIENTS, |i| {
        let (client, base, email) = (client.clone(), base.clone(), emails[i].clone());
        async move {
            let resp = client
                .post(format!("{base}/api/v1/auth/login"))
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
    })
    .await;
    report("logins", PHASE, &lat);

    // Refreshes: each client walks its own rotating chain.
    let mut chains = Vec::new();
    for email in &emails {
        let body: Value = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        chains.push(Arc::new(tokio::sync::Mutex::new(
            body["refresh_token"].as_str().unwrap().to_owned(),
        )));
    }
    let access = {
        let body: Value = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": emails[0], "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    };
    let lat = run(PHASE, CLIENTS, |i| {
        let (client, base, chain) = (client.clone(), base.clone(), chains[i].clone());
        async move {
            let mut token = chain.lock().await;
            let body: Value = client
                .post(format!("{base}/api/v1/auth/refresh"))
                .json(&json!({"refresh_token": *token}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            *token = body["refresh_token"].as_str().expect("rotated").to_owned();
        }
    })
    .await;
    report("refreshes", PHASE, &lat);

    // Verifications in-process: signature, claims and denylist check, no I/O.
    let started_at = Instant::now();
    let mut n = 0u64;
    while started_at.elapsed() < Duration::from_secs(3) {
        for _ in 0..1000 {
            authenticator.verifier.verify(&access).await.unwrap();
        }
        n += 1000;
    }
    let per_sec = n as f64 / started_at.elapsed().as_secs_f64();
    println!(
        "{:<36} {:>10.0}/s",
        "token verifications (in-process)", per_sec
    );

    // Verified requests over HTTP: GET /auth/me (verify + one store read).
    let lat = run(PHASE, CLIENTS, |_| {
        let (client, base, access) = (client.clone(), base.clone(), access.clone());
        async move {
            let resp = client
                .get(format!("{base}/api/v1/auth/me"))
                .bearer_auth(access)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
    })
    .await;
    report("authenticated GET /auth/me", PHASE, &lat);
    shutdown.cancel();
}
