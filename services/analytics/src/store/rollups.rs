//! Rollups: additive counters per tenant, grain (day, or hour for the last 48 hours), bucket
//! and dimensions. Changed by deltas (a fact's old contributions out, its new ones in).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use super::sql::{Sql, Value};
use crate::{
    domain::{self, Counters, Fact},
    schema::rollups,
};

/// Where a contribution is counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cell {
    pub grain: &'static str,
    pub bucket: String,
    pub zone: String,
    pub team_id: String,
    pub category: String,
    pub priority: String,
}

/// Net changes to rollup cells.
#[derive(Debug, Default)]
pub struct Deltas(HashMap<Cell, Counters>);

impl Deltas {
    /// Adds (`sign` = 1) or retracts (-1) everything `fact` contributes. Hourly cells older
    /// than the window are left alone (they are pruned).
    pub fn add(&mut self, fact: &Fact, sign: i64, now: NaiveDateTime) {
        let window_start = domain::hour_start(now - domain::HOURLY_WINDOW);
        for (at, counters) in fact.contributions() {
            let mut cell = Cell {
                grain: "day",
                bucket: domain::day_bucket(at),
                zone: fact.zone.clone(),
                team_id: fact.team_id.clone(),
                category: fact.category.clone(),
                priority: fact.priority.clone(),
            };
            self.0.entry(cell.clone()).or_default().add(&counters, sign);
            if at >= window_start {
                cell.grain = "hour";
                cell.bucket = domain::hour_bucket(at);
                self.0.entry(cell).or_default().add(&counters, sign);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(|c| *c == Counters::default())
    }
}

const COLUMNS: &str = "tenant_id, grain, bucket, zone, team_id, category, priority, created, \
     completed, completed_in_sla, completion_secs, breached, assigned, assign_secs";

/// Adds the non-zero deltas to the tenant's cells (creating them as needed).
pub fn apply(conn: &mut DbConnection, tenant_id: &str, deltas: &Deltas) -> AppResult<()> {
    upsert(conn, deltas.0.iter().map(|(cell, c)| (tenant_id, cell, c)))
}

/// Adds the non-zero deltas of every tenant to their cells, in one statement per 1,000 cells.
pub fn apply_all(conn: &mut DbConnection, deltas: &HashMap<String, Deltas>) -> AppResult<()> {
    upsert(
        conn,
        deltas.iter().flat_map(|(tenant_id, deltas)| {
            deltas
                .0
                .iter()
                .map(move |(cell, c)| (tenant_id.as_str(), cell, c))
        }),
    )
}

/// Cells per statement: 14 values each, well inside either backend's limit on bound values.
const CELLS_PER_STATEMENT: usize = 1000;

fn upsert<'a>(
    conn: &mut DbConnection,
    cells: impl Iterator<Item = (&'a str, &'a Cell, &'a Counters)>,
) -> AppResult<()> {
    let mut cells: Vec<_> = cells
        .filter(|(_, _, c)| **c != Counters::default())
        .collect();
    // A fixed order keeps concurrent writers from locking cells in opposite orders.
    cells.sort_by(|a, b| {
        (
            a.0,
            a.1.grain,
            &a.1.bucket,
            &a.1.zone,
            &a.1.team_id,
            &a.1.category,
            &a.1.priority,
        )
            .cmp(&(
                b.0,
                b.1.grain,
                &b.1.bucket,
                &b.1.zone,
                &b.1.team_id,
                &b.1.category,
                &b.1.priority,
            ))
    });
    for chunk in cells.chunks(CELLS_PER_STATEMENT) {
        let mut sql = Sql::new(&format!("INSERT INTO rollups ({COLUMNS}) VALUES "));
        for (i, (tenant_id, cell, c)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(").text(tenant_id);
            for v in [
                cell.grain,
                &cell.bucket,
                &cell.zone,
                &cell.team_id,
                &cell.category,
                &cell.priority,
            ] {
                sql.push(", ").text(v);
            }
            for v in [
                c.created,
                c.completed,
                c.completed_in_sla,
                c.completion_secs,
                c.breached,
                c.assigned,
                c.assign_secs,
            ] {
                sql.push(", ").bind(Value::Int(v));
            }
            sql.push(")");
        }
        sql.push(
            " ON CONFLICT (tenant_id, grain, bucket, zone, team_id, category, priority) DO UPDATE SET \
             created = rollups.created + excluded.created, \
             completed = rollups.completed + excluded.completed, \
             completed_in_sla = rollups.completed_in_sla + excluded.completed_in_sla, \
             completion_secs = rollups.completion_secs + excluded.completion_secs, \
             breached = rollups.breached + excluded.breached, \
             assigned = rollups.assigned + excluded.assigned, \
             assign_secs = rollups.assign_secs + excluded.assign_secs",
        );
        sql.execute(conn)?;
    }
    Ok(())
}

/// Recomputes every rollup of the tenant from its facts (a rebuild). On PostgreSQL the table
/// is locked against concurrent deltas first, so none is lost between the read and the write.
pub fn recompute(conn: &mut DbConnection, tenant_id: &str, now: NaiveDateTime) -> AppResult<()> {
    if let DbConnection::Postgres(_) = conn {
        Sql::new("LOCK TABLE rollups IN SHARE ROW EXCLUSIVE MODE").execute(conn)?;
    }
    diesel::delete(rollups::table.filter(rollups::tenant_id.eq(tenant_id))).execute(conn)?;
    let facts = super::facts::all_of(conn, tenant_id)?;
    let mut deltas = Deltas::default();
    for fact in &facts {
        deltas.add(fact, 1, now);
    }
    apply(conn, tenant_id, &deltas)
}

/// Drops hourly cells older than the window.
pub fn prune_hours(conn: &mut DbConnection, now: NaiveDateTime) -> AppResult<usize> {
    let oldest = domain::hour_bucket(now - domain::HOURLY_WINDOW);
    Ok(diesel::delete(
        rollups::table
            .filter(rollups::grain.eq("hour"))
            .filter(rollups::bucket.lt(oldest)),
    )
    .execute(conn)?)
}

/// Sums of the tenant's hourly cells from bucket `since` on.
pub fn sum_hours(conn: &mut DbConnection, tenant_id: &str, since: &str) -> AppResult<Counters> {
    #[derive(diesel::QueryableByName)]
    struct Sums {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        created: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        completed: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        breached: i64,
    }
    // SUM of BIGINT is NUMERIC on PostgreSQL: cast back in SQL.
    let mut sql = Sql::new(
        "SELECT CAST(COALESCE(SUM(created), 0) AS BIGINT) AS created, \
         CAST(COALESCE(SUM(completed), 0) AS BIGINT) AS completed, \
         CAST(COALESCE(SUM(breached), 0) AS BIGINT) AS breached \
         FROM rollups WHERE grain = 'hour' AND tenant_id = ",
    );
    sql.text(tenant_id).push(" AND bucket >= ").text(since);
    let sums = sql.load::<Sums>(conn)?;
    Ok(sums.first().map_or_else(Counters::default, |r| Counters {
        created: r.created,
        completed: r.completed,
        breached: r.breached,
        ..Counters::default()
    }))
}
