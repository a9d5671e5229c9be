//! Tickets: numbering, versioned saves and the breach watch; filtered keyset pages in
//! `tickets/list.rs`, statistics in `tickets/stats.rs`.

use chrono::NaiveDateTime;
use diesel::{
    prelude::*,
    sql_types::{BigInt, Text},
};

use agora_shared::{
    AppResult,
    db::{DbConnection, Json},
};

use crate::{
    domain::{Category, Priority, SlaClock, SlaStatus, Status},
    schema::tickets,
};

mod list;
mod stats;

pub use list::{After, Filter, Sort, SortField, list, sla_predicate};
pub use stats::{Stats, stats};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = tickets, treat_none_as_null = true)]
pub struct TicketRow {
    pub id: String,
    pub tenant_id: String,
    pub number: i64,
    pub title: String,
    pub description: String,
    pub category: Category,
    pub priority: Priority,
    pub priority_rank: i32,
    pub status: Status,
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
    pub tags: Json<Vec<String>>,
    pub breach_notified_at: Option<NaiveDateTime>,
    pub version: i64,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
}

impl TicketRow {
    pub fn status(&self) -> Status {
        self.status
    }

    pub fn priority(&self) -> Priority {
        self.priority
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
