//! Authentication at the edge: the shared peer authenticator (JWKS + denylist for tokens, auth's
//! gRPC for API keys) configured from the gateway's settings.

use std::{sync::Arc, time::Duration};

use agora_shared::{
    peer_auth::{self, AuthPeer, PeerAuth},
    tokens::Denylist,
};

use crate::config::GatewayConfig;

/// The gateway's authenticator, verifying against the auth service at `auth_url`/`auth_grpc`.
pub fn authenticator(
    config: &GatewayConfig,
    auth_url: &str,
    auth_grpc: &str,
    denylist: Arc<dyn Denylist>,
) -> anyhow::Result<PeerAuth> {
    peer_auth::connect(
        &AuthPeer {
            url: auth_url,
            grpc: auth_grpc,
            issuer: &config.issuer,
            audience: &config.audience,
            jwks_refetch: Duration::from_secs(config.jwks_refetch_secs),
            api_key_ttl: Duration::from_secs(config.api_key_cache_secs),
        },
        denylist,
    )
}
