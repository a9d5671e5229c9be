//! Gmail connections: `POST /connections/gmail/authorize` starts a consent (Google OAuth 2.0,
//! PKCE S256, a random state bound to the caller) and answers where to send the seller; the
//! app page Google sends them back to posts the `code` and `state` to
//! `POST /connections/gmail/callback` with the same caller's credential, which exchanges the
//! code and keeps the mailbox's refresh token sealed. `POST /connections/{id}/mail-scans`
//! reads the mailbox now (it is also read every `google.scan_interval_secs`).

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use validator::Validate;

use agora_shared::{
    AppError, AppResult,
    db::{now, utc},
    http::{Caller, ValidJson},
};

use super::{MANAGE, created, load_connection};
use crate::{
    InventoryState,
    domain::{ConnectionStatus, Provider},
    google::GoogleError,
    mail::{self, MailScanReport},
    model::Connection,
    store::{self, connections::ConnectionRow, gmail::OAuthStateRow},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/connections/gmail/authorize", web::post().to(authorize))
        .route("/connections/gmail/callback", web::post().to(callback))
        .route("/connections/{id}/mail-scans", web::post().to(scan));
}

/// Where to send the seller to consent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Consent {
    /// Google's consent page for this application, Gmail read-only, offline access.
    pub authorization_url: String,
    /// The consent must come back (callback) before this.
    pub expires_at: DateTime<Utc>,
}

/// What Google's redirect brought back to the app page.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Callback {
    #[validate(length(min = 1, max = 512, message = "must be 1 to 512 characters"))]
    pub state: String,
    #[validate(length(min = 1, max = 2048, message = "must be 1 to 2048 characters"))]
    pub code: String,
}

fn hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

fn google_refused(e: GoogleError) -> AppError {
    match e {
        GoogleError::InvalidGrant(_) => AppError::invalid(
            "code",
            "Google refused it (expired, used, or not from this consent)",
        )
        .with_code("inventory.invalid_grant"),
        GoogleError::NotConfigured => {
            AppError::Unavailable(e.to_string()).with_code("inventory.google_unconfigured")
        }
        other => AppError::Unavailable(other.to_string()),
    }
}

#[utoipa::path(post, path = "/api/v1/inventory/connections/gmail/authorize", tag = "inventory",
    responses((status = 201, body = Consent), (status = 403),
        (status = 503, description = "Google or the key-encryption key is not configured")),
    security(("bearer" = [])))]
pub async fn authorize(
    state: web::Data<InventoryState>,
    caller: Caller,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let sealer = state.sealer()?;
    let consent = state.google.consent().map_err(google_refused)?;
    let at = now();
    let expires_at = at + chrono::Duration::seconds(state.config.google.consent_ttl_secs as i64);
    let state_hash = hash(&consent.state);
    let row = OAuthStateRow {
        verifier: sealer.seal(consent.verifier.as_bytes(), &state_hash),
        state_hash,
        tenant_id: caller.tenant_id.clone(),
        user_id: caller.user_id.clone(),
        provider: Provider::Gmail.as_str().into(),
        expires_at,
        created_at: at,
    };
    state
        .db
        .write(move |conn| store::gmail::begin(conn, &row, at))
        .await?;
    Ok(HttpResponse::Created().json(Consent {
        authorization_url: consent.url,
        expires_at: utc(expires_at),
    }))
}

#[utoipa::path(post, path = "/api/v1/inventory/connections/gmail/callback", tag = "inventory",
    request_body = Callback,
    responses((status = 201, body = Connection, description = "the mailbox is connected (or its connection authorized again)"),
        (status = 403),
        (status = 422, description = "unknown, used, expired or another caller's state; Google refused the code; or no refresh token came back"),
        (status = 503, description = "Google cannot be reached now")),
    security(("bearer" = [])))]
pub async fn callback(
    state: web::Data<InventoryState>,
    caller: Caller,
    body: ValidJson<Callback>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let sealer = state.sealer()?.clone();
    let state_hash = hash(&body.0.state);
    let taken = {
        let (state_hash, tenant, user) = (
            state_hash.clone(),
            caller.tenant_id.clone(),
            caller.user_id.clone(),
        );
        state
            .db
            .write(move |conn| store::gmail::take(conn, &state_hash, &tenant, &user))
            .await?
    };
    // Only the caller who started it, within its time, once.
    let Some(consent) = taken.filter(|c| c.expires_at > now()) else {
        return Err(AppError::invalid(
            "state",
            "no consent of yours is waiting with this state (unknown, used or expired): authorize again",
        )
        .with_code("inventory.unknown_state"));
    };
    let verifier = sealer
        .open_text(&consent.verifier, &state_hash)
        .map_err(|e| anyhow::anyhow!("a consent's verifier does not open: {e}"))?;
    let tokens = state
        .google
        .exchange(&body.0.code, &verifier)
        .await
        .map_err(google_refused)?;
    let Some(refresh_token) = tokens.refresh_token.clone() else {
        return Err(AppError::invalid(
            "code",
            "Google gave no refresh token (offline access was not granted): authorize again",
        )
        .with_code("inventory.no_refresh_token"));
    };
    let email = state
        .google
        .profile(&tokens.access_token)
        .await
        .map_err(google_refused)?;
    let at = now();
    let id = uuid::Uuid::now_v7().to_string();
    let new = ConnectionRow {
        id: id.clone(),
        tenant_id: caller.tenant_id.clone(),
        provider: Provider::Gmail,
        account: email.chars().take(320).collect(),
        status: ConnectionStatus::Active,
        credentials: String::new(),
        access_token: None,
        access_expires_at: Some(at + chrono::Duration::seconds(tokens.expires_in.as_secs() as i64)),
        webhook_secret: None,
        last_error: None,
        last_synced_at: None,
        created_by: caller.user_id.clone(),
        created_at: at,
        updated_at: at,
    };
    let (access, refresh) = (tokens.access_token.clone(), refresh_token.clone());
    let (row, made) = state
        .db
        .write(move |conn| {
            // A mailbox the tenant has connected takes the new grant (consent again after
            // `reauth_required`); tokens are sealed for the connection they belong to.
            let existing = store::connections::list(conn, &new.tenant_id)?
                .into_iter()
                .find(|c| c.provider == Provider::Gmail && c.account == new.account);
            let mut row = existing.clone().unwrap_or(new);
            row.credentials = sealer.seal(refresh.as_bytes(), &row.id);
            row.access_token = Some(sealer.seal(access.as_bytes(), &row.id));
            row.access_expires_at =
                Some(at + chrono::Duration::seconds(tokens.expires_in.as_secs() as i64));
            row.status = ConnectionStatus::Active;
            row.last_error = None;
            row.updated_at = at;
            if existing.is_some() {
                store::connections::update(conn, &row)?;
            } else {
                store::connections::insert(conn, &row)?;
            }
            Ok((row, existing.is_none()))
        })
        .await?;
    let answer = Connection::from(&row);
    Ok(if made {
        created(format!("/api/v1/inventory/connections/{id}")).json(answer)
    } else {
        HttpResponse::Created().json(answer)
    })
}

#[utoipa::path(post, path = "/api/v1/inventory/connections/{id}/mail-scans", tag = "inventory",
    params(("id" = String, Path)),
    responses((status = 200, body = MailScanReport), (status = 403), (status = 404),
        (status = 409, description = "not a Gmail connection, or its authorization was refused"),
        (status = 503, description = "Google cannot be reached now")),
    security(("bearer" = [])))]
pub async fn scan(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let id = id.into_inner();
    let connection = state
        .db
        .read(move |conn| load_connection(conn, &caller.tenant_id, &id))
        .await?;
    let state: Arc<InventoryState> = state.into_inner();
    let report = mail::scan(&state, &connection).await?;
    Ok(HttpResponse::Ok().json(report))
}
