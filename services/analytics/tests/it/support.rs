//! Starts the real auth, tickets and analytics services and the gateway on free ports, each
//! service on a fresh store of the backend under test, all on one in-process bus, and drives
//! them through the gateway.

use std::{sync::Arc, time::Duration};

use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use agora_analytics::{AnalyticsState, Credential};
use agora_shared::{
    bus::InProcessBus,
    http::Role,
    service::Discovered,
    testing::{Call, Store, TestDb},
};

pub const PASSWORD: &str = "Sup3r-secret!";

pub struct Platform {
    pub base: String,
    pub client: Client,
    pub bus: InProcessBus,
    pub analytics: Arc<AnalyticsState>,
    pub analytics_grpc: String,
    pub auth_db: agora_shared::db::Db,
    pub discovered: Vec<Discovered>,
    pub credential: Credential,
    pub shutdown: CancellationToken,
    _stores: Vec<TestDb>,
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub tenant_id: String,
}

fn session(body: &Value) -> Session {
    Session {
        access: body["access_token"].as_str().expect("access_token").into(),
        tenant_id: body["user"]["tenant_id"].as_str().expect("tenant").into(),
    }
}

/// Starts auth, tickets, analytics and the gateway.
pub async fn platform(store: Store) -> Platform {
    let stores = vec![store(), store(), store()];
    let toml = format!(
        r#"
[auth]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
database_url = "{auth}"
http_workers = 1

[tickets]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
database_url = "{tickets}"
http_workers = 2

[analytics]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
database_url = "{analytics}"
http_workers = 2
metrics_scrape_secs = 1

[gateway]
http_addr = "127.0.0.1:0"
http_workers = 2

[gateway.rate_limits]
api = {{ limit = 100000, period_secs = 60 }}
register = {{ limit = 1000, period_secs = 60 }}
credential = {{ limit = 1000, period_secs = 60 }}
credential_ip = {{ limit = 1000, period_secs = 60 }}
"#,
        auth = stores[0].url,
        tickets = stores[1].url,
        analytics = stores[2].url,
    );
    let (ctx, bus) = agora_shared::testing::service_context(&toml);
    let shutdown = CancellationToken::new();
    let auth = agora_auth::start(&ctx, shutdown.clone())
        .await
        .expect("auth starts");
    let credential = Credential::Issued(Arc::new(agora_auth::admin::service_token_issuer(
        auth.state.keyring.clone(),
        "analytics",
    )));
    let auth_db = auth.state.db.clone();
    let mut discovered = vec![Discovered {
        name: "auth".into(),
        http: auth.service.http_addr,
        grpc: auth.service.grpc_addr.expect("auth grpc"),
    }];
    tokio::spawn(auth.service.wait());
    let tickets = agora_tickets::start(&ctx.with_discovered(&discovered), shutdown.clone())
        .await
        .expect("tickets starts");
    discovered.push(Discovered {
        name: "tickets".into(),
        http: tickets.service.http_addr,
        grpc: tickets.service.grpc_addr.expect("grpc"),
    });
    tokio::spawn(tickets.service.wait());
    let analytics = agora_analytics::start(
        &ctx.with_discovered(&discovered),
        shutdown.clone(),
        Some(credential.clone()),
    )
    .await
    .expect("analytics starts");
    let analytics_grpc = format!("http://{}", analytics.service.grpc_addr.expect("grpc"));
    discovered.push(Discovered {
        name: "analytics".into(),
        http: analytics.service.http_addr,
        grpc: analytics.service.grpc_addr.expect("grpc"),
    });
    let state = analytics.state.clone();
    tokio::spawn(analytics.service.wait());
    let gateway = agora_gateway::start(&ctx.with_discovered(&discovered), shutdown.clone())
        .await
        .expect("gateway starts");
    let base = format!("http://{}", gateway.http_addr);
    tokio::spawn(gateway.wait());
    Platform {
        base,
        client: Client::new(),
        bus,
        analytics: state,
        analytics_grpc,
        auth_db,
        discovered,
        credential,
        shutdown,
        _stores: stores,
    }
}

impl Platform {
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub fn authed(&self, method: Method, path: &str, who: &Session) -> RequestBuilder {
        self.req(method, path).bearer_auth(&who.access)
    }

    async fn login(&self, email: &str) -> Session {
        let resp = self
            .req(Method::POST, "/api/v1/auth/login")
            .json(&json!({"email": email, "password": PASSWORD}))
            .call()
            .await;
        assert_eq!(resp.status(), 200, "login {email}");
        session(&resp.json().await.expect("json"))
    }

    /// A new tenant and its admin.
    pub async fn tenant(&self, name: &str) -> Session {
        let email = format!("admin@{}.test", name.to_lowercase().replace(' ', "-"));
        let resp = self
            .req(Method::POST, "/api/v1/auth/register")
            .json(&json!({"email": email, "password": PASSWORD, "name": "Admin", "tenant_name": name}))
            .call()
            .await;
        assert_eq!(resp.status(), 201, "register {email}");
        session(&resp.json().await.expect("json"))
    }

    /// A TENANT_USER of `admin`'s tenant.
    pub async fn member(&self, admin: &Session, email: &str) -> Session {
        let invited = self
            .authed(
                Method::POST,
                &format!("/api/v1/tenants/{}/users", admin.tenant_id),
                admin,
            )
            .json(&json!({"email": email, "name": "Tech", "role": "TENANT_USER"}))
            .value()
            .await;
        let accepted = self
            .req(Method::POST, "/api/v1/auth/accept-invite")
            .json(&json!({"token": invited["invitation_token"], "password": PASSWORD}))
            .value()
            .await;
        session(&accepted)
    }

    /// A platform admin, created in the auth store and signed in.
    pub async fn platform_admin(&self) -> Session {
        let email = format!("root-{}@platform.test", uuid::Uuid::now_v7());
        agora_auth::admin::create_user(
            &self.auth_db,
            &email,
            PASSWORD,
            "Root",
            Role::PlatformAdmin,
            "platform",
        )
        .await
        .expect("platform admin");
        self.login(&email).await
    }

    /// Creates a ticket through the gateway; returns its JSON.
    pub async fn ticket(&self, who: &Session, body: Value) -> Value {
        let resp = self
            .authed(Method::POST, "/api/v1/tickets", who)
            .json(&body)
            .call()
            .await;
        assert_eq!(resp.status(), 201, "create ticket");
        resp.json().await.expect("ticket json")
    }

    /// POST /analytics/query, expecting 200.
    pub async fn query(&self, who: &Session, body: Value) -> Value {
        let resp = self
            .authed(Method::POST, "/api/v1/analytics/query", who)
            .json(&body)
            .call()
            .await;
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert_eq!(status, 200, "query {body}: {text}");
        serde_json::from_str(&text).expect("json")
    }

    /// GET of an analytics view, expecting 200.
    pub async fn view(&self, who: &Session, path: &str) -> Value {
        let resp = self.authed(Method::GET, path, who).call().await;
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).expect("json")
    }

    /// Waits until analytics has handled `n` events in total (its inbox), at most `limit`.
    pub async fn ingested(&self, n: i64, limit: Duration) {
        let started = std::time::Instant::now();
        loop {
            let seen = self.inbox().await;
            if seen >= n {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "analytics handled {seen} of {n} events in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Events analytics has handled.
    pub async fn inbox(&self) -> i64 {
        use agora_shared::db::outbox_schema::inbox;
        use diesel::prelude::*;
        self.analytics
            .db
            .read(|conn| Ok(inbox::table.count().get_result::<i64>(conn)?))
            .await
            .expect("inbox count")
    }
}
