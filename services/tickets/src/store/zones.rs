//! A tenant's zones (the defaults until the tenant sets its own).

use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use crate::{domain::DEFAULT_ZONES, schema::zones};

/// The tenant's zones in their order.
pub fn list(conn: &mut DbConnection, tenant_id: &str) -> AppResult<Vec<String>> {
    let names: Vec<String> = zones::table
        .filter(zones::tenant_id.eq(tenant_id))
        .order(zones::position.asc())
        .select(zones::name)
        .load(conn)?;
    Ok(if names.is_empty() {
        DEFAULT_ZONES.map(String::from).to_vec()
    } else {
        names
    })
}

/// Replaces the tenant's zones.
pub fn replace(conn: &mut DbConnection, tenant_id: &str, names: &[String]) -> AppResult<()> {
    diesel::delete(zones::table.filter(zones::tenant_id.eq(tenant_id))).execute(conn)?;
    for (i, name) in names.iter().enumerate() {
        diesel::insert_into(zones::table)
            .values((
                zones::tenant_id.eq(tenant_id),
                zones::name.eq(name),
                zones::position.eq(i as i32),
            ))
            .execute(conn)?;
    }
    Ok(())
}
