//! The auth store: every SQL statement of the service, as functions over a connection so the
//! caller chooses the transaction.

use diesel::{RunQueryDsl, sql_types::Text};

use agora_shared::{AppResult, db::DbConnection};

pub mod api_keys;
pub mod audit;
pub mod keys;
pub mod sessions;
pub mod teams;
pub mod tenants;
pub mod users;

/// Serialises changes to one tenant's membership on PostgreSQL (`SELECT ... FOR UPDATE`), so
/// rules that count rows (the last admin) hold under concurrency. SQLite writes are already
/// serialised by the store.
pub fn lock_tenant(conn: &mut DbConnection, tenant_id: &str) -> AppResult<()> {
    if let DbConnection::Postgres(pg) = conn {
        diesel::sql_query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
            .bind::<Text, _>(tenant_id)
            .execute(pg)?;
    }
    Ok(())
}
