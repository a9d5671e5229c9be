//! Connections and their sync runs. At most one run per connection is live (a unique index
//! on (connection_id, live)); a replica works on a run only while it holds its lease.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use crate::{
    domain::{ConnectionStatus, Provider, SyncStatus, SyncTrigger},
    schema::{connections, sync_runs},
};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = connections, treat_none_as_null = true)]
pub struct ConnectionRow {
    pub id: String,
    pub tenant_id: String,
    pub provider: Provider,
    pub account: String,
    pub status: ConnectionStatus,
    /// Sealed for the connection's id.
    pub credentials: String,
    /// Sealed for the connection's id.
    pub access_token: Option<String>,
    pub access_expires_at: Option<NaiveDateTime>,
    pub webhook_secret: Option<String>,
    pub last_error: Option<String>,
    pub last_synced_at: Option<NaiveDateTime>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = sync_runs, treat_none_as_null = true)]
pub struct SyncRunRow {
    pub id: String,
    pub tenant_id: String,
    pub connection_id: String,
    pub status: SyncStatus,
    pub trigger: SyncTrigger,
    pub live: Option<i32>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub snapshot_id: String,
    pub next_token: Option<String>,
    pub pages: i64,
    pub items_seen: i64,
    pub errors: i64,
    pub failure: Option<String>,
    pub started_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, row: &ConnectionRow) -> AppResult<()> {
    diesel::insert_into(connections::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<Option<ConnectionRow>> {
    Ok(connections::table
        .filter(connections::tenant_id.eq(tenant_id))
        .filter(connections::id.eq(id))
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()?)
}

/// A connection whatever its tenant (the sync worker's view).
pub fn get_any(conn: &mut DbConnection, id: &str) -> AppResult<Option<ConnectionRow>> {
    Ok(connections::table
        .find(id)
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(conn: &mut DbConnection, tenant_id: &str) -> AppResult<Vec<ConnectionRow>> {
    Ok(connections::table
        .filter(connections::tenant_id.eq(tenant_id))
        .order(connections::id.asc())
        .select(ConnectionRow::as_select())
        .load(conn)?)
}

/// Every tenant's active connections of `provider` (the mail scanner's work).
pub fn active_of(conn: &mut DbConnection, provider: Provider) -> AppResult<Vec<ConnectionRow>> {
    Ok(connections::table
        .filter(connections::provider.eq(provider))
        .filter(connections::status.eq(ConnectionStatus::Active))
        .order(connections::id.asc())
        .select(ConnectionRow::as_select())
        .load(conn)?)
}

pub fn update(conn: &mut DbConnection, row: &ConnectionRow) -> AppResult<()> {
    diesel::update(connections::table.find(&row.id))
        .set(row)
        .execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<bool> {
    let n = diesel::delete(
        connections::table
            .filter(connections::tenant_id.eq(tenant_id))
            .filter(connections::id.eq(id)),
    )
    .execute(conn)?;
    Ok(n == 1)
}

/// Active connections of `provider` whose last run started before `due` (or never ran) and
/// that have none running: the scheduler's work.
pub fn due(
    conn: &mut DbConnection,
    provider: Provider,
    due: NaiveDateTime,
) -> AppResult<Vec<ConnectionRow>> {
    let busy_or_recent = sync_runs::table
        .filter(
            sync_runs::live
                .is_not_null()
                .or(sync_runs::started_at.gt(due)),
        )
        .select(sync_runs::connection_id);
    Ok(connections::table
        .filter(connections::provider.eq(provider))
        .filter(connections::status.eq(ConnectionStatus::Active))
        .filter(connections::id.ne_all(busy_or_recent))
        .select(ConnectionRow::as_select())
        .load(conn)?)
}

pub fn insert_run(conn: &mut DbConnection, row: &SyncRunRow) -> AppResult<()> {
    diesel::insert_into(sync_runs::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get_run(
    conn: &mut DbConnection,
    tenant_id: &str,
    id: &str,
) -> AppResult<Option<SyncRunRow>> {
    Ok(sync_runs::table
        .filter(sync_runs::tenant_id.eq(tenant_id))
        .filter(sync_runs::id.eq(id))
        .select(SyncRunRow::as_select())
        .first(conn)
        .optional()?)
}

/// A connection's runs, newest first, before id `before`.
pub fn runs(
    conn: &mut DbConnection,
    connection_id: &str,
    before: Option<&str>,
    limit: i64,
) -> AppResult<Vec<SyncRunRow>> {
    let mut query = sync_runs::table
        .filter(sync_runs::connection_id.eq(connection_id))
        .order(sync_runs::id.desc())
        .select(SyncRunRow::as_select())
        .limit(limit + 1)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(sync_runs::id.lt(before.to_owned()));
    }
    Ok(query.load(conn)?)
}

/// Live runs nobody holds (never taken, or their holder's lease lapsed).
pub fn unheld(conn: &mut DbConnection, at: NaiveDateTime, limit: i64) -> AppResult<Vec<String>> {
    Ok(sync_runs::table
        .filter(sync_runs::live.is_not_null())
        .filter(
            sync_runs::lease_until
                .is_null()
                .or(sync_runs::lease_until.lt(at)),
        )
        .order(sync_runs::id.asc())
        .select(sync_runs::id)
        .limit(limit)
        .load(conn)?)
}

/// Takes run `id` for `owner` until `until` if it is live and unheld at `at`; false otherwise.
pub fn take(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    at: NaiveDateTime,
    until: NaiveDateTime,
) -> AppResult<bool> {
    let n = diesel::update(
        sync_runs::table
            .filter(sync_runs::id.eq(id))
            .filter(sync_runs::live.is_not_null())
            .filter(
                sync_runs::lease_until
                    .is_null()
                    .or(sync_runs::lease_until.lt(at)),
            ),
    )
    .set((
        sync_runs::lease_owner.eq(owner),
        sync_runs::lease_until.eq(until),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// The run, if `owner` still holds it.
pub fn held(conn: &mut DbConnection, id: &str, owner: &str) -> AppResult<Option<SyncRunRow>> {
    Ok(sync_runs::table
        .filter(sync_runs::id.eq(id))
        .filter(sync_runs::live.is_not_null())
        .filter(sync_runs::lease_owner.eq(owner))
        .select(SyncRunRow::as_select())
        .first(conn)
        .optional()?)
}

/// Writes `row` if `owner` still holds it; false when the run was taken over or ended.
pub fn save_held(conn: &mut DbConnection, row: &SyncRunRow, owner: &str) -> AppResult<bool> {
    let n = diesel::update(
        sync_runs::table
            .filter(sync_runs::id.eq(&row.id))
            .filter(sync_runs::live.is_not_null())
            .filter(sync_runs::lease_owner.eq(owner)),
    )
    .set(row)
    .execute(conn)?;
    Ok(n == 1)
}

/// Extends `owner`'s lease of run `id` to `until`; false when it no longer holds it.
pub fn renew(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    until: NaiveDateTime,
) -> AppResult<bool> {
    let n = diesel::update(
        sync_runs::table
            .filter(sync_runs::id.eq(id))
            .filter(sync_runs::live.is_not_null())
            .filter(sync_runs::lease_owner.eq(owner)),
    )
    .set(sync_runs::lease_until.eq(until))
    .execute(conn)?;
    Ok(n == 1)
}

/// Keeps a new access token if the connection still has `credentials` (new ones given
/// meanwhile are not overwritten, nor their token).
pub fn keep_access(
    conn: &mut DbConnection,
    id: &str,
    credentials: &str,
    access_token: &str,
    expires_at: NaiveDateTime,
    at: NaiveDateTime,
) -> AppResult<()> {
    diesel::update(
        connections::table
            .filter(connections::id.eq(id))
            .filter(connections::credentials.eq(credentials)),
    )
    .set((
        connections::access_token.eq(access_token),
        connections::access_expires_at.eq(expires_at),
        connections::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(())
}

/// Records why a sync failed; `reauth` also marks the connection `reauth_required` and drops
/// its access token. Only while it still has the `credentials` that failed.
pub fn mark_failed(
    conn: &mut DbConnection,
    id: &str,
    credentials: &str,
    reason: &str,
    reauth: bool,
    at: NaiveDateTime,
) -> AppResult<()> {
    let target = connections::table
        .filter(connections::id.eq(id))
        .filter(connections::credentials.eq(credentials));
    if reauth {
        diesel::update(target)
            .set((
                connections::status.eq(ConnectionStatus::ReauthRequired),
                connections::access_token.eq(None::<String>),
                connections::access_expires_at.eq(None::<NaiveDateTime>),
                connections::last_error.eq(reason),
                connections::updated_at.eq(at),
            ))
            .execute(conn)?;
    } else {
        diesel::update(target)
            .set((
                connections::last_error.eq(reason),
                connections::updated_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// A sync of the connection completed at `at`.
pub fn mark_synced(conn: &mut DbConnection, id: &str, at: NaiveDateTime) -> AppResult<()> {
    diesel::update(connections::table.find(id))
        .set((
            connections::last_synced_at.eq(at),
            connections::last_error.eq(None::<String>),
            connections::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}
