//! The gateway's own endpoints: aggregated `/health`, merged `/openapi.json`, the API console
//! (Swagger UI, vendored) at `/docs/`, and `/metrics`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde_json::{Map, Value, json};

use crate::Gateway;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/health/live", web::get().to(live))
        .route("/metrics", web::get().to(metrics))
        .route("/openapi.json", web::get().to(openapi))
        // A scope, so that only paths under /docs pay for the file pattern's regex (every
        // proxied request is tried against the gateway's own routes first).
        .service(
            web::scope("/docs")
                .route("", web::get().to(docs_root))
                .route("/{file:.*}", web::get().to(docs)),
        );
}

/// What the console's page may load and call: its own files and the gateway's API, nothing
/// from elsewhere (Swagger UI sets inline styles and uses data: images; it runs no inline script).
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Swagger UI's settings: the merged document, "try it out" on, the bearer token kept across
/// reloads of the page.
fn console() -> &'static Arc<utoipa_swagger_ui::Config<'static>> {
    static CONFIG: std::sync::OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> =
        std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        Arc::new(
            utoipa_swagger_ui::Config::from("/openapi.json")
                .try_it_out_enabled(true)
                .persist_authorization(true),
        )
    })
}

async fn docs_root() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header(("Location", "/docs/"))
        .finish()
}

/// The console's files, with a policy that allows only what it needs.
async fn docs(file: web::Path<String>) -> HttpResponse {
    let served = utoipa_swagger_ui::serve(&file, console().clone());
    match served {
        Ok(Some(found)) => {
            let mut response = HttpResponse::Ok();
            response
                .content_type(found.content_type)
                .insert_header(("Content-Security-Policy", DOCS_CSP))
                .insert_header(("Cache-Control", "no-cache"));
            if found.gzpipped {
                response.insert_header(("Content-Encoding", "gzip"));
            }
            response.body(found.bytes.into_owned())
        }
        Ok(None) => actix_web::ResponseError::error_response(&agora_shared::AppError::NotFound(
            format!("no console file {file}"),
        )),
        Err(err) => actix_web::ResponseError::error_response(&agora_shared::AppError::Internal(
            anyhow::anyhow!("api console: {err}"),
        )),
    }
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Whether the request carries the ops token (always, when none is configured).
fn ops_caller(gw: &Gateway, req: &HttpRequest) -> bool {
    let Some(token) = &gw.config.ops_token else {
        return true;
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    token.matches(presented.as_bytes())
}

/// The platform's metrics, for the holder of the ops token.
async fn metrics(gw: web::Data<Gateway>, req: HttpRequest) -> HttpResponse {
    if !ops_caller(&gw, &req) {
        return actix_web::ResponseError::error_response(&agora_shared::AppError::Unauthorized(
            "metrics need the gateway's ops token".into(),
        ));
    }
    agora_shared::http::metrics().await
}

/// How long one round of upstream checks answers `/health`: a flood of health requests costs
/// the upstreams one round a second, not one per request.
const HEALTH_FRESH: Duration = Duration::from_secs(1);

/// Every upstream's `/health/ready`, concurrently with a short timeout; 503 when a required
/// one is not ready. The per-service detail is for the holder of the ops token.
async fn health(
    gw: web::Data<Gateway>,
    client: web::Data<awc::Client>,
    req: HttpRequest,
) -> HttpResponse {
    let (healthy, services) = {
        let mut cached = gw.health_cache.lock().await;
        match cached.as_ref() {
            Some((at, healthy, services)) if at.elapsed() < HEALTH_FRESH => {
                (*healthy, services.clone())
            }
            _ => {
                let (healthy, services) = check_upstreams(&gw, &client).await;
                *cached = Some((Instant::now(), healthy, services.clone()));
                (healthy, services)
            }
        }
    };
    let status = if healthy { "ok" } else { "degraded" };
    let body = match ops_caller(&gw, &req) {
        true => json!({"status": status, "services": services}),
        false => json!({"status": status}),
    };
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn check_upstreams(gw: &Gateway, client: &awc::Client) -> (bool, Value) {
    let timeout = Duration::from_millis(gw.config.health_timeout_ms);
    let checks = gw.config.services.iter().map(|(name, svc)| {
        let client = client.clone();
        async move {
            let started = Instant::now();
            let url = format!("{}/health/ready", svc.url.trim_end_matches('/'));
            let status = match client.get(url).timeout(timeout).send().await {
                Ok(resp) if resp.status().is_success() => "ok",
                Ok(_) => "unavailable",
                Err(_) => "unreachable",
            };
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            (name.clone(), status, svc.required, ms)
        }
    });
    let results = futures::future::join_all(checks).await;
    let healthy = results
        .iter()
        .all(|(_, status, required, _)| *status == "ok" || !required);
    let services: Map<String, Value> = results
        .into_iter()
        .map(|(name, status, required, ms)| {
            (name, json!({"status": status, "required": required, "latency_ms": (ms * 10.0).round() / 10.0}))
        })
        .collect();
    (healthy, Value::Object(services))
}

/// The services' OpenAPI documents merged into one (cached for 30 s).
async fn openapi(gw: web::Data<Gateway>, client: web::Data<awc::Client>) -> HttpResponse {
    if let Some((at, doc)) = gw
        .openapi_cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        && at.elapsed() < Duration::from_secs(30)
    {
        return HttpResponse::Ok().json(doc);
    }
    let fetches = gw.config.services.iter().map(|(name, svc)| {
        let client = client.clone();
        async move {
            let url = format!("{}/openapi.json", svc.url.trim_end_matches('/'));
            let doc = match client.get(url).timeout(Duration::from_secs(5)).send().await {
                Ok(mut resp) if resp.status().is_success() => {
                    resp.json::<Value>().limit(16 * 1024 * 1024).await.ok()
                }
                _ => None,
            };
            (name.clone(), doc)
        }
    });
    let docs = futures::future::join_all(fetches).await;
    let merged = merge(&docs);
    *gw.openapi_cache.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((Instant::now(), merged.clone()));
    HttpResponse::Ok().json(merged)
}

/// Merges paths and components; the first service to define a schema name keeps it.
pub fn merge(docs: &[(String, Option<Value>)]) -> Value {
    let mut paths = Map::new();
    let mut components: Map<String, Value> = Map::new();
    let mut tags = Vec::new();
    let mut missing = Vec::new();
    for (name, doc) in docs {
        let Some(doc) = doc else {
            missing.push(name.clone());
            continue;
        };
        tags.push(json!({"name": name}));
        if let Some(p) = doc.get("paths").and_then(Value::as_object) {
            for (k, v) in p {
                paths.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        if let Some(c) = doc.get("components").and_then(Value::as_object) {
            for (kind, entries) in c {
                let slot = components.entry(kind.clone()).or_insert_with(|| json!({}));
                if let (Some(slot), Some(entries)) = (slot.as_object_mut(), entries.as_object()) {
                    for (k, v) in entries {
                        slot.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
    }
    let mut description = "Every Agora service behind the gateway.".to_owned();
    if !missing.is_empty() {
        description.push_str(&format!(
            " Unavailable while this was built: {}.",
            missing.join(", ")
        ));
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Agora API", "version": env!("CARGO_PKG_VERSION"), "description": description},
        "servers": [{"url": "/"}],
        "tags": tags,
        "paths": paths,
        "components": components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_paths_and_schemas() {
        let a = json!({"paths": {"/a": {"get": {}}}, "components": {"schemas": {"X": {"type": "string"}}}});
        let b = json!({"paths": {"/b": {"post": {}}}, "components": {"schemas": {"X": {"type": "integer"}, "Y": {}}}});
        let doc = merge(&[
            ("a".into(), Some(a)),
            ("b".into(), Some(b)),
            ("c".into(), None),
        ]);
        assert!(doc["paths"]["/a"]["get"].is_object() && doc["paths"]["/b"]["post"].is_object());
        assert_eq!(doc["components"]["schemas"]["X"]["type"], "string");
        assert!(doc["components"]["schemas"]["Y"].is_object());
        assert!(doc["info"]["description"].as_str().unwrap().contains("c"));
    }
}
