//! `/analytics/forecast`: daily ticket volume for the next 7, 14 or 30 days per zone and
//! category, with prediction intervals, and the resource plan derived from it per zone;
//! `/analytics/forecast/factors`: the tenant's plan factors.
//!
//! The plan counts as active work the tickets open now plus the forecast ones; urgent work is
//! the urgent tickets open now plus the forecast's expected urgent share (the zone's share of
//! urgent tickets in the history); fibre work is the open and forecast fibre-installation and
//! repair tickets.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::Duration;
use serde::{Deserialize, Serialize};

use agora_shared::{
    AppError, AppResult,
    db::now,
    http::{Caller, Role, ValidJson},
};

use super::{
    TenantParam,
    fieldforce::{load, plain},
};
use crate::{
    AnalyticsState,
    domain::{self, Factors, Plan},
    forecast,
    query::{Dimension, Filter, Metric, Range},
    store,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/analytics/forecast", web::get().to(get_forecast))
        .route("/analytics/forecast/factors", web::get().to(get_factors))
        .route("/analytics/forecast/factors", web::put().to(put_factors));
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ForecastParams {
    pub tenant_id: Option<String>,
    /// 7, 14 (default) or 30 days.
    pub horizon: Option<String>,
    /// Only this zone.
    pub zone: Option<String>,
    /// Only this category.
    pub category: Option<String>,
    /// Prediction interval level, 0.5 to 0.99 (default 0.95).
    pub level: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Point {
    pub date: String,
    pub value: f64,
    pub lower: f64,
    pub upper: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Series {
    pub zone: Option<String>,
    pub category: String,
    /// Expected tickets over the horizon, with the sums of the daily bounds.
    pub total: f64,
    pub total_lower: f64,
    pub total_upper: f64,
    pub points: Vec<Point>,
    /// Why there is no forecast (too little history), when there is none.
    pub note: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ZonePlan {
    pub zone: Option<String>,
    pub forecast_tickets: f64,
    pub open: i64,
    pub active: f64,
    pub urgent: f64,
    pub fibre_tickets: f64,
    #[serde(flatten)]
    pub plan: Plan,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ForecastReport {
    pub model: &'static str,
    pub horizon_days: usize,
    pub level: f64,
    /// First and last forecast day.
    pub from: String,
    pub to: String,
    /// Days of history the models were fitted on.
    pub history_days: usize,
    pub series: Vec<Series>,
    pub plan: Vec<ZonePlan>,
    pub factors: Factors,
}

const HISTORY_DAYS: i64 = 365;

fn parse_params(p: &ForecastParams) -> AppResult<(usize, f64)> {
    let mut errors = Vec::new();
    let horizon = match p.horizon.as_deref() {
        None => 14,
        Some("7") => 7,
        Some("14") => 14,
        Some("30") => 30,
        Some(_) => {
            errors.push(agora_shared::error::FieldError::new(
                "horizon",
                "must be 7, 14 or 30",
            ));
            14
        }
    };
    let level = match p.level.as_deref().map(str::parse::<f64>) {
        None => 0.95,
        Some(Ok(l)) if (0.5..=0.99).contains(&l) => l,
        Some(_) => {
            errors.push(agora_shared::error::FieldError::new(
                "level",
                "must be a number from 0.5 to 0.99",
            ));
            0.95
        }
    };
    if let Some(c) = &p.category
        && !domain::CATEGORIES.contains(&c.as_str())
    {
        errors.push(agora_shared::error::FieldError::new(
            "category",
            format!("must be one of {}", domain::CATEGORIES.join(", ")),
        ));
    }
    if errors.is_empty() {
        Ok((horizon, level))
    } else {
        Err(AppError::Validation(errors))
    }
}

#[utoipa::path(get, path = "/api/v1/analytics/forecast", tag = "analytics", params(ForecastParams),
    responses((status = 200, body = ForecastReport)), security(("bearer" = [])))]
pub async fn get_forecast(
    state: web::Data<AnalyticsState>,
    caller: Caller,
    params: web::Query<ForecastParams>,
) -> AppResult<HttpResponse> {
    let tenant_id = super::tenant(&caller, params.tenant_id.as_deref())?;
    let (horizon, level) = parse_params(&params)?;
    let today = now().date();
    let yesterday = today - Duration::days(1);
    let mut filters = Vec::new();
    if let Some(z) = &params.zone {
        filters.push(Filter::Is(Dimension::Zone, vec![z.clone()]));
    }
    if let Some(c) = &params.category {
        filters.push(Filter::Is(Dimension::Category, vec![c.clone()]));
    }
    let mut history_q = plain(
        &[Metric::Created],
        &[Dimension::Day, Dimension::Zone, Dimension::Category],
        Range::Days(yesterday - Duration::days(HISTORY_DAYS - 1), yesterday),
    );
    history_q.filters = filters.clone();
    let mut open_q = plain(
        &[Metric::Open, Metric::UrgentOpen],
        &[Dimension::Zone, Dimension::Category],
        Range::All,
    );
    open_q.filters = filters.clone();
    let mut urgent_q = plain(
        &[Metric::Created],
        &[Dimension::Zone, Dimension::Priority],
        history_q.range,
    );
    urgent_q.filters = filters;
    let history = load(&state, tenant_id.clone(), history_q).await?;
    let open = load(&state, tenant_id.clone(), open_q).await?;
    let priorities = load(&state, tenant_id.clone(), urgent_q).await?;
    let factors = state
        .db
        .read(move |conn| store::factors::get(conn, &tenant_id))
        .await?;

    // Daily series per (zone, category), zero-filled from the tenant's first day of history.
    let first = history
        .iter()
        .filter_map(|r| r.dimensions[0].clone())
        .min()
        .and_then(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
    let days = first.map_or(0, |f| (yesterday - f).num_days() as usize + 1);
    let mut series: BTreeMap<(Option<String>, String), Vec<f64>> = BTreeMap::new();
    if let Some(first) = first {
        for r in &history {
            let (Some(day), Some(category)) = (&r.dimensions[0], &r.dimensions[2]) else {
                continue;
            };
            let Ok(day) = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d") else {
                continue;
            };
            let s = series
                .entry((r.dimensions[1].clone(), category.clone()))
                .or_insert_with(|| vec![0.0; days]);
            s[(day - first).num_days() as usize] += r.metrics[0].as_f64().unwrap_or(0.0);
        }
    }
    let fits = tokio::task::spawn_blocking(move || {
        series
            .into_iter()
            .map(|(key, values)| {
                let result = forecast::daily(&values, horizon, level);
                (key, result)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("forecast task failed: {e}")))?;

    let mut out = Vec::new();
    let mut zone_work: BTreeMap<Option<String>, ZonePlan> = BTreeMap::new();
    let blank = |zone: Option<String>| ZonePlan {
        zone,
        forecast_tickets: 0.0,
        open: 0,
        active: 0.0,
        urgent: 0.0,
        fibre_tickets: 0.0,
        plan: domain::plan(0.0, 0.0, 0.0, &factors),
    };
    for ((zone, category), result) in fits {
        let plan = zone_work
            .entry(zone.clone())
            .or_insert_with(|| blank(zone.clone()));
        match result {
            Ok(p) => {
                let total: f64 = p.point.iter().sum();
                plan.forecast_tickets += total;
                if domain::FIBRE_CATEGORIES.contains(&category.as_str()) {
                    plan.fibre_tickets += total;
                }
                out.push(Series {
                    zone,
                    category,
                    total,
                    total_lower: p.lower.iter().sum(),
                    total_upper: p.upper.iter().sum(),
                    points: (0..horizon)
                        .map(|i| Point {
                            date: (today + Duration::days(i as i64)).to_string(),
                            value: p.point[i],
                            lower: p.lower[i],
                            upper: p.upper[i],
                        })
                        .collect(),
                    note: None,
                });
            }
            Err(note) => out.push(Series {
                zone,
                category,
                total: 0.0,
                total_lower: 0.0,
                total_upper: 0.0,
                points: Vec::new(),
                note: Some(note),
            }),
        }
    }
    // Urgent share of each zone's history.
    let mut share: BTreeMap<Option<String>, (f64, f64)> = BTreeMap::new();
    for r in &priorities {
        let n = r.metrics[0].as_f64().unwrap_or(0.0);
        let s = share.entry(r.dimensions[0].clone()).or_default();
        s.1 += n;
        if r.dimensions[1].as_deref() == Some(domain::URGENT) {
            s.0 += n;
        }
    }
    for r in &open {
        let plan = zone_work
            .entry(r.dimensions[0].clone())
            .or_insert_with(|| blank(r.dimensions[0].clone()));
        let open = r.metrics[0].as_i64().unwrap_or(0);
        plan.open += open;
        plan.urgent += r.metrics[1].as_f64().unwrap_or(0.0);
        if r.dimensions[1]
            .as_deref()
            .is_some_and(|c| domain::FIBRE_CATEGORIES.contains(&c))
        {
            plan.fibre_tickets += open as f64;
        }
    }
    let plan = zone_work
        .into_values()
        .map(|mut z| {
            let (urgent, all) = share.get(&z.zone).copied().unwrap_or_default();
            if all > 0.0 {
                z.urgent += z.forecast_tickets * urgent / all;
            }
            z.active = z.open as f64 + z.forecast_tickets;
            z.plan = domain::plan(z.active, z.urgent, z.fibre_tickets, &factors);
            z
        })
        .collect();
    Ok(HttpResponse::Ok().json(ForecastReport {
        model: forecast::MODEL,
        horizon_days: horizon,
        level,
        from: today.to_string(),
        to: (today + Duration::days(horizon as i64 - 1)).to_string(),
        history_days: days,
        series: out,
        plan,
        factors,
    }))
}

#[utoipa::path(get, path = "/api/v1/analytics/forecast/factors", tag = "analytics", params(TenantParam),
    responses((status = 200, body = Factors)), security(("bearer" = [])))]
pub async fn get_factors(
    state: web::Data<AnalyticsState>,
    caller: Caller,
    params: web::Query<TenantParam>,
) -> AppResult<HttpResponse> {
    let tenant_id = super::tenant(&caller, params.tenant_id.as_deref())?;
    let factors = state
        .db
        .read(move |conn| store::factors::get(conn, &tenant_id))
        .await?;
    Ok(HttpResponse::Ok().json(factors))
}

/// Factors as sent: all four.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct FactorsBody(#[schema(inline)] Factors);

impl validator::Validate for FactorsBody {
    fn validate(&self) -> Result<(), validator::ValidationErrors> {
        let mut errors = validator::ValidationErrors::new();
        for field in self.0.invalid() {
            let mut e = validator::ValidationError::new("positive");
            e.message = Some("must be a positive number".into());
            errors.add(field, e);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[utoipa::path(put, path = "/api/v1/analytics/forecast/factors", tag = "analytics", params(TenantParam),
    request_body = Factors,
    responses((status = 200, body = Factors), (status = 403, description = "tenant admins or analytics:manage only")),
    security(("bearer" = [])))]
pub async fn put_factors(
    state: web::Data<AnalyticsState>,
    caller: Caller,
    params: web::Query<TenantParam>,
    body: ValidJson<FactorsBody>,
) -> AppResult<HttpResponse> {
    let tenant_id = super::tenant(&caller, params.tenant_id.as_deref())?;
    if caller.role < Role::TenantAdmin {
        caller.require_permission("analytics:manage")?;
    }
    let factors = body.0.0;
    state
        .db
        .write(move |conn| store::factors::put(conn, &tenant_id, &factors, now()))
        .await?;
    Ok(HttpResponse::Ok().json(factors))
}
