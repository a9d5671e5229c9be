//! Running a consumer: each event is handled in one store transaction together with its inbox
//! row, so an event delivered twice is handled once. Failing events are retried with backoff and
//! then dead-lettered to `<topic>.dlq`.

use std::{sync::Arc, time::Duration};

use diesel::prelude::*;
use tokio_util::sync::CancellationToken;

use super::{Event, SharedBus};
use crate::{
    db::{Db, DbConnection, now, outbox_schema::inbox},
    error::{AppError, AppResult},
};

/// Handles one event inside the consumer's transaction.
pub type Handler = Arc<dyn Fn(&mut DbConnection, &Event) -> AppResult<()> + Send + Sync>;

const ATTEMPTS: u32 = 5;

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
        let delivery = tokio::select! {
            d = sub.next() => d?,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match handle_once(&db, &group, &delivery.event, handler.clone()).await {
                Ok(_) => break,
                Err(err) if attempt < ATTEMPTS => {
                    let wait = Duration::from_millis(50 * 2u64.pow(attempt));
                    tracing::warn!(error = %err, attempt, event_id = %delivery.event.id, "event handler failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => return Ok(()),
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, event_id = %delivery.event.id, "event handler failed; dead-lettering");
                    let mut dead = delivery.event.clone();
                    dead.event_type = format!("{}.failed", dead.event_type);
                    dead.source = format!("{}; consumer={group}; reason={err}", dead.source);
                    bus.publish(&format!("{topic}.dlq"), &dead).await?;
                    break;
                }
            }
        }
        sub.commit(&delivery).await?;
    }
}

/// Returns whether the handler ran (false when the inbox says it already did).
async fn handle_once(db: &Db, group: &str, event: &Event, handler: Handler) -> AppResult<bool> {
    let group = group.to_owned();
    let event = event.clone();
    db.write(move |conn| {
        let seen: i64 = inbox::table
            .filter(
                inbox::consumer
                    .eq(&group)
                    .and(inbox::event_id.eq(&event.id)),
            )
            .count()
            .get_result(conn)?;
        if seen > 0 {
            return Ok(false);
        }
        handler(conn, &event)?;
        diesel::insert_into(inbox::table)
            .values((
                inbox::consumer.eq(&group),
                inbox::event_id.eq(&event.id),
                inbox::processed_at.eq(now()),
            ))
            .execute(conn)
            .map_err(AppError::from)?;
        Ok(true)
    })
    .await
}
