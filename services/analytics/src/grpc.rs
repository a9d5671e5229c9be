//! gRPC `agora.analytics.v1.AnalyticsService`: the query engine for other services, under the
//! HTTP API's tenant rules. A request is turned into the JSON query language and checked by
//! the same parser, so both APIs accept and refuse the same queries.

use std::sync::Arc;

use serde_json::{Value, json};
use tonic::{Request, Response, Status, service::Routes};

use agora_proto::analytics::v1::{
    self as pb,
    analytics_service_server::{AnalyticsService, AnalyticsServiceServer},
    filter::Kind,
};
use agora_shared::{db::now, grpc, http::Authenticator};

use crate::{
    AnalyticsState,
    http::{forecast, query_api},
    query,
};

pub struct Grpc {
    state: Arc<AnalyticsState>,
    auth: Authenticator,
}

/// gRPC routes of the analytics service, with `grpc.health.v1`.
pub fn routes(state: Arc<AnalyticsState>, auth: Authenticator) -> Routes {
    let (reporter, health) = grpc::health();
    tokio::spawn(async move { reporter.set_serving::<AnalyticsServiceServer<Grpc>>().await });
    Routes::new(health).add_service(AnalyticsServiceServer::new(Grpc { state, auth }))
}

fn filter_json(f: &pb::Filter) -> Value {
    match &f.kind {
        Some(Kind::Condition(c)) => json!([c.operator, c.dimension, c.values]),
        Some(Kind::And(g)) => json!(["and", g.filters.iter().map(filter_json).collect::<Vec<_>>()]),
        Some(Kind::Or(g)) => json!(["or", g.filters.iter().map(filter_json).collect::<Vec<_>>()]),
        None => Value::Null,
    }
}

/// The request as a query body for `query::parse`.
pub fn body_of(r: &pb::QueryRequest) -> Value {
    let mut body = json!({ "metrics": r.metrics });
    if !r.date_from.is_empty() || !r.date_to.is_empty() {
        body["date_range"] = json!([r.date_from, r.date_to]);
    } else if !r.date_range.is_empty() {
        body["date_range"] = json!(r.date_range);
    }
    if !r.dimensions.is_empty() {
        body["dimensions"] = json!(r.dimensions);
    }
    if !r.filters.is_empty() {
        body["filters"] = r.filters.iter().map(filter_json).collect();
    }
    if !r.order_by.is_empty() {
        body["order_by"] = r
            .order_by
            .iter()
            .map(|o| json!([o.key, if o.descending { "desc" } else { "asc" }]))
            .collect();
    }
    if r.limit > 0 {
        body["limit"] = json!(r.limit);
    }
    if !r.tenant_id.is_empty() {
        body["tenant_id"] = json!(r.tenant_id);
    }
    body
}

#[tonic::async_trait]
impl AnalyticsService for Grpc {
    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let caller = grpc::caller(&self.auth, &request).await?;
        let q = query::parse(&body_of(request.get_ref()), now().date())?;
        let result = query_api::answer(&self.state, &caller, q).await?;
        let [date_from, date_to] = result.meta.date_range.unwrap_or_default();
        Ok(Response::new(pb::QueryResponse {
            rows: result
                .results
                .into_iter()
                .map(|row| pb::Row {
                    dimensions: row
                        .dimensions
                        .into_iter()
                        .map(Option::unwrap_or_default)
                        .collect(),
                    metrics: row
                        .metrics
                        .iter()
                        .map(|v| pb::MetricValue { value: v.as_f64() })
                        .collect(),
                })
                .collect(),
            date_from,
            date_to,
        }))
    }

    async fn forecast(
        &self,
        request: Request<pb::ForecastRequest>,
    ) -> Result<Response<pb::ForecastResponse>, Status> {
        let caller = grpc::caller(&self.auth, &request).await?;
        let r = request.into_inner();
        let text = |s: String| (!s.is_empty()).then_some(s);
        let params = forecast::ForecastParams {
            tenant_id: text(r.tenant_id),
            horizon: (r.horizon > 0).then(|| r.horizon.to_string()),
            zone: text(r.zone),
            category: text(r.category),
            level: None,
        };
        let report = forecast::forecast(&self.state, &caller, &params).await?;
        let report_json = serde_json::to_string(&report)
            .map_err(|e| Status::internal(format!("the report does not serialize: {e}")))?;
        Ok(Response::new(pb::ForecastResponse { report_json }))
    }
}
