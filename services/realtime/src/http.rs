//! HTTP routes: connection tokens, the native WebSocket, Socket.IO, and the admin API
//! (publish, presence, history).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use agora_shared::{
    AppError, AppResult,
    http::{Caller, Credential, ValidJson},
};

use crate::{
    RealtimeState,
    channel::{self, Key},
    hub::Position,
    native,
};

/// What publishing and reading channels over HTTP takes (tenant admins have it).
pub const MANAGE: &str = "realtime:manage";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/realtime/tokens", web::post().to(create_token))
        .route("/api/v1/realtime/ws", web::get().to(native::ws))
        .route("/api/v1/realtime/publish", web::post().to(publish))
        .route(
            "/api/v1/realtime/channels/{channel}/presence",
            web::get().to(presence),
        )
        .route(
            "/api/v1/realtime/channels/{channel}/history",
            web::get().to(history),
        )
        .configure(crate::socketio::routes);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenOut {
    /// Single-use: send it in the first frame (`{"connect": {"token"}}`) or Socket.IO's
    /// `auth: {token}`.
    pub token: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
}

#[utoipa::path(post, path = "/api/v1/realtime/tokens", tag = "realtime",
    responses((status = 201, description = "a single-use connection token, for clients that cannot set headers on a WebSocket", body = TokenOut),
        (status = 401), (status = 403, description = "an API key connects with itself")),
    security(("bearer" = [])))]
pub async fn create_token(
    state: web::Data<RealtimeState>,
    caller: Caller,
) -> AppResult<HttpResponse> {
    caller.require_session("a connection token")?;
    let Credential::Jwt { token, .. } = &caller.credential else {
        return Err(AppError::Forbidden(
            "a connection token needs a signed-in user".into(),
        ));
    };
    // The access token's revocation check, kept with the connection token.
    let (_, check) = state
        .authenticator
        .verifier
        .verify_with(token, agora_shared::tokens::Revocation::Defer)
        .await?;
    let check = check.ok_or_else(|| AppError::Internal(anyhow::anyhow!("no revocation check")))?;
    let ttl = state.config.connection_token_ttl_secs;
    let expires_at = agora_shared::db::now() + chrono::Duration::seconds(ttl as i64);
    let token = state
        .db
        .write(move |conn| crate::store::issue(conn, &caller, &check, expires_at))
        .await?;
    Ok(HttpResponse::Created().json(TokenOut {
        token,
        expires_in: ttl,
    }))
}

#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct PublishIn {
    /// `conversation:<id>`, `ticket:<id>`, `session:<id>`, `user:<id>`, `tenant` or `dashboard`.
    pub channel: String,
    /// The event name Socket.IO clients receive it as (`[a-z][a-z0-9_.:-]*`, at most 64).
    pub event: String,
    /// Any JSON value (at most `realtime.max_message_bytes` serialized).
    #[schema(value_type = Object)]
    pub data: Value,
    /// Another tenant's channel: platform admins only.
    pub tenant_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedOut {
    pub offset: u64,
    pub epoch: String,
}

/// The problem when the engine cannot answer (Redis unreachable): 503, retry.
pub fn unavailable(err: anyhow::Error) -> AppError {
    tracing::warn!(error = %format!("{err:#}"), "realtime engine failed");
    AppError::Unavailable("channel state is unavailable; retry".into())
}

/// Deepest nesting of a publication's data (the fan-out between replicas wraps it twice more
/// and must still read it back).
pub const MAX_DEPTH: usize = 32;

/// Whether `value` nests at most `max` levels.
pub fn shallow(value: &Value, max: usize) -> bool {
    let mut stack = vec![(value, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        if depth > max {
            return false;
        }
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(fields) => stack.extend(fields.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    true
}

/// Checks an event name.
pub fn check_event(event: &str) -> Result<(), String> {
    let ok = !event.is_empty()
        && event.len() <= 64
        && event.as_bytes()[0].is_ascii_lowercase()
        && event.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err("must be 1 to 64 of a-z, 0-9, '_', '.', ':' and '-', starting with a letter".into())
    }
}

/// What a history read after a position answers when that position is lost.
pub const LOST_POSITION: &str =
    "the publications after that position are no longer all kept (or the epoch changed)";

/// A publication's data as a manager or a service gives it: `event` a valid name, `data`
/// small and shallow enough; the problem names `data_field` otherwise.
pub fn check_publication(
    config: &crate::RealtimeConfig,
    event: &str,
    data: &Value,
    data_field: &str,
) -> AppResult<()> {
    check_event(event).map_err(|e| AppError::invalid("event", e))?;
    if !shallow(data, MAX_DEPTH) {
        return Err(AppError::invalid(
            data_field,
            format!("nests deeper than {MAX_DEPTH} levels"),
        ));
    }
    let size = serde_json::to_vec(data).map_or(0, |v| v.len());
    if size > config.max_message_bytes {
        return Err(AppError::invalid(
            data_field,
            format!("is {size} bytes; at most {}", config.max_message_bytes),
        ));
    }
    Ok(())
}

/// The channel `name` of the tenant a manager acts in (`tenant` empty: the caller's own).
pub fn managed(caller: &Caller, tenant: &str, name: &str) -> AppResult<Key> {
    caller.require_permission(MANAGE)?;
    let tenant = caller.tenant_to_read(tenant, "channels")?;
    channel::parse(name).map_err(|e| AppError::invalid("channel", e))?;
    Ok(Key::new(&tenant, name))
}

#[utoipa::path(post, path = "/api/v1/realtime/publish", tag = "realtime", request_body = PublishIn,
    responses((status = 201, description = "published: kept in the channel's history and pushed to its subscribers", body = PublishedOut),
        (status = 403, description = "needs TENANT_ADMIN or realtime:manage"), (status = 422)),
    security(("bearer" = [])))]
pub async fn publish(
    state: web::Data<RealtimeState>,
    caller: Caller,
    body: ValidJson<PublishIn>,
) -> AppResult<HttpResponse> {
    let body = body.0;
    let key = managed(
        &caller,
        body.tenant_id.as_deref().unwrap_or_default(),
        &body.channel,
    )?;
    check_publication(&state.config, &body.event, &body.data, "data")?;
    let (publication, epoch) = state
        .hub
        .engine
        .publish(&key, &body.event, body.data, None)
        .await
        .map_err(unavailable)?;
    Ok(HttpResponse::Created().json(PublishedOut {
        offset: publication.offset,
        epoch,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TenantParam {
    /// Another tenant's channel: platform admins only.
    pub tenant_id: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/realtime/channels/{channel}/presence", tag = "realtime",
    params(("channel" = String, Path, description = "the channel's name"), TenantParam),
    responses((status = 200, description = "who is connected to the channel now"),
        (status = 403), (status = 422)),
    security(("bearer" = [])))]
pub async fn presence(
    state: web::Data<RealtimeState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<TenantParam>,
) -> AppResult<HttpResponse> {
    let key = managed(
        &caller,
        query.tenant_id.as_deref().unwrap_or_default(),
        &path,
    )?;
    let clients = state.hub.engine.presence(&key).await.map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(json!({ "clients": clients })))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryParams {
    /// Another tenant's channel: platform admins only.
    pub tenant_id: Option<String>,
    /// Publications after this offset of `epoch` (both or neither).
    pub since_offset: Option<u64>,
    pub epoch: Option<String>,
    /// At most this many (default and maximum: `realtime.history_size`).
    pub limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/realtime/channels/{channel}/history", tag = "realtime",
    params(("channel" = String, Path, description = "the channel's name"), HistoryParams),
    responses((status = 200, description = "the channel's kept publications, oldest first, and its position"),
        (status = 403), (status = 409, description = "the publications after that position are no longer all kept"),
        (status = 422)),
    security(("bearer" = [])))]
pub async fn history(
    state: web::Data<RealtimeState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<HistoryParams>,
) -> AppResult<HttpResponse> {
    let q = query.into_inner();
    let key = managed(&caller, q.tenant_id.as_deref().unwrap_or_default(), &path)?;
    let since = match (q.since_offset, q.epoch) {
        (None, None) => None,
        (Some(offset), Some(epoch)) => Some(Position { offset, epoch }),
        _ => {
            return Err(AppError::invalid(
                "since_offset",
                "since_offset and epoch go together",
            ));
        }
    };
    let limit = state.config.history_limit(q.limit);
    let h = state
        .hub
        .engine
        .history(&key, since.as_ref(), limit)
        .await
        .map_err(unavailable)?;
    if since.is_some() && !h.complete {
        return Err(AppError::Conflict(LOST_POSITION.into()));
    }
    let publications: Vec<Value> = h
        .publications
        .iter()
        .map(native::publication_json)
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "publications": publications,
        "offset": h.position.offset,
        "epoch": h.position.epoch,
    })))
}
