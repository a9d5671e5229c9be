//! Starts auth, a test upstream and the gateway, all on free ports, sharing one process
//! context (so the gateway sees auth's denylist, as in embedded mode).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures::StreamExt;
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use agora_gateway::Discovered;
use agora_shared::{testing::TestDb, tokens::KeyPair};

pub const PASSWORD: &str = "Sup3r-secret!";

/// What the test upstream saw.
#[derive(Default)]
pub struct Seen {
    /// Requests that reached it.
    pub hits: AtomicUsize,
    /// Upload bytes received so far.
    pub upload_bytes: AtomicUsize,
}

pub struct Stack {
    pub base: String,
    pub client: Client,
    pub seen: Arc<Seen>,
    pub key: KeyPair,
    shutdown: CancellationToken,
    _db: TestDb,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts everything; `gateway_toml` is added to the `[gateway]` section (plain keys only),
/// `tables` after it (e.g. `[gateway.rate_limits.routes]`).
pub async fn stack(gateway_toml: &str, tables: &str) -> Stack {
    let seen = Arc::new(Seen::default());
    let upstream_port = start_upstream(seen.clone());
    let db = TestDb::sqlite();
    let key = KeyPair::generate();
    let toml = format!(
        r#"
[auth]
http_addr = "127.0.0.1:0"
grpc_addr = "127.0.0.1:0"
database_url = "{db}"
http_workers = 1
signing_key = '''{pem}'''

[auth_peer]
api_key_cache_secs = 1

[gateway]
http_addr = "127.0.0.1:0"
http_workers = 2
{gateway_toml}

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

[gateway.services.dead_h2]
url = "http://127.0.0.1:{dead}"
prefixes = ["/api/v1/dead-h2"]
http2 = true
required = false

[gateway.services.dead]
url = "http://127.0.0.1:{dead}"
prefixes = ["/api/v1/dead"]
required = false

{tables}
"#,
        db = db.url,
        pem = key.private_pem(),
        dead = dead_port(),
    );
    let (ctx, _bus) = agora_shared::testing::service_context(&toml);
    let shutdown = CancellationToken::new();
    let auth = agora_auth::start(&ctx, shutdown.clone())
        .await
        .expect("auth starts");
    let discovered = [Discovered {
        name: "auth".into(),
        http: auth.service.http_addr,
        grpc: auth.service.grpc_addr.expect("auth serves grpc"),
    }];
    tokio::spawn(auth.service.wait());
    let gateway = agora_gateway::start(&ctx.with_discovered(&discovered), shutdown.clone())
        .await
        .expect("gateway starts");
    let base = format!("http://{}", gateway.http_addr);
    tokio::spawn(gateway.wait());
    Stack {
        base,
        client: Client::new(),
        seen,
        key,
        shutdown,
        _db: db,
    }
}

/// The test upstream, on its own thread and actix system.
pub fn start_upstream(seen: Arc<Seen>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let data = web::Data::from(seen);
            HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .route("/health/ready", web::get().to(|| async { HttpResponse::Ok().json(json!({"status": "ok"})) }))
                    .route("/openapi.json", web::get().to(|| async {
                        HttpResponse::Ok().json(json!({
                            "openapi": "3.1.0",
                            "paths": {"/api/v1/echo/headers": {"get": {"tags": ["echo"], "responses": {"200": {"description": "echo"}}}}},
                            "components": {"schemas": {"Echo": {"type": "object"}}}
                        }))
                    }))
                    .route("/api/v1/echo/slow", web::get().to(slow))
                    .route("/api/v1/echo/upload", web::post().to(upload))
                    .route("/api/v1/echo/ws", web::get().to(ws_echo))
                    .default_service(web::to(echo))
            })
            .workers(1)
            .listen_auto_h2c(listener)
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });
    port
}

/// Answers once the whole body has arrived (counted, not kept, and not limited: the limits
/// under test are the gateway's).
async fn echo(req: HttpRequest, seen: web::Data<Seen>, mut payload: web::Payload) -> HttpResponse {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    let mut body_bytes = 0usize;
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return HttpResponse::BadRequest().finish();
        };
        body_bytes += chunk.len();
    }
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or_default())))
        .collect();
    HttpResponse::Ok()
        .insert_header(("x-upstream", "echo"))
        .insert_header(("connection", "keep-alive, x-upstream-hop"))
        .insert_header(("x-upstream-hop", "secret"))
        .json(json!({
            "method": req.method().as_str(),
            "version": format!("{:?}", req.version()),
            "path": req.path(),
            "query": req.query_string(),
            "headers": headers,
            "body_bytes": body_bytes,
        }))
}

async fn slow(seen: web::Data<Seen>) -> HttpResponse {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    HttpResponse::Ok().finish()
}

/// Counts the streamed body as it arrives, without keeping it.
async fn upload(seen: web::Data<Seen>, mut payload: web::Payload) -> HttpResponse {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    let mut total = 0usize;
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return HttpResponse::BadRequest().finish();
        };
        total += chunk.len();
        seen.upload_bytes.store(total, Ordering::SeqCst);
    }
    HttpResponse::Ok().json(json!({"bytes": total}))
}

async fn ws_echo(req: HttpRequest, body: web::Payload) -> actix_web::Result<HttpResponse> {
    let (response, mut session, mut stream) = actix_ws::handle(&req, body)?;
    actix_web::rt::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let sent = match msg {
                actix_ws::Message::Text(t) => session.text(format!("echo: {t}")).await,
                actix_ws::Message::Binary(b) => session.binary(b).await,
                actix_ws::Message::Close(reason) => {
                    let _ = session.close(reason).await;
                    return;
                }
                _ => Ok(()),
            };
            if sent.is_err() {
                return;
            }
        }
    });
    Ok(response)
}

#[derive(Debug, Clone)]
pub struct User {
    pub access: String,
    pub user_id: String,
    pub tenant_id: String,
}

impl Stack {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn get_as(&self, path: &str, token: &str) -> RequestBuilder {
        self.req(Method::GET, path).bearer_auth(token)
    }

    pub fn hits(&self) -> usize {
        self.seen.hits.load(Ordering::SeqCst)
    }

    /// Registers through the gateway.
    pub async fn register(&self, email: &str, tenant: &str) -> User {
        let resp = self
            .req(Method::POST, "/api/v1/auth/register")
            .json(
                &json!({"email": email, "password": PASSWORD, "name": "T", "tenant_name": tenant}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "register through the gateway");
        let body: Value = resp.json().await.unwrap();
        User {
            access: body["access_token"].as_str().unwrap().into(),
            user_id: body["user"]["id"].as_str().unwrap().into(),
            tenant_id: body["user"]["tenant_id"].as_str().unwrap().into(),
        }
    }
}

pub use agora_shared::testing::{Call, problem};
