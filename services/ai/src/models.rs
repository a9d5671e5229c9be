//! Model aliases: the platform's (configuration) and each tenant's own. A tenant's alias
//! names deployments on providers it holds a key of, and is found before a platform alias of
//! the same name; its calls always use the tenant's keys, never the platform's (a tenant that
//! deleted its key has an alias that fails, not one billed to the platform).

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, rfc3339},
    http::{Caller, Role, ValidJson},
};

use crate::{
    AiState,
    config::{DeploymentConfig, ModelConfig},
    local,
    schema::{provider_keys, tenant_models},
};

/// What a model name in a request is.
pub enum Target {
    Local,
    /// An embedding model (`lexical-hash-1024`, or a static model), for `/embeddings` only.
    Embedder(crate::embedders::Embedder),
    /// A platform alias (configuration).
    Platform,
    /// The tenant's own alias.
    Tenant(ModelConfig),
}

/// Deployments a tenant alias may have.
const MAX_DEPLOYMENTS: usize = 5;

/// Aliases a tenant may have.
const MAX_ALIASES: i64 = 50;

/// What `model` names for `tenant`, or none.
pub async fn target(state: &AiState, tenant: &str, model: &str) -> AppResult<Option<Target>> {
    if model == local::MODEL {
        return Ok(Some(Target::Local));
    }
    if let Some(embedder) = state.embedders.get(model) {
        return Ok(Some(Target::Embedder(embedder)));
    }
    let (t, m) = (tenant.to_owned(), model.to_owned());
    let own: Option<String> = state
        .db
        .read(move |conn| {
            Ok(tenant_models::table
                .find((&t, &m))
                .select(tenant_models::deployments)
                .first(conn)
                .optional()?)
        })
        .await?;
    if let Some(json) = own {
        let deployments: Vec<DeploymentConfig> = serde_json::from_str(&json).map_err(|e| {
            AppError::Internal(anyhow::anyhow!("a stored alias does not read: {e}"))
        })?;
        return Ok(Some(Target::Tenant(ModelConfig { deployments })));
    }
    Ok(state
        .config
        .models
        .contains_key(model)
        .then_some(Target::Platform))
}

/// The tenant's own aliases' names.
pub async fn tenant_aliases(state: &AiState, tenant: &str) -> AppResult<Vec<String>> {
    let t = tenant.to_owned();
    state
        .db
        .read(move |conn| {
            Ok(tenant_models::table
                .filter(tenant_models::tenant_id.eq(&t))
                .order(tenant_models::alias)
                .select(tenant_models::alias)
                .load(conn)?)
        })
        .await
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/ai/models", web::get().to(list))
        .route("/api/v1/ai/models/{alias}", web::put().to(put))
        .route("/api/v1/ai/models/{alias}", web::delete().to(delete));
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentIn {
    /// A configured provider the tenant holds a key of.
    pub provider: String,
    /// The provider's model name (1 to 200 characters).
    pub model: String,
}

#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct AliasIn {
    /// Tried in order, each the next one's fallback (1 to 5).
    pub deployments: Vec<DeploymentIn>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AliasOut {
    pub alias: String,
    /// tenant (the tenant's own) or platform.
    pub owner: &'static str,
    /// A tenant alias's deployments (the platform's are not shown).
    pub deployments: Vec<DeploymentIn>,
    pub updated_at: Option<String>,
}

fn check_alias(alias: &str) -> AppResult<()> {
    let ok = (1..=64).contains(&alias.len())
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if !ok {
        return Err(AppError::invalid(
            "alias",
            "must be 1 to 64 of letters, digits, '-', '_', '.' and ':'",
        ));
    }
    if alias == local::MODEL {
        return Err(AppError::invalid("alias", "`local` is the built-in model"));
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/ai/models", tag = "ai",
    responses((status = 200, description = "the tenant's own aliases, then the platform's", body = [AliasOut])),
    security(("bearer" = [])))]
pub async fn list(state: web::Data<AiState>, caller: Caller) -> AppResult<HttpResponse> {
    let tenant = caller.tenant_id.clone();
    let rows: Vec<(String, String, chrono::NaiveDateTime)> = state
        .db
        .read(move |conn| {
            Ok(tenant_models::table
                .filter(tenant_models::tenant_id.eq(&tenant))
                .order(tenant_models::alias)
                .select((
                    tenant_models::alias,
                    tenant_models::deployments,
                    tenant_models::updated_at,
                ))
                .load(conn)?)
        })
        .await?;
    let mut out: Vec<AliasOut> = rows
        .into_iter()
        .map(|(alias, deployments, at)| AliasOut {
            alias,
            owner: "tenant",
            deployments: serde_json::from_str(&deployments).unwrap_or_default(),
            updated_at: Some(rfc3339(at)),
        })
        .collect();
    out.extend(state.config.models.keys().map(|alias| AliasOut {
        alias: alias.clone(),
        owner: "platform",
        deployments: Vec::new(),
        updated_at: None,
    }));
    Ok(HttpResponse::Ok().json(out))
}

fn has_key(conn: &mut DbConnection, tenant: &str, provider: &str) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        provider_keys::table.find((tenant, provider)),
    ))
    .get_result(conn)?)
}

#[utoipa::path(put, path = "/api/v1/ai/models/{alias}", tag = "ai", request_body = AliasIn,
    responses((status = 200, description = "the tenant's alias, found before the platform's of the same name", body = AliasOut),
        (status = 403, description = "needs a signed-in TENANT_ADMIN"),
        (status = 409, description = "the tenant has as many aliases as it may"), (status = 422, description = "an unknown provider, or one the tenant holds no key of")),
    security(("bearer" = [])))]
pub async fn put(
    state: web::Data<AiState>,
    caller: Caller,
    alias: web::Path<String>,
    body: ValidJson<AliasIn>,
) -> AppResult<HttpResponse> {
    caller.require_role(Role::TenantAdmin)?;
    caller.require_session("setting a model alias")?;
    let alias = alias.into_inner();
    check_alias(&alias)?;
    if state.embedders.get(&alias).is_some() {
        return Err(AppError::invalid(
            "alias",
            format!("`{alias}` is an embedding model of this service"),
        ));
    }
    let deployments = body.0.deployments;
    if deployments.is_empty() || deployments.len() > MAX_DEPLOYMENTS {
        return Err(AppError::invalid(
            "deployments",
            format!("must be 1 to {MAX_DEPLOYMENTS}"),
        ));
    }
    for (i, d) in deployments.iter().enumerate() {
        if !state.config.providers.contains_key(&d.provider) {
            return Err(AppError::invalid(
                format!("deployments[{i}].provider"),
                "is not a configured provider",
            ));
        }
        let model = d.model.trim();
        if model.is_empty() || model.chars().count() > 200 || model.chars().any(char::is_control) {
            return Err(AppError::invalid(
                format!("deployments[{i}].model"),
                "must be 1 to 200 characters",
            ));
        }
    }
    let stored: Vec<DeploymentConfig> = deployments
        .iter()
        .map(|d| DeploymentConfig {
            provider: d.provider.clone(),
            model: d.model.trim().to_owned(),
            // The tenant pays its provider itself.
            input_cost_per_million: 0,
            output_cost_per_million: 0,
        })
        .collect();
    let json = serde_json::to_string(&stored).map_err(|e| AppError::Internal(e.into()))?;
    let (tenant, name, now) = (
        caller.tenant_id.clone(),
        alias.clone(),
        agora_shared::db::now(),
    );
    let providers: Vec<String> = stored.iter().map(|d| d.provider.clone()).collect();
    state
        .db
        .write(move |conn| {
            for (i, provider) in providers.iter().enumerate() {
                if !has_key(conn, &tenant, provider)? {
                    return Err(AppError::invalid(
                        format!("deployments[{i}].provider"),
                        "the tenant holds no key of this provider (PUT /api/v1/ai/provider-keys/{provider} first)",
                    ));
                }
            }
            let updated = diesel::update(tenant_models::table.find((&tenant, &name)))
                .set((
                    tenant_models::deployments.eq(&json),
                    tenant_models::updated_at.eq(now),
                ))
                .execute(conn)?;
            if updated == 0 {
                let count: i64 = tenant_models::table
                    .filter(tenant_models::tenant_id.eq(&tenant))
                    .count()
                    .get_result(conn)?;
                if count >= MAX_ALIASES {
                    return Err(AppError::Conflict(format!(
                        "the tenant has {count} aliases, the most it may"
                    ))
                    .with_code("ai.too_many_aliases"));
                }
                diesel::insert_into(tenant_models::table)
                    .values((
                        tenant_models::tenant_id.eq(&tenant),
                        tenant_models::alias.eq(&name),
                        tenant_models::deployments.eq(&json),
                        tenant_models::updated_at.eq(now),
                    ))
                    .execute(conn)?;
            }
            Ok(())
        })
        .await?;
    Ok(HttpResponse::Ok().json(AliasOut {
        alias,
        owner: "tenant",
        deployments,
        updated_at: Some(rfc3339(now)),
    }))
}

#[utoipa::path(delete, path = "/api/v1/ai/models/{alias}", tag = "ai",
    responses((status = 204, description = "deleted; a platform alias of the name is found again"), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<AiState>,
    caller: Caller,
    alias: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_role(Role::TenantAdmin)?;
    caller.require_session("deleting a model alias")?;
    let (tenant, alias) = (caller.tenant_id.clone(), alias.into_inner());
    let deleted = state
        .db
        .write(move |conn| {
            Ok(diesel::delete(tenant_models::table.find((&tenant, &alias))).execute(conn)?)
        })
        .await?;
    match deleted {
        1 => Ok(HttpResponse::NoContent().finish()),
        _ => Err(AppError::not_found("model alias")),
    }
}
