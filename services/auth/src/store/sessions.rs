//! Sessions: login throttling, refresh-token families, revoked access tokens and single-use
//! tokens (password reset, invitation).

use chrono::NaiveDateTime;
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
    pub pending: i32,
}

/// The throttle row of logins at `email` from `ip`: one per account and client address.
pub fn throttle_key(email: &str, ip: Option<std::net::IpAddr>) -> String {
    match ip {
        Some(ip) => format!("{email} {ip}"),
        None => email.to_owned(),
    }
}

/// Runs `sql` with `{email}` and `{at}` bound on either backend.
fn run_keyed(conn: &mut DbConnection, sql: &str, email: &str, at: NaiveDateTime) -> AppResult<()> {
    use diesel::sql_types::{Text, Timestamp};
    match conn {
        DbConnection::Postgres(pg) => {
            diesel::sql_query(sql.replace("{email}", "$1").replace("{at}", "$2"))
                .bind::<Text, _>(email)
                .bind::<Timestamp, _>(at)
                .execute(pg)?
        }
        DbConnection::Sqlite(lite) => {
            diesel::sql_query(sql.replace("{email}", "?1").replace("{at}", "?2"))
                .bind::<Text, _>(email)
                .bind::<Timestamp, _>(at)
                .execute(lite)?
        }
    };
    Ok(())
}

/// A reservation of one login attempt, or the lock that refuses it.
pub enum Attempt {
    Reserved,
    Refused { until: NaiveDateTime },
}

/// Reserves one attempt at `email` before its password is checked, in one write: the attempt
/// counts as in flight, and is refused (and not counted) when the account is locked or when
/// the failures so far plus the attempts in flight already reach `threshold` (after a lock has
/// run out, one attempt at a time). Concurrent guesses thus cannot all pass a check made
/// before any of them failed. In-flight counts older than a minute (a process that died
/// mid-check) are forgotten.
pub fn reserve_attempt(
    conn: &mut DbConnection,
    email: &str,
    threshold: i32,
    base: chrono::Duration,
) -> AppResult<Attempt> {
    const RESERVE: &str = "INSERT INTO login_throttle (email, failures, locked_until, updated_at, pending) \
         VALUES ({email}, 0, NULL, {at}, 1) ON CONFLICT (email) DO UPDATE SET \
         pending = CASE WHEN login_throttle.updated_at < {stale} THEN 1 \
         ELSE login_throttle.pending + 1 END, updated_at = excluded.updated_at";
    let at = now();
    let stale = match conn {
        DbConnection::Postgres(_) => "{at} - INTERVAL '1 minute'",
        DbConnection::Sqlite(_) => "datetime({at}, '-1 minute')",
    };
    run_keyed(conn, &RESERVE.replace("{stale}", stale), email, at)?;
    let row: ThrottleRow = login_throttle::table
        .find(email)
        .select(ThrottleRow::as_select())
        .first(conn)?;
    let locked = row.locked_until.filter(|until| *until > at);
    let room = (threshold - row.failures).max(1);
    if locked.is_none() && row.pending <= room {
        return Ok(Attempt::Reserved);
    }
    release(conn, email)?;
    Ok(Attempt::Refused {
        until: locked.unwrap_or(at + base),
    })
}

/// Ends an attempt that was not checked.
fn release(conn: &mut DbConnection, email: &str) -> AppResult<()> {
    run_keyed(
        conn,
        "UPDATE login_throttle SET pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END, updated_at = {at} WHERE email = {email}",
        email,
        now(),
    )
}

/// Settles a reserved attempt as failed; returns the failures counted so far.
pub fn count_failure(conn: &mut DbConnection, email: &str) -> AppResult<i32> {
    run_keyed(
        conn,
        "UPDATE login_throttle SET failures = failures + 1, \
         pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END, updated_at = {at} WHERE email = {email}",
        email,
        now(),
    )?;
    Ok(login_throttle::table
        .find(email)
        .select(login_throttle::failures)
        .first::<i32>(conn)
        .optional()?
        .unwrap_or(1))
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

pub fn clear_throttle(conn: &mut DbConnection, key: &str) -> AppResult<()> {
    diesel::delete(login_throttle::table.find(key)).execute(conn)?;
    Ok(())
}

/// Clears every throttle row of `email`, from any address (a password reset).
pub fn clear_account_throttles(conn: &mut DbConnection, email: &str) -> AppResult<()> {
    // Rows are `email` or `email <ip>`; the email's own LIKE wildcards are escaped.
    let escaped: String = email
        .chars()
        .flat_map(|c| match c {
            '\\' | '%' | '_' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    diesel::delete(
        login_throttle::table.filter(
            login_throttle::email.eq(email).or(login_throttle::email
                .like(format!("{escaped} %"))
                .escape('\\')),
        ),
    )
    .execute(conn)?;
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

/// Revokes every session of every user of `tenant_id` (suspension).
pub fn revoke_tenant_sessions(conn: &mut DbConnection, tenant_id: &str) -> AppResult<usize> {
    Ok(diesel::update(
        refresh_tokens::table.filter(
            refresh_tokens::tenant_id
                .eq(tenant_id)
                .and(refresh_tokens::revoked_at.is_null()),
        ),
    )
    .set(refresh_tokens::revoked_at.eq(now()))
    .execute(conn)?)
}

/// Revokes all of a user's sessions except `keep` (a family id); returns the sessions ended.
pub fn revoke_user_sessions(
    conn: &mut DbConnection,
    user_id: &str,
    keep: Option<&str>,
) -> AppResult<Vec<String>> {
    let keep = keep.unwrap_or("").to_owned();
    let live = refresh_tokens::table.filter(
        refresh_tokens::user_id
            .eq(user_id)
            .and(refresh_tokens::revoked_at.is_null())
            .and(refresh_tokens::family_id.ne(keep)),
    );
    let mut families: Vec<String> = live.clone().select(refresh_tokens::family_id).load(conn)?;
    families.sort();
    families.dedup();
    diesel::update(live)
        .set(refresh_tokens::revoked_at.eq(now()))
        .execute(conn)?;
    Ok(families)
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
/// Whether an unused, unexpired token with `hash` exists (a read, so that a guessed token is
/// refused before it costs a password hash; the claim checks again).
pub fn one_time_live(conn: &mut DbConnection, hash: &str, purpose: &str) -> AppResult<bool> {
    let n: i64 = one_time_tokens::table
        .filter(
            one_time_tokens::token_hash
                .eq(hash)
                .and(one_time_tokens::purpose.eq(purpose))
                .and(one_time_tokens::used_at.is_null())
                .and(one_time_tokens::expires_at.gt(now())),
        )
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

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
