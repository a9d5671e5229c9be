//! Tenants and their users: platform vs tenant admins, isolation, invitations, the last-admin
//! rule.

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::TestDb;

use crate::support::{Call, PASSWORD, problem, session, spawn};

async fn platform_admin_manages_tenants(db: TestDb) {
    let app = spawn(db).await;
    let root = app.platform_admin().await;
    let resp = app
        .authed(Method::POST, "/api/v1/tenants", &root.access)
        .json(&json!({"name": "Gamma", "plan": "PROFESSIONAL"}))
        .call()
        .await;
    assert_eq!(resp.status(), 201);
    let gamma: Value = resp.json().await.unwrap();
    assert_eq!(gamma["plan"], "PROFESSIONAL");
    let id = gamma["id"].as_str().unwrap();
    let bad = app
        .authed(Method::POST, "/api/v1/tenants", &root.access)
        .json(&json!({"name": "Delta", "plan": "GOLD"}))
        .call()
        .await;
    assert_eq!(
        crate::support::fields(&problem(bad, 422).await),
        vec!["plan"]
    );
    let dup = app
        .authed(Method::POST, "/api/v1/tenants", &root.access)
        .json(&json!({"name": "gamma"}))
        .call()
        .await;
    problem(dup, 409).await;

    let page: Value = app
        .authed(Method::GET, "/api/v1/tenants?limit=1", &root.access)
        .value()
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let page2: Value = app
        .authed(
            Method::GET,
            &format!("/api/v1/tenants?limit=1&cursor={cursor}"),
            &root.access,
        )
        .value()
        .await;
    assert_ne!(page2["items"][0]["id"], page["items"][0]["id"]);
    problem(
        app.authed(Method::GET, "/api/v1/tenants?limit=0", &root.access)
            .call()
            .await,
        422,
    )
    .await;
    problem(
        app.authed(Method::GET, "/api/v1/tenants?cursor=%21%21", &root.access)
            .call()
            .await,
        422,
    )
    .await;

    let resp = app
        .authed(
            Method::PATCH,
            &format!("/api/v1/tenants/{id}"),
            &root.access,
        )
        .json(&json!({"status": "SUSPENDED"}))
        .call()
        .await;
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "SUSPENDED");
    let resp = app
        .authed(
            Method::DELETE,
            &format!("/api/v1/tenants/{id}"),
            &root.access,
        )
        .call()
        .await;
    assert_eq!(resp.status(), 204);
    problem(
        app.authed(Method::GET, &format!("/api/v1/tenants/{id}"), &root.access)
            .call()
            .await,
        404,
    )
    .await;
    app.event(|e| e.event_type == "agora.auth.tenant.deleted")
        .await;
    problem(
        app.authed(
            Method::DELETE,
            &format!("/api/v1/tenants/{}", root.tenant_id),
            &root.access,
        )
        .call()
        .await,
        409,
    )
    .await;
}

async fn tenant_admin_sees_only_its_tenant(db: TestDb) {
    let app = spawn(db).await;
    let a = app.register("a@x.test", "Acme").await;
    let b = app.register("b@y.test", "Beta").await;
    let list: Value = app
        .authed(Method::GET, "/api/v1/tenants", &a.access)
        .value()
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], a.tenant_id.as_str());
    let own = app
        .authed(
            Method::PATCH,
            &format!("/api/v1/tenants/{}", a.tenant_id),
            &a.access,
        )
        .json(&json!({"name": "Acme Ltd"}))
        .call()
        .await;
    assert_eq!(own.json::<Value>().await.unwrap()["name"], "Acme Ltd");
    problem(
        app.authed(
            Method::PATCH,
            &format!("/api/v1/tenants/{}", a.tenant_id),
            &a.access,
        )
        .json(&json!({"plan": "ENTERPRISE"}))
        .call()
        .await,
        403,
    )
    .await;
    problem(
        app.authed(Method::POST, "/api/v1/tenants", &a.access)
            .json(&json!({"name": "Mine"}))
            .call()
            .await,
        403,
    )
    .await;
    // Tenant B's tenant and users are 404 on every route.
    let tb = format!("/api/v1/tenants/{}", b.tenant_id);
    let users_b = format!("{tb}/users");
    let user_b = format!("{users_b}/{}", b.user_id);
    for (method, path, body) in [
        (Method::GET, tb.clone(), None),
        (Method::PATCH, tb.clone(), Some(json!({"name": "Pwned"}))),
        (Method::GET, users_b.clone(), None),
        (
            Method::POST,
            users_b.clone(),
            Some(json!({"email": "spy@x.test", "name": "Spy", "role": "TENANT_USER"})),
        ),
        (Method::GET, user_b.clone(), None),
        (
            Method::PATCH,
            user_b.clone(),
            Some(json!({"role": "TENANT_USER"})),
        ),
        (Method::DELETE, user_b.clone(), None),
    ] {
        let mut req = app.authed(method.clone(), &path, &a.access);
        if let Some(body) = body {
            req = req.json(&body);
        }
        problem(req.call().await, 404).await;
    }
    // A's user ids are not reachable through A's own tenant path either when they are B's.
    problem(
        app.authed(
            Method::GET,
            &format!("/api/v1/tenants/{}/users/{}", a.tenant_id, b.user_id),
            &a.access,
        )
        .call()
        .await,
        404,
    )
    .await;
    problem(app.authed(Method::DELETE, &tb, &a.access).call().await, 403).await;
    // B is untouched.
    let me: Value = app
        .authed(Method::GET, "/api/v1/auth/me", &b.access)
        .value()
        .await;
    assert_eq!(me["role"], "TENANT_ADMIN");
}

async fn invitation_flow(db: TestDb) {
    let app = spawn(db).await;
    let a = app.register("a@x.test", "Acme").await;
    let path = format!("/api/v1/tenants/{}/users", a.tenant_id);
    let bad = app
        .authed(Method::POST, &path, &a.access)
        .json(&json!({"email": "u@x.test", "name": "U", "role": "PLATFORM_ADMIN"}))
        .call()
        .await;
    assert_eq!(
        crate::support::fields(&problem(bad, 422).await),
        vec!["role"]
    );
    let resp = app
        .authed(Method::POST, &path, &a.access)
        .json(&json!({"email": "u@x.test", "name": "U", "role": "TENANT_USER", "permissions": ["tickets:manage"]}))
        .call().await;
    assert_eq!(resp.status(), 201);
    let invited: Value = resp.json().await.unwrap();
    assert_eq!(invited["user"]["status"], "INVITED");
    let token = invited["invitation_token"].as_str().unwrap().to_owned();
    let event = app
        .event(|e| e.event_type == "agora.auth.user.invited")
        .await;
    let msg: agora_proto::events::v1::UserChanged =
        prost::Message::decode(event.data.as_slice()).unwrap();
    assert_eq!(msg.email, "u@x.test");
    assert!(
        !event
            .data
            .windows(token.len())
            .any(|w| w == token.as_bytes()),
        "the invitation token went on the bus"
    );
    problem(
        app.authed(Method::POST, &path, &a.access)
            .json(&json!({"email": "U@x.test", "name": "U", "role": "TENANT_USER"}))
            .call()
            .await,
        409,
    )
    .await;
    // Invited users cannot log in until they accept.
    problem(app.login("u@x.test", PASSWORD).await, 401).await;
    let weak = app
        .post(
            "/api/v1/auth/accept-invite",
            json!({"token": token, "password": "weak"}),
        )
        .await;
    problem(weak, 422).await;
    let accepted = app
        .post(
            "/api/v1/auth/accept-invite",
            json!({"token": token, "password": PASSWORD, "name": "Una"}),
        )
        .await;
    assert_eq!(accepted.status(), 200);
    let u = session(accepted.json().await.unwrap());
    let me: Value = app
        .authed(Method::GET, "/api/v1/auth/me", &u.access)
        .value()
        .await;
    assert_eq!(me["status"], "ACTIVE");
    assert_eq!(me["name"], "Una");
    assert_eq!(me["permissions"], json!(["tickets:manage"]));
    let by_admin: Value = app
        .authed(Method::GET, &format!("{path}/{}", u.user_id), &a.access)
        .value()
        .await;
    assert_eq!(by_admin["email"], "u@x.test");
    assert_eq!(by_admin["status"], "ACTIVE");
    let again = app
        .post(
            "/api/v1/auth/accept-invite",
            json!({"token": token, "password": PASSWORD}),
        )
        .await;
    problem(again, 422).await;
    assert_eq!(app.login("u@x.test", PASSWORD).await.status(), 200);
    // A TENANT_USER may not manage users.
    problem(app.authed(Method::GET, &path, &u.access).call().await, 403).await;
    let list: Value = app.authed(Method::GET, &path, &a.access).value().await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
}

async fn last_admin_cannot_leave(db: TestDb) {
    let app = spawn(db).await;
    let a = app.register("a@x.test", "Acme").await;
    let me = format!("/api/v1/tenants/{}/users/{}", a.tenant_id, a.user_id);
    for body in [
        json!({"role": "TENANT_USER"}),
        json!({"status": "INACTIVE"}),
    ] {
        problem(
            app.authed(Method::PATCH, &me, &a.access)
                .json(&body)
                .call()
                .await,
            409,
        )
        .await;
    }
    problem(app.authed(Method::DELETE, &me, &a.access).call().await, 409).await;
    // With a second active admin, the first may step down.
    let invited: Value = app
        .authed(
            Method::POST,
            &format!("/api/v1/tenants/{}/users", a.tenant_id),
            &a.access,
        )
        .json(&json!({"email": "b@x.test", "name": "B", "role": "TENANT_ADMIN"}))
        .value()
        .await;
    // An invited admin is not active yet: still the last one.
    problem(
        app.authed(Method::PATCH, &me, &a.access)
            .json(&json!({"role": "TENANT_USER"}))
            .call()
            .await,
        409,
    )
    .await;
    let token = invited["invitation_token"].as_str().unwrap();
    let b = session(
        app.post(
            "/api/v1/auth/accept-invite",
            json!({"token": token, "password": PASSWORD}),
        )
        .await
        .json()
        .await
        .unwrap(),
    );
    let resp = app
        .authed(Method::PATCH, &me, &a.access)
        .json(&json!({"role": "TENANT_USER"}))
        .call()
        .await;
    assert_eq!(resp.status(), 200);
    let b_path = format!("/api/v1/tenants/{}/users/{}", a.tenant_id, b.user_id);
    problem(
        app.authed(Method::PATCH, &b_path, &b.access)
            .json(&json!({"status": "INACTIVE"}))
            .call()
            .await,
        409,
    )
    .await;
    // Deactivating a user ends their sessions.
    let resp = app
        .authed(Method::PATCH, &me, &b.access)
        .json(&json!({"status": "INACTIVE"}))
        .call()
        .await;
    assert_eq!(resp.status(), 200);
    problem(
        app.post("/api/v1/auth/refresh", json!({"refresh_token": a.refresh}))
            .await,
        401,
    )
    .await;
    problem(app.login("a@x.test", PASSWORD).await, 401).await;
    let resp = app.authed(Method::DELETE, &me, &b.access).call().await;
    assert_eq!(resp.status(), 204);
    problem(app.authed(Method::GET, &me, &b.access).call().await, 404).await;
}

/// The platform admins' tenant could be squatted: a tenant registered as "Platform" before the
/// first platform admin was created received it. The name is reserved, however spelled, and
/// the admin tool never adds a platform admin to a tenant holding anyone else.
async fn the_platform_tenant_cannot_be_squatted(db: TestDb) {
    let app = spawn(db).await;
    for name in ["platform", " Platform ", "PLATFORM"] {
        let body = json!({"email": "squat@x.test", "password": PASSWORD, "name": "S", "tenant_name": name});
        let refused = problem(app.post("/api/v1/auth/register", body).await, 409).await;
        assert_eq!(refused["code"], "auth.tenant_name_reserved");
    }
    let owner = app.register("owner@x.test", "Acme").await;
    let rename = json!({"name": "Platform"});
    let path = format!("/api/v1/tenants/{}", owner.tenant_id);
    let refused = problem(
        app.authed(Method::PATCH, &path, &owner.access)
            .json(&rename)
            .call()
            .await,
        409,
    )
    .await;
    assert_eq!(refused["code"], "auth.tenant_name_reserved");
    // A "platform" tenant holding an ordinary user (made before this release) gets no admin.
    let db = &app.state.db;
    agora_auth::admin::create_user(
        db,
        "early@x.test",
        PASSWORD,
        "E",
        agora_shared::http::Role::TenantAdmin,
        "platform",
    )
    .await
    .unwrap();
    let err = agora_auth::admin::create_user(
        db,
        "root@x.test",
        PASSWORD,
        "R",
        agora_shared::http::Role::PlatformAdmin,
        "platform",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not platform admins"), "{err}");
}

agora_testkit::on_every_store!(
    the_platform_tenant_cannot_be_squatted,
    platform_admin_manages_tenants,
    tenant_admin_sees_only_its_tenant,
    invitation_flow,
    last_admin_cannot_leave,
);
