//! The HTTP API under `/api/v1`, plus JWKS; the kernel adds health, metrics and OpenAPI.

use actix_web::{HttpRequest, HttpResponse, web};

use agora_shared::AppError;

use crate::AuthState;

pub mod api_keys;
pub mod auth;
pub mod invitations;
pub mod passwords;
pub mod team_members;
pub mod teams;
pub mod tenants;
pub mod users;

/// Every route of the service.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/.well-known/jwks.json", web::get().to(jwks))
        .service(
            web::scope("/api/v1")
                .configure(auth::routes)
                .configure(passwords::routes)
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
