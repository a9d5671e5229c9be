//! What one query may cost, replayed as the attack found it: a 391 KB query of nested
//! `or`/`contains` became 28,672 LIKE terms and 7.5 s per request, and a 1 MB body of bad
//! filters produced a 23 MB 422. Both are now a small 422 naming the cap.

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::{Call, Store, problem};

use crate::support::platform;

async fn costly_queries_are_refused_before_the_store(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Cost Co").await;
    let query = |body: Value| {
        p.authed(Method::POST, "/api/v1/analytics/query", &admin)
            .json(&body)
            .call()
    };
    // Nested or/contains with many long values: the cap is named, nothing runs.
    let values: Vec<String> = (0..10).map(|i| format!("{i:0>90}")).collect();
    let leaf = json!(["contains", "zone", values]);
    let level = |inner: Value| json!(["or", vec![inner; 8]]);
    let nested = level(level(level(leaf)));
    let body = json!({"metrics": ["tickets"], "filters": [nested]});
    assert!(body.to_string().len() > 300_000);
    let refused = problem(query(body).await, 422).await;
    let errors = refused["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{refused}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 32 filters")
    );

    // A megabyte of bad filters: 20 problems and a count of the rest, not megabytes.
    let bad = json!({"metrics": ["tickets"], "filters": vec![json!(["nope", "x", ["y"]]); 40_000]});
    let resp = query(bad).await;
    assert_eq!(resp.status(), 422);
    let text = resp.text().await.unwrap();
    assert!(text.len() < 8_000, "{} bytes", text.len());
    assert!(text.contains("39980 more problems not listed"), "{text}");
}

agora_shared::on_sqlite_and_postgres!(costly_queries_are_refused_before_the_store);
