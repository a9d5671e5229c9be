//! Two gateway replicas sharing one Redis: one global rate limit, and a logout through one
//! rejects the token on the other at once.

use std::sync::Arc;

use reqwest::{Client, Method};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use agora_gateway::Discovered;
use agora_shared::{
    redis::{Redis, RedisDenylist},
    service::ServiceContext,
    testing::{Call, TestDb, problem},
};

use crate::support::PASSWORD;

struct Replicas {
    a: String,
    b: String,
    client: Client,
    shutdown: CancellationToken,
    _db: TestDb,
}

impl Drop for Replicas {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A context whose rate limits and revocations live in `redis`.
fn context(toml: &str, redis: &Redis) -> ServiceContext {
    let (mut ctx, _bus) = agora_shared::testing::service_context(toml);
    ctx.denylist = Arc::new(RedisDenylist::new(redis.clone()));
    ctx.redis = Some(redis.clone());
    ctx
}

async fn replicas(redis: Redis) -> Replicas {
    let db = TestDb::sqlite();
    let toml = format!(
        r#"
[auth]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
database_url = "{}"
http_workers = 1

[gateway]
http_addr = "127.0.0.1:0"
http_workers = 2

[gateway.services.tickets]
url = "http://127.0.0.1:9"
required = false

[gateway.rate_limits]
api = {{ limit = 40, period_secs = 3600 }}
"#,
        db.url
    );
    let shutdown = CancellationToken::new();
    // Auth and replica A in one process, replica B in "another" (its own context and caches).
    let ctx_a = context(&toml, &redis);
    let ctx_b = context(&toml, &redis);
    let auth = agora_auth::start(&ctx_a, shutdown.clone())
        .await
        .expect("auth");
    let discovered = [Discovered {
        name: "auth".into(),
        http: auth.service.http_addr,
        grpc: auth.service.grpc_addr.expect("grpc"),
    }];
    tokio::spawn(auth.service.wait());
    let mut bases = Vec::new();
    for ctx in [&ctx_a, &ctx_b] {
        let gateway = agora_gateway::start(ctx, shutdown.clone(), &discovered)
            .await
            .expect("gateway");
        bases.push(format!("http://{}", gateway.http_addr));
        tokio::spawn(gateway.wait());
    }
    Replicas {
        b: bases.pop().unwrap(),
        a: bases.pop().unwrap(),
        client: Client::new(),
        shutdown,
        _db: db,
    }
}

async fn sign_up(r: &Replicas) -> String {
    let body: Value = r
        .client
        .post(format!("{}/api/v1/auth/register", r.a))
        .json(&json!({"email": "ana@acme.test", "password": PASSWORD, "name": "Ana", "tenant_name": "Acme"}))
        .value()
        .await;
    body["access_token"].as_str().expect("token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_enforce_one_global_limit() {
    let Some(redis) = agora_shared::testing::redis() else {
        return;
    };
    let r = replicas(redis).await;
    let token = sign_up(&r).await;
    // 100 concurrent requests spread over both replicas against a limit of 40 per caller.
    let requests = (0..100).map(|i| {
        let base = if i % 2 == 0 { &r.a } else { &r.b };
        let req = r
            .client
            .get(format!("{base}/api/v1/auth/me"))
            .bearer_auth(&token);
        async move { req.call().await.status().as_u16() }
    });
    let statuses = futures::future::join_all(requests).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((ok, limited), (40, 60), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_through_one_replica_rejects_on_the_other_at_once() {
    let Some(redis) = agora_shared::testing::redis() else {
        return;
    };
    let r = replicas(redis).await;
    let token = sign_up(&r).await;
    let me = |base: &str| {
        r.client
            .request(Method::GET, format!("{base}/api/v1/auth/me"))
            .bearer_auth(&token)
    };
    assert_eq!(me(&r.b).call().await.status(), 200);
    let out = r
        .client
        .post(format!("{}/api/v1/auth/logout", r.a))
        .bearer_auth(&token)
        .call()
        .await;
    assert_eq!(out.status(), 204);
    let body = problem(me(&r.b).call().await, 401).await;
    assert_eq!(body["detail"], "invalid access token: revoked");
}
