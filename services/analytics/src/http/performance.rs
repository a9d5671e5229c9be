//! `/analytics/performance`: per team, completions, time to complete, SLA compliance and time
//! to the first assignment.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::Value;

use agora_shared::{AppResult, db::now, http::Caller};

use super::{
    Scope,
    views::{float, int, load, plain, range_json},
};
use crate::{
    AnalyticsState,
    query::{Dimension, Metric},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/analytics/performance", web::get().to(performance));
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
