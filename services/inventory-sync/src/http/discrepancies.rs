//! `/inventory/discrepancies`: what scans found, newest first; a person moves a live one to
//! investigating, escalated or resolved.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, now},
    http::{Caller, Page, PageParams, ValidJson},
};

use super::{MANAGE, choice, until_settled};
use crate::{
    InventoryState,
    domain::{self, DiscrepancyStatus},
    events,
    model::*,
    store::{
        self,
        discrepancies::{DiscrepancyFilter, DiscrepancyRow},
    },
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/discrepancies", web::get().to(list))
        .route("/discrepancies/{id}", web::get().to(get))
        .route("/discrepancies/{id}", web::patch().to(update));
}

#[derive(Debug, Deserialize)]
pub struct DiscrepancyQuery {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub sku: Option<String>,
    #[serde(flatten)]
    pub page: PageParams,
}

#[utoipa::path(get, path = "/api/v1/inventory/discrepancies", tag = "inventory",
    params(("status" = Option<DiscrepancyStatus>, Query), ("severity" = Option<crate::domain::Severity>, Query),
        ("sku" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = DiscrepancyPage), (status = 422)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<InventoryState>,
    caller: Caller,
    query: web::Query<DiscrepancyQuery>,
) -> AppResult<HttpResponse> {
    let query = query.into_inner();
    let (limit, before) = (query.page.limit()?, query.page.after()?);
    let filter = DiscrepancyFilter {
        status: choice("status", query.status.as_deref())?,
        severity: choice("severity", query.severity.as_deref())?,
        sku: query.sku,
        item_id: None,
    };
    let page = state
        .db
        .read(move |conn| {
            let rows = store::discrepancies::list(
                conn,
                &caller.tenant_id,
                &filter,
                before.as_deref(),
                limit,
            )?;
            Ok(Page::from_rows(rows, limit, |r| r.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page.map(|r| Discrepancy::from(&r))))
}

#[utoipa::path(get, path = "/api/v1/inventory/discrepancies/{id}", tag = "inventory",
    params(("id" = String, Path)),
    responses((status = 200, body = Discrepancy), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let row = state
        .db
        .read(move |conn| {
            store::discrepancies::get(conn, &caller.tenant_id, &id)?
                .ok_or_else(|| AppError::not_found("discrepancy"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(Discrepancy::from(&row)))
}

#[utoipa::path(patch, path = "/api/v1/inventory/discrepancies/{id}", tag = "inventory",
    request_body = DiscrepancyUpdate, params(("id" = String, Path)),
    responses((status = 200, body = Discrepancy), (status = 403), (status = 404),
        (status = 409, description = "not a move its status allows, or it moved meanwhile"), (status = 422)),
    security(("bearer" = [])))]
pub async fn update(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<DiscrepancyUpdate>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let id = id.into_inner();
    let change = body.0;
    let row = state
        .db
        .write(move |conn| {
            // A change that lost to a concurrent one (a person, a scan) reads it again.
            until_settled(conn, |conn| move_discrepancy(conn, &caller, &id, &change))?.ok_or_else(
                || {
                    AppError::Conflict("the discrepancy keeps changing; read it again".into())
                        .with_code("inventory.discrepancy_changed")
                },
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(Discrepancy::from(&row)))
}

/// Applies `change`; `None` when another change moved the discrepancy first.
fn move_discrepancy(
    conn: &mut DbConnection,
    caller: &Caller,
    id: &str,
    change: &DiscrepancyUpdate,
) -> AppResult<Option<DiscrepancyRow>> {
    let mut d = store::discrepancies::get(conn, &caller.tenant_id, id)?
        .ok_or_else(|| AppError::not_found("discrepancy"))?;
    let from = d.status;
    if from == change.status && change.note.is_none() {
        return Ok(Some(d));
    }
    if from != change.status && !domain::discrepancy_may_move(from, change.status) {
        return Err(AppError::Conflict(format!(
            "a discrepancy cannot go from {from} to {}",
            change.status
        ))
        .with_code("inventory.discrepancy_transition"));
    }
    let at = now();
    d.status = change.status;
    if change.note.is_some() {
        d.note = change.note.clone();
    }
    d.updated_at = at;
    if !d.status.is_live() && d.live.is_some() {
        d.live = None;
        d.resolved_at = Some(at);
    }
    if !store::discrepancies::save(conn, &mut d)? {
        return Ok(None);
    }
    if from != d.status {
        if d.status == DiscrepancyStatus::Resolved {
            events::resolved(conn, &d, "manual", &caller.user_id)?;
        } else {
            events::discrepancy_moved(conn, &d, from.as_str(), &caller.user_id)?;
        }
    }
    Ok(Some(d))
}
