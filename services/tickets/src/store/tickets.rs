//! Tickets: numbering, reads with filters and keyset pages, versioned saves, stats and the
//! breach watch.

use chrono::NaiveDateTime;
use diesel::{
    dsl::count_star,
    prelude::*,
    sql_types::{BigInt, Bool, Double, Nullable, Text},
};

use agora_shared::{
    AppResult,
    db::{DbConnection, MultiBackend},
};

use crate::{
    domain::{SlaClock, SlaStatus, Status},
    schema::tickets,
};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = tickets, treat_none_as_null = true)]
pub struct TicketRow {
    pub id: String,
    pub tenant_id: String,
    pub number: i64,
    pub title: String,
    pub description: String,
    pub category: String,
    pub priority: String,
    pub priority_rank: i32,
    pub status: String,
    pub location: Option<String>,
    pub zone: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub customer_name: Option<String>,
    pub customer_contact: Option<String>,
    pub team_id: Option<String>,
    pub assignee_id: Option<String>,
    pub sla_override: Option<i32>,
    pub due_at: NaiveDateTime,
    pub at_risk_at: NaiveDateTime,
    pub paused_secs: i64,
    pub clock_stopped_at: Option<NaiveDateTime>,
    pub estimated_duration_minutes: Option<i32>,
    pub progress: i32,
    pub completed_at: Option<NaiveDateTime>,
    pub tags: String,
    pub breach_notified_at: Option<NaiveDateTime>,
    pub version: i64,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
}

impl TicketRow {
    pub fn status(&self) -> Status {
        self.status.parse().unwrap_or(Status::Open)
    }

    pub fn priority(&self) -> crate::domain::Priority {
        self.priority
            .parse()
            .unwrap_or(crate::domain::Priority::Medium)
    }

    /// The SLA in hours: the override, or the priority's default.
    pub fn sla_hours(&self) -> i32 {
        self.sla_override
            .unwrap_or_else(|| self.priority().default_sla_hours())
    }

    pub fn clock(&self) -> SlaClock {
        SlaClock {
            created_at: self.created_at,
            sla_hours: self.sla_hours(),
            paused_secs: self.paused_secs,
            stopped_at: self.clock_stopped_at,
        }
    }

    /// Writes `clock`'s derived times back.
    pub fn set_clock(&mut self, clock: &SlaClock) {
        self.due_at = clock.due_at();
        self.at_risk_at = clock.at_risk_at();
        self.paused_secs = clock.paused_secs;
        self.clock_stopped_at = clock.stopped_at;
    }

    pub fn sla_status(&self, now: NaiveDateTime) -> SlaStatus {
        self.clock().status(self.status(), self.completed_at, now)
    }
}

/// Takes the tenant's next ticket number. The counter row is locked by the upsert until the
/// transaction ends, so concurrent creates get consecutive, distinct numbers.
pub fn next_number(conn: &mut DbConnection, tenant_id: &str) -> AppResult<i64> {
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = BigInt)]
        last_number: i64,
    }
    const UPSERT: &str = "INSERT INTO ticket_counters (tenant_id, last_number) VALUES ({t}, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET last_number = ticket_counters.last_number + 1 \
         RETURNING last_number";
    let taken: Taken = match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(UPSERT.replace("{t}", "$1"))
            .bind::<Text, _>(tenant_id)
            .get_result(pg)?,
        DbConnection::Sqlite(lite) => diesel::sql_query(UPSERT.replace("{t}", "?"))
            .bind::<Text, _>(tenant_id)
            .get_result(lite)?,
    };
    Ok(taken.last_number)
}

/// Every tenant that has tickets (deleted ones included).
pub fn tenants(conn: &mut DbConnection) -> AppResult<Vec<String>> {
    Ok(tickets::table
        .select(tickets::tenant_id)
        .distinct()
        .order(tickets::tenant_id)
        .load(conn)?)
}

pub fn insert(conn: &mut DbConnection, row: &TicketRow) -> AppResult<()> {
    diesel::insert_into(tickets::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// A live (not deleted) ticket of the tenant, by id or number.
pub fn get(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<Option<TicketRow>> {
    let query = tickets::table
        .filter(tickets::tenant_id.eq(tenant_id))
        .filter(tickets::deleted_at.is_null())
        .select(TicketRow::as_select());
    Ok(match crate::domain::parse_number(id) {
        Some(n) => query.filter(tickets::number.eq(n)).first(conn),
        None => query.filter(tickets::id.eq(id)).first(conn),
    }
    .optional()?)
}

/// Saves `row` if its stored version is still `expected`; false when someone else saved first.
pub fn save(conn: &mut DbConnection, row: &TicketRow, expected: i64) -> AppResult<bool> {
    let n = diesel::update(
        tickets::table
            .filter(tickets::id.eq(&row.id))
            .filter(tickets::version.eq(expected)),
    )
    .set(row)
    .execute(conn)?;
    Ok(n == 1)
}

/// List filters; every one optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub statuses: Vec<String>,
    pub priorities: Vec<String>,
    pub categories: Vec<String>,
    pub zone: Option<String>,
    pub team_id: Option<String>,
    pub assignee_id: Option<String>,
    pub sla_status: Option<SlaStatus>,
    pub created_from: Option<NaiveDateTime>,
    pub created_to: Option<NaiveDateTime>,
    /// Searched case-insensitively in title and description.
    pub q: Option<String>,
}

/// Sort keys; ties are broken by ticket number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    /// Creation order (numbers grow with creation).
    Number,
    DueAt,
    UpdatedAt,
    Priority,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub desc: bool,
}

/// Where a page starts: after the row with this sort value and number.
#[derive(Debug, Clone, PartialEq)]
pub enum After {
    Number(i64),
    Time(NaiveDateTime, i64),
    Rank(i32, i64),
}

type Predicate = Box<dyn BoxableExpression<tickets::table, MultiBackend, SqlType = Bool>>;

diesel::define_sql_function!(fn lower(x: Text) -> Text);

/// `status != COMPLETED` and the SLA clock (stopped or now) is past due.
fn running_past_due(now: NaiveDateTime) -> Predicate {
    Box::new(
        tickets::status.ne(Status::Completed.as_str()).and(
            tickets::clock_stopped_at
                .is_null()
                .and(tickets::due_at.lt(now))
                .or(tickets::clock_stopped_at
                    .assume_not_null()
                    .gt(tickets::due_at)),
        ),
    )
}

/// The rows whose `sla_status` at `now` is `sla` (the SQL twin of `SlaClock::status`).
pub fn sla_predicate(sla: SlaStatus, now: NaiveDateTime) -> Predicate {
    let completed = || tickets::status.eq(Status::Completed.as_str());
    let completed_at = || tickets::completed_at.assume_not_null();
    let stopped = || tickets::clock_stopped_at.assume_not_null();
    let finals = [Status::Completed.as_str(), Status::Cancelled.as_str()];
    match sla {
        SlaStatus::OnTime => Box::new(completed().and(completed_at().le(tickets::due_at))),
        SlaStatus::Breached => Box::new(
            completed()
                .and(completed_at().gt(tickets::due_at))
                .or(running_past_due(now)),
        ),
        SlaStatus::AtRisk => Box::new(
            tickets::status.ne_all(finals).and(
                tickets::clock_stopped_at
                    .is_null()
                    .and(tickets::at_risk_at.le(now))
                    .and(tickets::due_at.ge(now))
                    .or(stopped()
                        .ge(tickets::at_risk_at)
                        .and(stopped().le(tickets::due_at))),
            ),
        ),
        SlaStatus::Pending => Box::new(
            tickets::status
                .eq(Status::Cancelled.as_str())
                .and(stopped().le(tickets::due_at))
                .or(tickets::status.ne_all(finals).and(
                    tickets::clock_stopped_at
                        .is_null()
                        .and(tickets::at_risk_at.gt(now))
                        .or(stopped().lt(tickets::at_risk_at)),
                )),
        ),
    }
}

/// Escapes LIKE wildcards so `q` matches literally.
fn like_pattern(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn filtered<'a>(
    tenant_id: &'a str,
    filter: &'a Filter,
    now: NaiveDateTime,
) -> tickets::BoxedQuery<'a, MultiBackend> {
    let mut query = tickets::table
        .filter(tickets::tenant_id.eq(tenant_id))
        .filter(tickets::deleted_at.is_null())
        .into_boxed();
    if !filter.statuses.is_empty() {
        query = query.filter(tickets::status.eq_any(&filter.statuses));
    }
    if !filter.priorities.is_empty() {
        query = query.filter(tickets::priority.eq_any(&filter.priorities));
    }
    if !filter.categories.is_empty() {
        query = query.filter(tickets::category.eq_any(&filter.categories));
    }
    if let Some(zone) = &filter.zone {
        query = query.filter(tickets::zone.eq(zone));
    }
    if let Some(team) = &filter.team_id {
        query = query.filter(tickets::team_id.eq(team));
    }
    if let Some(assignee) = &filter.assignee_id {
        query = query.filter(tickets::assignee_id.eq(assignee));
    }
    if let Some(sla) = filter.sla_status {
        query = query.filter(sla_predicate(sla, now));
    }
    if let Some(from) = filter.created_from {
        query = query.filter(tickets::created_at.ge(from));
    }
    if let Some(to) = filter.created_to {
        query = query.filter(tickets::created_at.lt(to));
    }
    if let Some(q) = &filter.q {
        let pattern = like_pattern(q);
        query = query.filter(
            lower(tickets::title)
                .like(pattern.clone())
                .escape('\\')
                .or(lower(tickets::description).like(pattern).escape('\\')),
        );
    }
    query
}

/// One page of the tenant's tickets matching `filter`, in `sort` order, after `after`; fetches
/// `limit + 1` rows so the caller can tell whether another page follows.
pub fn list(
    conn: &mut DbConnection,
    tenant_id: &str,
    filter: &Filter,
    sort: Sort,
    after: Option<After>,
    limit: i64,
    now: NaiveDateTime,
) -> AppResult<Vec<TicketRow>> {
    let mut query = filtered(tenant_id, filter, now);
    let n = tickets::number;
    // Keyset: (key, number) strictly after the cursor in the sort's direction.
    macro_rules! keyset {
        ($col:expr, $value:expr, $number:expr) => {
            if sort.desc {
                query.filter($col.lt($value).or($col.eq($value).and(n.lt($number))))
            } else {
                query.filter($col.gt($value).or($col.eq($value).and(n.gt($number))))
            }
        };
    }
    query = match (sort.field, after) {
        (_, None) => query,
        (SortField::Number, Some(After::Number(v))) => {
            if sort.desc {
                query.filter(n.lt(v))
            } else {
                query.filter(n.gt(v))
            }
        }
        (SortField::DueAt, Some(After::Time(t, v))) => keyset!(tickets::due_at, t, v),
        (SortField::UpdatedAt, Some(After::Time(t, v))) => keyset!(tickets::updated_at, t, v),
        (SortField::Priority, Some(After::Rank(r, v))) => keyset!(tickets::priority_rank, r, v),
        (_, Some(_)) => {
            return Err(agora_shared::AppError::invalid(
                "cursor",
                "belongs to another sort order",
            ));
        }
    };
    query = match (sort.field, sort.desc) {
        (SortField::Number, false) => query.order(n.asc()),
        (SortField::Number, true) => query.order(n.desc()),
        (SortField::DueAt, false) => query.order((tickets::due_at.asc(), n.asc())),
        (SortField::DueAt, true) => query.order((tickets::due_at.desc(), n.desc())),
        (SortField::UpdatedAt, false) => query.order((tickets::updated_at.asc(), n.asc())),
        (SortField::UpdatedAt, true) => query.order((tickets::updated_at.desc(), n.desc())),
        (SortField::Priority, false) => query.order((tickets::priority_rank.asc(), n.asc())),
        (SortField::Priority, true) => query.order((tickets::priority_rank.desc(), n.desc())),
    };
    Ok(query
        .select(TicketRow::as_select())
        .limit(limit + 1)
        .load(conn)?)
}

/// Counts of the tenant's live tickets per value of one column (`UNSET` for NULL).
macro_rules! counts_by {
    ($conn:expr, $tenant:expr, $column:expr) => {{
        let rows: Vec<(Option<String>, i64)> = tickets::table
            .filter(tickets::tenant_id.eq($tenant))
            .filter(tickets::deleted_at.is_null())
            .group_by($column)
            .select(($column.nullable(), count_star()))
            .load($conn)?;
        rows.into_iter()
            .map(|(k, n)| (k.unwrap_or_else(|| "UNSET".to_owned()), n))
            .collect::<Vec<(String, i64)>>()
    }};
}

/// The tenant's ticket statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub total: i64,
    pub by_status: Vec<(String, i64)>,
    pub by_priority: Vec<(String, i64)>,
    pub by_category: Vec<(String, i64)>,
    pub by_zone: Vec<(String, i64)>,
    pub by_sla_status: Vec<(String, i64)>,
    pub completed: i64,
    pub mean_time_to_complete_secs: Option<f64>,
}

pub fn stats(conn: &mut DbConnection, tenant_id: &str, now: NaiveDateTime) -> AppResult<Stats> {
    let live = || {
        tickets::table
            .filter(tickets::tenant_id.eq(tenant_id))
            .filter(tickets::deleted_at.is_null())
    };
    let total: i64 = live().count().get_result(conn)?;
    let mut by_sla_status = Vec::new();
    for sla in SlaStatus::ALL {
        let n: i64 = live()
            .into_boxed()
            .filter(sla_predicate(*sla, now))
            .count()
            .get_result(conn)?;
        by_sla_status.push((sla.as_str().to_owned(), n));
    }
    let (completed, mean) = completion(conn, tenant_id)?;
    Ok(Stats {
        total,
        by_status: counts_by!(conn, tenant_id, tickets::status),
        by_priority: counts_by!(conn, tenant_id, tickets::priority),
        by_category: counts_by!(conn, tenant_id, tickets::category),
        by_zone: counts_by!(conn, tenant_id, tickets::zone),
        by_sla_status,
        completed,
        mean_time_to_complete_secs: mean,
    })
}

/// Completed tickets and their mean time to complete in seconds. Date arithmetic is the one
/// thing the two backends spell differently.
fn completion(conn: &mut DbConnection, tenant_id: &str) -> AppResult<(i64, Option<f64>)> {
    #[derive(QueryableByName)]
    struct Completion {
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = Nullable<Double>)]
        mean: Option<f64>,
    }
    const WHERE: &str = "FROM tickets WHERE tenant_id = {t} AND deleted_at IS NULL \
         AND status = 'COMPLETED' AND completed_at IS NOT NULL";
    let c: Completion = match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(format!(
            "SELECT COUNT(*) AS n, \
             AVG(EXTRACT(EPOCH FROM (completed_at - created_at)))::DOUBLE PRECISION AS mean {}",
            WHERE.replace("{t}", "$1")
        ))
        .bind::<Text, _>(tenant_id)
        .get_result(pg)?,
        DbConnection::Sqlite(lite) => diesel::sql_query(format!(
            "SELECT COUNT(*) AS n, \
             AVG((julianday(completed_at) - julianday(created_at)) * 86400.0) AS mean {}",
            WHERE.replace("{t}", "?")
        ))
        .bind::<Text, _>(tenant_id)
        .get_result(lite)?,
    };
    Ok((c.n, c.mean))
}

/// Ids of unfinished tickets (any tenant) breached at `now` and not yet announced, oldest due
/// first. (Tickets finished late announce their breach with the finishing change.)
pub fn unannounced_breaches(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> AppResult<Vec<String>> {
    let unfinished = [
        Status::Open.as_str(),
        Status::InProgress.as_str(),
        Status::OnHold.as_str(),
    ];
    Ok(tickets::table
        .filter(tickets::breach_notified_at.is_null())
        .filter(tickets::deleted_at.is_null())
        .filter(tickets::status.eq_any(unfinished))
        .filter(tickets::due_at.lt(now))
        .into_boxed()
        .filter(sla_predicate(SlaStatus::Breached, now))
        .order(tickets::due_at.asc())
        .select(tickets::id)
        .limit(limit)
        .load(conn)?)
}

/// Marks the breach of `id` announced; false when another replica already did.
pub fn claim_breach(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> AppResult<bool> {
    let n = diesel::update(
        tickets::table
            .filter(tickets::id.eq(id))
            .filter(tickets::breach_notified_at.is_null()),
    )
    .set(tickets::breach_notified_at.eq(now))
    .execute(conn)?;
    Ok(n == 1)
}

/// A ticket by id in any tenant (for the breach watch).
pub fn get_any(conn: &mut DbConnection, id: &str) -> AppResult<Option<TicketRow>> {
    Ok(tickets::table
        .find(id)
        .select(TicketRow::as_select())
        .first(conn)
        .optional()?)
}
