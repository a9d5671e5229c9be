//! The whole platform in distributed mode, as a platform team runs it: `agora migrate`, then
//! each service as its own `agora serve --service X` process on PostgreSQL, Kafka and Redis,
//! driven through the gateway like the README's walkthrough: register, tickets, analytics fed
//! over Kafka, API keys and their revocation, and a logout that every process refuses at once.
//! Signing keys are store-managed and sealed (auth.key_encryption_key).

use std::{
    path::Path,
    process::Child,
    time::{Duration, Instant},
};

use reqwest::{Client, Method};
use serde_json::{Value, json};

use agora_shared::testing::{TestDb, skip_or_fail};

const SERVICES: [&str; 8] = [
    "auth",
    "tickets",
    "analytics",
    "inventory-sync",
    "code-exec",
    "realtime",
    "ai",
    "gateway",
];
const PASSWORD: &str = "Sup3r-secret!";
const PEER_SECRET: &str = "e2e-peer-secret-0123456789abcdefghij";

/// The service processes; killed when the test ends, their logs printed if it failed.
struct Processes(Vec<(String, Child)>, tempfile::TempDir);

impl Drop for Processes {
    fn drop(&mut self) {
        // Stopped as an orchestrator stops them (SIGTERM: consumers leave their group), and
        // killed if one has not stopped after its grace.
        for (_, child) in &self.0 {
            let pid = child.id().to_string();
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(25);
        for (_, child) in &mut self.0 {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for (name, _) in &self.0 {
                let log = std::fs::read_to_string(self.1.path().join(format!("{name}.log")));
                eprintln!("--- {name} ---\n{}", log.unwrap_or_default());
            }
        }
    }
}

fn config(
    dir: &Path,
    stores: &[TestDb],
    redis: &str,
    kafka: &str,
) -> (std::path::PathBuf, Vec<u16>) {
    let ports: Vec<u16> = (0..15)
        .map(|_| agora_shared::testing::unclaimed_port())
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let prefix = format!("agora-e2e-{}-{}:", std::process::id(), nanos.as_nanos());
    let toml = format!(
        r#"
mode = "distributed"
log_level = "info"

[auth]
http_addr = "127.0.0.1:{a}"
grpc_addr = "127.0.0.1:{ag}"
database_url = "{auth_db}"
key_encryption_key = "{kek}"

[auth_peer]
url = "http://127.0.0.1:{a}"
grpc = "127.0.0.1:{ag}"
secret = "{PEER_SECRET}"

[tickets]
http_addr = "127.0.0.1:{t}"
grpc_addr = "127.0.0.1:{tg}"
database_url = "{tickets_db}"

[analytics]
http_addr = "127.0.0.1:{n}"
grpc_addr = "127.0.0.1:{ng}"
database_url = "{analytics_db}"
tickets_grpc = "127.0.0.1:{tg}"

[inventory_sync]
http_addr = "127.0.0.1:{i}"
grpc_addr = "127.0.0.1:{ig}"
database_url = "{inventory_db}"

[code_exec]
http_addr = "127.0.0.1:{c}"
grpc_addr = "127.0.0.1:{cg}"
database_url = "{code_exec_db}"
work_dir = "{work_dir}"

[realtime]
http_addr = "127.0.0.1:{r}"
grpc_addr = "127.0.0.1:{rg}"
database_url = "{realtime_db}"
tickets_grpc = "127.0.0.1:{tg}"
engine = "redis"

[ai]
http_addr = "127.0.0.1:{ai}"
grpc_addr = "127.0.0.1:{aig}"
database_url = "{ai_db}"
tickets_grpc = "127.0.0.1:{tg}"
analytics_grpc = "127.0.0.1:{ng}"

[gateway]
http_addr = "127.0.0.1:{g}"

[gateway.rate_limits]
api = {{ limit = 100000, period_secs = 60 }}

[gateway.services.auth]
url = "http://127.0.0.1:{a}"
prefixes = ["/api/v1/auth", "/api/v1/tenants", "/api/v1/teams", "/api/v1/api-keys", "/.well-known/jwks.json"]

[gateway.services.tickets]
url = "http://127.0.0.1:{t}"
prefixes = ["/api/v1/tickets"]

[gateway.services.analytics]
url = "http://127.0.0.1:{n}"
prefixes = ["/api/v1/analytics", "/api/v1/dashboard"]

[gateway.services.inventory_sync]
url = "http://127.0.0.1:{i}"
prefixes = ["/api/v1/inventory"]

[gateway.services.code_exec]
url = "http://127.0.0.1:{c}"
prefixes = ["/api/v1/code-exec"]

[gateway.services.realtime]
url = "http://127.0.0.1:{r}"
prefixes = ["/api/v1/realtime", "/socket.io"]
required = false

[gateway.services.ai]
url = "http://127.0.0.1:{ai}"
prefixes = ["/api/v1/ai"]
required = false

[kafka]
brokers = "{kafka}"
partitions = 1
group_prefix = "{prefix}"

[redis]
url = "{redis}"
key_prefix = "{prefix}"
"#,
        a = ports[0],
        ag = ports[1],
        t = ports[2],
        tg = ports[3],
        n = ports[4],
        ng = ports[5],
        g = ports[6],
        i = ports[7],
        ig = ports[8],
        auth_db = stores[0].url,
        tickets_db = stores[1].url,
        analytics_db = stores[2].url,
        inventory_db = stores[3].url,
        c = ports[9],
        cg = ports[10],
        code_exec_db = stores[4].url,
        work_dir = dir.join("code-exec").display(),
        r = ports[11],
        rg = ports[12],
        realtime_db = stores[5].url,
        ai = ports[13],
        aig = ports[14],
        ai_db = stores[6].url,
        kek = crate::KEK,
    );
    let path = dir.join("agora.toml");
    std::fs::write(&path, toml).unwrap();
    (path, ports)
}

/// Waits for `url` to answer 200; a service process that exited meanwhile fails it at once.
async fn ready(client: &Client, processes: &mut Processes, url: &str, within: Duration) {
    let started = Instant::now();
    while started.elapsed() < within {
        for (name, child) in &mut processes.0 {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the {name} process exited ({status}) before {url} was ready");
            }
        }
        if let Ok(resp) = client.get(url).send().await
            && resp.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} not ready within {within:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_runs_as_one_process_per_service() {
    let (Ok(redis), Ok(kafka)) = (
        std::env::var("AGORA_TEST_REDIS_URL"),
        std::env::var("AGORA_TEST_KAFKA_BROKERS"),
    ) else {
        return skip_or_fail(
            "redis and kafka",
            "AGORA_TEST_REDIS_URL or AGORA_TEST_KAFKA_BROKERS is not set",
        );
    };
    let Some(auth_db) = TestDb::postgres() else {
        return;
    };
    let stores = [
        auth_db,
        TestDb::postgres().unwrap(),
        TestDb::postgres().unwrap(),
        TestDb::postgres().unwrap(),
        TestDb::postgres().unwrap(),
        TestDb::postgres().unwrap(),
        TestDb::postgres().unwrap(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (path, ports) = config(dir.path(), &stores, &redis, &kafka);

    let migrated = crate::agora()
        .arg("--config")
        .arg(&path)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let mut processes = Processes(Vec::new(), dir);
    for name in SERVICES {
        let log = std::fs::File::create(processes.1.path().join(format!("{name}.log"))).unwrap();
        let child = crate::agora()
            .arg("--config")
            .arg(&path)
            .args(["serve", "--service", name])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        processes.0.push((name.to_owned(), child));
    }
    let client = Client::new();
    let port = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let (gateway, tickets, analytics, inventory) = (port(6), port(2), port(4), port(7));
    // Each service is ready, then the gateway finds every upstream healthy.
    let services = [
        port(0),
        tickets.clone(),
        analytics.clone(),
        inventory.clone(),
        port(9),
        port(11),
        port(13),
    ];
    for url in services.map(|b| format!("{b}/health/ready")) {
        ready(&client, &mut processes, &url, Duration::from_secs(60)).await;
    }
    ready(
        &client,
        &mut processes,
        &format!("{gateway}/health"),
        Duration::from_secs(60),
    )
    .await;

    // Register and work through the gateway.
    let call = |method: Method, path: &str, token: &str| {
        client
            .request(method, format!("{gateway}{path}"))
            .bearer_auth(token)
    };
    let register =
        json!({"email": "ana@e2e.test", "password": PASSWORD, "name": "Ana", "tenant_name": "E2E"});
    let resp = client
        .post(format!("{gateway}/api/v1/auth/register"))
        .json(&register)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let session: Value = resp.json().await.unwrap();
    let token = session["access_token"].as_str().unwrap().to_owned();
    // A program runs in code-exec's sandbox, its own process, through the gateway.
    let resp = call(
        Method::POST,
        "/api/v1/code-exec/submissions?wait=true",
        &token,
    )
    .json(&json!({"source_code": "print(6 * 7)", "language_id": 71}))
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    let run: Value = resp.json().await.unwrap();
    assert_eq!(run["status"]["id"], 3, "{run}");
    assert_eq!(run["stdout"], "42\n");
    for title in ["Splice cabinet 4", "Replace ONT"] {
        let ticket = json!({"title": title, "category": "REPAIR", "priority": "HIGH"});
        let resp = call(Method::POST, "/api/v1/tickets", &token)
            .json(&ticket)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }
    let listed: Value = call(Method::GET, "/api/v1/tickets", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);

    // Inventory: an item, a count that disagrees, the discrepancy it reveals.
    let item = json!({"sku": "ONT-1", "name": "ONT", "on_hand": 40});
    let resp = call(Method::POST, "/api/v1/inventory/items", &token)
        .json(&item)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let count = json!({"source": "warehouse", "counts": [{"sku": "ONT-1", "quantity": 25}]});
    let snapshot: Value = call(Method::POST, "/api/v1/inventory/snapshots", &token)
        .json(&count)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(snapshot["scan"]["detected"], 1, "{snapshot}");

    // Analytics hears the tickets over Kafka.
    let query = json!({"metrics": ["created"], "date_range": "all"});
    let started = Instant::now();
    loop {
        let resp = call(Method::POST, "/api/v1/analytics/query", &token)
            .json(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        if body["results"][0]["metrics"][0] == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "analytics after 60 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Realtime heard them too, over Kafka, and keeps them in the dashboard's stream in Redis.
    let started = Instant::now();
    loop {
        let resp = call(
            Method::GET,
            "/api/v1/realtime/channels/dashboard/history",
            &token,
        )
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        let created = body["publications"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["event"] == "ticket.created")
            .count();
        if created == 2 {
            assert_eq!(body["offset"], 2, "{body}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "realtime after 60 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The ai service on PostgreSQL: a document given through the gateway is searchable at
    // once, and an answer quotes it.
    let collection: Value = call(Method::POST, "/api/v1/ai/collections", &token)
        .json(&json!({"name": "Handbook"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let collection = collection["id"].as_str().expect("a collection").to_owned();
    let doc = call(
        Method::POST,
        &format!("/api/v1/ai/collections/{collection}/documents"),
        &token,
    )
    .json(&json!({"title": "Returns", "text": "# Returns\n\nRefunds are paid within five business days."}))
    .send()
    .await
    .unwrap();
    assert_eq!(doc.status(), 201);
    let answer: Value = call(Method::POST, "/api/v1/ai/answer", &token)
        .json(&json!({"collection_ids": [collection], "question": "When are refunds paid?"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["citations"][0]["quote"], "Refunds are paid within five business days.",
        "{answer}"
    );

    // An API key works through the gateway and at the service; auth's VerifyApiKey answers
    // only peers that present the secret; a revoked key is refused at once everywhere.
    let created: Value = call(Method::POST, "/api/v1/api-keys", &token)
        .json(&json!({"name": "e2e", "role": "TENANT_USER"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let with_key = |base: &str| {
        client
            .get(format!("{base}/api/v1/tickets"))
            .header("x-api-key", &key)
            .send()
    };
    for base in [&gateway, &tickets] {
        assert_eq!(with_key(base).await.unwrap().status(), 200, "{base}");
    }
    let mut grpc = agora_proto::auth::v1::auth_service_client::AuthServiceClient::connect(format!(
        "http://127.0.0.1:{}",
        ports[1]
    ))
    .await
    .unwrap();
    let err = grpc
        .verify_api_key(agora_proto::auth::v1::VerifyApiKeyRequest { key: key.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let revoked = call(
        Method::DELETE,
        &format!("/api/v1/api-keys/{}", created["id"].as_str().unwrap()),
        &token,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(revoked.status(), 204);
    for base in [&gateway, &tickets] {
        assert_eq!(with_key(base).await.unwrap().status(), 401, "{base}");
    }

    // A logout through the gateway is refused at once by every process, asked directly.
    let direct = |base: &str, path: &str| {
        client
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(
        direct(&tickets, "/api/v1/tickets").await.unwrap().status(),
        200
    );
    assert_eq!(
        direct(&analytics, "/api/v1/dashboard/overview")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        direct(&inventory, "/api/v1/inventory/items")
            .await
            .unwrap()
            .status(),
        200
    );
    let out = call(Method::POST, "/api/v1/auth/logout", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    for (base, path) in [
        (gateway.as_str(), "/api/v1/tickets"),
        (tickets.as_str(), "/api/v1/tickets"),
        (analytics.as_str(), "/api/v1/dashboard/overview"),
        (inventory.as_str(), "/api/v1/inventory/items"),
        (port(0).as_str(), "/api/v1/auth/me"),
    ] {
        assert_eq!(
            direct(base, path).await.unwrap().status(),
            401,
            "{base}{path}"
        );
    }
}
