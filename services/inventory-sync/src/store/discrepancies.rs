//! Discrepancies: at most one live (open, investigating, escalated) per item and source, which
//! a unique index on (item_id, source, live) keeps true under concurrent scans.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use crate::{
    domain::{Action, DiscrepancyStatus, Severity},
    schema::discrepancies,
};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = discrepancies, treat_none_as_null = true)]
pub struct DiscrepancyRow {
    pub id: String,
    pub tenant_id: String,
    pub item_id: String,
    pub sku: String,
    pub source: String,
    pub snapshot_id: String,
    pub expected: i64,
    pub observed: i64,
    pub difference: i64,
    pub severity: Severity,
    pub suggested_action: Action,
    pub confidence: f64,
    pub impact: f64,
    pub value_at_stake: i64,
    pub currency: String,
    pub status: DiscrepancyStatus,
    /// `Some(1)` while live, `None` once settled.
    pub live: Option<i32>,
    pub note: Option<String>,
    pub version: i64,
    pub detected_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub resolved_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, row: &DiscrepancyRow) -> AppResult<()> {
    diesel::insert_into(discrepancies::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(
    conn: &mut DbConnection,
    tenant_id: &str,
    id: &str,
) -> AppResult<Option<DiscrepancyRow>> {
    Ok(discrepancies::table
        .filter(discrepancies::tenant_id.eq(tenant_id))
        .filter(discrepancies::id.eq(id))
        .select(DiscrepancyRow::as_select())
        .first(conn)
        .optional()?)
}

/// The live discrepancy of an item from a source, if any.
pub fn live(
    conn: &mut DbConnection,
    item_id: &str,
    source: &str,
) -> AppResult<Option<DiscrepancyRow>> {
    Ok(discrepancies::table
        .filter(discrepancies::item_id.eq(item_id))
        .filter(discrepancies::source.eq(source))
        .filter(discrepancies::live.is_not_null())
        .select(DiscrepancyRow::as_select())
        .first(conn)
        .optional()?)
}

/// Every live discrepancy of an item.
pub fn live_of_item(conn: &mut DbConnection, item_id: &str) -> AppResult<Vec<DiscrepancyRow>> {
    Ok(discrepancies::table
        .filter(discrepancies::item_id.eq(item_id))
        .filter(discrepancies::live.is_not_null())
        .select(DiscrepancyRow::as_select())
        .load(conn)?)
}

/// Writes `row` (at the next version) over the stored one if that is still at `row`'s
/// version; false when another change came first. `row.version` moves on when written.
pub fn save(conn: &mut DbConnection, row: &mut DiscrepancyRow) -> AppResult<bool> {
    let read = row.version;
    row.version += 1;
    let n = diesel::update(
        discrepancies::table
            .filter(discrepancies::id.eq(&row.id))
            .filter(discrepancies::version.eq(read)),
    )
    .set(&*row)
    .execute(conn)?;
    if n != 1 {
        row.version = read;
    }
    Ok(n == 1)
}

/// Filters of a discrepancy list.
#[derive(Debug, Default, Clone)]
pub struct DiscrepancyFilter {
    pub status: Option<DiscrepancyStatus>,
    pub severity: Option<Severity>,
    pub sku: Option<String>,
    pub item_id: Option<String>,
}

/// The tenant's discrepancies, newest first, before id `before`.
pub fn list(
    conn: &mut DbConnection,
    tenant_id: &str,
    filter: &DiscrepancyFilter,
    before: Option<&str>,
    limit: i64,
) -> AppResult<Vec<DiscrepancyRow>> {
    let mut query = discrepancies::table
        .filter(discrepancies::tenant_id.eq(tenant_id))
        .order(discrepancies::id.desc())
        .select(DiscrepancyRow::as_select())
        .limit(limit + 1)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(discrepancies::id.lt(before.to_owned()));
    }
    if let Some(status) = filter.status {
        query = query.filter(discrepancies::status.eq(status));
    }
    if let Some(severity) = filter.severity {
        query = query.filter(discrepancies::severity.eq(severity));
    }
    if let Some(sku) = &filter.sku {
        query = query.filter(discrepancies::sku.eq(sku.clone()));
    }
    if let Some(item) = &filter.item_id {
        query = query.filter(discrepancies::item_id.eq(item.clone()));
    }
    Ok(query.load(conn)?)
}
