//! Token signing keys kept in the store (embedded mode generates them here).

use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use crate::schema::signing_keys;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub private_pem: String,
    pub public_x: String,
    pub created_at: chrono::NaiveDateTime,
    pub retired_at: Option<chrono::NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, row: &SigningKeyRow) -> AppResult<()> {
    diesel::insert_into(signing_keys::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Keys newest first, including retired ones retired after `retired_since`.
pub fn usable(
    conn: &mut DbConnection,
    retired_since: chrono::NaiveDateTime,
) -> AppResult<Vec<SigningKeyRow>> {
    Ok(signing_keys::table
        .filter(
            signing_keys::retired_at
                .is_null()
                .or(signing_keys::retired_at.gt(retired_since)),
        )
        .select(SigningKeyRow::as_select())
        .order(signing_keys::created_at.desc())
        .load(conn)?)
}

/// Retires every active key except `kid`.
pub fn retire_others(
    conn: &mut DbConnection,
    kid: &str,
    at: chrono::NaiveDateTime,
) -> AppResult<()> {
    diesel::update(
        signing_keys::table.filter(
            signing_keys::kid
                .ne(kid)
                .and(signing_keys::retired_at.is_null()),
        ),
    )
    .set(signing_keys::retired_at.eq(at))
    .execute(conn)?;
    Ok(())
}
