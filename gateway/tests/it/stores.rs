//! One conformance suite for each edge port, run against every implementation: rate-limit
//! counters (memory, Redis) and the token denylist (memory, Redis). Plus the Redis failure
//! policies.

use std::sync::Arc;

use agora_gateway::{
    config::Quota,
    ratelimit::{MemoryStore, RateLimitStore, RedisStore},
};
use agora_shared::{
    AppError,
    redis::{FailurePolicy, Redis, RedisDenylist},
    testing::redis_at,
    tokens::{Denylist, MemoryDenylist},
};

macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(None).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(redis) = agora_shared::testing::redis() {
                        super::$name(Some(redis)).await
                    }
                }
            )*
        }
    };
}

on_every_store!(
    limits_allow_exactly_the_quota_then_say_when,
    limits_are_exact_under_concurrency,
    denylist_remembers_revoked_tokens,
);

fn limiter(redis: Option<Redis>) -> Arc<dyn RateLimitStore> {
    match redis {
        Some(r) => Arc::new(RedisStore::new(r)),
        None => Arc::new(MemoryStore::default()),
    }
}

const THREE_A_MINUTE: Quota = Quota {
    limit: 3,
    period_secs: 60,
};

async fn limits_allow_exactly_the_quota_then_say_when(redis: Option<Redis>) {
    let store = limiter(redis);
    for remaining in [2, 1, 0] {
        let d = store.check("k", THREE_A_MINUTE).await.unwrap();
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining), (3, remaining));
        assert!((1..=60).contains(&d.reset_secs), "{d:?}");
    }
    let d = store.check("k", THREE_A_MINUTE).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    // One request is replenished every 20 s.
    assert!((19..=20).contains(&d.retry_after_secs), "{d:?}");
    // Other keys, and the same key under another quota, have their own allowance.
    assert!(store.check("other", THREE_A_MINUTE).await.unwrap().allowed);
    let other_quota = Quota {
        limit: 5,
        period_secs: 60,
    };
    assert!(store.check("k", other_quota).await.unwrap().allowed);
}

async fn limits_are_exact_under_concurrency(redis: Option<Redis>) {
    let store = limiter(redis);
    let quota = Quota {
        limit: 100,
        period_secs: 3600,
    };
    let checks = (0..200).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.check("burst", quota).await.unwrap().allowed })
    });
    let allowed = futures::future::join_all(checks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(allowed, 100);
}

async fn denylist_remembers_revoked_tokens(redis: Option<Redis>) {
    let exp = chrono::Utc::now().timestamp() + 900;
    let list: Arc<dyn Denylist> = match &redis {
        Some(r) => Arc::new(RedisDenylist::new(r.clone())),
        None => Arc::new(MemoryDenylist::default()),
    };
    assert!(!list.is_denied("jti-1").await.unwrap());
    list.deny("jti-1", exp).await;
    assert!(list.is_denied("jti-1").await.unwrap());
    assert!(!list.is_denied("jti-2").await.unwrap());
    // A cut-off refuses a subject's tokens issued up to it, whatever their ids.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mine = agora_shared::tokens::subjects("u1", "t1", Some("s1"));
    let theirs = agora_shared::tokens::subjects("u2", "t2", None);
    list.cut_off("tenant:t1", now_ms, exp).await;
    assert!(list.refuses("jti-3", &mine, now_ms - 5).await.unwrap());
    assert!(!list.refuses("jti-3", &mine, now_ms + 5).await.unwrap());
    assert!(!list.refuses("jti-4", &theirs, now_ms - 5).await.unwrap());
    if let Some(r) = redis {
        // Another replica sees the revocation and the cut-off at once.
        let replica = RedisDenylist::new(r);
        assert!(replica.is_denied("jti-1").await.unwrap());
        assert!(!replica.is_denied("jti-2").await.unwrap());
        assert!(replica.refuses("jti-3", &mine, now_ms - 5).await.unwrap());
        assert!(!replica.refuses("jti-3", &mine, now_ms + 5).await.unwrap());
        assert!(!replica.refuses("jti-4", &theirs, now_ms - 5).await.unwrap());
    }
}

/// A Redis address nothing answers on.
fn dead_redis(policy: FailurePolicy) -> Redis {
    let port = agora_shared::testing::unclaimed_port();
    let mut redis = redis_at(&format!("redis://127.0.0.1:{port}"));
    redis.rate_limit_failure = policy;
    redis
}

#[tokio::test]
async fn redis_down_limits_follow_the_failure_policy() {
    let open = RedisStore::new(dead_redis(FailurePolicy::Open));
    for _ in 0..5 {
        assert!(open.check("k", THREE_A_MINUTE).await.unwrap().allowed);
    }
    let closed = RedisStore::new(dead_redis(FailurePolicy::Closed));
    let err = closed.check("k", THREE_A_MINUTE).await.unwrap_err();
    assert!(matches!(err, AppError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn redis_down_denylist_fails_closed_but_keeps_its_copy() {
    let list = RedisDenylist::new(dead_redis(FailurePolicy::Open));
    list.deny("known", chrono::Utc::now().timestamp() + 900)
        .await;
    assert!(
        list.is_denied("known").await.unwrap(),
        "the local copy answers"
    );
    let err = list.is_denied("unknown").await.unwrap_err();
    assert!(matches!(err, AppError::Unavailable(_)), "{err:?}");
}
