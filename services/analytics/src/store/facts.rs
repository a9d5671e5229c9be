//! Ticket facts: read (locked on PostgreSQL while an event is applied), merged and written
//! together with the rollup deltas they cause.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use super::{
    rollups::{self, Deltas},
    sql::{Sql, Value},
};
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

/// `apply` for a run of incoming facts, in order, in one read, one write of the facts and one
/// of the rollups (per 1,000 cells): each ticket's stored fact is merged with its incoming
/// ones in turn, and the rollups move from the stored fact to the last merged one (deltas add
/// up, so the steps between cancel out). Returns how many facts changed.
pub fn apply_many(
    conn: &mut DbConnection,
    incoming: Vec<Fact>,
    now: NaiveDateTime,
) -> AppResult<usize> {
    if incoming.is_empty() {
        return Ok(0);
    }
    let mut tenants: Vec<&str> = incoming.iter().map(|f| f.tenant_id.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let mut ids: Vec<&str> = incoming.iter().map(|f| f.ticket_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    // Both key columns, so the primary key's index finds the rows (a ticket id alone would
    // scan the table, once per batch). Pairs of one tenant and another's ticket id come along
    // when a batch spans tenants; the key check below leaves them out.
    macro_rules! stored {
        () => {
            ticket_facts::table
                .filter(ticket_facts::tenant_id.eq_any(&tenants))
                .filter(ticket_facts::ticket_id.eq_any(&ids))
                .order((ticket_facts::tenant_id, ticket_facts::ticket_id))
                .select(Fact::as_select())
        };
    }
    // Row locks on PostgreSQL, in key order, as `apply` takes them.
    let found: Vec<Fact> = match conn {
        DbConnection::Postgres(pg) => stored!().for_update().load(pg)?,
        DbConnection::Sqlite(lite) => stored!().load(lite)?,
    };
    type Key = (String, String);
    // Per ticket: the stored fact and the merged one so far.
    let mut states: HashMap<Key, (Option<Fact>, Option<Fact>)> = found
        .into_iter()
        .map(|f| {
            (
                (f.tenant_id.clone(), f.ticket_id.clone()),
                (Some(f.clone()), Some(f)),
            )
        })
        .collect();
    let mut order: Vec<Key> = Vec::new();
    for fact in incoming {
        let key = (fact.tenant_id.clone(), fact.ticket_id.clone());
        let state = states.entry(key.clone()).or_insert((None, None));
        if let Some(merged) = domain::merge(state.1.as_ref(), fact) {
            state.1 = Some(merged);
        }
        order.push(key);
    }
    order.sort();
    order.dedup();
    let mut deltas: HashMap<String, Deltas> = HashMap::new();
    let mut changed = Vec::new();
    for key in &order {
        let (stored, merged) = &states[key];
        let Some(new) = merged.as_ref().filter(|new| Some(*new) != stored.as_ref()) else {
            continue;
        };
        let tenant = deltas.entry(new.tenant_id.clone()).or_default();
        if let Some(old) = stored {
            tenant.add(old, -1, now);
        }
        tenant.add(new, 1, now);
        changed.push(new);
    }
    rollups::apply_all(conn, &deltas)?;
    for chunk in changed.chunks(FACTS_PER_STATEMENT) {
        upsert(conn, chunk)?;
    }
    Ok(changed.len())
}

/// Facts per statement: 16 values each.
const FACTS_PER_STATEMENT: usize = 1000;

const FACT_COLUMNS: &str = "tenant_id, ticket_id, number, category, priority, status, zone, \
     team_id, created_at, created_day, due_at, completed_at, first_assigned_at, breached, \
     deleted, version";

/// Writes facts whole, inserting or replacing each.
fn upsert(conn: &mut DbConnection, facts: &[&Fact]) -> AppResult<()> {
    let mut sql = Sql::new(&format!(
        "INSERT INTO ticket_facts ({FACT_COLUMNS}) VALUES "
    ));
    for (i, f) in facts.iter().enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" });
        for text in [
            &f.tenant_id,
            &f.ticket_id,
            &f.number,
            &f.category,
            &f.priority,
            &f.status,
            &f.zone,
            &f.team_id,
        ] {
            sql.text(text).push(", ");
        }
        sql.bind(Value::Time(f.created_at))
            .push(", ")
            .text(&f.created_day)
            .push(", ")
            .bind(Value::Time(f.due_at))
            .push(", ")
            .bind(Value::MaybeTime(f.completed_at))
            .push(", ")
            .bind(Value::MaybeTime(f.first_assigned_at))
            .push(", ")
            .bind(Value::Bool(f.breached))
            .push(", ")
            .bind(Value::Bool(f.deleted))
            .push(", ")
            .bind(Value::Int(f.version))
            .push(")");
    }
    sql.push(" ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET ");
    for (i, column) in FACT_COLUMNS.split(", ").skip(2).enumerate() {
        let column = column.trim();
        if i > 0 {
            sql.push(", ");
        }
        sql.push(&format!("{column} = excluded.{column}"));
    }
    sql.execute(conn)?;
    Ok(())
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
