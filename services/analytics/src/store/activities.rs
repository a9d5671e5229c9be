//! The activity feed: one row per ingested event, newest first.

use chrono::NaiveDateTime;
use diesel::{dsl::count_star, prelude::*};
use serde::Serialize;

use agora_shared::{AppResult, db::DbConnection};

use crate::schema::activities;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = activities)]
pub struct ActivityRow {
    /// The event's id.
    pub id: String,
    pub tenant_id: String,
    pub event_type: String,
    /// The producing service, e.g. `agora/tickets`.
    pub source: String,
    /// What the event is about (the aggregate id).
    pub subject: String,
    pub summary: String,
    /// UTC, RFC 3339.
    #[serde(serialize_with = "utc")]
    pub occurred_at: NaiveDateTime,
}

fn utc<S: serde::Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&agora_shared::db::utc(*t), s)
}

pub fn insert(conn: &mut DbConnection, row: &ActivityRow) -> AppResult<()> {
    diesel::insert_into(activities::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Inserts activities in one statement per 1,000 (7 values each).
pub fn insert_many(conn: &mut DbConnection, rows: &[ActivityRow]) -> AppResult<()> {
    for chunk in rows.chunks(1000) {
        match conn {
            DbConnection::Postgres(pg) => diesel::insert_into(activities::table)
                .values(chunk)
                .execute(pg)?,
            DbConnection::Sqlite(lite) => diesel::insert_into(activities::table)
                .values(chunk)
                .execute(lite)?,
        };
    }
    Ok(())
}

/// Up to `limit + 1` activities of the tenant, newest first, strictly after the cursor.
pub fn page(
    conn: &mut DbConnection,
    tenant_id: &str,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> AppResult<Vec<ActivityRow>> {
    let mut query = activities::table
        .filter(activities::tenant_id.eq(tenant_id))
        .select(ActivityRow::as_select())
        .order((activities::occurred_at.desc(), activities::id.desc()))
        .limit(limit + 1)
        .into_boxed();
    if let Some((at, id)) = after {
        query = query.filter(
            activities::occurred_at
                .lt(at)
                .or(activities::occurred_at.eq(at).and(activities::id.lt(id))),
        );
    }
    Ok(query.load(conn)?)
}

/// Events since `since` by source and type.
pub fn counts_since(
    conn: &mut DbConnection,
    tenant_id: &str,
    since: NaiveDateTime,
) -> AppResult<Vec<(String, String, i64)>> {
    Ok(activities::table
        .filter(activities::tenant_id.eq(tenant_id))
        .filter(activities::occurred_at.ge(since))
        .group_by((activities::source, activities::event_type))
        .select((activities::source, activities::event_type, count_star()))
        .order((activities::source, activities::event_type))
        .load(conn)?)
}
