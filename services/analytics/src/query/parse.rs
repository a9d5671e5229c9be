//! Checking a query body: every offending part is named (`metrics[1]`, `filters[0][2]`, ...)
//! in one 422.

use chrono::{Datelike, Duration, NaiveDate};
use serde_json::Value;

use agora_shared::{AppError, error::FieldError};

use super::{DEFAULT_LIMIT, Dimension, Filter, Key, MAX_LIMIT, Metric, Query, Range};

/// A relative date range (`7d`, `30d`, `12mo`, `all`) or `[from, to]` ISO dates, as of `today`.
pub fn parse_range(value: &Value, today: NaiveDate) -> Result<Range, String> {
    match value {
        Value::String(s) => match s.as_str() {
            "all" => Ok(Range::All),
            "12mo" => {
                let first = today.with_day(1).unwrap_or(today);
                let back = first
                    .checked_sub_months(chrono::Months::new(11))
                    .unwrap_or(first);
                Ok(Range::Days(back, today))
            }
            other => {
                let days = other
                    .strip_suffix('d')
                    .and_then(|n| n.parse::<i64>().ok())
                    .filter(|n| (1..=3660).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "unknown date range {other:?}; use 7d, 30d, 12mo, all or [from, to]"
                        )
                    })?;
                Ok(Range::Days(today - Duration::days(days - 1), today))
            }
        },
        Value::Array(pair) if pair.len() == 2 => {
            let date = |v: &Value| {
                v.as_str()
                    .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            };
            match (date(&pair[0]), date(&pair[1])) {
                (Some(from), Some(to)) if from <= to => Ok(Range::Days(from, to)),
                (Some(_), Some(_)) => Err("the first date is after the second".into()),
                _ => Err("dates must be YYYY-MM-DD".into()),
            }
        }
        _ => Err("must be 7d, 30d, 12mo, all or [from, to] ISO dates".into()),
    }
}

fn names<T: Copy>(all: &[(&'static str, T)]) -> String {
    all.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

fn lookup<T: Copy>(all: &[(&'static str, T)], name: &str) -> Option<T> {
    all.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Leaf filters (`is`, `is_not`, `contains`) in one query, values in one filter, and
/// characters in one value: what a query may cost is bounded before it reaches the store (a
/// 391 KB query of nested `or`/`contains` once became 28,672 LIKE terms and 7.5 s).
pub const MAX_LEAVES: usize = 32;
pub const MAX_VALUES: usize = 50;
pub const MAX_VALUE_CHARS: usize = 100;
/// Problems reported in one 422 (a 1 MB body of bad filters once made a 23 MB answer).
pub const MAX_PROBLEMS: usize = 20;

/// Accumulates the problems of a query before failing (the first [`MAX_PROBLEMS`], and how
/// many more there were), and counts its leaf filters.
#[derive(Default)]
struct Problems {
    shown: Vec<FieldError>,
    more: usize,
    leaves: usize,
}

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        if self.shown.len() < MAX_PROBLEMS {
            self.shown.push(FieldError::new(field, message));
        } else {
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }

    fn into_errors(mut self) -> Vec<FieldError> {
        if self.more > 0 {
            let more = format!("{} more problems not listed", self.more);
            self.shown.push(FieldError::new("body", more));
        }
        self.shown
    }
}

fn strings(value: &Value, field: &str, problems: &mut Problems) -> Vec<(String, String)> {
    let Some(items) = value.as_array() else {
        problems.add(field, "must be an array of strings");
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match v.as_str() {
            Some(s) => Some((format!("{field}[{i}]"), s.to_owned())),
            None => {
                problems.add(format!("{field}[{i}]"), "must be a string");
                None
            }
        })
        .collect()
}

fn parse_filter(
    value: &Value,
    field: &str,
    problems: &mut Problems,
    depth: usize,
) -> Option<Filter> {
    let Some(parts) = value.as_array() else {
        problems.add(
            field,
            "must be [operator, dimension, [values]] or [\"and\"|\"or\", [filters]]",
        );
        return None;
    };
    let op = parts.first().and_then(Value::as_str).unwrap_or_default();
    let arity = match op {
        "and" | "or" => 2,
        "is" | "is_not" | "contains" => 3,
        _ => 0,
    };
    if arity > 0 && parts.len() != arity {
        problems.add(
            field,
            if arity == 2 {
                format!("{op} takes [{op:?}, [filters]]")
            } else {
                format!("{op} takes [{op:?}, dimension, [values]]")
            },
        );
        return None;
    }
    match (op, parts.len()) {
        ("and" | "or", 2) => {
            if depth >= 4 {
                problems.add(field, "filters nest at most 4 deep");
                return None;
            }
            let Some(items) = parts[1].as_array().filter(|a| !a.is_empty()) else {
                problems.add(
                    format!("{field}[1]"),
                    "must be a non-empty array of filters",
                );
                return None;
            };
            let inner: Vec<Filter> = items
                .iter()
                .enumerate()
                .filter_map(|(i, f)| {
                    parse_filter(f, &format!("{field}[1][{i}]"), problems, depth + 1)
                })
                .collect();
            (inner.len() == items.len()).then(|| {
                if op == "and" {
                    Filter::And(inner)
                } else {
                    Filter::Or(inner)
                }
            })
        }
        ("is" | "is_not" | "contains", 3) => {
            let dim = parts[1].as_str().and_then(|n| lookup(&Dimension::ALL, n));
            let dim = match dim {
                Some(d) if d.is_time() => {
                    problems.add(format!("{field}[1]"), "time is filtered by date_range");
                    None
                }
                Some(d) => Some(d),
                None => {
                    problems.add(
                        format!("{field}[1]"),
                        "unknown dimension; use zone, team, category, priority or status",
                    );
                    None
                }
            };
            problems.leaves += 1;
            if problems.leaves > MAX_LEAVES {
                if problems.leaves == MAX_LEAVES + 1 {
                    problems.add(field, format!("a query takes at most {MAX_LEAVES} filters"));
                }
                return None;
            }
            let values = match parts[2].as_array() {
                Some(a) if a.len() > MAX_VALUES => {
                    let cap = format!("at most {MAX_VALUES} values per filter");
                    problems.add(format!("{field}[2]"), cap);
                    return None;
                }
                Some(a) if !a.is_empty() && a.iter().all(Value::is_string) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>(),
                _ => {
                    problems.add(
                        format!("{field}[2]"),
                        "must be a non-empty array of strings",
                    );
                    return None;
                }
            };
            if let Some(i) = values
                .iter()
                .position(|v| v.chars().count() > MAX_VALUE_CHARS)
            {
                let cap = format!("at most {MAX_VALUE_CHARS} characters");
                problems.add(format!("{field}[2][{i}]"), cap);
                return None;
            }
            let dim = dim?;
            Some(match op {
                "is" => Filter::Is(dim, values),
                "is_not" => Filter::IsNot(dim, values),
                _ => Filter::Contains(dim, values),
            })
        }
        _ => {
            problems.add(
                format!("{field}[0]"),
                "unknown operator; use is, is_not, contains, and or or",
            );
            None
        }
    }
}

fn filter_dimensions(f: &Filter, out: &mut Vec<Dimension>) {
    match f {
        Filter::Is(d, _) | Filter::IsNot(d, _) | Filter::Contains(d, _) => out.push(*d),
        Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| filter_dimensions(f, out)),
    }
}

/// Checks a query body; `today` anchors relative date ranges. Every problem is reported, each
/// under the path of the part at fault (`metrics[1]`, `filters[0][2]`, ...).
pub fn parse(body: &Value, today: NaiveDate) -> Result<Query, AppError> {
    let mut problems = Problems::default();
    let Some(object) = body.as_object() else {
        return Err(AppError::invalid("body", "must be a JSON object"));
    };
    for key in object.keys() {
        if !matches!(
            key.as_str(),
            "metrics"
                | "date_range"
                | "dimensions"
                | "filters"
                | "order_by"
                | "limit"
                | "tenant_id"
        ) {
            problems.add(
                key.clone(),
                "unknown field; use metrics, date_range, dimensions, filters, order_by, limit",
            );
        }
    }

    let mut metrics = Vec::new();
    match object.get("metrics") {
        None => problems.add("metrics", "is required"),
        Some(v) => {
            let listed = strings(v, "metrics", &mut problems);
            if listed.is_empty() && v.is_array() {
                problems.add("metrics", "name at least one metric");
            }
            for (field, name) in listed {
                match lookup(&Metric::ALL, &name) {
                    Some(m) if metrics.contains(&m) => problems.add(field, "listed twice"),
                    Some(m) => metrics.push(m),
                    None => problems.add(
                        field,
                        format!("unknown metric {name:?}; use {}", names(&Metric::ALL)),
                    ),
                }
            }
        }
    }
    let flow = metrics.iter().any(|m| m.is_flow());

    let range = match object.get("date_range") {
        None => parse_range(&Value::String("30d".into()), today).ok(),
        Some(v) => match parse_range(v, today) {
            Ok(r) => Some(r),
            Err(e) => {
                problems.add("date_range", e);
                None
            }
        },
    };

    let mut dimensions = Vec::new();
    if let Some(v) = object.get("dimensions") {
        for (field, name) in strings(v, "dimensions", &mut problems) {
            match lookup(&Dimension::ALL, &name) {
                Some(d) if dimensions.contains(&d) => problems.add(field, "listed twice"),
                Some(d) if d.is_time() && dimensions.iter().any(|x: &Dimension| x.is_time()) => {
                    problems.add(field, "use one time dimension")
                }
                Some(Dimension::Status) if flow => problems.add(
                    field,
                    "status breaks down only tickets, open, urgent_open and overdue",
                ),
                Some(d) => dimensions.push(d),
                None => problems.add(
                    field,
                    format!("unknown dimension {name:?}; use {}", names(&Dimension::ALL)),
                ),
            }
        }
    }

    let mut filters = Vec::new();
    match object.get("filters") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let field = format!("filters[{i}]");
                if let Some(f) = parse_filter(item, &field, &mut problems, 0) {
                    let mut dims = Vec::new();
                    filter_dimensions(&f, &mut dims);
                    if flow && dims.contains(&Dimension::Status) {
                        problems.add(
                            field,
                            "status filters apply only to tickets, open, urgent_open and overdue",
                        );
                    } else {
                        filters.push(f);
                    }
                }
            }
        }
        Some(_) => problems.add("filters", "must be an array of filters"),
    }

    let mut order = Vec::new();
    match object.get("order_by") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let field = format!("order_by[{i}]");
                let pair = item.as_array().filter(|p| p.len() == 2);
                let key = pair.and_then(|p| p[0].as_str()).unwrap_or_default();
                let dir = pair.and_then(|p| p[1].as_str()).unwrap_or_default();
                let found = lookup(&Metric::ALL, key)
                    .and_then(|m| metrics.iter().position(|x| *x == m).map(Key::Metric))
                    .or_else(|| {
                        lookup(&Dimension::ALL, key).and_then(|d| {
                            dimensions.iter().position(|x| *x == d).map(Key::Dimension)
                        })
                    });
                match (found, dir) {
                    (Some(k), "asc") => order.push((k, false)),
                    (Some(k), "desc") => order.push((k, true)),
                    (None, _) => problems.add(
                        field,
                        format!("{key:?} is not one of the query's metrics or dimensions"),
                    ),
                    (Some(_), _) => problems.add(field, "direction must be asc or desc"),
                }
            }
        }
        Some(_) => problems.add("order_by", "must be an array of [key, \"asc\"|\"desc\"]"),
    }

    let limit = match object.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
            _ => {
                problems.add("limit", format!("must be an integer from 1 to {MAX_LIMIT}"));
                DEFAULT_LIMIT
            }
        },
    };

    let tenant_id = match object.get("tenant_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => {
            problems.add("tenant_id", "must be a tenant id");
            None
        }
    };

    match (problems.is_empty(), range) {
        (true, Some(range)) => Ok(Query {
            metrics,
            range,
            dimensions,
            filters,
            order,
            limit,
            tenant_id,
        }),
        _ => Err(AppError::Validation(problems.into_errors())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    fn fields(body: Value) -> Vec<String> {
        match parse(&body, today()).unwrap_err() {
            AppError::Validation(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_full_query_parses() {
        let q = parse(
            &json!({
                "metrics": ["created", "sla_compliance"],
                "date_range": ["2026-01-01", "2026-03-31"],
                "dimensions": ["time:week", "zone"],
                "filters": [["is", "priority", ["URGENT", "HIGH"]],
                            ["or", [["contains", "zone", ["north"]], ["is_not", "team", ["t1"]]]]],
                "order_by": [["created", "desc"]],
                "limit": 5
            }),
            today(),
        )
        .unwrap();
        assert_eq!(q.metrics, [Metric::Created, Metric::SlaCompliance]);
        assert_eq!(q.dimensions, [Dimension::Week, Dimension::Zone]);
        assert_eq!(q.filters.len(), 2);
        assert_eq!(q.order, [(Key::Metric(0), true)]);
        assert_eq!(q.limit, 5);
    }

    #[test]
    fn relative_ranges_end_today() {
        let r = |s: &str| parse_range(&json!(s), today()).unwrap();
        let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
        assert_eq!(r("7d"), Range::Days(d(11, 16), d(11, 22)));
        assert_eq!(r("30d"), Range::Days(d(10, 24), d(11, 22)));
        assert_eq!(
            r("12mo"),
            Range::Days(NaiveDate::from_ymd_opt(2025, 12, 1).unwrap(), d(11, 22))
        );
        assert!(parse_range(&json!("yesterday"), today()).is_err());
        assert!(parse_range(&json!(["2026-02-01", "2026-01-01"]), today()).is_err());
    }

    #[test]
    fn what_a_query_may_cost_is_capped() {
        let leaf = json!(["contains", "zone", ["a"]]);
        let wide = json!({"metrics": ["tickets"], "filters": [["or", vec![leaf.clone(); 33]]]});
        assert_eq!(fields(wide), ["filters[0][1][32]"]);
        let values = json!({"metrics": ["tickets"], "filters": [["is", "zone", vec!["a"; 51]]]});
        assert_eq!(fields(values), ["filters[0][2]"]);
        let long =
            json!({"metrics": ["tickets"], "filters": [["is", "zone", ["ok", "x".repeat(101)]]]});
        assert_eq!(fields(long), ["filters[0][2][1]"]);
        // A flood of bad filters is answered with 20 problems and a count of the rest.
        let bad = json!({"metrics": ["tickets"], "filters": vec![json!(["nope"]); 5000]});
        let listed = fields(bad);
        assert_eq!(listed.len(), 21);
        assert_eq!(listed[20], "body");
    }

    #[test]
    fn every_offending_part_is_named() {
        assert_eq!(
            fields(json!({
                "metrics": ["created", "visitors"],
                "date_range": "fortnight",
                "dimensions": ["status", "time:day", "time:week"],
                "filters": [["is", "colour", ["red"]], ["between", "zone", ["a"]], ["is", "zone", []]],
                "order_by": [["open", "desc"]],
                "limit": 0,
                "colour": 1
            })),
            [
                "colour",
                "metrics[1]",
                "date_range",
                "dimensions[0]",
                "dimensions[2]",
                "filters[0][1]",
                "filters[1][0]",
                "filters[2][2]",
                "order_by[0]",
                "limit"
            ]
        );
        assert_eq!(fields(json!({})), ["metrics"]);
        assert_eq!(fields(json!({"metrics": []})), ["metrics"]);
        assert_eq!(
            fields(
                json!({"metrics": ["created"], "filters": [["and", [["is", "status", ["OPEN"]]]]]})
            ),
            ["filters[0]"]
        );
    }
}
