//! `/analytics/zones` (open, urgent and overdue work and SLA compliance per zone) and
//! `/analytics/tickets/aging` (open tickets by age).

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::Serialize;

use agora_shared::{AppResult, db::now, http::Caller};

use super::{
    Scope,
    views::{float, int, load, plain},
};
use crate::{
    AnalyticsState,
    query::{Dimension, Metric, Range},
    store,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/analytics/zones", web::get().to(zones))
        .route("/analytics/tickets/aging", web::get().to(aging));
}

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ZoneReport {
    /// Null for tickets without a zone.
    pub zone: Option<String>,
    pub open: i64,
    pub urgent_open: i64,
    pub overdue: i64,
    /// Completed in the date range.
    pub completed: i64,
    pub sla_compliance_pct: Option<f64>,
}

#[utoipa::path(get, path = "/api/v1/analytics/zones", tag = "analytics", params(Scope),
    responses((status = 200, body = [ZoneReport])), security(("bearer" = [])))]
pub async fn zones(
    state: web::Data<AnalyticsState>,
    caller: Caller,
    scope: web::Query<Scope>,
) -> AppResult<HttpResponse> {
    let tenant_id = scope.tenant(&caller)?;
    let range = scope.range(now().date(), "30d")?;
    let now_open = load(
        &state,
        tenant_id.clone(),
        plain(
            &[Metric::Open, Metric::UrgentOpen, Metric::Overdue],
            &[Dimension::Zone],
            Range::All,
        ),
    )
    .await?;
    let done = load(
        &state,
        tenant_id,
        plain(
            &[Metric::Completed, Metric::SlaCompliance],
            &[Dimension::Zone],
            range,
        ),
    )
    .await?;
    let mut zones: BTreeMap<Option<String>, ZoneReport> = BTreeMap::new();
    for r in now_open {
        let z = zones.entry(r.dimensions[0].clone()).or_default();
        z.open = int(&r.metrics[0]);
        z.urgent_open = int(&r.metrics[1]);
        z.overdue = int(&r.metrics[2]);
    }
    for r in done {
        let z = zones.entry(r.dimensions[0].clone()).or_default();
        z.completed = int(&r.metrics[0]);
        z.sla_compliance_pct = float(&r.metrics[1]);
    }
    let report: Vec<ZoneReport> = zones
        .into_iter()
        .map(|(zone, z)| ZoneReport { zone, ..z })
        .collect();
    Ok(HttpResponse::Ok().json(report))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgingReport {
    pub as_of: String,
    pub open: i64,
    /// Open tickets by age since creation: 0-1d, 1-3d, 3-7d, >7d.
    pub buckets: BTreeMap<&'static str, i64>,
    pub by_priority: BTreeMap<String, BTreeMap<&'static str, i64>>,
}

const AGES: [&str; 4] = ["0-1d", "1-3d", "3-7d", ">7d"];

#[utoipa::path(get, path = "/api/v1/analytics/tickets/aging", tag = "analytics", params(Scope),
    responses((status = 200, body = AgingReport)), security(("bearer" = [])))]
pub async fn aging(
    state: web::Data<AnalyticsState>,
    caller: Caller,
    scope: web::Query<Scope>,
) -> AppResult<HttpResponse> {
    let tenant_id = scope.tenant(&caller)?;
    let at = now();
    let rows = state
        .db
        .read(move |conn| store::facts::aging(conn, &tenant_id, at))
        .await?;
    let mut buckets: BTreeMap<&'static str, i64> = AGES.iter().map(|a| (*a, 0)).collect();
    let mut by_priority = BTreeMap::new();
    for (priority, counts) in rows {
        for (age, n) in AGES.iter().zip(counts) {
            *buckets.entry(age).or_default() += n;
        }
        by_priority.insert(priority, AGES.iter().copied().zip(counts).collect());
    }
    Ok(HttpResponse::Ok().json(AgingReport {
        as_of: agora_shared::db::utc(at).to_rfc3339(),
        open: buckets.values().sum(),
        buckets,
        by_priority,
    }))
}
