//! `POST /tenants/{id}/users`: a TENANT_ADMIN invites a user into the tenant; the one-time
//! invitation token is answered to the inviter and mailed to the invitee, never published.

use actix_web::{HttpResponse, web};

use agora_shared::{
    AppError, AppResult,
    db::{Json, now},
    http::{Caller, Role, ValidJson},
};

use super::{created, tenants::visible};
use crate::{
    AuthState, domain, events,
    model::*,
    store::{self, sessions::OneTimeRow, users::UserRow},
};

pub(super) fn tenant_role(field: &str, role: &str) -> AppResult<Role> {
    match role.parse() {
        Ok(r @ (Role::TenantAdmin | Role::TenantUser)) => Ok(r),
        _ => Err(AppError::invalid(
            field,
            "must be TENANT_ADMIN or TENANT_USER",
        )),
    }
}

pub(super) fn check_permissions(permissions: &[String]) -> AppResult<()> {
    let broken = domain::check_permissions("permissions", permissions);
    if broken.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(broken))
    }
}

#[utoipa::path(post, path = "/api/v1/tenants/{id}/users", tag = "users", request_body = InviteUserRequest,
    responses((status = 201, body = InvitedUser), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
pub async fn invite(
    state: web::Data<AuthState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<InviteUserRequest>,
) -> AppResult<HttpResponse> {
    caller.require_role(Role::TenantAdmin)?;
    caller.require_session("inviting users")?;
    visible(&caller, &id)?;
    let body = body.0;
    let role = tenant_role("role", &body.role)?;
    check_permissions(&body.permissions)?;
    let tenant_id = id.into_inner();
    let token = domain::random_secret("inv_");
    let token_hash = domain::secret_hash(&token);
    let actor = caller.user_id.clone();
    let (user, expires) = state
        .db
        .write(move |conn| {
            store::tenants::get(conn, &tenant_id)?.ok_or_else(|| AppError::not_found("tenant"))?;
            let email = domain::normalize_email(&body.email);
            if store::users::email_taken(conn, &email)? {
                return Err(
                    AppError::Conflict("a user with this email already exists".into())
                        .with_code("auth.email_taken"),
                );
            }
            let user = UserRow {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id,
                email,
                name: body.name.trim().to_owned(),
                password_hash: None,
                role,
                status: domain::USER_INVITED.into(),
                permissions: Json(body.permissions.clone()),
                created_at: now(),
                updated_at: now(),
            };
            store::users::insert(conn, &user)?;
            let expires = now() + chrono::Duration::seconds(domain::INVITE_TTL.as_secs() as i64);
            store::sessions::insert_one_time(
                conn,
                &OneTimeRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    user_id: user.id.clone(),
                    purpose: domain::PURPOSE_INVITE.into(),
                    token_hash,
                    expires_at: expires,
                    used_at: None,
                    created_at: now(),
                },
            )?;
            events::user_changed(conn, "user.invited", &user, Some(&actor))?;
            Ok((user, expires))
        })
        .await?;
    if let Some(mailer) = &state.mailer {
        let link = format!("{}?token={token}", state.config.invite_url);
        mailer.send_invitation(&user.email, &link).await;
    }
    let location = format!("/api/v1/tenants/{}/users/{}", user.tenant_id, user.id);
    Ok(created(
        location,
        InvitedUser {
            user: User::from(&user),
            invitation_token: token,
            invitation_expires_at: expires.and_utc(),
        },
    ))
}
