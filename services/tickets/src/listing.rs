//! List requests: filters, sort and cursor parsed from query strings (HTTP) or messages (gRPC),
//! each failure a 422 naming the parameter.

use chrono::{DateTime, NaiveDateTime};
use serde::Deserialize;

use agora_shared::{
    AppError, AppResult, FieldError,
    db::Db,
    http::{Page, PageParams},
};

use crate::{
    domain::{Category, Priority, SlaStatus, Status},
    store::{
        self,
        tickets::{After, Filter, Sort, SortField, TicketRow},
    },
};

/// `GET /api/v1/tickets` parameters. Multi-valued filters are comma-separated.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    pub status: Option<String>,
    pub priority: Option<String>,
    pub category: Option<String>,
    pub zone: Option<String>,
    pub team_id: Option<String>,
    pub assignee_id: Option<String>,
    pub sla_status: Option<String>,
    /// RFC 3339; inclusive.
    pub created_from: Option<String>,
    /// RFC 3339; exclusive.
    pub created_to: Option<String>,
    pub q: Option<String>,
    /// created_at, due_at, updated_at, priority or number; `-` prefix for descending.
    pub sort: Option<String>,
    #[serde(flatten)]
    pub page: PageParams,
}

/// A parsed list request.
#[derive(Debug, Clone)]
pub struct Listing {
    pub filter: Filter,
    pub sort: Sort,
    pub after: Option<After>,
    pub limit: i64,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Splits `a,b` and checks each value parses as `T`.
fn values<T: std::str::FromStr<Err = String>>(
    field: &str,
    raw: &Option<String>,
    errors: &mut Vec<FieldError>,
) -> Vec<String> {
    let Some(raw) = non_empty(raw) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for v in raw.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        match v.parse::<T>() {
            Ok(_) => out.push(v.to_owned()),
            Err(e) => errors.push(FieldError::new(field, format!("`{v}` {e}"))),
        }
    }
    out
}

fn time(field: &str, raw: &Option<String>, errors: &mut Vec<FieldError>) -> Option<NaiveDateTime> {
    let raw = non_empty(raw)?;
    match DateTime::parse_from_rfc3339(&raw) {
        Ok(t) => Some(t.naive_utc()),
        Err(_) => {
            errors.push(FieldError::new(
                field,
                "must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z",
            ));
            None
        }
    }
}

fn sort(raw: &Option<String>) -> Result<Sort, String> {
    let raw = non_empty(raw).unwrap_or_else(|| "-created_at".into());
    let (desc, name) = match raw.strip_prefix('-') {
        Some(name) => (true, name),
        None => (false, raw.as_str()),
    };
    let field = match name {
        "created_at" | "number" => SortField::Number,
        "due_at" => SortField::DueAt,
        "updated_at" => SortField::UpdatedAt,
        "priority" => SortField::Priority,
        "relevance" if !desc => SortField::Relevance,
        _ => {
            return Err(
                "must be one of created_at, due_at, updated_at, priority, number (prefix - for \
                 descending) or relevance (best first, with q)"
                    .into(),
            );
        }
    };
    Ok(Sort { field, desc })
}

/// The cursor text of the row a page ended on (`rank`: its relevance).
pub fn cursor_of(sort: Sort, row: &TicketRow, rank: i32) -> String {
    match sort.field {
        SortField::Number => format!("n:{}", row.number),
        SortField::DueAt => format!(
            "t:{}:{}",
            row.due_at.and_utc().timestamp_micros(),
            row.number
        ),
        SortField::UpdatedAt => format!(
            "t:{}:{}",
            row.updated_at.and_utc().timestamp_micros(),
            row.number
        ),
        SortField::Priority => format!("r:{}:{}", row.priority_rank, row.number),
        SortField::Relevance => format!("r:{rank}:{}", row.number),
    }
}

fn parse_cursor(text: &str) -> Option<After> {
    let mut parts = text.split(':');
    let kind = parts.next()?;
    let a: i64 = parts.next()?.parse().ok()?;
    let b: Option<i64> = parts.next().map(|b| b.parse().ok()).unwrap_or(None);
    match (kind, b) {
        ("n", None) => Some(After::Number(a)),
        ("t", Some(n)) => Some(After::Time(
            DateTime::from_timestamp_micros(a)?.naive_utc(),
            n,
        )),
        ("r", Some(n)) => Some(After::Rank(i32::try_from(a).ok()?, n)),
        _ => None,
    }
}

impl ListQuery {
    /// Validates every parameter, reporting all problems at once.
    pub fn parse(&self) -> AppResult<Listing> {
        let mut errors = Vec::new();
        let filter = Filter {
            statuses: values::<Status>("status", &self.status, &mut errors),
            priorities: values::<Priority>("priority", &self.priority, &mut errors),
            categories: values::<Category>("category", &self.category, &mut errors),
            zone: non_empty(&self.zone),
            team_id: non_empty(&self.team_id),
            assignee_id: non_empty(&self.assignee_id),
            sla_status: non_empty(&self.sla_status).and_then(|s| {
                s.parse::<SlaStatus>()
                    .map_err(|e| errors.push(FieldError::new("sla_status", e)))
                    .ok()
            }),
            created_from: time("created_from", &self.created_from, &mut errors),
            created_to: time("created_to", &self.created_to, &mut errors),
            q: non_empty(&self.q),
        };
        let sort = sort(&self.sort)
            .and_then(|sort| match sort.field {
                SortField::Relevance if filter.q.is_none() => {
                    Err("relevance needs a text search (q)".to_owned())
                }
                _ => Ok(sort),
            })
            .map_err(|e| errors.push(FieldError::new("sort", e)))
            .unwrap_or(Sort {
                field: SortField::Number,
                desc: true,
            });
        let limit = self
            .page
            .limit()
            .map_err(|e| errors.extend(field_errors(e)));
        let after = match self.page.after() {
            Ok(None) => None,
            Ok(Some(text)) => match parse_cursor(&text) {
                Some(after) => Some(after),
                None => {
                    errors.push(FieldError::new("cursor", "is not a cursor from this API"));
                    None
                }
            },
            Err(e) => {
                errors.extend(field_errors(e));
                None
            }
        };
        if !errors.is_empty() {
            return Err(AppError::Validation(errors));
        }
        Ok(Listing {
            filter,
            sort,
            after,
            limit: limit.unwrap_or(50),
        })
    }
}

fn field_errors(e: AppError) -> Vec<FieldError> {
    match e {
        AppError::Validation(errors) => errors,
        other => vec![FieldError::new("query", other.to_string())],
    }
}

/// One page of the tenant's tickets for `listing`, with SLA standings as of `at`.
pub async fn load(
    db: &Db,
    tenant_id: String,
    listing: Listing,
    at: NaiveDateTime,
) -> AppResult<Page<TicketRow>> {
    db.read(move |conn| {
        let rows = store::tickets::list(
            conn,
            &tenant_id,
            &listing.filter,
            listing.sort,
            listing.after.clone(),
            listing.limit,
            at,
        )?;
        let sort = listing.sort;
        Ok(
            Page::from_rows(rows, listing.limit, |(r, rank)| cursor_of(sort, r, *rank))
                .map(|(r, _)| r),
        )
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_parameter_is_named() {
        let q = ListQuery {
            status: Some("OPEN,DONE".into()),
            sla_status: Some("LATE".into()),
            created_from: Some("yesterday".into()),
            sort: Some("title".into()),
            ..Default::default()
        };
        let AppError::Validation(errors) = q.parse().unwrap_err() else {
            panic!("expected a validation error");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["status", "sla_status", "created_from", "sort"]);
    }

    #[test]
    fn cursors_round_trip() {
        for text in ["n:5", "t:1800000000000000:7", "r:3:9"] {
            let after = parse_cursor(text).unwrap();
            let back = match after {
                After::Number(n) => format!("n:{n}"),
                After::Time(t, n) => format!("t:{}:{n}", t.and_utc().timestamp_micros()),
                After::Rank(r, n) => format!("r:{r}:{n}"),
            };
            assert_eq!(back, text);
        }
        assert!(parse_cursor("x:1").is_none());
        assert!(parse_cursor("n:1:2").is_none());
    }
}
