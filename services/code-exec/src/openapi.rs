//! The service's OpenAPI document, served at `/openapi.json` (the gateway merges it).

use utoipa::OpenApi;

use agora_shared::http::openapi::BearerAuth;

use crate::{exercises::http as ex, http};

#[derive(OpenApi)]
#[openapi(
    info(title = "Agora code-exec", description = "Judge0-compatible code execution in a sandbox, and exercises with test cases."),
    paths(
        http::create, http::create_batch, http::get_batch, http::get,
        http::languages, http::language, http::statuses, http::about, http::config_info,
        http::system_info,
        ex::list, ex::put, ex::get, ex::delete, ex::attempt, ex::attempts, ex::get_attempt,
    ),
    components(schemas(
        http::SubmissionIn, http::BatchIn, http::SubmissionOut, http::StatusOut,
        http::LanguageOut, http::SubmissionsOut, http::TokenOut,
        ex::ExerciseIn, ex::CaseIn, ex::AttemptIn, ex::ExerciseOut, ex::CaseOut, ex::AttemptOut,
        ex::AttemptCaseOut,
    )),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The OpenAPI 3.1 document as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}
