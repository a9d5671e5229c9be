//! `/auth/change-password`, `/auth/forgot` and `/auth/reset`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use agora_proto::events::v1::PasswordResetRequested;
use agora_shared::{
    AppError, AppResult,
    db::now,
    http::{Caller, Credential, ValidJson},
};

use super::{auth::load_me, client_ip, hash_password, limit_credentials};
use crate::{
    AuthState, cutoffs, domain, events,
    model::*,
    store::{self, audit::Audit, sessions::OneTimeRow, users::UserRow},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/change-password", web::post().to(change_password))
        .route("/auth/forgot", web::post().to(forgot))
        .route("/auth/reset", web::post().to(reset));
}

/// Changes the password and ends every other session of the user.
#[utoipa::path(post, path = "/api/v1/auth/change-password", tag = "auth", request_body = ChangePasswordRequest,
    responses((status = 204), (status = 401), (status = 422, description = "wrong current password or weak new one")),
    security(("bearer" = [])))]
pub async fn change_password(
    state: web::Data<AuthState>,
    req: HttpRequest,
    caller: Caller,
    body: ValidJson<ChangePasswordRequest>,
) -> AppResult<HttpResponse> {
    let Credential::Jwt { session_id, .. } = caller.credential.clone() else {
        return Err(AppError::Forbidden(
            "changing a password needs a user's access token".into(),
        ));
    };
    let body = body.0;
    let user = load_me(&state, &caller).await?;
    let (current, stored) = (body.current_password.clone(), user.password_hash.clone());
    let ok =
        tokio::task::spawn_blocking(move || domain::verify_password(&current, stored.as_deref()))
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
    if !ok {
        return Err(AppError::invalid(
            "current_password",
            "is not the current password",
        ));
    }
    let hash = hash_password(body.new_password).await?;
    let ip = client_ip(&req).map(|i| i.to_string());
    let ttl = state.config.access_ttl();
    let cuts = state
        .db
        .write(move |conn| {
            let mut user = user;
            user.password_hash = Some(hash);
            user.updated_at = now();
            store::users::update(conn, &user)?;
            let ended =
                store::sessions::revoke_user_sessions(conn, &user.id, session_id.as_deref())?;
            store::audit::record(
                conn,
                Audit {
                    action: "password.changed",
                    tenant_id: Some(&user.tenant_id),
                    user_id: Some(&user.id),
                    subject: &user.id,
                    client_ip: ip.as_deref(),
                    detail: json!({"other_sessions_ended": ended.len()}),
                },
            )?;
            // The other sessions' live access tokens stop too; this one's stay.
            ended
                .into_iter()
                .map(|sid| cutoffs::record(conn, ttl, format!("session:{sid}")))
                .collect::<AppResult<Vec<_>>>()
        })
        .await?;
    cutoffs::apply_all(cuts, &state).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Starts a password reset. The answer is the same whether or not the email exists; the link
/// is emailed (when SMTP is configured), and the event says only that one was issued.
#[utoipa::path(post, path = "/api/v1/auth/forgot", tag = "auth", request_body = ForgotRequest,
    responses((status = 202, body = Accepted)))]
pub async fn forgot(
    state: web::Data<AuthState>,
    req: HttpRequest,
    body: ValidJson<ForgotRequest>,
) -> AppResult<HttpResponse> {
    limit_credentials(&state, &req)?;
    let email = domain::normalize_email(&body.0.email);
    let state = state.into_inner();
    // The work happens after the answer so its duration reveals nothing, a bounded number at
    // a time: past it a flood is dropped (and logged) rather than queued without end.
    match state.background.clone().try_acquire_owned() {
        Ok(permit) => {
            tokio::spawn(async move {
                if let Err(err) = start_reset(&state, email).await {
                    tracing::warn!(error = %err, "password reset could not be started");
                }
                drop(permit);
            });
        }
        Err(_) => tracing::warn!("password reset dropped: too many being started at once"),
    }
    Ok(HttpResponse::Accepted().json(Accepted {
        message: "if an account exists for this email, a reset link is on its way".into(),
    }))
}

async fn start_reset(state: &AuthState, email: String) -> AppResult<()> {
    let token = domain::random_secret("rst_");
    let hash = domain::secret_hash(&token);
    let sent_to = state
        .db
        .write(move |conn| {
            let Some(user) = store::users::find_by_email(conn, &email)?.filter(UserRow::is_active)
            else {
                return Ok(None);
            };
            store::sessions::void_one_time(conn, &user.id, domain::PURPOSE_RESET)?;
            let expires = now() + chrono::Duration::seconds(domain::RESET_TTL.as_secs() as i64);
            store::sessions::insert_one_time(
                conn,
                &OneTimeRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    user_id: user.id.clone(),
                    purpose: domain::PURPOSE_RESET.into(),
                    token_hash: hash,
                    expires_at: expires,
                    used_at: None,
                    created_at: now(),
                },
            )?;
            let message = PasswordResetRequested {
                user_id: user.id.clone(),
                tenant_id: user.tenant_id.clone(),
                email: user.email.clone(),
                expires_at_unix: expires.and_utc().timestamp(),
            };
            events::emit(
                conn,
                "password_reset.requested",
                &user.id,
                Some(&user.tenant_id),
                &message,
            )?;
            Ok(Some(user.email))
        })
        .await?;
    if let (Some(to), Some(mailer)) = (sent_to, &state.mailer) {
        let link = format!("{}?token={token}", state.config.reset_url);
        mailer.send_reset(&to, &link).await;
    }
    Ok(())
}

/// Sets a new password with a reset token; every session of the user ends.
#[utoipa::path(post, path = "/api/v1/auth/reset", tag = "auth", request_body = ResetRequest,
    responses((status = 204), (status = 422, description = "invalid or expired token, or weak password")))]
pub async fn reset(
    state: web::Data<AuthState>,
    req: HttpRequest,
    body: ValidJson<ResetRequest>,
) -> AppResult<HttpResponse> {
    limit_credentials(&state, &req)?;
    let body = body.0;
    let token_hash = domain::secret_hash(&body.token);
    super::auth::check_one_time(&state, &token_hash, domain::PURPOSE_RESET).await?;
    let hash = hash_password(body.new_password).await?;
    let ip = client_ip(&req).map(|i| i.to_string());
    let ttl = state.config.access_ttl();
    state
        .db
        .write(move |conn| {
            let user_id =
                store::sessions::claim_one_time(conn, &token_hash, domain::PURPOSE_RESET)?
                    .ok_or_else(|| AppError::invalid("token", "is invalid, used or expired"))?;
            let mut user = store::users::get(conn, &user_id)?
                .ok_or_else(|| AppError::invalid("token", "is invalid, used or expired"))?;
            user.password_hash = Some(hash);
            user.updated_at = now();
            store::users::update(conn, &user)?;
            store::sessions::revoke_user_sessions(conn, &user.id, None)?;
            store::sessions::clear_account_throttles(conn, &user.email)?;
            store::audit::record(
                conn,
                Audit {
                    action: "password.reset",
                    tenant_id: Some(&user.tenant_id),
                    user_id: Some(&user.id),
                    subject: &user.id,
                    client_ip: ip.as_deref(),
                    detail: json!({}),
                },
            )?;
            // Whoever held the old password holds no live token either.
            cutoffs::record(conn, ttl, format!("user:{}", user.id))
        })
        .await?
        .apply(&state)
        .await;
    Ok(HttpResponse::NoContent().finish())
}
