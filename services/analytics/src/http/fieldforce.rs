//! The field-force views, each a query or two on the engine: per-team performance, daily
//! trends, zones and the age of open tickets.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{Duration, NaiveDate};
use serde::Serialize;
use serde_json::Value;

use agora_shared::{AppError, AppResult, db::now, http::Caller};

use super::Scope;
use crate::{
    AnalyticsState,
    query::{self, Dimension, Metric, Query, Range, Row},
    store,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/analytics/performance", web::get().to(performance))
        .route("/analytics/trends", web::get().to(trends))
        .route("/analytics/zones", web::get().to(zones))
        .route("/analytics/tickets/aging", web::get().to(aging));
}

/// A query built by a view (no filters, no explicit order).
pub fn plain(metrics: &[Metric], dimensions: &[Dimension], range: Range) -> Query {
    Query {
        metrics: metrics.to_vec(),
        range,
        dimensions: dimensions.to_vec(),
        filters: Vec::new(),
        order: Vec::new(),
        limit: query::MAX_LIMIT,
        tenant_id: None,
    }
}

pub async fn load(state: &AnalyticsState, tenant_id: String, q: Query) -> AppResult<Vec<Row>> {
    let at = now();
    state
        .db
        .read(move |conn| query::run(conn, &tenant_id, &q, at))
        .await
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn float(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn range_json(range: Range) -> Option<[String; 2]> {
    match range {
        Range::All => None,
        Range::Days(a, b) => Some([a.to_string(), b.to_string()]),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamPerformance {
    /// Null for tickets without a team.
    pub team_id: Option<String>,
    pub completed: i64,
    pub mean_time_to_complete_hours: Option<f64>,
    /// Completed within the SLA, percent of completed.
    pub sla_compliance_pct: Option<f64>,
    /// Tickets whose first assignment fell in the range.
    pub assigned: i64,
    pub mean_time_to_first_assignment_hours: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PerformanceReport {
    pub date_range: Option<[String; 2]>,
    pub overall: TeamPerformance,
    pub teams: Vec<TeamPerformance>,
}

const PERFORMANCE: [Metric; 5] = [
    Metric::Completed,
    Metric::MeanTimeToComplete,
    Metric::SlaCompliance,
    Metric::Assigned,
    Metric::MeanTimeToAssign,
];

fn team_row(team_id: Option<String>, m: &[Value]) -> TeamPerformance {
    TeamPerformance {
        team_id,
        completed: int(&m[0]),
        mean_time_to_complete_hours: float(&m[1]),
        sla_compliance_pct: float(&m[2]),
        assigned: int(&m[3]),
        mean_time_to_first_assignment_hours: float(&m[4]),
    }
}

#[utoipa::path(get, path = "/api/v1/analytics/performance", tag = "analytics", params(Scope),
    responses((status = 200, body = PerformanceReport)), security(("bearer" = [])))]
pub async fn performance(
    state: web::Data<AnalyticsState>,
    caller: Caller,
    scope: web::Query<Scope>,
) -> AppResult<HttpResponse> {
    let tenant_id = scope.tenant(&caller)?;
    let range = scope.range(now().date(), "30d")?;
    let overall = load(&state, tenant_id.clone(), plain(&PERFORMANCE, &[], range)).await?;
    let teams = load(
        &state,
        tenant_id,
        plain(&PERFORMANCE, &[Dimension::Team], range),
    )
    .await?;
    Ok(HttpResponse::Ok().json(PerformanceReport {
        date_range: range_json(range),
        overall: team_row(None, &overall[0].metrics),
        teams: teams
            .iter()
            .map(|r| team_row(r.dimensions[0].clone(), &r.metrics))
            .collect(),
    }))
}

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Trend {
    pub count: i64,
    /// Mean of this day and the six before it.
    pub moving_average_7d: f64,
    /// The last seven days against the seven before, in percent (null when those were 0).
    pub week_over_week_pct: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TrendDay {
    pub date: String,
    pub created: Trend,
    pub completed: Trend,
    pub breached: Trend,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TrendReport {
    pub date_range: [String; 2],
    pub totals: BTreeMap<&'static str, i64>,
    pub days: Vec<TrendDay>,
}

/// Trend figures for day `i` of `series` (which starts 13 days before the first reported day).
pub fn trend(series: &[i64], i: usize) -> Trend {
    let week = |end: usize| series[end - 6..=end].iter().sum::<i64>();
    let this = week(i);
    let before = week(i - 7);
    Trend {
        count: series[i],
        moving_average_7d: this as f64 / 7.0,
        week_over_week_pct: (before > 0).then(|| (this - before) as f64 / before as f64 * 100.0),
    }
}

#[utoipa::path(get, path = "/api/v1/analytics/trends", tag = "analytics", params(Scope),
    responses((status = 200, body = TrendReport)), security(("bearer" = [])))]
pub async fn trends(
    state: web::Data<AnalyticsState>,
    caller: Caller,
    scope: web::Query<Scope>,
) -> AppResult<HttpResponse> {
    let tenant_id = scope.tenant(&caller)?;
    let Range::Days(from, to) = scope.range(now().date(), "30d")? else {
        return Err(AppError::invalid(
            "date_range",
            "trends need a bounded range",
        ));
    };
    if (to - from).num_days() > 731 {
        return Err(AppError::invalid(
            "date_range",
            "trends cover at most two years",
        ));
    }
    let start = from - Duration::days(13);
    let metrics = [Metric::Created, Metric::Completed, Metric::Breached];
    let rows = load(
        &state,
        tenant_id,
        plain(&metrics, &[Dimension::Day], Range::Days(start, to)),
    )
    .await?;
    let len = (to - start).num_days() as usize + 1;
    let mut series = vec![vec![0i64; len]; 3];
    for r in &rows {
        let Some(day) = r.dimensions[0]
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        let i = (day - start).num_days() as usize;
        for (k, s) in series.iter_mut().enumerate() {
            s[i] = int(&r.metrics[k]);
        }
    }
    let days = (13..len)
        .map(|i| TrendDay {
            date: (start + Duration::days(i as i64)).to_string(),
            created: trend(&series[0], i),
            completed: trend(&series[1], i),
            breached: trend(&series[2], i),
        })
        .collect();
    let totals = metrics
        .iter()
        .zip(&series)
        .map(|(m, s)| (m.name(), s[13..].iter().sum()))
        .collect();
    Ok(HttpResponse::Ok().json(TrendReport {
        date_range: [from.to_string(), to.to_string()],
        totals,
        days,
    }))
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
