//! The `agora` binary as a user runs it: start-up, bad configuration, shutdown, upgrades.

mod distributed;
mod documents;
mod ops;
mod supervise;
mod upgrade;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

/// A key-encryption key (base64 of 32 bytes).
const KEK: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

fn agora() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agora"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

/// A started `agora`, killed if the test ends without stopping it: an orphan would keep
/// running and hold the test run's output open.
struct Running(std::process::Child);

impl Running {
    fn spawn(cmd: &mut Command) -> Self {
        Self(cmd.spawn().expect("agora starts"))
    }

    /// Stops it as an orchestrator does (SIGTERM) and returns how it exited; a process still
    /// running after 15 s fails the test.
    fn stop(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "did not stop within 15 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `cmd` to completion and returns (exit code, stderr lines).
fn fails(cmd: &mut Command) -> (i32, Vec<String>) {
    let out = cmd.output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .collect();
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn an_unknown_service_is_refused_naming_the_known_ones() {
    for command in ["migrate", "serve"] {
        let (code, stderr) = fails(agora().args([command, "--service", "nosuch"]));
        assert_eq!(code, 2, "{command}");
        assert_eq!(
            stderr,
            vec![
                "error: unknown service `nosuch`; the services are: auth, tickets, analytics, inventory-sync, code-exec, realtime, ai, gateway"
            ],
            "{command}"
        );
    }
}

#[test]
fn unknown_database_scheme_stops_startup_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = fails(
        agora()
            .current_dir(dir.path())
            .env("AGORA_AUTH__DATABASE_URL", "mysql://db/auth"),
    );
    assert_ne!(code, 0);
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0]
            .contains("invalid configuration: auth.database_url: unknown database scheme `mysql`"),
        "{stderr:?}"
    );
}

#[test]
fn unwritable_data_directory_stops_startup() {
    let (code, stderr) = fails(agora().env("AGORA_DATA_DIR", "/proc/agora-data"));
    assert_ne!(code, 0);
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0].contains("data directory /proc/agora-data"),
        "{stderr:?}"
    );
}

#[test]
fn distributed_mode_needs_redis_a_peer_secret_and_keys_never_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("auth.db").display());
    let serve = |env: &[(&str, &str)]| {
        let mut cmd = agora();
        cmd.args(["serve", "--service", "auth"])
            .env("AGORA_MODE", "distributed")
            .env("AGORA_AUTH__DATABASE_URL", &url);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (code, stderr) = fails(&mut cmd);
        assert_ne!(code, 0);
        stderr
    };
    // Without Redis a logout would not reach the other processes.
    assert_eq!(
        serve(&[]),
        vec![
            "error: invalid configuration: redis.url: is required in distributed mode (token revocations and cache invalidations reach the other processes through it)"
        ]
    );
    // Without the peer secret auth's VerifyApiKey would answer whoever reaches its port.
    let redis = [("AGORA_REDIS__URL", "redis://127.0.0.1:1")];
    assert_eq!(
        serve(&redis),
        vec![
            "error: invalid configuration: auth_peer.secret: is required in distributed mode (services present it to auth's VerifyApiKey)"
        ]
    );
    let short = [redis[0], ("AGORA_AUTH_PEER__SECRET", "short")];
    let stderr = serve(&short);
    assert!(
        stderr[0].contains("auth_peer.secret: must be at least 32 printable ASCII characters"),
        "{stderr:?}"
    );
    // Signing keys come from configuration or are sealed in the store, never kept in clear.
    let ready = [
        redis[0],
        (
            "AGORA_AUTH_PEER__SECRET",
            "0123456789abcdef0123456789abcdef",
        ),
    ];
    assert_eq!(
        serve(&ready),
        vec![
            "error: invalid configuration: auth.signing_key: or auth.key_encryption_key is required in distributed mode (signing keys are never stored in clear there)"
        ]
    );
}

#[test]
fn bad_values_name_their_key() {
    let (code, stderr) = fails(agora().env("AGORA_AUTH__ACCESS_TTL_SECS", "soon"));
    assert_ne!(code, 0);
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(stderr[0].contains("auth.access_ttl_secs"), "{stderr:?}");
    let (code, stderr) = fails(agora().env("AGORA_MODE", "cluster"));
    assert_ne!(code, 0);
    assert!(
        stderr[0].contains("invalid configuration: mode"),
        "{stderr:?}"
    );
}

#[test]
fn embedded_platform_starts_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Running::spawn(
        embedded(dir.path())
            .env("AGORA_BOOTSTRAP_ADMIN_EMAIL", "boss@example.test")
            .env("AGORA_BOOTSTRAP_ADMIN_PASSWORD", "B00tstrap-pass!")
            .env("RUST_LOG", "warn"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut base = None;
    let mut gateway = None;
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("auth") {
            base = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.strip_prefix("gateway") {
            gateway = rest.split_whitespace().next().map(str::to_owned);
        }
        printed.push(line.clone());
        if line.starts_with("agora is running") {
            break;
        }
    }
    assert!(
        printed
            .iter()
            .any(|l| l.contains("created platform admin boss@example.test")),
        "{printed:?}"
    );
    assert!(
        !printed.iter().any(|l| l.contains("B00tstrap-pass!")),
        "a configured password is never printed"
    );
    let base = base.expect("auth address printed");
    let gateway = gateway.expect("gateway address printed");
    for store in ["auth", "tickets"] {
        assert!(
            dir.path().join(format!("data/{store}.db")).exists(),
            "{store} store under ./data"
        );
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = test_client();
        let ready = client
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
        let login = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&serde_json::json!({"email": "boss@example.test", "password": "B00tstrap-pass!"}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200);
        let body: serde_json::Value = login.json().await.unwrap();
        assert_eq!(body["user"]["role"], "PLATFORM_ADMIN");
        // Through the gateway to the tickets service, which verifies the token with auth.
        let ticket = client
            .post(format!("{gateway}/api/v1/tickets"))
            .bearer_auth(body["access_token"].as_str().unwrap())
            .json(&serde_json::json!({"title": "Check the cabinet", "category": "INSPECTION"}))
            .send()
            .await
            .unwrap();
        assert_eq!(ticket.status(), 201);
        let ticket: serde_json::Value = ticket.json().await.unwrap();
        assert_eq!(ticket["number"], "CTT-000001");
        let health: serde_json::Value = client
            .get(format!("{gateway}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["services"]["tickets"]["status"], "ok", "{health}");

        // Once the ticket's events have been relayed and consumed, an idle platform commits
        // nothing to any store (no relay lease renewals, no empty passes).
        let writes = || async {
            let text = client
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.lines()
                .filter(|l| l.starts_with("agora_store_write_transactions_total"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let mut settled = writes().await;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = writes().await;
            if now == settled {
                break;
            }
            settled = now;
        }
        assert!(
            settled.iter().any(|l| l.contains("store=\"tickets\"")),
            "{settled:?}"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(writes().await, settled, "an idle platform wrote to a store");
    });

    let status = child.stop();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

/// An HTTP client that gives up instead of hanging the test run.
fn test_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The embedded platform on free ports, in `dir`, its stdout piped.
fn embedded(dir: &std::path::Path) -> Command {
    let mut cmd = agora();
    cmd.current_dir(dir).stdout(Stdio::piped());
    for service in [
        "AUTH",
        "TICKETS",
        "ANALYTICS",
        "INVENTORY_SYNC",
        "CODE_EXEC",
        "REALTIME",
        "AI",
    ] {
        cmd.env(format!("AGORA_{service}__HTTP_ADDR"), "127.0.0.1:0")
            .env(format!("AGORA_{service}__GRPC_ADDR"), "127.0.0.1:0");
    }
    cmd.env("AGORA_GATEWAY__HTTP_ADDR", "127.0.0.1:0");
    cmd
}

#[test]
fn a_sigterm_while_the_platform_starts_stops_it_cleanly() {
    // An orchestrator may stop a pod as soon as it starts. The signal lands after the first
    // service is up and before the platform says it runs: every service still stops, and the
    // process exits 0 instead of running on with half its servers stopped.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Running::spawn(embedded(dir.path()).env("RUST_LOG", "warn"));
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    // Logs share stdout; the first service's address is printed once it serves.
    let started = lines.find(|line| line.as_ref().is_ok_and(|l| l.starts_with("auth ")));
    assert!(started.is_some(), "auth's address printed");
    let status = child.stop();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn traces_are_exported_over_otlp_when_configured() {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    };
    use tokio::sync::mpsc;

    struct Collector(mpsc::UnboundedSender<ExportTraceServiceRequest>);

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let _ = self.0.send(request.into_inner());
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(tx)))
            .serve_with_incoming(tokio_stream_listener(listener)),
    );

    let dir = tempfile::tempdir().unwrap();
    let mut child = Running::spawn(
        embedded(dir.path())
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{port}"),
            )
            .env("RUST_LOG", "info"),
    );
    let mut base = None;
    for line in BufReader::new(child.0.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("auth ") {
            base = rest.split_whitespace().next().map(str::to_owned);
        }
        if line.starts_with("agora is running") {
            break;
        }
    }
    let base = base.expect("auth address printed");
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    rt.block_on(async {
        let resp = test_client()
            .get(format!("{base}/health/live"))
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    });
    // At once: a SIGTERM that comes right after start stops the process all the same.
    let status = child.stop();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    let mut spans = Vec::new();
    let mut service_names = Vec::new();
    while let Ok(req) = rx.try_recv() {
        for rs in req.resource_spans {
            for attr in rs.resource.iter().flat_map(|r| r.attributes.iter()) {
                if attr.key == "service.name" {
                    service_names.push(format!("{:?}", attr.value));
                }
            }
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    assert!(
        service_names.iter().any(|n| n.contains("agora")),
        "{service_names:?}"
    );
    let ids: Vec<String> = spans
        .iter()
        .map(|s| s.trace_id.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    assert!(
        ids.iter().any(|id| id == trace_id),
        "the request span continues the caller's trace: {ids:?} {:?}",
        spans
            .iter()
            .map(|s| (&s.name, s.parent_span_id.len()))
            .collect::<Vec<_>>()
    );
}

fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    tokio_stream::wrappers::TcpListenerStream::new(listener)
}

#[test]
fn migrate_and_admin_commands() {
    use agora_shared::testing::TestDb;
    let sqlite = || TestDb::sqlite();
    let mut stores = vec![(
        sqlite(),
        sqlite(),
        sqlite(),
        sqlite(),
        sqlite(),
        sqlite(),
        sqlite(),
    )];
    if let Some(auth) = TestDb::postgres() {
        let postgres = || TestDb::postgres().expect("postgres");
        stores.push((
            auth,
            postgres(),
            postgres(),
            postgres(),
            postgres(),
            postgres(),
            postgres(),
        ));
    }
    for (db, tickets_db, analytics_db, inventory_db, code_exec_db, realtime_db, ai_db) in stores {
        let run = |args: &[&str]| {
            let out = agora()
                .args(args)
                .env("AGORA_MODE", "distributed")
                .env("AGORA_AUTH__DATABASE_URL", &db.url)
                .env("AGORA_TICKETS__DATABASE_URL", &tickets_db.url)
                .env("AGORA_ANALYTICS__DATABASE_URL", &analytics_db.url)
                .env("AGORA_INVENTORY_SYNC__DATABASE_URL", &inventory_db.url)
                .env("AGORA_CODE_EXEC__DATABASE_URL", &code_exec_db.url)
                .env("AGORA_REALTIME__DATABASE_URL", &realtime_db.url)
                .env("AGORA_AI__DATABASE_URL", &ai_db.url)
                .env("AGORA_NEW_USER_PASSWORD", "Adm1n-password!")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            (out.status.success(), text)
        };
        assert_eq!(
            run(&["migrate", "--service", "auth"]),
            (true, "auth: 4 migration(s) applied\n".into()),
            "{}",
            db.backend
        );
        assert_eq!(
            run(&["migrate"]),
            (
                true,
                format!(
                    "auth: 0 migration(s) applied\ntickets: {} migration(s) applied\nanalytics: 4 migration(s) applied\ninventory-sync: 5 migration(s) applied\ncode-exec: 3 migration(s) applied\nrealtime: 2 migration(s) applied\nai: 4 migration(s) applied\n",
                    // SQLite's tickets store has its own text index.
                    if db.backend == "sqlite" { 4 } else { 3 }
                )
            ),
            "{}",
            db.backend
        );
        assert_eq!(
            run(&["migrate", "--service", "tickets"]),
            (true, "tickets: 0 migration(s) applied\n".into()),
            "{}",
            db.backend
        );
        let (ok, text) = run(&[
            "admin",
            "create-user",
            "--email",
            "Ops@Example.test",
            "--role",
            "TENANT_ADMIN",
            "--tenant",
            "Ops",
        ]);
        assert!(
            ok && text.contains("(ops@example.test, TENANT_ADMIN) in tenant Ops"),
            "{text}"
        );
        let (ok, text) = run(&[
            "admin",
            "create-user",
            "--email",
            "ops@example.test",
            "--tenant",
            "Ops",
        ]);
        assert!(!ok && text.contains("already exists"), "{text}");
        let (ok, text) = run(&["admin", "create-user", "--email", "x@example.test"]);
        assert!(!ok && text.contains("--tenant is required"), "{text}");
        // Distributed mode keeps no signing key in clear: rotating needs the key-encryption
        // key, and the new key is sealed for its key id.
        let (ok, text) = run(&["admin", "rotate-signing-key"]);
        assert!(
            !ok && text.contains("auth.key_encryption_key: is required in distributed mode"),
            "{text}"
        );
        let out = agora()
            .args(["admin", "rotate-signing-key"])
            .env("AGORA_MODE", "distributed")
            .env("AGORA_AUTH__DATABASE_URL", &db.url)
            .env("AGORA_AUTH__KEY_ENCRYPTION_KEY", KEK)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.starts_with("new signing key "),
            "{text}"
        );
        let kid = text["new signing key ".len()..].split(';').next().unwrap();
        let store = agora_shared::db::Db::connect(&db.url, 1).unwrap();
        let kid_owned = kid.to_owned();
        let stored: String = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(store.read(move |conn| {
                use agora_auth::schema::signing_keys;
                use diesel::prelude::*;
                Ok(signing_keys::table
                    .filter(signing_keys::kid.eq(kid_owned))
                    .select(signing_keys::private_pem)
                    .first(conn)?)
            }))
            .unwrap();
        assert!(stored.starts_with("sealed:v2:"), "{stored}");
        // With keys from configuration there is nothing in the store to rotate.
        let out = agora()
            .args(["admin", "rotate-signing-key"])
            .env("AGORA_AUTH__DATABASE_URL", &db.url)
            .env(
                "AGORA_AUTH__SIGNING_KEY",
                agora_shared::tokens::KeyPair::generate().private_pem(),
            )
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && text.contains("auth.signing_key: is set, so keys come from configuration"),
            "{text}"
        );
        // A rebuild needs the tickets service; without it the command says so.
        let port = agora_shared::testing::unclaimed_port();
        let out = agora()
            .args(["analytics", "rebuild"])
            .env("AGORA_MODE", "distributed")
            .env("AGORA_AUTH__DATABASE_URL", &db.url)
            .env("AGORA_AUTH__KEY_ENCRYPTION_KEY", KEK)
            .env("AGORA_ANALYTICS__DATABASE_URL", &analytics_db.url)
            .env("AGORA_ANALYTICS__TICKETS_GRPC", format!("127.0.0.1:{port}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && text.contains(&format!("cannot read tickets from 127.0.0.1:{port}")),
            "{text}"
        );
    }
    let out = agora()
        .args(["admin", "generate-signing-key"])
        .output()
        .unwrap();
    let pem = String::from_utf8(out.stdout).unwrap();
    assert!(agora_shared::tokens::KeyPair::from_pem(&pem).is_ok());
}

#[test]
fn migrate_creates_the_kafka_topics() {
    let Ok(brokers) = std::env::var("AGORA_TEST_KAFKA_BROKERS") else {
        agora_shared::testing::skip_or_fail("kafka", "AGORA_TEST_KAFKA_BROKERS is not set");
        return;
    };
    let db = agora_shared::testing::TestDb::sqlite();
    let out = agora()
        .args(["migrate", "--service", "tickets"])
        .env("AGORA_MODE", "distributed")
        .env("AGORA_TICKETS__DATABASE_URL", &db.url)
        .env("AGORA_KAFKA__BROKERS", &brokers)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text,
        "tickets: 4 migration(s) applied\n\
         tickets: topics agora.tickets.events and agora.tickets.events.dlq ready\n"
    );
    // Topics are never created on first use, so a publish proves they exist.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use agora_shared::bus::{
            Event, EventBus,
            kafka::{KafkaBus, KafkaConfig},
        };
        let bus = KafkaBus::new(&KafkaConfig {
            brokers: Some(brokers),
            ..Default::default()
        })
        .unwrap();
        for topic in ["agora.tickets.events", "agora.tickets.events.dlq"] {
            let event = Event::new("agora/test", "agora.test.ping", "k", None, vec![1]);
            bus.publish(topic, &event).await.unwrap();
        }
    });
}
