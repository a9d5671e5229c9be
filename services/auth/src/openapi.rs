//! The service's OpenAPI document, served at `/openapi.json`.

use utoipa::OpenApi;

use agora_shared::http::openapi::BearerAuth;

use crate::{http, model};

#[derive(OpenApi)]
#[openapi(
    info(title = "Agora auth", description = "Tenants, users, teams, API keys and sessions."),
    paths(
        http::jwks,
        http::auth::register, http::auth::login, http::auth::refresh, http::auth::logout,
        http::auth::me, http::auth::update_me, http::passwords::change_password,
        http::passwords::forgot, http::passwords::reset, http::auth::accept_invite,
        http::tenants::list, http::tenants::create, http::tenants::get, http::tenants::update, http::tenants::delete,
        http::users::list, http::invitations::invite, http::users::get, http::users::update, http::users::delete,
        http::teams::list, http::teams::create, http::teams::get, http::teams::update, http::teams::delete,
        http::team_members::add_member, http::team_members::remove_member,
        http::api_keys::create, http::api_keys::list, http::api_keys::revoke,
    ),
    components(schemas(
        model::User, model::Tenant, model::Team, model::ApiKey, model::CreatedApiKey, model::TokenResponse,
        model::InvitedUser, model::Accepted, model::UserPage, model::TenantPage, model::TeamPage, model::ApiKeyPage,
    )),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The OpenAPI 3.1 document as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}
