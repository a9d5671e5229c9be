//! The service's OpenAPI document, served at `/openapi.json` (the gateway merges it).

use utoipa::OpenApi;

use agora_shared::http::openapi::BearerAuth;

use crate::{
    http::{admin, answers, chat, collections as col, texts},
    knowledge::search::Mode,
    openai,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Agora ai", description = "Knowledge bases with hybrid search, grounded answers, summaries, fact-checks and emotion from the built-in local model, and an OpenAI-compatible API."),
    paths(
        col::create, col::list, col::get, col::update, col::delete,
        col::add_document, col::documents, col::document, col::delete_document, col::upload_content, col::reprocess,
        answers::search_route, answers::answer_route,
        texts::summarize, texts::emotion_route, texts::fact_check,
        openai::models, openai::model, openai::chat, openai::embeddings,
        crate::recommend::recommend, crate::insights::insights,
        chat::chat, chat::list, chat::get, chat::delete,
        crate::models::list, crate::models::put, crate::models::delete,
        admin::list_keys, admin::put_key, admin::delete_key, admin::get_budget, admin::put_budget,
    ),
    components(schemas(
        col::CollectionIn, col::CollectionPatch, col::CollectionOut, col::CollectionPage,
        col::DocumentIn, col::DocumentOut, col::DocumentPage, col::ChunkOut,
        answers::SearchIn, answers::SearchOut, answers::SearchItem, answers::AnswerIn,
        answers::AnswerOut, answers::Citation, Mode,
        texts::SummarizeIn, texts::SummaryOut, texts::EmotionIn, texts::EmotionOut,
        texts::FactCheckIn, texts::FactCheckOut, texts::SourceIn, texts::ClaimOut,
        texts::EvidenceOut,
        crate::recommend::RecommendIn, crate::recommend::RecommendationOut,
        crate::recommend::CandidateOut, crate::recommend::FactorOut,
        crate::insights::InsightsOut, crate::insights::ZoneRisk, crate::insights::ZoneOutlook, crate::insights::SlaTrend,
        crate::insights::Week,
        crate::models::AliasIn, crate::models::AliasOut, crate::models::DeploymentIn,
        chat::ChatIn, chat::ChatOut, chat::MessageOut, chat::ConversationOut, chat::ConversationPage,
        admin::KeyIn, admin::ProviderOut, admin::BudgetIn, admin::BudgetOut, admin::UsageOut,
    )),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The OpenAPI 3.1 document as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}
