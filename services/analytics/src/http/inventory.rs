//! `/analytics/inventory`: what inventory-sync's events say of a tenant's stock and money —
//! discrepancies found and settled, value at stake, claims raised, recovered and rejected — per
//! currency (money is never summed across currencies).

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::NaiveDate;
use serde::Serialize;

use agora_shared::{AppResult, db::now, http::Caller};

use super::Scope;
use crate::{AnalyticsState, store::inventory::groups};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/analytics/inventory", web::get().to(inventory));
}

/// One currency's figures. Counts "in range" are of the date range; "open" ones are now.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct CurrencyFigures {
    pub currency: String,
    /// Discrepancies found in the range, and the value they put at stake (minor units).
    pub discrepancies_detected: i64,
    pub value_detected: i64,
    /// Discrepancies settled in the range (resolved or auto-resolved).
    pub discrepancies_resolved: i64,
    /// Discrepancies open now (open, investigating, escalated) and their value at stake.
    pub open_discrepancies: i64,
    pub open_value_at_stake: i64,
    /// Claims raised in the range and the amount they ask for.
    pub claims_created: i64,
    pub amount_claimed: i64,
    /// Claims completed in the range (money recovered) and rejected in it.
    pub claims_completed: i64,
    pub amount_recovered: i64,
    pub claims_rejected: i64,
    /// Recovered / (recovered + rejected amounts) in the range, 0-100; null without any.
    pub recovery_rate_pct: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InventoryReport {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub currencies: Vec<CurrencyFigures>,
    /// Open discrepancies now, by severity (every currency).
    pub open_by_severity: BTreeMap<String, i64>,
}

const LIVE: &[&str] = &["open", "investigating", "escalated"];

#[utoipa::path(get, path = "/api/v1/analytics/inventory", tag = "analytics", params(Scope),
    responses((status = 200, body = InventoryReport), (status = 403), (status = 422)),
    security(("bearer" = [])))]
pub async fn inventory(
    state: web::Data<AnalyticsState>,
    caller: Caller,
    scope: web::Query<Scope>,
) -> AppResult<HttpResponse> {
    let tenant_id = scope.tenant(&caller)?;
    let (from, to, window) = scope.window(now().date(), "30d")?;
    let report = state
        .db
        .read(move |conn| {
            const D: &str = "inventory_discrepancies";
            const C: &str = "inventory_claims";
            let t = tenant_id.as_str();
            let detected = groups(
                conn,
                D,
                "currency",
                "value_at_stake",
                t,
                "detected_at",
                window,
                &[],
            )?;
            let resolved = groups(
                conn,
                D,
                "currency",
                "value_at_stake",
                t,
                "resolved_at",
                window,
                &["resolved", "auto_resolved"],
            )?;
            let open = groups(
                conn,
                D,
                "severity",
                "value_at_stake",
                t,
                "detected_at",
                None,
                LIVE,
            )?;
            let created = groups(conn, C, "currency", "amount", t, "created_at", window, &[])?;
            let settled = groups(
                conn,
                C,
                "status",
                "amount",
                t,
                "settled_at",
                window,
                &["completed", "rejected"],
            )?;
            let mut by_currency: BTreeMap<String, CurrencyFigures> = BTreeMap::new();
            fn at<'a>(
                all: &'a mut BTreeMap<String, CurrencyFigures>,
                currency: &str,
            ) -> &'a mut CurrencyFigures {
                all.entry(currency.to_owned())
                    .or_insert_with(|| CurrencyFigures {
                        currency: currency.to_owned(),
                        ..Default::default()
                    })
            }
            for g in detected {
                let f = at(&mut by_currency, &g.currency);
                f.discrepancies_detected = g.n;
                f.value_detected = g.total();
            }
            for g in resolved {
                at(&mut by_currency, &g.currency).discrepancies_resolved = g.n;
            }
            let mut open_by_severity = BTreeMap::new();
            for g in open {
                *open_by_severity.entry(g.key.clone()).or_insert(0) += g.n;
                let f = at(&mut by_currency, &g.currency);
                f.open_discrepancies += g.n;
                f.open_value_at_stake = f.open_value_at_stake.saturating_add(g.total());
            }
            for g in created {
                let f = at(&mut by_currency, &g.currency);
                f.claims_created = g.n;
                f.amount_claimed = g.total();
            }
            let mut rejected_amounts: BTreeMap<String, i64> = BTreeMap::new();
            for g in settled {
                if g.key == "completed" {
                    let f = at(&mut by_currency, &g.currency);
                    f.claims_completed = g.n;
                    f.amount_recovered = g.total();
                } else {
                    at(&mut by_currency, &g.currency).claims_rejected = g.n;
                    rejected_amounts.insert(g.currency.clone(), g.total());
                }
            }
            let currencies = by_currency
                .into_values()
                .map(|mut f| {
                    let rejected = rejected_amounts.get(&f.currency).copied().unwrap_or(0);
                    let decided = f.amount_recovered.saturating_add(rejected);
                    f.recovery_rate_pct = (decided > 0).then(|| {
                        (f.amount_recovered as f64 * 10_000.0 / decided as f64).round() / 100.0
                    });
                    f
                })
                .collect();
            Ok(InventoryReport {
                from,
                to,
                currencies,
                open_by_severity,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(report))
}
