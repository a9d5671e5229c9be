//! Code-exec's events in analytics: a real code-exec on the same bus runs programs and scores
//! an exercise attempt in its sandbox; `/analytics/code` answers runs and acceptance per
//! language and attempts' pass rate, per tenant, and a redelivered event counts once.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use agora_analytics::ingest;
use agora_shared::testing::{Call, Store};
use agora_testkit::{Session, eventually};

agora_shared::on_sqlite_and_postgres!(runs_and_attempts_in_figures);

async fn submit(p: &agora_testkit::Platform, who: &Session, source: &str, expected: &str) {
    let done = p
        .authed(
            Method::POST,
            "/api/v1/code-exec/submissions?wait=true&fields=status",
            who,
        )
        .json(&json!({"source_code": source, "language_id": 71, "expected_output": expected}))
        .value()
        .await;
    assert!(done["status"]["id"].as_i64().unwrap() >= 3, "{done}");
}

async fn figures(p: &agora_testkit::Platform, who: &Session) -> Value {
    p.authed(Method::GET, "/api/v1/analytics/code?date_range=7d", who)
        .value()
        .await
}

async fn runs_and_attempts_in_figures(store: Store) {
    let work = tempfile::tempdir().expect("tempdir");
    let mut kit = agora_testkit::Platform::builder(store)
        .service("analytics", "metrics_scrape_secs = 60")
        .service(
            "code_exec",
            &format!("work_dir = \"{}\"", work.path().display()),
        )
        .start()
        .await;
    let analytics = agora_analytics::start(&kit.context(), kit.shutdown.clone(), None)
        .await
        .expect("analytics starts");
    let state = analytics.state.clone();
    kit.serve(analytics.service);
    let code = agora_code_exec::start(&kit.context(), kit.shutdown.clone())
        .await
        .expect("code-exec starts");
    let code_state = code.state.clone();
    kit.serve(code.service);
    kit.gateway().await;
    let p = kit;
    if let Err(reason) = &code_state.sandbox {
        assert!(
            std::env::var_os("AGORA_TEST_REQUIRE_INFRA").is_none(),
            "the sandbox cannot run here: {reason}"
        );
        eprintln!("SKIPPED: the sandbox cannot run here");
        return;
    }
    let admin = p.tenant("Acme").await;
    let globex = p.tenant("Globex").await;

    // Acme: two Python programs accepted, one wrong answer; an attempt that passes.
    submit(&p, &admin, "print('ok')", "ok").await;
    submit(&p, &admin, "print('ok')", "ok").await;
    submit(&p, &admin, "print('no')", "ok").await;
    p.authed(Method::PUT, "/api/v1/code-exec/exercises/double", &admin)
        .json(&json!({"title": "Double it", "cases": [
            {"stdin": "2", "expected_output": "4"},
            {"stdin": "21", "expected_output": "42", "hidden": true, "points": 3},
        ]}))
        .value()
        .await;
    let attempt = p
        .authed(
            Method::POST,
            "/api/v1/code-exec/exercises/double/attempts?wait=true",
            &admin,
        )
        .json(&json!({"source_code": "print(int(input()) * 2)", "language_id": 71}))
        .value()
        .await;
    assert_eq!(attempt["passed"], true, "{attempt}");
    // Globex: one wrong answer, never in Acme's figures.
    submit(&p, &globex, "print(1)", "2").await;

    let report = eventually(
        Duration::from_secs(20),
        "analytics' code figures",
        || async {
            let report = figures(&p, &admin).await;
            if report["runs"] == 3 && report["attempts"]["attempts"] == 1 {
                Ok(report)
            } else {
                Err(report.to_string())
            }
        },
    )
    .await;
    assert_eq!(report["accepted"], 2);
    assert_eq!(report["acceptance_rate_pct"], 66.67);
    let python = &report["languages"][0];
    assert_eq!(python["language_id"], 71);
    assert!(python["language"].as_str().unwrap().starts_with("Python"));
    assert_eq!(
        (&python["runs"], &python["accepted"]),
        (&json!(3), &json!(2))
    );
    assert_eq!(
        report["attempts"],
        json!({"attempts": 1, "passed": 1, "pass_rate_pct": 100.0, "mean_score_pct": 100.0})
    );
    let theirs = eventually(Duration::from_secs(20), "Globex's figures", || async {
        let report = figures(&p, &globex).await;
        if report["runs"] == 1 {
            Ok(report)
        } else {
            Err(report.to_string())
        }
    })
    .await;
    assert_eq!(theirs["accepted"], 0);
    assert_eq!(theirs["attempts"]["attempts"], 0);

    // Every event again (as a replay after the inbox would bring them): nothing counts twice.
    let topic = agora_shared::bus::topic_for("code-exec");
    let events: Vec<_> = p
        .bus
        .retained(&topic)
        .into_iter()
        .map(|mut e| {
            e.id = uuid::Uuid::now_v7().to_string();
            e
        })
        .collect();
    assert_eq!(events.len(), 5, "four submissions and an attempt");
    state
        .db
        .write(move |conn| ingest::handle_batch(conn, &events))
        .await
        .unwrap();
    assert_eq!(figures(&p, &admin).await, report);
}
