//! The commands an orchestrator runs around the services: `agora health` (container health
//! checks), `agora migrate --wait` (init containers waiting for the migration Job), migrations
//! started at once by several processes, and misspelt configuration keys.

use std::{
    net::TcpListener,
    process::Stdio,
    time::{Duration, Instant},
};

use agora_shared::{db::Db, testing::TestDb};

use super::agora;

/// Runs to completion: (exit code, stdout, stderr).
fn output(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd.output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn health_is_0_for_a_2xx_answer_and_1_otherwise() {
    // Nothing listens there.
    let port = agora_shared::testing::unclaimed_port();
    let (code, _, stderr) = output(agora().args([
        "health",
        "--url",
        &format!("http://127.0.0.1:{port}/health/live"),
    ]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("does not answer"), "{stderr}");

    // A server answering 503, then 200.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health/ready", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        for status in ["503 Service Unavailable", "200 OK"] {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = std::io::Read::read(&mut stream, &mut request);
            let answer =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            std::io::Write::write_all(&mut stream, answer.as_bytes()).unwrap();
        }
    });
    let (code, _, stderr) = output(agora().args(["health", "--url", &url]));
    assert_eq!(
        (code, stderr.trim()),
        (
            1,
            format!("error: {url} answers 503 Service Unavailable").as_str()
        )
    );
    let (code, stdout, _) = output(agora().args(["health", "--url", &url]));
    assert_eq!(
        (code, stdout.trim()),
        (0, format!("{url}: 200 OK").as_str())
    );
    server.join().unwrap();
}

#[test]
fn migrate_wait_returns_once_another_process_has_migrated() {
    let mut stores = vec![TestDb::sqlite()];
    stores.extend(TestDb::postgres());
    for db in stores {
        let env = [
            ("AGORA_MODE", "distributed"),
            ("AGORA_TICKETS__DATABASE_URL", db.url.as_str()),
        ];
        // Nothing applies them: it gives up after its timeout, naming what is missing.
        let wait = |timeout: &str| {
            let mut cmd = agora();
            cmd.args([
                "migrate",
                "--service",
                "tickets",
                "--wait",
                "--timeout-secs",
                timeout,
            ])
            .envs(env);
            cmd
        };
        let (code, stdout, stderr) = output(&mut wait("1"));
        assert_eq!(code, 2, "{}: {stdout}{stderr}", db.backend);
        assert!(stdout.contains("tickets: waiting: "), "{stdout}");
        assert!(
            stderr.contains("tickets: the store is not migrated after 1s")
                && stderr.contains("migration(s) pending"),
            "{}: {stderr}",
            db.backend
        );

        // An init container waits; the migration Job runs; the init container is done.
        let waiter = wait("60")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let (code, stdout, stderr) =
            output(agora().args(["migrate", "--service", "tickets"]).envs(env));
        assert_eq!(code, 0, "{stdout}{stderr}");
        let started = Instant::now();
        let out = waiter.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {stdout}{}",
            db.backend,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.ends_with("tickets: the store is up to date\n"),
            "{stdout}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn migrations_started_at_once_apply_each_migration_once() {
    // Replicas started with --migrate, or one beside the migration Job, on one PostgreSQL
    // store: each waits for the others' lock instead of failing on a half-made schema.
    let Some(db) = TestDb::postgres() else { return };
    let total = Db::pending(&db.url, &agora_tickets::MIGRATIONS).unwrap();
    assert!(total > 0);
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || Db::migrate(&url, agora_tickets::MIGRATIONS))
        })
        .collect();
    let applied: Vec<usize> = runs
        .into_iter()
        .map(|run| run.join().unwrap().expect("every run succeeds"))
        .collect();
    assert_eq!(applied.iter().sum::<usize>(), total, "{applied:?}");
    assert_eq!(Db::pending(&db.url, &agora_tickets::MIGRATIONS).unwrap(), 0);
}

#[test]
fn a_misspelt_configuration_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = output(
        agora()
            .args(["migrate", "--service", "tickets"])
            .current_dir(dir.path())
            .env("AGORA_TICKETS__HTTP_ADR", "0.0.0.0:8082")
            .env("AGORA_KAFKA__BROKER", "kafka:9092")
            .env("AGORA_LOGLEVEL", "debug")
            // Real keys, an operator's own upstream and a command-line option: no warning.
            .env("AGORA_TICKETS__HTTP_ADDR", "0.0.0.0:8082")
            .env("AGORA_ANALYTICS__TICKETS_CREDENTIAL", "agora_key")
            .env(
                "AGORA_GATEWAY__SERVICES__BILLING__URL",
                "http://billing:8090",
            )
            .env("AGORA_GATEWAY__RATE_LIMITS__API__LIMIT", "500")
            .env("AGORA_NEW_USER_PASSWORD", "x"),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            "warning: `kafka.broker` (AGORA_KAFKA__BROKER) is not a configuration key; it is ignored",
            "warning: `loglevel` (AGORA_LOGLEVEL) is not a configuration key; it is ignored",
            "warning: `tickets.http_adr` (AGORA_TICKETS__HTTP_ADR) is not a configuration key; it is ignored",
        ]
    );
}

#[test]
fn brokers_that_refuse_the_topics_leave_every_store_migrated() {
    let stores: Vec<TestDb> = (0..3).map(|_| TestDb::sqlite()).collect();
    let dead = format!("127.0.0.1:{}", agora_shared::testing::unclaimed_port());
    let (code, stdout, stderr) = output(
        agora()
            .arg("migrate")
            .env("AGORA_MODE", "distributed")
            .env("AGORA_AUTH__DATABASE_URL", &stores[0].url)
            .env("AGORA_TICKETS__DATABASE_URL", &stores[1].url)
            .env("AGORA_ANALYTICS__DATABASE_URL", &stores[2].url)
            .env("AGORA_KAFKA__BROKERS", &dead)
            .env("AGORA_KAFKA__PUBLISH_TIMEOUT_MS", "2000"),
    );
    assert_eq!(code, 2, "{stdout}{stderr}");
    for (db, migrations) in stores.iter().zip([
        agora_auth::MIGRATIONS,
        agora_tickets::MIGRATIONS,
        agora_analytics::MIGRATIONS,
    ]) {
        assert_eq!(Db::pending(&db.url, &migrations).unwrap(), 0, "{stdout}");
    }
}
