//! The HTTP API under `/api/v1/tickets`; the kernel adds health, metrics and OpenAPI.

use actix_web::{HttpResponse, http::header, web};

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, now},
};

use crate::{model::Ticket, store::tickets::TicketRow};

pub mod assignments;
pub mod comments;
pub mod summary;
pub mod tickets;
pub mod zones;

/// Assigning, deleting and SLA overrides need TENANT_ADMIN or this permission.
pub const MANAGE: &str = "tickets:manage";

/// Every route of the service. Fixed paths come before `/tickets/{id}`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .configure(summary::routes)
            .configure(zones::routes)
            .configure(tickets::routes)
            .configure(assignments::routes)
            .configure(comments::routes),
    );
}

/// The ETag of a ticket version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A ticket with its ETag.
pub fn ticket_response(
    mut builder: actix_web::HttpResponseBuilder,
    row: &TicketRow,
) -> HttpResponse {
    builder
        .insert_header((header::ETAG, etag(row.version)))
        .json(Ticket::new(row, now()))
}

pub use agora_shared::http::if_match;

/// Fails with 412 when `row` is not at a version `expected` names.
pub fn check_version(row: &TicketRow, expected: &Option<Vec<i64>>) -> AppResult<()> {
    match expected {
        Some(versions) if !versions.contains(&row.version) => Err(AppError::stale(
            "tickets.stale_version",
            format!(
                "the ticket changed since you read it (now at ETag {})",
                etag(row.version)
            ),
        )),
        _ => Ok(()),
    }
}

/// The caller's live ticket `id` (an id or a number); another tenant's is a 404.
pub fn load(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<TicketRow> {
    crate::store::tickets::get(conn, tenant_id, id)?.ok_or_else(|| AppError::not_found("ticket"))
}

/// 201 with a Location header.
pub fn created(location: String) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::Created();
    builder.insert_header((header::LOCATION, location));
    builder
}

/// Lists the children of a ticket: `fetch(conn, ticket_id, after, limit + 1)` gives rows in id order.
pub type ChildFetch<R> = fn(&mut DbConnection, &str, Option<&str>, i64) -> AppResult<Vec<R>>;

/// A page of the caller's ticket `id`'s children (assignments, comments); another tenant's
/// ticket is a 404.
pub async fn child_page<R: Send + 'static>(
    db: &agora_shared::db::Db,
    tenant_id: String,
    id: String,
    page: &agora_shared::http::PageParams,
    fetch: ChildFetch<R>,
    key: fn(&R) -> String,
) -> AppResult<agora_shared::http::Page<R>> {
    let (limit, after) = (page.limit()?, page.after()?);
    db.read(move |conn| {
        let ticket = load(conn, &tenant_id, &id)?;
        let rows = fetch(conn, &ticket.id, after.as_deref(), limit)?;
        Ok(agora_shared::http::Page::from_rows(rows, limit, key))
    })
    .await
}
