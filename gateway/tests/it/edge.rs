//! Authentication at the edge: public routes, tokens, API keys, forged and revoked credentials.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Call, PASSWORD, problem, stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_before_the_upstream() {
    let s = stack("", "").await;
    let user = s.register("a@x.test", "Acme").await;

    // Public routes need no credential; everything else does.
    let jwks = s.req(Method::GET, "/.well-known/jwks.json").call().await;
    assert_eq!(jwks.status(), 200);
    problem(
        s.req(Method::GET, "/api/v1/echo/anything").call().await,
        401,
    )
    .await;
    assert_eq!(s.hits(), 0);

    let ok = s.get_as("/api/v1/echo/anything", &user.access).call().await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    // The original credential is forwarded for the service to verify again.
    assert_eq!(
        body["headers"]["authorization"],
        format!("Bearer {}", user.access)
    );
    assert_eq!(s.hits(), 1);

    // Forged, expired and wrongly-signed tokens stop at the edge.
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64, aud: &str| {
        json!({"iss": "agora", "aud": aud, "sub": user.user_id, "tid": user.tenant_id, "role": "TENANT_ADMIN",
               "email": "a@x.test", "jti": format!("j{exp}{aud}"), "iat": now - 1000, "nbf": now - 1000, "exp": exp})
    };
    let sign = |key: &agora_shared::tokens::KeyPair, c: &Value| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(s.key.kid.clone());
        jsonwebtoken::encode(
            &h,
            c,
            &EncodingKey::from_ed_pem(key.private_pem().as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let stranger = agora_shared::tokens::KeyPair::generate();
    for (what, token) in [
        ("expired", sign(&s.key, &claims(now - 120, "agora"))),
        ("wrong audience", sign(&s.key, &claims(now + 600, "other"))),
        (
            "forged signature",
            sign(&stranger, &claims(now + 600, "agora")),
        ),
        ("garbage", "a.b.c".to_owned()),
    ] {
        let resp = s.get_as("/api/v1/echo/anything", &token).call().await;
        assert_eq!(resp.status(), 401, "{what}");
    }
    assert_eq!(s.hits(), 1, "no forged request reached the upstream");

    // After logout the token is refused at the edge at once.
    let out = s
        .req(Method::POST, "/api/v1/auth/logout")
        .bearer_auth(&user.access)
        .call()
        .await;
    assert_eq!(out.status(), 204);
    let body = problem(
        s.get_as("/api/v1/echo/anything", &user.access).call().await,
        401,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("revoked"));
    assert_eq!(s.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_and_credential_smuggling() {
    let s = stack("", "").await;
    let user = s.register("a@x.test", "Acme").await;
    let created: Value = s
        .req(Method::POST, "/api/v1/api-keys")
        .bearer_auth(&user.access)
        .json(&json!({"name": "ci", "role": "TENANT_USER"}))
        .value()
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();

    assert_eq!(
        s.req(Method::GET, "/api/v1/echo/k")
            .header("x-api-key", &key)
            .call()
            .await
            .status(),
        200
    );
    assert_eq!(s.get_as("/api/v1/echo/k", &key).call().await.status(), 200);
    problem(
        s.req(Method::GET, "/api/v1/echo/k")
            .header("x-api-key", "agk_unknown")
            .call()
            .await,
        401,
    )
    .await;

    // Two different credentials: refused, on protected and public routes alike.
    let both = s
        .get_as("/api/v1/echo/k", &user.access)
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
    let both_public = s
        .req(Method::POST, "/api/v1/auth/login")
        .bearer_auth(&user.access)
        .header("x-api-key", &key)
        .json(&json!({"email": "a@x.test", "password": PASSWORD}))
        .call()
        .await;
    problem(both_public, 401).await;

    // A revoked key stops working within the cache time (1 s here).
    let revoked = s
        .req(Method::DELETE, &format!("/api/v1/api-keys/{id}"))
        .bearer_auth(&user.access)
        .call()
        .await;
    assert_eq!(revoked.status(), 204);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    problem(
        s.req(Method::GET, "/api/v1/echo/k")
            .header("x-api-key", &key)
            .call()
            .await,
        401,
    )
    .await;
}

/// The session routes through the gateway, as a browser uses them: refresh rotates, forgot
/// mails a link whose token resets the password, and the reset ends the old sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_forgot_and_reset_through_the_gateway() {
    let (port, mut mail) = agora_testkit::fake_smtp().await;
    let url = "https://app.example.test/reset";
    let settings = format!("smtp_url = \"smtp://127.0.0.1:{port}\"\nreset_url = \"{url}\"");
    let mut p = agora_testkit::Platform::builder(agora_shared::testing::TestDb::sqlite)
        .auth(&settings)
        .start()
        .await;
    p.gateway().await;
    let ana = p.register("ana@x.test", "Acme").await;

    let refreshed: Value = p
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": ana.refresh}),
        )
        .await
        .json()
        .await
        .unwrap();
    let fresh = refreshed["access_token"].as_str().unwrap();
    assert_eq!(
        p.authed(Method::GET, "/api/v1/auth/me", fresh)
            .call()
            .await
            .status(),
        200
    );
    let again = p
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": ana.refresh}),
        )
        .await;
    problem(again, 401).await;

    let forgot = p
        .post("/api/v1/auth/forgot", json!({"email": "ana@x.test"}))
        .await;
    assert_eq!(forgot.status(), 202);
    let (_, token) = agora_testkit::next_mail(&mut mail, url).await;
    let reset = json!({"token": token, "new_password": "N3w-password!"});
    assert_eq!(
        p.post("/api/v1/auth/reset", reset.clone()).await.status(),
        204
    );
    problem(p.post("/api/v1/auth/reset", reset).await, 422).await;
    problem(p.login("ana@x.test", PASSWORD).await, 401).await;
    assert_eq!(p.login("ana@x.test", "N3w-password!").await.status(), 200);
    problem(
        p.authed(Method::GET, "/api/v1/auth/me", fresh).call().await,
        401,
    )
    .await;
}
