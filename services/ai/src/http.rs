//! HTTP routes under `/api/v1/ai`: knowledge bases (`collections`), search and grounded
//! answers (`answers`), summaries, fact-checks and emotion (`texts`), and the OpenAI-compatible
//! API (`crate::openai`).

use actix_web::web;

use agora_shared::{AppError, AppResult, http::Caller};

pub mod admin;
pub mod answers;
pub mod chat;
pub mod collections;
pub mod texts;

/// What creating, changing and deleting collections and documents takes (tenant admins have
/// it); every member of a tenant may search and ask.
pub const MANAGE: &str = "ai:manage";

pub fn routes(cfg: &mut web::ServiceConfig) {
    collections::routes(cfg);
    admin::routes(cfg);
    chat::routes(cfg);
    answers::routes(cfg);
    texts::routes(cfg);
    crate::openai::routes(cfg);
    crate::recommend::routes(cfg);
    crate::insights::routes(cfg);
    crate::models::routes(cfg);
}

/// `value` trimmed, 1 to `max` characters without control characters, or a 422 naming
/// `field`.
pub fn clean(field: &str, value: &str, max: usize) -> AppResult<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(AppError::invalid(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(AppError::invalid(field, "must not hold control characters"));
    }
    Ok(value.to_owned())
}

/// A text given to the local model, within the configured size.
pub fn input_text(field: &str, value: &str, max_bytes: usize) -> AppResult<()> {
    if value.trim().is_empty() {
        return Err(AppError::invalid(field, "must not be empty"));
    }
    if value.len() > max_bytes {
        return Err(AppError::invalid(
            field,
            format!("is {} bytes; at most {max_bytes}", value.len()),
        ));
    }
    Ok(())
}

/// The caller's collections named in a request: 1 to 20 distinct ids.
pub fn collection_ids(field: &str, ids: &[String]) -> AppResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if id.is_empty() || id.len() > 64 || id.chars().any(char::is_control) {
            return Err(AppError::invalid(
                field,
                "holds an id that is not a collection id",
            ));
        }
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    if out.is_empty() || out.len() > 20 {
        return Err(AppError::invalid(field, "must name 1 to 20 collections"));
    }
    Ok(out)
}

/// The caller may manage the tenant's knowledge.
pub fn require_manage(caller: &Caller) -> AppResult<()> {
    caller.require_permission(MANAGE)
}
