//! The one way to a model: an alias's deployments tried in order, each retried on 429, 5xx,
//! timeouts and refused connections with exponential backoff (or the provider's
//! `Retry-After`, up to `max_retry_after_secs`), a deployment that failed left alone for
//! `cooldown_secs`, and a 429 in an alias with other deployments moving on at once. A stream
//! is retried and falls back only until its first chunk; after that an error ends it.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use futures::StreamExt;
use rand::Rng;
use serde_json::Value;

use agora_shared::{AppError, AppResult};

use crate::{
    AiConfig,
    config::{DeploymentConfig, ModelConfig},
    providers::{self, CallError, Failure, Reply},
};

/// The longest a deployment is left alone, whatever its provider's `Retry-After` says.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(300);

/// What answered.
#[derive(Debug, Clone)]
pub struct Served {
    pub deployment: DeploymentConfig,
    /// Calls made, retries and fallbacks included.
    pub attempts: u32,
}

/// The router: the providers' client and which deployments are cooling down.
pub struct Router {
    client: reqwest::Client,
    cooling: Mutex<HashMap<String, Instant>>,
}

/// What is called: a chat completion (whole or streamed) or embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Chat { stream: bool },
    Embeddings,
}

fn key_of(d: &DeploymentConfig) -> String {
    format!("{}/{}", d.provider, d.model)
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Router {
    pub fn new() -> Self {
        Self {
            client: providers::client(),
            cooling: Mutex::new(HashMap::new()),
        }
    }

    fn cool(&self, d: &DeploymentConfig, for_: Duration) {
        let until = Instant::now() + for_;
        let mut cooling = self.cooling.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cooling.entry(key_of(d)).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// How long `d` still cools down (none: it may be called).
    fn cooling_for(&self, d: &DeploymentConfig) -> Option<Duration> {
        let cooling = self.cooling.lock().unwrap_or_else(|e| e.into_inner());
        cooling
            .get(&key_of(d))
            .and_then(|until| until.checked_duration_since(Instant::now()))
    }

    /// Calls `alias` with `body` (an OpenAI request). `keys` are the tenant's own provider
    /// keys, by provider.
    /// `own` is the tenant's own alias of that name, if it has one: its deployments are
    /// called with the tenant's keys only.
    #[allow(clippy::too_many_arguments)]
    pub async fn call(
        &self,
        config: &AiConfig,
        alias: &str,
        own: Option<&ModelConfig>,
        body: &Value,
        call: Call,
        keys: &HashMap<String, String>,
    ) -> AppResult<(Reply, Served)> {
        let tenant_only = own.is_some();
        let model = match own {
            Some(m) => m,
            None => config.models.get(alias).ok_or_else(|| {
                AppError::NotFound(format!("the model `{alias}` does not exist"))
                    .with_code("model_not_found")
            })?,
        };
        // A deployment called with the tenant's own key is never held back by the cooldown of
        // the platform's.
        let ready: Vec<&DeploymentConfig> = model
            .deployments
            .iter()
            .filter(|d| keys.contains_key(&d.provider) || self.cooling_for(d).is_none())
            .collect();
        if ready.is_empty() {
            let wait = model
                .deployments
                .iter()
                .filter_map(|d| self.cooling_for(d))
                .min()
                .unwrap_or_default();
            return Err(AppError::TooManyRequests {
                detail: format!("every deployment of `{alias}` is cooling down after failures"),
                retry_after_secs: wait.as_secs().max(1),
            }
            .with_code("ai.deployments_cooling"));
        }
        let mut attempts = 0;
        let mut failures: Vec<String> = Vec::new();
        let mut all_rate_limited = true;
        for (n, d) in ready.iter().enumerate() {
            let has_next = n + 1 < ready.len();
            let Some(provider) = config.providers.get(&d.provider) else {
                continue;
            };
            // A tenant's own key failing says nothing of the deployment for anyone else: it
            // is cooled down only when the platform's key was used.
            let own_key = keys.get(&d.provider);
            if tenant_only && own_key.is_none() {
                all_rate_limited = false;
                failures.push(format!(
                    "{}: the tenant holds no key of {}",
                    key_of(d),
                    d.provider
                ));
                continue;
            }
            let key = own_key
                .map(String::as_str)
                .or(provider.api_key.as_ref().map(|k| k.expose()));
            let cool = |for_: Duration| {
                if own_key.is_none() {
                    self.cool(d, for_);
                }
            };
            for attempt in 0..=config.max_retries {
                attempts += 1;
                let outcome = match call {
                    Call::Chat { stream } => {
                        providers::chat(
                            &self.client,
                            provider,
                            key,
                            &d.model,
                            body,
                            stream,
                            config.default_max_tokens,
                        )
                        .await
                    }
                    Call::Embeddings => {
                        providers::embeddings(&self.client, provider, key, &d.model, body)
                            .await
                            .map(Reply::Whole)
                    }
                };
                let outcome = match outcome {
                    // A stream counts as served once its first chunk came.
                    Ok(Reply::Stream(mut stream)) => match stream.next().await {
                        Some(Ok(first)) => Ok(Reply::Stream(Box::pin(
                            futures::stream::once(async move { Ok(first) }).chain(stream),
                        ))),
                        Some(Err(e)) => Err(e),
                        None => Err(CallError {
                            failure: Failure::Retryable,
                            status: None,
                            retry_after: None,
                            message: "the stream ended before its first event".into(),
                        }),
                    },
                    other => other,
                };
                let err = match outcome {
                    Ok(reply) => {
                        let served = Served {
                            deployment: (*d).clone(),
                            attempts,
                        };
                        return Ok((reply, served));
                    }
                    Err(err) => err,
                };
                tracing::info!(
                    deployment = %key_of(d), attempt, status = ?err.status, error = %err.message,
                    "model call failed"
                );
                // What the client is told: the status, or this service's own words (a
                // provider's message may name the platform's account or key).
                failures.push(format!(
                    "{}: {}",
                    key_of(d),
                    match err.status {
                        Some(s) => format!("HTTP {s}"),
                        None => err.message.clone(),
                    }
                ));
                all_rate_limited &= err.status == Some(429);
                match err.failure {
                    Failure::Request => {
                        return Err(AppError::BadRequest(format!(
                            "the model provider refused the request: {}",
                            err.message
                        ))
                        .with_code("ai.provider_refused"));
                    }
                    Failure::Deployment => {
                        cool(Duration::from_secs(config.cooldown_secs));
                        break;
                    }
                    Failure::Retryable => {}
                }
                let max_wait = Duration::from_secs(config.max_retry_after_secs);
                let wait = err.retry_after.unwrap_or_else(|| backoff(attempt));
                let rate_limited = err.status == Some(429);
                if attempt == config.max_retries || wait > max_wait || (rate_limited && has_next) {
                    // A timeout may be this request's own (a long answer): it moves on without
                    // holding the deployment back for everyone. A provider's Retry-After is
                    // honoured up to MAX_COOLDOWN.
                    if err.status.is_some() || err.message != "timed out" {
                        let cooldown = Duration::from_secs(config.cooldown_secs)
                            .max(err.retry_after.unwrap_or_default())
                            .min(MAX_COOLDOWN);
                        cool(cooldown);
                    }
                    break;
                }
                tokio::time::sleep(wait).await;
            }
        }
        if all_rate_limited {
            return Err(AppError::TooManyRequests {
                detail: format!(
                    "the providers of `{alias}` are rate limiting: {}",
                    failures.join("; ")
                ),
                retry_after_secs: config.cooldown_secs.max(1),
            }
            .with_code("ai.upstream_rate_limited"));
        }
        Err(AppError::BadGateway(format!(
            "every deployment of `{alias}` failed: {}",
            failures.join("; ")
        ))
        .with_code("ai.upstream_failed"))
    }
}

/// The wait before retry `attempt` + 1: 250 ms doubled each time, with up to 25 % jitter.
fn backoff(attempt: u32) -> Duration {
    let base = 250u64 << attempt.min(6);
    let jitter = rand::thread_rng().gen_range(0..=base / 4);
    Duration::from_millis(base + jitter)
}
