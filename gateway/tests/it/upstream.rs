//! The test upstream behind the gateway: echoes what reached it (method, version, path, query,
//! headers, body size), answers slowly, counts streamed uploads and echoes WebSocket messages.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures::StreamExt;
use serde_json::{Value, json};

/// What the test upstream saw.
#[derive(Default)]
pub struct Seen {
    /// Requests that reached it.
    pub hits: AtomicUsize,
    /// Upload bytes received so far.
    pub upload_bytes: AtomicUsize,
    /// Readiness checks that reached it.
    pub health_checks: AtomicUsize,
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
                    .route("/health/ready", web::get().to(ready))
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

async fn ready(seen: web::Data<Seen>) -> HttpResponse {
    seen.health_checks.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().json(json!({"status": "ok"}))
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
