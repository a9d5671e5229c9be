//! Starts the real auth service, the tickets service and the gateway on free ports, each service
//! on a fresh store of the backend under test, and drives them through the gateway.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use agora_shared::{
    bus::{Event, EventBus, InProcessBus},
    service::{Discovered, ServiceContext},
    testing::{Call, Store, TestDb},
};
use agora_tickets::{TicketsState, schema::tickets};

pub const PASSWORD: &str = "Sup3r-secret!";

pub struct Platform {
    pub base: String,
    pub tickets_grpc: String,
    pub client: Client,
    pub bus: InProcessBus,
    pub state: std::sync::Arc<TicketsState>,
    pub ctx: ServiceContext,
    pub discovered: Vec<Discovered>,
    /// Stops the tickets service alone (auth and the gateway keep running).
    pub tickets_shutdown: CancellationToken,
    shutdown: CancellationToken,
    _stores: (TestDb, TestDb),
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
    pub user_id: String,
    pub tenant_id: String,
}

fn session(body: &Value) -> Session {
    Session {
        access: body["access_token"].as_str().expect("access_token").into(),
        user_id: body["user"]["id"].as_str().expect("user.id").into(),
        tenant_id: body["user"]["tenant_id"].as_str().expect("tenant").into(),
    }
}

/// Starts auth, tickets and the gateway; the SLA watch looks every second.
pub async fn platform(store: Store) -> Platform {
    platform_on(store, None).await
}

/// The same, publishing through `bus` instead of an in-process bus.
pub async fn platform_on(store: Store, bus: Option<agora_shared::bus::SharedBus>) -> Platform {
    let (auth_db, tickets_db) = (store(), store());
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
sla_check_secs = 1

[gateway]
http_addr = "127.0.0.1:0"
http_workers = 2

[gateway.rate_limits]
api = {{ limit = 100000, period_secs = 60 }}
register = {{ limit = 1000, period_secs = 60 }}
credential = {{ limit = 1000, period_secs = 60 }}
credential_ip = {{ limit = 1000, period_secs = 60 }}
"#,
        auth = auth_db.url,
        tickets = tickets_db.url,
    );
    let (mut ctx, in_process) = agora_shared::testing::service_context(&toml);
    if let Some(bus) = bus {
        ctx.bus = bus;
    }
    let bus = in_process;
    let shutdown = CancellationToken::new();
    let auth = agora_auth::start(&ctx, shutdown.clone())
        .await
        .expect("auth starts");
    let mut discovered = vec![Discovered {
        name: "auth".into(),
        http: auth.service.http_addr,
        grpc: auth.service.grpc_addr.expect("auth grpc"),
    }];
    tokio::spawn(auth.service.wait());
    let tickets_shutdown = shutdown.child_token();
    let tickets = agora_tickets::start(&ctx.with_discovered(&discovered), tickets_shutdown.clone())
        .await
        .expect("tickets starts");
    let tickets_grpc = format!("http://{}", tickets.service.grpc_addr.expect("grpc"));
    discovered.push(Discovered {
        name: "tickets".into(),
        http: tickets.service.http_addr,
        grpc: tickets.service.grpc_addr.expect("grpc"),
    });
    let state = tickets.state.clone();
    tokio::spawn(tickets.service.wait());
    let gateway = agora_gateway::start(&ctx.with_discovered(&discovered), shutdown.clone())
        .await
        .expect("gateway starts");
    let base = format!("http://{}", gateway.http_addr);
    tokio::spawn(gateway.wait());
    Platform {
        base,
        tickets_grpc,
        client: Client::new(),
        bus,
        state,
        ctx,
        discovered,
        tickets_shutdown,
        shutdown,
        _stores: (auth_db, tickets_db),
    }
}

impl Platform {
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub fn authed(&self, method: Method, path: &str, who: &Session) -> RequestBuilder {
        self.req(method, path).bearer_auth(&who.access)
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

    /// A TENANT_USER of `admin`'s tenant, with `permissions`.
    pub async fn member(&self, admin: &Session, email: &str, permissions: &[&str]) -> Session {
        let invited = self
            .authed(
                Method::POST,
                &format!("/api/v1/tenants/{}/users", admin.tenant_id),
                admin,
            )
            .json(&json!({"email": email, "name": "Tech", "role": "TENANT_USER", "permissions": permissions}))
            .value()
            .await;
        let accepted = self
            .req(Method::POST, "/api/v1/auth/accept-invite")
            .json(&json!({"token": invited["invitation_token"], "password": PASSWORD}))
            .value()
            .await;
        session(&accepted)
    }

    /// A team of `admin`'s tenant; returns its id.
    pub async fn team(
        &self,
        admin: &Session,
        name: &str,
        members: &[&str],
        capacity: i32,
    ) -> String {
        let team = self
            .authed(Method::POST, "/api/v1/teams", admin)
            .json(&json!({"name": name, "zone": "Central", "member_ids": members, "daily_capacity": capacity}))
            .value()
            .await;
        team["id"].as_str().expect("team id").to_owned()
    }

    /// Creates a ticket; returns its JSON.
    pub async fn ticket(&self, who: &Session, body: Value) -> Value {
        let resp = self
            .authed(Method::POST, "/api/v1/tickets", who)
            .json(&body)
            .call()
            .await;
        assert_eq!(resp.status(), 201, "create ticket");
        resp.json().await.expect("ticket json")
    }

    /// Every event published so far of `event_type` on the tickets topic.
    pub async fn events_of(&self, event_type: &str) -> Vec<Event> {
        let group = format!("test-{}", uuid::Uuid::now_v7());
        let mut sub = self
            .bus
            .subscribe("agora.tickets.events", &group)
            .await
            .expect("subscribe");
        let mut out = Vec::new();
        while let Ok(Ok(d)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
            if d.event.event_type == event_type {
                out.push(d.event);
            }
        }
        out
    }

    /// Moves ticket `id` `hours` into the past: every stored time of it shifts back, as if that
    /// much time had passed.
    pub async fn age(&self, id: &str, hours: i64) {
        let id = id.to_owned();
        let shift = chrono::Duration::hours(hours);
        self.state
            .db
            .write(move |conn| {
                let t = tickets::table.find(&id);
                let (c, d, r, s, done, u): (
                    NaiveDateTime,
                    NaiveDateTime,
                    NaiveDateTime,
                    Option<NaiveDateTime>,
                    Option<NaiveDateTime>,
                    NaiveDateTime,
                ) = t
                    .select((
                        tickets::created_at,
                        tickets::due_at,
                        tickets::at_risk_at,
                        tickets::clock_stopped_at,
                        tickets::completed_at,
                        tickets::updated_at,
                    ))
                    .first(conn)?;
                diesel::update(t)
                    .set((
                        tickets::created_at.eq(c - shift),
                        tickets::due_at.eq(d - shift),
                        tickets::at_risk_at.eq(r - shift),
                        tickets::clock_stopped_at.eq(s.map(|s| s - shift)),
                        tickets::completed_at.eq(done.map(|x| x - shift)),
                        tickets::updated_at.eq(u - shift),
                    ))
                    .execute(conn)?;
                Ok(())
            })
            .await
            .expect("age ticket");
    }
}

/// Field names listed in a 422 problem.
pub fn fields(problem: &Value) -> Vec<String> {
    problem["errors"].as_array().map_or_else(Vec::new, |e| {
        e.iter()
            .map(|x| x["field"].as_str().unwrap_or_default().to_owned())
            .collect()
    })
}

/// Seconds between an RFC 3339 time in `v` and now (positive: in the future).
pub fn secs_from_now(v: &Value) -> i64 {
    let t = chrono::DateTime::parse_from_rfc3339(v.as_str().expect("time")).expect("rfc3339");
    (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds()
}
