//! `/dashboard/*`: the overview (totals and the last 24 hours), the activity feed and the
//! platform's request performance.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{Duration, NaiveDateTime};
use serde::{Deserialize, Serialize};

use agora_shared::{
    AppError, AppResult,
    db::{now, utc},
    http::{Caller, Page, PageParams},
};

use super::{
    TenantParam,
    views::{load, plain},
};
use crate::{
    AnalyticsState, domain,
    query::{Metric, Range},
    scrape::Performance,
    store::{self, activities::ActivityRow},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard/overview", web::get().to(overview))
        .route("/dashboard/activities", web::get().to(activities))
        .route("/dashboard/performance", web::get().to(performance));
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventCount {
    pub source: String,
    pub event_type: String,
    pub count: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Overview {
    pub as_of: String,
    /// All-time ticket figures (open and overdue: now).
    pub tickets: BTreeMap<&'static str, i64>,
    /// Tickets created, completed and breached in the last 24 hours.
    pub last_24h: BTreeMap<&'static str, i64>,
    /// Events received in the last 24 hours, by producing service and type.
    pub events_24h: Vec<EventCount>,
}

#[utoipa::path(get, path = "/api/v1/dashboard/overview", tag = "dashboard", params(TenantParam),
    responses((status = 200, body = Overview)), security(("bearer" = [])))]
pub async fn overview(
    state: web::Data<AnalyticsState>,
    caller: Caller,
    params: web::Query<TenantParam>,
) -> AppResult<HttpResponse> {
    let tenant_id = super::tenant(&caller, params.tenant_id.as_deref())?;
    let at = now();
    let metrics = [
        Metric::Tickets,
        Metric::Open,
        Metric::Overdue,
        Metric::Completed,
        Metric::Breached,
    ];
    let all = load(&state, tenant_id.clone(), plain(&metrics, &[], Range::All)).await?;
    let tickets = metrics
        .iter()
        .zip(&all[0].metrics)
        .map(|(m, v)| {
            (
                if *m == Metric::Tickets {
                    "total"
                } else {
                    m.name()
                },
                v.as_i64().unwrap_or(0),
            )
        })
        .collect();
    let since = domain::hour_bucket(at - Duration::hours(23));
    let t = tenant_id.clone();
    let day = state
        .db
        .read(move |conn| store::rollups::sum_hours(conn, &t, &since))
        .await?;
    let events = state
        .db
        .read(move |conn| {
            store::activities::counts_since(conn, &tenant_id, at - Duration::hours(24))
        })
        .await?;
    Ok(HttpResponse::Ok().json(Overview {
        as_of: utc(at).to_rfc3339(),
        tickets,
        last_24h: BTreeMap::from([
            ("created", day.created),
            ("completed", day.completed),
            ("breached", day.breached),
        ]),
        events_24h: events
            .into_iter()
            .map(|(source, event_type, count)| EventCount {
                source,
                event_type,
                count,
            })
            .collect(),
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ActivityParams {
    pub tenant_id: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

fn parse_cursor(text: &str) -> Option<(NaiveDateTime, String)> {
    let (micros, id) = text.split_once(':')?;
    let at = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
    Some((at, id.to_owned()))
}

#[utoipa::path(get, path = "/api/v1/dashboard/activities", tag = "dashboard", params(ActivityParams),
    responses((status = 200, description = "newest first", body = ActivityPage)),
    security(("bearer" = [])))]
pub async fn activities(
    state: web::Data<AnalyticsState>,
    caller: Caller,
    params: web::Query<ActivityParams>,
) -> AppResult<HttpResponse> {
    let tenant_id = super::tenant(&caller, params.tenant_id.as_deref())?;
    let page = PageParams {
        limit: match params.limit.as_deref().map(str::parse::<i64>) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => return Err(AppError::invalid("limit", "must be a whole number")),
        },
        cursor: params.cursor.clone(),
    };
    let limit = page.limit()?;
    let after = match page.after()? {
        None => None,
        Some(text) => Some(
            parse_cursor(&text)
                .ok_or_else(|| AppError::invalid("cursor", "is not a cursor from this API"))?,
        ),
    };
    let rows = state
        .db
        .read(move |conn| store::activities::page(conn, &tenant_id, after, limit))
        .await?;
    let page = Page::from_rows(rows, limit, |r: &ActivityRow| {
        format!("{}:{}", r.occurred_at.and_utc().timestamp_micros(), r.id)
    });
    Ok(HttpResponse::Ok().json(ActivityPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// A page of the activity feed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ActivityPage {
    pub items: Vec<ActivityRow>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/dashboard/performance", tag = "dashboard",
    responses((status = 200, body = Performance), (status = 403, description = "platform admins only")),
    security(("bearer" = [])))]
pub async fn performance(
    state: web::Data<AnalyticsState>,
    caller: Caller,
) -> AppResult<HttpResponse> {
    if !caller.is_platform_admin() {
        return Err(AppError::Forbidden(
            "request performance covers the whole platform: platform admins only".into(),
        ));
    }
    Ok(HttpResponse::Ok().json(state.scraper.performance().await))
}
