//! Client helpers: requests to [`Platform::base`], signed-in sessions, the events on the bus.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use agora_shared::{
    bus::{Event, EventBus, outbox::Outbox},
    db::Db,
    http::Role,
    testing::Call,
};

use crate::Platform;

/// Every test user's password.
pub const PASSWORD: &str = "Sup3r-secret!";

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
    pub tenant_id: String,
    pub email: String,
}

impl Session {
    /// The session in a login, register or accept-invite answer.
    pub fn from_body(body: &Value) -> Self {
        let text = |v: &Value, what: &str| v.as_str().expect(what).to_owned();
        Session {
            access: text(&body["access_token"], "access_token"),
            refresh: text(&body["refresh_token"], "refresh_token"),
            user_id: text(&body["user"]["id"], "user.id"),
            tenant_id: text(&body["user"]["tenant_id"], "user.tenant_id"),
            email: text(&body["user"]["email"], "user.email"),
        }
    }
}

/// What [`Platform::authed`] sends as a bearer credential: a session's access token, or any token.
pub trait Bearer {
    fn bearer(&self) -> &str;
}

impl Bearer for Session {
    fn bearer(&self) -> &str {
        &self.access
    }
}

impl Bearer for str {
    fn bearer(&self) -> &str {
        self
    }
}

impl Bearer for String {
    fn bearer(&self) -> &str {
        self
    }
}

impl Platform {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// The Prometheus text at `/metrics` (no ops token configured).
    pub async fn metrics(&self) -> String {
        let resp = self.req(Method::GET, "/metrics").call().await;
        assert_eq!(resp.status(), 200, "/metrics");
        resp.text().await.unwrap()
    }

    pub fn authed<B: Bearer + ?Sized>(
        &self,
        method: Method,
        path: &str,
        who: &B,
    ) -> RequestBuilder {
        self.req(method, path).bearer_auth(who.bearer())
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.req(Method::POST, path).json(&body).call().await
    }

    /// Registers `email` as the admin of a new tenant `tenant`.
    pub async fn register(&self, email: &str, tenant: &str) -> Session {
        self.register_named(email, "Test", tenant).await
    }

    /// A new tenant and its admin `admin@<name>.test`.
    pub async fn tenant(&self, name: &str) -> Session {
        let email = format!("admin@{}.test", name.to_lowercase().replace(' ', "-"));
        self.register_named(&email, "Admin", name).await
    }

    async fn register_named(&self, email: &str, name: &str, tenant: &str) -> Session {
        let body =
            json!({"email": email, "password": PASSWORD, "name": name, "tenant_name": tenant});
        let resp = self.post("/api/v1/auth/register", body).await;
        assert_eq!(resp.status(), 201, "register {email}");
        Session::from_body(&resp.json().await.expect("json"))
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        let body = json!({"email": email, "password": password});
        self.post("/api/v1/auth/login", body).await
    }

    /// Signs `email` in with [`PASSWORD`].
    pub async fn sign_in(&self, email: &str) -> Session {
        let resp = self.login(email, PASSWORD).await;
        assert_eq!(resp.status(), 200, "login {email}");
        Session::from_body(&resp.json().await.expect("json"))
    }

    /// A platform admin, created with the admin tooling in auth's store and signed in.
    pub async fn platform_admin(&self) -> Session {
        let email = format!("root-{}@platform.test", uuid::Uuid::now_v7());
        agora_auth::admin::create_user(
            &self.auth.db,
            &email,
            PASSWORD,
            "Root",
            Role::PlatformAdmin,
            "platform",
        )
        .await
        .expect("create platform admin");
        self.sign_in(&email).await
    }

    /// A TENANT_USER of `admin`'s tenant with `permissions`, invited and signed up.
    pub async fn member(&self, admin: &Session, email: &str, permissions: &[&str]) -> Session {
        let path = format!("/api/v1/tenants/{}/users", admin.tenant_id);
        let invite = json!({"email": email, "name": "Tech", "role": "TENANT_USER", "permissions": permissions});
        let invited = self
            .authed(Method::POST, &path, admin)
            .json(&invite)
            .value()
            .await;
        let accept = json!({"token": invited["invitation_token"], "password": PASSWORD});
        Session::from_body(
            &self
                .post("/api/v1/auth/accept-invite", accept)
                .await
                .json()
                .await
                .expect("json"),
        )
    }

    /// A team of `admin`'s tenant in zone Central; returns its id.
    pub async fn team(
        &self,
        admin: &Session,
        name: &str,
        members: &[&str],
        capacity: i32,
    ) -> String {
        let body = json!({"name": name, "zone": "Central", "member_ids": members, "daily_capacity": capacity});
        let team = self
            .authed(Method::POST, "/api/v1/teams", admin)
            .json(&body)
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

    /// Waits (up to 5 s) for the first event on `topic` matching `pred`.
    pub async fn event(&self, topic: &str, pred: impl Fn(&Event) -> bool) -> Event {
        let group = format!("test-{}", uuid::Uuid::now_v7());
        let mut sub = self.bus.subscribe(topic, &group).await.expect("subscribe");
        let found = async {
            loop {
                let d = sub.next().await.expect("next");
                if pred(&d.event) {
                    return d.event;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), found)
            .await
            .expect("event within 5 s")
    }

    /// Every event of `event_type` that the service keeping `store` has written so far, once
    /// its outbox has published all of them (waited for, up to 10 s): exact, not "what came
    /// within a quiet spell".
    pub async fn events_of(&self, store: &Db, topic: &str, event_type: &str) -> Vec<Event> {
        eventually(Duration::from_secs(10), "the outbox drains", || async {
            match Outbox::pending(store).await {
                Ok(0) => Ok(()),
                Ok(n) => Err(format!("{n} event(s) not yet published")),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        self.bus
            .retained(topic)
            .into_iter()
            .filter(|e| e.event_type == event_type)
            .collect()
    }
}

/// Polls `probe` every 50 ms until it returns `Some`, for at most `limit`; past it the test fails
/// with `what` and the last value seen. Tests wait for what they assert, never a fixed sleep.
pub async fn eventually<T: std::fmt::Debug, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let started = std::time::Instant::now();
    loop {
        match probe().await {
            Ok(done) => return done,
            Err(last) if started.elapsed() >= limit => panic!("{what} within {limit:?}: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Sends `req`, asserts 200 (naming `what` and the body otherwise) and returns the JSON body.
pub async fn ok_json(req: RequestBuilder, what: &str) -> Value {
    let resp = req.call().await;
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, 200, "{what}: {text}");
    serde_json::from_str(&text).expect("json")
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
