//! The service's OpenAPI document, served at `/openapi.json` (the gateway merges it).

use utoipa::OpenApi;

use agora_shared::http::openapi::BearerAuth;

use crate::{domain, http, model};

#[derive(OpenApi)]
#[openapi(
    info(title = "Agora tickets", description = "Field-force work orders: assignments, comments, SLA clock, statistics."),
    paths(
        http::tickets::list, http::tickets::create, http::tickets::get, http::tickets::patch,
        http::tickets::replace, http::tickets::delete,
        http::assignments::assign, http::assignments::list,
        http::comments::create, http::comments::list, http::comments::edit, http::comments::delete,
        http::zones::list, http::zones::replace, http::summary::summary,
    ),
    components(schemas(
        model::Ticket, model::TicketFields, model::TicketPatch, model::TicketPage,
        model::AssignRequest, model::Assignment, model::Assigned, model::TeamLoad, model::AssignmentPage,
        model::CommentBody, model::Comment, model::CommentPage, model::Zones, model::Summary,
        domain::Category, domain::Priority, domain::Status, domain::SlaStatus,
    )),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The OpenAPI 3.1 document as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}
