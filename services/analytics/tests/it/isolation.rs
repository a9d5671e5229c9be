//! Every analytics view reads the caller's tenant only: `?tenant_id=` naming another tenant is
//! 403 for tenant users (a platform admin may read any); API keys work here as tokens do, and a
//! revoked key stops here at once (the cached verification is dropped).

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use agora_shared::testing::{Call, Store, problem};

use crate::support::platform;

const VIEWS: [&str; 8] = [
    "/api/v1/dashboard/overview",
    "/api/v1/dashboard/activities",
    "/api/v1/analytics/forecast",
    "/api/v1/analytics/forecast/factors",
    "/api/v1/analytics/performance",
    "/api/v1/analytics/trends",
    "/api/v1/analytics/zones",
    "/api/v1/analytics/tickets/aging",
];

async fn every_view_reads_the_callers_tenant_only(store: Store) {
    let p = platform(store).await;
    let acme = p.tenant("Acme Iso").await;
    let other = p.tenant("Other Iso").await;
    let ticket = json!({"title": "Splice", "category": "REPAIR", "priority": "LOW"});
    p.ticket(&acme, ticket.clone()).await;
    for _ in 0..2 {
        p.ticket(&other, ticket.clone()).await;
    }
    p.ingested(3, Duration::from_secs(20)).await;

    let overview = p.view(&acme, "/api/v1/dashboard/overview").await;
    assert_eq!(overview["tickets"]["total"], 1);
    let root = p.platform_admin().await;
    let theirs = format!("/api/v1/dashboard/overview?tenant_id={}", other.tenant_id);
    assert_eq!(p.view(&root, &theirs).await["tickets"]["total"], 2);
    for view in VIEWS {
        assert_eq!(
            p.authed(Method::GET, view, &acme).call().await.status(),
            200,
            "{view}"
        );
        let snoop = format!("{view}?tenant_id={}", other.tenant_id);
        problem(p.authed(Method::GET, &snoop, &acme).call().await, 403).await;
    }
    let query = json!({"metrics": ["created"], "date_range": "all", "tenant_id": other.tenant_id});
    let resp = p
        .authed(Method::POST, "/api/v1/analytics/query", &acme)
        .json(&query)
        .call()
        .await;
    problem(resp, 403).await;

    // An API key reads like its creator, and stops at once when revoked.
    let created = p
        .authed(Method::POST, "/api/v1/api-keys", &acme)
        .json(&json!({"name": "bi", "role": "TENANT_USER"}))
        .value()
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let by_key = p
        .authed(Method::GET, "/api/v1/dashboard/overview", &key)
        .value()
        .await;
    assert_eq!(by_key["tickets"]["total"], 1);
    let revoke = format!("/api/v1/api-keys/{}", created["id"].as_str().unwrap());
    let resp = p.authed(Method::DELETE, &revoke, &acme).call().await;
    assert_eq!(resp.status(), 204);
    let resp = p
        .authed(Method::GET, "/api/v1/dashboard/overview", &key)
        .call()
        .await;
    problem(resp, 401).await;
}

agora_shared::on_sqlite_and_postgres!(every_view_reads_the_callers_tenant_only);
