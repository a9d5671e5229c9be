//! Authentication at the edge: the shared peer authenticator (JWKS + denylist for tokens, auth's
//! gRPC for API keys) configured from the shared `[auth_peer]` section.

use std::sync::Arc;

use agora_shared::{
    config::AuthPeerConfig,
    peer_auth::{self, PeerAuth},
    tokens::Denylist,
};

/// The gateway's authenticator, verifying against the auth service `peer` names.
pub fn authenticator(
    peer: &AuthPeerConfig,
    denylist: Arc<dyn Denylist>,
) -> anyhow::Result<PeerAuth> {
    peer_auth::connect(peer, denylist)
}
