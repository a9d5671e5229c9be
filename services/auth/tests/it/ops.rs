//! Operations endpoints: health, metrics, OpenAPI, request ids.

use reqwest::Method;
use serde_json::Value;

use agora_shared::testing::TestDb;

use crate::support::{Call, spawn};

async fn health_metrics_openapi_request_ids(db: TestDb) {
    let app = spawn(db).await;
    let live = app.req(Method::GET, "/health/live").call().await;
    assert_eq!(live.status(), 200);
    let ready: Value = app.req(Method::GET, "/health/ready").value().await;
    assert_eq!(ready["checks"]["store"], "ok");

    // A request id is generated, or the caller's is echoed.
    let resp = app.req(Method::GET, "/health/live").call().await;
    assert!(!resp.headers()["x-request-id"].is_empty());
    let resp = app
        .req(Method::GET, "/health/live")
        .header("x-request-id", "abc-123")
        .call()
        .await;
    assert_eq!(resp.headers()["x-request-id"], "abc-123");

    app.login("nobody@x.test", "Wrong-pass1!").await;
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("agora_http_requests_total")
                && l.contains("route=\"/api/v1/auth/login\"")
                && l.contains("status=\"401\"")),
        "{metrics}"
    );
    assert!(metrics.contains("agora_http_request_duration_seconds_bucket"));

    // The OpenAPI document covers every route the service serves.
    let doc: Value = app.req(Method::GET, "/openapi.json").value().await;
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/auth/register", "post"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/me", "get"),
        ("/api/v1/auth/me", "put"),
        ("/api/v1/auth/change-password", "post"),
        ("/api/v1/auth/forgot", "post"),
        ("/api/v1/auth/reset", "post"),
        ("/api/v1/auth/accept-invite", "post"),
        ("/api/v1/tenants", "get"),
        ("/api/v1/tenants", "post"),
        ("/api/v1/tenants/{id}", "get"),
        ("/api/v1/tenants/{id}", "patch"),
        ("/api/v1/tenants/{id}", "delete"),
        ("/api/v1/tenants/{id}/users", "get"),
        ("/api/v1/tenants/{id}/users", "post"),
        ("/api/v1/tenants/{id}/users/{user_id}", "get"),
        ("/api/v1/tenants/{id}/users/{user_id}", "patch"),
        ("/api/v1/tenants/{id}/users/{user_id}", "delete"),
        ("/api/v1/teams", "get"),
        ("/api/v1/teams", "post"),
        ("/api/v1/teams/{id}", "get"),
        ("/api/v1/teams/{id}", "patch"),
        ("/api/v1/teams/{id}", "delete"),
        ("/api/v1/teams/{id}/members", "post"),
        ("/api/v1/teams/{id}/members/{user_id}", "delete"),
        ("/api/v1/api-keys", "get"),
        ("/api/v1/api-keys", "post"),
        ("/api/v1/api-keys/{id}", "delete"),
        ("/.well-known/jwks.json", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from openapi"
        );
    }
    let register = &paths["/api/v1/auth/register"]["post"];
    assert!(register["requestBody"].is_object());
    assert!(register["responses"]["201"]["content"]["application/json"]["schema"].is_object());
}

agora_testkit::on_every_store!(health_metrics_openapi_request_ids);
