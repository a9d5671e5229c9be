//! `POST /analytics/query`: the one query endpoint (see `crate::query` for the language).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use agora_shared::{
    AppResult,
    db::now,
    http::{Caller, ValidJson},
};

use crate::{
    AnalyticsState,
    query::{self, Range, Row},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/analytics/query", web::post().to(run));
}

/// A query body; checked by `query::parse`, which names every offending part.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct QueryBody(pub Value);

/// The query language, for the OpenAPI document.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct QueryDoc {
    /// created, completed, breached, sla_compliance (percent), mean_time_to_complete (hours),
    /// assigned, mean_time_to_assign (hours), tickets, open, urgent_open, overdue.
    metrics: Vec<String>,
    /// "7d", "30d", "12mo", "all" or ["YYYY-MM-DD", "YYYY-MM-DD"] (default "30d").
    #[schema(value_type = Object)]
    date_range: Option<Value>,
    /// time:day, time:week, zone, team, category, priority, status.
    dimensions: Option<Vec<String>>,
    /// [operator, dimension, [values]] with is, is_not or contains, or ["and"|"or", [filters]].
    #[schema(value_type = Vec<Object>)]
    filters: Option<Vec<Value>>,
    /// [[metric or dimension, "asc"|"desc"], ...].
    #[schema(value_type = Vec<Object>)]
    order_by: Option<Vec<Value>>,
    /// 1 to 10000 (default 1000).
    limit: Option<u32>,
    /// Another tenant (platform admins only).
    tenant_id: Option<String>,
}

impl validator::Validate for QueryBody {
    fn validate(&self) -> Result<(), validator::ValidationErrors> {
        Ok(())
    }
}

/// Results in the query's metric and dimension order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueryResult {
    pub results: Vec<Row>,
    pub meta: Meta,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Meta {
    pub metrics: Vec<&'static str>,
    pub dimensions: Vec<&'static str>,
    /// The resolved inclusive range (null for `all`).
    pub date_range: Option<[String; 2]>,
}

/// Runs a parsed query for the caller (or the tenant a platform admin names).
pub async fn answer(
    state: &AnalyticsState,
    caller: &Caller,
    q: query::Query,
) -> AppResult<QueryResult> {
    let tenant_id = super::tenant(caller, q.tenant_id.as_deref())?;
    let meta = Meta {
        metrics: q.metrics.iter().map(|m| m.name()).collect(),
        dimensions: q.dimensions.iter().map(|d| d.name()).collect(),
        date_range: match q.range {
            Range::All => None,
            Range::Days(from, to) => Some([from.to_string(), to.to_string()]),
        },
    };
    let at = now();
    let results = state
        .db
        .read(move |conn| query::run(conn, &tenant_id, &q, at))
        .await?;
    Ok(QueryResult { results, meta })
}

#[utoipa::path(post, path = "/api/v1/analytics/query", tag = "analytics",
    request_body = QueryDoc,
    responses((status = 200, body = QueryResult), (status = 422, description = "names every offending part")),
    security(("bearer" = [])))]
pub async fn run(
    state: web::Data<AnalyticsState>,
    caller: Caller,
    body: ValidJson<QueryBody>,
) -> AppResult<HttpResponse> {
    let q = query::parse(&body.0.0, now().date())?;
    Ok(HttpResponse::Ok().json(answer(&state, &caller, q).await?))
}
