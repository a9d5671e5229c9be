//! Users.

use diesel::prelude::*;

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, Json},
    http::Role,
};

use crate::{domain::USER_ACTIVE, schema::users};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub role: Role,
    pub status: String,
    pub permissions: Json<Vec<String>>,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

impl UserRow {
    pub fn role(&self) -> Role {
        self.role
    }

    pub fn permissions(&self) -> Vec<String> {
        self.permissions.0.clone()
    }

    pub fn is_active(&self) -> bool {
        self.status == USER_ACTIVE
    }
}

pub fn insert(conn: &mut DbConnection, row: &UserRow) -> AppResult<()> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)
        .map_err(|e| match AppError::from(e) {
            AppError::Conflict(_) => {
                AppError::Conflict("a user with this email already exists".into())
                    .with_code("auth.email_taken")
            }
            other => other,
        })?;
    Ok(())
}

pub fn email_taken(conn: &mut DbConnection, email: &str) -> AppResult<bool> {
    Ok(find_by_email(conn, email)?.is_some())
}

pub fn find_by_email(conn: &mut DbConnection, email: &str) -> AppResult<Option<UserRow>> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn get(conn: &mut DbConnection, id: &str) -> AppResult<Option<UserRow>> {
    Ok(users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// The user `id` if it belongs to `tenant_id`.
pub fn get_in_tenant(
    conn: &mut DbConnection,
    tenant_id: &str,
    id: &str,
) -> AppResult<Option<UserRow>> {
    Ok(users::table
        .filter(users::id.eq(id).and(users::tenant_id.eq(tenant_id)))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(
    conn: &mut DbConnection,
    tenant_id: &str,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<UserRow>> {
    let mut query = users::table
        .filter(users::tenant_id.eq(tenant_id.to_owned()))
        .select(UserRow::as_select())
        .order(users::id.asc())
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(users::id.gt(after.to_owned()));
    }
    Ok(query.limit(limit + 1).load(conn)?)
}

/// Ids among `ids` that are users of `tenant_id`.
pub fn existing_in_tenant(
    conn: &mut DbConnection,
    tenant_id: &str,
    ids: &[String],
) -> AppResult<Vec<String>> {
    Ok(users::table
        .filter(users::tenant_id.eq(tenant_id).and(users::id.eq_any(ids)))
        .select(users::id)
        .load(conn)?)
}

pub fn update(conn: &mut DbConnection, row: &UserRow) -> AppResult<()> {
    diesel::update(users::table.find(&row.id))
        .set((
            users::name.eq(&row.name),
            users::password_hash.eq(&row.password_hash),
            users::role.eq(&row.role),
            users::status.eq(&row.status),
            users::permissions.eq(&row.permissions),
            users::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut DbConnection, id: &str) -> AppResult<()> {
    diesel::delete(users::table.find(id)).execute(conn)?;
    Ok(())
}

/// Active tenant admins of `tenant_id` other than `except`.
/// Whether `tenant_id` holds a platform admin.
pub fn holds_platform_admins(conn: &mut DbConnection, tenant_id: &str) -> AppResult<bool> {
    let n: i64 = users::table
        .filter(
            users::tenant_id
                .eq(tenant_id)
                .and(users::role.eq(Role::PlatformAdmin)),
        )
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Whether `tenant_id` holds any user who is not a platform admin.
pub fn holds_others_than_platform_admins(
    conn: &mut DbConnection,
    tenant_id: &str,
) -> AppResult<bool> {
    let n: i64 = users::table
        .filter(
            users::tenant_id
                .eq(tenant_id)
                .and(users::role.ne(Role::PlatformAdmin)),
        )
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn other_active_admins(
    conn: &mut DbConnection,
    tenant_id: &str,
    except: &str,
) -> AppResult<i64> {
    Ok(users::table
        .filter(
            users::tenant_id
                .eq(tenant_id)
                .and(users::id.ne(except))
                .and(users::role.eq(Role::TenantAdmin.as_str()))
                .and(users::status.eq(USER_ACTIVE)),
        )
        .count()
        .get_result(conn)?)
}

pub fn any_platform_admin(conn: &mut DbConnection) -> AppResult<bool> {
    let n: i64 = users::table
        .filter(users::role.eq(Role::PlatformAdmin.as_str()))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}
