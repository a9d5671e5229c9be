//! The gateway's own endpoints: aggregated `/health`, merged `/openapi.json`, a docs page at
//! `/docs`, and `/metrics`.

use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use crate::Gateway;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/health/live", web::get().to(live))
        .route("/metrics", web::get().to(agora_shared::http::metrics))
        .route("/openapi.json", web::get().to(openapi))
        .route("/docs", web::get().to(docs))
        .route("/docs/app.js", web::get().to(docs_script));
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Every upstream's `/health/ready`, concurrently with a short timeout; 503 when a required
/// one is not ready.
async fn health(gw: web::Data<Gateway>, client: web::Data<awc::Client>) -> HttpResponse {
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
    let body = json!({"status": if healthy { "ok" } else { "degraded" }, "services": services});
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
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

async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"))
        .content_type("text/html; charset=utf-8")
        .body(include_str!("docs.html"))
}

async fn docs_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(include_str!("docs.js"))
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
