//! API keys (stored as SHA-256 of the secret).

use diesel::prelude::*;

use agora_shared::{
    AppResult,
    db::{DbConnection, now},
    http::Role,
};

use crate::schema::{api_keys, tenants, users};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant_id: String,
    pub created_by: String,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub role: Role,
    pub expires_at: Option<chrono::NaiveDateTime>,
    pub last_used_at: Option<chrono::NaiveDateTime>,
    pub revoked_at: Option<chrono::NaiveDateTime>,
    pub created_at: chrono::NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &ApiKeyRow) -> AppResult<()> {
    diesel::insert_into(api_keys::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Live (not revoked) keys of a tenant, in id order.
pub fn list(
    conn: &mut DbConnection,
    tenant_id: &str,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<ApiKeyRow>> {
    let mut query = api_keys::table
        .filter(
            api_keys::tenant_id
                .eq(tenant_id.to_owned())
                .and(api_keys::revoked_at.is_null()),
        )
        .select(ApiKeyRow::as_select())
        .order(api_keys::id.asc())
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(api_keys::id.gt(after.to_owned()));
    }
    Ok(query.limit(limit + 1).load(conn)?)
}

/// Revokes a live key of `tenant_id`; false when there is none.
pub fn revoke(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<bool> {
    Ok(diesel::update(
        api_keys::table.filter(
            api_keys::id
                .eq(id)
                .and(api_keys::tenant_id.eq(tenant_id))
                .and(api_keys::revoked_at.is_null()),
        ),
    )
    .set(api_keys::revoked_at.eq(now()))
    .execute(conn)?
        > 0)
}

/// The live, unexpired key with `hash`, its creator's email and current role, when the creator
/// is active and the tenant is not suspended.
pub fn resolve(
    conn: &mut DbConnection,
    hash: &str,
) -> AppResult<Option<(ApiKeyRow, String, Role)>> {
    let now = now();
    Ok(api_keys::table
        .inner_join(users::table.inner_join(tenants::table))
        .filter(
            api_keys::key_hash
                .eq(hash)
                .and(api_keys::revoked_at.is_null())
                .and(
                    api_keys::expires_at
                        .is_null()
                        .or(api_keys::expires_at.gt(now)),
                )
                .and(users::status.eq(crate::domain::USER_ACTIVE))
                .and(tenants::status.eq(crate::domain::TENANT_ACTIVE)),
        )
        .select((ApiKeyRow::as_select(), users::email, users::role))
        .first(conn)
        .optional()?)
}

/// Records use, at most once a minute per key so verification stays read-mostly.
pub fn touch(conn: &mut DbConnection, id: &str) -> AppResult<()> {
    let now = now();
    let stale = now - chrono::Duration::seconds(60);
    diesel::update(
        api_keys::table.filter(
            api_keys::id.eq(id).and(
                api_keys::last_used_at
                    .is_null()
                    .or(api_keys::last_used_at.lt(stale)),
            ),
        ),
    )
    .set(api_keys::last_used_at.eq(now))
    .execute(conn)?;
    Ok(())
}
