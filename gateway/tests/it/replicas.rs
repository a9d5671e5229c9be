//! Two gateway replicas sharing one Redis: one global rate limit, and a logout through one
//! rejects the token on the other at once.

use std::sync::Arc;

use reqwest::Client;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use agora_gateway::Discovered;
use agora_shared::{
    config::Secret,
    redis::{Redis, RedisDenylist},
    service::ServiceContext,
    testing::{Call, TestDb, problem},
    tokens::{REVOCATION_CHECKED, Vouches},
};

use crate::support::PASSWORD;

struct Replicas {
    a: String,
    b: String,
    /// Auth itself, behind the gateways.
    auth: String,
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
    // An upstream that trusts the gateway's check: only the edge verifies API keys there.
    let upstream = crate::support::start_upstream(Default::default());
    let toml = format!(
        r#"
[auth]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
database_url = "{db}"
http_workers = 1

[auth_peer]
api_key_cache_secs = 300
secret = "{PEER_SECRET}"

[gateway]
http_addr = "127.0.0.1:0"
http_workers = 2

[gateway.services.tickets]
url = "http://127.0.0.1:9"
required = false

[gateway.services.inventory_sync]
url = "http://127.0.0.1:9"
required = false

[gateway.services.echo]
url = "http://127.0.0.1:{upstream}"
prefixes = ["/api/v1/echo"]
required = false

[gateway.rate_limits]
api = {{ limit = 40, period_secs = 3600 }}
"#,
        db = db.url,
    );
    let shutdown = CancellationToken::new();
    // Auth and replica A in one process, replica B in "another" (its own context and caches).
    let ctx_a = context(&toml, &redis);
    let ctx_b = context(&toml, &redis);
    let auth = agora_auth::start(&ctx_a, shutdown.clone())
        .await
        .expect("auth");
    let auth_base = format!("http://{}", auth.service.http_addr);
    let discovered = [Discovered {
        name: "auth".into(),
        http: auth.service.http_addr,
        grpc: auth.service.grpc_addr.expect("grpc"),
    }];
    tokio::spawn(auth.service.wait());
    let mut bases = Vec::new();
    for ctx in [&ctx_a, &ctx_b] {
        let gateway = agora_gateway::start(&ctx.with_discovered(&discovered), shutdown.clone())
            .await
            .expect("gateway");
        bases.push(format!("http://{}", gateway.http_addr));
        tokio::spawn(gateway.wait());
    }
    // Both replicas listen for cache invalidations before the test starts.
    let channel = redis.key("invalidate");
    for _ in 0..200 {
        let listeners: Vec<(String, i64)> = redis
            .run(|mut conn| {
                let channel = channel.clone();
                async move {
                    redis::cmd("PUBSUB")
                        .arg("NUMSUB")
                        .arg(channel)
                        .query_async(&mut conn)
                        .await
                }
            })
            .await
            .expect("redis answers");
        if listeners.first().is_some_and(|(_, n)| *n == 2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Replicas {
        b: bases.pop().unwrap(),
        a: bases.pop().unwrap(),
        auth: auth_base,
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

impl Replicas {
    /// `GET /api/v1/auth/me` at `base` with `token`.
    fn me(&self, base: &str, token: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{base}/api/v1/auth/me"))
            .bearer_auth(token)
    }

    /// Logs `token`'s session out through replica A.
    async fn log_out(&self, token: &str) {
        let out = self
            .client
            .post(format!("{}/api/v1/auth/logout", self.a))
            .bearer_auth(token)
            .call()
            .await;
        assert_eq!(out.status(), 204);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_enforce_one_global_limit() {
    let Some(redis) = agora_shared::testing::patient_redis() else {
        return;
    };
    let r = replicas(redis).await;
    let token = sign_up(&r).await;
    // 100 concurrent requests spread over both replicas against a limit of 40 per caller.
    let requests = (0..100).map(|i| {
        let base = if i % 2 == 0 { &r.a } else { &r.b };
        let req = r.me(base, &token);
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
    assert_eq!(r.me(&r.b, &token).call().await.status(), 200);
    r.log_out(&token).await;
    let body = problem(r.me(&r.b, &token).call().await, 401).await;
    assert_eq!(body["detail"], "invalid access token: revoked");
}

/// The peer secret the replicas share (their `[auth_peer] secret`).
const PEER_SECRET: &str = "replicas-share-one-peer-secret-0123456789";

/// The `jti` claim of an access token.
fn jti_of(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("JSON claims");
    claims["jti"].as_str().expect("jti").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_request_costs_one_redis_round_trip() {
    let Some(redis) = agora_shared::testing::patient_redis() else {
        return;
    };
    let r = replicas(redis.clone()).await;
    let token = sign_up(&r).await;
    // Each replica loads its script once.
    for base in [&r.a, &r.b] {
        assert_eq!(r.me(base, &token).call().await.status(), 200);
    }
    let before = redis.round_trips();
    for i in 0..10 {
        let base = if i % 2 == 0 { &r.a } else { &r.b };
        assert_eq!(r.me(base, &token).call().await.status(), 200);
    }
    // Revocation and rate limit in one script at the edge; none at auth, which takes the
    // gateway's vouch.
    assert_eq!(redis.round_trips() - before, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_gateways_own_fresh_vouch_for_the_same_token_spares_a_check() {
    let Some(redis) = agora_shared::testing::redis() else {
        return;
    };
    let r = replicas(redis).await;
    let token = sign_up(&r).await;
    let jti = jti_of(&token);
    let vouches = Vouches::new(&Secret::new(PEER_SECRET));
    let now = chrono::Utc::now().timestamp_millis();

    // A client's own header never reaches the service: the gateway puts its own there.
    let echoed: Value = r
        .client
        .get(format!("{}/api/v1/echo/headers", r.a))
        .bearer_auth(&token)
        .header(REVOCATION_CHECKED, vouches.sign("someone-else", now))
        .value()
        .await;
    let passed = echoed["headers"][REVOCATION_CHECKED]
        .as_str()
        .expect("the gateway's vouch");
    assert!(vouches.check(passed, &jti, chrono::Utc::now().timestamp_millis()));

    // Revoked: a vouch made without the secret, a stale one, or one for another token does not
    // let it through at auth directly.
    r.log_out(&token).await;
    let forger = Vouches::new(&Secret::new("a-guess-at-the-peer-secret-0123456789"));
    let now = chrono::Utc::now().timestamp_millis();
    for vouch in [
        forger.sign(&jti, now),
        vouches.sign(&jti, now - 6_000),
        vouches.sign("another-token", now),
        "1.00".to_owned(),
    ] {
        let resp = r
            .me(&r.auth, &token)
            .header(REVOCATION_CHECKED, &vouch)
            .call()
            .await;
        let body = problem(resp, 401).await;
        assert_eq!(body["detail"], "invalid access token: revoked", "{vouch}");
    }
    // And through a gateway the token is refused at the edge, whatever header comes with it.
    let resp = r
        .me(&r.b, &token)
        .header(REVOCATION_CHECKED, vouches.sign(&jti, now))
        .call()
        .await;
    assert_eq!(
        problem(resp, 401).await["detail"],
        "invalid access token: revoked"
    );
}

/// A fresh session (another access token) of the user `sign_up` made.
async fn log_in(r: &Replicas) -> String {
    let body: Value = r
        .client
        .post(format!("{}/api/v1/auth/login", r.a))
        .json(&json!({"email": "ana@acme.test", "password": PASSWORD}))
        .value()
        .await;
    body["access_token"].as_str().expect("token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_hold_when_redis_loses_or_garbles_them() {
    let Some(redis) = agora_shared::testing::redis() else {
        return;
    };
    let r = replicas(redis.clone()).await;
    let token = sign_up(&r).await;
    assert_eq!(r.me(&r.b, &token).call().await.status(), 200);
    r.log_out(&token).await;
    // Redis loses the revocation (a restart, an eviction): replica B finds nothing and vouches,
    // but auth, which revoked the token, still knows.
    let key = redis.key(&format!("deny:{}", jti_of(&token)));
    let deleted: i64 = redis
        .run(|mut conn| async move { redis::cmd("DEL").arg(key).query_async(&mut conn).await })
        .await
        .expect("redis answers");
    assert_eq!(deleted, 1);
    let body = problem(r.me(&r.b, &token).call().await, 401).await;
    assert_eq!(body["detail"], "invalid access token: revoked");
    // An entry that is not a number refuses rather than passes.
    let other = log_in(&r).await;
    let key = redis.key(&format!("deny:{}", jti_of(&other)));
    let _: () = redis
        .run(|mut conn| async move {
            redis::cmd("SET")
                .arg(key)
                .arg("revoked")
                .query_async(&mut conn)
                .await
        })
        .await
        .expect("redis answers");
    let body = problem(r.me(&r.b, &other).call().await, 401).await;
    assert_eq!(body["detail"], "invalid access token: revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_takes_nothing_from_its_users_allowance() {
    let Some(redis) = agora_shared::testing::patient_redis() else {
        return;
    };
    let r = replicas(redis).await;
    let revoked = sign_up(&r).await;
    let live = log_in(&r).await;
    r.log_out(&revoked).await;
    // Replica B learns of the revocation from Redis, in its admission script.
    for _ in 0..2 {
        assert_eq!(r.me(&r.b, &revoked).call().await.status(), 401);
    }
    // Of the user's 40 requests an hour, the logout took one; the other 39 are all there for
    // the live session (signing up and in count elsewhere).
    let mut statuses = Vec::new();
    for _ in 0..41 {
        statuses.push(r.me(&r.b, &live).call().await.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        39,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_api_key_stops_on_every_replica_before_its_cache_expires() {
    let Some(redis) = agora_shared::testing::redis() else {
        return;
    };
    let r = replicas(redis).await;
    let token = sign_up(&r).await;
    let created: Value = r
        .client
        .post(format!("{}/api/v1/api-keys", r.a))
        .bearer_auth(&token)
        .json(&json!({"name": "ci", "role": "TENANT_USER"}))
        .value()
        .await;
    let key = created["key"].as_str().expect("key").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();
    let echo = |base: &str| {
        r.client
            .get(format!("{base}/api/v1/echo/hello"))
            .header("x-api-key", &key)
    };
    // Verified and cached (for 300 s) by replica B.
    assert_eq!(echo(&r.b).call().await.status(), 200);
    let revoked = r
        .client
        .delete(format!("{}/api/v1/api-keys/{id}", r.a))
        .bearer_auth(&token)
        .call()
        .await;
    assert_eq!(revoked.status(), 204);
    // The invalidation travels over pub/sub; allow it a moment, far below the cache time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let status = echo(&r.b).call().await.status();
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {status} on replica B"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
