//! Running a consumer: each event is handled in a store transaction together with its inbox
//! row, so an event delivered twice is handled once. Events already waiting are taken together
//! (up to `BATCH`), handled in order in one transaction and committed to the bus once: by the
//! consumer's batch handler when it has one (set-based, all or nothing), otherwise (or when
//! the batch handler fails) each in a savepoint up to the first that fails. An event whose
//! handler fails is retried on its own with backoff, and then dead-lettered to `<topic>.dlq`,
//! before the events after it are handled.

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

/// Handles a run of events inside the consumer's transaction, in order, all or nothing: the
/// same outcome as `Handler` applied to each in turn, in fewer statements. The events are
/// distinct and none was handled before.
pub type BatchHandler = Arc<dyn Fn(&mut DbConnection, &[Event]) -> AppResult<()> + Send + Sync>;

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
    consume(bus, db, topic, group, handler, None, shutdown).await
}

/// Consumes `topic` as group `group` until `shutdown`, the events already waiting applied
/// together by `batch` (and one at a time by `handler` when a batch fails, to find the event
/// that does).
pub async fn run_batch_consumer(
    bus: SharedBus,
    db: Db,
    topic: String,
    group: String,
    handler: Handler,
    batch: BatchHandler,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    consume(bus, db, topic, group, handler, Some(batch), shutdown).await
}

async fn consume(
    bus: SharedBus,
    db: Db,
    topic: String,
    group: String,
    handler: Handler,
    batch_handler: Option<BatchHandler>,
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
            let done = handle_prefix(&db, &group, events, handler.clone(), batch_handler.clone())
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
        let last: Vec<&Delivery> = last.into_values().collect();
        sub.commit_all(&last).await?;
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

/// Handles events in one transaction: all at once by `batch` when there is one and it
/// succeeds, otherwise each in a savepoint up to the first that fails (whose work is rolled
/// back); returns how many were handled (or found in the inbox).
async fn handle_prefix(
    db: &Db,
    group: &str,
    events: Vec<Event>,
    handler: Handler,
    batch: Option<BatchHandler>,
) -> AppResult<usize> {
    let group = group.to_owned();
    db.write(move |conn| {
        if let Some(batch) = &batch {
            match conn.transaction(|conn| handle_all_in(conn, &group, &events, batch)) {
                Ok(()) => return Ok(events.len()),
                Err(err) => {
                    tracing::debug!(error = %err, "batch handler failed; handling one at a time");
                }
            }
        }
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

/// Runs the batch handler on the events not in the inbox yet (each once) and records them
/// there, in a few statements whatever the number of events.
fn handle_all_in(
    conn: &mut DbConnection,
    group: &str,
    events: &[Event],
    batch: &BatchHandler,
) -> AppResult<()> {
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let seen: std::collections::HashSet<String> = inbox::table
        .filter(inbox::consumer.eq(group).and(inbox::event_id.eq_any(&ids)))
        .select(inbox::event_id)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    let mut taken = std::collections::HashSet::new();
    let fresh: Vec<Event> = events
        .iter()
        .filter(|e| !seen.contains(&e.id) && taken.insert(e.id.as_str()))
        .cloned()
        .collect();
    if fresh.is_empty() {
        return Ok(());
    }
    batch(conn, &fresh)?;
    let at = now();
    let rows: Vec<_> = fresh
        .iter()
        .map(|e| {
            (
                inbox::consumer.eq(group),
                inbox::event_id.eq(e.id.as_str()),
                inbox::processed_at.eq(at),
            )
        })
        .collect();
    match conn {
        DbConnection::Postgres(pg) => diesel::insert_into(inbox::table).values(&rows).execute(pg),
        DbConnection::Sqlite(lite) => diesel::insert_into(inbox::table)
            .values(&rows)
            .execute(lite),
    }?;
    Ok(())
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
