//! The service's OpenAPI document, served at `/openapi.json` (the gateway merges it). The
//! native WebSocket protocol and Socket.IO are described in docs/realtime.md.

use utoipa::OpenApi;

use agora_shared::http::openapi::BearerAuth;

use crate::{http, native};

#[derive(OpenApi)]
#[openapi(
    info(title = "Agora realtime", description = "Channels with history and recovery, presence and typing, over a native WebSocket protocol and Socket.IO v4."),
    paths(http::create_token, native::ws, http::publish, http::presence, http::history),
    components(schemas(http::TokenOut, http::PublishIn, http::PublishedOut)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The OpenAPI 3.1 document as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}
