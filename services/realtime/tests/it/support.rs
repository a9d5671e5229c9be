//! The platform with auth, tickets, realtime and the gateway, and a native-protocol client.

use std::{collections::VecDeque, ops::Deref, pin::Pin, sync::Arc, time::Duration};

use awc::{
    error::WsProtocolError,
    ws::{Frame, Message},
};
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde_json::{Value, json};

use agora_realtime::RealtimeState;
use agora_shared::{
    grpc::ServiceCredential,
    testing::Store,
    tokens::{Signer, Subject, TokenSettings},
};

pub use agora_testkit::Session;

pub struct Platform {
    kit: agora_testkit::Platform,
    pub realtime: Arc<RealtimeState>,
    pub realtime_grpc: String,
}

impl Deref for Platform {
    type Target = agora_testkit::Platform;
    fn deref(&self) -> &Self::Target {
        &self.kit
    }
}

/// Starts auth (with a configured key, so tests can sign tokens), tickets, realtime with
/// `settings` and the gateway.
pub async fn platform(store: Store, settings: &str) -> Platform {
    let mut kit = agora_testkit::Platform::builder(store)
        .configured_key()
        .service("tickets", "")
        .service("realtime", settings)
        .start()
        .await;
    let tickets = agora_tickets::start(&kit.context(), kit.shutdown.clone())
        .await
        .expect("tickets starts");
    kit.serve(tickets.service);
    let issuer = agora_auth::admin::service_token_issuer(kit.auth.keyring.clone(), "realtime");
    let credential = ServiceCredential::Issued(Arc::new(issuer));
    let realtime = agora_realtime::start(&kit.context(), kit.shutdown.clone(), Some(credential))
        .await
        .expect("realtime starts");
    let realtime_grpc = format!("http://{}", realtime.service.grpc_addr.expect("grpc"));
    let state = realtime.state.clone();
    kit.serve(realtime.service);
    kit.gateway().await;
    Platform {
        kit,
        realtime: state,
        realtime_grpc,
    }
}

/// An access token for `s` that expires in `secs` seconds, signed with auth's key.
pub fn short_token(p: &Platform, s: &Session, secs: u64) -> String {
    let key = p.key.as_ref().expect("configured key");
    let signer = Signer::new(
        TokenSettings {
            issuer: "agora".into(),
            audience: "agora".into(),
            access_ttl: Duration::from_secs(secs),
        },
        key,
    );
    signer
        .issue(&Subject {
            user_id: &s.user_id,
            tenant_id: &s.tenant_id,
            role: "TENANT_USER",
            permissions: &[],
            email: &s.email,
            session_id: None,
            plan: None,
        })
        .expect("token")
        .0
}

/// A new API key of `who`'s.
pub async fn api_key(p: &Platform, who: &Session) -> String {
    let created: serde_json::Value = p
        .authed(reqwest::Method::POST, "/api/v1/api-keys", who)
        .json(&json!({"name": "bot", "role": "TENANT_USER"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["key"].as_str().expect("an API key").to_owned()
}

type Tx = Pin<Box<dyn Sink<Message, Error = WsProtocolError>>>;
type Rx = Pin<Box<dyn Stream<Item = Result<Frame, WsProtocolError>>>>;

/// A native-protocol client.
pub struct Ws {
    tx: Tx,
    rx: Rx,
    pushes: VecDeque<Value>,
    next_id: u64,
}

/// How long a client waits for a frame it expects.
const PATIENCE: Duration = Duration::from_secs(10);

impl Ws {
    /// A WebSocket to `base`'s `/api/v1/realtime/ws` (the gateway's, or a replica's own).
    pub async fn open(base: &str) -> Ws {
        let url = format!("{base}/api/v1/realtime/ws").replacen("http://", "ws://", 1);
        let (_, framed) = awc::Client::new()
            .ws(url)
            .max_frame_size(1 << 20)
            .connect()
            .await
            .expect("websocket");
        let (tx, rx) = framed.split();
        Ws {
            tx: Box::pin(tx),
            rx: Box::pin(rx),
            pushes: VecDeque::new(),
            next_id: 0,
        }
    }

    /// Opens and connects with `token`, expecting `connected`.
    pub async fn connect(base: &str, token: &str) -> Ws {
        let mut ws = Ws::open(base).await;
        let reply = ws.call(json!({"connect": {"token": token}})).await;
        assert!(reply["connected"]["client"].is_string(), "{reply}");
        ws
    }

    pub async fn send_text(&mut self, text: String) {
        self.tx
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    async fn frame(&mut self) -> Frame {
        match tokio::time::timeout(PATIENCE, self.rx.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(other) => panic!("connection ended: {other:?}"),
            Err(_) => panic!("no frame within {PATIENCE:?}"),
        }
    }

    /// The next JSON frame (pings answered on the way).
    pub async fn next_json(&mut self) -> Value {
        loop {
            match self.frame().await {
                Frame::Text(t) => return serde_json::from_slice(&t).expect("JSON frame"),
                Frame::Ping(b) => {
                    let _ = self.tx.send(Message::Pong(b)).await;
                }
                Frame::Close(reason) => panic!("closed: {reason:?}"),
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Sends `command` with a fresh id and returns the answer with that id; pushes on the way
    /// are kept for [`Ws::push`].
    pub async fn call(&mut self, mut command: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        command["id"] = json!(id);
        self.send_text(command.to_string()).await;
        loop {
            let v = self.next_json().await;
            if v["id"] == json!(id) {
                return v;
            }
            self.pushes.push_back(v);
        }
    }

    /// `call`, expecting an error; its code.
    pub async fn refused(&mut self, command: Value) -> String {
        let reply = self.call(command.clone()).await;
        reply["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{command} was not refused: {reply}"))
            .to_owned()
    }

    /// The next push.
    pub async fn push(&mut self) -> Value {
        match self.pushes.pop_front() {
            Some(v) => v,
            None => self.next_json().await,
        }
    }

    /// The next publication pushed, passing over joins, leaves and typing notices.
    pub async fn next_pub(&mut self) -> Value {
        loop {
            let push = self.push().await;
            if push.get("pub").is_some() {
                return push["pub"].clone();
            }
        }
    }

    /// Asserts that nothing is pushed within `ms` (a ping answered meanwhile is fine).
    pub async fn quiet(&mut self, ms: u64) {
        assert!(self.pushes.is_empty(), "pushed: {:?}", self.pushes);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Frame::Ping(b)))) => {
                    let _ = self.tx.send(Message::Pong(b)).await;
                }
                Ok(other) => panic!("expected nothing, got {other:?}"),
            }
        }
    }

    /// Waits for the server to close the connection: its code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            match self.frame().await {
                Frame::Close(Some(reason)) => {
                    return (
                        u16::from(reason.code),
                        reason.description.unwrap_or_default(),
                    );
                }
                Frame::Close(None) => return (1005, String::new()),
                Frame::Ping(b) => {
                    let _ = self.tx.send(Message::Pong(b)).await;
                }
                _ => {}
            }
        }
    }

    /// Subscribes, expecting success; the `subscribed` body.
    pub async fn subscribe(&mut self, channel: &str) -> Value {
        let reply = self.call(json!({"subscribe": {"channel": channel}})).await;
        assert!(
            reply["subscribed"].is_object(),
            "subscribe {channel}: {reply}"
        );
        reply["subscribed"].clone()
    }
}

/// Runs each listed `async fn name(store: Store)` on fresh SQLite stores and on fresh
/// PostgreSQL databases, on actix's runtime (its WebSocket client needs one).
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name(agora_shared::testing::TestDb::sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    if std::env::var("AGORA_TEST_DATABASE_URL").is_err() {
                        agora_shared::testing::skip_or_fail("postgres", "AGORA_TEST_DATABASE_URL is not set");
                        return;
                    }
                    super::$name(|| agora_shared::testing::TestDb::postgres().expect("postgres")).await
                }
            )*
        }
    };
}
