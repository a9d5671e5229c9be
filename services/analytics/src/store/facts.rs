//! Ticket facts: read (locked on PostgreSQL while an event is applied), merged and written
//! together with the rollup deltas they cause.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use super::rollups::{self, Deltas};
use crate::{
    domain::{self, Fact},
    schema::ticket_facts,
};

fn stored(conn: &mut DbConnection, tenant_id: &str, ticket_id: &str) -> AppResult<Option<Fact>> {
    let key = (tenant_id, ticket_id);
    Ok(match conn {
        // Row lock: a rebuild and the consumer never both retract the same old state.
        DbConnection::Postgres(pg) => ticket_facts::table
            .find(key)
            .select(Fact::as_select())
            .for_update()
            .first(pg)
            .optional()?,
        DbConnection::Sqlite(lite) => ticket_facts::table
            .find(key)
            .select(Fact::as_select())
            .first(lite)
            .optional()?,
    })
}

/// Merges `incoming` into the stored fact and moves the rollups with it. Returns whether
/// anything changed (a replayed or stale state changes nothing).
pub fn apply(conn: &mut DbConnection, incoming: Fact, now: NaiveDateTime) -> AppResult<bool> {
    let old = stored(conn, &incoming.tenant_id, &incoming.ticket_id)?;
    let Some(new) = domain::merge(old.as_ref(), incoming) else {
        return Ok(false);
    };
    let mut deltas = Deltas::default();
    if let Some(old) = &old {
        deltas.add(old, -1, now);
    }
    deltas.add(&new, 1, now);
    if !deltas.is_empty() {
        rollups::apply(conn, &new.tenant_id, &deltas)?;
    }
    if old.is_some() {
        diesel::update(ticket_facts::table.find((&new.tenant_id, &new.ticket_id)))
            .set(&new)
            .execute(conn)?;
    } else {
        diesel::insert_into(ticket_facts::table)
            .values(&new)
            .execute(conn)?;
    }
    Ok(true)
}

/// Every fact of the tenant (deleted ones included).
pub fn all_of(conn: &mut DbConnection, tenant_id: &str) -> AppResult<Vec<Fact>> {
    Ok(ticket_facts::table
        .filter(ticket_facts::tenant_id.eq(tenant_id))
        .select(Fact::as_select())
        .load(conn)?)
}

/// Number of live facts across tenants.
pub fn count(conn: &mut DbConnection) -> AppResult<i64> {
    Ok(ticket_facts::table
        .filter(ticket_facts::deleted.eq(false))
        .count()
        .get_result(conn)?)
}

/// Open tickets per priority by age: [0-1 d, 1-3 d, 3-7 d, > 7 d] as of `now`.
pub fn aging(
    conn: &mut DbConnection,
    tenant_id: &str,
    now: NaiveDateTime,
) -> AppResult<Vec<(String, [i64; 4])>> {
    use diesel::sql_types::{BigInt, Text};

    use super::sql::{Sql, Value};

    #[derive(QueryableByName)]
    struct Aged {
        #[diesel(sql_type = Text)]
        priority: String,
        #[diesel(sql_type = BigInt)]
        a: i64,
        #[diesel(sql_type = BigInt)]
        b: i64,
        #[diesel(sql_type = BigInt)]
        c: i64,
        #[diesel(sql_type = BigInt)]
        d: i64,
    }
    let day = |n: i64| Value::Time(now - chrono::Duration::days(n));
    let mut sql = Sql::new("SELECT priority, CAST(SUM(CASE WHEN created_at > ");
    sql.bind(day(1))
        .push(" THEN 1 ELSE 0 END) AS BIGINT) AS a, CAST(SUM(CASE WHEN created_at <= ")
        .bind(day(1))
        .push(" AND created_at > ")
        .bind(day(3))
        .push(" THEN 1 ELSE 0 END) AS BIGINT) AS b, CAST(SUM(CASE WHEN created_at <= ")
        .bind(day(3))
        .push(" AND created_at > ")
        .bind(day(7))
        .push(" THEN 1 ELSE 0 END) AS BIGINT) AS c, CAST(SUM(CASE WHEN created_at <= ")
        .bind(day(7))
        .push(" THEN 1 ELSE 0 END) AS BIGINT) AS d FROM ticket_facts WHERE tenant_id = ")
        .text(tenant_id)
        .push(
            " AND deleted = FALSE AND status NOT IN ('COMPLETED', 'CANCELLED') \
             GROUP BY priority ORDER BY priority",
        );
    Ok(sql
        .load::<Aged>(conn)?
        .into_iter()
        .map(|r| (r.priority, [r.a, r.b, r.c, r.d]))
        .collect())
}
