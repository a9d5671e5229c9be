//! Items, and the audit of their on-hand quantity.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use crate::schema::{items, quantity_changes};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = items, treat_none_as_null = true)]
pub struct ItemRow {
    pub id: String,
    pub tenant_id: String,
    pub sku: String,
    pub asin: Option<String>,
    pub fnsku: Option<String>,
    pub name: String,
    pub on_hand: i64,
    pub fulfillable: i64,
    pub inbound: i64,
    pub reserved: i64,
    pub unfulfillable: i64,
    pub unit_price: i64,
    pub currency: String,
    pub reorder_point: i64,
    pub reorder_quantity: i64,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = quantity_changes)]
pub struct QuantityChangeRow {
    pub id: String,
    pub tenant_id: String,
    pub item_id: String,
    pub from_quantity: i64,
    pub to_quantity: i64,
    pub reason: String,
    pub actor_id: String,
    pub created_at: NaiveDateTime,
}

diesel::define_sql_function! {
    /// `substr(text, start, length)`, in characters on both backends.
    fn substr(text: diesel::sql_types::Text, start: diesel::sql_types::Integer, length: diesel::sql_types::Integer) -> diesel::sql_types::Text;
}

pub fn insert(conn: &mut DbConnection, row: &ItemRow) -> AppResult<()> {
    diesel::insert_into(items::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The tenant's item by id, or else by SKU.
pub fn get(
    conn: &mut DbConnection,
    tenant_id: &str,
    id_or_sku: &str,
) -> AppResult<Option<ItemRow>> {
    let by_id = items::table
        .filter(items::tenant_id.eq(tenant_id))
        .filter(items::id.eq(id_or_sku))
        .select(ItemRow::as_select())
        .first(conn)
        .optional()?;
    match by_id {
        Some(row) => Ok(Some(row)),
        None => by_sku(conn, tenant_id, id_or_sku),
    }
}

pub fn by_sku(conn: &mut DbConnection, tenant_id: &str, sku: &str) -> AppResult<Option<ItemRow>> {
    Ok(items::table
        .filter(items::tenant_id.eq(tenant_id))
        .filter(items::sku.eq(sku))
        .select(ItemRow::as_select())
        .first(conn)
        .optional()?)
}

/// Filters of an item list.
#[derive(Debug, Default, Clone)]
pub struct ItemFilter {
    /// Exactly this SKU.
    pub sku: Option<String>,
    /// SKUs starting with this.
    pub sku_prefix: Option<String>,
    /// Only items at or below their reorder point.
    pub needs_reorder: bool,
}

/// The tenant's items in SKU order, after SKU `after`.
pub fn list(
    conn: &mut DbConnection,
    tenant_id: &str,
    filter: &ItemFilter,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<ItemRow>> {
    let mut query = items::table
        .filter(items::tenant_id.eq(tenant_id))
        .order(items::sku.asc())
        .select(ItemRow::as_select())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(items::sku.gt(after.to_owned()));
    }
    if let Some(prefix) = &filter.sku_prefix {
        // Not LIKE: SQLite's is case-insensitive and PostgreSQL's is not.
        let n = prefix.chars().count() as i32;
        query = query.filter(substr(items::sku, 1, n).eq(prefix.clone()));
    }
    if let Some(sku) = &filter.sku {
        query = query.filter(items::sku.eq(sku.clone()));
    }
    if filter.needs_reorder {
        query = query.filter(items::fulfillable.le(items::reorder_point));
    }
    Ok(query.load(conn)?)
}

/// Writes `row` over the stored item if it is still at `row.version - 1`; false when it moved.
pub fn update(conn: &mut DbConnection, row: &ItemRow) -> AppResult<bool> {
    let n = diesel::update(
        items::table
            .filter(items::id.eq(&row.id))
            .filter(items::version.eq(row.version - 1)),
    )
    .set(row)
    .execute(conn)?;
    Ok(n == 1)
}

pub fn delete(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<bool> {
    let n = diesel::delete(
        items::table
            .filter(items::tenant_id.eq(tenant_id))
            .filter(items::id.eq(id)),
    )
    .execute(conn)?;
    Ok(n == 1)
}

pub fn record_change(conn: &mut DbConnection, row: &QuantityChangeRow) -> AppResult<()> {
    diesel::insert_into(quantity_changes::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// An item's quantity changes, oldest first, after change id `after`.
pub fn changes(
    conn: &mut DbConnection,
    item_id: &str,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<QuantityChangeRow>> {
    let mut query = quantity_changes::table
        .filter(quantity_changes::item_id.eq(item_id))
        .order(quantity_changes::id.asc())
        .select(QuantityChangeRow::as_select())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(quantity_changes::id.gt(after.to_owned()));
    }
    Ok(query.load(conn)?)
}
