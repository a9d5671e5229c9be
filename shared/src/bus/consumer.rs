//! Running a consumer: each event is handled in a store transaction together with its inbox
//! row, so an event delivered twice is handled once. Events already waiting are taken together
//! (up to `BATCH`), handled in order in one transaction (each in a savepoint) and committed to
//! the bus once. An event whose handler fails is retried on its own with backoff, and then
//! dead-lettered to `<topic>.dlq`, before the events after it are handled.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use diesel::prelude::*;
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::{Delivery, Event, SharedBus};
use crate::{
    db::{Db, DbConnection, now, outbox_schema::inbox},
    error::{AppError, AppResult},
};

/// Handles one event inside the consumer's transaction.
pub type Handler = Arc<dyn Fn(&mut DbConnection, &Event) -> AppResult<()> + Send + Sync>;

const ATTEMPTS: u32 = 5;

/// Most events handled in one transaction.
pub const BATCH: usize = 256;

/// Consumes `topic` as group `group` until `shutdown`.
pub async fn run_consumer(
    bus: SharedBus,
    db: Db,
    topic: String,
    group: String,
    handler: Handler,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut sub = bus.subscribe(&topic, &group).await?;
    loop {
        let first = tokio::select! {
            d = sub.next() => d?,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let mut batch = vec![first];
        // Whatever is already waiting joins the batch; nothing waits for more. (A `next` that
        // would wait is dropped before it takes anything.)
        while batch.len() < BATCH {
            match sub.next().now_or_never() {
                Some(Ok(d)) => batch.push(d),
                _ => break,
            }
        }
        // Handled in order: a prefix in one transaction up to the first failing event, which
        // is then retried on its own (and dead-lettered if it keeps failing) before the rest.
        let mut rest = &batch[..];
        while !rest.is_empty() {
            let events: Vec<Event> = rest.iter().map(|d| d.event.clone()).collect();
            let done = handle_prefix(&db, &group, events, handler.clone())
                .await
                .unwrap_or(0);
            rest = &rest[done..];
            if let Some(failing) = rest.first() {
                if !handle_alone(&bus, &db, &topic, &group, failing, &handler, &shutdown).await? {
                    return Ok(());
                }
                rest = &rest[1..];
            }
        }
        // The last delivery of each partition commits everything before it.
        let mut last: BTreeMap<u32, &Delivery> = BTreeMap::new();
        for d in &batch {
            last.insert(d.partition, d);
        }
        for d in last.values() {
            sub.commit(d).await?;
        }
    }
}

/// Handles one event with retries, then dead-letters it. False when stopped meanwhile.
async fn handle_alone(
    bus: &SharedBus,
    db: &Db,
    topic: &str,
    group: &str,
    delivery: &Delivery,
    handler: &Handler,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match handle_once(db, group, &delivery.event, handler.clone()).await {
            Ok(_) => return Ok(true),
            Err(err) if attempt < ATTEMPTS => {
                let wait = Duration::from_millis(50 * 2u64.pow(attempt));
                tracing::warn!(error = %err, attempt, event_id = %delivery.event.id, "event handler failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return Ok(false),
                }
            }
            Err(err) => {
                tracing::error!(error = %err, event_id = %delivery.event.id, "event handler failed; dead-lettering");
                let mut dead = delivery.event.clone();
                dead.event_type = format!("{}.failed", dead.event_type);
                dead.source = format!("{}; consumer={group}; reason={err}", dead.source);
                bus.publish(&format!("{topic}.dlq"), &dead).await?;
                return Ok(true);
            }
        }
    }
}

/// Handles events in one transaction, each in a savepoint, up to the first that fails (whose
/// work is rolled back); returns how many were handled (or found in the inbox).
async fn handle_prefix(
    db: &Db,
    group: &str,
    events: Vec<Event>,
    handler: Handler,
) -> AppResult<usize> {
    let group = group.to_owned();
    db.write(move |conn| {
        let mut done = 0;
        for event in &events {
            let handled = conn.transaction(|conn| handle_in(conn, &group, event, &handler));
            if handled.is_err() {
                break;
            }
            done += 1;
        }
        Ok(done)
    })
    .await
}

/// Returns whether the handler ran (false when the inbox says it already did).
async fn handle_once(db: &Db, group: &str, event: &Event, handler: Handler) -> AppResult<bool> {
    let group = group.to_owned();
    let event = event.clone();
    db.write(move |conn| handle_in(conn, &group, &event, &handler))
        .await
}

/// Runs the handler and records the event in the inbox, unless it is there already.
fn handle_in(
    conn: &mut DbConnection,
    group: &str,
    event: &Event,
    handler: &Handler,
) -> AppResult<bool> {
    let seen: i64 = inbox::table
        .filter(inbox::consumer.eq(group).and(inbox::event_id.eq(&event.id)))
        .count()
        .get_result(conn)?;
    if seen > 0 {
        return Ok(false);
    }
    handler(conn, event)?;
    diesel::insert_into(inbox::table)
        .values((
            inbox::consumer.eq(group),
            inbox::event_id.eq(&event.id),
            inbox::processed_at.eq(now()),
        ))
        .execute(conn)
        .map_err(AppError::from)?;
    Ok(true)
}
