//! Teams and their members.

use diesel::prelude::*;

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, Json},
};

use crate::schema::{team_members, teams};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = teams)]
pub struct TeamRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub zone: String,
    pub skills: Json<Vec<String>>,
    pub daily_capacity: i32,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

fn conflict(e: diesel::result::Error) -> AppError {
    match AppError::from(e) {
        AppError::Conflict(_) => AppError::Conflict("a team with this name already exists".into())
            .with_code("auth.team_name_taken"),
        other => other,
    }
}

pub fn insert(conn: &mut DbConnection, row: &TeamRow) -> AppResult<()> {
    diesel::insert_into(teams::table)
        .values(row)
        .execute(conn)
        .map_err(conflict)?;
    Ok(())
}

pub fn get(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<Option<TeamRow>> {
    Ok(teams::table
        .filter(teams::id.eq(id).and(teams::tenant_id.eq(tenant_id)))
        .select(TeamRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(
    conn: &mut DbConnection,
    tenant_id: &str,
    zone: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<TeamRow>> {
    let mut query = teams::table
        .filter(teams::tenant_id.eq(tenant_id.to_owned()))
        .select(TeamRow::as_select())
        .order(teams::id.asc())
        .into_boxed();
    if let Some(zone) = zone {
        query = query.filter(teams::zone.eq(zone.to_owned()));
    }
    if let Some(after) = after {
        query = query.filter(teams::id.gt(after.to_owned()));
    }
    Ok(query.limit(limit + 1).load(conn)?)
}

pub fn update(conn: &mut DbConnection, row: &TeamRow) -> AppResult<()> {
    diesel::update(teams::table.find(&row.id))
        .set((
            teams::name.eq(&row.name),
            teams::zone.eq(&row.zone),
            teams::skills.eq(&row.skills),
            teams::daily_capacity.eq(row.daily_capacity),
            teams::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .map_err(conflict)?;
    Ok(())
}

pub fn delete(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<bool> {
    Ok(
        diesel::delete(teams::table.filter(teams::id.eq(id).and(teams::tenant_id.eq(tenant_id))))
            .execute(conn)?
            > 0,
    )
}

pub fn members(conn: &mut DbConnection, team_id: &str) -> AppResult<Vec<String>> {
    Ok(team_members::table
        .filter(team_members::team_id.eq(team_id))
        .select(team_members::user_id)
        .order(team_members::user_id.asc())
        .load(conn)?)
}

/// Replaces the member list.
pub fn set_members(conn: &mut DbConnection, team_id: &str, user_ids: &[String]) -> AppResult<()> {
    diesel::delete(team_members::table.filter(team_members::team_id.eq(team_id))).execute(conn)?;
    for user_id in user_ids {
        diesel::insert_into(team_members::table)
            .values((
                team_members::team_id.eq(team_id),
                team_members::user_id.eq(user_id),
            ))
            .execute(conn)?;
    }
    Ok(())
}
