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
    domain::{self, ClaimProvider, ClaimStatus, ClaimType, ConnectionStatus, Provider},
    events,
    model::*,
    store::{self, claims::ClaimRow},
    stripe::{StripeError, Target},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/claims", web::get().to(list))
        .route("/claims", web::post().to(create))
        .route("/claims/{id}", web::get().to(get))
        .route("/claims/{id}", web::patch().to(update))
        .route("/claims/{id}/submit", web::post().to(submit));
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
    let stripe = stripe_target(&new)?;
    let claim = state
        .db
        .write(move |conn| {
            if let Some(target) = &stripe {
                let connection = target
                    .connection_id
                    .as_deref()
                    .map(|id| store::connections::get(conn, &caller.tenant_id, id))
                    .transpose()?
                    .flatten()
                    .filter(|c| c.provider == Provider::Stripe);
                if connection.is_none() {
                    return Err(AppError::invalid(
                        "stripe.connection_id",
                        "is not one of the tenant's Stripe connections",
                    ));
                }
                if new.claim_type == ClaimType::Dispute
                    && store::claims::dispute_claimed(conn, &caller.tenant_id, &target.target)?
                {
                    return Err(AppError::Conflict(format!(
                        "dispute {} has a claim already",
                        target.target
                    ))
                    .with_code("inventory.duplicate_claim"));
                }
            }
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
                connection_id: stripe.as_ref().and_then(|s| s.connection_id.clone()),
                stripe_target: stripe.map(|s| s.target),
                stripe_attempt: 0,
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

/// A Stripe claim's target, checked against its type; `None` for other providers (which
/// take none).
fn stripe_target(new: &NewClaim) -> AppResult<Option<StripeClaim>> {
    if new.provider != ClaimProvider::Stripe {
        if new.stripe.is_some() {
            return Err(AppError::invalid(
                "stripe",
                format!(
                    "only Stripe claims act on Stripe objects; this is {}",
                    new.provider
                ),
            ));
        }
        return Ok(None);
    }
    let Some(target) = &new.stripe else {
        return Err(AppError::invalid(
            "stripe",
            "a Stripe claim names its connection_id and target",
        ));
    };
    if target.connection_id.is_none() {
        return Err(AppError::invalid("stripe.connection_id", "is required"));
    }
    let fits = match (new.claim_type, Target::of(&target.target)) {
        (ClaimType::Refund, Some(Target::PaymentIntent | Target::Charge)) => true,
        (ClaimType::Dispute, Some(Target::Dispute)) => true,
        (ClaimType::Refund | ClaimType::Dispute, _) => false,
        (other, _) => {
            return Err(AppError::invalid(
                "claim_type",
                format!("Stripe claims are refunds or disputes, not {other}"),
            ));
        }
    };
    if !fits {
        return Err(AppError::invalid(
            "stripe.target",
            format!(
                "a {} claim acts on {}",
                new.claim_type,
                if new.claim_type == ClaimType::Refund {
                    "a payment intent (pi_...) or a charge (ch_...)"
                } else {
                    "a dispute (dp_...)"
                }
            ),
        ));
    }
    Ok(Some(target.clone()))
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
    if claim.provider == ClaimProvider::Stripe {
        if change.external_reference.is_some() {
            return Err(AppError::invalid(
                "external_reference",
                "a Stripe claim's reference is the refund or dispute Stripe answers when it is filed",
            ));
        }
        if from == ClaimStatus::Pending && change.status != ClaimStatus::Pending {
            return Err(AppError::Conflict(
                "a Stripe claim leaves pending when it is filed: POST /api/v1/inventory/claims/{id}/submit".into(),
            )
            .with_code("inventory.file_with_submit"));
        }
    }
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

#[utoipa::path(post, path = "/api/v1/inventory/claims/{id}/submit", tag = "inventory",
    params(("id" = String, Path)),
    responses((status = 200, body = Claim, description = "filed with Stripe: processing, with Stripe's refund or dispute as its external reference"),
        (status = 403), (status = 404),
        (status = 409, description = "not a pending Stripe claim, or its connection needs a new key or is gone"),
        (status = 422, description = "Stripe refused it (the reason and field are named)"),
        (status = 503, description = "Stripe cannot be reached now; submitting again is safe")),
    security(("bearer" = [])))]
/// Files a pending Stripe claim: refunds its payment intent or charge, or answers and submits
/// its dispute with the claim's evidence. Stripe gets one `Idempotency-Key` per claim, so
/// submitting again (after a timeout, twice at once) acts once.
pub async fn submit(
    state: web::Data<InventoryState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let id = id.into_inner();
    let (tenant, lookup) = (caller.tenant_id.clone(), id.clone());
    let (claim, connection) = state
        .db
        .read(move |conn| {
            let claim = store::claims::get(conn, &tenant, &lookup)?
                .ok_or_else(|| AppError::not_found("claim"))?;
            let connection = match &claim.connection_id {
                Some(c) => store::connections::get(conn, &tenant, c)?,
                None => None,
            };
            Ok((claim, connection))
        })
        .await?;
    let Some(target) = claim
        .stripe_target
        .clone()
        .filter(|_| claim.provider == ClaimProvider::Stripe)
    else {
        return Err(AppError::Conflict(format!(
            "only Stripe claims are filed from here; a {} claim is filed by the seller and moved on with PATCH",
            claim.provider
        ))
        .with_code("inventory.not_submittable"));
    };
    if claim.external_reference.is_some() || claim.status != ClaimStatus::Pending {
        // Filed already (by this or a concurrent submit): nothing more to do.
        return Ok(HttpResponse::Ok().json(Claim::from(&claim)));
    }
    let Some(connection) = connection else {
        return Err(AppError::Conflict(
            "the claim's Stripe connection was removed; raise the claim again on a connection"
                .into(),
        )
        .with_code("inventory.connection_gone"));
    };
    if connection.status != ConnectionStatus::Active {
        return Err(reauth_required());
    }
    let sealer = state.sealer()?;
    let key = sealer
        .open_text(&connection.credentials, &connection.id)
        .map_err(|e| anyhow::anyhow!("the connection's key does not open: {e}"))?;
    // One key per claim and refusal: a submit repeated after a lost answer is the same
    // request; one after Stripe refused (nothing was made) is a new one.
    let idempotency_key = format!("agora-claim-{}-{}", claim.id, claim.stripe_attempt);
    let kind = Target::of(&target).ok_or_else(|| anyhow::anyhow!("stored target {target}"))?;
    // What Stripe holds for this claim already is taken, never made again: a submit whose
    // answer was lost finds it, even after Stripe forgot the idempotency key (24 h).
    let filed = match kind {
        Target::Dispute => match state.stripe.dispute(&key, &target).await {
            Ok(dispute) if dispute.claim_id() == Some(claim.id.as_str()) => Ok(dispute),
            Ok(_) => {
                let evidence: Vec<Evidence> =
                    serde_json::from_str(&claim.evidence).unwrap_or_default();
                let text = dispute_text(&claim, &evidence);
                state
                    .stripe
                    .answer_dispute(&key, &idempotency_key, &target, &text, &claim.id)
                    .await
            }
            Err(e) => Err(e),
        },
        _ => match state.stripe.payment(&key, kind, &target).await {
            Ok(payment) if !payment.currency.eq_ignore_ascii_case(&claim.currency) => {
                return Err(AppError::invalid(
                    "currency",
                    format!(
                        "{target} was paid in {}; the claim is in {}",
                        payment.currency.to_ascii_uppercase(),
                        claim.currency
                    ),
                )
                .with_code("inventory.currency_mismatch"));
            }
            Ok(_) => match state
                .stripe
                .refund_for_claim(&key, kind, &target, &claim.id)
                .await
            {
                Ok(Some(refund)) => Ok(refund),
                Ok(None) => {
                    state
                        .stripe
                        .refund(
                            &key,
                            &idempotency_key,
                            kind,
                            &target,
                            claim.amount,
                            &claim.id,
                        )
                        .await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
    };
    let filed = match filed {
        Ok(object) => object,
        Err(StripeError::Unauthorized(why)) => {
            // Only the key that was refused: one put in meanwhile stands.
            let (id, used) = (connection.id.clone(), connection.credentials.clone());
            let reason = format!("Stripe refused the secret key: {why}");
            state
                .db
                .write(move |conn| {
                    store::connections::mark_failed(conn, &id, &used, &reason, true, now())
                })
                .await?;
            return Err(reauth_required());
        }
        Err(StripeError::Refused {
            code,
            message,
            param,
            ..
        }) => {
            let (claim_id, attempt) = (claim.id.clone(), claim.stripe_attempt);
            state
                .db
                .write(move |conn| store::claims::refused_by_stripe(conn, &claim_id, attempt))
                .await?;
            let field = param.map_or_else(|| "stripe.target".to_owned(), |p| format!("stripe.{p}"));
            let error = AppError::invalid(&field, format!("Stripe refused it: {message}"));
            return Err(error.with_code(format!(
                "inventory.stripe_{}",
                code.unwrap_or_else(|| "refused".into())
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(60)
                    .collect::<String>()
            )));
        }
        Err(StripeError::Unavailable(why)) => {
            return Err(AppError::Unavailable(format!(
                "Stripe's answer did not come ({why}); submitting again is safe: what Stripe made meanwhile is found, not made twice"
            )));
        }
    };
    let actor = caller.user_id.clone();
    let row = state
        .db
        .write(move |conn| {
            until_settled(conn, |conn| {
                let mut claim = store::claims::get(conn, &caller.tenant_id, &id)?
                    .ok_or_else(|| AppError::not_found("claim"))?;
                let from = claim.status;
                let learnt = claim.external_reference.is_none();
                if learnt {
                    claim.external_reference = Some(filed.id.clone());
                }
                // A webhook may have moved it on already.
                let moved = from == ClaimStatus::Pending;
                if moved {
                    claim.status = ClaimStatus::Processing;
                }
                if !learnt && !moved {
                    return Ok(Some(claim));
                }
                claim.updated_at = now();
                if !store::claims::save(conn, &mut claim)? {
                    return Ok(None);
                }
                if moved {
                    events::claim_moved(conn, &claim, from.as_str(), &actor)?;
                }
                Ok(Some(claim))
            })?
            .ok_or_else(|| {
                AppError::Conflict("the claim keeps changing; read it again".into())
                    .with_code("inventory.claim_changed")
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(Claim::from(&row)))
}

fn reauth_required() -> AppError {
    AppError::Conflict(
        "Stripe refused the connection's secret key: PUT a new one to its credentials".into(),
    )
    .with_code("inventory.reauth_required")
}

/// The claim's evidence as the text of a dispute answer (Stripe keeps 20,000 characters).
fn dispute_text(claim: &ClaimRow, evidence: &[Evidence]) -> String {
    let mut text = format!(
        "Inventory records for SKU {} (claim {}):\n",
        claim.sku, claim.id
    );
    for e in evidence {
        text.push_str(&format!(
            "- {} {}: {}\n",
            e.kind, e.reference, e.description
        ));
    }
    if let Some(notes) = &claim.notes {
        text.push_str(notes);
    }
    text.chars().take(20_000).collect()
}
