//! The `[gateway]` configuration section (`AGORA_GATEWAY__*`).

use std::{collections::BTreeMap, net::SocketAddr};

use serde::{Deserialize, Serialize};

use agora_shared::config::{ConfigError, Validate};

/// A service behind the gateway: where it is and which path prefixes go to it. Adding a
/// service to the platform is one entry here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UpstreamConfig {
    /// Base URL of its HTTP API, e.g. `http://127.0.0.1:8081`.
    pub url: String,
    /// Path prefixes routed to it (matched on whole segments, longest first).
    pub prefixes: Vec<String>,
    /// Time allowed for the upstream to answer before a 504.
    pub timeout_secs: u64,
    /// Whether `/health` reports 503 while it is down.
    pub required: bool,
    /// Largest request body for its routes (defaults to `gateway.max_body_bytes`).
    pub max_body_bytes: Option<usize>,
    /// Remove the matched prefix before forwarding (mount a service under another path).
    pub strip_prefix: bool,
    /// Speak HTTP/2 to it (cleartext, prior knowledge): requests from every client share a few
    /// multiplexed connections. Agora's own services accept it; other upstreams get HTTP/1.1.
    pub http2: bool,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            prefixes: Vec::new(),
            timeout_secs: 30,
            required: true,
            max_body_bytes: None,
            strip_prefix: false,
            http2: false,
        }
    }
}

/// `limit` requests per `period_secs`, replenished continuously (GCRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Quota {
    pub limit: u32,
    pub period_secs: u64,
}

impl Quota {
    pub const fn per_minute(limit: u32) -> Self {
        Self {
            limit,
            period_secs: 60,
        }
    }
}

/// Rate-limit classes and their overrides.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    /// Login, forgot, reset, accept-invite: per client IP and account.
    pub credential: Quota,
    /// Login, forgot, reset, accept-invite: per client IP.
    pub credential_ip: Quota,
    /// Register: per client IP.
    pub register: Quota,
    /// Everything else: per caller (user, API key, or client IP when anonymous).
    pub api: Quota,
    /// Upload routes: per caller.
    pub upload: Quota,
    /// Requests whose credential fails verification, per client IP. Past it the IP's
    /// credentials are refused (429) before they cost a verification.
    pub auth_failures: Quota,
    /// Path prefix -> quota replacing the api or upload quota on those routes.
    pub routes: BTreeMap<String, Quota>,
    /// Tenant plan (FREE, STARTER, ...) -> api quota for callers on that plan.
    pub plans: BTreeMap<String, Quota>,
    /// Prefixes of public endpoints that one sender calls for many tenants (a provider's
    /// webhooks): anonymous requests under them count per client IP *and* path, so that one
    /// tenant's traffic from Stripe's few addresses never uses up another tenant's endpoint.
    pub per_endpoint: Vec<String>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            credential: Quota::per_minute(5),
            credential_ip: Quota::per_minute(30),
            register: Quota::per_minute(10),
            api: Quota::per_minute(100),
            upload: Quota::per_minute(10),
            auth_failures: Quota::per_minute(20),
            routes: BTreeMap::new(),
            plans: BTreeMap::new(),
            per_endpoint: vec!["/api/v1/inventory/webhooks/".into()],
        }
    }
}

/// Cross-origin resource sharing, answered at the edge.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CorsConfig {
    /// Allowed origins (`*` for any; credentials are then not allowed). Empty: CORS off.
    pub origins: Vec<String>,
    pub methods: Vec<String>,
    pub headers: Vec<String>,
    pub credentials: bool,
    pub max_age_secs: usize,
    /// Also allow `http://localhost:<port>` and `http://127.0.0.1:<port>` (a front-end on a dev
    /// server). Unset: on in embedded mode, off in distributed mode.
    pub local_origins: Option<bool>,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            origins: Vec::new(),
            methods: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                .map(String::from)
                .to_vec(),
            headers: [
                "authorization",
                "content-type",
                "x-api-key",
                "x-request-id",
                "if-match",
            ]
            .map(String::from)
            .to_vec(),
            credentials: false,
            max_age_secs: 600,
            local_origins: None,
        }
    }
}

/// Settings of the gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    pub http_addr: SocketAddr,
    pub http_workers: usize,
    pub services: BTreeMap<String, UpstreamConfig>,
    /// Exact paths (or prefixes ending in `/`) that need no credential.
    pub public_paths: Vec<String>,
    /// Prefixes that take uploads: the upload rate class and `upload_max_body_bytes`.
    pub upload_prefixes: Vec<String>,
    pub max_body_bytes: usize,
    pub upload_max_body_bytes: usize,
    /// Largest total size of request header names and values (431 above it); the HTTP layer
    /// itself refuses more than 96 headers or a 128 KiB request head.
    pub max_header_bytes: usize,
    pub rate_limits: RateLimits,
    pub cors: CorsConfig,
    /// Send Strict-Transport-Security (when served over TLS by a terminating proxy).
    pub hsts: bool,
    /// Peers whose X-Forwarded-For is believed (IPs or CIDRs).
    pub trusted_proxies: Vec<String>,
    pub health_timeout_ms: u64,
    /// Bearer token for `/metrics` and the per-service detail of `/health` (a monitoring
    /// system's). Unset: both are public, as on a laptop; set it wherever the gateway is.
    pub ops_token: Option<agora_shared::config::Secret>,
    pub websocket: WebSocketLimits,
}

/// Bounds on relayed WebSockets (`gateway.websocket`), per gateway process.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default)]
pub struct WebSocketLimits {
    /// A connection with no frame either way for this long is closed (1001); clients that
    /// ping (every live protocol does) never reach it.
    pub idle_timeout_secs: u64,
    /// Longest life of one connection, whatever flows (1001 at the end; clients reconnect,
    /// and their credential is checked again).
    pub max_lifetime_secs: u64,
    /// Open connections per user (whichever of their API keys or sessions); 429 above.
    pub max_per_caller: u32,
    /// Open anonymous connections per client address (an IPv6 client by its /64); 429 above.
    /// Realtime's WebSockets authenticate in their first frame, so the gateway sees no caller
    /// for them: every user behind one NAT shares this.
    pub max_per_address: u32,
    /// Open connections in all; 503 above.
    pub max_connections: u32,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 120,
            max_lifetime_secs: 2 * 3600,
            max_per_caller: 16,
            max_per_address: 256,
            max_connections: 10_000,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        let auth = UpstreamConfig {
            url: "http://127.0.0.1:8081".into(),
            prefixes: [
                "/api/v1/auth",
                "/api/v1/tenants",
                "/api/v1/teams",
                "/api/v1/api-keys",
                "/.well-known/jwks.json",
            ]
            .map(String::from)
            .to_vec(),
            http2: true,
            ..Default::default()
        };
        let tickets = UpstreamConfig {
            url: "http://127.0.0.1:8082".into(),
            prefixes: vec!["/api/v1/tickets".into()],
            http2: true,
            ..Default::default()
        };
        // Analytics serves dashboards, not the requests clients depend on: when it is down the
        // gateway's /health says so but stays ready.
        let analytics = UpstreamConfig {
            url: "http://127.0.0.1:8083".into(),
            prefixes: vec!["/api/v1/analytics".into(), "/api/v1/dashboard".into()],
            required: false,
            http2: true,
            ..Default::default()
        };
        // CSV imports (up to inventory_sync.import_max_bytes, 5 MiB) and snapshots of 10,000
        // counts are larger than the gateway's default body limit.
        let inventory_sync = UpstreamConfig {
            url: "http://127.0.0.1:8084".into(),
            prefixes: vec!["/api/v1/inventory".into()],
            http2: true,
            max_body_bytes: Some(8 * 1024 * 1024),
            ..Default::default()
        };
        // Submissions carry source, input and expected output (256 KiB each, base64), up to
        // 20 in a batch; `?wait=true` answers once the program has run. Running code is one
        // product's feature: while code-exec is down the gateway stays ready for the rest.
        let code_exec = UpstreamConfig {
            url: "http://127.0.0.1:8085".into(),
            prefixes: vec!["/api/v1/code-exec".into()],
            required: false,
            http2: true,
            timeout_secs: 60,
            max_body_bytes: Some(8 * 1024 * 1024),
            ..Default::default()
        };
        // Live updates: the native WebSocket and Socket.IO (long polls wait up to a ping
        // interval). Both authenticate in their first frame (browsers cannot set headers on a
        // WebSocket), so their paths are public here. Dashboards and chats go quiet when it
        // is down; the rest of the platform does not.
        let realtime = UpstreamConfig {
            url: "http://127.0.0.1:8086".into(),
            prefixes: vec!["/api/v1/realtime".into(), "/socket.io".into()],
            required: false,
            http2: true,
            timeout_secs: 60,
            ..Default::default()
        };
        // Documents are uploaded whole (up to ai.max_document_bytes, 20 MiB, in JSON or a
        // multipart form); answers and chats are the AI features of four products, which
        // the rest of the platform does without while ai is down.
        let ai = UpstreamConfig {
            url: "http://127.0.0.1:8087".into(),
            prefixes: vec!["/api/v1/ai".into()],
            required: false,
            http2: true,
            timeout_secs: 120,
            max_body_bytes: Some(48 * 1024 * 1024),
            ..Default::default()
        };
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], crate::PORT)),
            http_workers: 2,
            services: BTreeMap::from([
                ("auth".to_owned(), auth),
                ("tickets".to_owned(), tickets),
                ("analytics".to_owned(), analytics),
                ("inventory_sync".to_owned(), inventory_sync),
                ("code_exec".to_owned(), code_exec),
                ("realtime".to_owned(), realtime),
                ("ai".to_owned(), ai),
            ]),
            public_paths: [
                "/api/v1/auth/register",
                "/api/v1/auth/login",
                "/api/v1/auth/refresh",
                "/api/v1/auth/forgot",
                "/api/v1/auth/reset",
                "/api/v1/auth/accept-invite",
                "/.well-known/jwks.json",
                // Stripe delivers webhooks with its signature, checked by inventory-sync.
                "/api/v1/inventory/webhooks/stripe/",
                // The realtime service authenticates these in-band: a connect frame, or
                // Socket.IO's handshake `auth`.
                "/api/v1/realtime/ws",
                "/socket.io/",
            ]
            .map(String::from)
            .to_vec(),
            upload_prefixes: Vec::new(),
            max_body_bytes: 1024 * 1024,
            upload_max_body_bytes: 100 * 1024 * 1024,
            max_header_bytes: 16 * 1024,
            rate_limits: RateLimits::default(),
            cors: CorsConfig::default(),
            hsts: false,
            trusted_proxies: Vec::new(),
            health_timeout_ms: 2000,
            ops_token: None,
            websocket: WebSocketLimits::default(),
        }
    }
}

impl Validate for GatewayConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        if !self.services.contains_key("auth") {
            return Err(ConfigError::new(
                key("services.auth"),
                "is required (tokens and API keys are verified with it)",
            ));
        }
        for (name, svc) in &self.services {
            crate::routing::Base::parse(&svc.url)
                .map_err(|e| ConfigError::new(key(&format!("services.{name}.url")), e))?;
            for p in &svc.prefixes {
                if !p.starts_with('/') {
                    return Err(ConfigError::new(
                        key(&format!("services.{name}.prefixes")),
                        format!("`{p}` must start with /"),
                    ));
                }
            }
            if svc.timeout_secs == 0 {
                return Err(ConfigError::new(
                    key(&format!("services.{name}.timeout_secs")),
                    "must be at least 1",
                ));
            }
        }
        let quotas = [
            ("credential", self.rate_limits.credential),
            ("credential_ip", self.rate_limits.credential_ip),
            ("register", self.rate_limits.register),
            ("api", self.rate_limits.api),
            ("upload", self.rate_limits.upload),
        ];
        let overrides = self
            .rate_limits
            .routes
            .iter()
            .chain(self.rate_limits.plans.iter());
        for (name, q) in quotas
            .iter()
            .map(|(n, q)| (n.to_string(), *q))
            .chain(overrides.map(|(n, q)| (n.clone(), *q)))
        {
            if q.limit == 0 || q.period_secs == 0 {
                return Err(ConfigError::new(
                    key(&format!("rate_limits.{name}")),
                    "limit and period_secs must be at least 1",
                ));
            }
        }
        for p in &self.trusted_proxies {
            crate::client_ip::parse_net(p)
                .map_err(|e| ConfigError::new(key("trusted_proxies"), e))?;
        }
        if self.cors.credentials && self.cors.origins.iter().any(|o| o == "*") {
            return Err(ConfigError::new(
                key("cors.credentials"),
                "cannot be true when origins contains `*`",
            ));
        }
        if self.http_workers == 0 {
            return Err(ConfigError::new(key("http_workers"), "must be at least 1"));
        }
        let ws = &self.websocket;
        for (name, value) in [
            ("idle_timeout_secs", ws.idle_timeout_secs),
            ("max_lifetime_secs", ws.max_lifetime_secs),
            ("max_per_caller", ws.max_per_caller.into()),
            ("max_per_address", ws.max_per_address.into()),
            ("max_connections", ws.max_connections.into()),
        ] {
            if value == 0 {
                return Err(ConfigError::new(
                    key(&format!("websocket.{name}")),
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }
}
