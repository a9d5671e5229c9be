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

/// The client's address: the socket peer, or the nearest untrusted hop of X-Forwarded-For
/// when the peer is a trusted proxy (`auth.trusted_proxies`: the gateways).
pub fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    Some(match req.app_data::<web::Data<AuthState>>() {
        Some(state) => state.client_ip.resolve(peer, forwarded),
        None => peer,
    })
}

/// Auth's own bound on credential requests per client IP (`auth.credential_requests_per_minute`),
/// whatever the gateway in front lets through: 429 with Retry-After past it.
pub fn limit_credentials(state: &AuthState, req: &HttpRequest) -> agora_shared::AppResult<()> {
    let (Some(limiter), Some(ip)) = (&state.credential_limiter, client_ip(req)) else {
        return Ok(());
    };
    limiter.check_key(&ip).map_err(|not_until| {
        use governor::clock::{Clock, DefaultClock};
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        AppError::TooManyRequests {
            detail: "too many credential requests from this address; retry later".into(),
            retry_after_secs: wait.as_secs().max(1),
        }
    })
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
