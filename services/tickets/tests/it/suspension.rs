//! Suspending a tenant, replayed as the attack found it: before, a SUSPENDED tenant still
//! logged in, refreshed, used its API keys and created tickets. Now, through the gateway and
//! at once: its access tokens and keys are refused (the gateway's and tickets' caches too),
//! login and accept-invite answer 403, refresh 401; other tenants carry on; reactivation lets
//! it sign in again while the tokens from before stay refused.

use reqwest::Method;
use serde_json::json;

use agora_shared::testing::{Call, Store, problem};

use crate::support::platform;

async fn a_suspended_tenant_is_refused_everywhere_at_once(store: Store) {
    let p = platform(store).await;
    let acme = p.tenant("Acme").await;
    let tech = p.member(&acme, "tech@acme.test", &[]).await;
    let other = p.tenant("Other").await;
    let created = p
        .authed(Method::POST, "/api/v1/api-keys", &acme)
        .json(&json!({"name": "ci", "role": "TENANT_ADMIN"}))
        .value()
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let invite = json!({"email": "late@acme.test", "name": "Late", "role": "TENANT_USER"});
    let users = format!("/api/v1/tenants/{}/users", acme.tenant_id);
    let pending = p
        .authed(Method::POST, &users, &acme)
        .json(&invite)
        .value()
        .await;
    let ticket = json!({"title": "Splice", "category": "REPAIR", "priority": "LOW"});
    // Every credential works, and the key's verification is now cached at the gateway and
    // in tickets.
    for who in [&acme.access, &tech.access, &key] {
        let resp = p
            .authed(Method::POST, "/api/v1/tickets", who)
            .json(&ticket)
            .call()
            .await;
        assert_eq!(resp.status(), 201);
    }

    let root = p.platform_admin().await;
    let tenant = format!("/api/v1/tenants/{}", acme.tenant_id);
    let suspend = json!({"status": "SUSPENDED"});
    p.authed(Method::PATCH, &tenant, &root)
        .json(&suspend)
        .value()
        .await;

    for who in [&acme.access, &tech.access, &key] {
        let resp = p
            .authed(Method::POST, "/api/v1/tickets", who)
            .json(&ticket)
            .call()
            .await;
        problem(resp, 401).await;
        let resp = p.authed(Method::GET, "/api/v1/tickets", who).call().await;
        problem(resp, 401).await;
    }
    let login = json!({"email": "tech@acme.test", "password": agora_testkit::PASSWORD});
    let refused = problem(p.post("/api/v1/auth/login", login.clone()).await, 403).await;
    assert_eq!(refused["code"], "auth.tenant_suspended");
    let refresh = json!({"refresh_token": acme.refresh});
    problem(p.post("/api/v1/auth/refresh", refresh).await, 401).await;
    let accept = json!({"token": pending["invitation_token"], "password": agora_testkit::PASSWORD});
    let refused = problem(
        p.post("/api/v1/auth/accept-invite", accept.clone()).await,
        403,
    )
    .await;
    assert_eq!(refused["code"], "auth.tenant_suspended");
    // Another tenant is untouched.
    let resp = p
        .authed(Method::POST, "/api/v1/tickets", &other)
        .json(&ticket)
        .call()
        .await;
    assert_eq!(resp.status(), 201);
    // The tenant holding the platform admins cannot be suspended.
    let platform_tenant = format!("/api/v1/tenants/{}", root.tenant_id);
    let resp = p
        .authed(Method::PATCH, &platform_tenant, &root)
        .json(&suspend)
        .call()
        .await;
    problem(resp, 409).await;

    // Reactivated: signing in works again (and the kept invitation), old tokens stay refused.
    let active = json!({"status": "ACTIVE"});
    p.authed(Method::PATCH, &tenant, &root)
        .json(&active)
        .value()
        .await;
    let fresh = p.sign_in("tech@acme.test").await;
    let resp = p
        .authed(Method::GET, "/api/v1/tickets", &fresh)
        .call()
        .await;
    assert_eq!(resp.status(), 200);
    problem(
        p.authed(Method::GET, "/api/v1/tickets", &tech).call().await,
        401,
    )
    .await;
    assert_eq!(
        p.post("/api/v1/auth/accept-invite", accept).await.status(),
        200
    );
}

agora_shared::on_sqlite_and_postgres!(a_suspended_tenant_is_refused_everywhere_at_once);
