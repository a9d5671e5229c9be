//! Rate limiting: GCRA per (class, caller) behind a store port. The in-memory store uses
//! governor (one process); the Redis store (`redis`) is shared by several gateways.

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use governor::{
    RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};

use agora_shared::{
    AppError,
    tokens::{Denylist, RevocationCheck},
};

use crate::{
    config::{Quota, RateLimits},
    routing::under,
};

mod redis;
pub use redis::RedisStore;

/// The outcome of one check, with what the RateLimit-* headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the full quota is available again.
    pub reset_secs: u64,
    /// Seconds until the next request is allowed (0 when allowed).
    pub retry_after_secs: u64,
}

/// What admitting a request found: whether its token was revoked, and the rate-limit
/// decisions taken in order, up to the first refusal (none when revoked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub revoked: bool,
    pub decisions: Vec<Decision>,
}

/// Where counters live.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Takes one request from `key`'s allowance under `quota`, atomically. An error when the
    /// store cannot answer and its failure policy says to refuse.
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, AppError>;

    /// Checks the token's revocation (when there is a token) against `denylist`, then takes one
    /// request from each of `checks` in order up to the first refusal. The Redis store does all
    /// of it in one round trip when the denylist is in Redis too. An error when the
    /// revocation cannot be checked (the token is refused), or as `check`.
    async fn admit(
        &self,
        revocation: Option<(&dyn Denylist, &RevocationCheck)>,
        checks: &[(String, Quota)],
    ) -> Result<Admission, AppError> {
        one_by_one(self, revocation, checks).await
    }
}

/// `admit` with one round trip per question.
async fn one_by_one<S: RateLimitStore + ?Sized>(
    store: &S,
    revocation: Option<(&dyn Denylist, &RevocationCheck)>,
    checks: &[(String, Quota)],
) -> Result<Admission, AppError> {
    if let Some((denylist, c)) = revocation
        && denylist.refuses(&c.jti, &c.subjects, c.issued_ms).await?
    {
        return Ok(Admission {
            revoked: true,
            decisions: Vec::new(),
        });
    }
    let mut decisions = Vec::with_capacity(checks.len());
    for (key, quota) in checks {
        let decision = store.check(key, *quota).await?;
        decisions.push(decision);
        if !decision.allowed {
            break;
        }
    }
    Ok(Admission {
        revoked: false,
        decisions,
    })
}

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// In-memory GCRA counters (governor), one limiter per distinct quota.
#[derive(Default)]
pub struct MemoryStore {
    limiters: Mutex<HashMap<Quota, Arc<Limiter>>>,
}

impl MemoryStore {
    fn limiter(&self, quota: Quota) -> Arc<Limiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(quota)
            .or_insert_with(|| {
                let burst = NonZeroU32::new(quota.limit).unwrap_or(NonZeroU32::MIN);
                let interval = Duration::from_secs(quota.period_secs) / quota.limit.max(1);
                let q = governor::Quota::with_period(interval)
                    .unwrap_or_else(|| governor::Quota::per_second(burst))
                    .allow_burst(burst);
                Arc::new(RateLimiter::keyed(q).with_middleware::<StateInformationMiddleware>())
            })
            .clone()
    }

    /// Forgets keys whose allowance is full again (call periodically).
    pub fn sweep(&self) {
        for limiter in self
            .limiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[async_trait]
impl RateLimitStore for MemoryStore {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, AppError> {
        let limiter = self.limiter(quota);
        let interval =
            Duration::from_secs(quota.period_secs).as_secs_f64() / f64::from(quota.limit.max(1));
        match limiter.check_key(&key.to_owned()) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                let reset =
                    (f64::from(quota.limit - remaining.min(quota.limit)) * interval).ceil() as u64;
                Ok(Decision {
                    allowed: true,
                    limit: quota.limit,
                    remaining,
                    reset_secs: reset,
                    retry_after_secs: 0,
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let retry = wait.as_secs_f64().ceil().max(1.0) as u64;
                Ok(Decision {
                    allowed: false,
                    limit: quota.limit,
                    remaining: 0,
                    reset_secs: (f64::from(quota.limit) * interval).ceil() as u64,
                    retry_after_secs: retry,
                })
            }
        }
    }
}

/// Which limits apply to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Login, forgot, reset, accept-invite.
    Credential,
    Register,
    Api,
    Upload,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credential => "credential",
            Self::Register => "register",
            Self::Api => "api",
            Self::Upload => "upload",
        }
    }
}

/// Classifies by method and path.
pub fn classify(method: &str, path: &str, upload: bool) -> Class {
    const CREDENTIAL: [&str; 4] = [
        "/api/v1/auth/login",
        "/api/v1/auth/forgot",
        "/api/v1/auth/reset",
        "/api/v1/auth/accept-invite",
    ];
    if method == "POST" && CREDENTIAL.contains(&path) {
        Class::Credential
    } else if method == "POST" && path == "/api/v1/auth/register" {
        Class::Register
    } else if upload {
        Class::Upload
    } else {
        Class::Api
    }
}

/// Who a request counts against.
#[derive(Debug, Clone)]
pub enum Subject<'a> {
    /// A signed-in user or API key, with the tenant's plan when known.
    Caller {
        id: &'a str,
        plan: Option<&'a str>,
    },
    Anonymous {
        ip: IpAddr,
    },
}

/// The (key, quota) checks for a request; all must pass.
pub fn checks(
    limits: &RateLimits,
    class: Class,
    path: &str,
    client_ip: IpAddr,
    subject: &Subject<'_>,
    account: Option<&str>,
) -> Vec<(String, Quota)> {
    match class {
        Class::Credential => {
            let mut out = vec![(format!("credential_ip:{client_ip}"), limits.credential_ip)];
            if let Some(account) = account {
                out.push((
                    format!("credential:{client_ip}:{}", account.trim().to_lowercase()),
                    limits.credential,
                ));
            }
            out
        }
        Class::Register => vec![(format!("register:{client_ip}"), limits.register)],
        Class::Api | Class::Upload => {
            let base = if class == Class::Upload {
                limits.upload
            } else {
                limits.api
            };
            let by_route = limits
                .routes
                .iter()
                .filter(|(p, _)| under(p, path))
                .max_by_key(|(p, _)| p.len());
            let (quota, scope) = match (by_route, subject) {
                (Some((prefix, q)), _) => (*q, prefix.as_str()),
                (
                    None,
                    Subject::Caller {
                        plan: Some(plan), ..
                    },
                ) if class == Class::Api => (limits.plans.get(*plan).copied().unwrap_or(base), ""),
                _ => (base, ""),
            };
            let who = match subject {
                Subject::Caller { id, .. } => format!("caller:{id}"),
                Subject::Anonymous { ip } if limits.per_endpoint.iter().any(|p| under(p, path)) => {
                    format!("ip:{ip}:path:{path}")
                }
                Subject::Anonymous { ip } => format!("ip:{ip}"),
            };
            vec![(format!("{}:{scope}:{who}", class.as_str()), quota)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_overrides() {
        let mut limits = RateLimits::default();
        limits.routes.insert(
            "/api/v1/teams".into(),
            Quota {
                limit: 7,
                period_secs: 60,
            },
        );
        limits.plans.insert(
            "ENTERPRISE".into(),
            Quota {
                limit: 1000,
                period_secs: 60,
            },
        );
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        assert_eq!(
            classify("POST", "/api/v1/auth/login", false),
            Class::Credential
        );
        assert_eq!(classify("GET", "/api/v1/auth/login", false), Class::Api);
        assert_eq!(
            classify("POST", "/api/v1/auth/register", false),
            Class::Register
        );
        let c = checks(
            &limits,
            Class::Credential,
            "/api/v1/auth/login",
            ip,
            &Subject::Anonymous { ip },
            Some("A@x"),
        );
        assert_eq!(c.len(), 2);
        assert!(c[1].0.ends_with(":a@x"));
        let enterprise = Subject::Caller {
            id: "u",
            plan: Some("ENTERPRISE"),
        };
        assert_eq!(
            checks(
                &limits,
                Class::Api,
                "/api/v1/tenants",
                ip,
                &enterprise,
                None
            )[0]
            .1
            .limit,
            1000
        );
        assert_eq!(
            checks(
                &limits,
                Class::Api,
                "/api/v1/teams/x",
                ip,
                &enterprise,
                None
            )[0]
            .1
            .limit,
            7
        );
        let starter = Subject::Caller {
            id: "u",
            plan: Some("STARTER"),
        };
        assert_eq!(
            checks(&limits, Class::Api, "/api/v1/tenants", ip, &starter, None)[0]
                .1
                .limit,
            100
        );
        // A provider's webhooks count per sending address and endpoint: one tenant's
        // deliveries never use up another's; elsewhere anonymous callers count per address.
        let anonymous = Subject::Anonymous { ip };
        let key = |path: &str| {
            checks(&limits, Class::Api, path, ip, &anonymous, None)[0]
                .0
                .clone()
        };
        let a = key("/api/v1/inventory/webhooks/stripe/a");
        let b = key("/api/v1/inventory/webhooks/stripe/b");
        assert_ne!(a, b);
        assert!(a.contains("1.2.3.4"), "{a}");
        assert_eq!(key("/api/v1/tickets"), key("/api/v1/tickets/1"));
    }
}
