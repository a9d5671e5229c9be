//! `spawn_app`: the real auth service on free ports with a fresh store and an in-process bus.

use std::{sync::Arc, time::Duration};

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use agora_auth::AuthState;
use agora_shared::{
    bus::{Event, EventBus, InProcessBus},
    testing::TestDb,
    tokens::KeyPair,
};

/// Runs each listed test on SQLite and on PostgreSQL (skipped, or failing under
/// AGORA_TEST_REQUIRE_INFRA=1, when no server is configured).
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(agora_shared::testing::TestDb::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = agora_shared::testing::TestDb::postgres() {
                        super::$name(db).await
                    }
                }
            )*
        }
    };
}

pub struct TestApp {
    pub base: String,
    pub grpc: String,
    pub client: Client,
    pub bus: InProcessBus,
    pub state: Arc<AuthState>,
    /// The configured signing key (when the app was spawned with one).
    pub key: Option<KeyPair>,
    pub db_url: String,
    shutdown: CancellationToken,
    _db: TestDb,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Options for [`spawn_with`].
#[derive(Default)]
pub struct Options {
    /// Sign with a configured key (otherwise keys are generated into the store).
    pub configured_key: bool,
    pub extra_toml: String,
}

pub async fn spawn(db: TestDb) -> TestApp {
    spawn_with(
        db,
        Options {
            configured_key: true,
            ..Default::default()
        },
    )
    .await
}

pub async fn spawn_with(db: TestDb, options: Options) -> TestApp {
    let key = options.configured_key.then(KeyPair::generate);
    let mut toml = format!(
        "[auth]\nhttp_addr = \"127.0.0.1:0\"\ngrpc_addr = \"127.0.0.1:0\"\ndatabase_url = \"{}\"\n\
         http_workers = 1\nlockout_threshold = 3\nlockout_base_secs = 60\n{}\n",
        db.url, options.extra_toml
    );
    if let Some(key) = &key {
        toml.push_str(&format!("signing_key = '''{}'''\n", key.private_pem()));
    }
    let (ctx, bus) = agora_shared::testing::service_context(&toml);
    let shutdown = CancellationToken::new();
    let started = agora_auth::start(&ctx, shutdown.clone())
        .await
        .expect("auth starts");
    let base = format!("http://{}", started.service.http_addr);
    let grpc = format!(
        "http://{}",
        started.service.grpc_addr.expect("auth serves grpc")
    );
    let state = started.state.clone();
    tokio::spawn(started.service.wait());
    TestApp {
        base,
        grpc,
        client: Client::new(),
        bus,
        state,
        key,
        shutdown,
        db_url: db.url.clone(),
        _db: db,
    }
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
    pub tenant_id: String,
    pub email: String,
}

pub const PASSWORD: &str = "Sup3r-secret!";

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn authed(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.req(method, path).bearer_auth(token)
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.req(Method::POST, path)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Registers `email` with a new tenant `tenant` and returns the session.
    pub async fn register(&self, email: &str, tenant: &str) -> Session {
        let resp = self
            .post("/api/v1/auth/register", json!({"email": email, "password": PASSWORD, "name": "Test", "tenant_name": tenant}))
            .await;
        assert_eq!(resp.status(), 201, "register {email}");
        session(resp.json().await.expect("json"))
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post(
            "/api/v1/auth/login",
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Creates a platform admin through the admin tooling and signs in.
    pub async fn platform_admin(&self) -> Session {
        agora_auth::admin::create_user(
            &self.state.db,
            "root@platform.test",
            PASSWORD,
            "Root",
            agora_shared::http::Role::PlatformAdmin,
            "platform",
        )
        .await
        .expect("create platform admin");
        let resp = self.login("root@platform.test", PASSWORD).await;
        assert_eq!(resp.status(), 200);
        session(resp.json().await.expect("json"))
    }

    /// Waits (up to 5 s) for the first event on the auth topic matching `pred`.
    pub async fn event(&self, pred: impl Fn(&Event) -> bool) -> Event {
        let group = format!("test-{}", uuid::Uuid::now_v7());
        let mut sub = self
            .bus
            .subscribe("agora.auth.events", &group)
            .await
            .expect("subscribe");
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let d = sub.next().await.expect("next");
                if pred(&d.event) {
                    return d.event;
                }
            }
        })
        .await
        .expect("event within 5 s")
    }

    /// Every event published so far of `event_type`.
    pub async fn events_of(&self, event_type: &str) -> Vec<Event> {
        let group = format!("test-{}", uuid::Uuid::now_v7());
        let mut sub = self
            .bus
            .subscribe("agora.auth.events", &group)
            .await
            .expect("subscribe");
        let mut out = Vec::new();
        while let Ok(Ok(d)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
            if d.event.event_type == event_type {
                out.push(d.event);
            }
        }
        out
    }
}

pub fn session(body: Value) -> Session {
    Session {
        access: body["access_token"].as_str().expect("access_token").into(),
        refresh: body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .into(),
        user_id: body["user"]["id"].as_str().expect("user.id").into(),
        tenant_id: body["user"]["tenant_id"]
            .as_str()
            .expect("user.tenant_id")
            .into(),
        email: body["user"]["email"].as_str().expect("user.email").into(),
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

/// A minimal SMTP server (RFC 5321 commands a client sends for one message) on a free port;
/// each received message body arrives on the returned channel.
pub async fn fake_smtp() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 fake ESMTP\r\n").await.ok()?;
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            tx.send(data.take().unwrap_or_default()).ok()?;
                            write.write_all(b"250 queued\r\n").await.ok()?;
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 fake\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 end with .\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.ok()?;
                            return Some(());
                        }
                        _ => b"250 OK\r\n",
                    };
                    write.write_all(reply).await.ok()?;
                }
                Some(())
            });
        }
    });
    (port, rx)
}

pub use agora_shared::testing::{Call, problem};
