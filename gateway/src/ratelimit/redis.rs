//! GCRA counters in Redis, shared by every gateway replica: one Lua script per check reads the
//! theoretical arrival time, decides, and writes it back with its expiry, atomically (Redis runs
//! a script alone), on Redis's own clock so replicas' clocks do not matter.

use async_trait::async_trait;
use redis::Script;

use agora_shared::{
    AppError,
    redis::{FailurePolicy, Redis},
};

use super::{Decision, RateLimitStore};
use crate::config::Quota;

/// KEYS[1] counter; ARGV[1] emission interval (µs); ARGV[2] limit. Returns
/// {allowed, remaining, retry after µs, reset µs}.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local period = interval * limit
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > period then
  return {0, 0, new_tat - period - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((period - (new_tat - now)) / interval), 0, new_tat - now}
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
            script: Script::new(GCRA),
        }
    }
}

fn secs_ceil(micros: i64) -> u64 {
    (micros.max(0) as u64).div_ceil(1_000_000)
}

#[async_trait]
impl RateLimitStore for RedisStore {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, AppError> {
        let interval = (quota.period_secs * 1_000_000) / u64::from(quota.limit.max(1));
        let counter = self
            .redis
            .key(&format!("rl:{}:{}:{key}", quota.limit, quota.period_secs));
        let script = &self.script;
        let outcome: Result<(i64, i64, i64, i64), String> = self
            .redis
            .run(|mut conn| async move {
                script
                    .key(counter)
                    .arg(interval.max(1))
                    .arg(quota.limit)
                    .invoke_async(&mut conn)
                    .await
            })
            .await;
        match outcome {
            Ok((allowed, remaining, retry, reset)) => Ok(Decision {
                allowed: allowed == 1,
                limit: quota.limit,
                remaining: remaining.clamp(0, i64::from(quota.limit)) as u32,
                reset_secs: secs_ceil(reset),
                retry_after_secs: if allowed == 1 {
                    0
                } else {
                    secs_ceil(retry).max(1)
                },
            }),
            Err(err) => {
                crate::metrics::limit_store_error();
                tracing::warn!(error = %err, policy = ?self.redis.rate_limit_failure, "rate limit store unavailable");
                match self.redis.rate_limit_failure {
                    FailurePolicy::Open => Ok(Decision {
                        allowed: true,
                        limit: quota.limit,
                        remaining: quota.limit,
                        reset_secs: 0,
                        retry_after_secs: 0,
                    }),
                    FailurePolicy::Closed => Err(AppError::Unavailable(
                        "rate limits cannot be checked right now".into(),
                    )),
                }
            }
        }
    }
}
