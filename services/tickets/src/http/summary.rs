//! `/tickets/stats/summary`: the tenant's counts by status, priority, category, zone and SLA
//! standing, and the mean time to complete.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};

use agora_shared::{AppResult, db::now, http::Caller};

use crate::{
    TicketsState,
    domain::{Category, Priority, SlaStatus, Status},
    model::Summary,
    store::{self, tickets::Stats},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tickets/stats/summary", web::get().to(summary));
}

/// Counts keyed by every value of a closed set (zeros included), plus any others present.
fn counts(all: &[&str], found: &[(String, i64)]) -> BTreeMap<String, i64> {
    let mut map: BTreeMap<String, i64> = all.iter().map(|k| ((*k).to_owned(), 0)).collect();
    for (k, n) in found {
        *map.entry(k.clone()).or_default() += n;
    }
    map
}

impl From<Stats> for Summary {
    fn from(s: Stats) -> Self {
        Self {
            total: s.total,
            by_status: counts(Status::NAMES, &s.by_status),
            by_priority: counts(Priority::NAMES, &s.by_priority),
            by_category: counts(Category::NAMES, &s.by_category),
            by_zone: counts(&[], &s.by_zone),
            by_sla_status: counts(SlaStatus::NAMES, &s.by_sla_status),
            completed: s.completed,
            mean_time_to_complete_hours: s.mean_time_to_complete_secs.map(|secs| secs / 3600.0),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/tickets/stats/summary", tag = "tickets",
    responses((status = 200, body = Summary)), security(("bearer" = [])))]
pub async fn summary(state: web::Data<TicketsState>, caller: Caller) -> AppResult<HttpResponse> {
    let at = now();
    let stats = state
        .db
        .read(move |conn| store::tickets::stats(conn, &caller.tenant_id, at))
        .await?;
    Ok(HttpResponse::Ok().json(Summary::from(stats)))
}
