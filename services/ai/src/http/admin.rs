//! Tenants' own provider keys (set, list without the keys, delete) and budgets (set by
//! platform admins; read by tenant admins for their own tenant).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use agora_shared::{
    AppError, AppResult,
    db::rfc3339,
    http::{Caller, Role, ValidJson},
};

use crate::{
    AiState,
    budget::{self, BudgetRow},
    keys::{self, KeyRow},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/ai/provider-keys", web::get().to(list_keys))
        .route(
            "/api/v1/ai/provider-keys/{provider}",
            web::put().to(put_key),
        )
        .route(
            "/api/v1/ai/provider-keys/{provider}",
            web::delete().to(delete_key),
        )
        .route("/api/v1/ai/budget", web::get().to(get_budget))
        .route("/api/v1/ai/budget", web::put().to(put_budget));
}

#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    /// The provider's API key (8 to 512 characters); never shown again.
    pub api_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderOut {
    pub provider: String,
    /// openai or anthropic.
    pub kind: String,
    /// Whether the tenant set its own key (used instead of the platform's).
    pub has_key: bool,
    /// The tenant's key's last four characters.
    pub hint: Option<String>,
    pub updated_at: Option<String>,
    /// Whether the platform has a key for it.
    pub platform_key: bool,
}

fn kind_name(kind: crate::config::ProviderKind) -> String {
    match kind {
        crate::config::ProviderKind::Openai => "openai".into(),
        crate::config::ProviderKind::Anthropic => "anthropic".into(),
    }
}

fn require_key_manager(caller: &Caller) -> AppResult<()> {
    caller.require_role(Role::TenantAdmin)?;
    caller.require_session("setting a provider key")
}

#[utoipa::path(get, path = "/api/v1/ai/provider-keys", tag = "ai",
    responses((status = 200, description = "the configured providers and whether the tenant set its own key (never the key)", body = [ProviderOut]), (status = 403)),
    security(("bearer" = [])))]
pub async fn list_keys(state: web::Data<AiState>, caller: Caller) -> AppResult<HttpResponse> {
    caller.require_role(Role::TenantAdmin)?;
    let tenant = caller.tenant_id.clone();
    let rows = state.db.read(move |conn| keys::list(conn, &tenant)).await?;
    let out: Vec<ProviderOut> = state
        .config
        .providers
        .iter()
        .map(|(name, p)| {
            let row = rows.iter().find(|r| &r.provider == name);
            ProviderOut {
                provider: name.clone(),
                kind: kind_name(p.kind),
                has_key: row.is_some(),
                hint: row.map(|r| r.hint.clone()),
                updated_at: row.map(|r| rfc3339(r.updated_at)),
                platform_key: p.api_key.is_some(),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(put, path = "/api/v1/ai/provider-keys/{provider}", tag = "ai", request_body = KeyIn,
    responses((status = 200, description = "sealed and stored; the tenant's calls to this provider use it", body = ProviderOut),
        (status = 403, description = "needs a signed-in TENANT_ADMIN"), (status = 404, description = "no such provider"),
        (status = 409, description = "no key-encryption key is configured"), (status = 422)),
    security(("bearer" = [])))]
pub async fn put_key(
    state: web::Data<AiState>,
    caller: Caller,
    provider: web::Path<String>,
    body: ValidJson<KeyIn>,
) -> AppResult<HttpResponse> {
    require_key_manager(&caller)?;
    let provider = provider.into_inner();
    let Some(config) = state.config.providers.get(&provider) else {
        return Err(AppError::not_found("provider"));
    };
    let key = body.0.api_key.trim().to_owned();
    if !(8..=512).contains(&key.chars().count()) || key.chars().any(|c| c.is_control() || c == ' ')
    {
        return Err(AppError::invalid(
            "api_key",
            "must be 8 to 512 characters without spaces or control characters",
        ));
    }
    let sealer = keys::sealer(&state)?;
    let hint: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let row = KeyRow {
        sealed_key: keys::seal(sealer, &caller.tenant_id, &provider, &key),
        tenant_id: caller.tenant_id.clone(),
        provider: provider.clone(),
        hint: hint.clone(),
        created_by: caller.user_id.clone(),
        updated_at: agora_shared::db::now(),
    };
    let updated_at = rfc3339(row.updated_at);
    state.db.write(move |conn| keys::put(conn, &row)).await?;
    Ok(HttpResponse::Ok().json(ProviderOut {
        provider,
        kind: kind_name(config.kind),
        has_key: true,
        hint: Some(hint),
        updated_at: Some(updated_at),
        platform_key: config.api_key.is_some(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/ai/provider-keys/{provider}", tag = "ai",
    responses((status = 204, description = "deleted; the platform's key is used again"), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete_key(
    state: web::Data<AiState>,
    caller: Caller,
    provider: web::Path<String>,
) -> AppResult<HttpResponse> {
    require_key_manager(&caller)?;
    let (tenant, provider) = (caller.tenant_id.clone(), provider.into_inner());
    let deleted = state
        .db
        .write(move |conn| keys::delete(conn, &tenant, &provider))
        .await?;
    match deleted {
        true => Ok(HttpResponse::NoContent().finish()),
        false => Err(AppError::not_found("provider key")),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct BudgetQuery {
    /// Another tenant's (platform admins only).
    pub tenant_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageOut {
    pub period_start: String,
    pub period_end: String,
    pub requests: i64,
    pub tokens_used: i64,
    /// Tokens held by calls running now.
    pub tokens_reserved: i64,
    /// Minor units of the platform's currency.
    pub cost_minor: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetOut {
    pub tenant_id: String,
    /// day or month.
    pub period: String,
    /// None: unlimited.
    pub max_tokens: Option<i64>,
    pub max_requests: Option<i64>,
    pub usage: UsageOut,
}

#[utoipa::path(get, path = "/api/v1/ai/budget", tag = "ai", params(BudgetQuery),
    responses((status = 200, body = BudgetOut), (status = 403)), security(("bearer" = [])))]
pub async fn get_budget(
    state: web::Data<AiState>,
    caller: Caller,
    query: web::Query<BudgetQuery>,
) -> AppResult<HttpResponse> {
    caller.require_role(Role::TenantAdmin)?;
    let tenant = caller.tenant_to_read(query.tenant_id.as_deref().unwrap_or_default(), "budget")?;
    let out = state.db.read(move |conn| render(conn, &tenant)).await?;
    Ok(HttpResponse::Ok().json(out))
}

fn render(conn: &mut agora_shared::db::DbConnection, tenant: &str) -> AppResult<BudgetOut> {
    let row = budget::budget(conn, tenant)?;
    let period = row
        .as_ref()
        .map_or("month", |b| b.period.as_str())
        .to_owned();
    let (start, end) = budget::bounds(&period, agora_shared::db::now());
    let used = budget::period(conn, tenant, start)?;
    Ok(BudgetOut {
        tenant_id: tenant.to_owned(),
        max_tokens: row.as_ref().and_then(|b| b.max_tokens),
        max_requests: row.as_ref().and_then(|b| b.max_requests),
        period,
        usage: UsageOut {
            period_start: rfc3339(start),
            period_end: rfc3339(end),
            requests: used.requests,
            tokens_used: used.tokens_used,
            tokens_reserved: used.tokens_reserved,
            cost_minor: used.cost_minor,
        },
    })
}

#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct BudgetIn {
    pub tenant_id: String,
    /// day or month.
    pub period: String,
    /// Tokens per period (none: unlimited).
    pub max_tokens: Option<i64>,
    /// Model calls per period (none: unlimited).
    pub max_requests: Option<i64>,
}

#[utoipa::path(put, path = "/api/v1/ai/budget", tag = "ai", request_body = BudgetIn,
    responses((status = 200, body = BudgetOut), (status = 403, description = "platform admins only"), (status = 422)),
    security(("bearer" = [])))]
pub async fn put_budget(
    state: web::Data<AiState>,
    caller: Caller,
    body: ValidJson<BudgetIn>,
) -> AppResult<HttpResponse> {
    caller.require_role(Role::PlatformAdmin)?;
    let body = body.0;
    if !matches!(body.period.as_str(), "day" | "month") {
        return Err(AppError::invalid("period", "must be day or month"));
    }
    for (field, value) in [
        ("max_tokens", body.max_tokens),
        ("max_requests", body.max_requests),
    ] {
        if value.is_some_and(|v| v < 0) {
            return Err(AppError::invalid(field, "must not be negative"));
        }
    }
    let tenant = super::clean("tenant_id", &body.tenant_id, 64)?;
    let row = BudgetRow {
        tenant_id: tenant.clone(),
        period: body.period,
        max_tokens: body.max_tokens,
        max_requests: body.max_requests,
        updated_at: agora_shared::db::now(),
    };
    let out = state
        .db
        .write(move |conn| {
            budget::set_budget(conn, &row)?;
            render(conn, &tenant)
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}
