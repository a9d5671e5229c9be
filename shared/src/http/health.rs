//! `/health/live` (the process answers) and `/health/ready` (the store answers too).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db::Db;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready));
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn ready(db: web::Data<Db>) -> HttpResponse {
    match db.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ok", "checks": {"store": "ok"}})),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "checks": {"store": "unavailable"}}))
        }
    }
}
