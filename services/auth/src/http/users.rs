//! `/tenants/{id}/users`: roles, status, permissions (invitations in `invitations.rs`). The last active TENANT_ADMIN
//! of a tenant cannot be demoted, deactivated or deleted.

use actix_web::{HttpResponse, web};

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, Json, now},
    http::{Caller, Page, PageParams, Role, ValidJson},
};

use super::{
    invitations::{check_permissions, invite, tenant_role},
    tenants::visible,
};
use crate::{
    AuthState, cutoffs, domain, events,
    model::*,
    store::{self, users::UserRow},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants/{id}/users", web::get().to(list))
        .route("/tenants/{id}/users", web::post().to(invite))
        .route("/tenants/{id}/users/{user_id}", web::get().to(get))
        .route("/tenants/{id}/users/{user_id}", web::patch().to(update))
        .route("/tenants/{id}/users/{user_id}", web::delete().to(delete));
}

/// Refuses a change that would leave `user`'s tenant without an active TENANT_ADMIN.
fn keep_an_admin(conn: &mut DbConnection, user: &UserRow, still_admin: bool) -> AppResult<()> {
    let is_active_admin = user.role() == Role::TenantAdmin && user.is_active();
    if is_active_admin
        && !still_admin
        && store::users::other_active_admins(conn, &user.tenant_id, &user.id)? == 0
    {
        return Err(AppError::Conflict(
            "the last active TENANT_ADMIN of a tenant cannot be demoted, deactivated or deleted"
                .into(),
        ));
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}/users", tag = "users", params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = UserPage), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AuthState>,
    caller: Caller,
    id: web::Path<String>,
    page: web::Query<PageParams>,
) -> AppResult<HttpResponse> {
    caller.require_role(Role::TenantAdmin)?;
    visible(&caller, &id)?;
    let (limit, after, id) = (page.limit()?, page.after()?, id.into_inner());
    let rows = state
        .db
        .read(move |conn| store::users::list(conn, &id, after.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok()
        .json(Page::from_rows(rows, limit, |u| u.id.clone()).map(|u| User::from(&u))))
}

/// Invites a user: created INVITED, with a single-use invitation token (7 days) returned once
/// and published in the `user.invited` event.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/users/{user_id}", tag = "users",
    responses((status = 200, body = User), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AuthState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    caller.require_role(Role::TenantAdmin)?;
    let (tenant_id, user_id) = path.into_inner();
    visible(&caller, &tenant_id)?;
    let user = state
        .db
        .read(move |conn| {
            store::users::get_in_tenant(conn, &tenant_id, &user_id)?
                .ok_or_else(|| AppError::not_found("user"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(User::from(&user)))
}

/// Changes a user's name, role, status (ACTIVE or INACTIVE) or permissions. Deactivating ends
/// the user's sessions.
#[utoipa::path(patch, path = "/api/v1/tenants/{id}/users/{user_id}", tag = "users", request_body = UpdateUserRequest,
    responses((status = 200, body = User), (status = 403), (status = 404), (status = 409, description = "last admin"), (status = 422)),
    security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AuthState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: ValidJson<UpdateUserRequest>,
) -> AppResult<HttpResponse> {
    caller.require_role(Role::TenantAdmin)?;
    let (tenant_id, user_id) = path.into_inner();
    visible(&caller, &tenant_id)?;
    let body = body.0;
    if body.role.is_some() || body.permissions.is_some() {
        caller.require_session("changing a user's role or permissions")?;
    }
    let role = body
        .role
        .as_deref()
        .map(|r| tenant_role("role", r))
        .transpose()?;
    if let Some(status) = &body.status
        && status != domain::USER_ACTIVE
        && status != domain::USER_INACTIVE
    {
        return Err(AppError::invalid("status", "must be ACTIVE or INACTIVE"));
    }
    if let Some(p) = &body.permissions {
        check_permissions(p)?;
    }
    let actor = caller.user_id.clone();
    let ttl = state.config.access_ttl();
    let (user, cut) = state
        .db
        .write(move |conn| {
            store::lock_tenant(conn, &tenant_id)?;
            let mut user = store::users::get_in_tenant(conn, &tenant_id, &user_id)?
                .ok_or_else(|| AppError::not_found("user"))?;
            if user.role() == Role::PlatformAdmin {
                return Err(AppError::Forbidden(
                    "platform admins are managed with `agora admin`".into(),
                ));
            }
            let new_role = role.unwrap_or(user.role());
            let new_status = body.status.clone().unwrap_or_else(|| user.status.clone());
            if new_status == domain::USER_ACTIVE && user.password_hash.is_none() {
                return Err(AppError::invalid(
                    "status",
                    "an invited user becomes ACTIVE by accepting the invitation",
                ));
            }
            keep_an_admin(
                conn,
                &user,
                new_role == Role::TenantAdmin && new_status == domain::USER_ACTIVE,
            )?;
            let deactivated = user.is_active() && new_status == domain::USER_INACTIVE;
            // Live tokens carry the old role and permissions: refuse them (and forget the
            // user's keys in every cache) when rights shrink or change.
            let rights_changed = deactivated
                || new_role != user.role
                || body
                    .permissions
                    .as_ref()
                    .is_some_and(|p| *p != user.permissions.0);
            user.role = new_role;
            user.status = new_status;
            if let Some(name) = body.name {
                user.name = name.trim().to_owned();
            }
            if let Some(p) = body.permissions {
                user.permissions = Json(p);
            }
            user.updated_at = now();
            store::users::update(conn, &user)?;
            if deactivated {
                store::sessions::revoke_user_sessions(conn, &user.id, None)?;
            }
            events::user_changed(conn, "user.updated", &user, Some(&actor))?;
            let cut = rights_changed
                .then(|| cutoffs::record(conn, ttl, format!("user:{}", user.id)))
                .transpose()?;
            Ok((user, cut))
        })
        .await?;
    if let Some(cut) = cut {
        cut.apply(&state).await;
    }
    Ok(HttpResponse::Ok().json(User::from(&user)))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{id}/users/{user_id}", tag = "users",
    responses((status = 204), (status = 403), (status = 404), (status = 409, description = "last admin")), security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<AuthState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    caller.require_role(Role::TenantAdmin)?;
    let (tenant_id, user_id) = path.into_inner();
    visible(&caller, &tenant_id)?;
    let actor = caller.user_id.clone();
    let ttl = state.config.access_ttl();
    state
        .db
        .write(move |conn| {
            store::lock_tenant(conn, &tenant_id)?;
            let user = store::users::get_in_tenant(conn, &tenant_id, &user_id)?
                .ok_or_else(|| AppError::not_found("user"))?;
            if user.role() == Role::PlatformAdmin {
                return Err(AppError::Forbidden(
                    "platform admins are managed with `agora admin`".into(),
                ));
            }
            keep_an_admin(conn, &user, false)?;
            store::users::delete(conn, &user.id)?;
            events::user_changed(conn, "user.deleted", &user, Some(&actor))?;
            cutoffs::record(conn, ttl, format!("user:{}", user.id))
        })
        .await?
        .apply(&state)
        .await;
    Ok(HttpResponse::NoContent().finish())
}
