//! The HTTP API under `/api/v1/inventory`; the kernel adds health, metrics and OpenAPI.
//! Everyone in a tenant reads; changes need TENANT_ADMIN or `inventory:manage`.

use actix_web::{HttpResponse, http::header, web};

use agora_shared::{AppError, AppResult, db::DbConnection};

use crate::store::{self, items::ItemRow};

pub mod claims;
pub mod connections;
pub mod discrepancies;
pub mod gmail;
pub mod items;
pub mod reconcile;
pub mod snapshots;
pub mod webhooks;

/// Largest JSON body (CSV imports have `import_max_bytes`).
pub const JSON_LIMIT: usize = 4 * 1024 * 1024;

/// Changing items, counts, rules, discrepancies and claims needs TENANT_ADMIN or this.
pub const MANAGE: &str = "inventory:manage";

/// Every route of the service. Fixed paths come before `/{id}` ones.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/inventory")
            // Snapshots of 10,000 counts and reconciliations of 10,000 lines.
            .app_data(agora_shared::http::json::JsonLimit(JSON_LIMIT))
            .configure(snapshots::routes)
            .configure(gmail::routes)
            .configure(connections::routes)
            .configure(reconcile::routes)
            .configure(items::routes)
            .configure(discrepancies::routes)
            .configure(claims::routes)
            .configure(webhooks::routes),
    );
}

/// Runs `attempt` again while it reports that a concurrent change came first (`Ok(None)`),
/// three times at most: each try reads afresh. `None` when every try lost.
pub fn until_settled<T>(
    conn: &mut DbConnection,
    mut attempt: impl FnMut(&mut DbConnection) -> AppResult<Option<T>>,
) -> AppResult<Option<T>> {
    for _ in 0..3 {
        if let Some(done) = attempt(conn)? {
            return Ok(Some(done));
        }
    }
    Ok(None)
}

/// The caller's item `id` (an id or a SKU); another tenant's is a 404.
pub fn load_item(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<ItemRow> {
    store::items::get(conn, tenant_id, id)?.ok_or_else(|| AppError::not_found("item"))
}

/// The caller's connection `id`; another tenant's is a 404.
pub fn load_connection(
    conn: &mut DbConnection,
    tenant_id: &str,
    id: &str,
) -> AppResult<store::connections::ConnectionRow> {
    store::connections::get(conn, tenant_id, id)?.ok_or_else(|| AppError::not_found("connection"))
}

/// 201 with a Location header.
pub fn created(location: String) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::Created();
    builder.insert_header((header::LOCATION, location));
    builder
}

/// A yes/no query parameter (`true`/`false`, `1`/`0`).
pub fn flag(name: &str, value: Option<&str>) -> AppResult<bool> {
    match value {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err(AppError::invalid(name, "must be true or false")),
    }
}

/// A closed-set query parameter, parsed.
pub fn choice<T: std::str::FromStr<Err = String>>(
    name: &str,
    value: Option<&str>,
) -> AppResult<Option<T>> {
    value
        .map(|v| v.parse::<T>().map_err(|e| AppError::invalid(name, e)))
        .transpose()
}
