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
use futures::{StreamExt, stream};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use agora_shared::{AppError, http::Caller};

use crate::{
    AiState, budget,
    http::answers,
    keys,
    knowledge::store,
    local::{self, embed, text::estimate_tokens},
    models::Target,
    providers::{self, Reply as Upstream},
    router::{Call, Served},
    usage::{Answerer, Meter},
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

/// The fields of a chat request passed on to a provider. Others (`store`, `service_tier`,
/// `audio`, `metadata`, built-in tools...) would keep tenants' prompts in the platform's
/// account or be billed at prices the router does not know.
const FORWARDED: [&str; 16] = [
    "messages",
    "temperature",
    "top_p",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "user",
    "response_format",
    "tools",
    "tool_choice",
    "logit_bias",
    "n",
    "stream_options",
];

/// What a provider is sent of a chat request: the forwarded fields, with an answer limit
/// (`max_tokens`, the reservation's) when the client named none.
fn forwarded(raw: &Value, answer_limit: u64) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(fields) = raw.as_object() {
        for name in FORWARDED {
            if let Some(v) = fields.get(name) {
                out.insert(name.to_owned(), v.clone());
            }
        }
    }
    if !out.contains_key("max_tokens") && !out.contains_key("max_completion_tokens") {
        out.insert("max_tokens".into(), json!(answer_limit));
    }
    Value::Object(out)
}

/// The most tokens a chat call may ask to be answered with (what it reserves of its budget).
pub const MAX_COMPLETION_TOKENS: u64 = 1_000_000;

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

fn model_object(id: &str) -> Value {
    // The day the platform's models were first served (the local model's embeddings are
    // stored, so its behaviour is fixed from then on).
    json!({"id": id, "object": "model", "created": 1_796_515_200, "owned_by": "agora"})
}

/// Lists the models.
#[utoipa::path(get, path = "/api/v1/ai/openai/v1/models", tag = "ai-openai",
    responses((status = 200, description = "OpenAI's model list: `local`, the tenant's and the platform's aliases, then the embedding models", body = Object)),
    security(("bearer" = [])))]
pub async fn models(state: web::Data<AiState>, caller: Caller) -> Reply {
    let mut data = vec![model_object(local::MODEL)];
    let own = crate::models::tenant_aliases(&state, &caller.tenant_id).await?;
    data.extend(own.iter().map(|alias| model_object(alias)));
    data.extend(
        state
            .config
            .models
            .keys()
            .filter(|alias| !own.contains(alias))
            .map(|alias| model_object(alias)),
    );
    // Then the embedding models (for `/embeddings` only).
    data.extend(state.embedders.names().iter().map(|m| model_object(m)));
    Ok(HttpResponse::Ok().json(json!({"object": "list", "data": data})))
}

/// One model.
#[utoipa::path(get, path = "/api/v1/ai/openai/v1/models/{model}", tag = "ai-openai",
    params(("model" = String, Path)),
    responses((status = 200, description = "OpenAI's model object", body = Object), (status = 404)),
    security(("bearer" = [])))]
pub async fn model(state: web::Data<AiState>, caller: Caller, model: web::Path<String>) -> Reply {
    target(&state, &caller, &model).await?;
    Ok(HttpResponse::Ok().json(model_object(&model)))
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
    let o = open(&state, &caller, &body).await?;
    Ok(match o.opened {
        Opened::Local {
            content,
            finish,
            citations,
            usage,
        } => local_reply(content, finish, citations, usage, o.stream, o.include_usage),
        Opened::Whole(completion) => HttpResponse::Ok().json(completion),
        Opened::Stream {
            chunks,
            meter,
            provider,
        } => HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("cache-control", "no-cache"))
            .streaming(relay(chunks, meter, o.include_usage, provider)),
    })
}

/// A chat completion opened: the local model's whole answer, a provider's whole completion,
/// or a provider's stream, metered until it ends.
pub(crate) enum Opened {
    Local {
        content: String,
        finish: &'static str,
        citations: Value,
        usage: Value,
    },
    Whole(Value),
    Stream {
        chunks: providers::ChunkStream,
        meter: Meter,
        provider: String,
    },
}

/// An opened completion, and how the client asked for it.
pub(crate) struct Opening {
    pub opened: Opened,
    pub stream: bool,
    pub include_usage: bool,
}

/// Checks an OpenAI chat request (`body`), reserves its budget and opens its completion,
/// from the local model or through the router.
pub(crate) async fn open(
    state: &web::Data<AiState>,
    caller: &Caller,
    body: &[u8],
) -> Result<Opening, OpenAiError> {
    let state = state.clone();
    let input: ChatIn = parse(body)?;
    let raw: Value = parse(body)?;
    let target = target(&state, caller, &input.model).await?;
    if let Target::Embedder(e) = &target {
        return Err(invalid(
            "model",
            format!(
                "`{}` is an embedding model; chat with `local` or a chat model alias",
                e.name()
            ),
        ));
    }
    let local = matches!(target, Target::Local);
    let own = match target {
        Target::Tenant(m) => Some(m),
        _ => None,
    };
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
    if local && input.n.is_some_and(|n| n != 1) {
        return Err(invalid("n", "the local model gives one choice"));
    }
    if input.n.is_some_and(|n| !(1..=8).contains(&n)) {
        return Err(invalid("n", "must be from 1 to 8"));
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
    for (field, value) in [
        ("max_tokens", input.max_tokens),
        ("max_completion_tokens", input.max_completion_tokens),
    ] {
        if value.is_some_and(|l| !(1..=MAX_COMPLETION_TOKENS).contains(&l)) {
            return Err(invalid(
                field,
                format!("must be from 1 to {MAX_COMPLETION_TOKENS}"),
            ));
        }
    }
    // The larger of the two is what a provider may answer with.
    let limit = input.max_completion_tokens.max(input.max_tokens);
    let prompt_tokens: u64 = input
        .messages
        .iter()
        .map(|m| estimate_tokens(&m.text()))
        .sum();
    let stream = input.stream == Some(true);
    let include_usage = input
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    // The call's hold on the tenant's budget, given back with what it used when it ends: its
    // prompt and, for each choice, the most it may be answered with.
    let choices = u64::from(input.n.unwrap_or(1));
    let answer_limit = limit.unwrap_or(state.config.default_max_tokens);
    let estimate = prompt_tokens + choices * answer_limit;
    let mut meter = meter(&state, caller, &input.model, "chat", estimate).await?;
    if local {
        let answer = local_chat(&state, caller, &input, limit).await;
        let (content, finish, citations) = match answer {
            Ok(a) => a,
            Err(e) => {
                meter.fail(&e.0.code()).await?;
                return Err(e);
            }
        };
        let completion_tokens = estimate_tokens(&content);
        meter.answered_by(Answerer {
            provider: local::PROVIDER.into(),
            provider_model: local::answer::MODEL.into(),
            ..Answerer::default()
        });
        meter.tokens(prompt_tokens as i64, completion_tokens as i64);
        meter.status("ok");
        meter.record().await?;
        let usage = json!({
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        });
        return Ok(Opening {
            opened: Opened::Local {
                content,
                finish,
                citations,
                usage,
            },
            stream,
            include_usage,
        });
    }
    let raw = forwarded(&raw, answer_limit);
    let keys = match keys::tenant_keys(&state, &caller.tenant_id).await {
        Ok(k) => k,
        Err(e) => {
            meter.fail(&e.code()).await?;
            return Err(e.into());
        }
    };
    // While the provider works, the call is charged its reservation: a client that hangs up
    // meanwhile pays for what it asked (the provider bills it all the same).
    meter.tokens(prompt_tokens as i64, (estimate - prompt_tokens) as i64);
    let routed = state
        .router
        .call(
            &state.config,
            &input.model,
            own.as_ref(),
            &raw,
            Call::Chat { stream },
            &keys,
        )
        .await;
    let (reply, served) = match routed {
        Ok(r) => r,
        Err(e) => {
            meter.fail(&e.code()).await?;
            return Err(e.into());
        }
    };
    meter.answered_by(answerer(&served));
    match reply {
        Upstream::Whole(mut completion) => {
            // A provider that reports no usage is charged the reservation.
            let usage = &completion["usage"];
            meter.tokens(
                usage["prompt_tokens"]
                    .as_i64()
                    .unwrap_or(prompt_tokens as i64),
                usage["completion_tokens"]
                    .as_i64()
                    .unwrap_or((estimate - prompt_tokens) as i64),
            );
            meter.status("ok");
            meter.record().await?;
            completion["provider"] = json!(served.deployment.provider);
            Ok(Opening {
                opened: Opened::Whole(completion),
                stream,
                include_usage,
            })
        }
        Upstream::Stream(chunks) => {
            // Until the provider reports what it used, the call is charged its whole
            // reservation: a client that hangs up before the end pays for what it asked.
            let reserved = estimate as i64;
            meter.tokens(prompt_tokens as i64, reserved - prompt_tokens as i64);
            Ok(Opening {
                opened: Opened::Stream {
                    chunks,
                    meter,
                    provider: served.deployment.provider,
                },
                stream,
                include_usage,
            })
        }
    }
}

/// What `model` names for the caller's tenant: the local model, a platform alias or the
/// tenant's own; 404 otherwise.
async fn target(state: &AiState, caller: &Caller, model: &str) -> Result<Target, OpenAiError> {
    crate::models::target(state, &caller.tenant_id, model)
        .await?
        .ok_or_else(|| unknown_model(model))
}

pub(crate) fn answerer(served: &Served) -> Answerer {
    Answerer {
        provider: served.deployment.provider.clone(),
        provider_model: served.deployment.model.clone(),
        input_cost_per_million: served.deployment.input_cost_per_million,
        output_cost_per_million: served.deployment.output_cost_per_million,
    }
}

/// Reserves `estimate` tokens of the caller's tenant's budget for a call to `model`.
pub(crate) async fn meter(
    state: &web::Data<AiState>,
    caller: &Caller,
    model: &str,
    kind: &'static str,
    estimate: u64,
) -> Result<Meter, OpenAiError> {
    let (tenant, now) = (caller.tenant_id.clone(), agora_shared::db::now());
    let (state, user, model) = (
        state.clone().into_inner(),
        caller.user_id.clone(),
        model.to_owned(),
    );
    // Reserved, and the meter made, in a task of its own: a caller that goes away meanwhile
    // (a deadline, a client hanging up) drops the task's meter once it is made, which gives
    // the reservation back, instead of leaving it held until the period ends.
    let reserving = tokio::spawn(async move {
        let reservation = state
            .db
            .write(move |conn| budget::reserve(conn, &tenant, estimate as i64, now))
            .await?;
        Ok::<_, AppError>(Meter::new(state, reservation, &user, &model, kind))
    });
    Ok(reserving
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("reserving failed: {e}")))??)
}

/// A provider's chunks, counting the usage they report into `meter`, which is recorded when
/// the stream ends. A provider's error (an error event, or the stream failing) is logged,
/// recorded, and ends the stream with `Err(())`: its words never reach the client.
pub(crate) fn metered(
    chunks: providers::ChunkStream,
    meter: Meter,
) -> impl futures::Stream<Item = Result<Value, ()>> + Send {
    stream::unfold(
        (chunks, Some(meter), false),
        |(mut chunks, mut meter, done)| async move {
            if done {
                return None;
            }
            let failed = match chunks.next().await {
                Some(Ok(chunk)) if chunk.get("error").is_some() => {
                    tracing::info!(error = %chunk["error"], "the provider's stream sent an error");
                    true
                }
                Some(Ok(chunk)) => {
                    if let (Some(m), Some(usage)) =
                        (meter.as_mut(), chunk.get("usage").filter(|u| u.is_object()))
                    {
                        m.tokens(
                            usage["prompt_tokens"].as_i64().unwrap_or(0),
                            usage["completion_tokens"].as_i64().unwrap_or(0),
                        );
                    }
                    return Some((Ok(chunk), (chunks, meter, false)));
                }
                Some(Err(e)) => {
                    tracing::info!(error = %e.message, "the provider's stream failed");
                    true
                }
                None => false,
            };
            if let Some(mut m) = meter.take() {
                m.status(if failed { "upstream_failed" } else { "ok" });
                let _ = m.record().await;
            }
            failed.then_some((Err(()), (chunks, None, true)))
        },
    )
}

/// A provider's stream as server-sent events to the client: the usage chunk (asked for by
/// the router, for the budget) only when the client asked for it, an error event when the
/// provider failed, then `[DONE]`.
fn relay(
    chunks: providers::ChunkStream,
    meter: Meter,
    include_usage: bool,
    provider: String,
) -> impl futures::Stream<Item = Result<web::Bytes, std::convert::Infallible>> {
    metered(chunks, meter)
        .filter(move |item| {
            let usage_only =
                matches!(item, Ok(c) if c["choices"].as_array().is_some_and(Vec::is_empty));
            std::future::ready(include_usage || !usage_only)
        })
        .map(move |item| {
            Ok(match item {
                Ok(mut chunk) => {
                    chunk["provider"] = json!(provider);
                    web::Bytes::from(format!("data: {chunk}\n\n"))
                }
                Err(()) => web::Bytes::from(format!("data: {}\n\n", stream_error())),
            })
        })
        .chain(stream::once(async {
            Ok(web::Bytes::from_static(b"data: [DONE]\n\n"))
        }))
}

/// The error event that ends a relayed stream whose provider failed.
fn stream_error() -> Value {
    json!({"error": {"message": "the provider's stream failed", "type": "api_error", "code": "ai.upstream_failed", "param": null}})
}

/// The local model's chat answer: (content, finish reason, citations).
async fn local_chat(
    state: &AiState,
    caller: &Caller,
    input: &ChatIn,
    limit: Option<u64>,
) -> Result<(String, &'static str, Value), OpenAiError> {
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
    if question.len() > answers::MAX_QUERY_BYTES {
        return Err(invalid(
            "messages",
            format!(
                "the last user message is {} bytes; the local model answers at most {}",
                question.len(),
                answers::MAX_QUERY_BYTES
            ),
        ));
    }
    let ids = match &input.collection_ids {
        Some(ids) => ids.clone(),
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
    // No collection at all answers "not found"; an empty list given is the client's error.
    let answer = match ids.is_empty() && input.collection_ids.is_none() {
        true => None,
        false => Some(answers::grounded(state, caller, &ids, &question, 5).await?),
    };
    let (mut content, citations) = match answer {
        Some(a) => (a.answer, a.citations),
        None => (local::answer::NOT_FOUND.to_owned(), Vec::new()),
    };
    let mut finish = "stop";
    if let Some(limit) = limit
        && estimate_tokens(&content) > limit
    {
        content = cut(&content, limit);
        finish = "length";
    }
    let citations = serde_json::to_value(&citations).unwrap_or(Value::Null);
    Ok((content, finish, citations))
}

/// The local model's answer as OpenAI's completion, or its stream of chunks.
fn local_reply(
    content: String,
    finish: &str,
    citations: Value,
    usage: Value,
    stream: bool,
    include_usage: bool,
) -> HttpResponse {
    let id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
    let created = chrono::Utc::now().timestamp();
    if !stream {
        return HttpResponse::Ok().json(json!({
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
        }));
    }
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
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(stream::iter(frames))
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
pub(crate) fn pieces(content: &str) -> Vec<String> {
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
pub async fn embeddings(state: web::Data<AiState>, caller: Caller, body: web::Bytes) -> Reply {
    let input: EmbeddingsIn = parse(&body)?;
    let embedder = match target(&state, &caller, &input.model).await? {
        Target::Local => crate::embedders::Embedder::Lexical,
        Target::Embedder(e) => e,
        Target::Platform => {
            return remote_embeddings(&state, &caller, &input.model, None, &body).await;
        }
        Target::Tenant(m) => {
            return remote_embeddings(&state, &caller, &input.model, Some(m), &body).await;
        }
    };
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
    let full = embedder.dims();
    let dims = input.dimensions.unwrap_or(full);
    if !(1..=full).contains(&dims) {
        return Err(invalid("dimensions", format!("must be from 1 to {full}")));
    }
    let tokens: u64 = texts.iter().map(|t| estimate_tokens(t)).sum();
    let requested = input.model.clone();
    let mut meter = meter(&state, &caller, &requested, "embeddings", tokens).await?;
    meter.answered_by(Answerer {
        provider: local::PROVIDER.into(),
        provider_model: embedder.name().into(),
        ..Answerer::default()
    });
    meter.tokens(tokens as i64, 0);
    meter.status("ok");
    let name = embedder.name().to_owned();
    let data = tokio::task::spawn_blocking(move || {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = embedder.embed(t);
                if dims < full {
                    v = match embedder {
                        // Folded, not cut: the same features hashed into fewer coordinates.
                        crate::embedders::Embedder::Lexical => {
                            let mut folded = vec![0f32; dims];
                            for (i, x) in v.iter().enumerate() {
                                folded[i % dims] += x;
                            }
                            folded
                        }
                        // Cut: a static model's coordinates come by decreasing variance
                        // (its PCA), so the first ones keep the most.
                        crate::embedders::Embedder::Static { .. } => v[..dims].to_vec(),
                    };
                    embed::normalize(&mut v);
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
    meter.record().await?;
    Ok(HttpResponse::Ok().json(json!({
        "object": "list",
        "data": data,
        "model": requested,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "provider": local::PROVIDER,
        "embedding_model": name,
    })))
}

/// Embeddings from a configured alias, through the router.
async fn remote_embeddings(
    state: &web::Data<AiState>,
    caller: &Caller,
    model: &str,
    own: Option<crate::config::ModelConfig>,
    body: &[u8],
) -> Reply {
    if body.len() > state.config.max_input_bytes {
        return Err(invalid(
            "input",
            format!(
                "holds {} bytes; at most {}",
                body.len(),
                state.config.max_input_bytes
            ),
        ));
    }
    let raw: Value = parse(body)?;
    let estimate = estimate_tokens(&raw["input"].to_string());
    let mut meter = meter(state, caller, model, "embeddings", estimate).await?;
    let keys = match keys::tenant_keys(state, &caller.tenant_id).await {
        Ok(k) => k,
        Err(e) => {
            meter.fail(&e.code()).await?;
            return Err(e.into());
        }
    };
    // Charged its reservation while the provider works (see `open`).
    meter.tokens(estimate as i64, 0);
    match state
        .router
        .call(
            &state.config,
            model,
            own.as_ref(),
            &raw,
            Call::Embeddings,
            &keys,
        )
        .await
    {
        Ok((Upstream::Whole(mut list), served)) => {
            meter.answered_by(answerer(&served));
            meter.tokens(
                list["usage"]["prompt_tokens"]
                    .as_i64()
                    .unwrap_or(estimate as i64),
                0,
            );
            meter.status("ok");
            meter.record().await?;
            list["provider"] = json!(served.deployment.provider);
            Ok(HttpResponse::Ok().json(list))
        }
        Ok((Upstream::Stream(_), _)) => {
            meter.fail("upstream_failed").await?;
            Err(OpenAiError(AppError::BadGateway(
                "the provider streamed embeddings".into(),
            )))
        }
        Err(e) => {
            meter.fail(&e.code()).await?;
            Err(e.into())
        }
    }
}
