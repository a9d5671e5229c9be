//! What the field-force views share: queries built in code and their results read back.

use serde_json::Value;

use agora_shared::{AppResult, db::now};

use crate::{
    AnalyticsState,
    query::{self, Dimension, Metric, Query, Range, Row},
};

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

/// Runs a view's query for the tenant.
pub async fn load(state: &AnalyticsState, tenant_id: String, q: Query) -> AppResult<Vec<Row>> {
    let at = now();
    state
        .db
        .read(move |conn| query::run(conn, &tenant_id, &q, at))
        .await
}

/// A count from a result row (0 when absent).
pub fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// A rate or mean from a result row (None when it had nothing to average).
pub fn float(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// The inclusive range as ISO dates (None for `all`).
pub fn range_json(range: Range) -> Option<[String; 2]> {
    match range {
        Range::All => None,
        Range::Days(a, b) => Some([a.to_string(), b.to_string()]),
    }
}
