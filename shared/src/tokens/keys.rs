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

/// A JWKS fetched over HTTP, cached, and refetched on an unknown `kid` at most once per
/// `min_refetch` so forged kids cannot make the verifier hammer the issuer.
pub struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    min_refetch: Duration,
    keys: RwLock<HashMap<String, DecodingKey>>,
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
    }

    /// How many times the JWKS was fetched (for metrics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Fetches the JWKS unless `kid` arrived meanwhile or the last fetch was too recent.
    async fn refresh(&self, kid: &str) {
        let mut last = self.last_fetch.lock().await;
        if self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(kid)
        {
            return;
        }
        if last.is_some_and(|t| t.elapsed() < self.min_refetch) {
            return;
        }
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fetched: Result<JwkSet, String> = async {
            let resp = self
                .client
                .get(&self.url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("status {}", resp.status()));
            }
            resp.json().await.map_err(|e| format!("not a JWKS: {e}"))
        }
        .await;
        // Stamped only once the fetch finished: a caller dropped mid-fetch (its request failed
        // for another reason) must not stop the next caller from fetching.
        *last = Some(Instant::now());
        let set = match fetched {
            Ok(set) => set,
            Err(err) => return tracing::warn!(error = %err, "jwks fetch failed"),
        };
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
        if let Some(key) = self.keys.read().unwrap_or_else(|p| p.into_inner()).get(kid) {
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
