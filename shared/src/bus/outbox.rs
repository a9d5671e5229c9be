//! The transactional outbox: `Outbox::enqueue` writes an event in the caller's transaction, and
//! `run_relay` publishes waiting events in insertion order, marking each sent only after the bus
//! accepted it. While the bus is down events wait in the store and the relay retries. Of several
//! replicas of a service, one relay publishes at a time: it holds a lease row in the store,
//! renewed on every pass, so events are not published twice and keep their order.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use diesel::prelude::*;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Event, SharedBus};
use crate::{
    db::{
        Db, DbConnection, now,
        outbox_schema::{outbox, outbox_lease},
    },
    error::AppResult,
};

const BATCH: i64 = 200;
const POLL: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Sent rows are kept this long for inspection, then deleted.
const KEEP_SENT: chrono::Duration = chrono::Duration::hours(24);
/// A relay that stops renewing its lease (crashed, partitioned) is replaced after this long.
const LEASE: chrono::Duration = chrono::Duration::seconds(15);

/// Handle to a service's outbox: enqueue inside transactions, wake the relay after commits.
#[derive(Clone, Default)]
pub struct Outbox {
    wake: Arc<Notify>,
}

#[derive(Insertable)]
#[diesel(table_name = outbox)]
struct NewRow<'a> {
    event_id: &'a str,
    topic: &'a str,
    event_key: &'a str,
    event_type: &'a str,
    source: &'a str,
    tenant_id: Option<&'a str>,
    traceparent: Option<&'a str>,
    payload: &'a [u8],
    created_at: chrono::NaiveDateTime,
    attempts: i32,
}

#[derive(Queryable)]
struct Row {
    id: i64,
    event_id: String,
    topic: String,
    event_key: String,
    event_type: String,
    source: String,
    tenant_id: Option<String>,
    traceparent: Option<String>,
    payload: Vec<u8>,
    created_at: chrono::NaiveDateTime,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `event` for `topic` in the current transaction.
    pub fn enqueue(conn: &mut DbConnection, topic: &str, event: &Event) -> AppResult<()> {
        diesel::insert_into(outbox::table)
            .values(NewRow {
                event_id: &event.id,
                topic,
                event_key: &event.key,
                event_type: &event.event_type,
                source: &event.source,
                tenant_id: event.tenant_id.as_deref(),
                traceparent: event.traceparent.as_deref(),
                payload: &event.data,
                created_at: event.time.naive_utc(),
                attempts: 0,
            })
            .execute(conn)?;
        Ok(())
    }

    /// Tells the relay that committed events are waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Events not yet published (for readiness reporting and tests).
    pub async fn pending(db: &Db) -> AppResult<i64> {
        db.read(|conn| {
            Ok(outbox::table
                .filter(outbox::sent_at.is_null())
                .count()
                .get_result(conn)?)
        })
        .await
    }
}

/// Takes or renews the relay lease for `holder`; false while another relay holds it.
fn lead(conn: &mut DbConnection, holder: &str) -> AppResult<bool> {
    use diesel::sql_types::{Text, Timestamp};
    const ENSURE: &str = "INSERT INTO outbox_lease (name, holder, expires_at) \
         VALUES ('relay', {h}, {t}) ON CONFLICT (name) DO NOTHING";
    let at = now();
    match conn {
        DbConnection::Postgres(pg) => {
            diesel::sql_query(ENSURE.replace("{h}", "$1").replace("{t}", "$2"))
                .bind::<Text, _>(holder)
                .bind::<Timestamp, _>(at)
                .execute(pg)?
        }
        DbConnection::Sqlite(lite) => {
            diesel::sql_query(ENSURE.replace("{h}", "?").replace("{t}", "?"))
                .bind::<Text, _>(holder)
                .bind::<Timestamp, _>(at)
                .execute(lite)?
        }
    };
    let taken = diesel::update(
        outbox_lease::table
            .filter(outbox_lease::name.eq("relay"))
            .filter(
                outbox_lease::holder
                    .eq(holder)
                    .or(outbox_lease::expires_at.lt(at)),
            ),
    )
    .set((
        outbox_lease::holder.eq(holder),
        outbox_lease::expires_at.eq(at + LEASE),
    ))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Gives the lease up at shutdown, so another replica takes over without waiting it out.
fn release(conn: &mut DbConnection, holder: &str) -> AppResult<()> {
    diesel::update(outbox_lease::table.filter(outbox_lease::holder.eq(holder)))
        .set(outbox_lease::expires_at.eq(now() - chrono::Duration::seconds(1)))
        .execute(conn)?;
    Ok(())
}

/// Publishes the outbox until `shutdown`, then makes one last pass so nothing committed before
/// shutdown is left behind while the bus is up. Only the relay holding the lease publishes.
pub async fn run_relay(db: Db, bus: SharedBus, outbox: Outbox, shutdown: CancellationToken) {
    let holder = uuid::Uuid::now_v7().to_string();
    let mut backoff = Duration::from_millis(100);
    let mut last_cleanup = Utc::now() - KEEP_SENT;
    loop {
        let me = holder.clone();
        match db.write(move |conn| lead(conn, &me)).await {
            Ok(true) => {}
            Ok(false) => {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "outbox relay lease unavailable");
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
        }
        match relay_once(&db, &bus).await {
            Ok(published) => {
                backoff = Duration::from_millis(100);
                if published as i64 == BATCH {
                    continue;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "outbox relay could not publish");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        if Utc::now() - last_cleanup > chrono::Duration::minutes(10) {
            last_cleanup = Utc::now();
            let cutoff = now() - KEEP_SENT;
            let _ = db
                .write(move |conn| {
                    diesel::delete(outbox::table.filter(outbox::sent_at.lt(cutoff)))
                        .execute(conn)?;
                    Ok(())
                })
                .await;
        }
        tokio::select! {
            _ = outbox.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.cancelled() => {
                let _ = relay_once(&db, &bus).await;
                let _ = db.write(move |conn| release(conn, &holder)).await;
                return;
            }
        }
    }
}

/// Publishes one batch in id order; stops at the first failure so per-key order holds.
async fn relay_once(db: &Db, bus: &SharedBus) -> anyhow::Result<usize> {
    let rows: Vec<Row> = db
        .read(|conn| {
            Ok(outbox::table
                .filter(outbox::sent_at.is_null())
                .order(outbox::id.asc())
                .limit(BATCH)
                .select((
                    outbox::id,
                    outbox::event_id,
                    outbox::topic,
                    outbox::event_key,
                    outbox::event_type,
                    outbox::source,
                    outbox::tenant_id,
                    outbox::traceparent,
                    outbox::payload,
                    outbox::created_at,
                ))
                .load(conn)?)
        })
        .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let batch: Vec<(String, Event)> = rows
        .into_iter()
        .map(|row| {
            let event = Event {
                id: row.event_id,
                source: row.source,
                event_type: row.event_type,
                time: row.created_at.and_utc(),
                tenant_id: row.tenant_id,
                traceparent: row.traceparent,
                key: row.event_key,
                data: row.payload,
            };
            (row.topic, event)
        })
        .collect();
    let outcomes = bus.publish_all(&batch).await;
    // Marked sent: the events before the first failure. Those after it go again on the next
    // pass (a consumer's inbox absorbs any that had arrived), so order per key holds.
    let failure = outcomes.iter().position(Result::is_err);
    let published = failure.unwrap_or(ids.len());
    let sent: Vec<i64> = ids[..published].to_vec();
    let failed = failure.map(|i| {
        let reason = outcomes[i]
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        (ids[i], reason)
    });
    db.write(move |conn| {
        for chunk in sent.chunks(500) {
            diesel::update(outbox::table.filter(outbox::id.eq_any(chunk)))
                .set(outbox::sent_at.eq(now()))
                .execute(conn)?;
        }
        if let Some((id, reason)) = &failed {
            diesel::update(outbox::table.find(id))
                .set((
                    outbox::attempts.eq(outbox::attempts + 1),
                    outbox::last_error.eq(reason),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
    .await?;
    if let Some(i) = failure {
        let err = outcomes.into_iter().nth(i).and_then(Result::err);
        return Err(err.map_or_else(|| anyhow::anyhow!("publish failed"), Into::into));
    }
    Ok(published)
}
