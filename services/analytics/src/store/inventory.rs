//! Inventory's facts (one row per discrepancy and per claim, as inventory-sync's events last
//! described them) and the per-currency summary read from them.

use chrono::NaiveDateTime;
use diesel::{
    QueryableByName,
    prelude::*,
    sql_types::{BigInt, Text},
};

use agora_shared::{AppResult, db::DbConnection};

use super::sql::{Sql, Value};
use crate::schema::{inventory_claims, inventory_discrepancies};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = inventory_discrepancies)]
pub struct DiscrepancyFact {
    pub id: String,
    pub tenant_id: String,
    pub sku: String,
    pub source: String,
    pub severity: String,
    pub status: String,
    pub value_at_stake: i64,
    pub currency: String,
    pub detected_at: NaiveDateTime,
    pub resolved_at: Option<NaiveDateTime>,
    pub as_of: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = inventory_claims)]
pub struct ClaimFact {
    pub id: String,
    pub tenant_id: String,
    pub claim_type: String,
    pub provider: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub created_at: NaiveDateTime,
    pub settled_at: Option<NaiveDateTime>,
    pub as_of: NaiveDateTime,
}

/// Keeps `fact` unless a later event described the discrepancy already (replays and late
/// deliveries change nothing).
pub fn apply_discrepancy(conn: &mut DbConnection, fact: &DiscrepancyFact) -> AppResult<()> {
    let stored: Option<NaiveDateTime> = inventory_discrepancies::table
        .find(&fact.id)
        .select(inventory_discrepancies::as_of)
        .first(conn)
        .optional()?;
    match stored {
        None => {
            diesel::insert_into(inventory_discrepancies::table)
                .values(fact)
                .execute(conn)?;
        }
        Some(as_of) if fact.as_of >= as_of => {
            diesel::update(inventory_discrepancies::table.find(&fact.id))
                .set(fact)
                .execute(conn)?;
        }
        Some(_) => {}
    }
    Ok(())
}

/// Keeps `fact` unless a later event described the claim already. The time it was settled
/// (completed or rejected) is the first event's that said so.
pub fn apply_claim(conn: &mut DbConnection, fact: &ClaimFact) -> AppResult<()> {
    let stored: Option<ClaimFact> = inventory_claims::table
        .find(&fact.id)
        .select(ClaimFact::as_select())
        .first(conn)
        .optional()?;
    match stored {
        None => {
            diesel::insert_into(inventory_claims::table)
                .values(fact)
                .execute(conn)?;
        }
        Some(old) if fact.as_of >= old.as_of => {
            let mut fact = fact.clone();
            fact.created_at = old.created_at.min(fact.created_at);
            if let (Some(before), Some(now)) = (old.settled_at, fact.settled_at) {
                fact.settled_at = Some(before.min(now));
            }
            diesel::update(inventory_claims::table.find(&fact.id))
                .set(&fact)
                .execute(conn)?;
        }
        Some(_) => {}
    }
    Ok(())
}

/// One group's count and sum.
#[derive(Debug, Clone, QueryableByName)]
pub struct Group {
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
    #[diesel(sql_type = BigInt)]
    pub total: i64,
}

/// Counts and sums of `table`'s rows of the tenant whose `time` falls in `[from, to)` (is set,
/// when `None`) and whose `status` is one of `statuses` (any when empty), grouped by `key`
/// (`currency` for no more than the currency) and currency. Table and column names come from
/// the callers' constants, never from a request.
#[allow(clippy::too_many_arguments)]
pub fn groups(
    conn: &mut DbConnection,
    table: &str,
    key: &str,
    money: &str,
    tenant_id: &str,
    time: &str,
    range: Option<(NaiveDateTime, NaiveDateTime)>,
    statuses: &[&str],
) -> AppResult<Vec<Group>> {
    let mut sql = Sql::new(&format!(
        "SELECT {key} AS key, currency, CAST(COUNT(*) AS BIGINT) AS n, \
         CAST(COALESCE(SUM({money}), 0) AS BIGINT) AS total FROM {table} WHERE tenant_id = "
    ));
    sql.text(tenant_id);
    if let Some((from, to)) = range {
        sql.push(&format!(" AND {time} >= "))
            .bind(Value::Time(from))
            .push(&format!(" AND {time} < "))
            .bind(Value::Time(to));
    } else {
        sql.push(&format!(" AND {time} IS NOT NULL"));
    }
    if !statuses.is_empty() {
        sql.push(" AND status IN ");
        sql.list(&statuses.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    }
    sql.push(&format!(
        " GROUP BY {key}, currency ORDER BY {key}, currency"
    ));
    sql.load(conn)
}
