//! The platform test kit with auth, a test upstream and the gateway, all on free ports and one
//! process context (so the gateway sees auth's denylist, as in embedded mode).

use std::sync::{Arc, atomic::Ordering};

use reqwest::{Method, RequestBuilder};

use agora_shared::{testing::TestDb, tokens::KeyPair};

pub struct Stack {
    kit: agora_testkit::Platform,
    pub seen: Arc<Seen>,
    pub key: KeyPair,
    /// Holds the dead services' port for the test's life.
    _dead: tokio::net::TcpSocket,
}

impl std::ops::Deref for Stack {
    type Target = agora_testkit::Platform;
    fn deref(&self) -> &Self::Target {
        &self.kit
    }
}

/// A port nothing listens on, for as long as the socket is kept: bound (so no other test's
/// server can take it, as one did when the port was merely found free) but not listening, so a
/// connection to it is refused.
fn dead_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Starts auth, the test upstream and the gateway with the product's rate limits;
/// `gateway_toml` is added to the `[gateway]` section (plain keys only), `tables` after it
/// (e.g. `[gateway.rate_limits.routes]`).
pub async fn stack(gateway_toml: &str, tables: &str) -> Stack {
    let seen = Arc::new(Seen::default());
    let upstream_port = start_upstream(seen.clone());
    let dead = dead_port();
    let routes = format!(
        r#"
[auth_peer]
api_key_cache_secs = 1

[gateway.services.echo]
url = "http://127.0.0.1:{upstream_port}"
prefixes = ["/api/v1/echo"]
timeout_secs = 1
required = false

[gateway.services.echo_h2]
url = "http://127.0.0.1:{upstream_port}"
prefixes = ["/h2"]
strip_prefix = true
http2 = true
timeout_secs = 1
required = false

[gateway.services.tickets]
url = "http://127.0.0.1:{dead}"
required = false

[gateway.services.inventory_sync]
url = "http://127.0.0.1:{dead}"
required = false

[gateway.services.dead_h2]
url = "http://127.0.0.1:{dead}"
prefixes = ["/api/v1/dead-h2"]
http2 = true
required = false

[gateway.services.dead]
url = "http://127.0.0.1:{dead}"
prefixes = ["/api/v1/dead"]
required = false
"#,
        dead = dead.1,
    );
    let mut kit = agora_testkit::Platform::builder(TestDb::sqlite)
        .configured_key()
        .product_limits()
        .gateway(gateway_toml)
        .toml(&routes)
        .toml(tables)
        .start()
        .await;
    kit.gateway().await;
    let key = kit.key.clone().expect("configured key");
    Stack {
        kit,
        seen,
        key,
        _dead: dead.0,
    }
}

impl Stack {
    pub fn get_as(&self, path: &str, token: &str) -> RequestBuilder {
        self.req(Method::GET, path).bearer_auth(token)
    }

    pub fn hits(&self) -> usize {
        self.seen.hits.load(Ordering::SeqCst)
    }
}

pub use crate::upstream::{Seen, start_upstream};
pub use agora_shared::testing::{Call, problem};
pub use agora_testkit::PASSWORD;
