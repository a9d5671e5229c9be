//! The Stripe events each connection's webhook took: one row per (connection, event id), so
//! that an event Stripe delivers again (it retries for three days) is applied once.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use crate::schema::stripe_events;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = stripe_events)]
pub struct StripeEventRow {
    pub connection_id: String,
    pub event_id: String,
    pub tenant_id: String,
    pub event_type: String,
    pub outcome: String,
    pub received_at: NaiveDateTime,
}

/// Records the event; false when the connection took it before (the caller then does
/// nothing). A concurrent delivery of the same event waits for this transaction and then
/// finds it taken.
pub fn record(conn: &mut DbConnection, row: &StripeEventRow) -> AppResult<bool> {
    let n = agora_shared::on_each_backend!(conn, c => diesel::insert_into(stripe_events::table)
        .values(row)
        .on_conflict((stripe_events::connection_id, stripe_events::event_id))
        .do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

/// Forgets the connection's events received before `before`.
pub fn prune(conn: &mut DbConnection, connection_id: &str, before: NaiveDateTime) -> AppResult<()> {
    diesel::delete(
        stripe_events::table
            .filter(stripe_events::connection_id.eq(connection_id))
            .filter(stripe_events::received_at.lt(before)),
    )
    .execute(conn)?;
    Ok(())
}

/// What applying the event did.
pub fn set_outcome(
    conn: &mut DbConnection,
    connection_id: &str,
    event_id: &str,
    outcome: &str,
) -> AppResult<()> {
    diesel::update(
        stripe_events::table
            .filter(stripe_events::connection_id.eq(connection_id))
            .filter(stripe_events::event_id.eq(event_id)),
    )
    .set(stripe_events::outcome.eq(outcome))
    .execute(conn)?;
    Ok(())
}

/// The connection's last `limit` events, newest first.
pub fn list(
    conn: &mut DbConnection,
    connection_id: &str,
    limit: i64,
) -> AppResult<Vec<StripeEventRow>> {
    Ok(stripe_events::table
        .filter(stripe_events::connection_id.eq(connection_id))
        .order((
            stripe_events::received_at.desc(),
            stripe_events::event_id.desc(),
        ))
        .limit(limit)
        .select(StripeEventRow::as_select())
        .load(conn)?)
}
