//! What the inventory-sync service publishes, on `agora.inventory-sync.events` keyed by item id
//! (it consumes nothing yet). Every event is written to the outbox in the transaction of its
//! change.

use chrono::NaiveDateTime;
use prost::Message;

use agora_proto::{events::v1 as ev, inventory::v1 as pb};
use agora_shared::{
    AppResult,
    bus::{Event, Outbox, topic_for},
    db::DbConnection,
};

use crate::{
    model::ScanReport,
    store::{
        claims::ClaimRow, connections::SyncRunRow, discrepancies::DiscrepancyRow, items::ItemRow,
    },
};

pub const SOURCE: &str = "agora/inventory-sync";

pub fn topic() -> String {
    topic_for(crate::NAME)
}

fn rfc3339(t: Option<NaiveDateTime>) -> String {
    t.map(agora_shared::db::rfc3339).unwrap_or_default()
}

pub fn item_message(r: &ItemRow) -> pb::Item {
    pb::Item {
        id: r.id.clone(),
        tenant_id: r.tenant_id.clone(),
        sku: r.sku.clone(),
        asin: r.asin.clone().unwrap_or_default(),
        fnsku: r.fnsku.clone().unwrap_or_default(),
        name: r.name.clone(),
        on_hand: r.on_hand,
        fulfillable: r.fulfillable,
        inbound: r.inbound,
        reserved: r.reserved,
        unfulfillable: r.unfulfillable,
        unit_price: r.unit_price,
        currency: r.currency.clone(),
        reorder_point: r.reorder_point,
        reorder_quantity: r.reorder_quantity,
        updated_at: rfc3339(Some(r.updated_at)),
        version: r.version,
    }
}

pub fn discrepancy_message(r: &DiscrepancyRow) -> pb::Discrepancy {
    pb::Discrepancy {
        id: r.id.clone(),
        tenant_id: r.tenant_id.clone(),
        item_id: r.item_id.clone(),
        sku: r.sku.clone(),
        source: r.source.clone(),
        expected: r.expected,
        observed: r.observed,
        difference: r.difference,
        severity: r.severity.as_str().into(),
        suggested_action: r.suggested_action.as_str().into(),
        confidence: r.confidence,
        impact: r.impact,
        status: r.status.as_str().into(),
        value_at_stake: r.value_at_stake,
        currency: r.currency.clone(),
        detected_at: rfc3339(Some(r.detected_at)),
        resolved_at: rfc3339(r.resolved_at),
        version: r.version,
    }
}

fn claim_message(r: &ClaimRow) -> ev::Claim {
    ev::Claim {
        id: r.id.clone(),
        tenant_id: r.tenant_id.clone(),
        discrepancy_id: r.discrepancy_id.clone(),
        sku: r.sku.clone(),
        claim_type: r.claim_type.as_str().into(),
        provider: r.provider.as_str().into(),
        status: r.status.as_str().into(),
        amount: r.amount,
        currency: r.currency.clone(),
        confidence: r.confidence,
        version: r.version,
        created_at: rfc3339(Some(r.created_at)),
        updated_at: rfc3339(Some(r.updated_at)),
    }
}

/// Writes `agora.inventory.<name>` about item `item_id` to the outbox.
fn emit(
    conn: &mut DbConnection,
    name: &str,
    tenant_id: &str,
    item_id: &str,
    message: &impl Message,
) -> AppResult<()> {
    let event = Event::new(
        SOURCE,
        &format!("agora.inventory.{name}"),
        item_id,
        Some(tenant_id.to_owned()),
        message.encode_to_vec(),
    );
    Outbox::enqueue(conn, &topic(), &event)
}

/// A live discrepancy seen again with other counts.
pub fn updated(conn: &mut DbConnection, d: &DiscrepancyRow) -> AppResult<()> {
    let message = ev::DiscrepancyUpdated {
        discrepancy: Some(discrepancy_message(d)),
    };
    emit(
        conn,
        "discrepancy.updated",
        &d.tenant_id,
        &d.item_id,
        &message,
    )
}

pub fn detected(conn: &mut DbConnection, d: &DiscrepancyRow) -> AppResult<()> {
    let message = ev::DiscrepancyDetected {
        discrepancy: Some(discrepancy_message(d)),
    };
    emit(
        conn,
        "discrepancy.detected",
        &d.tenant_id,
        &d.item_id,
        &message,
    )
}

/// `how`: manual, auto_resolve, counts_agree, reconcile.
pub fn resolved(
    conn: &mut DbConnection,
    d: &DiscrepancyRow,
    how: &str,
    actor: &str,
) -> AppResult<()> {
    let message = ev::DiscrepancyResolved {
        discrepancy: Some(discrepancy_message(d)),
        how: how.to_owned(),
        actor_id: actor.to_owned(),
    };
    emit(
        conn,
        "discrepancy.resolved",
        &d.tenant_id,
        &d.item_id,
        &message,
    )
}

pub fn discrepancy_moved(
    conn: &mut DbConnection,
    d: &DiscrepancyRow,
    from: &str,
    actor: &str,
) -> AppResult<()> {
    let message = ev::DiscrepancyStatusChanged {
        discrepancy: Some(discrepancy_message(d)),
        from_status: from.to_owned(),
        to_status: d.status.as_str().into(),
        actor_id: actor.to_owned(),
    };
    emit(
        conn,
        "discrepancy.status_changed",
        &d.tenant_id,
        &d.item_id,
        &message,
    )
}

pub fn quantity_changed(
    conn: &mut DbConnection,
    item: &ItemRow,
    from: i64,
    reason: &str,
    actor: &str,
) -> AppResult<()> {
    let message = ev::ItemQuantityChanged {
        item: Some(item_message(item)),
        from_quantity: from,
        to_quantity: item.on_hand,
        reason: reason.to_owned(),
        actor_id: actor.to_owned(),
    };
    emit(
        conn,
        "item.quantity_changed",
        &item.tenant_id,
        &item.id,
        &message,
    )
}

pub fn claim_created(conn: &mut DbConnection, c: &ClaimRow) -> AppResult<()> {
    let message = ev::ClaimCreated {
        claim: Some(claim_message(c)),
        actor_id: c.created_by.clone(),
    };
    emit(conn, "claim.created", &c.tenant_id, &c.item_id, &message)
}

pub fn claim_moved(
    conn: &mut DbConnection,
    c: &ClaimRow,
    from: &str,
    actor: &str,
) -> AppResult<()> {
    let message = ev::ClaimStatusChanged {
        claim: Some(claim_message(c)),
        from_status: from.to_owned(),
        to_status: c.status.as_str().into(),
        actor_id: actor.to_owned(),
    };
    emit(
        conn,
        "claim.status_changed",
        &c.tenant_id,
        &c.item_id,
        &message,
    )
}

fn run_message(r: &SyncRunRow) -> ev::SyncRun {
    ev::SyncRun {
        id: r.id.clone(),
        tenant_id: r.tenant_id.clone(),
        connection_id: r.connection_id.clone(),
        provider: crate::domain::Provider::Amazon.as_str().into(),
        status: r.status.as_str().into(),
        trigger: r.trigger.as_str().into(),
        pages: r.pages,
        items_seen: r.items_seen,
        errors: r.errors,
        failure: r.failure.clone().unwrap_or_default(),
        snapshot_id: r.snapshot_id.clone(),
        started_at: rfc3339(Some(r.started_at)),
        finished_at: rfc3339(r.finished_at),
    }
}

/// `sync.completed`, keyed by the connection, with what the scan after it found.
pub fn sync_completed(
    conn: &mut DbConnection,
    run: &SyncRunRow,
    scan: &ScanReport,
) -> AppResult<()> {
    let message = ev::SyncCompleted {
        run: Some(run_message(run)),
        discrepancies_detected: scan.detected as i64,
        discrepancies_resolved: (scan.resolved + scan.auto_resolved) as i64,
    };
    emit(
        conn,
        "sync.completed",
        &run.tenant_id,
        &run.connection_id,
        &message,
    )
}

pub fn sync_failed(conn: &mut DbConnection, run: &SyncRunRow) -> AppResult<()> {
    let message = ev::SyncFailed {
        run: Some(run_message(run)),
    };
    emit(
        conn,
        "sync.failed",
        &run.tenant_id,
        &run.connection_id,
        &message,
    )
}
