//! `/analytics/trends`: daily created, completed and breached, each with a 7-day moving average
//! and the change against the week before.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{Duration, NaiveDate};
use serde::Serialize;

use agora_shared::{AppError, AppResult, db::now, http::Caller};

use super::{
    Scope,
    views::{int, load, plain},
};
use crate::{
    AnalyticsState,
    query::{Dimension, Metric, Range},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/analytics/trends", web::get().to(trends));
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
