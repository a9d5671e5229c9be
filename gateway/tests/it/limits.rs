//! Rate limits: exact under concurrency, headers on every limited response, 429 with
//! Retry-After.

use reqwest::Method;
use serde_json::json;

use crate::support::{Call, PASSWORD, stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_limit_passes_under_concurrency() {
    let s = stack("", "[gateway.rate_limits.routes]\n\"/api/v1/echo/limited\" = { limit = 100, period_secs = 3600 }\n").await;
    let user = s.register("a@x.test", "Acme").await;
    let mut handles = Vec::new();
    for _ in 0..200 {
        let req = s.get_as("/api/v1/echo/limited", &user.access);
        handles.push(tokio::spawn(
            async move { req.call().await.status().as_u16() },
        ));
    }
    let mut ok = 0;
    let mut limited = 0;
    for h in handles {
        match h.await.unwrap() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited), (100, 100));
    assert_eq!(s.hits(), 100, "refused requests never reach the upstream");

    let resp = s.get_as("/api/v1/echo/limited", &user.access).call().await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["ratelimit-limit"], "100");
    assert_eq!(resp.headers()["ratelimit-remaining"], "0");
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=36).contains(&retry), "{retry}");
    // Other routes have their own allowance.
    let other = s.get_as("/api/v1/echo/other", &user.access).call().await;
    assert_eq!(other.status(), 200);
    assert_eq!(other.headers()["ratelimit-limit"], "100");
    assert_eq!(other.headers()["ratelimit-remaining"], "99");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_and_register_classes() {
    let s = stack("", "").await;
    s.register("a@x.test", "Acme").await;
    // Login: 5 a minute per client IP and account.
    for i in 0..5 {
        let resp = s
            .req(Method::POST, "/api/v1/auth/login")
            .json(&json!({"email": "a@x.test", "password": PASSWORD}))
            .call()
            .await;
        assert_eq!(resp.status(), 200, "login {i}");
        assert!(resp.headers().contains_key("ratelimit-remaining"));
    }
    let sixth = s
        .req(Method::POST, "/api/v1/auth/login")
        .json(&json!({"email": "A@x.test", "password": PASSWORD}))
        .call()
        .await;
    assert_eq!(sixth.status(), 429);
    let retry: u64 = sixth.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry), "{retry}");
    // Another account from the same address still may try.
    let other = s
        .req(Method::POST, "/api/v1/auth/login")
        .json(&json!({"email": "b@x.test", "password": PASSWORD}))
        .call()
        .await;
    assert_eq!(other.status(), 401);

    // Register: 10 a minute per client IP (one was used above).
    let mut statuses = Vec::new();
    for i in 0..10 {
        let resp = s
            .req(Method::POST, "/api/v1/auth/register")
            .json(&json!({"email": format!("u{i}@x.test"), "password": PASSWORD, "name": "U", "tenant_name": format!("T{i}")}))
            .call().await;
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        9,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429));
}

/// The same route spelled with percent-escapes is the same route: the credential and register
/// limits apply to `/api/v1/auth/%6Cogin` as to `/login` (before, 40 of 40 sprays were answered
/// under the ordinary API quota, and 15 of 15 registrations passed a limit of 10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_spellings_meet_the_same_limits() {
    let s = stack("", "").await;
    let ana = s.register("a@x.test", "Acme").await;
    let mut statuses = Vec::new();
    for (i, path) in [
        "/api/v1/auth/%6Cogin",
        "/api/v1/auth/%6c%6F%67%69%6E",
        "/api/v1/%61uth/login",
    ]
    .iter()
    .cycle()
    .take(40)
    .enumerate()
    {
        let resp = s
            .req(Method::POST, path)
            .json(&json!({"email": "a@x.test", "password": format!("guess-{i}")}))
            .call()
            .await;
        statuses.push(resp.status().as_u16());
    }
    // Wrong passwords: the account locks after the service's threshold, and the edge refuses
    // all but 5 a minute for this address and account whatever the spelling.
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        35,
        "{statuses:?}"
    );
    assert!(statuses[..5].iter().all(|s| *s != 429), "{statuses:?}");

    // Registration: 10 a minute per address (one used above), on the escaped path too.
    let mut created = 0;
    for i in 0..15 {
        let resp = s
            .req(Method::POST, "/api/v1/auth/regist%65r")
            .json(&json!({"email": format!("u{i}@x.test"), "password": PASSWORD, "name": "U", "tenant_name": format!("T{i}")}))
            .call()
            .await;
        created += usize::from(resp.status() == 201);
    }
    assert_eq!(created, 9);

    // The canonical path is what the upstream sees, and escapes it must keep stay escaped.
    let echo = s.authed(Method::GET, "/api/v1/%65cho/a%2fb%20c", &ana);
    let seen = echo.value().await;
    assert_eq!(seen["path"], "/api/v1/echo/a%2Fb%20c");
}

/// Failed authentication is no longer free: random `agk_` keys (150 from one address, each a
/// gRPC call and a store read, 0 refused before) meet a budget of 20 failures a minute per
/// client IP, past which that address's credentials are refused before any verification.
/// Another address is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentication_has_a_budget_per_address() {
    let s = stack("trusted_proxies = [\"127.0.0.1\"]", "").await;
    let ana = s.register("a@x.test", "Acme").await;
    let from = |ip: &'static str, key: String| {
        s.req(Method::GET, "/api/v1/echo/x")
            .header("x-forwarded-for", ip)
            .bearer_auth(key)
            .call()
    };
    let mut statuses = Vec::new();
    for i in 0..150 {
        let resp = from("203.0.113.7", format!("agk_{i:0>40}")).await;
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 130);
    let blocked = from("203.0.113.7", ana.access.clone()).await;
    assert_eq!(blocked.status(), 429);
    assert!(blocked.headers().contains_key("retry-after"));
    // Another address with a valid credential is served, and the upstream saw only it.
    assert_eq!(from("198.51.100.9", ana.access.clone()).await.status(), 200);
    assert_eq!(s.hits(), 1);
}
