//! GCRA counters in Redis, shared by every gateway replica: one Lua script reads the
//! theoretical arrival times, decides, and writes them back with their expiry, atomically
//! (Redis runs a script alone), on Redis's own clock so replicas' clocks do not matter. The
//! same script first reads the token's revocation entries when the denylist is in Redis too,
//! so an authenticated request costs one round trip at the edge, and none behind it (the
//! gateway vouches for the check to the service).

use async_trait::async_trait;
use redis::Script;

use agora_shared::{
    AppError,
    redis::{self as shared_redis, FailurePolicy, Redis},
    tokens::{Denylist, RevocationCheck},
};

use super::{Admission, Decision, RateLimitStore, one_by_one};
use crate::config::Quota;

/// KEYS: ARGV[1] revocation entries (the token's, then its subjects' cut-offs), then one
/// counter per check. ARGV: that count, the token's issue time in ms, then (emission interval
/// in µs, limit) per counter. Returns each revocation entry's value (-1 when absent; one that
/// is not a number counts as present and refusing everything), then, unless those refuse the
/// token (which then takes nothing from its allowance), {allowed, remaining, retry after µs,
/// reset µs} per counter, up to and including the first that refuses.
const ADMIT: &str = r"
local n = tonumber(ARGV[1])
local issued = tonumber(ARGV[2])
local out = {}
local revoked = false
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if v then
    v = math.max(tonumber(v) or 9007199254740991, 0)
    revoked = revoked or i == 1 or v >= issued
  else
    v = -1
  end
  out[#out + 1] = v
end
if revoked then return out end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for j = n + 1, #KEYS do
  local a = 1 + 2 * (j - n)
  local interval = tonumber(ARGV[a])
  local limit = tonumber(ARGV[a + 1])
  local period = interval * limit
  local tat = tonumber(redis.call('GET', KEYS[j])) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  if new_tat - now > period then
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = new_tat - period - now
    out[#out + 1] = tat - now
    return out
  end
  redis.call('SET', KEYS[j], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
  out[#out + 1] = 1
  out[#out + 1] = math.floor((period - (new_tat - now)) / interval)
  out[#out + 1] = 0
  out[#out + 1] = new_tat - now
end
return out
";

/// Rate-limit counters in Redis.
pub struct RedisStore {
    redis: Redis,
    script: Script,
}

impl RedisStore {
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            script: Script::new(ADMIT),
        }
    }

    /// Runs the script: the revocation entries at `revocation_keys` (for a token issued at
    /// `issued_ms`), then the decisions (none when the entries refuse the token).
    async fn run(
        &self,
        revocation_keys: Vec<String>,
        issued_ms: i64,
        checks: &[(String, Quota)],
    ) -> Result<(Vec<Option<i64>>, Vec<Decision>), String> {
        let n = revocation_keys.len();
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(n).arg(issued_ms);
        for key in revocation_keys {
            invocation.key(key);
        }
        for (key, quota) in checks {
            let interval = (quota.period_secs * 1_000_000) / u64::from(quota.limit.max(1));
            invocation
                .key(
                    self.redis
                        .key(&format!("rl:{}:{}:{key}", quota.limit, quota.period_secs)),
                )
                .arg(interval.max(1))
                .arg(quota.limit);
        }
        let values: Vec<i64> = self
            .redis
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        if values.len() < n || !(values.len() - n).is_multiple_of(4) {
            return Err(format!(
                "the admission script answered {} values",
                values.len()
            ));
        }
        let found = values[..n]
            .iter()
            .map(|v| (*v >= 0).then_some(*v))
            .collect();
        let decisions = values[n..]
            .chunks(4)
            .zip(checks)
            .map(|(v, (_, quota))| decision(v[0], v[1], v[2], v[3], *quota))
            .collect();
        Ok((found, decisions))
    }

    /// What the failure policy makes of an unanswered rate-limit question.
    fn unanswered(&self, err: &str, checks: &[(String, Quota)]) -> Result<Vec<Decision>, AppError> {
        crate::metrics::limit_store_error();
        tracing::warn!(error = %err, policy = ?self.redis.rate_limit_failure, "rate limit store unavailable");
        match self.redis.rate_limit_failure {
            FailurePolicy::Open => Ok(checks
                .iter()
                .map(|(_, quota)| Decision {
                    allowed: true,
                    limit: quota.limit,
                    remaining: quota.limit,
                    reset_secs: 0,
                    retry_after_secs: 0,
                })
                .collect()),
            FailurePolicy::Closed => Err(AppError::Unavailable(
                "rate limits cannot be checked right now".into(),
            )),
        }
    }
}

fn secs_ceil(micros: i64) -> u64 {
    (micros.max(0) as u64).div_ceil(1_000_000)
}

fn decision(allowed: i64, remaining: i64, retry: i64, reset: i64, quota: Quota) -> Decision {
    Decision {
        allowed: allowed == 1,
        limit: quota.limit,
        remaining: remaining.clamp(0, i64::from(quota.limit)) as u32,
        reset_secs: secs_ceil(reset),
        retry_after_secs: if allowed == 1 {
            0
        } else {
            secs_ceil(retry).max(1)
        },
    }
}

#[async_trait]
impl RateLimitStore for RedisStore {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, AppError> {
        let checks = [(key.to_owned(), quota)];
        let decisions = match self.run(Vec::new(), 0, &checks).await {
            Ok((_, decisions)) => decisions,
            Err(err) => self.unanswered(&err, &checks)?,
        };
        decisions
            .into_iter()
            .next()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no rate-limit decision")))
    }

    async fn admit(
        &self,
        revocation: Option<(&dyn Denylist, &RevocationCheck)>,
        checks: &[(String, Quota)],
    ) -> Result<Admission, AppError> {
        let Some((denylist, c)) = revocation else {
            return one_by_one(self, None, checks).await;
        };
        let Some(shared) = denylist.in_redis() else {
            return one_by_one(self, revocation, checks).await;
        };
        let revoked = Admission {
            revoked: true,
            decisions: Vec::new(),
        };
        if shared.refuses_locally(&c.jti, &c.subjects, c.issued_ms) {
            return Ok(revoked);
        }
        let outcome = self
            .run(shared.keys(&c.jti, &c.subjects), c.issued_ms, checks)
            .await
            .and_then(|(found, decisions)| {
                if shared.refuses_from(&c.jti, &c.subjects, c.issued_ms, &found) {
                    Ok(revoked)
                } else if decisions.is_empty() && !checks.is_empty() {
                    Err("the admission script refused a token its entries do not".to_owned())
                } else {
                    Ok(Admission {
                        revoked: false,
                        decisions,
                    })
                }
            });
        match outcome {
            Ok(admission) => Ok(admission),
            Err(err) => {
                // A token whose revocation cannot be checked is refused, whatever the rate
                // limits' failure policy says.
                crate::metrics::limit_store_error();
                tracing::warn!(error = %err, "token revocation check failed");
                Err(shared_redis::unavailable())
            }
        }
    }
}
