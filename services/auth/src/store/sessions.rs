//! Sessions: login throttling, refresh-token families, revoked access tokens and single-use
//! tokens (password reset, invitation).

use diesel::prelude::*;

use agora_shared::{
    AppResult,
    db::{DbConnection, now},
};

use crate::schema::{login_throttle, one_time_tokens, refresh_tokens, revoked_access_tokens};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = login_throttle)]
pub struct ThrottleRow {
    pub email: String,
    pub failures: i32,
    pub locked_until: Option<chrono::NaiveDateTime>,
    pub updated_at: chrono::NaiveDateTime,
}

pub fn throttle(conn: &mut DbConnection, email: &str) -> AppResult<Option<ThrottleRow>> {
    Ok(login_throttle::table
        .find(email)
        .select(ThrottleRow::as_select())
        .first(conn)
        .optional()?)
}

/// Counts one more failed login for `email` atomically (an upsert, so concurrent failures are
/// all counted) and returns the new count.
pub fn count_failure(conn: &mut DbConnection, email: &str) -> AppResult<i32> {
    use diesel::sql_types::{Text, Timestamp};
    const UPSERT: &str = "INSERT INTO login_throttle (email, failures, locked_until, updated_at) \
         VALUES ({email}, 1, NULL, {at}) ON CONFLICT (email) DO UPDATE \
         SET failures = login_throttle.failures + 1, updated_at = excluded.updated_at";
    match conn {
        DbConnection::Postgres(pg) => {
            diesel::sql_query(UPSERT.replace("{email}", "$1").replace("{at}", "$2"))
                .bind::<Text, _>(email)
                .bind::<Timestamp, _>(now())
                .execute(pg)?
        }
        DbConnection::Sqlite(lite) => {
            diesel::sql_query(UPSERT.replace("{email}", "?").replace("{at}", "?"))
                .bind::<Text, _>(email)
                .bind::<Timestamp, _>(now())
                .execute(lite)?
        }
    };
    Ok(login_throttle::table
        .find(email)
        .select(login_throttle::failures)
        .first(conn)?)
}

/// Locks `email` out until `until`.
pub fn lock_until(
    conn: &mut DbConnection,
    email: &str,
    until: chrono::NaiveDateTime,
) -> AppResult<()> {
    diesel::update(login_throttle::table.find(email))
        .set(login_throttle::locked_until.eq(until))
        .execute(conn)?;
    Ok(())
}

pub fn clear_throttle(conn: &mut DbConnection, email: &str) -> AppResult<()> {
    diesel::delete(login_throttle::table.find(email)).execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshRow {
    pub id: String,
    pub family_id: String,
    pub user_id: String,
    pub tenant_id: String,
    pub token_hash: String,
    pub expires_at: chrono::NaiveDateTime,
    pub used_at: Option<chrono::NaiveDateTime>,
    pub revoked_at: Option<chrono::NaiveDateTime>,
    pub created_at: chrono::NaiveDateTime,
}

pub fn insert_refresh(conn: &mut DbConnection, row: &RefreshRow) -> AppResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Marks the live token with `hash` used, in one statement: of concurrent callers exactly one
/// sees `true`.
pub fn claim_refresh(conn: &mut DbConnection, hash: &str) -> AppResult<bool> {
    let n = diesel::update(
        refresh_tokens::table.filter(
            refresh_tokens::token_hash
                .eq(hash)
                .and(refresh_tokens::used_at.is_null())
                .and(refresh_tokens::revoked_at.is_null())
                .and(refresh_tokens::expires_at.gt(now())),
        ),
    )
    .set(refresh_tokens::used_at.eq(now()))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn find_refresh(conn: &mut DbConnection, hash: &str) -> AppResult<Option<RefreshRow>> {
    Ok(refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(hash))
        .select(RefreshRow::as_select())
        .first(conn)
        .optional()?)
}

/// Revokes every token of a family; returns how many were still live.
pub fn revoke_family(conn: &mut DbConnection, family_id: &str) -> AppResult<usize> {
    Ok(diesel::update(
        refresh_tokens::table.filter(
            refresh_tokens::family_id
                .eq(family_id)
                .and(refresh_tokens::revoked_at.is_null()),
        ),
    )
    .set(refresh_tokens::revoked_at.eq(now()))
    .execute(conn)?)
}

/// Revokes all of a user's sessions except `keep` (a family id).
pub fn revoke_user_sessions(
    conn: &mut DbConnection,
    user_id: &str,
    keep: Option<&str>,
) -> AppResult<usize> {
    let keep = keep.unwrap_or("").to_owned();
    Ok(diesel::update(
        refresh_tokens::table.filter(
            refresh_tokens::user_id
                .eq(user_id)
                .and(refresh_tokens::revoked_at.is_null())
                .and(refresh_tokens::family_id.ne(keep)),
        ),
    )
    .set(refresh_tokens::revoked_at.eq(now()))
    .execute(conn)?)
}

pub fn deny_access_token(
    conn: &mut DbConnection,
    jti: &str,
    expires_at: chrono::NaiveDateTime,
) -> AppResult<()> {
    let exists: i64 = revoked_access_tokens::table
        .find(jti)
        .count()
        .get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(revoked_access_tokens::table)
            .values((
                revoked_access_tokens::jti.eq(jti),
                revoked_access_tokens::expires_at.eq(expires_at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Revoked access tokens that have not expired yet (to reload the denylist at start).
pub fn live_denied_tokens(
    conn: &mut DbConnection,
) -> AppResult<Vec<(String, chrono::NaiveDateTime)>> {
    let cutoff = now();
    diesel::delete(
        revoked_access_tokens::table.filter(revoked_access_tokens::expires_at.lt(cutoff)),
    )
    .execute(conn)?;
    Ok(revoked_access_tokens::table
        .select((
            revoked_access_tokens::jti,
            revoked_access_tokens::expires_at,
        ))
        .load(conn)?)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = one_time_tokens)]
pub struct OneTimeRow {
    pub id: String,
    pub user_id: String,
    pub purpose: String,
    pub token_hash: String,
    pub expires_at: chrono::NaiveDateTime,
    pub used_at: Option<chrono::NaiveDateTime>,
    pub created_at: chrono::NaiveDateTime,
}

pub fn insert_one_time(conn: &mut DbConnection, row: &OneTimeRow) -> AppResult<()> {
    diesel::insert_into(one_time_tokens::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Uses the live single-use token `hash` for `purpose`; returns its user id when claimed.
pub fn claim_one_time(
    conn: &mut DbConnection,
    hash: &str,
    purpose: &str,
) -> AppResult<Option<String>> {
    let n = diesel::update(
        one_time_tokens::table.filter(
            one_time_tokens::token_hash
                .eq(hash)
                .and(one_time_tokens::purpose.eq(purpose))
                .and(one_time_tokens::used_at.is_null())
                .and(one_time_tokens::expires_at.gt(now())),
        ),
    )
    .set(one_time_tokens::used_at.eq(now()))
    .execute(conn)?;
    if n != 1 {
        return Ok(None);
    }
    Ok(one_time_tokens::table
        .filter(one_time_tokens::token_hash.eq(hash))
        .select(one_time_tokens::user_id)
        .first(conn)
        .optional()?)
}

/// Voids a user's unused tokens of `purpose` (a new one replaces them).
pub fn void_one_time(conn: &mut DbConnection, user_id: &str, purpose: &str) -> AppResult<()> {
    diesel::update(
        one_time_tokens::table.filter(
            one_time_tokens::user_id
                .eq(user_id)
                .and(one_time_tokens::purpose.eq(purpose))
                .and(one_time_tokens::used_at.is_null()),
        ),
    )
    .set(one_time_tokens::used_at.eq(now()))
    .execute(conn)?;
    Ok(())
}
