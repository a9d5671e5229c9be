//! `/auth/*`: register, login, refresh, logout, me, invitations (passwords: `passwords.rs`).

use actix_web::{HttpRequest, HttpResponse, web};

use agora_shared::{
    AppError, AppResult,
    db::{Json, now},
    http::{Caller, ValidJson},
};

use super::{client_ip, created, hash_password, limit_credentials};
use crate::{
    AuthState, domain, events,
    model::*,
    sessions,
    store::{self, tenants::TenantRow, users::UserRow},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/register", web::post().to(register))
        .route("/auth/login", web::post().to(login))
        .route("/auth/refresh", web::post().to(refresh))
        .route("/auth/logout", web::post().to(logout))
        .route("/auth/me", web::get().to(me))
        .route("/auth/me", web::put().to(update_me))
        .route("/auth/accept-invite", web::post().to(accept_invite));
}

/// Creates a tenant (plan STARTER) and its first user, a TENANT_ADMIN, and signs them in.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = TokenResponse), (status = 409, description = "email or tenant name taken"),
        (status = 422, description = "invalid fields, including each broken password rule")))]
pub async fn register(
    state: web::Data<AuthState>,
    req: HttpRequest,
    body: ValidJson<RegisterRequest>,
) -> AppResult<HttpResponse> {
    limit_credentials(&state, &req)?;
    let body = body.0;
    let hash = hash_password(body.password.clone()).await?;
    let signer = state.keyring.signer();
    let ttl = std::time::Duration::from_secs(state.config.refresh_ttl_secs);
    let resp = state
        .db
        .write(move |conn| {
            let tenant_name = body.tenant_name.trim().to_owned();
            let email = domain::normalize_email(&body.email);
            if domain::reserved_tenant_name(&tenant_name) {
                return Err(domain::tenant_name_reserved());
            }
            if store::tenants::name_taken(conn, &tenant_name)? {
                return Err(
                    AppError::Conflict("a tenant with this name already exists".into())
                        .with_code("auth.tenant_name_taken"),
                );
            }
            if store::users::email_taken(conn, &email)? {
                return Err(
                    AppError::Conflict("a user with this email already exists".into())
                        .with_code("auth.email_taken"),
                );
            }
            let tenant = TenantRow {
                id: uuid::Uuid::now_v7().to_string(),
                name_key: store::tenants::name_key(&tenant_name),
                name: tenant_name,
                plan: domain::DEFAULT_PLAN.into(),
                status: domain::TENANT_ACTIVE.into(),
                created_at: now(),
                updated_at: now(),
            };
            store::tenants::insert(conn, &tenant)?;
            let user = UserRow {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: tenant.id.clone(),
                email,
                name: body.name.trim().to_owned(),
                password_hash: Some(hash),
                role: agora_shared::http::Role::TenantAdmin,
                status: domain::USER_ACTIVE.into(),
                permissions: Json::default(),
                created_at: now(),
                updated_at: now(),
            };
            store::users::insert(conn, &user)?;
            events::tenant_changed(conn, "tenant.created", &tenant)?;
            events::user_changed(conn, "user.registered", &user, None)?;
            let issued = sessions::issue(conn, &signer, ttl, &user, None)?;
            Ok(sessions::response(&user, Some(&tenant), issued))
        })
        .await?;
    let location = format!("/api/v1/tenants/{}", resp.user.tenant_id);
    Ok(created(location, resp))
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "wrong email or password"),
        (status = 403, description = "the user's tenant is suspended"),
        (status = 429, description = "too many failures for this account; see Retry-After")))]
pub async fn login(
    state: web::Data<AuthState>,
    req: HttpRequest,
    body: ValidJson<LoginRequest>,
) -> AppResult<HttpResponse> {
    limit_credentials(&state, &req)?;
    let state = state.into_inner();
    let resp = sessions::login(&state, &body.0.email, &body.0.password, client_ip(&req)).await?;
    Ok(HttpResponse::Ok().json(resp))
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "invalid, expired or reused token")))]
pub async fn refresh(
    state: web::Data<AuthState>,
    req: HttpRequest,
    body: ValidJson<RefreshRequest>,
) -> AppResult<HttpResponse> {
    let state = state.into_inner();
    let resp = sessions::refresh(&state, &body.0.refresh_token, client_ip(&req)).await?;
    Ok(HttpResponse::Ok().json(resp))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body(content = LogoutRequest, description = "optional"),
    responses((status = 204, description = "session ended"), (status = 401)), security(("bearer" = [])))]
pub async fn logout(
    state: web::Data<AuthState>,
    req: HttpRequest,
    caller: Caller,
    body: web::Bytes,
) -> AppResult<HttpResponse> {
    let body: LogoutRequest = if body.is_empty() {
        LogoutRequest::default()
    } else {
        let parsed: LogoutRequest = agora_shared::http::json::parse(&body)?;
        validator::Validate::validate(&parsed)
            .map_err(|e| AppError::Validation(agora_shared::http::json::field_errors(&e)))?;
        parsed
    };
    let state = state.into_inner();
    sessions::logout(
        &state,
        &caller,
        body.refresh_token.as_deref(),
        client_ip(&req),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(super) async fn load_me(state: &AuthState, caller: &Caller) -> AppResult<UserRow> {
    let id = caller.user_id.clone();
    state
        .db
        .read(move |conn| store::users::get(conn, &id)?.ok_or_else(|| AppError::not_found("user")))
        .await
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = User), (status = 401)), security(("bearer" = [])))]
pub async fn me(state: web::Data<AuthState>, caller: Caller) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(User::from(&load_me(&state, &caller).await?)))
}

#[utoipa::path(put, path = "/api/v1/auth/me", tag = "auth", request_body = UpdateMeRequest,
    responses((status = 200, body = User), (status = 401), (status = 422)), security(("bearer" = [])))]
pub async fn update_me(
    state: web::Data<AuthState>,
    caller: Caller,
    body: ValidJson<UpdateMeRequest>,
) -> AppResult<HttpResponse> {
    let id = caller.user_id.clone();
    let name = body.0.name.trim().to_owned();
    let user = state
        .db
        .write(move |conn| {
            let mut user =
                store::users::get(conn, &id)?.ok_or_else(|| AppError::not_found("user"))?;
            user.name = name;
            user.updated_at = now();
            store::users::update(conn, &user)?;
            events::user_changed(conn, "user.updated", &user, Some(&id))?;
            Ok(user)
        })
        .await?;
    Ok(HttpResponse::Ok().json(User::from(&user)))
}

/// Accepts an invitation: sets the password, activates the user and signs them in.
#[utoipa::path(post, path = "/api/v1/auth/accept-invite", tag = "auth", request_body = AcceptInviteRequest,
    responses((status = 200, body = TokenResponse), (status = 403, description = "the tenant is suspended"),
        (status = 422, description = "invalid or expired token, or weak password")))]
pub async fn accept_invite(
    state: web::Data<AuthState>,
    req: HttpRequest,
    body: ValidJson<AcceptInviteRequest>,
) -> AppResult<HttpResponse> {
    limit_credentials(&state, &req)?;
    let body = body.0;
    let token_hash = domain::secret_hash(&body.token);
    check_one_time(&state, &token_hash, domain::PURPOSE_INVITE).await?;
    let hash = hash_password(body.password).await?;
    let signer = state.keyring.signer();
    let ttl = std::time::Duration::from_secs(state.config.refresh_ttl_secs);
    let resp = state
        .db
        .write(move |conn| {
            let invalid = || AppError::invalid("token", "is invalid, used or expired");
            let user_id =
                store::sessions::claim_one_time(conn, &token_hash, domain::PURPOSE_INVITE)?
                    .ok_or_else(invalid)?;
            let mut user = store::users::get(conn, &user_id)?
                .filter(|u| u.status == domain::USER_INVITED)
                .ok_or_else(invalid)?;
            // Refused (and the invitation kept, the transaction rolled back) while suspended.
            if !store::tenants::is_active(conn, &user.tenant_id)? {
                return Err(sessions::tenant_suspended());
            }
            user.password_hash = Some(hash);
            user.status = domain::USER_ACTIVE.into();
            if let Some(name) = body.name {
                user.name = name.trim().to_owned();
            }
            user.updated_at = now();
            store::users::update(conn, &user)?;
            events::user_changed(conn, "user.invitation_accepted", &user, Some(&user.id))?;
            let tenant = store::tenants::get(conn, &user.tenant_id)?;
            let issued = sessions::issue(conn, &signer, ttl, &user, None)?;
            Ok(sessions::response(&user, tenant.as_ref(), issued))
        })
        .await?;
    Ok(HttpResponse::Ok().json(resp))
}

/// 422 for a one-time token that is unknown, used or expired, checked with a read before the
/// request costs a password hash (the claim that follows checks again).
pub(super) async fn check_one_time(
    state: &AuthState,
    token_hash: &str,
    purpose: &'static str,
) -> AppResult<()> {
    let hash = token_hash.to_owned();
    let live = state
        .db
        .read(move |conn| store::sessions::one_time_live(conn, &hash, purpose))
        .await?;
    match live {
        true => Ok(()),
        false => Err(AppError::invalid("token", "is invalid, used or expired")),
    }
}
