//! Tenants' own provider keys, sealed with AES-256-GCM under `ai.key_encryption_key` and
//! bound to their tenant and provider (a sealed key copied to another row does not open).
//! They are opened only to make a call, never returned, logged or put in an event.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{AppError, AppResult, db::DbConnection, sealed::Sealer};

use crate::{AiState, schema::provider_keys};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = provider_keys)]
pub struct KeyRow {
    pub tenant_id: String,
    pub provider: String,
    pub sealed_key: String,
    pub hint: String,
    pub created_by: String,
    pub updated_at: NaiveDateTime,
}

fn bound(tenant: &str, provider: &str) -> String {
    format!("provider-key:{tenant}:{provider}")
}

/// The sealer, or 409 when no key-encryption key is configured.
pub fn sealer(state: &AiState) -> AppResult<&Sealer> {
    state.sealer.as_ref().ok_or_else(|| {
        AppError::Conflict(
            "tenants' provider keys need ai.key_encryption_key, which is not configured".into(),
        )
        .with_code("ai.keys_not_configured")
    })
}

pub fn seal(sealer: &Sealer, tenant: &str, provider: &str, key: &str) -> String {
    sealer.seal(key.as_bytes(), &bound(tenant, provider))
}

pub fn put(conn: &mut DbConnection, row: &KeyRow) -> AppResult<()> {
    let updated = diesel::update(provider_keys::table.find((&row.tenant_id, &row.provider)))
        .set(row)
        .execute(conn)?;
    if updated == 0 {
        // Two first PUTs at once: the one that loses the insert updates what the other wrote.
        let inserted = match conn {
            DbConnection::Sqlite(c) => diesel::insert_into(provider_keys::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(c)?,
            DbConnection::Postgres(c) => diesel::insert_into(provider_keys::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(c)?,
        };
        if inserted == 0 {
            diesel::update(provider_keys::table.find((&row.tenant_id, &row.provider)))
                .set(row)
                .execute(conn)?;
        }
    }
    Ok(())
}

pub fn delete(conn: &mut DbConnection, tenant: &str, provider: &str) -> AppResult<bool> {
    Ok(diesel::delete(provider_keys::table.find((tenant, provider))).execute(conn)? == 1)
}

pub fn list(conn: &mut DbConnection, tenant: &str) -> AppResult<Vec<KeyRow>> {
    Ok(provider_keys::table
        .filter(provider_keys::tenant_id.eq(tenant))
        .select(KeyRow::as_select())
        .load(conn)?)
}

/// The tenant's own keys, opened, by provider. None without a key-encryption key; a key
/// that does not open (sealed under another key) is left out and logged by provider only.
pub async fn tenant_keys(state: &AiState, tenant: &str) -> AppResult<HashMap<String, String>> {
    let Some(sealer) = &state.sealer else {
        return Ok(HashMap::new());
    };
    let t = tenant.to_owned();
    let rows = state.db.read(move |conn| list(conn, &t)).await?;
    let mut keys = HashMap::new();
    for row in rows {
        match sealer.open_text(&row.sealed_key, &bound(&row.tenant_id, &row.provider)) {
            Ok(key) => {
                keys.insert(row.provider, key);
            }
            Err(_) => tracing::warn!(
                tenant = %row.tenant_id, provider = %row.provider,
                "a tenant's provider key does not open; the platform's key is used"
            ),
        }
    }
    Ok(keys)
}
