//! Register, login, refresh, logout, me, password change and reset; malformed input.

use reqwest::Method;
use serde_json::json;

use agora_shared::testing::TestDb;

use crate::support::{Call, PASSWORD, TestApp, fields, problem, session, spawn};

async fn register_login_me_and_events(db: TestDb) {
    let app = spawn(db).await;
    let resp = app
        .post("/api/v1/auth/register", json!({"email": "Ana@Acme.test", "password": PASSWORD, "name": "Ana", "tenant_name": "Acme"}))
        .await;
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().get("location").is_some());
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["email"], "ana@acme.test");
    assert_eq!(body["user"]["role"], "TENANT_ADMIN");
    assert_eq!(body["user"]["status"], "ACTIVE");
    assert_eq!(body["tenant"]["name"], "Acme");
    assert_eq!(body["tenant"]["plan"], "STARTER");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let s = session(body);

    let me: serde_json::Value = app
        .authed(Method::GET, "/api/v1/auth/me", &s.access)
        .value()
        .await;
    assert_eq!(me["id"], s.user_id.as_str());

    let resp = app
        .authed(Method::PUT, "/api/v1/auth/me", &s.access)
        .json(&json!({"name": "Ana B"}))
        .call()
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["name"],
        "Ana B"
    );
    let empty = app
        .authed(Method::PUT, "/api/v1/auth/me", &s.access)
        .json(&json!({"name": ""}))
        .call()
        .await;
    assert_eq!(fields(&problem(empty, 422).await), vec!["name"]);

    let resp = app.login("ANA@acme.test", PASSWORD).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["id"], s.user_id.as_str());

    // The registration went out on the bus as a CloudEvent with its tenant.
    let event = app
        .event(|e| e.event_type == "agora.auth.user.registered")
        .await;
    assert_eq!(event.source, "agora/auth");
    assert_eq!(event.key, s.user_id);
    assert_eq!(event.tenant_id.as_deref(), Some(s.tenant_id.as_str()));
    let msg: agora_proto::events::v1::UserChanged =
        prost::Message::decode(event.data.as_slice()).unwrap();
    assert_eq!(msg.email, "ana@acme.test");
    assert_eq!(msg.role, "TENANT_ADMIN");
    let audit = app
        .event(|e| e.event_type == "agora.auth.audit.login.succeeded")
        .await;
    assert_eq!(audit.tenant_id.as_deref(), Some(s.tenant_id.as_str()));

    // Without a credential: 401.
    problem(app.req(Method::GET, "/api/v1/auth/me").call().await, 401).await;
}

async fn register_conflicts_and_rules(db: TestDb) {
    let app = spawn(db).await;
    app.register("a@x.test", "Acme").await;
    let dup_email = app
        .post(
            "/api/v1/auth/register",
            json!({"email": "A@x.test", "password": PASSWORD, "name": "A", "tenant_name": "Other"}),
        )
        .await;
    let body = problem(dup_email, 409).await;
    assert_eq!(body["code"], "auth.email_taken", "{body}");
    let dup_tenant = app
        .post("/api/v1/auth/register", json!({"email": "b@x.test", "password": PASSWORD, "name": "B", "tenant_name": " acme "}))
        .await;
    let body = problem(dup_tenant, 409).await;
    assert_eq!(body["code"], "auth.tenant_name_taken", "{body}");

    for (password, rule) in [
        ("Sh0rt!", "8 to 128"),
        ("alllower1!", "upper-case"),
        ("ALLUPPER1!", "lower-case"),
        ("NoDigits!!", "digit"),
        ("NoSymbol12", "symbol"),
    ] {
        let resp = app
            .post("/api/v1/auth/register", json!({"email": "c@x.test", "password": password, "name": "C", "tenant_name": "Cee"}))
            .await;
        let body = problem(resp, 422).await;
        assert_eq!(fields(&body), vec!["password"], "{password}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(rule), "{password}: {message}");
    }
    let long = format!("Aa1!{}", "x".repeat(125));
    let body = problem(
        app.post(
            "/api/v1/auth/register",
            json!({"email": "c@x.test", "password": long, "name": "C", "tenant_name": "Cee"}),
        )
        .await,
        422,
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("8 to 128")
    );
}

async fn bad_bodies_are_4xx_problems(db: TestDb) {
    let app = spawn(db).await;
    let post_raw = |body: &'static str, ct: &'static str| {
        app.req(Method::POST, "/api/v1/auth/login")
            .header("content-type", ct)
            .body(body)
            .send()
    };
    problem(
        post_raw("{\"email\": ", "application/json").await.unwrap(),
        400,
    )
    .await;
    problem(post_raw("", "application/json").await.unwrap(), 400).await;
    problem(post_raw("{}", "text/plain").await.unwrap(), 400).await;
    let body = problem(
        post_raw(
            "{\"email\":\"a@b.c\",\"password\":\"x\",\"admin\":true}",
            "application/json",
        )
        .await
        .unwrap(),
        422,
    )
    .await;
    assert_eq!(fields(&body), vec!["admin"]);
    let body = problem(
        post_raw("{\"email\":\"a@b.c\"}", "application/json")
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_eq!(fields(&body), vec!["password"]);
    let body = problem(
        post_raw("{\"email\":5,\"password\":\"x\"}", "application/json")
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_eq!(fields(&body), vec!["email"]);
    let huge = format!(
        "{{\"email\":\"{}\",\"password\":\"x\"}}",
        "a".repeat(2 * 1024 * 1024)
    );
    let resp = app
        .req(Method::POST, "/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(huge)
        .call()
        .await;
    problem(resp, 413).await;
    problem(app.req(Method::GET, "/api/v1/nowhere").call().await, 404).await;
    problem(
        app.req(Method::GET, "/api/v1/tenants?limit=abc")
            .bearer_auth("x")
            .call()
            .await,
        401,
    )
    .await;
}

async fn wrong_email_and_wrong_password_look_the_same(db: TestDb) {
    let app = spawn(db).await;
    app.register("a@x.test", "Acme").await;
    let unknown = problem(app.login("nobody@x.test", PASSWORD).await, 401).await;
    let wrong = problem(app.login("a@x.test", "Wrong-pass1!").await, 401).await;
    assert_eq!(unknown, wrong);
    let failed = app
        .event(|e| e.event_type == "agora.auth.audit.login.failed")
        .await;
    assert!(!failed.data.is_empty());
}

async fn repeated_failures_lock_the_account(db: TestDb) {
    let app = spawn(db).await;
    app.register("a@x.test", "Acme").await;
    // lockout_threshold = 3 in tests.
    for _ in 0..3 {
        problem(app.login("a@x.test", "Wrong-pass1!").await, 401).await;
    }
    let resp = app.login("a@x.test", PASSWORD).await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Unknown accounts lock the same way, so a lockout reveals nothing.
    for _ in 0..3 {
        problem(app.login("ghost@x.test", "Wrong-pass1!").await, 401).await;
    }
    assert_eq!(
        app.login("ghost@x.test", "Wrong-pass1!").await.status(),
        429
    );
}

async fn concurrent_failures_are_all_counted(db: TestDb) {
    let app = spawn(db).await;
    app.register("a@x.test", "Acme").await;
    // Ten wrong passwords at once: every one counts, so the account ends up locked.
    let mut handles = Vec::new();
    for _ in 0..10 {
        let client = app.client.clone();
        let url = app.url("/api/v1/auth/login");
        handles.push(tokio::spawn(async move {
            let body = json!({"email": "a@x.test", "password": "Wrong-pass1!"});
            client.post(url).json(&body).call().await.status().as_u16()
        }));
    }
    for h in handles {
        assert!([401, 429].contains(&h.await.unwrap()));
    }
    assert_eq!(app.login("a@x.test", PASSWORD).await.status(), 429);
    let failures: i32 = {
        use agora_auth::schema::login_throttle;
        use diesel::prelude::*;
        app.state
            .db
            .read(|conn| {
                Ok(login_throttle::table
                    .select(login_throttle::failures)
                    .first(conn)?)
            })
            .await
            .unwrap()
    };
    assert!(failures >= 3, "{failures}");
}

/// The replayed attack: 60 guesses at once. Before, every request read the counter before any
/// failure was written, so all 60 were checked (and a right one among them logged in). Now each
/// guess reserves its attempt first: no more are checked than the threshold allows (3 in
/// tests; the first three to arrive), the rest are refused with 429 unchecked, and the right
/// password sent after them meets the lock.
async fn concurrent_guesses_get_no_more_tries_than_sequential_ones(db: TestDb) {
    let app = spawn(db).await;
    app.register("a@x.test", "Acme").await;
    let guesses = (0..60).map(|i| {
        let req = app.client.post(app.url("/api/v1/auth/login"));
        async move {
            let body = json!({"email": "a@x.test", "password": format!("Wrong-pass{i}!")});
            req.json(&body).call().await.status().as_u16()
        }
    });
    let statuses = futures::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(checked, 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 57);
    let resp = app.login("a@x.test", PASSWORD).await;
    assert_eq!(resp.status(), 429, "the lock did not hold");
    // Nothing is left in flight: every reservation was settled or released.
    let pending: i32 = {
        use agora_auth::schema::login_throttle;
        use diesel::prelude::*;
        let read = |conn: &mut _| {
            Ok(login_throttle::table
                .select(login_throttle::pending)
                .first(conn)?)
        };
        app.state.db.read(read).await.unwrap()
    };
    assert_eq!(pending, 0);
}

/// Lockouts are per account and client address (behind the gateway, the forwarded one), so an
/// attacker locks only themselves out; the audit log names the client, not the gateway; and
/// auth bounds credential requests per client address itself.
async fn lockouts_and_limits_follow_the_client_address(db: TestDb) {
    let options = crate::support::Options {
        configured_key: true,
        extra_toml: "credential_requests_per_minute = 8".into(),
    };
    let app = crate::support::spawn_with(db, options).await;
    app.register("a@x.test", "Acme").await;
    let login_from = |ip: &'static str, password: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": "a@x.test", "password": password}))
            .call()
    };
    for _ in 0..3 {
        problem(login_from("203.0.113.7", "Wrong-pass1!").await, 401).await;
    }
    problem(login_from("203.0.113.7", PASSWORD).await, 429).await;
    // The owner, elsewhere, is not locked out.
    assert_eq!(login_from("198.51.100.2", PASSWORD).await.status(), 200);
    let failed = app
        .event(|e| e.event_type == "agora.auth.audit.login.failed")
        .await;
    let audit = String::from_utf8_lossy(&failed.data).into_owned();
    assert!(
        audit.contains("203.0.113.7"),
        "the client's address is audited: {audit}"
    );
    // Auth's own limit: 8 credential requests a minute per address (5 used by 203.0.113.7).
    let statuses =
        futures::future::join_all((0..5).map(|_| login_from("203.0.113.7", "Wrong-pass1!"))).await;
    let limited = statuses.iter().filter(|r| r.status() == 429).count();
    assert_eq!(limited, 5, "locked out or limited, all refused");
    for i in 0..8 {
        assert_eq!(
            login_from("192.0.2.9", PASSWORD).await.status(),
            200,
            "login {i}"
        );
    }
    let ninth = login_from("192.0.2.9", PASSWORD).await;
    assert_eq!(
        problem(ninth, 429).await["detail"],
        "too many credential requests from this address; retry later"
    );
}

async fn refresh_rotates_and_reuse_revokes_the_family(db: TestDb) {
    let app = spawn(db).await;
    let s = app.register("a@x.test", "Acme").await;
    let first = app
        .post("/api/v1/auth/refresh", json!({"refresh_token": s.refresh}))
        .await;
    assert_eq!(first.status(), 200);
    let next = session(first.json().await.unwrap());
    assert_ne!(next.refresh, s.refresh);
    // Presenting the used token again: 401 and the whole family dies, the new token too.
    let body = problem(
        app.post("/api/v1/auth/refresh", json!({"refresh_token": s.refresh}))
            .await,
        401,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("revoked"));
    problem(
        app.post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": next.refresh}),
        )
        .await,
        401,
    )
    .await;
    app.event(|e| e.event_type == "agora.auth.audit.refresh.reuse_detected")
        .await;
    // Garbage and a second, independent session are unaffected by each other.
    problem(
        app.post("/api/v1/auth/refresh", json!({"refresh_token": "rt_nope"}))
            .await,
        401,
    )
    .await;
    let other = session(app.login("a@x.test", PASSWORD).await.json().await.unwrap());
    assert_eq!(
        app.post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": other.refresh})
        )
        .await
        .status(),
        200
    );
}

async fn concurrent_refreshes_one_wins(db: TestDb) {
    let app = spawn(db).await;
    let s = app.register("a@x.test", "Acme").await;
    let mut handles = Vec::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = app.url("/api/v1/auth/refresh");
        let token = s.refresh.clone();
        handles.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"refresh_token": token}))
                .call()
                .await
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        19,
        "{statuses:?}"
    );
}

async fn logout_ends_the_session(db: TestDb) {
    let app = spawn(db).await;
    let s = app.register("a@x.test", "Acme").await;
    let resp = app
        .authed(Method::POST, "/api/v1/auth/logout", &s.access)
        .call()
        .await;
    assert_eq!(resp.status(), 204);
    let body = problem(
        app.authed(Method::GET, "/api/v1/auth/me", &s.access)
            .call()
            .await,
        401,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("revoked"));
    problem(
        app.post("/api/v1/auth/refresh", json!({"refresh_token": s.refresh}))
            .await,
        401,
    )
    .await;
    // A second session, logged out with its refresh token named in the body.
    let t = session(app.login("a@x.test", PASSWORD).await.json().await.unwrap());
    let resp = app
        .authed(Method::POST, "/api/v1/auth/logout", &t.access)
        .json(&json!({"refresh_token": t.refresh}))
        .call()
        .await;
    assert_eq!(resp.status(), 204);
    problem(
        app.post("/api/v1/auth/refresh", json!({"refresh_token": t.refresh}))
            .await,
        401,
    )
    .await;
    problem(
        app.authed(Method::POST, "/api/v1/auth/logout", &t.access)
            .call()
            .await,
        401,
    )
    .await;
    // Logging out ends every access token of the session, not only the one presented: one
    // from before a refresh stops too.
    let u = session(app.login("a@x.test", PASSWORD).await.json().await.unwrap());
    let body = json!({"refresh_token": u.refresh});
    let refreshed = session(
        app.post("/api/v1/auth/refresh", body)
            .await
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(
        app.authed(Method::GET, "/api/v1/auth/me", &u.access)
            .call()
            .await
            .status(),
        200
    );
    let out = app
        .authed(Method::POST, "/api/v1/auth/logout", &refreshed.access)
        .call()
        .await;
    assert_eq!(out.status(), 204);
    problem(
        app.authed(Method::GET, "/api/v1/auth/me", &u.access)
            .call()
            .await,
        401,
    )
    .await;
}

async fn change_password_ends_other_sessions(db: TestDb) {
    let app = spawn(db).await;
    let here = app.register("a@x.test", "Acme").await;
    let elsewhere = session(app.login("a@x.test", PASSWORD).await.json().await.unwrap());
    let wrong = app
        .authed(Method::POST, "/api/v1/auth/change-password", &here.access)
        .json(&json!({"current_password": "Nope-nope1!", "new_password": "N3w-password!"}))
        .call()
        .await;
    assert_eq!(fields(&problem(wrong, 422).await), vec!["current_password"]);
    let weak = app
        .authed(Method::POST, "/api/v1/auth/change-password", &here.access)
        .json(&json!({"current_password": PASSWORD, "new_password": "weak"}))
        .call()
        .await;
    assert_eq!(fields(&problem(weak, 422).await), vec!["new_password"]);
    let ok = app
        .authed(Method::POST, "/api/v1/auth/change-password", &here.access)
        .json(&json!({"current_password": PASSWORD, "new_password": "N3w-password!"}))
        .call()
        .await;
    assert_eq!(ok.status(), 204);
    problem(
        app.post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": elsewhere.refresh}),
        )
        .await,
        401,
    )
    .await;
    assert_eq!(
        app.post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": here.refresh})
        )
        .await
        .status(),
        200
    );
    problem(app.login("a@x.test", PASSWORD).await, 401).await;
    assert_eq!(app.login("a@x.test", "N3w-password!").await.status(), 200);
    app.event(|e| e.event_type == "agora.auth.audit.password.changed")
        .await;
    // The other session's live access token stops at once; this session's keeps working.
    let me = |token: &str| app.authed(Method::GET, "/api/v1/auth/me", token).call();
    problem(me(&elsewhere.access).await, 401).await;
    assert_eq!(me(&here.access).await.status(), 200);
}

/// Demotion and deactivation change what a user may do at once, not when their access token
/// expires: tokens issued before are refused, a fresh sign-in carries the new role.
async fn rights_changes_stop_live_tokens(db: TestDb) {
    let app = spawn(db).await;
    let owner = app.register("owner@x.test", "Acme").await;
    let ops = app.member(&owner, "ops@x.test", &[]).await;
    let path = format!("/api/v1/tenants/{}/users/{}", owner.tenant_id, ops.user_id);
    let users = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    app.authed(Method::PATCH, &path, &owner)
        .json(&json!({"role": "TENANT_ADMIN"}))
        .value()
        .await;
    let before = app.sign_in("ops@x.test").await;
    assert_eq!(
        app.authed(Method::GET, &users, &before)
            .call()
            .await
            .status(),
        200
    );
    app.authed(Method::PATCH, &path, &owner)
        .json(&json!({"role": "TENANT_USER"}))
        .value()
        .await;
    let refused = problem(app.authed(Method::GET, &users, &before).call().await, 401).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("revoked"),
        "{refused}"
    );
    let after = app.sign_in("ops@x.test").await;
    problem(app.authed(Method::GET, &users, &after).call().await, 403).await;
    assert_eq!(
        app.authed(Method::GET, "/api/v1/auth/me", &after)
            .call()
            .await
            .status(),
        200
    );
    // A rename changes no rights: live tokens stay.
    app.authed(Method::PATCH, &path, &owner)
        .json(&json!({"name": "Ops"}))
        .value()
        .await;
    assert_eq!(
        app.authed(Method::GET, "/api/v1/auth/me", &after)
            .call()
            .await
            .status(),
        200
    );
    app.authed(Method::PATCH, &path, &owner)
        .json(&json!({"status": "INACTIVE"}))
        .value()
        .await;
    problem(
        app.authed(Method::GET, "/api/v1/auth/me", &after)
            .call()
            .await,
        401,
    )
    .await;
}

/// The app with a fake SMTP relay, and the reset token of the next mail it receives.
async fn spawn_with_mail(db: TestDb) -> (TestApp, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (port, mail) = crate::support::fake_smtp().await;
    let app = crate::support::spawn_with(
        db,
        crate::support::Options {
            configured_key: true,
            extra_toml: format!(
                "smtp_url = \"smtp://127.0.0.1:{port}\"\nreset_url = \"https://app.example.test/reset\"\ninvite_url = \"https://app.example.test/join\"\n"
            ),
        },
    )
    .await;
    (app, mail)
}

/// Whether `token` appears anywhere in an event's bytes.
fn carries(event: &agora_shared::bus::Event, token: &str) -> bool {
    event
        .data
        .windows(token.len())
        .any(|w| w == token.as_bytes())
        || event.source.contains(token)
        || event.key.contains(token)
}

async fn forgot_and_reset(db: TestDb) {
    let (app, mut mail) = spawn_with_mail(db).await;
    let s = app.register("a@x.test", "Acme").await;
    let known = app
        .post("/api/v1/auth/forgot", json!({"email": "a@x.test"}))
        .await;
    let unknown = app
        .post("/api/v1/auth/forgot", json!({"email": "nobody@x.test"}))
        .await;
    assert_eq!(known.status(), 202);
    assert_eq!(unknown.status(), 202);
    assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap());
    let (message, token) =
        agora_testkit::next_mail(&mut mail, "https://app.example.test/reset").await;
    assert!(message.contains("To: a@x.test"), "{message}");
    assert!(token.starts_with("rst_"), "{token}");
    let event = app
        .event(|e| e.event_type == "agora.auth.password_reset.requested")
        .await;
    let msg: agora_proto::events::v1::PasswordResetRequested =
        prost::Message::decode(event.data.as_slice()).unwrap();
    assert_eq!(msg.user_id, s.user_id);
    assert!(!carries(&event, &token), "the reset token went on the bus");
    let ttl = msg.expires_at_unix - chrono::Utc::now().timestamp();
    assert!((1700..=1800).contains(&ttl), "{ttl}");
    let msg = Token { token };

    let weak = app
        .post(
            "/api/v1/auth/reset",
            json!({"token": msg.token, "new_password": "weak"}),
        )
        .await;
    assert_eq!(fields(&problem(weak, 422).await), vec!["new_password"]);
    let ok = app
        .post(
            "/api/v1/auth/reset",
            json!({"token": msg.token, "new_password": "R3set-password!"}),
        )
        .await;
    assert_eq!(ok.status(), 204);
    let again = app
        .post(
            "/api/v1/auth/reset",
            json!({"token": msg.token, "new_password": "R3set-password!"}),
        )
        .await;
    assert_eq!(fields(&problem(again, 422).await), vec!["token"]);
    // Old sessions are gone, the new password works.
    problem(
        app.post("/api/v1/auth/refresh", json!({"refresh_token": s.refresh}))
            .await,
        401,
    )
    .await;
    assert_eq!(app.login("a@x.test", "R3set-password!").await.status(), 200);
    // Only one reset event: unknown emails produce none.
    assert_eq!(
        app.events_of("agora.auth.password_reset.requested")
            .await
            .len(),
        1
    );
}

async fn invitations_are_emailed_and_never_published(db: TestDb) {
    let (app, mut mail) = spawn_with_mail(db).await;
    let admin = app.register("a@x.test", "Acme").await;
    let invited: serde_json::Value = app
        .authed(
            Method::POST,
            &format!("/api/v1/tenants/{}/users", admin.tenant_id),
            &admin.access,
        )
        .json(&json!({"email": "bo@x.test", "name": "Bo", "role": "TENANT_USER"}))
        .call()
        .await
        .json()
        .await
        .unwrap();
    let from_response = invited["invitation_token"].as_str().unwrap().to_owned();
    let (message, token) =
        agora_testkit::next_mail(&mut mail, "https://app.example.test/join").await;
    assert!(message.contains("To: bo@x.test"), "{message}");
    assert_eq!(
        token, from_response,
        "the mailed link carries the invitation"
    );
    let event = app
        .event(|e| e.event_type == "agora.auth.user.invited")
        .await;
    assert!(
        !carries(&event, &token),
        "the invitation token went on the bus"
    );
    let accepted = app
        .post(
            "/api/v1/auth/accept-invite",
            json!({"token": token, "password": PASSWORD}),
        )
        .await;
    assert_eq!(accepted.status(), 200);
}

/// The reset token, as the steps below use it.
struct Token {
    token: String,
}

agora_testkit::on_every_store!(
    invitations_are_emailed_and_never_published,
    register_login_me_and_events,
    register_conflicts_and_rules,
    bad_bodies_are_4xx_problems,
    wrong_email_and_wrong_password_look_the_same,
    repeated_failures_lock_the_account,
    concurrent_failures_are_all_counted,
    concurrent_guesses_get_no_more_tries_than_sequential_ones,
    lockouts_and_limits_follow_the_client_address,
    refresh_rotates_and_reuse_revokes_the_family,
    concurrent_refreshes_one_wins,
    logout_ends_the_session,
    change_password_ends_other_sessions,
    rights_changes_stop_live_tokens,
    forgot_and_reset,
);
