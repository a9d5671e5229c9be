//! `/inventory/webhooks/stripe/{connection_id}`: where a tenant's Stripe webhook endpoint
//! delivers events. No Agora credential reaches it (the gateway lists it as public): the
//! `Stripe-Signature` over the raw body, under the connection's signing secret, is the
//! credential, checked before the body is parsed. Each event is applied once per connection,
//! in the transaction that records it: refund and dispute news moves the connection's claims.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, now},
};

use crate::{
    InventoryState,
    domain::{self, ClaimStatus, ClaimType, Provider},
    events,
    store::{self, claims::ClaimRow, stripe_events::StripeEventRow},
    stripe,
};

/// Largest event accepted (Stripe's are a few KiB; an invoice with many lines a few hundred).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Who moves claims on Stripe's word, in their events.
pub const STRIPE_ACTOR: &str = "stripe";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/stripe/{id}", web::post().to(stripe_event));
}

/// The parts of a Stripe event Agora reads.
#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    /// Whether it happened in live mode (absent: not checked).
    #[serde(default)]
    livemode: Option<bool>,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: Value,
}

fn bad_signature(why: impl std::fmt::Display) -> AppError {
    AppError::BadRequest(format!("Stripe-Signature refused: {why}"))
        .with_code("inventory.bad_signature")
}

#[utoipa::path(post, path = "/api/v1/inventory/webhooks/stripe/{id}", tag = "inventory",
    params(("id" = String, Path, description = "the Stripe connection"),
        ("Stripe-Signature" = String, Header, description = "t=<unix>,v1=<hex HMAC-SHA256 of \"t.body\">")),
    request_body(content = Object, description = "a Stripe event, exactly as Stripe sent it", content_type = "application/json"),
    responses((status = 200, description = "taken (or taken before: each event is applied once)"),
        (status = 400, description = "no, a forged or a stale signature; or not a Stripe event"),
        (status = 404, description = "no such Stripe connection"),
        (status = 409, description = "the connection has no webhook signing secret yet"),
        (status = 413, description = "larger than 1 MiB")))]
pub async fn stripe_event(
    state: web::Data<InventoryState>,
    req: HttpRequest,
    id: web::Path<String>,
    mut payload: web::Payload,
) -> AppResult<HttpResponse> {
    let header = req
        .headers()
        .get("stripe-signature")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| bad_signature("the header is not ASCII"))?
        .ok_or_else(|| bad_signature("the Stripe-Signature header is missing"))?;
    let too_large =
        || AppError::PayloadTooLarge(format!("a Stripe event is at most {MAX_EVENT_BYTES} bytes"));
    let body = agora_shared::http::json::read_body(
        &mut payload,
        agora_shared::http::json::content_length(&req),
        MAX_EVENT_BYTES,
        too_large,
    )
    .await?;
    let id = id.into_inner();
    let lookup = id.clone();
    let connection = state
        .db
        .read(move |conn| store::connections::get_any(conn, &lookup))
        .await?
        .filter(|c| c.provider == Provider::Stripe)
        .ok_or_else(|| AppError::not_found("Stripe connection"))?;
    let Some(sealed) = &connection.webhook_secret else {
        return Err(AppError::Conflict(
            "the connection has no webhook signing secret yet: PUT it to its credentials".into(),
        )
        .with_code("inventory.no_webhook_secret"));
    };
    let sealer = state.sealer()?;
    let secret = sealer
        .open(sealed, &connection.id)
        .map_err(|e| anyhow::anyhow!("the connection's webhook secret does not open: {e}"))?;
    stripe::verify_signature(
        &secret,
        &header,
        &body,
        chrono::Utc::now().timestamp(),
        state.config.stripe.webhook_tolerance_secs,
    )
    .map_err(bad_signature)?;
    // Signed by Stripe: now it is read.
    let event: Event = agora_shared::http::json::parse(&body)?;
    if event.id.is_empty() || event.id.len() > 255 {
        return Err(AppError::invalid("id", "must be a Stripe event id"));
    }
    // A test-mode event never moves a claim made with a live key, nor the reverse.
    let key = sealer
        .open(&connection.credentials, &connection.id)
        .map_err(|e| anyhow::anyhow!("the connection's key does not open: {e}"))?;
    let live_key = key.starts_with(b"sk_live_") || key.starts_with(b"rk_live_");
    let duplicate = state
        .db
        .write(move |conn| {
            let row = StripeEventRow {
                connection_id: connection.id.clone(),
                event_id: event.id.clone(),
                tenant_id: connection.tenant_id.clone(),
                event_type: event.kind.chars().take(255).collect(),
                outcome: String::new(),
                received_at: now(),
            };
            if !store::stripe_events::record(conn, &row)? {
                return Ok(true);
            }
            // Stripe redelivers for three days; a month of ids is kept.
            store::stripe_events::prune(conn, &connection.id, now() - chrono::Duration::days(30))?;
            let outcome = match event.livemode {
                Some(live) if live != live_key => format!(
                    "ignored: a {} event for a {} key",
                    if live { "live-mode" } else { "test-mode" },
                    if live_key { "live-mode" } else { "test-mode" }
                ),
                _ => apply(conn, &connection.tenant_id, &connection.id, &event)?,
            };
            store::stripe_events::set_outcome(conn, &connection.id, &event.id, &outcome)?;
            Ok(false)
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "received": true, "duplicate": duplicate })))
}

/// Applies one event to the connection's claims; what it did, in words.
fn apply(
    conn: &mut DbConnection,
    tenant_id: &str,
    connection_id: &str,
    event: &Event,
) -> AppResult<String> {
    let object = &event.data.object;
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    let kind: String = event.kind.chars().take(100).collect();
    let (Some(object_id), Some(status)) = (text("id"), text("status")) else {
        return Ok(format!("ignored: {kind} carries no object id and status"));
    };
    if object_id.len() > 255 || status.len() > 64 {
        return Ok(format!("ignored: {kind} names an object Stripe would not"));
    }
    let claim_id = object
        .get("metadata")
        .and_then(|m| m.get("agora_claim_id"))
        .and_then(Value::as_str);
    let (expected_type, to) = match event.kind.as_str() {
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => {
            (ClaimType::Refund, refund_moves_claim_to(status))
        }
        "charge.dispute.created"
        | "charge.dispute.updated"
        | "charge.dispute.closed"
        | "charge.dispute.funds_reinstated"
        | "charge.dispute.funds_withdrawn" => (ClaimType::Dispute, dispute_moves_claim_to(status)),
        _ => return Ok(format!("ignored: {kind} does not concern claims")),
    };
    let Some(mut claim) = store::claims::for_stripe_object(
        conn,
        tenant_id,
        connection_id,
        expected_type,
        object_id,
        claim_id,
    )?
    else {
        return Ok(format!("no claim of this connection is about {object_id}"));
    };
    // A refund known only by its metadata must be of the claim's payment.
    if claim.external_reference.is_none()
        && expected_type == ClaimType::Refund
        && ![text("payment_intent"), text("charge")].contains(&claim.stripe_target.as_deref())
    {
        return Ok(format!(
            "{object_id} names claim {} but refunds another payment",
            claim.id
        ));
    }
    let Some(to) = to else {
        return Ok(format!("{object_id} is {status}: claim {} stays", claim.id));
    };
    let learnt = claim.external_reference.is_none() && expected_type == ClaimType::Refund;
    if learnt {
        claim.external_reference = Some(object_id.to_owned());
    }
    let Some(path) = domain::claim_path(claim.status, to).filter(|path| !path.is_empty() || learnt)
    else {
        return Ok(format!(
            "{object_id} is {status}; claim {} is {} already",
            claim.id, claim.status
        ));
    };
    move_along(conn, &mut claim, &path)?;
    Ok(format!(
        "{object_id} is {status}: claim {} is {to}",
        claim.id
    ))
}

/// Moves the claim through `path` (each step one event), as Stripe.
fn move_along(
    conn: &mut DbConnection,
    claim: &mut ClaimRow,
    path: &[ClaimStatus],
) -> AppResult<()> {
    let mut steps = path.iter().peekable();
    if steps.peek().is_none() {
        // No move; a reference learnt is still kept.
        claim.updated_at = now();
        if !store::claims::save(conn, claim)? {
            return Err(moved_meanwhile());
        }
    }
    for &step in steps {
        let from = claim.status;
        claim.status = step;
        claim.updated_at = now();
        if !store::claims::save(conn, claim)? {
            return Err(moved_meanwhile());
        }
        events::claim_moved(conn, claim, from.as_str(), STRIPE_ACTOR)?;
    }
    Ok(())
}

/// A claim changed between its read and its write in this transaction: Stripe is answered
/// 409 and delivers the event again, which then reads it afresh.
fn moved_meanwhile() -> AppError {
    AppError::Conflict("the claim changed meanwhile; deliver the event again".into())
        .with_code("inventory.claim_changed")
}

/// A refund's status as the claim's: pending or needing action is being processed, succeeded
/// is the money moved, failed or canceled is refused.
pub fn refund_moves_claim_to(status: &str) -> Option<ClaimStatus> {
    match status {
        "pending" | "requires_action" => Some(ClaimStatus::Processing),
        "succeeded" => Some(ClaimStatus::Completed),
        "failed" | "canceled" => Some(ClaimStatus::Rejected),
        _ => None,
    }
}

/// A dispute's status as the claim's: under review is being processed; won (or an inquiry
/// closed without a chargeback) is the money kept; lost is refused. A dispute still waiting
/// for an answer leaves the claim as it is.
pub fn dispute_moves_claim_to(status: &str) -> Option<ClaimStatus> {
    match status {
        "under_review" | "warning_under_review" => Some(ClaimStatus::Processing),
        "won" | "warning_closed" => Some(ClaimStatus::Completed),
        "lost" => Some(ClaimStatus::Rejected),
        _ => None,
    }
}
