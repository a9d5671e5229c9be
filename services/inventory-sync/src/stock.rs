//! Changes of on-hand quantities, all through one place: the item's version moves, the change
//! is audited and `item.quantity_changed` is written in the caller's transaction.

use chrono::NaiveDateTime;

use agora_shared::{AppError, AppResult, db::DbConnection};

use crate::{
    domain, events,
    store::{
        self,
        items::{ItemRow, QuantityChangeRow},
    },
};

/// Sets `item`'s on-hand quantity to `to` for `reason`; `item` is updated in place. False
/// (and nothing written) when the stored item changed since `item` was read.
pub fn set_on_hand(
    conn: &mut DbConnection,
    item: &mut ItemRow,
    to: i64,
    reason: &str,
    actor: &str,
    at: NaiveDateTime,
) -> AppResult<bool> {
    let from = item.on_hand;
    if from == to {
        return Ok(true);
    }
    let mut changed = item.clone();
    changed.on_hand = to;
    changed.version += 1;
    changed.updated_at = at;
    if !store::items::update(conn, &changed)? {
        return Ok(false);
    }
    *item = changed;
    audit(conn, item, from, reason, actor, at)?;
    events::quantity_changed(conn, item, from, reason, actor)?;
    Ok(true)
}

/// Records a quantity change that already happened (a new item counts as one from 0).
pub fn audit(
    conn: &mut DbConnection,
    item: &ItemRow,
    from: i64,
    reason: &str,
    actor: &str,
    at: NaiveDateTime,
) -> AppResult<()> {
    store::items::record_change(
        conn,
        &QuantityChangeRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: item.tenant_id.clone(),
            item_id: item.id.clone(),
            from_quantity: from,
            to_quantity: item.on_hand,
            reason: reason.to_owned(),
            actor_id: actor.to_owned(),
            created_at: at,
        },
    )
}

/// An item a source named before we had it: its count as on-hand (and fulfillable) quantity,
/// reorder point 10 and reorder quantity 50.
pub fn new_from_source(
    tenant_id: &str,
    sku: &str,
    name: Option<&str>,
    quantity: i64,
    currency: &str,
    at: NaiveDateTime,
) -> ItemRow {
    ItemRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant_id.to_owned(),
        sku: sku.to_owned(),
        asin: None,
        fnsku: None,
        name: name.unwrap_or(sku).to_owned(),
        on_hand: quantity,
        fulfillable: quantity,
        inbound: 0,
        reserved: 0,
        unfulfillable: 0,
        unit_price: 0,
        currency: currency.to_owned(),
        reorder_point: domain::NEW_ITEM_REORDER_POINT,
        reorder_quantity: domain::NEW_ITEM_REORDER_QUANTITY,
        version: 1,
        created_at: at,
        updated_at: at,
    }
}

/// Inserts a new item, audits its starting quantity and announces it; 409
/// `inventory.duplicate_sku` when the tenant has the SKU (also when a concurrent request made
/// it first).
pub fn create(conn: &mut DbConnection, item: &ItemRow, reason: &str, actor: &str) -> AppResult<()> {
    if !insert_new(conn, item, reason, actor)? {
        return Err(
            AppError::Conflict(format!("an item with SKU {} exists", item.sku))
                .with_code("inventory.duplicate_sku"),
        );
    }
    Ok(())
}

/// The tenant's item of `item.sku`: the one it has, or `item` inserted (audited and
/// announced). Concurrent requests naming the same new SKU all get the one item.
pub fn get_or_create(
    conn: &mut DbConnection,
    item: ItemRow,
    reason: &str,
    actor: &str,
) -> AppResult<(ItemRow, bool)> {
    if insert_new(conn, &item, reason, actor)? {
        return Ok((item, true));
    }
    let existing = store::items::by_sku(conn, &item.tenant_id, &item.sku)?
        .ok_or_else(|| AppError::Conflict(format!("item {} changed meanwhile", item.sku)))?;
    Ok((existing, false))
}

/// Inserts `item` unless the tenant has its SKU (no error either way: `ON CONFLICT DO
/// NOTHING`, so PostgreSQL's transaction stays usable); true when inserted.
fn insert_new(
    conn: &mut DbConnection,
    item: &ItemRow,
    reason: &str,
    actor: &str,
) -> AppResult<bool> {
    use crate::schema::items;
    use diesel::prelude::*;
    let n = agora_shared::on_each_backend!(conn, c => diesel::insert_into(items::table)
        .values(item)
        .on_conflict((items::tenant_id, items::sku))
        .do_nothing()
        .execute(c))?;
    if n == 0 {
        return Ok(false);
    }
    audit(conn, item, 0, reason, actor, item.created_at)?;
    events::quantity_changed(conn, item, 0, reason, actor)?;
    Ok(true)
}

/// Applies `fields` to `row`; true when anything changed. The quantity is applied too: the
/// caller audits an on-hand change (it knows the reason).
pub fn apply(row: &mut ItemRow, fields: &crate::model::ItemFields) -> bool {
    let before = row.clone();
    if let Some(sku) = &fields.sku {
        row.sku = sku.clone();
    }
    if let Some(name) = &fields.name {
        row.name = name.clone();
    }
    if let Some(asin) = &fields.asin {
        row.asin = asin.clone();
    }
    if let Some(fnsku) = &fields.fnsku {
        row.fnsku = fnsku.clone();
    }
    let numbers = [
        (fields.on_hand, &mut row.on_hand),
        (fields.fulfillable, &mut row.fulfillable),
        (fields.inbound, &mut row.inbound),
        (fields.reserved, &mut row.reserved),
        (fields.unfulfillable, &mut row.unfulfillable),
        (fields.unit_price, &mut row.unit_price),
        (fields.reorder_point, &mut row.reorder_point),
        (fields.reorder_quantity, &mut row.reorder_quantity),
    ];
    for (value, slot) in numbers {
        if let Some(v) = value {
            *slot = v;
        }
    }
    if let Some(currency) = &fields.currency {
        row.currency = currency.clone();
    }
    *row != before
}

/// A new item from `fields` (which must hold `sku` and `name`).
pub fn new_item(
    tenant_id: &str,
    fields: &crate::model::ItemFields,
    default_currency: &str,
    at: NaiveDateTime,
) -> AppResult<ItemRow> {
    let mut missing = Vec::new();
    if fields.sku.is_none() {
        missing.push(agora_shared::error::FieldError::new("sku", "is required"));
    }
    if fields.name.is_none() {
        missing.push(agora_shared::error::FieldError::new("name", "is required"));
    }
    if !missing.is_empty() {
        return Err(AppError::Validation(missing));
    }
    let mut row = new_from_source(tenant_id, "", None, 0, default_currency, at);
    row.fulfillable = 0;
    apply(&mut row, fields);
    Ok(row)
}
