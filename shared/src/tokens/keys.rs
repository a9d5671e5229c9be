//! Where verifiers find public keys: in memory (the owner's keyring) or a remote JWKS, cached
//! and refetched at a bounded rate on an unknown `kid`.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use jsonwebtoken::{DecodingKey, jwk::JwkSet};

use super::PublicKey;

/// Where a verifier finds public keys by `kid`.
#[async_trait]
pub trait KeySource: Send + Sync {
    async fn key(&self, kid: &str) -> Option<DecodingKey>;
}

/// Keys held in memory and replaced when the owner reloads its keyring.
#[derive(Default)]
pub struct StaticKeys {
    keys: RwLock<HashMap<String, DecodingKey>>,
}

impl StaticKeys {
    pub fn new(keys: &[PublicKey]) -> Self {
        let this = Self::default();
        this.replace(keys);
        this
    }

    pub fn replace(&self, keys: &[PublicKey]) {
        let map = keys
            .iter()
            .filter_map(|k| Some((k.kid.clone(), DecodingKey::from_ed_components(&k.x).ok()?)))
            .collect();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = map;
    }
}

#[async_trait]
impl KeySource for StaticKeys {
    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
            .cloned()
    }
}

/// How long a fetched JWKS is trusted when its answer names no `max-age`, and at most.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
const LONGEST_MAX_AGE: Duration = Duration::from_secs(3600);

/// A JWKS fetched over HTTP and cached for the `max-age` its answer gives (so a key the issuer
/// retired stops verifying within it, even unannounced), and refetched on an unknown `kid` at
/// most once per `min_refetch` so forged kids cannot make the verifier hammer the issuer. When
/// a refetch of an expired set fails, the old set is kept until one succeeds.
pub struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    min_refetch: Duration,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When the cached set must be fetched again.
    fresh_until: RwLock<Option<Instant>>,
    /// Held while fetching, so concurrent verifiers wait for one fetch instead of failing.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl RemoteJwks {
    pub fn new(url: impl Into<String>, min_refetch: Duration) -> Self {
        Self {
            url: url.into(),
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(5))
                .build()
                .expect("static reqwest configuration is valid"),
            min_refetch,
            keys: RwLock::default(),
            fresh_until: RwLock::default(),
            last_fetch: tokio::sync::Mutex::new(None),
            fetches: Default::default(),
        }
    }

    /// Forgets the cached keys, so the next verification fetches the JWKS again (keys the
    /// issuer retired stop verifying at once).
    pub async fn invalidate(&self) {
        let mut last = self.last_fetch.lock().await;
        *last = None;
        self.keys.write().unwrap_or_else(|p| p.into_inner()).clear();
        *self.fresh_until.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn stale(&self) -> bool {
        self.fresh_until
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|t| Instant::now() >= t)
    }

    /// How many times the JWKS was fetched (for metrics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Fetches the JWKS when the cached set has expired, or for an unknown `kid` unless the
    /// last fetch was too recent; nothing when another caller fetched meanwhile.
    async fn refresh(&self, kid: &str) {
        let mut last = self.last_fetch.lock().await;
        let stale = self.stale();
        let known = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(kid);
        if !stale && (known || last.is_some_and(|t| t.elapsed() < self.min_refetch)) {
            return;
        }
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fetched: Result<(JwkSet, Duration), String> = async {
            let resp = self
                .client
                .get(&self.url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("status {}", resp.status()));
            }
            let max_age = resp
                .headers()
                .get(reqwest::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .and_then(max_age)
                .unwrap_or(DEFAULT_MAX_AGE)
                .min(LONGEST_MAX_AGE);
            let set: JwkSet = resp.json().await.map_err(|e| format!("not a JWKS: {e}"))?;
            Ok((set, max_age))
        }
        .await;
        // Stamped only once the fetch finished: a caller dropped mid-fetch (its request failed
        // for another reason) must not stop the next caller from fetching.
        *last = Some(Instant::now());
        let (set, max_age) = match fetched {
            Ok(fetched) => fetched,
            Err(err) => return tracing::warn!(error = %err, "jwks fetch failed"),
        };
        *self.fresh_until.write().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + max_age.max(self.min_refetch));
        let map = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = map;
    }
}

#[async_trait]
impl KeySource for RemoteJwks {
    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        if !self.stale()
            && let Some(key) = self.keys.read().unwrap_or_else(|p| p.into_inner()).get(kid)
        {
            return Some(key.clone());
        }
        self.refresh(kid).await;
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
            .cloned()
    }
}

/// The `max-age` of a Cache-Control value (`no-store`/`no-cache` count as 0).
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control
        .split(',')
        .map(str::trim)
        .find_map(|d| match d {
            "no-store" | "no-cache" => Some(Duration::ZERO),
            _ => d
                .strip_prefix("max-age=")
                .and_then(|n| n.trim_matches('"').parse().ok())
                .map(Duration::from_secs),
        })
}

#[cfg(test)]
mod tests {
    use super::max_age;
    use std::time::Duration;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("max-age=\"5\""), Some(Duration::from_secs(5)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
