//! `/inventory/connections`: the tenant's Amazon accounts and their syncs. A refresh token is
//! checked with Login with Amazon before it is kept, sealed; it is never returned or logged.
//! Reading needs a tenant user; connecting, syncing and disconnecting TENANT_ADMIN or
//! `inventory:manage`.

use std::sync::Arc;

use actix_web::{HttpResponse, web};

use agora_shared::{
    AppError, AppResult,
    db::now,
    http::{Caller, Page, PageParams, ValidJson},
    sealed::Sealer,
};

use super::{MANAGE, created};
use crate::{
    InventoryState,
    amazon::{AccessToken, AmazonError},
    domain::{ConnectionStatus, SyncTrigger},
    model::*,
    store::{self, connections::ConnectionRow},
    sync,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/connections", web::get().to(list))
        .route("/connections", web::post().to(connect))
        .route("/connections/{id}", web::get().to(get))
        .route("/connections/{id}", web::delete().to(disconnect))
        .route("/connections/{id}/credentials", web::put().to(reauthorize))
        .route("/connections/{id}/syncs", web::get().to(runs))
        .route("/connections/{id}/syncs", web::post().to(start_sync))
        .route("/syncs/{id}", web::get().to(run));
}

fn duplicate() -> AppError {
    AppError::Conflict("the tenant has this marketplace connected already".into())
        .with_code("inventory.duplicate_connection")
}

fn sealer(state: &InventoryState) -> AppResult<&Sealer> {
    state.sealer.as_ref().ok_or_else(|| {
        AppError::Unavailable(
            "connections need inventory_sync.key_encryption_key, which is not set".into(),
        )
        .with_code("inventory.sealing_unconfigured")
    })
}

/// What LWA said of a refresh token, as an answer to the caller.
fn refused(error: AmazonError) -> AppError {
    match error {
        AmazonError::InvalidGrant(_) => AppError::invalid(
            "refresh_token",
            "Login with Amazon refused it (revoked, expired, or not this application's)",
        )
        .with_code("inventory.invalid_grant"),
        AmazonError::NotConfigured => {
            AppError::Unavailable(error.to_string()).with_code("inventory.amazon_unconfigured")
        }
        other => AppError::Unavailable(format!("Amazon cannot be reached now: {other}")),
    }
}

/// Checks `refresh_token` with LWA; its access token, sealed for connection `id`.
async fn check(
    state: &InventoryState,
    id: &str,
    refresh_token: &str,
) -> AppResult<(String, String, AccessToken)> {
    let sealer = sealer(state)?;
    let token = state.amazon.refresh(refresh_token).await.map_err(refused)?;
    Ok((
        sealer.seal(refresh_token.as_bytes(), id),
        sealer.seal(token.token.as_bytes(), id),
        token,
    ))
}

#[utoipa::path(get, path = "/api/v1/inventory/connections", tag = "inventory",
    responses((status = 200, body = ConnectionList)), security(("bearer" = [])))]
pub async fn list(state: web::Data<InventoryState>, caller: Caller) -> AppResult<HttpResponse> {
    let rows = state
        .db
        .read(move |conn| store::connections::list(conn, &caller.tenant_id))
        .await?;
    Ok(HttpResponse::Ok().json(ConnectionList {
        items: rows.iter().map(Connection::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/inventory/connections", tag = "inventory", request_body = NewConnection,
    responses((status = 201, body = Connection), (status = 403),
        (status = 409, description = "the tenant has this marketplace connected"),
        (status = 422, description = "invalid, or Login with Amazon refused the refresh token"),
        (status = 503, description = "Amazon or the key-encryption key is not configured, or Amazon cannot be reached")),
    security(("bearer" = [])))]
pub async fn connect(
    state: web::Data<InventoryState>,
    caller: Caller,
    body: ValidJson<NewConnection>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let new = body.0;
    // A marketplace the tenant has is refused before Amazon is asked anything.
    let (tenant, account, provider) = (
        caller.tenant_id.clone(),
        new.marketplace_id.clone(),
        new.provider,
    );
    let connected = state
        .db
        .read(move |conn| {
            Ok(store::connections::list(conn, &tenant)?
                .into_iter()
                .any(|c| c.provider == provider && c.account == account))
        })
        .await?;
    if connected {
        return Err(duplicate());
    }
    let id = uuid::Uuid::now_v7().to_string();
    let (credentials, access, token) = check(&state, &id, &new.refresh_token).await?;
    let at = now();
    let row = ConnectionRow {
        id,
        tenant_id: caller.tenant_id.clone(),
        provider: new.provider,
        account: new.marketplace_id,
        status: ConnectionStatus::Active,
        credentials,
        access_token: Some(access),
        access_expires_at: Some(at + chrono::Duration::seconds(token.expires_in.as_secs() as i64)),
        webhook_secret: None,
        last_error: None,
        last_synced_at: None,
        created_by: caller.user_id.clone(),
        created_at: at,
        updated_at: at,
    };
    let saved = row.clone();
    state
        .db
        .write(move |conn| store::connections::insert(conn, &saved))
        .await
        .map_err(|e| match e {
            AppError::Conflict(_) => duplicate(),
            other => other,
        })?;
    Ok(created(format!("/api/v1/inventory/connections/{}", row.id)).json(Connection::from(&row)))
}

#[utoipa::path(get, path = "/api/v1/inventory/connections/{id}", tag = "inventory",
    params(("id" = String, Path)),
    responses((status = 200, body = Connection), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let row = state
        .db
        .read(move |conn| {
            store::connections::get(conn, &caller.tenant_id, &id)?
                .ok_or_else(|| AppError::not_found("connection"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(Connection::from(&row)))
}

#[utoipa::path(put, path = "/api/v1/inventory/connections/{id}/credentials", tag = "inventory",
    request_body = Credentials, params(("id" = String, Path)),
    responses((status = 200, body = Connection), (status = 403), (status = 404),
        (status = 422, description = "invalid, or Login with Amazon refused the refresh token"),
        (status = 503, description = "Amazon or the key-encryption key is not configured, or Amazon cannot be reached")),
    security(("bearer" = [])))]
pub async fn reauthorize(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<Credentials>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let id = id.into_inner();
    let tenant = caller.tenant_id.clone();
    let lookup = id.clone();
    state
        .db
        .read(move |conn| {
            store::connections::get(conn, &tenant, &lookup)?
                .ok_or_else(|| AppError::not_found("connection"))
        })
        .await?;
    let (credentials, access, token) = check(&state, &id, &body.0.refresh_token).await?;
    let row = state
        .db
        .write(move |conn| {
            let mut row = store::connections::get(conn, &caller.tenant_id, &id)?
                .ok_or_else(|| AppError::not_found("connection"))?;
            let at = now();
            row.credentials = credentials;
            row.access_token = Some(access);
            row.access_expires_at =
                Some(at + chrono::Duration::seconds(token.expires_in.as_secs() as i64));
            row.status = ConnectionStatus::Active;
            row.last_error = None;
            row.updated_at = at;
            store::connections::update(conn, &row)?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Connection::from(&row)))
}

#[utoipa::path(delete, path = "/api/v1/inventory/connections/{id}", tag = "inventory",
    params(("id" = String, Path)),
    responses((status = 204, description = "its credentials and runs are gone; a running sync stops"),
        (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn disconnect(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let id = id.into_inner();
    let deleted = state
        .db
        .write(move |conn| store::connections::delete(conn, &caller.tenant_id, &id))
        .await?;
    if !deleted {
        return Err(AppError::not_found("connection"));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/inventory/connections/{id}/syncs", tag = "inventory",
    params(("id" = String, Path)),
    responses((status = 202, body = SyncRun), (status = 403), (status = 404),
        (status = 409, description = "a sync of it is running, or it needs new credentials")),
    security(("bearer" = [])))]
pub async fn start_sync(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let state: Arc<InventoryState> = state.into_inner();
    let run = sync::start(
        &state,
        &caller.tenant_id,
        &id.into_inner(),
        SyncTrigger::Manual,
        &caller.user_id,
    )
    .await?;
    Ok(HttpResponse::Accepted()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/inventory/syncs/{}", run.id),
        ))
        .json(SyncRun::from(&run)))
}

#[utoipa::path(get, path = "/api/v1/inventory/connections/{id}/syncs", tag = "inventory",
    params(("id" = String, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = SyncRunPage), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn runs(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
    page: web::Query<PageParams>,
) -> AppResult<HttpResponse> {
    let (limit, before) = (page.limit()?, page.after()?);
    let id = id.into_inner();
    let page = state
        .db
        .read(move |conn| {
            let connection = store::connections::get(conn, &caller.tenant_id, &id)?
                .ok_or_else(|| AppError::not_found("connection"))?;
            let rows = store::connections::runs(conn, &connection.id, before.as_deref(), limit)?;
            Ok(Page::from_rows(rows, limit, |r| r.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page.map(|r| SyncRun::from(&r))))
}

#[utoipa::path(get, path = "/api/v1/inventory/syncs/{id}", tag = "inventory",
    params(("id" = String, Path)),
    responses((status = 200, body = SyncRun), (status = 404)), security(("bearer" = [])))]
pub async fn run(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let row = state
        .db
        .read(move |conn| {
            store::connections::get_run(conn, &caller.tenant_id, &id)?
                .ok_or_else(|| AppError::not_found("sync run"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(SyncRun::from(&row)))
}
