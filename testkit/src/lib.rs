//! The platform test kit: starts the real auth service, any further services and the gateway
//! in this process on port 0, each on a fresh store of the backend under test and all on one
//! in-process bus (or the bus given), and drives them like a client.
//!
//! ```ignore
//! let mut p = Platform::builder(store).service("tickets", "sla_check_secs = 1").start().await;
//! let tickets = agora_tickets::start(&p.context(), p.shutdown.child_token()).await?;
//! p.serve(tickets.service);
//! p.gateway().await;
//! let admin = p.tenant("Acme").await;
//! ```

mod client;
pub mod documents;
pub mod fake_amazon;
pub mod fake_google;
pub mod fake_llm;
mod fake_server;
pub mod fake_stripe;
mod smtp;

use std::sync::Arc;

use reqwest::Client;
use tokio_util::sync::CancellationToken;

use agora_auth::AuthState;
use agora_shared::{
    bus::{InProcessBus, SharedBus},
    service::{Discovered, RunningService, ServiceContext},
    testing::Store,
    tokens::KeyPair,
};

pub use agora_shared::testing::{Call, TestDb, problem};
pub use client::{Bearer, PASSWORD, Session, eventually, fields, ok_json, secs_from_now};
pub use smtp::{fake_smtp, next_mail};

/// Limits generous enough that tests not about rate limiting never meet them.
const OPEN_LIMITS: &str = r#"
[gateway.rate_limits]
api = { limit = 100000, period_secs = 60 }
register = { limit = 1000, period_secs = 60 }
credential = { limit = 1000, period_secs = 60 }
credential_ip = { limit = 1000, period_secs = 60 }
"#;

/// What to start; see [`Platform::builder`].
pub struct Builder {
    store: Store,
    stores: Vec<TestDb>,
    auth_db: Option<TestDb>,
    auth: String,
    /// Name and settings of each further service, beside its store in `stores`.
    services: Vec<(String, String)>,
    gateway: String,
    tables: String,
    bus: Option<SharedBus>,
    key: Option<KeyPair>,
    product_limits: bool,
    default_workers: bool,
}

impl Builder {
    /// The gateway keeps the product's default rate limits (otherwise the kit sets limits that
    /// tests not about rate limiting never meet).
    pub fn product_limits(mut self) -> Self {
        self.product_limits = true;
        self
    }

    /// More `[auth]` settings (plain keys).
    pub fn auth(mut self, settings: &str) -> Self {
        self.auth.push_str(settings);
        self.auth.push('\n');
        self
    }

    /// Every server keeps its default worker count (one per core), as benchmarks need; tests
    /// run with one or two to keep threads few.
    pub fn default_workers(mut self) -> Self {
        self.default_workers = true;
        self
    }

    /// Auth on this store instead of a fresh one of the builder's backend.
    pub fn auth_store(mut self, db: TestDb) -> Self {
        self.auth_db = Some(db);
        self
    }

    /// Auth signs with a configured key (otherwise it generates keys into its store).
    pub fn configured_key(mut self) -> Self {
        self.key = Some(KeyPair::generate());
        self
    }

    /// A `[name]` section for a service the test starts itself, on ports 0 and a fresh store.
    pub fn service(mut self, name: &str, settings: &str) -> Self {
        self.stores.push((self.store)());
        self.services.push((name.to_owned(), settings.to_owned()));
        self
    }

    /// More `[gateway]` settings (plain keys).
    pub fn gateway(mut self, settings: &str) -> Self {
        self.gateway.push_str(settings);
        self.gateway.push('\n');
        self
    }

    /// Whole tables after everything else (e.g. `[gateway.services.echo]`, `[auth_peer]`);
    /// `[gateway.rate_limits]` given here replaces the kit's generous limits.
    pub fn toml(mut self, tables: &str) -> Self {
        self.tables.push_str(tables);
        self.tables.push('\n');
        self
    }

    /// Publish through `bus` instead of the in-process one.
    pub fn bus(mut self, bus: SharedBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Writes the configuration and starts auth (every service verifies callers through it).
    pub async fn start(self) -> Platform {
        let auth_db = self.auth_db.unwrap_or_else(self.store);
        let mut auth = self.auth;
        // Auth's own credential limit stays out of tests not about it (they set it).
        if !auth.contains("credential_requests_per_minute") {
            auth.push_str("credential_requests_per_minute = 0\n");
        }
        if let Some(key) = &self.key {
            auth.push_str(&format!("signing_key = '''{}'''\n", key.private_pem()));
        }
        let limits = if self.product_limits || self.tables.contains("[gateway.rate_limits]") {
            ""
        } else {
            OPEN_LIMITS
        };
        let workers = |n: usize| match self.default_workers {
            true => String::new(),
            false => format!("http_workers = {n}\n"),
        };
        let section = |name: &str, url: &str, workers: String, settings: &str| {
            let grpc = if name == "gateway" {
                ""
            } else {
                "grpc_addr = \"127.0.0.1:0\"\n"
            };
            let store = if url.is_empty() {
                String::new()
            } else {
                format!("database_url = \"{url}\"\n")
            };
            format!("\n[{name}]\nhttp_addr = \"127.0.0.1:0\"\n{grpc}{store}{workers}{settings}\n")
        };
        let mut toml = section("auth", &auth_db.url, workers(1), &auth);
        for ((name, settings), db) in self.services.iter().zip(&self.stores) {
            toml.push_str(&section(name, &db.url, workers(2), settings));
        }
        // A test that sets the gateway's workers itself keeps its number.
        let gateway_workers = match self.gateway.contains("http_workers") {
            true => String::new(),
            false => workers(2),
        };
        toml.push_str(&section("gateway", "", gateway_workers, &self.gateway));
        toml.push_str(limits);
        toml.push_str(&self.tables);
        let (mut ctx, bus) = agora_shared::testing::service_context(&toml);
        if let Some(shared) = self.bus {
            ctx.bus = shared;
        }
        let shutdown = CancellationToken::new();
        let started = agora_auth::start(&ctx, shutdown.clone())
            .await
            .expect("auth starts");
        let service = &started.service;
        let auth_http = format!("http://{}", service.http_addr);
        let auth_grpc = format!("http://{}", service.grpc_addr.expect("auth serves gRPC"));
        let mut stores = vec![auth_db];
        stores.extend(self.stores);
        let mut platform = Platform {
            base: auth_http.clone(),
            auth_http,
            auth_grpc,
            client: Client::new(),
            bus,
            auth: started.state.clone(),
            key: self.key,
            ctx,
            discovered: Vec::new(),
            shutdown,
            stores,
        };
        platform.serve(started.service);
        platform
    }
}

/// Services running in this test; all stop when it is dropped.
pub struct Platform {
    /// Where requests go: the gateway once [`Platform::gateway`] started it, auth before.
    pub base: String,
    pub auth_http: String,
    pub auth_grpc: String,
    pub client: Client,
    /// The in-process bus (the one services publish on unless [`Builder::bus`] replaced it).
    pub bus: InProcessBus,
    pub auth: Arc<AuthState>,
    /// Auth's configured signing key ([`Builder::configured_key`]).
    pub key: Option<KeyPair>,
    pub ctx: ServiceContext,
    /// Services started so far, in order.
    pub discovered: Vec<Discovered>,
    /// Stops everything; give a service `shutdown.child_token()` to stop it alone.
    pub shutdown: CancellationToken,
    stores: Vec<TestDb>,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Platform {
    /// Auth plus the services given to the builder (not yet started, except auth).
    pub fn builder(store: Store) -> Builder {
        Builder {
            store,
            stores: Vec::new(),
            auth_db: None,
            auth: String::new(),
            services: Vec::new(),
            gateway: String::new(),
            tables: String::new(),
            bus: None,
            key: None,
            product_limits: false,
            default_workers: false,
        }
    }

    /// The context a service starts with: the configuration and every service started so far.
    pub fn context(&self) -> ServiceContext {
        self.ctx.with_discovered(&self.discovered)
    }

    /// Records a started service so that later ones (and the gateway) find it, and runs it.
    pub fn serve(&mut self, service: RunningService) {
        if let Some(grpc) = service.grpc_addr {
            self.discovered.push(Discovered {
                name: service.name.into(),
                http: service.http_addr,
                grpc,
            });
        }
        tokio::spawn(service.wait());
    }

    /// Starts the gateway in front of everything started so far; requests go through it.
    pub async fn gateway(&mut self) {
        let gateway = agora_gateway::start(&self.context(), self.shutdown.clone())
            .await
            .expect("gateway starts");
        self.base = format!("http://{}", gateway.http_addr);
        tokio::spawn(gateway.wait());
    }

    /// The `n`th store (0: auth's, then the builder's services' in order).
    pub fn store(&self, n: usize) -> &TestDb {
        &self.stores[n]
    }
}

/// Runs each listed `async fn name(db: TestDb)` on a fresh SQLite store and on a fresh
/// PostgreSQL database (skipped, or failing under
/// AGORA_TEST_REQUIRE_INFRA=1, when no server is configured).
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestDb::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::TestDb::postgres() {
                        super::$name(db).await
                    }
                }
            )*
        }
    };
}
