//! Inventory's facts (one row per discrepancy and per claim, as inventory-sync's events last
//! described them) and the per-currency summary read from them.

use chrono::NaiveDateTime;
use diesel::{
    QueryableByName,
    prelude::*,
    sql_types::{BigInt, Double, Text},
};

use agora_shared::{AppError, AppResult, db::DbConnection};

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
    pub version: i64,
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
    pub version: i64,
    pub as_of: NaiveDateTime,
}

/// Keeps `fact` unless the stored one is of a higher version (replays, redeliveries and
/// late events change nothing). A row of another tenant under the same id is never touched:
/// the event is refused.
pub fn apply_discrepancy(conn: &mut DbConnection, fact: &DiscrepancyFact) -> AppResult<()> {
    let stored: Option<(String, i64)> = inventory_discrepancies::table
        .find(&fact.id)
        .select((
            inventory_discrepancies::tenant_id,
            inventory_discrepancies::version,
        ))
        .first(conn)
        .optional()?;
    match stored {
        None => {
            diesel::insert_into(inventory_discrepancies::table)
                .values(fact)
                .execute(conn)?;
        }
        Some((tenant, _)) if tenant != fact.tenant_id => return Err(other_tenant()),
        Some((_, version)) if fact.version >= version => {
            diesel::update(
                inventory_discrepancies::table
                    .filter(inventory_discrepancies::id.eq(&fact.id))
                    .filter(inventory_discrepancies::tenant_id.eq(&fact.tenant_id)),
            )
            .set(fact)
            .execute(conn)?;
        }
        Some(_) => {}
    }
    Ok(())
}

fn other_tenant() -> AppError {
    AppError::invalid("tenant_id", "the id is another tenant's")
}

/// Keeps `fact` unless the stored one is of a higher version. The time a claim was settled
/// (completed or rejected) is the earliest any event said.
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
        Some(old) if old.tenant_id != fact.tenant_id => return Err(other_tenant()),
        Some(old) if fact.version >= old.version => {
            let mut fact = fact.clone();
            fact.created_at = old.created_at.min(fact.created_at);
            if let (Some(before), Some(now)) = (old.settled_at, fact.settled_at) {
                fact.settled_at = Some(before.min(now));
            }
            diesel::update(
                inventory_claims::table
                    .filter(inventory_claims::id.eq(&fact.id))
                    .filter(inventory_claims::tenant_id.eq(&fact.tenant_id)),
            )
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
    /// Summed as a float, so that no amount overflows the sum (exact to 2^53 minor units).
    #[diesel(sql_type = Double)]
    pub total: f64,
}

impl Group {
    /// The sum in minor units, saturating at i64's bounds.
    pub fn total(&self) -> i64 {
        self.total.round() as i64
    }
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
         CAST(COALESCE(SUM(CAST({money} AS DOUBLE PRECISION)), 0) AS DOUBLE PRECISION) AS total \
         FROM {table} WHERE tenant_id = "
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
