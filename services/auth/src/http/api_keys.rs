//! `/api-keys`: tenant admins create, list and revoke keys. The secret is returned once and
//! stored as a SHA-256 hash; a key acts within its tenant with its role.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use agora_shared::{
    AppError, AppResult,
    db::now,
    http::{Caller, Page, PageParams, Role, ValidJson},
};

use super::{client_ip, created};
use crate::{
    AuthState, domain,
    model::*,
    store::{self, api_keys::ApiKeyRow, audit::Audit},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api-keys", web::get().to(list))
        .route("/api-keys", web::post().to(create))
        .route("/api-keys/{id}", web::delete().to(revoke));
}

/// Key management needs a user's session: a key cannot mint or revoke keys.
fn require_admin_session(caller: &Caller) -> AppResult<()> {
    caller.require_role(Role::TenantAdmin)?;
    caller.require_session("managing API keys")
}

#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = CreateApiKeyRequest,
    responses((status = 201, body = CreatedApiKey), (status = 403), (status = 422)), security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AuthState>,
    req: HttpRequest,
    caller: Caller,
    body: ValidJson<CreateApiKeyRequest>,
) -> AppResult<HttpResponse> {
    require_admin_session(&caller)?;
    let body = body.0;
    let role = match body.role.parse::<Role>() {
        Ok(r @ (Role::TenantAdmin | Role::TenantUser)) if r <= caller.role => r,
        _ => {
            return Err(AppError::invalid(
                "role",
                "must be TENANT_ADMIN or TENANT_USER, and not above your own role",
            ));
        }
    };
    if body.expires_at.is_some_and(|e| e <= chrono::Utc::now()) {
        return Err(AppError::invalid("expires_at", "must be in the future"));
    }
    let key = domain::random_secret(agora_shared::http::caller::API_KEY_PREFIX);
    let row = ApiKeyRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: caller.tenant_id.clone(),
        created_by: caller.user_id.clone(),
        name: body.name.trim().to_owned(),
        prefix: key[..12].to_owned(),
        key_hash: domain::secret_hash(&key),
        role,
        expires_at: body.expires_at.map(|e| e.naive_utc()),
        last_used_at: None,
        revoked_at: None,
        created_at: now(),
    };
    let ip = client_ip(&req).map(|i| i.to_string());
    let row = state
        .db
        .write(move |conn| {
            store::api_keys::insert(conn, &row)?;
            store::audit::record(
                conn,
                Audit {
                    action: "api_key.created",
                    tenant_id: Some(&row.tenant_id),
                    user_id: Some(&row.created_by),
                    subject: &row.id,
                    client_ip: ip.as_deref(),
                    detail: json!({"name": row.name, "role": row.role}),
                },
            )?;
            Ok(row)
        })
        .await?;
    let body = CreatedApiKey {
        id: row.id.clone(),
        name: row.name,
        key,
        prefix: row.prefix,
        role: row.role.to_string(),
        expires_at: row.expires_at.map(|e| e.and_utc()),
        created_at: row.created_at.and_utc(),
    };
    Ok(created(format!("/api/v1/api-keys/{}", row.id), body))
}

#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ApiKeyPage), (status = 403)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AuthState>,
    caller: Caller,
    page: web::Query<PageParams>,
) -> AppResult<HttpResponse> {
    require_admin_session(&caller)?;
    let (limit, after, tenant_id) = (page.limit()?, page.after()?, caller.tenant_id.clone());
    let rows = state
        .db
        .read(move |conn| store::api_keys::list(conn, &tenant_id, after.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok()
        .json(Page::from_rows(rows, limit, |k| k.id.clone()).map(|k| ApiKey::from(&k))))
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys",
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn revoke(
    state: web::Data<AuthState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    require_admin_session(&caller)?;
    let (tenant_id, user_id, id) = (
        caller.tenant_id.clone(),
        caller.user_id.clone(),
        id.into_inner(),
    );
    let ip = client_ip(&req).map(|i| i.to_string());
    let key_id = id.clone();
    state
        .db
        .write(move |conn| {
            if !store::api_keys::revoke(conn, &tenant_id, &id)? {
                return Err(AppError::not_found("api key"));
            }
            store::audit::record(
                conn,
                Audit {
                    action: "api_key.revoked",
                    tenant_id: Some(&tenant_id),
                    user_id: Some(&user_id),
                    subject: &id,
                    client_ip: ip.as_deref(),
                    detail: json!({}),
                },
            )
        })
        .await?;
    state
        .invalidations
        .publish(&format!("api_key:{key_id}"))
        .await;
    Ok(HttpResponse::NoContent().finish())
}
