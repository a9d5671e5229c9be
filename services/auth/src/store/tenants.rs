//! Tenants.

use diesel::prelude::*;

use agora_shared::{AppError, AppResult, db::DbConnection};

use crate::schema::tenants;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub name_key: String,
    pub plan: String,
    pub status: String,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

/// Tenant names are unique regardless of case and surrounding space.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Tenant names are unique: a violation is a clear 409.
fn name_conflict(e: diesel::result::Error) -> AppError {
    match AppError::from(e) {
        AppError::Conflict(_) => {
            AppError::Conflict("a tenant with this name already exists".into())
                .with_code("auth.tenant_name_taken")
        }
        other => other,
    }
}

pub fn insert(conn: &mut DbConnection, row: &TenantRow) -> AppResult<()> {
    diesel::insert_into(tenants::table)
        .values(row)
        .execute(conn)
        .map_err(name_conflict)?;
    Ok(())
}

pub fn get(conn: &mut DbConnection, id: &str) -> AppResult<Option<TenantRow>> {
    Ok(tenants::table
        .find(id)
        .select(TenantRow::as_select())
        .first(conn)
        .optional()?)
}

/// Whether `id` is a tenant whose users may sign in (exists and is not suspended).
pub fn is_active(conn: &mut DbConnection, id: &str) -> AppResult<bool> {
    Ok(get(conn, id)?.is_some_and(|t| t.status == crate::domain::TENANT_ACTIVE))
}

pub fn find_by_name(conn: &mut DbConnection, name: &str) -> AppResult<Option<TenantRow>> {
    Ok(tenants::table
        .filter(tenants::name_key.eq(name_key(name)))
        .select(TenantRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn name_taken(conn: &mut DbConnection, name: &str) -> AppResult<bool> {
    Ok(find_by_name(conn, name)?.is_some())
}

/// Tenants in id order after `after`, up to `limit` (+1 to detect a next page).
pub fn list(conn: &mut DbConnection, after: Option<&str>, limit: i64) -> AppResult<Vec<TenantRow>> {
    let mut query = tenants::table
        .select(TenantRow::as_select())
        .order(tenants::id.asc())
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(tenants::id.gt(after.to_owned()));
    }
    Ok(query.limit(limit + 1).load(conn)?)
}

pub fn update(conn: &mut DbConnection, row: &TenantRow) -> AppResult<()> {
    diesel::update(tenants::table.find(&row.id))
        .set((
            tenants::name.eq(&row.name),
            tenants::name_key.eq(&row.name_key),
            tenants::plan.eq(&row.plan),
            tenants::status.eq(&row.status),
            tenants::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .map_err(name_conflict)?;
    Ok(())
}

pub fn delete(conn: &mut DbConnection, id: &str) -> AppResult<bool> {
    Ok(diesel::delete(tenants::table.find(id)).execute(conn)? > 0)
}
