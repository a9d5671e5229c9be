//! `/analytics/forecast`: daily ticket volume for the next 7, 14 or 30 days per zone and
//! category, with prediction intervals, and the resource plan derived from it (see
//! `crate::planning`); `/analytics/forecast/factors`: the tenant's plan factors.

use actix_web::{HttpResponse, web};
use chrono::Duration;
use serde::Deserialize;

use agora_shared::{
    AppError, AppResult,
    db::now,
    error::FieldError,
    http::{Caller, Role, ValidJson},
};

use super::{
    TenantParam,
    views::{load, plain},
};
use crate::{
    AnalyticsState,
    domain::{self, Factors},
    planning::{self, ForecastReport, Inputs},
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

/// How far back the models look.
const HISTORY_DAYS: i64 = 365;

fn parse_params(p: &ForecastParams) -> AppResult<(usize, f64)> {
    let mut errors = Vec::new();
    let horizon = match p.horizon.as_deref() {
        None => 14,
        Some("7") => 7,
        Some("14") => 14,
        Some("30") => 30,
        Some(_) => {
            errors.push(FieldError::new("horizon", "must be 7, 14 or 30"));
            14
        }
    };
    let level = match p.level.as_deref().map(str::parse::<f64>) {
        None => 0.95,
        Some(Ok(l)) if (0.5..=0.99).contains(&l) => l,
        Some(_) => {
            errors.push(FieldError::new(
                "level",
                "must be a number from 0.5 to 0.99",
            ));
            0.95
        }
    };
    if let Some(c) = &p.category
        && !domain::CATEGORIES.contains(&c.as_str())
    {
        errors.push(FieldError::new(
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
    let report = forecast(&state, &caller, &params).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// The forecast report of the tenant `params` names (the caller's own by default), as the
/// HTTP API and gRPC `Forecast` give it.
pub async fn forecast(
    state: &AnalyticsState,
    caller: &Caller,
    params: &ForecastParams,
) -> AppResult<ForecastReport> {
    let tenant_id = super::tenant(caller, params.tenant_id.as_deref())?;
    let (horizon, level) = parse_params(params)?;
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
    let history = load(state, tenant_id.clone(), history_q).await?;
    let open = load(state, tenant_id.clone(), open_q).await?;
    let priorities = load(state, tenant_id.clone(), urgent_q).await?;
    let factors = state
        .db
        .read(move |conn| store::factors::get(conn, &tenant_id))
        .await?;

    let inputs = Inputs {
        history,
        open,
        priorities,
        factors,
        today,
        horizon,
        level,
    };
    tokio::task::spawn_blocking(move || planning::report(inputs))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("forecast task failed: {e}")))
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
