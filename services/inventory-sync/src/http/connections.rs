//! `/inventory/connections`: the tenant's Amazon and Stripe accounts, and the Amazon ones'
//! syncs. A refresh token is checked with Login with Amazon, a Stripe key with Stripe, before
//! it is kept, sealed; credentials and webhook secrets are never returned or logged.
//! Reading needs a tenant user; connecting, syncing and disconnecting TENANT_ADMIN or
//! `inventory:manage`.

use std::sync::Arc;

use actix_web::{HttpResponse, web};

use agora_shared::{
    AppError, AppResult,
    db::now,
    http::{Caller, Page, PageParams, ValidJson},
};

use super::{MANAGE, created, load_connection};
use crate::{
    InventoryState,
    amazon::{AccessToken, AmazonError},
    domain::{ConnectionStatus, Provider, SyncTrigger},
    google::GoogleError,
    model::*,
    store::{self, connections::ConnectionRow},
    stripe::StripeError,
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
        .route("/connections/{id}/events", web::get().to(events))
        .route("/syncs/{id}", web::get().to(run));
}

fn duplicate() -> AppError {
    AppError::Conflict("the tenant has this account connected already".into())
        .with_code("inventory.duplicate_connection")
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
    let sealer = state.sealer()?;
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
        (status = 409, description = "the tenant has this marketplace or Stripe account connected"),
        (status = 422, description = "invalid, or the provider refused the refresh token or key"),
        (status = 503, description = "the provider or the key-encryption key is not configured, or the provider cannot be reached")),
    security(("bearer" = [])))]
pub async fn connect(
    state: web::Data<InventoryState>,
    caller: Caller,
    body: ValidJson<NewConnection>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let id = uuid::Uuid::now_v7().to_string();
    let at = now();
    let mut row = ConnectionRow {
        id: id.clone(),
        tenant_id: caller.tenant_id.clone(),
        provider: Provider::Amazon,
        account: String::new(),
        status: ConnectionStatus::Active,
        credentials: String::new(),
        access_token: None,
        access_expires_at: None,
        webhook_secret: None,
        last_error: None,
        last_synced_at: None,
        created_by: caller.user_id.clone(),
        created_at: at,
        updated_at: at,
    };
    let new = body.0;
    let only = |given: &[(&str, bool)], required: &[&str]| -> AppResult<()> {
        for &(field, present) in given {
            match (present, required.contains(&field)) {
                (true, false) => {
                    return Err(AppError::invalid(
                        field,
                        format!("a {} connection takes no {field}", new.provider),
                    ));
                }
                (false, true) => return Err(AppError::invalid(field, "is required")),
                _ => {}
            }
        }
        Ok(())
    };
    let given = [
        ("marketplace_id", new.marketplace_id.is_some()),
        ("refresh_token", new.refresh_token.is_some()),
        ("secret_key", new.secret_key.is_some()),
        ("webhook_secret", new.webhook_secret.is_some()),
    ];
    match new.provider {
        Provider::Amazon => {
            only(&given, &["marketplace_id", "refresh_token"])?;
            let marketplace = new.marketplace_id.clone().unwrap_or_default();
            let refresh_token = new.refresh_token.clone().unwrap_or_default();
            // A marketplace the tenant has is refused before Amazon is asked anything.
            refuse_if_connected(&state, &caller.tenant_id, Provider::Amazon, &marketplace).await?;
            let (credentials, access, token) = check(&state, &id, &refresh_token).await?;
            row.account = marketplace;
            row.credentials = credentials;
            row.access_token = Some(access);
            row.access_expires_at =
                Some(at + chrono::Duration::seconds(token.expires_in.as_secs() as i64));
        }
        Provider::Stripe => {
            // The webhook secret is optional: the endpoint needs the connection's path first.
            let given = &given[..3];
            only(given, &["secret_key"])?;
            let secret_key = new.secret_key.clone().unwrap_or_default();
            let sealer = state.sealer()?;
            let account = state
                .stripe
                .account(&secret_key)
                .await
                .map_err(refused_key)?;
            refuse_if_connected(&state, &caller.tenant_id, Provider::Stripe, &account.id).await?;
            row.provider = Provider::Stripe;
            row.account = account.id;
            row.credentials = sealer.seal(secret_key.as_bytes(), &id);
            row.webhook_secret = new
                .webhook_secret
                .as_ref()
                .map(|s| sealer.seal(s.as_bytes(), &id));
        }
        Provider::Gmail => return Err(consent_instead("provider")),
    }
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

/// A mailbox is connected by the seller's consent at Google, never with a pasted token.
fn consent_instead(field: &str) -> AppError {
    AppError::invalid(
        field,
        "a Gmail mailbox is connected (and authorized again) through POST /api/v1/inventory/connections/gmail/authorize",
    )
    .with_code("inventory.consent_required")
}

/// 409 when the tenant has `account` at `provider` connected.
async fn refuse_if_connected(
    state: &InventoryState,
    tenant_id: &str,
    provider: Provider,
    account: &str,
) -> AppResult<()> {
    let (tenant, account) = (tenant_id.to_owned(), account.to_owned());
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
    Ok(())
}

/// What Stripe said of a secret key, as an answer to the caller.
fn refused_key(error: StripeError) -> AppError {
    match error {
        StripeError::Unauthorized(_) => AppError::invalid(
            "secret_key",
            "Stripe refused it (rolled, deleted, or mistyped)",
        )
        .with_code("inventory.invalid_key"),
        StripeError::Refused { message, .. } => AppError::invalid(
            "secret_key",
            format!("Stripe would not show the key's account: {message}"),
        )
        .with_code("inventory.invalid_key"),
        StripeError::Unavailable(why) => {
            AppError::Unavailable(format!("Stripe cannot be reached now: {why}"))
        }
    }
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
        .read(move |conn| load_connection(conn, &caller.tenant_id, &id))
        .await?;
    Ok(HttpResponse::Ok().json(Connection::from(&row)))
}

#[utoipa::path(put, path = "/api/v1/inventory/connections/{id}/credentials", tag = "inventory",
    request_body = Credentials, params(("id" = String, Path)),
    responses((status = 200, body = Connection), (status = 403), (status = 404),
        (status = 422, description = "invalid, not the connection's provider's credentials, or the provider refused them"),
        (status = 503, description = "the provider or the key-encryption key is not configured, or the provider cannot be reached")),
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
    let current = state
        .db
        .read(move |conn| load_connection(conn, &tenant, &lookup))
        .await?;
    let new = body.0;
    let not_for = |field: &str| {
        AppError::invalid(
            field,
            format!("a {} connection takes no {field}", current.provider),
        )
    };
    // What to write: the sealed credentials, access token and webhook secret (`None`: keep).
    let mut credentials = None;
    let mut access = None;
    let mut webhook_secret = None;
    match current.provider {
        Provider::Amazon => {
            if new.secret_key.is_some() {
                return Err(not_for("secret_key"));
            }
            if new.webhook_secret.is_some() {
                return Err(not_for("webhook_secret"));
            }
            let Some(refresh_token) = &new.refresh_token else {
                return Err(AppError::invalid("refresh_token", "is required"));
            };
            let (sealed, token, answer) = check(&state, &id, refresh_token).await?;
            credentials = Some(sealed);
            access = Some((token, answer.expires_in));
        }
        Provider::Stripe => {
            if new.refresh_token.is_some() {
                return Err(not_for("refresh_token"));
            }
            if new.secret_key.is_none() && new.webhook_secret.is_none() {
                return Err(AppError::invalid(
                    "secret_key",
                    "give a secret_key, a webhook_secret or both",
                ));
            }
            let sealer = state.sealer()?;
            if let Some(key) = &new.secret_key {
                let account = state.stripe.account(key).await.map_err(refused_key)?;
                if account.id != current.account {
                    return Err(AppError::invalid(
                        "secret_key",
                        format!(
                            "it is account {}'s key; this connection is {}'s",
                            account.id, current.account
                        ),
                    )
                    .with_code("inventory.other_account"));
                }
                credentials = Some(sealer.seal(key.as_bytes(), &id));
            }
            webhook_secret = new
                .webhook_secret
                .as_ref()
                .map(|s| sealer.seal(s.as_bytes(), &id));
        }
        Provider::Gmail => return Err(consent_instead("refresh_token")),
    }
    let row = state
        .db
        .write(move |conn| {
            let mut row = load_connection(conn, &caller.tenant_id, &id)?;
            let at = now();
            if let Some(sealed) = credentials {
                row.credentials = sealed;
                row.status = ConnectionStatus::Active;
                row.last_error = None;
            }
            if let Some((token, expires_in)) = access {
                row.access_token = Some(token);
                row.access_expires_at =
                    Some(at + chrono::Duration::seconds(expires_in.as_secs() as i64));
            }
            if webhook_secret.is_some() {
                row.webhook_secret = webhook_secret;
            }
            row.updated_at = at;
            store::connections::update(conn, &row)?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Connection::from(&row)))
}

#[utoipa::path(delete, path = "/api/v1/inventory/connections/{id}", tag = "inventory",
    params(("id" = String, Path)),
    responses((status = 204, description = "its credentials and runs are gone; a running sync stops; a mailbox's grant is revoked at Google"),
        (status = 403), (status = 404),
        (status = 409, description = "filed Stripe claims of the connection wait for Stripe's news"),
        (status = 503, description = "Google could not revoke the mailbox's grant now; it stays connected")),
    security(("bearer" = [])))]
pub async fn disconnect(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let id = id.into_inner();
    let (tenant, lookup) = (caller.tenant_id.clone(), id.clone());
    let row = state
        .db
        .read(move |conn| load_connection(conn, &tenant, &lookup))
        .await?;
    if row.provider == Provider::Gmail {
        // The seller's grant ends at Google before we forget it (a grant already refused
        // needs no revoking).
        let refresh_token = state
            .sealer()?
            .open_text(&row.credentials, &row.id)
            .unwrap_or_default();
        let revoked = if refresh_token.is_empty() {
            Err(GoogleError::Failed("its sealed grant does not open".into()))
        } else {
            state.google.revoke(&refresh_token).await
        };
        match revoked {
            Ok(()) => {}
            // Google could not be reached: the grant is not given up on.
            Err(e @ GoogleError::Unavailable(_)) => {
                return Err(AppError::Unavailable(format!(
                    "the mailbox stays connected: {e}; try again"
                ))
                .with_code("inventory.revoke_failed"));
            }
            // Google will never take it (not configured, refused): forgotten here anyway; the
            // seller can remove the application in their Google account.
            Err(e) => tracing::warn!(connection = %row.id, error = %e,
                "the mailbox's grant could not be revoked at Google; disconnected anyway"),
        }
    }
    let stripe = row.provider == Provider::Stripe;
    let deleted = state
        .db
        .write(move |conn| {
            if stripe {
                let open = store::claims::open_on_connection(conn, &id)?;
                if open > 0 {
                    return Err(AppError::Conflict(format!(
                        "{open} filed Stripe claim(s) of this connection wait for Stripe's news, which reaches them through it"
                    ))
                    .with_code("inventory.connection_in_use"));
                }
            }
            store::connections::delete(conn, &caller.tenant_id, &id)
        })
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
            let connection = load_connection(conn, &caller.tenant_id, &id)?;
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

#[utoipa::path(get, path = "/api/v1/inventory/connections/{id}/events", tag = "inventory",
    params(("id" = String, Path)),
    responses((status = 200, body = StripeEventList, description = "the last 100 Stripe events its webhook took, newest first, with what each did"),
        (status = 404)),
    security(("bearer" = [])))]
pub async fn events(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let rows = state
        .db
        .read(move |conn| {
            let connection = load_connection(conn, &caller.tenant_id, &id)?;
            store::stripe_events::list(conn, &connection.id, 100)
        })
        .await?;
    Ok(HttpResponse::Ok().json(StripeEventList {
        items: rows.iter().map(StripeEvent::from).collect(),
    }))
}
