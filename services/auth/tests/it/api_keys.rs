//! API keys: shown once, usable as Bearer or X-API-Key, revocable, tenant-scoped.

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::TestDb;

use crate::support::{Call, fields, problem, spawn};

async fn api_key_lifecycle(db: TestDb) {
    let app = spawn(db).await;
    let a = app.register("a@x.test", "Acme").await;
    let b = app.register("b@y.test", "Beta").await;
    let resp = app
        .authed(Method::POST, "/api/v1/api-keys", &a.access)
        .json(&json!({"name": "ci", "role": "TENANT_USER"}))
        .call()
        .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("agk_"));
    let id = created["id"].as_str().unwrap().to_owned();

    // Works as Bearer and as X-API-Key; acts within its tenant and role.
    let me: Value = app
        .authed(Method::GET, "/api/v1/auth/me", &key)
        .value()
        .await;
    assert_eq!(me["id"], a.user_id.as_str());
    let teams = app
        .req(Method::GET, "/api/v1/teams")
        .header("x-api-key", &key)
        .call()
        .await;
    assert_eq!(teams.status(), 200);
    problem(
        app.req(
            Method::GET,
            &format!("/api/v1/tenants/{}/users", a.tenant_id),
        )
        .header("x-api-key", &key)
        .call()
        .await,
        403,
    )
    .await;
    // Two different credentials in one request are refused.
    let both = app
        .authed(Method::GET, "/api/v1/auth/me", &a.access)
        .header("x-api-key", &key)
        .call()
        .await;
    let body = problem(both, 401).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("two different credentials")
    );
    // A key cannot mint keys.
    problem(
        app.authed(Method::POST, "/api/v1/api-keys", &key)
            .json(&json!({"name": "x", "role": "TENANT_USER"}))
            .call()
            .await,
        403,
    )
    .await;

    // Listed without the secret, with last use recorded.
    let list: Value = app
        .authed(Method::GET, "/api/v1/api-keys", &a.access)
        .value()
        .await;
    let item = &list["items"][0];
    assert_eq!(item["id"], id.as_str());
    assert!(item.get("key").is_none());
    assert!(item["last_used_at"].is_string());
    assert!(key.starts_with(item["prefix"].as_str().unwrap()));
    // Stored hashed: the secret appears nowhere in the store.
    let stored: Vec<String> = {
        use agora_auth::schema::api_keys;
        use diesel::prelude::*;
        app.state
            .db
            .read(|conn| Ok(api_keys::table.select(api_keys::key_hash).load(conn)?))
            .await
            .unwrap()
    };
    assert!(!stored.iter().any(|h| h.contains(&key[4..])));

    // Tenant B can neither see nor revoke it.
    let b_list: Value = app
        .authed(Method::GET, "/api/v1/api-keys", &b.access)
        .value()
        .await;
    assert!(b_list["items"].as_array().unwrap().is_empty());
    problem(
        app.authed(Method::DELETE, &format!("/api/v1/api-keys/{id}"), &b.access)
            .call()
            .await,
        404,
    )
    .await;

    assert_eq!(
        app.authed(Method::DELETE, &format!("/api/v1/api-keys/{id}"), &a.access)
            .call()
            .await
            .status(),
        204
    );
    problem(
        app.authed(Method::GET, "/api/v1/auth/me", &key)
            .call()
            .await,
        401,
    )
    .await;
    problem(
        app.authed(Method::DELETE, &format!("/api/v1/api-keys/{id}"), &a.access)
            .call()
            .await,
        404,
    )
    .await;
    app.event(|e| e.event_type == "agora.auth.audit.api_key.revoked")
        .await;

    // Validation: role, expiry.
    let bad = app
        .authed(Method::POST, "/api/v1/api-keys", &a.access)
        .json(&json!({"name": "x", "role": "PLATFORM_ADMIN"}))
        .call()
        .await;
    assert_eq!(fields(&problem(bad, 422).await), vec!["role"]);
    let past = app
        .authed(Method::POST, "/api/v1/api-keys", &a.access)
        .json(&json!({"name": "x", "role": "TENANT_USER", "expires_at": "2020-01-01T00:00:00Z"}))
        .call()
        .await;
    assert_eq!(fields(&problem(past, 422).await), vec!["expires_at"]);
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let short: Value = app
        .authed(Method::POST, "/api/v1/api-keys", &a.access)
        .json(&json!({"name": "short", "role": "TENANT_ADMIN", "expires_at": soon}))
        .value()
        .await;
    let short_key = short["key"].as_str().unwrap();
    assert_eq!(
        app.authed(Method::GET, "/api/v1/auth/me", short_key)
            .call()
            .await
            .status(),
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    problem(
        app.authed(Method::GET, "/api/v1/auth/me", short_key)
            .call()
            .await,
        401,
    )
    .await;
}

/// A key made by a TENANT_ADMIN kept acting as admin after its creator was demoted, and a key
/// could invite a new TENANT_ADMIN who then minted more keys. Now a key acts with at most its
/// creator's current role, stops with its creator, and hands out no access itself.
async fn keys_never_outgrow_their_creator(db: TestDb) {
    let app = spawn(db).await;
    let owner = app.register("owner@x.test", "Acme").await;
    let ops = app.member(&owner, "ops@x.test", &[]).await;
    let path = format!("/api/v1/tenants/{}/users/{}", owner.tenant_id, ops.user_id);
    let promote = json!({"role": "TENANT_ADMIN"});
    app.authed(Method::PATCH, &path, &owner)
        .json(&promote)
        .value()
        .await;
    let ops = app.sign_in("ops@x.test").await;
    let created = app
        .authed(Method::POST, "/api/v1/api-keys", &ops)
        .json(&json!({"name": "ops", "role": "TENANT_ADMIN"}))
        .value()
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let users = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    assert_eq!(
        app.authed(Method::GET, &users, &key).call().await.status(),
        200
    );

    // The key hands out no access: inviting, changing roles or permissions, minting keys.
    let invite = json!({"email": "mole@x.test", "name": "Mole", "role": "TENANT_ADMIN"});
    let refused = app
        .authed(Method::POST, &users, &key)
        .json(&invite)
        .call()
        .await;
    assert_eq!(problem(refused, 403).await["code"], "auth.session_required");
    let own = format!("{users}/{}", ops.user_id);
    let refused = app
        .authed(Method::PATCH, &own, &key)
        .json(&json!({"permissions": ["teams:manage"]}))
        .call()
        .await;
    assert_eq!(problem(refused, 403).await["code"], "auth.session_required");
    let mint = json!({"name": "more", "role": "TENANT_ADMIN"});
    let refused = app
        .authed(Method::POST, "/api/v1/api-keys", &key)
        .json(&mint)
        .call()
        .await;
    assert_eq!(problem(refused, 403).await["code"], "auth.session_required");

    // Demoted: the same key now acts as a TENANT_USER, at once.
    let demote = json!({"role": "TENANT_USER"});
    app.authed(Method::PATCH, &path, &owner)
        .json(&demote)
        .value()
        .await;
    problem(app.authed(Method::GET, &users, &key).call().await, 403).await;
    let me = app
        .authed(Method::GET, "/api/v1/auth/me", &key)
        .value()
        .await;
    assert_eq!(me["id"], ops.user_id.as_str());

    // Deactivated: the key stops.
    let off = json!({"status": "INACTIVE"});
    app.authed(Method::PATCH, &path, &owner)
        .json(&off)
        .value()
        .await;
    problem(
        app.authed(Method::GET, "/api/v1/auth/me", &key)
            .call()
            .await,
        401,
    )
    .await;
}

agora_testkit::on_every_store!(api_key_lifecycle, keys_never_outgrow_their_creator);
