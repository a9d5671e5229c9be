//! Field force: what a tenant's figures say, from analytics' gRPC (with the caller's own
//! credential, so only the caller's tenant is seen): the zones at risk now (overdue and urgent
//! open tickets), SLA compliance this week against the week before, and highlights written
//! from those figures by rules. Nothing is said that the figures do not show.

use actix_web::{HttpResponse, web};
use chrono::{Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use agora_proto::analytics::v1::{
    ForecastRequest, QueryRequest, QueryResponse, analytics_service_client::AnalyticsServiceClient,
};
use agora_shared::{AppError, AppResult, grpc::Forward, http::Caller};

use crate::AiState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/ai/insights", web::get().to(insights));
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneRisk {
    pub zone: String,
    pub open: i64,
    pub urgent_open: i64,
    pub overdue: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Week {
    /// Inclusive ISO dates.
    pub from: String,
    pub to: String,
    pub completed: i64,
    pub breached: i64,
    /// % of completed tickets that met their due time (none when none was completed).
    pub sla_compliance_pct: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SlaTrend {
    pub this_week: Week,
    pub previous_week: Week,
    /// improving, worsening, steady (within 5 points), or unknown (a week without completions).
    pub trend: &'static str,
}

/// A zone's next week, from analytics' forecast and resource plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneOutlook {
    pub zone: String,
    /// Tickets the forecast expects in the next 7 days.
    pub forecast_tickets: f64,
    /// Open now.
    pub open: i64,
    /// Teams and hours the plan needs for open and expected tickets.
    pub teams: i64,
    pub hours: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InsightsOut {
    /// Zones with overdue or urgent open tickets, most at risk first.
    pub zones_at_risk: Vec<ZoneRisk>,
    pub sla: SlaTrend,
    /// The next 7 days per zone, busiest first.
    pub outlook: Vec<ZoneOutlook>,
    /// The figures above in sentences.
    pub highlights: Vec<String>,
    pub provider: &'static str,
    pub model: &'static str,
}

fn metric(resp: &QueryResponse, row: usize, i: usize) -> Option<f64> {
    resp.rows.get(row)?.metrics.get(i)?.value
}

async fn query(
    state: &AiState,
    caller: &Caller,
    request: QueryRequest,
) -> AppResult<QueryResponse> {
    let mut client = AnalyticsServiceClient::with_interceptor(
        state.analytics.clone(),
        Forward::for_caller(caller),
    );
    Ok(client
        .query(request)
        .await
        .map_err(crate::recommend::grpc_error)?
        .into_inner())
}

async fn week(state: &AiState, caller: &Caller, ends_days_ago: i64) -> AppResult<Week> {
    let to = (Utc::now() - Duration::days(ends_days_ago)).date_naive();
    let from = to - Duration::days(6);
    let resp = query(
        state,
        caller,
        QueryRequest {
            metrics: vec![
                "completed".into(),
                "breached".into(),
                "sla_compliance".into(),
            ],
            date_from: from.to_string(),
            date_to: to.to_string(),
            ..QueryRequest::default()
        },
    )
    .await?;
    // No row: nothing happened that week.
    Ok(Week {
        from: from.to_string(),
        to: to.to_string(),
        completed: metric(&resp, 0, 0).unwrap_or(0.0) as i64,
        breached: metric(&resp, 0, 1).unwrap_or(0.0) as i64,
        sla_compliance_pct: metric(&resp, 0, 2).map(|v| (v * 10.0).round() / 10.0),
    })
}

#[utoipa::path(get, path = "/api/v1/ai/insights", tag = "ai",
    responses((status = 200, description = "the tenant's zones at risk, SLA trend and highlights, from analytics", body = InsightsOut),
        (status = 502), (status = 503)),
    security(("bearer" = [])))]
pub async fn insights(state: web::Data<AiState>, caller: Caller) -> AppResult<HttpResponse> {
    let out = gather(&state, &caller).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// The caller's tenant's insights.
pub async fn gather(state: &AiState, caller: &Caller) -> AppResult<InsightsOut> {
    let at_risk = zones_at_risk(state, caller).await?;
    let sla = sla(state, caller).await?;
    let outlook = outlook(state, caller).await?;
    let mut highlights = Vec::new();
    for z in at_risk.iter().take(3) {
        highlights.push(format!(
            "{}: {} overdue and {} urgent of {} open tickets.",
            z.zone, z.overdue, z.urgent_open, z.open
        ));
    }
    if at_risk.is_empty() {
        highlights.push("No zone has overdue or urgent open tickets.".into());
    }
    if let Some(busiest) = outlook.first() {
        highlights.push(format!(
            "Next 7 days: {} expects {:.1} new tickets on top of {} open; the plan needs {} team(s) and {:.0} hours.",
            busiest.zone, busiest.forecast_tickets, busiest.open, busiest.teams, busiest.hours
        ));
    }
    highlights.push(sla_sentence(&sla));
    Ok(InsightsOut {
        zones_at_risk: at_risk,
        sla,
        outlook,
        highlights,
        provider: crate::local::PROVIDER,
        model: "insight-rules",
    })
}

/// Zones with overdue or urgent open tickets now, most at risk first.
pub async fn zones_at_risk(state: &AiState, caller: &Caller) -> AppResult<Vec<ZoneRisk>> {
    let zones = query(
        state,
        caller,
        QueryRequest {
            metrics: vec!["open".into(), "urgent_open".into(), "overdue".into()],
            dimensions: vec!["zone".into()],
            date_range: "all".into(),
            ..QueryRequest::default()
        },
    )
    .await?;
    let mut at_risk: Vec<ZoneRisk> = zones
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| ZoneRisk {
            zone: match row.dimensions.first().map(String::as_str) {
                Some("") | None => "(no zone)".into(),
                Some(z) => z.to_owned(),
            },
            open: metric(&zones, i, 0).unwrap_or(0.0) as i64,
            urgent_open: metric(&zones, i, 1).unwrap_or(0.0) as i64,
            overdue: metric(&zones, i, 2).unwrap_or(0.0) as i64,
        })
        .filter(|z| z.overdue > 0 || z.urgent_open > 0)
        .collect();
    at_risk.sort_by(|a, b| {
        (b.overdue, b.urgent_open, b.open)
            .cmp(&(a.overdue, a.urgent_open, a.open))
            .then(a.zone.cmp(&b.zone))
    });
    Ok(at_risk)
}

/// SLA compliance this week and the week before, and the trend.
pub async fn sla(state: &AiState, caller: &Caller) -> AppResult<SlaTrend> {
    let this_week = week(state, caller, 0).await?;
    let previous_week = week(state, caller, 7).await?;
    let trend = match (
        this_week.sla_compliance_pct,
        previous_week.sla_compliance_pct,
    ) {
        (Some(now), Some(before)) if now > before + 5.0 => "improving",
        (Some(now), Some(before)) if now < before - 5.0 => "worsening",
        (Some(_), Some(_)) => "steady",
        _ => "unknown",
    };
    Ok(SlaTrend {
        this_week,
        previous_week,
        trend,
    })
}

/// The SLA trend in a sentence.
pub fn sla_sentence(sla: &SlaTrend) -> String {
    let (this, before) = (&sla.this_week, &sla.previous_week);
    match (this.sla_compliance_pct, before.sla_compliance_pct) {
        (Some(now), Some(was)) => format!(
            "SLA compliance is {now}% this week against {was}% the week before ({}).",
            sla.trend
        ),
        (Some(now), None) => format!(
            "SLA compliance is {now}% this week ({} completed, {} breached); the week before had no completions.",
            this.completed, this.breached
        ),
        _ => "No ticket was completed this week.".into(),
    }
}

/// The next 7 days per zone from analytics' forecast report, busiest first (by open and
/// expected tickets).
async fn outlook(state: &AiState, caller: &Caller) -> AppResult<Vec<ZoneOutlook>> {
    let mut client = AnalyticsServiceClient::with_interceptor(
        state.analytics.clone(),
        Forward::for_caller(caller),
    );
    let report = client
        .forecast(ForecastRequest {
            horizon: 7,
            ..ForecastRequest::default()
        })
        .await
        .map_err(crate::recommend::grpc_error)?
        .into_inner();
    let report: serde_json::Value = serde_json::from_str(&report.report_json)
        .map_err(|_| AppError::BadGateway("analytics' forecast does not read".into()))?;
    let mut zones: Vec<ZoneOutlook> = report["plan"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|z| ZoneOutlook {
            zone: z["zone"].as_str().unwrap_or("(no zone)").to_owned(),
            forecast_tickets: (z["forecast_tickets"].as_f64().unwrap_or(0.0) * 10.0).round() / 10.0,
            open: z["open"].as_i64().unwrap_or(0),
            teams: z["teams"].as_i64().unwrap_or(0),
            hours: z["hours"].as_f64().unwrap_or(0.0),
        })
        .collect();
    zones.sort_by(|a, b| {
        (b.open as f64 + b.forecast_tickets)
            .total_cmp(&(a.open as f64 + a.forecast_tickets))
            .then(a.zone.cmp(&b.zone))
    });
    Ok(zones)
}
