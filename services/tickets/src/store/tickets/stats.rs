//! A tenant's ticket statistics.

use chrono::NaiveDateTime;
use diesel::{
    dsl::count_star,
    prelude::*,
    sql_types::{BigInt, Double, Nullable, Text},
};

use agora_shared::{AppResult, db::DbConnection};

use crate::{domain::SlaStatus, schema::tickets};

use super::list::sla_predicate;

/// Counts of the tenant's live tickets per value of one column (`UNSET` for NULL).
macro_rules! counts_by {
    ($conn:expr, $tenant:expr, $column:expr) => {{
        let rows: Vec<(Option<String>, i64)> = tickets::table
            .filter(tickets::tenant_id.eq($tenant))
            .filter(tickets::deleted_at.is_null())
            .group_by($column)
            .select(($column.nullable(), count_star()))
            .load($conn)?;
        rows.into_iter()
            .map(|(k, n)| (k.unwrap_or_else(|| "UNSET".to_owned()), n))
            .collect::<Vec<(String, i64)>>()
    }};
}

/// The tenant's ticket statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub total: i64,
    pub by_status: Vec<(String, i64)>,
    pub by_priority: Vec<(String, i64)>,
    pub by_category: Vec<(String, i64)>,
    pub by_zone: Vec<(String, i64)>,
    pub by_sla_status: Vec<(String, i64)>,
    pub completed: i64,
    pub mean_time_to_complete_secs: Option<f64>,
}

pub fn stats(conn: &mut DbConnection, tenant_id: &str, now: NaiveDateTime) -> AppResult<Stats> {
    let live = || {
        tickets::table
            .filter(tickets::tenant_id.eq(tenant_id))
            .filter(tickets::deleted_at.is_null())
    };
    let total: i64 = live().count().get_result(conn)?;
    let mut by_sla_status = Vec::new();
    for sla in SlaStatus::ALL {
        let n: i64 = live()
            .into_boxed()
            .filter(sla_predicate(*sla, now))
            .count()
            .get_result(conn)?;
        by_sla_status.push((sla.as_str().to_owned(), n));
    }
    let (completed, mean) = completion(conn, tenant_id)?;
    Ok(Stats {
        total,
        by_status: counts_by!(conn, tenant_id, tickets::status),
        by_priority: counts_by!(conn, tenant_id, tickets::priority),
        by_category: counts_by!(conn, tenant_id, tickets::category),
        by_zone: counts_by!(conn, tenant_id, tickets::zone),
        by_sla_status,
        completed,
        mean_time_to_complete_secs: mean,
    })
}

/// Completed tickets and their mean time to complete in seconds. Date arithmetic is the one
/// thing the two backends spell differently.
fn completion(conn: &mut DbConnection, tenant_id: &str) -> AppResult<(i64, Option<f64>)> {
    #[derive(QueryableByName)]
    struct Completion {
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = Nullable<Double>)]
        mean: Option<f64>,
    }
    const WHERE: &str = "FROM tickets WHERE tenant_id = {t} AND deleted_at IS NULL \
         AND status = 'COMPLETED' AND completed_at IS NOT NULL";
    let c: Completion = match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(format!(
            "SELECT COUNT(*) AS n, \
             AVG(EXTRACT(EPOCH FROM (completed_at - created_at)))::DOUBLE PRECISION AS mean {}",
            WHERE.replace("{t}", "$1")
        ))
        .bind::<Text, _>(tenant_id)
        .get_result(pg)?,
        DbConnection::Sqlite(lite) => diesel::sql_query(format!(
            "SELECT COUNT(*) AS n, \
             AVG((julianday(completed_at) - julianday(created_at)) * 86400.0) AS mean {}",
            WHERE.replace("{t}", "?")
        ))
        .bind::<Text, _>(tenant_id)
        .get_result(lite)?,
    };
    Ok((c.n, c.mean))
}
