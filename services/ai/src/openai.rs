//! An OpenAI-compatible API at `/api/v1/ai/openai/v1`: `/models`, `/chat/completions`
//! (streamed as server-sent events or not) and `/embeddings`, with bodies and streams as
//! OpenAI documents them, so that any OpenAI SDK works by changing its base URL. Callers
//! authenticate with an Agora access token or API key as the SDK's key. Errors are problem
//! documents that also carry OpenAI's `error` object, which the SDKs read.
//!
//! The model `local` always exists: its chat answers the last user message from the
//! tenant's knowledge bases (quoting them; `collection_ids` narrows them), its embeddings are
//! the knowledge bases' own (`lexical-hash-1024`).

use actix_web::{HttpResponse, ResponseError, body::BoxBody, http::StatusCode, web};
use base64::Engine;
use futures::stream;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use agora_shared::{AppError, http::Caller};

use crate::{
    AiState,
    http::answers,
    knowledge::store,
    local::{self, embed, text::estimate_tokens},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/ai/openai/v1/models", web::get().to(models))
        .route("/api/v1/ai/openai/v1/models/{model}", web::get().to(model))
        .route(
            "/api/v1/ai/openai/v1/chat/completions",
            web::post().to(chat),
        )
        .route(
            "/api/v1/ai/openai/v1/embeddings",
            web::post().to(embeddings),
        );
}

/// An error of the OpenAI surface: the problem document, with OpenAI's `error` object too.
#[derive(Debug)]
pub struct OpenAiError(pub AppError);

impl std::fmt::Display for OpenAiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<AppError> for OpenAiError {
    fn from(err: AppError) -> Self {
        Self(err)
    }
}

impl ResponseError for OpenAiError {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        let response = self.0.error_response();
        let problem = self.0.problem();
        let kind = match problem.status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        };
        let param = problem
            .errors
            .as_ref()
            .and_then(|e| e.first())
            .map(|e| e.field.clone());
        let message = match &problem.errors {
            Some(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            None => problem.detail.clone(),
        };
        let mut body = serde_json::to_value(&problem).unwrap_or_else(|_| json!({}));
        body["error"] =
            json!({"message": message, "type": kind, "param": param, "code": problem.code});
        response
            .set_body(BoxBody::new(body.to_string()))
            .map_into_boxed_body()
    }
}

type Reply = Result<HttpResponse, OpenAiError>;

fn invalid(field: &str, message: impl Into<String>) -> OpenAiError {
    OpenAiError(AppError::invalid(field, message))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, OpenAiError> {
    Ok(agora_shared::http::json::parse(body)?)
}

fn unknown_model(model: &str) -> OpenAiError {
    OpenAiError(
        AppError::NotFound(format!(
            "the model `{model}` does not exist; this service has `{}`",
            local::MODEL
        ))
        .with_code("model_not_found"),
    )
}

fn check_model(model: &str) -> Result<(), OpenAiError> {
    match model == local::MODEL {
        true => Ok(()),
        false => Err(unknown_model(model)),
    }
}

fn model_object() -> Value {
    // The day the local model's behaviour was fixed (its embeddings are stored).
    json!({"id": local::MODEL, "object": "model", "created": 1_796_515_200, "owned_by": "agora"})
}

/// Lists the models.
#[utoipa::path(get, path = "/api/v1/ai/openai/v1/models", tag = "ai-openai",
    responses((status = 200, description = "OpenAI's model list: `local` and the configured models", body = Object)),
    security(("bearer" = [])))]
pub async fn models(_caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(json!({"object": "list", "data": [model_object()]}))
}

/// One model.
#[utoipa::path(get, path = "/api/v1/ai/openai/v1/models/{model}", tag = "ai-openai",
    params(("model" = String, Path)),
    responses((status = 200, description = "OpenAI's model object", body = Object), (status = 404)),
    security(("bearer" = [])))]
pub async fn model(_caller: Caller, model: web::Path<String>) -> Reply {
    check_model(&model)?;
    Ok(HttpResponse::Ok().json(model_object()))
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// A chat request: OpenAI's fields this model reads; the others (temperature, seed, user...)
/// are accepted and have no effect on an extractive model.
#[derive(Debug, Deserialize)]
struct ChatIn {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    n: Option<u32>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    /// Agora's: the collections to answer from (default: the tenant's first 20).
    collection_ids: Option<Vec<String>>,
    #[serde(flatten)]
    _other: Map<String, Value>,
}

impl Message {
    fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(parts)) => parts
                .iter()
                .filter(|p| p.kind == "text")
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// Chat completions.
#[utoipa::path(post, path = "/api/v1/ai/openai/v1/chat/completions", tag = "ai-openai",
    request_body(content = Object, content_type = "application/json", description = "OpenAI's chat completion request (`model`, `messages`, `stream`, `stream_options`, `max_tokens`...), and Agora's `collection_ids`"),
    responses((status = 200, description = "OpenAI's chat completion, or with `stream` its chunks as server-sent events ending `data: [DONE]`", body = Object),
        (status = 400), (status = 404, description = "an unknown model or collection"), (status = 422)),
    security(("bearer" = [])))]
pub async fn chat(state: web::Data<AiState>, caller: Caller, body: web::Bytes) -> Reply {
    let input: ChatIn = parse(&body)?;
    check_model(&input.model)?;
    if input.messages.is_empty() {
        return Err(invalid("messages", "must hold at least one message"));
    }
    for (i, m) in input.messages.iter().enumerate() {
        if !matches!(
            m.role.as_str(),
            "system" | "developer" | "user" | "assistant" | "tool" | "function"
        ) {
            return Err(invalid(
                &format!("messages[{i}].role"),
                "must be system, developer, user, assistant or tool",
            ));
        }
    }
    if input.n.is_some_and(|n| n != 1) {
        return Err(invalid("n", "the local model gives one choice"));
    }
    let prompt: usize = input.messages.iter().map(|m| m.text().len()).sum();
    if prompt > state.config.max_input_bytes {
        return Err(invalid(
            "messages",
            format!(
                "hold {prompt} bytes; at most {}",
                state.config.max_input_bytes
            ),
        ));
    }
    let Some(question) = input
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(Message::text)
        .filter(|t| !t.trim().is_empty())
    else {
        return Err(invalid("messages", "must hold a user message with text"));
    };
    let question: String = question
        .chars()
        .rev()
        .take(2000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let ids = match input.collection_ids {
        Some(ids) => ids,
        None => {
            let tenant = caller.tenant_id.clone();
            state
                .db
                .read(move |conn| store::collections(conn, &tenant, None, 19))
                .await?
                .into_iter()
                .map(|c| c.id)
                .collect()
        }
    };
    let answer = match ids.is_empty() {
        true => None,
        false => Some(answers::grounded(&state, &caller, &ids, &question, 5).await?),
    };
    let (mut content, citations) = match answer {
        Some(a) => (a.answer, a.citations),
        None => (local::answer::NOT_FOUND.to_owned(), Vec::new()),
    };
    let limit = input.max_completion_tokens.or(input.max_tokens);
    let mut finish = "stop";
    if let Some(limit) = limit {
        if limit == 0 {
            return Err(invalid("max_tokens", "must be at least 1"));
        }
        if estimate_tokens(&content) > limit {
            content = cut(&content, limit);
            finish = "length";
        }
    }
    let prompt_tokens: u64 = input
        .messages
        .iter()
        .map(|m| estimate_tokens(&m.text()))
        .sum();
    let completion_tokens = estimate_tokens(&content);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
    let created = chrono::Utc::now().timestamp();
    let citations = serde_json::to_value(&citations).unwrap_or(Value::Null);
    if input.stream == Some(true) {
        let include_usage = input.stream_options.is_some_and(|o| o.include_usage);
        let chunk = |delta: Value, finish: Option<&str>| {
            json!({
                "id": id, "object": "chat.completion.chunk", "created": created,
                "model": local::MODEL, "system_fingerprint": null, "provider": local::PROVIDER,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            })
        };
        let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
        for piece in pieces(&content) {
            events.push(chunk(json!({"content": piece}), None));
        }
        let mut last = chunk(json!({}), Some(finish));
        last["citations"] = citations;
        events.push(last);
        if include_usage {
            events.push(json!({
                "id": id, "object": "chat.completion.chunk", "created": created,
                "model": local::MODEL, "system_fingerprint": null, "choices": [], "usage": usage,
            }));
        }
        let mut frames: Vec<Result<web::Bytes, std::convert::Infallible>> = events
            .into_iter()
            .map(|e| Ok(web::Bytes::from(format!("data: {e}\n\n"))))
            .collect();
        frames.push(Ok(web::Bytes::from_static(b"data: [DONE]\n\n")));
        return Ok(HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .streaming(stream::iter(frames)));
    }
    Ok(HttpResponse::Ok().json(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": local::MODEL,
        "system_fingerprint": null,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": usage,
        "provider": local::PROVIDER,
        "citations": citations,
    })))
}

/// `content` cut to about `limit` tokens, at a word's end.
fn cut(content: &str, limit: u64) -> String {
    let mut out = String::new();
    for word in content.split_inclusive(' ') {
        if estimate_tokens(&format!("{out}{word}")) > limit {
            break;
        }
        out.push_str(word);
    }
    out.trim_end().to_owned()
}

/// The stream's content deltas: a few words each.
fn pieces(content: &str) -> Vec<String> {
    let words: Vec<&str> = content.split_inclusive(' ').collect();
    words.chunks(4).map(|w| w.concat()).collect()
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
    Other(serde::de::IgnoredAny),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingsIn {
    model: String,
    input: EmbeddingInput,
    encoding_format: Option<String>,
    dimensions: Option<usize>,
    #[allow(dead_code)]
    user: Option<String>,
}

/// Embeddings.
#[utoipa::path(post, path = "/api/v1/ai/openai/v1/embeddings", tag = "ai-openai",
    request_body(content = Object, content_type = "application/json", description = "OpenAI's embeddings request (`model`, `input`, `encoding_format`, `dimensions`)"),
    responses((status = 200, description = "OpenAI's embedding list (floats, or base64 of little-endian f32s)", body = Object),
        (status = 400), (status = 404, description = "an unknown model"), (status = 422)),
    security(("bearer" = [])))]
pub async fn embeddings(state: web::Data<AiState>, _caller: Caller, body: web::Bytes) -> Reply {
    let input: EmbeddingsIn = parse(&body)?;
    check_model(&input.model)?;
    let texts = match input.input {
        EmbeddingInput::One(t) => vec![t],
        EmbeddingInput::Many(t) => t,
        EmbeddingInput::Other(_) => {
            return Err(invalid(
                "input",
                "must be a string or an array of strings (the local model takes text, not token ids)",
            ));
        }
    };
    if texts.is_empty() || texts.len() > 2048 {
        return Err(invalid("input", "must hold 1 to 2048 texts"));
    }
    if let Some(i) = texts.iter().position(|t| t.is_empty()) {
        return Err(invalid(&format!("input[{i}]"), "must not be empty"));
    }
    let total: usize = texts.iter().map(String::len).sum();
    if total > state.config.max_input_bytes {
        return Err(invalid(
            "input",
            format!(
                "holds {total} bytes; at most {}",
                state.config.max_input_bytes
            ),
        ));
    }
    let base64 = match input.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => return Err(invalid("encoding_format", "must be float or base64")),
    };
    let dims = input.dimensions.unwrap_or(embed::DIMS);
    if !(1..=embed::DIMS).contains(&dims) {
        return Err(invalid(
            "dimensions",
            format!("must be from 1 to {}", embed::DIMS),
        ));
    }
    let tokens: u64 = texts.iter().map(|t| estimate_tokens(t)).sum();
    let data = tokio::task::spawn_blocking(move || {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = embed::embed(t);
                if dims < embed::DIMS {
                    // Folded, not cut: the same features hashed into fewer coordinates.
                    let mut folded = vec![0f32; dims];
                    for (i, x) in v.iter().enumerate() {
                        folded[i % dims] += x;
                    }
                    embed::normalize(&mut folded);
                    v = folded;
                }
                let embedding = match base64 {
                    true => Value::String(
                        base64::engine::general_purpose::STANDARD.encode(embed::to_bytes(&v)),
                    ),
                    false => json!(v),
                };
                json!({"object": "embedding", "index": i, "embedding": embedding})
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("embedding failed: {e}")))?;
    Ok(HttpResponse::Ok().json(json!({
        "object": "list",
        "data": data,
        "model": local::MODEL,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "provider": local::PROVIDER,
        "embedding_model": embed::MODEL,
    })))
}
