//! Authentication at the edge: access tokens against the auth service's JWKS (cached, refetched
//! on an unknown key id at a bounded rate), the shared denylist, and API keys through auth's
//! gRPC VerifyApiKey with a short cache.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

use agora_proto::auth::v1::{VerifyApiKeyRequest, auth_service_client::AuthServiceClient};
use agora_shared::{
    AppError,
    http::{ApiKeyResolver, Authenticator, Caller, Credential, Role},
    tokens::{Denylist, RemoteJwks, Verifier},
};

use crate::config::GatewayConfig;

/// Cache entries kept at most; the oldest half is dropped when full.
const MAX_CACHED: usize = 10_000;

/// API keys verified by the auth service, remembered for `ttl` (so a revoked key stops working
/// within `ttl`).
pub struct GrpcApiKeys {
    client: AuthServiceClient<Channel>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Option<Caller>)>>,
}

impl GrpcApiKeys {
    pub fn new(channel: Channel, ttl: Duration) -> Self {
        Self {
            client: AuthServiceClient::new(channel),
            ttl,
            cache: Mutex::default(),
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
                AppError::Unavailable("credentials cannot be checked right now".into())
            })?
            .into_inner();
        let caller = resp.valid.then(|| Caller {
            user_id: resp.user_id,
            tenant_id: resp.tenant_id,
            role: resp.role.parse().unwrap_or(Role::TenantUser),
            permissions: resp.permissions,
            email: resp.email,
            plan: None,
            credential: Credential::ApiKey {
                key_id: resp.key_id,
                key: key.to_owned(),
            },
        });
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            let ttl = self.ttl;
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(id, (Instant::now(), caller.clone()));
        Ok(caller)
    }
}

/// The gateway's authenticator, verifying against the auth service at `auth_url`/`auth_grpc`.
pub fn authenticator(
    config: &GatewayConfig,
    auth_url: &str,
    auth_grpc: &str,
    denylist: Arc<dyn Denylist>,
) -> anyhow::Result<Authenticator> {
    let jwks = RemoteJwks::new(
        format!("{}/.well-known/jwks.json", auth_url.trim_end_matches('/')),
        Duration::from_secs(config.jwks_refetch_secs),
    );
    let verifier = Verifier::new(&config.issuer, &config.audience, Arc::new(jwks), denylist);
    let channel =
        agora_shared::grpc::channel(auth_grpc, Duration::from_secs(2), Duration::from_secs(5))?;
    Ok(Authenticator {
        verifier: Arc::new(verifier),
        api_keys: Some(Arc::new(GrpcApiKeys::new(
            channel,
            Duration::from_secs(config.api_key_cache_secs),
        ))),
    })
}
