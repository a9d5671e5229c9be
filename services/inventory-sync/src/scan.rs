//! The discrepancy scan: every latest source count compared with the item's on-hand quantity
//! under RULES.md. It runs after each snapshot (over its items), on demand, and every
//! `scan_interval_secs` over every tenant.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use tokio_util::sync::CancellationToken;

use agora_shared::{AppResult, db::DbConnection};

use crate::{
    InventoryState,
    domain::{self, Action, DiscrepancyStatus},
    events,
    model::ScanReport,
    schema::{discrepancies, items},
    stock,
    store::{self, discrepancies::DiscrepancyRow, items::ItemRow, snapshots::CountRow},
};

/// Who the scan acts as in audits and events.
pub const SCANNER: &str = "system:scan";

/// Makes the tenant's count writers and scans take turns until the transaction ends
/// (snapshots, sync pages and scans arriving together): each sees what the one before it
/// wrote, and rows are never locked in two orders at once. SQLite has one writer anyway.
/// Taking it twice in one transaction is fine.
pub fn lock_tenant(conn: &mut DbConnection, tenant_id: &str) -> AppResult<()> {
    agora_shared::db::xact_lock(conn, &format!("agora.inventory.counts:{tenant_id}"))
}

/// Scans the tenant's counts (of `item_ids` only, when given) in the caller's transaction.
pub fn scan(
    conn: &mut DbConnection,
    tenant_id: &str,
    item_ids: Option<&[String]>,
    at: NaiveDateTime,
) -> AppResult<ScanReport> {
    lock_tenant(conn, tenant_id)?;
    let counts = store::snapshots::counts(conn, tenant_id, item_ids)?;
    if counts.is_empty() {
        return Ok(ScanReport::default());
    }
    // Three reads for the whole scan, not three per count.
    let mut item_query = items::table
        .filter(items::tenant_id.eq(tenant_id))
        .select(ItemRow::as_select())
        .into_boxed();
    let mut live_query = discrepancies::table
        .filter(discrepancies::tenant_id.eq(tenant_id))
        .filter(discrepancies::live.is_not_null())
        .select(DiscrepancyRow::as_select())
        .into_boxed();
    if let Some(ids) = item_ids {
        item_query = item_query.filter(items::id.eq_any(ids.to_vec()));
        live_query = live_query.filter(discrepancies::item_id.eq_any(ids.to_vec()));
    }
    let mut items: HashMap<String, ItemRow> = item_query
        .load::<ItemRow>(conn)?
        .into_iter()
        .map(|i| (i.id.clone(), i))
        .collect();
    let mut live: HashMap<(String, String), DiscrepancyRow> = live_query
        .load::<DiscrepancyRow>(conn)?
        .into_iter()
        .map(|d| ((d.item_id.clone(), d.source.clone()), d))
        .collect();
    // Each SKU's first discrepancy (ids are UUIDv7: their order is their time order), so that
    // "had one before" is a lookup, not a query per discrepancy.
    let mut seen: HashMap<String, String> = discrepancies::table
        .filter(discrepancies::tenant_id.eq(tenant_id))
        .group_by(discrepancies::sku)
        .select((discrepancies::sku, diesel::dsl::min(discrepancies::id)))
        .load::<(String, Option<String>)>(conn)?
        .into_iter()
        .filter_map(|(sku, first)| Some((sku, first?)))
        .collect();
    let auto_resolve_low = store::snapshots::auto_resolve_low(conn, tenant_id)?;
    // Every source's count of each item: a low difference is taken from a source only when no
    // other source's count disagrees with it (else two sources would take turns setting it).
    let mut by_item: HashMap<String, Vec<i64>> = HashMap::new();
    for c in &counts {
        by_item
            .entry(c.item_id.clone())
            .or_default()
            .push(c.quantity);
    }
    let mut report = ScanReport::default();
    for count in counts {
        let Some(item) = items.get_mut(&count.item_id) else {
            continue;
        };
        report.compared += 1;
        let existing = live.remove(&(count.item_id.clone(), count.source.clone()));
        let agreed = by_item
            .get(&count.item_id)
            .is_none_or(|all| all.iter().all(|q| q.abs_diff(count.quantity) <= 1));
        compare(
            conn,
            item,
            &count,
            existing,
            &mut seen,
            auto_resolve_low && agreed,
            at,
            &mut report,
        )?;
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn compare(
    conn: &mut DbConnection,
    item: &mut ItemRow,
    count: &CountRow,
    existing: Option<DiscrepancyRow>,
    seen: &mut HashMap<String, String>,
    auto_resolve_low: bool,
    at: NaiveDateTime,
    report: &mut ScanReport,
) -> AppResult<()> {
    let difference = count.quantity - item.on_hand;
    let Some(severity) = domain::severity(difference) else {
        // The counts agree (within a unit): a live discrepancy is settled.
        if let Some(mut d) = existing {
            d.status = DiscrepancyStatus::Resolved;
            d.live = None;
            d.expected = item.on_hand;
            d.observed = count.quantity;
            d.difference = difference;
            d.resolved_at = Some(at);
            d.updated_at = at;
            d.note = Some("the counts agree again".into());
            if store::discrepancies::save(conn, &mut d)? {
                events::resolved(conn, &d, "counts_agree", SCANNER)?;
                report.resolved += 1;
            }
        }
        return Ok(());
    };
    if let Some(d) = &existing
        && d.expected == item.on_hand
        && d.observed == count.quantity
    {
        return Ok(());
    }
    let had_previous = match (&existing, seen.get(&item.sku)) {
        // Earlier ones than this one.
        (Some(d), Some(first)) => *first < d.id,
        (None, first) => first.is_some(),
        (Some(_), None) => false,
    };
    let confidence = domain::confidence(&count.source, difference, had_previous);
    let price = domain::major_units(item.unit_price, &item.currency);
    let impact = domain::impact(severity, difference, price);
    let action = domain::suggested_action(severity, auto_resolve_low);
    let value = domain::value_at_stake(difference, item.unit_price);
    if let Some(mut d) = existing {
        d.snapshot_id = count.snapshot_id.clone();
        d.expected = item.on_hand;
        d.observed = count.quantity;
        d.difference = difference;
        d.severity = severity;
        // A live one is never auto-resolved later: someone is already on it.
        d.suggested_action = domain::suggested_action(severity, false);
        d.confidence = confidence;
        d.impact = impact;
        d.value_at_stake = value;
        d.currency = item.currency.clone();
        d.updated_at = at;
        if store::discrepancies::save(conn, &mut d)? {
            events::updated(conn, &d)?;
            report.updated += 1;
        }
        return Ok(());
    }
    let mut d = DiscrepancyRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: item.tenant_id.clone(),
        item_id: item.id.clone(),
        sku: item.sku.clone(),
        source: count.source.clone(),
        snapshot_id: count.snapshot_id.clone(),
        expected: item.on_hand,
        observed: count.quantity,
        difference,
        severity,
        suggested_action: action,
        confidence,
        impact,
        value_at_stake: value,
        currency: item.currency.clone(),
        status: DiscrepancyStatus::Open,
        live: Some(1),
        note: None,
        version: 1,
        detected_at: at,
        updated_at: at,
        resolved_at: None,
    };
    if action == Action::AutoResolve {
        d.status = DiscrepancyStatus::AutoResolved;
        d.live = None;
        d.resolved_at = Some(at);
        d.note = Some(format!(
            "{} units taken from {}",
            count.quantity, count.source
        ));
    }
    store::discrepancies::insert(conn, &d)?;
    seen.entry(item.sku.clone()).or_insert_with(|| d.id.clone());
    events::detected(conn, &d)?;
    report.detected += 1;
    if action == Action::AutoResolve {
        if !stock::set_on_hand(conn, item, count.quantity, "auto_resolve", SCANNER, at)? {
            // An edit of the item won; the next scan compares again.
            return Err(agora_shared::AppError::Conflict(format!(
                "item {} changed during the scan",
                item.sku
            )));
        }
        events::resolved(conn, &d, "auto_resolve", SCANNER)?;
        report.auto_resolved += 1;
    }
    Ok(())
}

/// Scans every tenant with counts every `every`, each tenant in its own transaction, until
/// `shutdown`.
pub async fn run(
    state: Arc<InventoryState>,
    every: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        if let Err(err) = scan_all(&state).await {
            tracing::warn!(error = %err, "periodic discrepancy scan failed");
        }
    }
}

async fn scan_all(state: &InventoryState) -> AppResult<()> {
    let tenants = state.db.read(store::snapshots::tenants).await?;
    for tenant in tenants {
        let at = agora_shared::db::now();
        let which = tenant.clone();
        // One tenant's failure (a store timeout on a huge inventory) skips no other.
        let report = match state
            .db
            .write(move |conn| scan(conn, &tenant, None, at))
            .await
        {
            Ok(report) => report,
            Err(err) => {
                tracing::warn!(tenant = %which, error = %err, "discrepancy scan of a tenant failed");
                continue;
            }
        };
        if report.detected + report.resolved + report.updated > 0 {
            tracing::info!(
                detected = report.detected,
                resolved = report.resolved,
                updated = report.updated,
                "periodic discrepancy scan"
            );
        }
    }
    Ok(())
}
