//! The HTTP API under `/api/v1`, plus JWKS, OpenAPI, health and metrics.

use std::sync::Arc;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, middleware::from_fn, web};

use agora_shared::{
    AppError,
    http::{Authenticator, ServiceName, configure_extractors, health, not_found, observe::observe},
};

use crate::AuthState;

pub mod api_keys;
pub mod auth;
pub mod teams;
pub mod tenants;
pub mod users;

/// The actix server for the auth API on `listener`.
pub fn server(
    state: Arc<AuthState>,
    authenticator: Authenticator,
    listener: std::net::TcpListener,
    workers: usize,
) -> anyhow::Result<actix_web::dev::Server> {
    let state = web::Data::from(state);
    let authenticator = web::Data::new(authenticator);
    let db = web::Data::new(state.db.clone());
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(ServiceName(crate::NAME))
            .app_data(state.clone())
            .app_data(authenticator.clone())
            .app_data(db.clone())
            .wrap(from_fn(observe))
            .configure(configure_extractors)
            .configure(health::configure)
            .configure(routes)
            .default_service(web::to(not_found))
    })
    .workers(workers)
    .shutdown_timeout(10)
    .listen(listener)?
    .run())
}

/// Every route of the service.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(agora_shared::http::metrics))
        .route("/openapi.json", web::get().to(openapi))
        .route("/.well-known/jwks.json", web::get().to(jwks))
        .service(
            web::scope("/api/v1")
                .configure(auth::routes)
                .configure(tenants::routes)
                .configure(users::routes)
                .configure(teams::routes)
                .configure(api_keys::routes),
        );
}

/// The public keys that verify access tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JSON Web Key Set (RFC 7517)")))]
pub async fn jwks(state: web::Data<AuthState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(state.keyring.jwks())
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(crate::openapi::document())
}

/// The client address as seen on the socket (forwarded headers are the gateway's business).
pub fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    req.peer_addr().map(|a| a.ip())
}

/// 201 with a Location header.
pub fn created(location: String, body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Created()
        .insert_header(("Location", location))
        .json(body)
}

/// Hashes a password off the async runtime.
pub async fn hash_password(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || crate::domain::hash_password(&password))
        .await
        .map_err(|e| AppError::Internal(e.into()))?
}
