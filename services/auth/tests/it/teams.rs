//! Teams: CRUD, members from the tenant only, permissions, isolation.

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::TestDb;

use crate::support::{Call, PASSWORD, fields, problem, session, spawn};

async fn teams_crud_members_and_isolation(db: TestDb) {
    let app = spawn(db).await;
    let a = app.register("a@x.test", "Acme").await;
    let b = app.register("b@y.test", "Beta").await;
    let resp = app
        .authed(Method::POST, "/api/v1/teams", &a.access)
        .json(&json!({"name": "North", "zone": "Northern", "skills": ["fiber", "splicing"], "member_ids": [a.user_id]}))
        .call().await;
    assert_eq!(resp.status(), 201);
    let team: Value = resp.json().await.unwrap();
    assert_eq!(team["daily_capacity"], 5);
    assert_eq!(team["skills"], json!(["fiber", "splicing"]));
    assert_eq!(team["member_ids"], json!([a.user_id]));
    let id = team["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/teams/{id}");

    problem(
        app.authed(Method::POST, "/api/v1/teams", &a.access)
            .json(&json!({"name": "North", "zone": "Central"}))
            .call()
            .await,
        409,
    )
    .await;
    let foreign = app
        .authed(Method::POST, "/api/v1/teams", &a.access)
        .json(&json!({"name": "X", "zone": "Z", "member_ids": [b.user_id]}))
        .call()
        .await;
    assert_eq!(fields(&problem(foreign, 422).await), vec!["member_ids"]);
    let invalid = app
        .authed(Method::POST, "/api/v1/teams", &a.access)
        .json(&json!({"name": "", "zone": "Z", "daily_capacity": 0}))
        .call()
        .await;
    assert_eq!(
        fields(&problem(invalid, 422).await),
        vec!["daily_capacity", "name"]
    );

    let patched: Value = app
        .authed(Method::PATCH, &path, &a.access)
        .json(&json!({"daily_capacity": 8, "zone": "Central"}))
        .value()
        .await;
    assert_eq!(patched["daily_capacity"], 8);
    assert_eq!(patched["member_ids"], json!([a.user_id]));

    let filtered: Value = app
        .authed(Method::GET, "/api/v1/teams?zone=Central", &a.access)
        .value()
        .await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    let none: Value = app
        .authed(Method::GET, "/api/v1/teams?zone=Borneo", &a.access)
        .value()
        .await;
    assert!(none["items"].as_array().unwrap().is_empty());

    // Tenant B sees nothing and can change nothing.
    let b_list: Value = app
        .authed(Method::GET, "/api/v1/teams", &b.access)
        .value()
        .await;
    assert!(b_list["items"].as_array().unwrap().is_empty());
    for (method, p, body) in [
        (Method::GET, path.clone(), None),
        (Method::PATCH, path.clone(), Some(json!({"name": "Pwned"}))),
        (Method::DELETE, path.clone(), None),
        (
            Method::POST,
            format!("{path}/members"),
            Some(json!({"user_id": b.user_id})),
        ),
        (
            Method::DELETE,
            format!("{path}/members/{}", a.user_id),
            None,
        ),
    ] {
        let mut req = app.authed(method, &p, &b.access);
        if let Some(body) = body {
            req = req.json(&body);
        }
        problem(req.call().await, 404).await;
    }

    // A plain user reads but cannot write, unless granted teams:manage.
    let invited: Value = app
        .authed(
            Method::POST,
            &format!("/api/v1/tenants/{}/users", a.tenant_id),
            &a.access,
        )
        .json(&json!({"email": "u@x.test", "name": "U", "role": "TENANT_USER"}))
        .value()
        .await;
    let u = session(
        app.post(
            "/api/v1/auth/accept-invite",
            json!({"token": invited["invitation_token"], "password": PASSWORD}),
        )
        .await
        .json()
        .await
        .unwrap(),
    );
    assert_eq!(
        app.authed(Method::GET, &path, &u.access)
            .call()
            .await
            .status(),
        200
    );
    problem(
        app.authed(Method::PATCH, &path, &u.access)
            .json(&json!({"name": "Mine"}))
            .call()
            .await,
        403,
    )
    .await;
    let grant = app
        .authed(
            Method::PATCH,
            &format!("/api/v1/tenants/{}/users/{}", a.tenant_id, u.user_id),
            &a.access,
        )
        .json(&json!({"permissions": ["teams:manage"]}))
        .call()
        .await;
    assert_eq!(grant.status(), 200);
    let u = session(app.login("u@x.test", PASSWORD).await.json().await.unwrap());
    let added: Value = app
        .authed(Method::POST, &format!("{path}/members"), &u.access)
        .json(&json!({"user_id": u.user_id}))
        .value()
        .await;
    assert_eq!(added["member_ids"].as_array().unwrap().len(), 2);
    let resp = app
        .authed(
            Method::DELETE,
            &format!("{path}/members/{}", a.user_id),
            &u.access,
        )
        .call()
        .await;
    assert_eq!(
        resp.json::<Value>().await.unwrap()["member_ids"],
        json!([u.user_id])
    );
    problem(
        app.authed(
            Method::DELETE,
            &format!("{path}/members/{}", a.user_id),
            &u.access,
        )
        .call()
        .await,
        404,
    )
    .await;

    assert_eq!(
        app.authed(Method::DELETE, &path, &a.access)
            .call()
            .await
            .status(),
        204
    );
    problem(app.authed(Method::GET, &path, &a.access).call().await, 404).await;
    let deleted = app
        .event(|e| e.event_type == "agora.auth.team.deleted")
        .await;
    assert_eq!(deleted.key, id);
}

agora_testkit::on_every_store!(teams_crud_members_and_isolation);
