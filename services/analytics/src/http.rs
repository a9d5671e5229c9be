//! HTTP API: `/api/v1/analytics/*` (the query endpoint and the field-force views built on it)
//! and `/api/v1/dashboard/*`. Every route needs a caller and reads the caller's tenant;
//! platform admins may name another with `tenant_id`.

use actix_web::web;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;

use agora_shared::{AppError, AppResult, http::Caller};

use crate::query::{self, Range};

pub mod code;
pub mod dashboard;
pub mod forecast;
pub mod inventory;
pub mod performance;
pub mod query_api;
pub mod trends;
pub mod views;
pub mod zones;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .configure(query_api::routes)
            .configure(performance::routes)
            .configure(trends::routes)
            .configure(zones::routes)
            .configure(inventory::routes)
            .configure(code::routes)
            .configure(forecast::routes)
            .configure(dashboard::routes),
    );
}

/// The tenant a request reads: the caller's own unless a platform admin names another.
pub fn tenant(caller: &Caller, requested: Option<&str>) -> AppResult<String> {
    caller.tenant_to_read(requested.unwrap_or_default(), "analytics")
}

/// `?tenant_id=` of views without a date range.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct TenantParam {
    /// Another tenant (platform admins only).
    pub tenant_id: Option<String>,
}

/// `?tenant_id=&date_range=` or `?from=&to=` of the GET views.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct Scope {
    /// Another tenant (platform admins only).
    pub tenant_id: Option<String>,
    /// 7d, 30d, 12mo or all (default 30d).
    pub date_range: Option<String>,
    /// Inclusive ISO dates; both or neither.
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Scope {
    pub fn tenant(&self, caller: &Caller) -> AppResult<String> {
        tenant(caller, self.tenant_id.as_deref())
    }

    /// The date range asked for, `default` when none.
    pub fn range(&self, today: NaiveDate, default: &str) -> AppResult<Range> {
        let value = match (&self.from, &self.to, &self.date_range) {
            (Some(from), Some(to), None) => Value::from(vec![from.clone(), to.clone()]),
            (None, None, Some(r)) => Value::from(r.clone()),
            (None, None, None) => Value::from(default),
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err(AppError::invalid("from", "give both from and to"));
            }
            _ => {
                return Err(AppError::invalid(
                    "date_range",
                    "give either date_range or from and to",
                ));
            }
        };
        query::parse_range(&value, today).map_err(|e| AppError::invalid("date_range", e))
    }

    /// The range asked for (`default` when none) as its first and last days and the half-open
    /// window of times from the first day's start to the day after the last; all `None` for
    /// `all`.
    pub fn window(&self, today: NaiveDate, default: &str) -> AppResult<Window> {
        Ok(match self.range(today, default)? {
            Range::All => (None, None, None),
            Range::Days(from, to) => {
                let start = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default();
                (
                    Some(from),
                    Some(to),
                    Some((start(from), start(to.succ_opt().unwrap_or(to)))),
                )
            }
        })
    }
}

/// First day, last day and `[from, to)` times of a date range (see [`Scope::window`]).
pub type Window = (
    Option<NaiveDate>,
    Option<NaiveDate>,
    Option<(chrono::NaiveDateTime, chrono::NaiveDateTime)>,
);
