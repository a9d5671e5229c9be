//! The transactional outbox: `Outbox::enqueue` writes an event in the caller's transaction, and
//! `run_relay` publishes waiting events in insertion order, marking each sent only after the bus
//! accepted it. While the bus is down events wait in the store and the relay retries. Of several
//! replicas of a service, one relay publishes at a time: it holds a lease row in the store,
//! renewed on every pass that finds events waiting, so events are not published twice and keep
//! their order.

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
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

/// The outbox: `enqueue` inside a write transaction; the relay is woken when it commits.
pub struct Outbox;

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
    /// Writes `event` for `topic` in the current transaction. When the transaction (a
    /// `Db::write`) commits, this process's relay for the store is woken.
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
        crate::db::note_enqueued();
        Ok(())
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
/// An idle relay only reads: it looks for waiting events after each commit that enqueued some
/// (in this process) and every `POLL` (other replicas' commits), and takes the lease only when
/// there is something to publish.
pub async fn run_relay(db: Db, bus: SharedBus, shutdown: CancellationToken) {
    let holder = uuid::Uuid::now_v7().to_string();
    let mut backoff = Duration::from_millis(100);
    let mut last_cleanup = Utc::now() - KEEP_SENT;
    let mut leading = false;
    loop {
        // After a failure the relay waits out its backoff: new commits do not cut it short,
        // so a down broker is not retried once per commit.
        let (wait, woken_by_commits) = match pass(&db, &bus, &holder, &mut leading).await {
            Ok(Pass::Full) => {
                backoff = Duration::from_millis(100);
                continue;
            }
            Ok(Pass::Idle | Pass::Published) => {
                backoff = Duration::from_millis(100);
                (POLL, true)
            }
            Ok(Pass::NotLeader) => (POLL, true),
            Err(err) => {
                tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "outbox relay could not publish");
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                (wait, false)
            }
        };
        if Utc::now() - last_cleanup > chrono::Duration::minutes(10) {
            last_cleanup = Utc::now();
            if let Err(err) = delete_old_sent(&db).await {
                tracing::warn!(error = %err, "outbox cleanup failed");
            }
        }
        tokio::select! {
            _ = db.events_committed(), if woken_by_commits => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => {
                if let Err(err) = pass(&db, &bus, &holder, &mut leading).await {
                    tracing::warn!(error = %err, "outbox relay's last pass failed; events wait in the store");
                }
                if leading {
                    let _ = db.write(move |conn| release(conn, &holder)).await;
                }
                return;
            }
        }
    }
}

/// What one relay pass did.
enum Pass {
    /// Nothing waits.
    Idle,
    /// Another replica's relay holds the lease.
    NotLeader,
    /// Published what waited.
    Published,
    /// Published a full batch; more may wait.
    Full,
}

async fn pass(db: &Db, bus: &SharedBus, holder: &str, leading: &mut bool) -> anyhow::Result<Pass> {
    if !has_pending(db).await? {
        return Ok(Pass::Idle);
    }
    let me = holder.to_owned();
    *leading = db.write(move |conn| lead(conn, &me)).await?;
    if !*leading {
        return Ok(Pass::NotLeader);
    }
    let published = relay_once(db, bus).await?;
    Ok(if published as i64 == BATCH {
        Pass::Full
    } else {
        Pass::Published
    })
}

/// Whether any event waits (a read: idle relays take no write lock).
async fn has_pending(db: &Db) -> AppResult<bool> {
    db.read(|conn| {
        Ok(outbox::table
            .filter(outbox::sent_at.is_null())
            .select(outbox::id)
            .first::<i64>(conn)
            .optional()?
            .is_some())
    })
    .await
}

/// Deletes sent rows past `KEEP_SENT`; writes only when there are some.
async fn delete_old_sent(db: &Db) -> AppResult<()> {
    let cutoff = now() - KEEP_SENT;
    let old = db
        .read(move |conn| {
            Ok(outbox::table
                .filter(outbox::sent_at.lt(cutoff))
                .select(outbox::id)
                .first::<i64>(conn)
                .optional()?
                .is_some())
        })
        .await?;
    if old {
        db.write(move |conn| {
            diesel::delete(outbox::table.filter(outbox::sent_at.lt(cutoff))).execute(conn)?;
            Ok(())
        })
        .await?;
    }
    Ok(())
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
    if rows.is_empty() {
        return Ok(0);
    }
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
