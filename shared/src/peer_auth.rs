//! Verifying callers in a service that is not auth: access tokens against the auth service's
//! JWKS (cached, refetched on an unknown key id at a bounded rate) and the shared denylist, and
//! API keys through auth's gRPC `VerifyApiKey` with a short cache. The gateway and every other
//! service authenticate this way.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use lru::LruCache;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use agora_proto::auth::v1::{VerifyApiKeyRequest, auth_service_client::AuthServiceClient};

use crate::{
    AppError,
    config::{AuthPeerConfig, Secret},
    grpc::Forward,
    http::{ApiKeyResolver, Authenticator, Caller, Credential, Role},
    redis::Invalidate,
    tokens::{Denylist, RemoteJwks, Verifier},
};

/// Verifications kept at most; a full cache forgets the least recently used one (a flood of
/// random keys cannot evict everything the live keys rely on).
const MAX_CACHED: NonZeroUsize = NonZeroUsize::new(10_000).unwrap();

/// API keys verified by the auth service, remembered for `ttl` (so a revoked key stops working
/// within `ttl`).
pub struct GrpcApiKeys {
    /// Presents the peer secret on every call (auth answers no one else).
    client: AuthServiceClient<InterceptedService<Channel, Forward>>,
    ttl: Duration,
    cache: Mutex<LruCache<String, (Instant, Option<Caller>)>>,
}

impl GrpcApiKeys {
    /// A resolver calling auth on `channel` with the peer secret `secret`.
    pub fn new(channel: Channel, secret: Option<&Secret>, ttl: Duration) -> Self {
        let forward = Forward::default().with_peer_secret(secret);
        Self {
            client: AuthServiceClient::with_interceptor(channel, forward),
            ttl,
            cache: Mutex::new(LruCache::new(MAX_CACHED)),
        }
    }

    /// Forgets the verifications `what` names: `*` (all), `api_key:<id>` (revoked),
    /// `user:<id>` (its creator's rights changed), `tenant:<id>` (suspended); the rest stay.
    pub fn forget(&self, what: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if what == "*" {
            return cache.clear();
        }
        let Some((kind, id)) = what.split_once(':') else {
            return;
        };
        let named: Vec<String> = cache
            .iter()
            .filter(|(_, (_, caller))| {
                caller
                    .as_ref()
                    .is_some_and(|c| match (kind, &c.credential) {
                        ("api_key", Credential::ApiKey { key_id, .. }) => key_id == id,
                        ("user", _) => c.user_id == id,
                        ("tenant", _) => c.tenant_id == id,
                        _ => false,
                    })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in named {
            cache.pop(&k);
        }
    }
}

#[async_trait]
impl ApiKeyResolver for GrpcApiKeys {
    async fn resolve(&self, key: &str) -> Result<Option<Caller>, AppError> {
        let id = hex::encode(Sha256::digest(key.as_bytes()));
        if let Some((at, caller)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            && at.elapsed() < self.ttl
        {
            return Ok(caller.clone());
        }
        let resp = self
            .client
            .clone()
            .verify_api_key(VerifyApiKeyRequest {
                key: key.to_owned(),
            })
            .await
            .map_err(|status| {
                tracing::warn!(code = ?status.code(), "api key verification failed");
                match status.code() {
                    // Auth could not be reached or answered in time: say so, retryably.
                    tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Cancelled
                    | tonic::Code::Unknown => {
                        AppError::Unavailable("credentials cannot be checked right now".into())
                    }
                    _ => AppError::from(status),
                }
            })?
            .into_inner();
        let caller = match resp.valid {
            false => None,
            true => Some(Caller {
                user_id: resp.user_id,
                tenant_id: resp.tenant_id,
                // A role outside the set is auth misbehaving: refuse rather than guess one.
                role: resp.role.parse::<Role>().map_err(|_| {
                    tracing::error!(role = %resp.role, "auth vouched for a key with an unknown role");
                    AppError::BadGateway("the auth service answered an unknown role".into())
                })?,
                permissions: resp.permissions,
                email: resp.email,
                plan: None,
                credential: Credential::ApiKey {
                    key_id: resp.key_id,
                    key: key.to_owned(),
                },
            }),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.put(id, (Instant::now(), caller.clone()));
        Ok(caller)
    }
}

/// The authenticator of a service that is not auth, with handles on its caches.
pub struct PeerAuth {
    pub authenticator: Authenticator,
    jwks: Arc<RemoteJwks>,
    api_keys: Arc<GrpcApiKeys>,
}

#[async_trait]
impl Invalidate for PeerAuth {
    async fn invalidate(&self, what: &str) {
        if matches!(what, "*" | "jwks") {
            self.jwks.invalidate().await;
        }
        self.api_keys.forget(what);
    }
}

/// An authenticator that verifies against the auth service at `peer`.
pub fn connect(peer: &AuthPeerConfig, denylist: Arc<dyn Denylist>) -> anyhow::Result<PeerAuth> {
    let jwks = Arc::new(RemoteJwks::new(
        format!("{}/.well-known/jwks.json", peer.url.trim_end_matches('/')),
        Duration::from_secs(peer.jwks_refetch_secs),
    ));
    let verifier = Verifier::new(&peer.issuer, &peer.audience, jwks.clone(), denylist)
        .with_vouches(peer.secret.as_ref());
    let channel = crate::grpc::channel(&peer.grpc, Duration::from_secs(2), Duration::from_secs(5))?;
    let api_keys = Arc::new(GrpcApiKeys::new(
        channel,
        peer.secret.as_ref(),
        Duration::from_secs(peer.api_key_cache_secs),
    ));
    Ok(PeerAuth {
        authenticator: Authenticator {
            verifier: Arc::new(verifier),
            api_keys: Some(api_keys.clone()),
        },
        jwks,
        api_keys,
    })
}
