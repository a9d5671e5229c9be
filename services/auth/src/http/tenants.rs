//! `/tenants`: platform admins manage all tenants; a tenant admin reads and updates its own.

use actix_web::{HttpResponse, web};

use agora_shared::{
    AppError, AppResult,
    db::now,
    http::{Caller, Page, PageParams, Role, ValidJson},
};

use super::created;
use crate::{
    AuthState, cutoffs, domain, events,
    model::*,
    store::{self, tenants::TenantRow},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants", web::get().to(list))
        .route("/tenants", web::post().to(create))
        .route("/tenants/{id}", web::get().to(get))
        .route("/tenants/{id}", web::patch().to(update))
        .route("/tenants/{id}", web::delete().to(delete));
}

fn check_plan(plan: &str) -> AppResult<()> {
    if domain::PLANS.contains(&plan) {
        Ok(())
    } else {
        Err(AppError::invalid(
            "plan",
            format!("must be one of {}", domain::PLANS.join(", ")),
        ))
    }
}

/// A tenant the caller may see: its own, or any for a platform admin; others are 404.
pub fn visible(caller: &Caller, tenant_id: &str) -> AppResult<()> {
    if caller.can_access_tenant(tenant_id) {
        Ok(())
    } else {
        Err(AppError::not_found("tenant"))
    }
}

#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = TenantPage), (status = 403)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AuthState>,
    caller: Caller,
    page: web::Query<PageParams>,
) -> AppResult<HttpResponse> {
    caller.require_role(Role::TenantAdmin)?;
    let (limit, after) = (page.limit()?, page.after()?);
    let rows = if caller.is_platform_admin() {
        state
            .db
            .read(move |conn| store::tenants::list(conn, after.as_deref(), limit))
            .await?
    } else {
        let id = caller.tenant_id.clone();
        let own = state
            .db
            .read(move |conn| store::tenants::get(conn, &id))
            .await?;
        own.into_iter()
            .filter(|t| after.as_ref().is_none_or(|a| &t.id > a))
            .collect()
    };
    let page = Page::from_rows(rows, limit, |t| t.id.clone()).map(|t| Tenant::from(&t));
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = CreateTenantRequest,
    responses((status = 201, body = Tenant), (status = 403), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AuthState>,
    caller: Caller,
    body: ValidJson<CreateTenantRequest>,
) -> AppResult<HttpResponse> {
    caller.require_role(Role::PlatformAdmin)?;
    let body = body.0;
    let plan = body.plan.unwrap_or_else(|| domain::DEFAULT_PLAN.into());
    check_plan(&plan)?;
    if domain::reserved_tenant_name(&body.name) {
        return Err(domain::tenant_name_reserved());
    }
    let tenant = TenantRow {
        id: uuid::Uuid::now_v7().to_string(),
        name: body.name.trim().to_owned(),
        name_key: store::tenants::name_key(&body.name),
        plan,
        status: domain::TENANT_ACTIVE.into(),
        created_at: now(),
        updated_at: now(),
    };
    let tenant = state
        .db
        .write(move |conn| {
            store::tenants::insert(conn, &tenant)?;
            events::tenant_changed(conn, "tenant.created", &tenant)?;
            Ok(tenant)
        })
        .await?;
    Ok(created(
        format!("/api/v1/tenants/{}", tenant.id),
        Tenant::from(&tenant),
    ))
}

#[utoipa::path(get, path = "/api/v1/tenants/{id}", tag = "tenants",
    responses((status = 200, body = Tenant), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AuthState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_role(Role::TenantAdmin)?;
    visible(&caller, &id)?;
    let id = id.into_inner();
    let tenant = state
        .db
        .read(move |conn| {
            store::tenants::get(conn, &id)?.ok_or_else(|| AppError::not_found("tenant"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(Tenant::from(&tenant)))
}

/// Renames a tenant; plan and status changes are for platform admins.
#[utoipa::path(patch, path = "/api/v1/tenants/{id}", tag = "tenants", request_body = UpdateTenantRequest,
    responses((status = 200, body = Tenant), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AuthState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<UpdateTenantRequest>,
) -> AppResult<HttpResponse> {
    caller.require_role(Role::TenantAdmin)?;
    visible(&caller, &id)?;
    let body = body.0;
    if (body.plan.is_some() || body.status.is_some()) && !caller.is_platform_admin() {
        return Err(AppError::Forbidden(
            "only platform admins change a tenant's plan or status".into(),
        ));
    }
    if let Some(plan) = &body.plan {
        check_plan(plan)?;
    }
    if let Some(status) = &body.status
        && !domain::TENANT_STATUSES.contains(&status.as_str())
    {
        return Err(AppError::invalid("status", "must be ACTIVE or SUSPENDED"));
    }
    let id = id.into_inner();
    let ttl = state.config.access_ttl();
    let (tenant, cut) = state
        .db
        .write(move |conn| {
            let mut t =
                store::tenants::get(conn, &id)?.ok_or_else(|| AppError::not_found("tenant"))?;
            let suspended = t.status == domain::TENANT_ACTIVE
                && body.status.as_deref() == Some(domain::TENANT_SUSPENDED);
            if suspended && store::users::holds_platform_admins(conn, &t.id)? {
                return Err(AppError::Conflict(
                    "a tenant holding platform admins cannot be suspended".into(),
                ));
            }
            if let Some(name) = body.name {
                if domain::reserved_tenant_name(&name) && !domain::reserved_tenant_name(&t.name) {
                    return Err(domain::tenant_name_reserved());
                }
                t.name_key = store::tenants::name_key(&name);
                t.name = name.trim().to_owned();
            }
            t.plan = body.plan.unwrap_or(t.plan);
            t.status = body.status.unwrap_or(t.status);
            t.updated_at = now();
            store::tenants::update(conn, &t)?;
            events::tenant_changed(conn, "tenant.updated", &t)?;
            // A suspended tenant's sessions end, its live access tokens are refused and every
            // cache forgets its keys (which resolve no more).
            let cut = match suspended {
                true => {
                    store::sessions::revoke_tenant_sessions(conn, &t.id)?;
                    Some(cutoffs::record(conn, ttl, format!("tenant:{}", t.id))?)
                }
                false => None,
            };
            Ok((t, cut))
        })
        .await?;
    if let Some(cut) = cut {
        cut.apply(&state).await;
    }
    Ok(HttpResponse::Ok().json(Tenant::from(&tenant)))
}

/// Deletes a tenant with its users, teams and keys (platform admins; not their own tenant).
#[utoipa::path(delete, path = "/api/v1/tenants/{id}", tag = "tenants",
    responses((status = 204), (status = 403), (status = 404), (status = 409)), security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<AuthState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_role(Role::PlatformAdmin)?;
    if *id == caller.tenant_id {
        return Err(AppError::Conflict(
            "a platform admin cannot delete its own tenant".into(),
        ));
    }
    let id = id.into_inner();
    let ttl = state.config.access_ttl();
    state
        .db
        .write(move |conn| {
            let t = store::tenants::get(conn, &id)?.ok_or_else(|| AppError::not_found("tenant"))?;
            store::tenants::delete(conn, &id)?;
            events::tenant_changed(conn, "tenant.deleted", &t)?;
            cutoffs::record(conn, ttl, format!("tenant:{}", t.id))
        })
        .await?
        .apply(&state)
        .await;
    Ok(HttpResponse::NoContent().finish())
}
