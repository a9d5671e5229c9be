//! Assignment history.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use crate::schema::assignments;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = assignments)]
pub struct AssignmentRow {
    pub id: String,
    pub tenant_id: String,
    pub ticket_id: String,
    pub team_id: String,
    pub user_id: Option<String>,
    pub note: String,
    pub over_capacity: bool,
    pub assigned_by: String,
    pub assigned_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &AssignmentRow) -> AppResult<()> {
    diesel::insert_into(assignments::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// A ticket's assignments, oldest first, after the assignment id `after`.
pub fn list(
    conn: &mut DbConnection,
    ticket_id: &str,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<AssignmentRow>> {
    let mut query = assignments::table
        .filter(assignments::ticket_id.eq(ticket_id))
        .order(assignments::id.asc())
        .select(AssignmentRow::as_select())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(assignments::id.gt(after));
    }
    Ok(query.load(conn)?)
}

/// Distinct tickets assigned to `team_id` since `since` (the start of the day), not counting
/// `except` (the ticket being assigned now).
pub fn team_load_since(
    conn: &mut DbConnection,
    tenant_id: &str,
    team_id: &str,
    since: NaiveDateTime,
    except: &str,
) -> AppResult<i64> {
    let ids: Vec<String> = assignments::table
        .filter(assignments::tenant_id.eq(tenant_id))
        .filter(assignments::team_id.eq(team_id))
        .filter(assignments::assigned_at.ge(since))
        .filter(assignments::ticket_id.ne(except))
        .select(assignments::ticket_id)
        .distinct()
        .load(conn)?;
    Ok(ids.len() as i64)
}
