//! Integration tests of the ai service, black-box through the gateway with the real auth
//! service, on SQLite and on PostgreSQL: knowledge bases (documents of every format, search,
//! answers), tenant isolation, the local model's features and the OpenAI-compatible API.
//! The official `openai` Python SDK is run against it in scripts/ci/openai_client.py.

mod support;

mod chat;
mod embedding;
mod files;
mod grpc;
mod insights;
mod isolation;
mod knowledge;
mod local;
mod openai;
mod recommend;
mod retrieval;
mod router;

/// The fields a 422 problem names.
pub(crate) fn fields(problem: &serde_json::Value) -> Vec<String> {
    agora_testkit::fields(problem)
}
