//! `/tickets` and `/tickets/{id}`: create, read, list, update (PATCH/PUT with If-Match), delete.
//! Tenant users create, read and update their tenant's tickets; deleting and SLA overrides need
//! TENANT_ADMIN or `tickets:manage`.

use actix_web::{HttpRequest, HttpResponse, web};

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, now},
    http::{Caller, Page, ValidJson},
};

use super::{MANAGE, check_version, created, if_match, load, ticket_response};
use crate::{
    TicketsState, changes, events,
    listing::{self, ListQuery},
    model::*,
    store::{self, tickets::TicketRow},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tickets", web::get().to(list))
        .route("/tickets", web::post().to(create))
        .route("/tickets/{id}", web::get().to(get))
        .route("/tickets/{id}", web::patch().to(patch))
        .route("/tickets/{id}", web::put().to(replace))
        .route("/tickets/{id}", web::delete().to(delete));
}

/// A zone must be one of the tenant's.
fn check_zone(conn: &mut DbConnection, tenant_id: &str, zone: Option<&str>) -> AppResult<()> {
    let Some(zone) = zone.map(str::trim).filter(|z| !z.is_empty()) else {
        return Ok(());
    };
    let zones = store::zones::list(conn, tenant_id)?;
    if zones.iter().any(|z| z == zone) {
        Ok(())
    } else {
        Err(AppError::invalid(
            "zone",
            format!("must be one of this tenant's zones: {}", zones.join(", ")),
        ))
    }
}

#[utoipa::path(get, path = "/api/v1/tickets", tag = "tickets",
    params(
        ("status" = Option<String>, Query, description = "comma-separated statuses"),
        ("priority" = Option<String>, Query, description = "comma-separated priorities"),
        ("category" = Option<String>, Query, description = "comma-separated categories"),
        ("zone" = Option<String>, Query), ("team_id" = Option<String>, Query),
        ("assignee_id" = Option<String>, Query), ("sla_status" = Option<String>, Query),
        ("created_from" = Option<String>, Query, description = "RFC 3339, inclusive"),
        ("created_to" = Option<String>, Query, description = "RFC 3339, exclusive"),
        ("q" = Option<String>, Query, description = "text in title or description"),
        ("sort" = Option<String>, Query, description = "created_at, due_at, updated_at, priority, number; - for descending (default -created_at); relevance (with q): title matches first, then newest"),
        ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = TicketPage), (status = 422)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<TicketsState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let listing = query.parse()?;
    let at = now();
    let page = listing::load(&state.db, caller.tenant_id, listing, at).await?;
    let page: Page<Ticket> = page.map(|r| Ticket::new(&r, at));
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(post, path = "/api/v1/tickets", tag = "tickets", request_body = TicketFields,
    responses((status = 201, body = Ticket), (status = 403), (status = 422)), security(("bearer" = [])))]
pub async fn create(
    state: web::Data<TicketsState>,
    caller: Caller,
    body: ValidJson<TicketFields>,
) -> AppResult<HttpResponse> {
    let fields = body.0;
    if fields.sla_hours.is_some() {
        caller.require_permission(MANAGE)?;
    }
    let row = state
        .db
        .write(move |conn| {
            check_zone(conn, &caller.tenant_id, fields.zone.as_deref())?;
            let number = store::tickets::next_number(conn, &caller.tenant_id)?;
            let row =
                changes::new_ticket(&caller.tenant_id, number, &fields, &caller.user_id, now());
            store::tickets::insert(conn, &row)?;
            events::created(conn, &row, &caller.user_id)?;
            Ok(row)
        })
        .await?;
    Ok(ticket_response(
        created(format!("/api/v1/tickets/{}", row.id)),
        &row,
    ))
}

#[utoipa::path(get, path = "/api/v1/tickets/{id}", tag = "tickets",
    params(("id" = String, Path, description = "ticket id or number (CTT-000001)")),
    responses((status = 200, body = Ticket, headers(("ETag" = String))), (status = 404)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<TicketsState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let row = state
        .db
        .read(move |conn| load(conn, &caller.tenant_id, &id))
        .await?;
    Ok(ticket_response(HttpResponse::Ok(), &row))
}

/// Loads, changes with `apply`, checks permissions, saves with the change's events.
async fn update(
    state: web::Data<TicketsState>,
    caller: Caller,
    req: HttpRequest,
    id: String,
    apply: impl FnOnce(&mut TicketRow) -> AppResult<changes::Change> + Send + 'static,
) -> AppResult<HttpResponse> {
    let expected = if_match(&req)?;
    let row = state
        .db
        .write(move |conn| {
            let mut row = load(conn, &caller.tenant_id, &id)?;
            check_version(&row, &expected)?;
            let before = row.version;
            let change = apply(&mut row)?;
            if change.sla_override_changed {
                caller.require_permission(MANAGE)?;
            }
            if change.fields.contains(&"zone") {
                check_zone(conn, &caller.tenant_id, row.zone.as_deref())?;
            }
            if change.is_empty() {
                return Ok(row);
            }
            changes::touch(&mut row, now());
            if !store::tickets::save(conn, &row, before)? {
                return Err(AppError::stale(
                    "tickets.stale_version",
                    "the ticket changed while this update was applied; read it again",
                ));
            }
            events::changed(conn, &row, &change, &caller.user_id)?;
            if change.breach_to_announce {
                events::sla_breached(conn, &row, row.updated_at)?;
            }
            Ok(row)
        })
        .await?;
    Ok(ticket_response(HttpResponse::Ok(), &row))
}

#[utoipa::path(patch, path = "/api/v1/tickets/{id}", tag = "tickets", request_body = TicketPatch,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag from GET")),
    responses((status = 200, body = Ticket), (status = 404), (status = 409, description = "illegal status move"),
        (status = 412, description = "stale If-Match"), (status = 422)), security(("bearer" = [])))]
pub async fn patch(
    state: web::Data<TicketsState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    body: ValidJson<TicketPatch>,
) -> AppResult<HttpResponse> {
    let body = body.0;
    update(state, caller, req, id.into_inner(), move |row| {
        changes::patch_ticket(row, &body, now())
            .map_err(|e| AppError::Conflict(e).with_code("tickets.illegal_transition"))
    })
    .await
}

#[utoipa::path(put, path = "/api/v1/tickets/{id}", tag = "tickets", request_body = TicketFields,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag from GET")),
    responses((status = 200, body = Ticket), (status = 404), (status = 412), (status = 422)),
    security(("bearer" = [])))]
pub async fn replace(
    state: web::Data<TicketsState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    body: ValidJson<TicketFields>,
) -> AppResult<HttpResponse> {
    let body = body.0;
    update(state, caller, req, id.into_inner(), move |row| {
        Ok(changes::replace(row, &body, now()))
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/tickets/{id}", tag = "tickets",
    params(("id" = String, Path)),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<TicketsState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let id = id.into_inner();
    state
        .db
        .write(move |conn| {
            let mut row = load(conn, &caller.tenant_id, &id)?;
            let before = row.version;
            let at = now();
            row.deleted_at = Some(at);
            changes::touch(&mut row, at);
            if !store::tickets::save(conn, &row, before)? {
                return Err(AppError::stale(
                    "tickets.stale_version",
                    "the ticket changed meanwhile; read it again",
                ));
            }
            events::deleted(conn, &row, &caller.user_id)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
