//! Per-tenant resource-plan factors.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use super::sql::{Sql, Value};
use crate::{domain::Factors, schema::plan_factors};

/// The tenant's factors, or the defaults when it has set none.
pub fn get(conn: &mut DbConnection, tenant_id: &str) -> AppResult<Factors> {
    let row: Option<(f64, f64, f64, f64)> = plan_factors::table
        .find(tenant_id)
        .select((
            plan_factors::team_divisor,
            plan_factors::hours_per_ticket,
            plan_factors::tickets_per_vehicle,
            plan_factors::fibre_metres_per_ticket,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map_or_else(Factors::default, |(a, b, c, d)| Factors {
        team_divisor: a,
        hours_per_ticket: b,
        tickets_per_vehicle: c,
        fibre_metres_per_ticket: d,
    }))
}

pub fn put(
    conn: &mut DbConnection,
    tenant_id: &str,
    f: &Factors,
    now: NaiveDateTime,
) -> AppResult<()> {
    let mut sql = Sql::new(
        "INSERT INTO plan_factors (tenant_id, team_divisor, hours_per_ticket, \
         tickets_per_vehicle, fibre_metres_per_ticket, updated_at) VALUES (",
    );
    sql.text(tenant_id);
    for v in [
        f.team_divisor,
        f.hours_per_ticket,
        f.tickets_per_vehicle,
        f.fibre_metres_per_ticket,
    ] {
        sql.push(", ").bind(Value::Float(v));
    }
    sql.push(", ").bind(Value::Time(now)).push(
        ") ON CONFLICT (tenant_id) DO UPDATE SET team_divisor = excluded.team_divisor, \
         hours_per_ticket = excluded.hours_per_ticket, \
         tickets_per_vehicle = excluded.tickets_per_vehicle, \
         fibre_metres_per_ticket = excluded.fibre_metres_per_ticket, \
         updated_at = excluded.updated_at",
    );
    sql.execute(conn)?;
    Ok(())
}
