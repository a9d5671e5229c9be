//! `/inventory/claims`: claims for money a discrepancy says the tenant is owed, raised only
//! when the discrepancy's confidence is at least 0.7, one per discrepancy. Amazon offers no
//! API to file FBA reimbursement claims: an Amazon claim is prepared here with its evidence,
//! filed by the seller, and moved on by hand.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, now},
    http::{Caller, Page, PageParams, ValidJson},
};

use super::{MANAGE, choice, created, until_settled};
use crate::{
    InventoryState,
    domain::{self, ClaimStatus},
    events,
    model::*,
    store::{self, claims::ClaimRow},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/claims", web::get().to(list))
        .route("/claims", web::post().to(create))
        .route("/claims/{id}", web::get().to(get))
        .route("/claims/{id}", web::patch().to(update));
}

#[derive(Debug, Deserialize)]
pub struct ClaimQuery {
    pub status: Option<String>,
    #[serde(flatten)]
    pub page: PageParams,
}

#[utoipa::path(get, path = "/api/v1/inventory/claims", tag = "inventory",
    params(("status" = Option<ClaimStatus>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = ClaimPage), (status = 422)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<InventoryState>,
    caller: Caller,
    query: web::Query<ClaimQuery>,
) -> AppResult<HttpResponse> {
    let query = query.into_inner();
    let (limit, before) = (query.page.limit()?, query.page.after()?);
    let status = choice("status", query.status.as_deref())?;
    let page = state
        .db
        .read(move |conn| {
            let rows =
                store::claims::list(conn, &caller.tenant_id, status, before.as_deref(), limit)?;
            Ok(Page::from_rows(rows, limit, |r| r.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page.map(|r| Claim::from(&r))))
}

#[utoipa::path(post, path = "/api/v1/inventory/claims", tag = "inventory", request_body = NewClaim,
    responses((status = 201, body = Claim), (status = 403), (status = 404, description = "no such discrepancy"),
        (status = 409, description = "the discrepancy has a claim"),
        (status = 422, description = "invalid, or the discrepancy's confidence is below 0.7")),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<InventoryState>,
    caller: Caller,
    body: ValidJson<NewClaim>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let new = body.0;
    let claim = state
        .db
        .write(move |conn| {
            let d = store::discrepancies::get(conn, &caller.tenant_id, &new.discrepancy_id)?
                .ok_or_else(|| AppError::not_found("discrepancy"))?;
            if d.confidence < domain::CLAIM_MIN_CONFIDENCE {
                return Err(AppError::invalid(
                    "discrepancy_id",
                    format!(
                        "the discrepancy's confidence is {:.3}; claims need at least {}",
                        d.confidence,
                        domain::CLAIM_MIN_CONFIDENCE
                    ),
                )
                .with_code("inventory.low_confidence"));
            }
            let amount = new.amount.unwrap_or(d.value_at_stake);
            if amount <= 0 {
                return Err(AppError::invalid(
                    "amount",
                    "the item has no unit price; give the amount claimed",
                ));
            }
            let mut evidence = vec![
                Evidence {
                    kind: "discrepancy".into(),
                    reference: d.id.clone(),
                    description: format!(
                        "{} counted {} of {}; we held {} ({} units, severity {})",
                        d.source, d.observed, d.sku, d.expected, d.difference, d.severity
                    ),
                },
                Evidence {
                    kind: "snapshot".into(),
                    reference: d.snapshot_id.clone(),
                    description: format!("the {} counts the discrepancy was found in", d.source),
                },
            ];
            evidence.extend(new.evidence);
            let at = now();
            let row = ClaimRow {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: caller.tenant_id.clone(),
                discrepancy_id: d.id.clone(),
                item_id: d.item_id.clone(),
                sku: d.sku.clone(),
                claim_type: new.claim_type,
                provider: new.provider,
                status: ClaimStatus::Pending,
                amount,
                currency: d.currency.clone(),
                confidence: d.confidence,
                evidence: serde_json::to_string(&evidence).map_err(anyhow::Error::from)?,
                notes: new.notes,
                external_reference: None,
                version: 1,
                created_by: caller.user_id.clone(),
                created_at: at,
                updated_at: at,
            };
            if !store::claims::insert(conn, &row)? {
                return Err(
                    AppError::Conflict("the discrepancy already has a claim".into())
                        .with_code("inventory.duplicate_claim"),
                );
            }
            events::claim_created(conn, &row)?;
            Ok(row)
        })
        .await?;
    Ok(created(format!("/api/v1/inventory/claims/{}", claim.id)).json(Claim::from(&claim)))
}

#[utoipa::path(get, path = "/api/v1/inventory/claims/{id}", tag = "inventory",
    params(("id" = String, Path)),
    responses((status = 200, body = Claim), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let row = state
        .db
        .read(move |conn| {
            store::claims::get(conn, &caller.tenant_id, &id)?
                .ok_or_else(|| AppError::not_found("claim"))
        })
        .await?;
    Ok(HttpResponse::Ok().json(Claim::from(&row)))
}

#[utoipa::path(patch, path = "/api/v1/inventory/claims/{id}", tag = "inventory",
    request_body = ClaimUpdate, params(("id" = String, Path)),
    responses((status = 200, body = Claim), (status = 403), (status = 404),
        (status = 409, description = "not a move its status allows, or it moved meanwhile"), (status = 422)),
    security(("bearer" = [])))]
pub async fn update(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<ClaimUpdate>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let id = id.into_inner();
    let change = body.0;
    let row = state
        .db
        .write(move |conn| {
            // A move that lost to a concurrent one reads the claim again: asking for the status
            // it now has is no error.
            until_settled(conn, |conn| move_claim(conn, &caller, &id, &change))?.ok_or_else(|| {
                AppError::Conflict("the claim keeps changing; read it again".into())
                    .with_code("inventory.claim_changed")
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(Claim::from(&row)))
}

/// Applies `change` to the claim; `None` when another change moved it first.
fn move_claim(
    conn: &mut DbConnection,
    caller: &Caller,
    id: &str,
    change: &ClaimUpdate,
) -> AppResult<Option<ClaimRow>> {
    let change = change.clone();
    let mut claim = store::claims::get(conn, &caller.tenant_id, id)?
        .ok_or_else(|| AppError::not_found("claim"))?;
    let from = claim.status;
    let nothing =
        change.notes.is_none() && change.external_reference.is_none() && change.evidence.is_empty();
    if from == change.status && nothing {
        // What was asked for is so already: nothing to write.
        return Ok(Some(claim));
    }
    if from != change.status && !domain::claim_may_move(from, change.status) {
        return Err(AppError::Conflict(format!(
            "a claim cannot go from {from} to {}",
            change.status
        ))
        .with_code("inventory.claim_transition"));
    }
    claim.status = change.status;
    if change.notes.is_some() {
        claim.notes = change.notes;
    }
    if change.external_reference.is_some() {
        claim.external_reference = change.external_reference;
    }
    if !change.evidence.is_empty() {
        let mut evidence: Vec<Evidence> = serde_json::from_str(&claim.evidence).unwrap_or_default();
        if evidence.len() + change.evidence.len() > 100 {
            return Err(AppError::invalid(
                "evidence",
                "a claim holds at most 100 entries",
            ));
        }
        evidence.extend(change.evidence);
        claim.evidence = serde_json::to_string(&evidence).map_err(anyhow::Error::from)?;
    }
    claim.updated_at = now();
    if !store::claims::save(conn, &mut claim)? {
        return Ok(None);
    }
    if from != claim.status {
        events::claim_moved(conn, &claim, from.as_str(), &caller.user_id)?;
    }
    Ok(Some(claim))
}
