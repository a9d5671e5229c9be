//! A local model provider for tests, speaking OpenAI's and Anthropic's documented wire
//! formats on one port:
//! - OpenAI: `POST /v1/chat/completions` (whole, or `stream: true` as `chat.completion.chunk`
//!   server-sent events ending `data: [DONE]`, with a usage chunk when
//!   `stream_options.include_usage`), `POST /v1/embeddings`, errors as `{"error": {message,
//!   type, param, code}}`, keys as `Authorization: Bearer`.
//! - Anthropic: `POST /v1/messages` (whole, or `stream: true` as `message_start`,
//!   `content_block_start`, `ping`, `content_block_delta`, `content_block_stop`,
//!   `message_delta`, `message_stop` events), which needs `x-api-key` and `anthropic-version`
//!   headers, errors as `{"type": "error", "error": {type, message}}`.
//!
//! Every answer says who gave it: `"<label>: <the last user message>"` (or the last tool
//! result given back). Tests script failures (a status with an optional `Retry-After`, a
//! delay) or tool calls (OpenAI's `tool_calls`, Anthropic's `tool_use` blocks, whole or
//! streamed) for the next requests, and read back what was asked (path, key, body).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

/// What the next request meets.
#[derive(Debug, Clone)]
pub enum Step {
    /// An error answer with this status, and a `Retry-After` of these seconds.
    Fail(u16, Option<u64>),
    /// The answer comes after this long.
    Delay(Duration),
    /// The answer is a call of this tool with these arguments.
    CallTool(String, Value),
}

/// What an answer says.
enum Answer {
    /// Text: the pattern, `{}` standing for the last user message or tool result.
    Text(String),
    Tool(String, Value),
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Asked {
    pub path: String,
    /// The key presented (Bearer or x-api-key).
    pub key: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct State {
    label: String,
    steps: VecDeque<Step>,
    keys: Vec<String>,
    asked: Vec<Asked>,
    /// What every answer says instead of echoing the question.
    answer: Option<String>,
}

/// A running fake; stops with the test process.
#[derive(Clone)]
pub struct FakeLlm {
    /// The base URL (`<url>/v1` is OpenAI's base; `<url>` Anthropic's).
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeLlm {
    /// A fake whose answers start with `label`.
    pub fn start(label: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            label: label.into(),
            ..State::default()
        }));
        let url = crate::fake_server::serve(state.clone(), 4, routes);
        Self { url, state }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("fake llm state"))
    }

    /// The next requests meet these steps, one each, in order.
    pub fn script(&self, steps: &[Step]) {
        self.with(|s| s.steps.extend(steps.iter().cloned()));
    }

    /// Only these keys are taken (none set: any, or none).
    pub fn require_keys(&self, keys: &[&str]) {
        self.with(|s| s.keys = keys.iter().map(|k| (*k).to_owned()).collect());
    }

    /// Every answer from now on says `text`.
    pub fn answer_with(&self, text: &str) {
        self.with(|s| s.answer = Some(text.into()));
    }

    /// Every request received, in order.
    pub fn asked(&self) -> Vec<Asked> {
        self.with(|s| s.asked.clone())
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/chat/completions", web::post().to(openai_chat))
        .route("/v1/embeddings", web::post().to(openai_embeddings))
        .route("/v1/messages", web::post().to(anthropic_messages));
}

type Shared = web::Data<Mutex<State>>;

fn header(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Records the request and takes the next step: the error to answer, if any.
async fn admit(
    state: &Shared,
    req: &HttpRequest,
    key: Option<String>,
    body: &Value,
    anthropic: bool,
) -> Result<Answer, HttpResponse> {
    let (step, label, keys, answer) = {
        let mut s = state.lock().expect("fake llm state");
        s.asked.push(Asked {
            path: req.path().to_owned(),
            key: key.clone(),
            body: body.clone(),
        });
        (
            s.steps.pop_front(),
            s.label.clone(),
            s.keys.clone(),
            s.answer.clone(),
        )
    };
    let error = |status: u16, kind: &str, message: &str| {
        let body = match anthropic {
            true => json!({"type": "error", "error": {"type": kind, "message": message}}),
            false => {
                json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
            }
        };
        let mut resp =
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("a status"));
        resp.json(body)
    };
    if !keys.is_empty() && !key.as_ref().is_some_and(|k| keys.contains(k)) {
        return Err(error(401, "authentication_error", "invalid api key"));
    }
    match step {
        Some(Step::Delay(d)) => tokio::time::sleep(d).await,
        Some(Step::CallTool(name, arguments)) => return Ok(Answer::Tool(name, arguments)),
        Some(Step::Fail(status, retry_after)) => {
            let kind = match status {
                429 => "rate_limit_error",
                400 => "invalid_request_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            let mut resp = error(status, kind, &format!("scripted {status}"));
            if let Some(secs) = retry_after {
                resp.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(secs),
                );
            }
            return Err(resp);
        }
        None => {}
    }
    Ok(Answer::Text(
        answer.unwrap_or_else(|| format!("{label}: {{}}")),
    ))
}

/// The answer's text: the scripted one, or `<label>: <the last user message>`.
fn reply(pattern: &str, messages: &Value) -> String {
    pattern.replace("{}", &last_user(messages))
}

/// The last user message's text, or the last tool result (OpenAI's `tool` message,
/// Anthropic's `tool_result` block).
fn last_user(messages: &Value) -> String {
    messages
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find(|m| m["role"] == "user" || m["role"] == "tool")
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| match p["type"].as_str() {
                    Some("tool_result") => match &p["content"] {
                        Value::String(s) => Some(s.clone()),
                        other => Some(other.to_string()),
                    },
                    _ => p["text"].as_str().map(str::to_owned),
                })
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        })
        .unwrap_or_default()
}

/// A tool call's id, made of its name.
fn call_id(name: &str) -> String {
    format!("call_{name}_{}", rand_suffix())
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn sse(events: Vec<String>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .body(events.concat())
}

async fn openai_chat(state: Shared, req: HttpRequest, body: web::Json<Value>) -> HttpResponse {
    let key =
        header(&req, "authorization").and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned));
    let answer = match admit(&state, &req, key, &body, false).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let model = body["model"].clone();
    let usage = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});
    let text = match answer {
        Answer::Text(pattern) => reply(&pattern, &body["messages"]),
        Answer::Tool(name, arguments) => {
            let call = json!({"id": call_id(&name), "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()}});
            return HttpResponse::Ok().json(json!({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [call]}, "finish_reason": "tool_calls"}],
                "usage": usage,
            }));
        }
    };
    if body["stream"] != true {
        return HttpResponse::Ok().json(json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage,
        }));
    }
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for word in text.split_inclusive(' ') {
        events.push(chunk(json!({"content": word}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    if body["stream_options"]["include_usage"] == true {
        events.push(format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": model, "choices": [], "usage": usage})
        ));
    }
    events.push("data: [DONE]\n\n".into());
    sse(events)
}

async fn openai_embeddings(
    state: Shared,
    req: HttpRequest,
    body: web::Json<Value>,
) -> HttpResponse {
    let key =
        header(&req, "authorization").and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned));
    if let Err(resp) = admit(&state, &req, key, &body, false).await {
        return resp;
    }
    let inputs: Vec<Value> = match &body["input"] {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, _)| json!({"object": "embedding", "index": i, "embedding": [0.6, 0.8, 0.0]}))
        .collect();
    HttpResponse::Ok().json(json!({
        "object": "list", "data": data, "model": body["model"],
        "usage": {"prompt_tokens": 3 * inputs.len(), "total_tokens": 3 * inputs.len()},
    }))
}

async fn anthropic_messages(
    state: Shared,
    req: HttpRequest,
    body: web::Json<Value>,
) -> HttpResponse {
    if header(&req, "anthropic-version").is_none() {
        return HttpResponse::BadRequest().json(json!({"type": "error", "error": {"type": "invalid_request_error", "message": "anthropic-version header is required"}}));
    }
    if body["max_tokens"].as_u64().is_none() {
        return HttpResponse::BadRequest().json(json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}}));
    }
    let key = header(&req, "x-api-key");
    let answer = match admit(&state, &req, key, &body, true).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let model = body["model"].clone();
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let text = match answer {
        Answer::Text(pattern) => reply(&pattern, &body["messages"]),
        Answer::Tool(name, arguments) => {
            let id = call_id(&name);
            if body["stream"] != true {
                return HttpResponse::Ok().json(json!({
                    "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": "Looking it up."},
                        {"type": "tool_use", "id": id, "name": name, "input": arguments}],
                    "stop_reason": "tool_use", "stop_sequence": null,
                    "usage": {"input_tokens": 12, "output_tokens": 6},
                }));
            }
            // The arguments arrive as pieces of JSON, as Anthropic streams them.
            let json_text = arguments.to_string();
            let (head, tail) = json_text.split_at(json_text.len() / 2);
            let mut events = vec![event(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
            )];
            events.push(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
            for piece in [head, tail] {
                events.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": piece}})));
            }
            events.push(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            events.push(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 6}})));
            events.push(event("message_stop", json!({"type": "message_stop"})));
            return sse(events);
        }
    };
    if body["stream"] != true {
        return HttpResponse::Ok().json(json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 6},
        }));
    }
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", json!({"type": "ping"})),
    ];
    for word in text.split_inclusive(' ') {
        events.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}})));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 6}})));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    sse(events)
}
