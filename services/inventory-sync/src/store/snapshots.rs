//! Snapshots (counts a source reported at once), each item's latest count per source, and the
//! tenant's scan rules.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use crate::schema::{rules, snapshots, source_counts};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = snapshots)]
pub struct SnapshotRow {
    pub id: String,
    pub tenant_id: String,
    pub source: String,
    pub item_count: i64,
    pub created_by: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = source_counts)]
pub struct CountRow {
    pub tenant_id: String,
    pub item_id: String,
    pub source: String,
    pub quantity: i64,
    pub snapshot_id: String,
    pub observed_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &SnapshotRow) -> AppResult<()> {
    diesel::insert_into(snapshots::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<Option<SnapshotRow>> {
    Ok(snapshots::table
        .filter(snapshots::tenant_id.eq(tenant_id))
        .filter(snapshots::id.eq(id))
        .select(SnapshotRow::as_select())
        .first(conn)
        .optional()?)
}

/// Sets how many counts a snapshot holds (a sync's, once it ends).
pub fn set_count(conn: &mut DbConnection, id: &str, item_count: i64) -> AppResult<()> {
    diesel::update(snapshots::table.find(id))
        .set(snapshots::item_count.eq(item_count))
        .execute(conn)?;
    Ok(())
}

/// Records `row` as the item's latest count from its source.
pub fn record_count(conn: &mut DbConnection, row: &CountRow) -> AppResult<()> {
    agora_shared::on_each_backend!(conn, c => diesel::insert_into(source_counts::table)
        .values(row)
        .on_conflict((source_counts::item_id, source_counts::source))
        .do_update()
        .set((
            source_counts::quantity.eq(row.quantity),
            source_counts::snapshot_id.eq(&row.snapshot_id),
            source_counts::observed_at.eq(row.observed_at),
        ))
        .execute(c))?;
    Ok(())
}

/// The latest counts of the tenant's items (of `item_ids` only, when given).
pub fn counts(
    conn: &mut DbConnection,
    tenant_id: &str,
    item_ids: Option<&[String]>,
) -> AppResult<Vec<CountRow>> {
    let mut query = source_counts::table
        .filter(source_counts::tenant_id.eq(tenant_id))
        .order((source_counts::item_id.asc(), source_counts::source.asc()))
        .select(CountRow::as_select())
        .into_boxed();
    if let Some(ids) = item_ids {
        query = query.filter(source_counts::item_id.eq_any(ids.to_vec()));
    }
    Ok(query.load(conn)?)
}

/// Tenants with at least one count (the periodic scan's work list).
pub fn tenants(conn: &mut DbConnection) -> AppResult<Vec<String>> {
    Ok(source_counts::table
        .select(source_counts::tenant_id)
        .distinct()
        .order(source_counts::tenant_id.asc())
        .load(conn)?)
}

/// Whether the tenant auto-resolves low discrepancies (off until it says so).
pub fn auto_resolve_low(conn: &mut DbConnection, tenant_id: &str) -> AppResult<bool> {
    Ok(rules::table
        .find(tenant_id)
        .select(rules::auto_resolve_low)
        .first(conn)
        .optional()?
        .unwrap_or(false))
}

pub fn set_rules(
    conn: &mut DbConnection,
    tenant_id: &str,
    auto_resolve_low: bool,
    at: NaiveDateTime,
) -> AppResult<()> {
    agora_shared::on_each_backend!(conn, c => diesel::insert_into(rules::table)
        .values((
            rules::tenant_id.eq(tenant_id),
            rules::auto_resolve_low.eq(auto_resolve_low),
            rules::updated_at.eq(at),
        ))
        .on_conflict(rules::tenant_id)
        .do_update()
        .set((
            rules::auto_resolve_low.eq(auto_resolve_low),
            rules::updated_at.eq(at),
        ))
        .execute(c))?;
    Ok(())
}
