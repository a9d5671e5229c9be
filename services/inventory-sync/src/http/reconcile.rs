//! `POST /inventory/reconcile`: [{sku, source_value, target_value}] sets each item's on-hand
//! quantity to the source's value, if it is still the target value the caller saw. Lines
//! succeed or fail one by one; all that succeed are written together, each audited, and the
//! live discrepancies they settle are resolved.

use actix_web::{HttpResponse, web};

use agora_shared::{
    AppResult,
    db::{DbConnection, now},
    http::{Caller, ValidJson},
};

use super::{MANAGE, until_settled};
use crate::{
    InventoryState,
    domain::{DiscrepancyStatus, ReconcileOutcome},
    events,
    model::*,
    stock,
    store::{self, discrepancies::DiscrepancyFilter},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/reconcile", web::post().to(reconcile));
}

#[utoipa::path(post, path = "/api/v1/inventory/reconcile", tag = "inventory",
    request_body = ReconcileRequest,
    responses((status = 200, body = ReconcileReport, description = "per-line results; failed lines changed nothing"),
        (status = 403), (status = 422)),
    security(("bearer" = [])))]
pub async fn reconcile(
    state: web::Data<InventoryState>,
    caller: Caller,
    body: ValidJson<ReconcileRequest>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let lines = body.0.0;
    let currency = state.config.default_currency.clone();
    let report = state
        .db
        .write(move |conn| {
            let mut report = ReconcileReport {
                reconciled: Vec::new(),
                failed: Vec::new(),
                results: Vec::new(),
            };
            for line in &lines {
                let result = reconcile_line(conn, &caller, line, &currency)?;
                match result.outcome {
                    ReconcileOutcome::Failed => report.failed.push(line.sku.clone()),
                    ReconcileOutcome::Unchanged => {}
                    _ => report.reconciled.push(line.sku.clone()),
                }
                report.results.push(result);
            }
            Ok(report)
        })
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

fn reconcile_line(
    conn: &mut DbConnection,
    caller: &Caller,
    line: &ReconcileLine,
    currency: &str,
) -> AppResult<ReconcileResult> {
    // A line that lost to a concurrent change of the item reads it again.
    if let Some(result) = until_settled(conn, |conn| try_line(conn, caller, line, currency))? {
        return Ok(result);
    }
    Ok(ReconcileResult {
        sku: line.sku.clone(),
        outcome: ReconcileOutcome::Failed,
        from: None,
        to: None,
        error: Some("the item kept changing; read it again".into()),
    })
}

/// The line against the item as it is now; `None` when a concurrent change won.
fn try_line(
    conn: &mut DbConnection,
    caller: &Caller,
    line: &ReconcileLine,
    currency: &str,
) -> AppResult<Option<ReconcileResult>> {
    let at = now();
    let result = |outcome, from, to, error: Option<String>| {
        Some(ReconcileResult {
            sku: line.sku.clone(),
            outcome,
            from,
            to,
            error,
        })
    };
    let Some(mut item) = store::items::by_sku(conn, &caller.tenant_id, &line.sku)? else {
        let item = stock::new_from_source(
            &caller.tenant_id,
            &line.sku,
            None,
            line.source_value,
            currency,
            at,
        );
        if !stock::get_or_create(conn, item, "reconcile", &caller.user_id)?.1 {
            // A concurrent request made it first: the line is tried against it.
            return Ok(None);
        }
        return Ok(result(
            ReconcileOutcome::Created,
            None,
            Some(line.source_value),
            None,
        ));
    };
    let from = item.on_hand;
    if from == line.source_value {
        return Ok(result(
            ReconcileOutcome::Unchanged,
            Some(from),
            Some(from),
            None,
        ));
    }
    if from != line.target_value {
        let error = format!(
            "on hand is {from}, not the target value {}: it changed since it was read",
            line.target_value
        );
        return Ok(result(
            ReconcileOutcome::Failed,
            Some(from),
            Some(from),
            Some(error),
        ));
    }
    if !stock::set_on_hand(
        conn,
        &mut item,
        line.source_value,
        "reconcile",
        &caller.user_id,
        at,
    )? {
        return Ok(None);
    }
    // Live discrepancies whose source said exactly this are settled.
    let filter = DiscrepancyFilter {
        item_id: Some(item.id.clone()),
        ..Default::default()
    };
    for mut d in store::discrepancies::list(conn, &caller.tenant_id, &filter, None, 100)? {
        if !d.status.is_live() || d.observed != line.source_value {
            continue;
        }
        d.status = DiscrepancyStatus::Resolved;
        d.live = None;
        d.resolved_at = Some(at);
        d.updated_at = at;
        d.note = Some("reconciled to the source's count".into());
        if store::discrepancies::save(conn, &mut d)? {
            events::resolved(conn, &d, "reconcile", &caller.user_id)?;
        }
    }
    Ok(result(
        ReconcileOutcome::Reconciled,
        Some(from),
        Some(line.source_value),
        None,
    ))
}
