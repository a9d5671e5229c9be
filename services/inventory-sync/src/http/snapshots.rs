//! `/inventory/snapshots` (a source's counts, scanned at once), `/inventory/scan` (every count
//! of the tenant, now) and `/inventory/rules` (the tenant's scan rules).

use std::collections::{HashMap, HashSet};

use actix_web::{HttpResponse, web};
use diesel::prelude::*;

use agora_shared::{
    AppError, AppResult,
    db::{now, utc},
    http::{Caller, ValidJson},
};

use super::{MANAGE, created};
use crate::{
    InventoryState,
    model::*,
    scan,
    schema::items,
    stock,
    store::{
        self,
        items::ItemRow,
        snapshots::{CountRow, SnapshotRow},
    },
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/snapshots", web::post().to(record))
        .route("/snapshots/{id}", web::get().to(get))
        .route("/scan", web::post().to(scan_now))
        .route("/rules", web::get().to(rules))
        .route("/rules", web::put().to(set_rules));
}

#[utoipa::path(post, path = "/api/v1/inventory/snapshots", tag = "inventory", request_body = NewSnapshot,
    responses((status = 201, body = SnapshotReport), (status = 403), (status = 422)),
    security(("bearer" = [])))]
pub async fn record(
    state: web::Data<InventoryState>,
    caller: Caller,
    body: ValidJson<NewSnapshot>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let snapshot = body.0;
    let mut skus = HashSet::new();
    for (i, count) in snapshot.counts.iter().enumerate() {
        if !skus.insert(count.sku.as_str()) {
            return Err(AppError::invalid(
                format!("counts[{i}].sku"),
                format!("{} is counted twice", count.sku),
            ));
        }
    }
    let currency = state.config.default_currency.clone();
    let report = state
        .db
        .write(move |conn| {
            let at = now();
            scan::lock_tenant(conn, &caller.tenant_id)?;
            let row = SnapshotRow {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: caller.tenant_id.clone(),
                source: snapshot.source.clone(),
                item_count: snapshot.counts.len() as i64,
                created_by: caller.user_id.clone(),
                created_at: at,
            };
            store::snapshots::insert(conn, &row)?;
            let wanted: Vec<String> = snapshot.counts.iter().map(|c| c.sku.clone()).collect();
            let mut known: HashMap<String, String> = HashMap::new();
            for chunk in wanted.chunks(500) {
                let found: Vec<(String, String)> = items::table
                    .filter(items::tenant_id.eq(&caller.tenant_id))
                    .filter(items::sku.eq_any(chunk))
                    .select((items::sku, items::id))
                    .load(conn)?;
                known.extend(found);
            }
            let mut created_items = Vec::new();
            let mut item_ids = Vec::new();
            let mut counts = snapshot.counts.clone();
            counts.sort_by(|a, b| a.sku.cmp(&b.sku));
            for count in &counts {
                let item_id = match known.get(&count.sku) {
                    Some(id) => id.clone(),
                    None => {
                        let item: ItemRow = stock::new_from_source(
                            &caller.tenant_id,
                            &count.sku,
                            count.name.as_deref(),
                            count.quantity,
                            &currency,
                            at,
                        );
                        let reason = format!("source:{}", snapshot.source);
                        let (item, made) =
                            stock::get_or_create(conn, item, &reason, &caller.user_id)?;
                        if made {
                            created_items.push(item.sku.clone());
                        }
                        item.id
                    }
                };
                store::snapshots::record_count(
                    conn,
                    &CountRow {
                        tenant_id: caller.tenant_id.clone(),
                        item_id: item_id.clone(),
                        source: snapshot.source.clone(),
                        quantity: count.quantity,
                        snapshot_id: row.id.clone(),
                        observed_at: at,
                    },
                )?;
                item_ids.push(item_id);
            }
            let scan = scan::scan(conn, &caller.tenant_id, Some(&item_ids), at)?;
            Ok(SnapshotReport {
                id: row.id,
                source: row.source,
                item_count: row.item_count,
                created_items,
                scan,
                created_at: utc(at),
            })
        })
        .await?;
    Ok(created(format!("/api/v1/inventory/snapshots/{}", report.id)).json(report))
}

#[utoipa::path(get, path = "/api/v1/inventory/snapshots/{id}", tag = "inventory",
    params(("id" = String, Path)),
    responses((status = 200, body = Snapshot), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let row = state
        .db
        .read(move |conn| {
            store::snapshots::get(conn, &caller.tenant_id, &id)?
                .ok_or_else(|| AppError::not_found("snapshot"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(Snapshot {
        id: row.id,
        source: row.source,
        item_count: row.item_count,
        created_by: row.created_by,
        created_at: utc(row.created_at),
    }))
}

#[utoipa::path(post, path = "/api/v1/inventory/scan", tag = "inventory",
    responses((status = 200, body = ScanReport), (status = 403)), security(("bearer" = [])))]
pub async fn scan_now(state: web::Data<InventoryState>, caller: Caller) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let report = state
        .db
        .write(move |conn| scan::scan(conn, &caller.tenant_id, None, now()))
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

#[utoipa::path(get, path = "/api/v1/inventory/rules", tag = "inventory",
    responses((status = 200, body = Rules)), security(("bearer" = [])))]
pub async fn rules(state: web::Data<InventoryState>, caller: Caller) -> AppResult<HttpResponse> {
    let auto_resolve_low = state
        .db
        .read(move |conn| store::snapshots::auto_resolve_low(conn, &caller.tenant_id))
        .await?;
    Ok(HttpResponse::Ok().json(Rules { auto_resolve_low }))
}

#[utoipa::path(put, path = "/api/v1/inventory/rules", tag = "inventory", request_body = Rules,
    responses((status = 200, body = Rules), (status = 403), (status = 422)), security(("bearer" = [])))]
pub async fn set_rules(
    state: web::Data<InventoryState>,
    caller: Caller,
    body: ValidJson<Rules>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let rules = body.0;
    let auto = rules.auto_resolve_low;
    state
        .db
        .write(move |conn| store::snapshots::set_rules(conn, &caller.tenant_id, auto, now()))
        .await?;
    Ok(HttpResponse::Ok().json(rules))
}
