//! `/inventory/items`: the tenant's items, their CSV import, their quantity history and their
//! discrepancies.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use agora_shared::{
    AppError, AppResult,
    db::now,
    http::{Caller, Page, PageParams, ValidJson},
};

use super::{MANAGE, created, flag, load_item};
use crate::{
    InventoryState, import,
    model::*,
    stock,
    store::{self, discrepancies::DiscrepancyFilter, items::ItemFilter},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/items", web::get().to(list))
        .route("/items", web::post().to(create))
        .route("/items/import", web::post().to(import_csv))
        .route("/items/{id}", web::get().to(get))
        .route("/items/{id}", web::patch().to(patch))
        .route("/items/{id}", web::delete().to(delete))
        .route("/items/{id}/changes", web::get().to(changes))
        .route("/items/{id}/discrepancies", web::get().to(discrepancies));
}

#[derive(Debug, Deserialize)]
pub struct ItemQuery {
    /// Exactly this SKU.
    pub sku: Option<String>,
    /// SKUs starting with this (case-sensitive).
    pub sku_prefix: Option<String>,
    /// Only items whose fulfillable quantity is at or below their reorder point.
    pub needs_reorder: Option<String>,
    #[serde(flatten)]
    pub page: PageParams,
}

#[utoipa::path(get, path = "/api/v1/inventory/items", tag = "inventory",
    params(("sku" = Option<String>, Query), ("sku_prefix" = Option<String>, Query),
        ("needs_reorder" = Option<bool>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ItemPage), (status = 422)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<InventoryState>,
    caller: Caller,
    query: web::Query<ItemQuery>,
) -> AppResult<HttpResponse> {
    let query = query.into_inner();
    let (limit, after) = (query.page.limit()?, query.page.after()?);
    let filter = ItemFilter {
        sku: query.sku,
        sku_prefix: query.sku_prefix.filter(|p| !p.is_empty()),
        needs_reorder: flag("needs_reorder", query.needs_reorder.as_deref())?,
    };
    let page = state
        .db
        .read(move |conn| {
            let rows =
                store::items::list(conn, &caller.tenant_id, &filter, after.as_deref(), limit)?;
            Ok(Page::from_rows(rows, limit, |r| r.sku.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page.map(|r| Item::from(&r))))
}

#[utoipa::path(post, path = "/api/v1/inventory/items", tag = "inventory", request_body = ItemFields,
    responses((status = 201, body = Item), (status = 403), (status = 409, description = "the SKU exists"),
        (status = 422)), security(("bearer" = [])))]
pub async fn create(
    state: web::Data<InventoryState>,
    caller: Caller,
    body: ValidJson<ItemFields>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let item = stock::new_item(
        &caller.tenant_id,
        &body.0,
        &state.config.default_currency,
        now(),
    )?;
    let saved = item.clone();
    state
        .db
        .write(move |conn| stock::create(conn, &saved, "create", &caller.user_id))
        .await?;
    Ok(created(format!("/api/v1/inventory/items/{}", item.id)).json(Item::from(&item)))
}

#[utoipa::path(get, path = "/api/v1/inventory/items/{id}", tag = "inventory",
    params(("id" = String, Path, description = "item id or SKU")),
    responses((status = 200, body = Item), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let row = state
        .db
        .read(move |conn| load_item(conn, &caller.tenant_id, &id))
        .await?;
    Ok(HttpResponse::Ok().json(Item::from(&row)))
}

#[utoipa::path(patch, path = "/api/v1/inventory/items/{id}", tag = "inventory", request_body = ItemFields,
    params(("id" = String, Path, description = "item id or SKU"),
        ("If-Match" = Option<String>, Header, description = "the item's version, as `\"7\"`")),
    responses((status = 200, body = Item), (status = 400), (status = 403), (status = 404),
        (status = 409, description = "the new SKU exists"),
        (status = 412, description = "the item changed since that version"), (status = 422)),
    security(("bearer" = [])))]
pub async fn patch(
    state: web::Data<InventoryState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    body: ValidJson<ItemFields>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let expected = agora_shared::http::if_match(&req)?;
    let id = id.into_inner();
    let fields = body.0;
    let row = state
        .db
        .write(move |conn| {
            let mut item = load_item(conn, &caller.tenant_id, &id)?;
            if expected.is_some_and(|versions| !versions.contains(&item.version)) {
                return Err(AppError::stale(
                    "inventory.stale_version",
                    format!(
                        "the item changed since you read it (now at version {})",
                        item.version
                    ),
                ));
            }
            let from = item.on_hand;
            if let Some(sku) = &fields.sku
                && *sku != item.sku
                && store::items::by_sku(conn, &caller.tenant_id, sku)?.is_some()
            {
                return Err(AppError::Conflict(format!("an item with SKU {sku} exists"))
                    .with_code("inventory.duplicate_sku"));
            }
            if !stock::apply(&mut item, &fields) {
                return Ok(item);
            }
            let at = now();
            item.version += 1;
            item.updated_at = at;
            if !store::items::update(conn, &item)? {
                return Err(AppError::stale(
                    "inventory.stale_version",
                    "the item changed while it was being saved; read it again",
                ));
            }
            if item.on_hand != from {
                stock::audit(conn, &item, from, "edit", &caller.user_id, at)?;
                crate::events::quantity_changed(conn, &item, from, "edit", &caller.user_id)?;
            }
            Ok(item)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Item::from(&row)))
}

#[utoipa::path(delete, path = "/api/v1/inventory/items/{id}", tag = "inventory",
    params(("id" = String, Path, description = "item id or SKU")),
    responses((status = 204), (status = 403), (status = 404),
        (status = 409, description = "the item has a claim")), security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let id = id.into_inner();
    state
        .db
        .write(move |conn| {
            let item = load_item(conn, &caller.tenant_id, &id)?;
            if store::claims::for_item(conn, &item.id)? {
                return Err(AppError::Conflict(
                    "the item has claims; it is kept as their evidence".into(),
                )
                .with_code("inventory.item_has_claims"));
            }
            // Its live discrepancies go with it: announced as settled, so that no reader
            // keeps them open.
            for mut d in store::discrepancies::live_of_item(conn, &item.id)? {
                let at = agora_shared::db::now();
                d.status = crate::domain::DiscrepancyStatus::Resolved;
                d.live = None;
                d.resolved_at = Some(at);
                d.updated_at = at;
                d.version += 1;
                crate::events::resolved(conn, &d, "item_deleted", &caller.user_id)?;
            }
            store::items::delete(conn, &caller.tenant_id, &item.id)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/inventory/items/{id}/changes", tag = "inventory",
    params(("id" = String, Path, description = "item id or SKU"), ("limit" = Option<i64>, Query),
        ("cursor" = Option<String>, Query)),
    responses((status = 200, body = QuantityChangePage), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn changes(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
    page: web::Query<PageParams>,
) -> AppResult<HttpResponse> {
    let (limit, after) = (page.limit()?, page.after()?);
    let id = id.into_inner();
    let page = state
        .db
        .read(move |conn| {
            let item = load_item(conn, &caller.tenant_id, &id)?;
            let rows = store::items::changes(conn, &item.id, after.as_deref(), limit)?;
            Ok(Page::from_rows(rows, limit, |r| r.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page.map(|r| QuantityChange::from(&r))))
}

#[utoipa::path(get, path = "/api/v1/inventory/items/{id}/discrepancies", tag = "inventory",
    params(("id" = String, Path, description = "item id or SKU"), ("limit" = Option<i64>, Query),
        ("cursor" = Option<String>, Query)),
    responses((status = 200, body = DiscrepancyPage), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn discrepancies(
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
            let item = load_item(conn, &caller.tenant_id, &id)?;
            let filter = DiscrepancyFilter {
                item_id: Some(item.id),
                ..Default::default()
            };
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

#[utoipa::path(post, path = "/api/v1/inventory/items/import", tag = "inventory",
    request_body(content = String, content_type = "text/csv",
        description = "a header row of item fields (`sku` required), one item per row"),
    responses((status = 200, body = ImportReport), (status = 400), (status = 403), (status = 409),
        (status = 413), (status = 422, description = "every problem, by line and column")),
    security(("bearer" = [])))]
pub async fn import_csv(
    state: web::Data<InventoryState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Payload,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if content_type != "text/csv" {
        return Err(AppError::BadRequest(
            "an import is a CSV file (Content-Type: text/csv)".into(),
        ));
    }
    let body = read_capped(body, state.config.import_max_bytes).await?;
    let rows = tokio::task::spawn_blocking(move || import::parse(&body))
        .await
        .map_err(|e| AppError::Internal(e.into()))??;
    let currency = state.config.default_currency.clone();
    let report = state
        .db
        .write(move |conn| {
            import::apply(
                conn,
                &caller.tenant_id,
                &rows,
                &currency,
                &caller.user_id,
                now(),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

/// The request body, refused with 413 past `limit` bytes.
async fn read_capped(mut body: web::Payload, limit: usize) -> AppResult<Vec<u8>> {
    use futures::StreamExt;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("body: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge(format!(
                "an import is at most {limit} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
