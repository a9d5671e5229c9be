//! Answers a parsed query: one GROUP BY over the daily rollups for flow metrics, one over the
//! facts for stock metrics, merged by dimension values, then ordered and cut to the limit.

use std::{cmp::Ordering, collections::BTreeMap};

use chrono::{NaiveDate, NaiveDateTime};
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Text},
};
use serde::Serialize;
use serde_json::Value as Json;

use agora_shared::{AppResult, db::DbConnection};

use super::{Dimension, Filter, Key, Metric, Query, Range};
use crate::{
    domain::{self, Counters},
    store::sql::{Sql, Value},
};

/// One result row: dimension values (null for "none") and metric values (null when a rate or
/// mean has nothing to average), in the query's order.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Row {
    #[schema(value_type = Vec<Option<String>>)]
    pub dimensions: Vec<Option<String>>,
    #[schema(value_type = Vec<Option<f64>>)]
    pub metrics: Vec<Json>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    flow: Counters,
    tickets: i64,
    open: i64,
    urgent_open: i64,
    overdue: i64,
}

impl Totals {
    fn value(&self, m: Metric) -> Json {
        let c = &self.flow;
        let ratio = |num: i64, den: i64, scale: f64| {
            if den == 0 {
                Json::Null
            } else {
                Json::from(num as f64 / den as f64 * scale)
            }
        };
        match m {
            Metric::Created => c.created.into(),
            Metric::Completed => c.completed.into(),
            Metric::Breached => c.breached.into(),
            Metric::SlaCompliance => ratio(c.completed_in_sla, c.completed, 100.0),
            Metric::MeanTimeToComplete => ratio(c.completion_secs, c.completed, 1.0 / 3600.0),
            Metric::Assigned => c.assigned.into(),
            Metric::MeanTimeToAssign => ratio(c.assign_secs, c.assigned, 1.0 / 3600.0),
            Metric::Tickets => self.tickets.into(),
            Metric::Open => self.open.into(),
            Metric::UrgentOpen => self.urgent_open.into(),
            Metric::Overdue => self.overdue.into(),
        }
    }
}

#[derive(QueryableByName)]
struct Grouped {
    #[diesel(sql_type = Text)]
    d_time: String,
    #[diesel(sql_type = Text)]
    d_zone: String,
    #[diesel(sql_type = Text)]
    d_team: String,
    #[diesel(sql_type = Text)]
    d_category: String,
    #[diesel(sql_type = Text)]
    d_priority: String,
    #[diesel(sql_type = Text)]
    d_status: String,
    #[diesel(sql_type = BigInt)]
    m1: i64,
    #[diesel(sql_type = BigInt)]
    m2: i64,
    #[diesel(sql_type = BigInt)]
    m3: i64,
    #[diesel(sql_type = BigInt)]
    m4: i64,
    #[diesel(sql_type = BigInt)]
    m5: i64,
    #[diesel(sql_type = BigInt)]
    m6: i64,
    #[diesel(sql_type = BigInt)]
    m7: i64,
}

impl Grouped {
    fn key(&self, dims: &[Dimension]) -> Vec<String> {
        dims.iter()
            .map(|d| match d {
                Dimension::Day => self.d_time.clone(),
                Dimension::Week => NaiveDate::parse_from_str(&self.d_time, "%Y-%m-%d")
                    .map(|day| domain::week_start(day).to_string())
                    .unwrap_or_else(|_| self.d_time.clone()),
                Dimension::Zone => self.d_zone.clone(),
                Dimension::Team => self.d_team.clone(),
                Dimension::Category => self.d_category.clone(),
                Dimension::Priority => self.d_priority.clone(),
                Dimension::Status => self.d_status.clone(),
            })
            .collect()
    }
}

/// The columns of a source for each dimension (None: not available there).
struct Source {
    table: &'static str,
    time: &'static str,
    status: Option<&'static str>,
}

const ROLLUPS: Source = Source {
    table: "rollups",
    time: "bucket",
    status: None,
};
const FACTS: Source = Source {
    table: "ticket_facts",
    time: "created_day",
    status: Some("status"),
};

fn column(source: &Source, d: Dimension) -> &'static str {
    match d {
        Dimension::Day | Dimension::Week => source.time,
        Dimension::Zone => "zone",
        Dimension::Team => "team_id",
        Dimension::Category => "category",
        Dimension::Priority => "priority",
        Dimension::Status => source.status.unwrap_or("''"),
    }
}

fn push_filter(sql: &mut Sql, source: &Source, f: &Filter) {
    match f {
        Filter::Is(d, values) => {
            sql.push(column(source, *d)).push(" IN ").list(values);
        }
        Filter::IsNot(d, values) => {
            sql.push(column(source, *d)).push(" NOT IN ").list(values);
        }
        Filter::Contains(d, values) => {
            sql.push("(");
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                let escaped = v
                    .to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                sql.push("LOWER(")
                    .push(column(source, *d))
                    .push(") LIKE ")
                    .text(&format!("%{escaped}%"))
                    .push(" ESCAPE '\\'");
            }
            sql.push(")");
        }
        Filter::And(fs) | Filter::Or(fs) => {
            let joiner = if matches!(f, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            sql.push("(");
            for (i, inner) in fs.iter().enumerate() {
                if i > 0 {
                    sql.push(joiner);
                }
                push_filter(sql, source, inner);
            }
            sql.push(")");
        }
    }
}

/// SELECT of the grouped dimension columns (others as '') and `measures` as m1..m7.
fn grouped(source: &Source, q: &Query, tenant_id: &str, measures: &[&str; 7]) -> Sql {
    let outputs = [
        ("d_time", Dimension::Day),
        ("d_zone", Dimension::Zone),
        ("d_team", Dimension::Team),
        ("d_category", Dimension::Category),
        ("d_priority", Dimension::Priority),
        ("d_status", Dimension::Status),
    ];
    let wanted = |d: Dimension| {
        q.dimensions
            .iter()
            .any(|x| *x == d || (d == Dimension::Day && x.is_time()))
    };
    let mut select = Vec::new();
    let mut group = Vec::new();
    for (alias, d) in outputs {
        if wanted(d) {
            let col = column(source, d);
            select.push(format!("{col} AS {alias}"));
            group.push(col);
        } else {
            select.push(format!("'' AS {alias}"));
        }
    }
    for (i, m) in measures.iter().enumerate() {
        select.push(format!("CAST(COALESCE({m}, 0) AS BIGINT) AS m{}", i + 1));
    }
    let mut sql = Sql::new(&format!(
        "SELECT {} FROM {} WHERE tenant_id = ",
        select.join(", "),
        source.table
    ));
    sql.text(tenant_id);
    if source.table == "rollups" {
        sql.push(" AND grain = 'day'");
    } else {
        sql.push(" AND deleted = FALSE");
    }
    if let Range::Days(from, to) = q.range {
        sql.push(&format!(" AND {} >= ", source.time))
            .text(&from.to_string())
            .push(&format!(" AND {} <= ", source.time))
            .text(&to.to_string());
    }
    for f in &q.filters {
        sql.push(" AND ");
        push_filter(&mut sql, source, f);
    }
    if !group.is_empty() {
        group.dedup();
        sql.push(&format!(" GROUP BY {}", group.join(", ")));
    }
    sql
}

/// Answers `q` for `tenant_id`; `now` decides what is overdue.
pub fn run(
    conn: &mut DbConnection,
    tenant_id: &str,
    q: &Query,
    now: NaiveDateTime,
) -> AppResult<Vec<Row>> {
    let mut groups: BTreeMap<Vec<String>, Totals> = BTreeMap::new();
    if q.metrics.iter().any(|m| m.is_flow()) {
        let sql = grouped(
            &ROLLUPS,
            q,
            tenant_id,
            &[
                "SUM(created)",
                "SUM(completed)",
                "SUM(completed_in_sla)",
                "SUM(completion_secs)",
                "SUM(breached)",
                "SUM(assigned)",
                "SUM(assign_secs)",
            ],
        );
        for r in sql.load::<Grouped>(conn)? {
            let t = groups.entry(r.key(&q.dimensions)).or_default();
            t.flow.add(
                &Counters {
                    created: r.m1,
                    completed: r.m2,
                    completed_in_sla: r.m3,
                    completion_secs: r.m4,
                    breached: r.m5,
                    assigned: r.m6,
                    assign_secs: r.m7,
                },
                1,
            );
        }
    }
    if q.metrics.iter().any(|m| !m.is_flow()) {
        const OPEN: &str = "status NOT IN ('COMPLETED', 'CANCELLED')";
        let urgent = format!("SUM(CASE WHEN {OPEN} AND priority = 'URGENT' THEN 1 ELSE 0 END)");
        let open = format!("SUM(CASE WHEN {OPEN} THEN 1 ELSE 0 END)");
        // The overdue test needs `now` bound: its placeholder goes in the select list.
        let overdue = format!("SUM(CASE WHEN {OPEN} AND due_at < \u{1} THEN 1 ELSE 0 END)");
        let mut sql = grouped(
            &FACTS,
            q,
            tenant_id,
            &["COUNT(*)", &open, &urgent, &overdue, "0", "0", "0"],
        );
        sql.prepend_bind(Value::Time(now));
        for r in sql.load::<Grouped>(conn)? {
            let t = groups.entry(r.key(&q.dimensions)).or_default();
            t.tickets += r.m1;
            t.open += r.m2;
            t.urgent_open += r.m3;
            t.overdue += r.m4;
        }
    }
    let mut rows: Vec<Row> = groups
        .into_iter()
        .map(|(key, totals)| Row {
            dimensions: key
                .into_iter()
                .map(|v| (!v.is_empty()).then_some(v))
                .collect(),
            metrics: q.metrics.iter().map(|m| totals.value(*m)).collect(),
        })
        .collect();
    // Cells that only hold other measures are not results (an aggregate always answers).
    if !q.dimensions.is_empty() {
        rows.retain(|r| {
            r.metrics
                .iter()
                .any(|v| v.as_f64().is_some_and(|x| x != 0.0))
        });
    }
    rows.sort_by(|a, b| compare(q, a, b));
    rows.truncate(q.limit);
    Ok(rows)
}

fn number(v: &Json) -> Option<f64> {
    v.as_f64()
}

/// The query's order, then time ascending (or the first metric descending), then every
/// dimension ascending, so results are stable.
fn compare(q: &Query, a: &Row, b: &Row) -> Ordering {
    let mut keys = q.order.clone();
    if let Some(t) = q.dimensions.iter().position(|d| d.is_time()) {
        keys.push((Key::Dimension(t), false));
    } else if !q.metrics.is_empty() {
        keys.push((Key::Metric(0), true));
    }
    keys.extend((0..q.dimensions.len()).map(|i| (Key::Dimension(i), false)));
    for (key, desc) in keys {
        let ord = match key {
            Key::Metric(i) => number(&a.metrics[i])
                .partial_cmp(&number(&b.metrics[i]))
                .unwrap_or(Ordering::Equal),
            Key::Dimension(i) => a.dimensions[i].cmp(&b.dimensions[i]),
        };
        let ord = if desc { ord.reverse() } else { ord };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}
