//! Budgets: a tenant's tokens and requests per period (a UTC day or month). A call reserves
//! its estimated tokens and one request before it runs, in one conditional update of the
//! period's row, so that concurrent calls can never together pass the budget; it settles what
//! it used after (with its usage record and event, in `usage`). Without a budget, use is
//! still counted (per month).

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use agora_shared::{AppError, AppResult, db::DbConnection};

use crate::schema::{budgets, usage_periods};

/// A tenant's budget.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = budgets, treat_none_as_null = true)]
pub struct BudgetRow {
    pub tenant_id: String,
    /// `day` or `month`.
    pub period: String,
    pub max_tokens: Option<i64>,
    pub max_requests: Option<i64>,
    pub updated_at: NaiveDateTime,
}

/// What a period has used.
#[derive(Debug, Clone, Default, PartialEq, Queryable, Selectable)]
#[diesel(table_name = usage_periods)]
pub struct PeriodRow {
    pub tenant_id: String,
    pub period_start: NaiveDateTime,
    pub requests: i64,
    pub tokens_reserved: i64,
    pub tokens_used: i64,
    pub cost_minor: i64,
}

/// A call's hold on its tenant's budget, to settle once it ends.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub tenant_id: String,
    pub period_start: NaiveDateTime,
    pub tokens: i64,
}

/// The start and end of the period holding `now`.
pub fn bounds(period: &str, now: NaiveDateTime) -> (NaiveDateTime, NaiveDateTime) {
    let day = now.date();
    let (start, end) = if period == "day" {
        (day, day.succ_opt().unwrap_or(day))
    } else {
        let first = NaiveDate::from_ymd_opt(day.year(), day.month(), 1).unwrap_or(day);
        let next = if day.month() == 12 {
            NaiveDate::from_ymd_opt(day.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(day.year(), day.month() + 1, 1)
        };
        (first, next.unwrap_or(first))
    };
    (
        start.and_hms_opt(0, 0, 0).unwrap_or_default(),
        end.and_hms_opt(0, 0, 0).unwrap_or_default(),
    )
}

pub fn budget(conn: &mut DbConnection, tenant: &str) -> AppResult<Option<BudgetRow>> {
    Ok(budgets::table
        .find(tenant)
        .select(BudgetRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn set_budget(conn: &mut DbConnection, row: &BudgetRow) -> AppResult<()> {
    let updated = diesel::update(budgets::table.find(&row.tenant_id))
        .set(row)
        .execute(conn)?;
    if updated == 0 {
        let inserted = match conn {
            DbConnection::Sqlite(c) => diesel::insert_into(budgets::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(c)?,
            DbConnection::Postgres(c) => diesel::insert_into(budgets::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(c)?,
        };
        if inserted == 0 {
            diesel::update(budgets::table.find(&row.tenant_id))
                .set(row)
                .execute(conn)?;
        }
    }
    Ok(())
}

/// The period holding `now` as used so far (zeros when nothing was).
pub fn period(conn: &mut DbConnection, tenant: &str, start: NaiveDateTime) -> AppResult<PeriodRow> {
    Ok(usage_periods::table
        .find((tenant, start))
        .select(PeriodRow::as_select())
        .first(conn)
        .optional()?
        .unwrap_or(PeriodRow {
            tenant_id: tenant.to_owned(),
            period_start: start,
            ..PeriodRow::default()
        }))
}

/// Reserves `tokens` and one request of `tenant`'s budget, or answers 429 with the seconds
/// until the period ends. A call may start while any token is left (it reserves its whole
/// estimate); none may once the requests or tokens are spent.
pub fn reserve(
    conn: &mut DbConnection,
    tenant: &str,
    tokens: i64,
    now: NaiveDateTime,
) -> AppResult<Reservation> {
    let budget = budget(conn, tenant)?;
    let period = budget.as_ref().map_or("month", |b| b.period.as_str());
    let (start, end) = bounds(period, now);
    match conn {
        DbConnection::Sqlite(c) => diesel::insert_into(usage_periods::table)
            .values((
                usage_periods::tenant_id.eq(tenant),
                usage_periods::period_start.eq(start),
            ))
            .on_conflict_do_nothing()
            .execute(c)?,
        DbConnection::Postgres(c) => diesel::insert_into(usage_periods::table)
            .values((
                usage_periods::tenant_id.eq(tenant),
                usage_periods::period_start.eq(start),
            ))
            .on_conflict_do_nothing()
            .execute(c)?,
    };
    let max_requests = budget
        .as_ref()
        .and_then(|b| b.max_requests)
        .unwrap_or(i64::MAX);
    let max_tokens = budget
        .as_ref()
        .and_then(|b| b.max_tokens)
        .unwrap_or(i64::MAX);
    // One statement: PostgreSQL checks the condition again on the row it locks, so two calls
    // cannot both take the last request.
    let taken = diesel::update(
        usage_periods::table
            .filter(usage_periods::tenant_id.eq(tenant))
            .filter(usage_periods::period_start.eq(start))
            .filter(usage_periods::requests.lt(max_requests))
            .filter((usage_periods::tokens_used + usage_periods::tokens_reserved).lt(max_tokens)),
    )
    .set((
        usage_periods::requests.eq(usage_periods::requests + 1),
        usage_periods::tokens_reserved.eq(usage_periods::tokens_reserved + tokens),
    ))
    .execute(conn)?;
    if taken == 0 {
        let secs = (end - now).num_seconds().max(1) as u64;
        return Err(AppError::TooManyRequests {
            detail: format!("the tenant's AI budget for this {period} is spent"),
            retry_after_secs: secs,
        }
        .with_code("ai.budget_exhausted"));
    }
    Ok(Reservation {
        tenant_id: tenant.to_owned(),
        period_start: start,
        tokens,
    })
}

/// Gives back a reservation and counts what the call used.
pub fn settle(
    conn: &mut DbConnection,
    reservation: &Reservation,
    used: i64,
    cost_minor: i64,
) -> AppResult<()> {
    diesel::update(usage_periods::table.find((&reservation.tenant_id, reservation.period_start)))
        .set((
            usage_periods::tokens_reserved.eq(usage_periods::tokens_reserved - reservation.tokens),
            usage_periods::tokens_used.eq(usage_periods::tokens_used + used),
            usage_periods::cost_minor.eq(usage_periods::cost_minor + cost_minor),
        ))
        .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        let now = at("2026-12-05 17:00:00");
        assert_eq!(
            bounds("day", now),
            (at("2026-12-05 00:00:00"), at("2026-12-06 00:00:00"))
        );
        assert_eq!(
            bounds("month", now),
            (at("2026-12-01 00:00:00"), at("2027-01-01 00:00:00"))
        );
    }
}
