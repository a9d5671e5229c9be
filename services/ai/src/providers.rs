//! Calling model providers: OpenAI's chat completions and embeddings at any base URL, and
//! Anthropic's Messages API translated to and from OpenAI's shapes (requests, answers and
//! streams), so that the router and every client see one format. Streams are read as
//! server-sent events and passed on as each event arrives. Errors say whether another try
//! may succeed (429, 5xx, timeouts), whether the deployment itself is wrong (401, 403, 404),
//! or whether the request is (400, 422).

use std::{pin::Pin, time::Duration};

use futures::{Stream, StreamExt};
use serde_json::{Value, json};

use crate::config::{ProviderConfig, ProviderKind};

/// Anthropic's API version this client speaks.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Largest error body read, and largest server-sent event held.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// Chunks of an OpenAI-style stream (`chat.completion.chunk` objects).
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Value, CallError>> + Send>>;

/// A provider's answer.
pub enum Reply {
    /// A whole `chat.completion` or embeddings list.
    Whole(Value),
    Stream(ChunkStream),
}

/// What a failed call tells the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Another try may succeed: 408, 429, 5xx, a timeout, a refused connection.
    Retryable,
    /// This deployment cannot serve (a wrong key, an unknown model): try the next.
    Deployment,
    /// The request itself is wrong: no deployment will take it.
    Request,
}

#[derive(Debug, Clone)]
pub struct CallError {
    pub failure: Failure,
    pub status: Option<u16>,
    /// What the provider said to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// The provider's message (never a key or a prompt).
    pub message: String,
}

impl CallError {
    fn new(failure: Failure, status: Option<u16>, message: impl Into<String>) -> Self {
        Self {
            failure,
            status,
            retry_after: None,
            message: message.into(),
        }
    }

    fn transport(err: &reqwest::Error) -> Self {
        let message = if err.is_timeout() {
            "timed out".to_owned()
        } else if err.is_connect() {
            "connection refused or failed".to_owned()
        } else {
            "the connection failed".to_owned()
        };
        Self::new(Failure::Retryable, None, message)
    }

    fn timeout() -> Self {
        Self::new(Failure::Retryable, None, "timed out")
    }
}

/// What kind of failure an HTTP status is.
fn classify(status: u16) -> Failure {
    match status {
        408 | 409 | 429 | 500..=599 => Failure::Retryable,
        // The request itself: too large, or refused as such.
        400 | 413 | 422 => Failure::Request,
        // The deployment's account, key or model (401, 402, 403, 404...): the next one.
        _ => Failure::Deployment,
    }
}

/// The shared client: no overall timeout (each call sets its own), no redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

fn url(provider: &ProviderConfig, path: &str) -> String {
    format!("{}{path}", provider.base_url.trim_end_matches('/'))
}

fn authorize(
    req: reqwest::RequestBuilder,
    provider: &ProviderConfig,
    key: Option<&str>,
) -> reqwest::RequestBuilder {
    match (provider.kind, key) {
        (_, None) => req,
        (ProviderKind::Openai, Some(k)) => req.bearer_auth(k),
        (ProviderKind::Anthropic, Some(k)) => req.header("x-api-key", k),
    }
}

/// Sends `req`, waiting at most the provider's timeout for the answer's head; a status other
/// than 2xx is the error it is.
async fn send(
    req: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<reqwest::Response, CallError> {
    let resp = tokio::time::timeout(timeout, req.send())
        .await
        .map_err(|_| CallError::timeout())?
        .map_err(|e| CallError::transport(&e))?;
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)));
    let body = tokio::time::timeout(timeout, read_capped(resp))
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP {status}"));
    Err(CallError {
        failure: classify(status),
        status: Some(status),
        retry_after,
        message: message.chars().take(300).collect(),
    })
}

async fn read_capped(resp: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_EVENT_BYTES {
            break;
        }
    }
    body
}

/// Largest whole answer read from a provider.
const MAX_ANSWER_BYTES: usize = 32 << 20;

/// Largest stream relayed from a provider, in all.
const MAX_STREAM_BYTES: usize = 64 << 20;

async fn whole(resp: reqwest::Response, timeout: Duration) -> Result<Value, CallError> {
    let read = async {
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| CallError::transport(&e))?;
            body.extend_from_slice(&chunk);
            if body.len() > MAX_ANSWER_BYTES {
                return Err(CallError::new(
                    Failure::Retryable,
                    None,
                    "the answer is too large",
                ));
            }
        }
        Ok(body)
    };
    let body = tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| CallError::timeout())??;
    serde_json::from_slice(&body).map_err(|_| {
        CallError::new(
            Failure::Retryable,
            None,
            "the provider answered something not JSON",
        )
    })
}

/// The `data` of each server-sent event of `resp`, as it arrives; `idle` bounds the wait for
/// each, and the whole stream is at most `MAX_STREAM_BYTES`.
fn events(
    resp: reqwest::Response,
    idle: Duration,
) -> Pin<Box<dyn Stream<Item = Result<String, CallError>> + Send>> {
    struct Read<S> {
        bytes: S,
        buf: Vec<u8>,
        /// Where the next look for an event's end starts (a separator may straddle chunks).
        scanned: usize,
        total: usize,
        done: bool,
    }
    let read = Read {
        bytes: resp.bytes_stream(),
        buf: Vec::new(),
        scanned: 0,
        total: 0,
        done: false,
    };
    Box::pin(futures::stream::unfold(read, move |mut r| async move {
        if r.done {
            return None;
        }
        loop {
            if let Some((end, next)) = find_event_end(&r.buf, r.scanned) {
                r.scanned = 0;
                let raw: Vec<u8> = r.buf.drain(..next).collect();
                let text = String::from_utf8_lossy(&raw[..end]);
                let data: Vec<&str> = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if data.is_empty() {
                    continue;
                }
                let data = data.join("\n");
                return Some((Ok(data), r));
            }
            r.scanned = r.buf.len().saturating_sub(3);
            let failed = match tokio::time::timeout(idle, r.bytes.next()).await {
                Err(_) => CallError::timeout(),
                Ok(None) => return None,
                Ok(Some(Err(e))) => CallError::transport(&e),
                Ok(Some(Ok(chunk))) => {
                    r.buf.extend_from_slice(&chunk);
                    r.total += chunk.len();
                    if r.buf.len() <= MAX_EVENT_BYTES && r.total <= MAX_STREAM_BYTES {
                        continue;
                    }
                    CallError::new(Failure::Retryable, None, "the stream is too large")
                }
            };
            r.done = true;
            return Some((Err(failed), r));
        }
    }))
}

/// Where the first event of `buf` ends, looking from `from`: (its end, the end of its blank
/// line).
fn find_event_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    for i in from..buf.len() {
        if buf[i..].starts_with(b"\n\n") {
            return Some((i, i + 2));
        }
        if buf[i..].starts_with(b"\r\n\r\n") {
            return Some((i, i + 4));
        }
    }
    None
}

/// A chat completion, whole or streamed, from `model` of `provider`. `body` is an OpenAI chat
/// request; its `model` is replaced.
pub async fn chat(
    client: &reqwest::Client,
    provider: &ProviderConfig,
    key: Option<&str>,
    model: &str,
    body: &Value,
    stream: bool,
    default_max_tokens: u64,
) -> Result<Reply, CallError> {
    let timeout = Duration::from_secs(provider.timeout_secs);
    match provider.kind {
        ProviderKind::Openai => {
            let mut body = body.clone();
            body["model"] = json!(model);
            if stream {
                body["stream"] = json!(true);
                // Usage is counted against budgets: always asked for.
                body["stream_options"] = json!({"include_usage": true});
            }
            let req = authorize(
                client.post(url(provider, "/chat/completions")),
                provider,
                key,
            )
            .json(&body);
            let resp = send(req, timeout).await?;
            if !stream {
                return Ok(Reply::Whole(whole(resp, timeout).await?));
            }
            let chunks = events(resp, timeout)
                .take_while(|e| std::future::ready(!matches!(e, Ok(d) if d.trim() == "[DONE]")))
                .map(|e| {
                    e.and_then(|data| {
                        serde_json::from_str(&data).map_err(|_| {
                            CallError::new(
                                Failure::Retryable,
                                None,
                                "the provider sent an event not JSON",
                            )
                        })
                    })
                });
            Ok(Reply::Stream(Box::pin(chunks)))
        }
        ProviderKind::Anthropic => {
            let request = to_anthropic(body, model, stream, default_max_tokens);
            let req = authorize(client.post(url(provider, "/v1/messages")), provider, key)
                .header("anthropic-version", ANTHROPIC_VERSION)
                .json(&request);
            let resp = send(req, timeout).await?;
            if !stream {
                return Ok(Reply::Whole(from_anthropic(&whole(resp, timeout).await?)));
            }
            Ok(Reply::Stream(anthropic_stream(events(resp, timeout))))
        }
    }
}

/// Embeddings from an OpenAI-compatible provider.
pub async fn embeddings(
    client: &reqwest::Client,
    provider: &ProviderConfig,
    key: Option<&str>,
    model: &str,
    body: &Value,
) -> Result<Value, CallError> {
    if provider.kind != ProviderKind::Openai {
        return Err(CallError::new(
            Failure::Deployment,
            None,
            "this provider has no embeddings API",
        ));
    }
    let timeout = Duration::from_secs(provider.timeout_secs);
    let mut body = body.clone();
    body["model"] = json!(model);
    let req = authorize(client.post(url(provider, "/embeddings")), provider, key).json(&body);
    whole(send(req, timeout).await?, timeout).await
}

/// The text of an OpenAI message's content (a string, or text parts).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// An OpenAI message's content as Anthropic's content blocks: its text, an assistant's
/// tool calls as `tool_use` blocks, a tool's answer as a `tool_result` block.
fn blocks_of(m: &Value) -> Vec<Value> {
    let text = text_of(&m["content"]);
    if m["role"] == "tool" {
        return vec![json!({"type": "tool_result",
            "tool_use_id": m["tool_call_id"].as_str().unwrap_or_default(), "content": text})];
    }
    let mut blocks = Vec::new();
    // Anthropic refuses empty text blocks.
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for call in m["tool_calls"].as_array().into_iter().flatten() {
        let input = match &call["function"]["arguments"] {
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(v @ Value::Object(_)) => v,
                _ => json!({}),
            },
            v @ Value::Object(_) => v.clone(),
            _ => json!({}),
        };
        blocks.push(json!({"type": "tool_use", "id": call["id"],
            "name": call["function"]["name"], "input": input}));
    }
    blocks
}

/// OpenAI's function tools and tool choice as Anthropic's.
fn tools_to_anthropic(body: &Value, out: &mut Value) {
    let tools: Vec<Value> = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["type"] == "function")
        .map(|t| {
            let f = &t["function"];
            let mut tool = json!({"name": f["name"], "input_schema": match &f["parameters"] {
                Value::Object(_) => f["parameters"].clone(),
                _ => json!({"type": "object", "properties": {}}),
            }});
            if f["description"].is_string() {
                tool["description"] = f["description"].clone();
            }
            tool
        })
        .collect();
    if tools.is_empty() {
        return;
    }
    out["tools"] = json!(tools);
    let mut choice = match &body["tool_choice"] {
        Value::String(s) if s == "required" => json!({"type": "any"}),
        Value::String(s) if s == "none" => json!({"type": "none"}),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            json!({"type": "tool", "name": body["tool_choice"]["function"]["name"]})
        }
        _ => json!({"type": "auto"}),
    };
    if body["parallel_tool_calls"] == false && choice["type"] != "none" {
        choice["disable_parallel_tool_use"] = json!(true);
    }
    out["tool_choice"] = choice;
}

/// An OpenAI chat request as Anthropic's Messages API takes it: system and developer
/// messages become `system`; the others alternate user and assistant (neighbours of one role
/// joined; tool answers are the user's), tool calls and answers as their blocks, tools and
/// the tool choice as Anthropic's.
fn to_anthropic(body: &Value, model: &str, stream: bool, default_max_tokens: u64) -> Value {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for m in body["messages"].as_array().into_iter().flatten() {
        let role = match m["role"].as_str() {
            Some("system" | "developer") => {
                system.push(text_of(&m["content"]));
                continue;
            }
            Some("assistant") => "assistant",
            _ => "user",
        };
        let plain = m["role"] != "tool" && m["tool_calls"].as_array().is_none_or(Vec::is_empty);
        let content = match plain {
            // Anthropic refuses empty content: an empty message says nothing anyway.
            true => match text_of(&m["content"]) {
                text if text.is_empty() => continue,
                text => json!(text),
            },
            false => json!(blocks_of(m)),
        };
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                last["content"] = match (&last["content"], &content) {
                    (Value::String(a), Value::String(b)) => json!(format!("{a}\n\n{b}")),
                    _ => {
                        let mut joined = match &last["content"] {
                            Value::String(_) => blocks_of(last),
                            Value::Array(b) => b.clone(),
                            _ => Vec::new(),
                        };
                        match &content {
                            Value::Array(b) => joined.extend(b.iter().cloned()),
                            _ => {
                                joined.extend(blocks_of(&json!({"role": role, "content": content})))
                            }
                        }
                        json!(joined)
                    }
                };
            }
            _ => messages.push(json!({"role": role, "content": content})),
        }
    }
    // Anthropic's conversations start with the user (a history cut to its latest messages
    // may start with an answer).
    while messages.first().is_some_and(|m| m["role"] == "assistant") {
        messages.remove(0);
    }
    let max_tokens = body["max_completion_tokens"]
        .as_u64()
        .or(body["max_tokens"].as_u64())
        .unwrap_or(default_max_tokens);
    let mut out = json!({"model": model, "messages": messages, "max_tokens": max_tokens});
    if !system.is_empty() {
        out["system"] = json!(system.join("\n\n"));
    }
    for field in ["temperature", "top_p"] {
        if body[field].is_number() {
            out[field] = body[field].clone();
        }
    }
    match &body["stop"] {
        Value::String(s) => out["stop_sequences"] = json!([s]),
        Value::Array(a) => out["stop_sequences"] = json!(a),
        _ => {}
    }
    tools_to_anthropic(body, &mut out);
    if stream {
        out["stream"] = json!(true);
    }
    out
}

fn finish_reason(stop: &Value) -> &'static str {
    match stop.as_str() {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        _ => "stop",
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An Anthropic message as an OpenAI chat completion (its `tool_use` blocks as tool calls).
fn from_anthropic(message: &Value) -> Value {
    let blocks = message["content"].as_array().cloned().unwrap_or_default();
    let text: String = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    let calls: Vec<Value> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| {
            json!({"id": b["id"], "type": "function", "function": {"name": b["name"],
                "arguments": b["input"].to_string()}})
        })
        .collect();
    let mut reply = json!({"role": "assistant", "content": text, "refusal": null});
    if !calls.is_empty() {
        if text.is_empty() {
            reply["content"] = Value::Null;
        }
        reply["tool_calls"] = json!(calls);
    }
    let (input, output) = (
        message["usage"]["input_tokens"].as_u64().unwrap_or(0),
        message["usage"]["output_tokens"].as_u64().unwrap_or(0),
    );
    json!({
        "id": format!("chatcmpl-{}", message["id"].as_str().unwrap_or_default()),
        "object": "chat.completion",
        "created": now(),
        "model": message["model"],
        "choices": [{
            "index": 0,
            "message": reply,
            "logprobs": null,
            "finish_reason": finish_reason(&message["stop_reason"]),
        }],
        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
    })
}

/// Anthropic's stream events as OpenAI chunks: the role first, text deltas, the finish
/// reason, then a usage chunk.
fn anthropic_stream(
    events: Pin<Box<dyn Stream<Item = Result<String, CallError>> + Send>>,
) -> ChunkStream {
    struct Seen {
        id: String,
        model: Value,
        input: u64,
        output: u64,
        /// Anthropic's block index of each tool call, in the order OpenAI numbers them.
        tools: Vec<u64>,
    }
    let seen = Seen {
        id: String::new(),
        model: Value::Null,
        input: 0,
        output: 0,
        tools: Vec::new(),
    };
    let created = now();
    Box::pin(
        events
            .scan(seen, move |seen, event| {
                let data = match event {
                    Ok(d) => d,
                    Err(e) => return std::future::ready(Some(vec![Err(e)])),
                };
                let Ok(event) = serde_json::from_str::<Value>(&data) else {
                    return std::future::ready(Some(vec![Err(CallError::new(
                        Failure::Retryable,
                        None,
                        "the provider sent an event not JSON",
                    ))]));
                };
                let chunk = |seen: &Seen, delta: Value, finish: Value| {
                    json!({
                        "id": format!("chatcmpl-{}", seen.id), "object": "chat.completion.chunk",
                        "created": created, "model": seen.model,
                        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
                    })
                };
                let out = match event["type"].as_str() {
                    Some("message_start") => {
                        let m = &event["message"];
                        seen.id = m["id"].as_str().unwrap_or_default().to_owned();
                        seen.model = m["model"].clone();
                        seen.input = m["usage"]["input_tokens"].as_u64().unwrap_or(0);
                        vec![Ok(chunk(seen, json!({"role": "assistant", "content": ""}), Value::Null))]
                    }
                    Some("content_block_delta") if event["delta"]["type"] == "text_delta" => {
                        vec![Ok(chunk(seen, json!({"content": event["delta"]["text"]}), Value::Null))]
                    }
                    Some("content_block_start") if event["content_block"]["type"] == "tool_use" => {
                        let block = &event["content_block"];
                        seen.tools.push(event["index"].as_u64().unwrap_or_default());
                        let call = json!({"index": seen.tools.len() - 1, "id": block["id"],
                            "type": "function", "function": {"name": block["name"], "arguments": ""}});
                        vec![Ok(chunk(seen, json!({"tool_calls": [call]}), Value::Null))]
                    }
                    Some("content_block_delta") if event["delta"]["type"] == "input_json_delta" => {
                        let block = event["index"].as_u64().unwrap_or_default();
                        match seen.tools.iter().position(|b| *b == block) {
                            Some(i) => {
                                let call = json!({"index": i, "function": {"arguments": event["delta"]["partial_json"]}});
                                vec![Ok(chunk(seen, json!({"tool_calls": [call]}), Value::Null))]
                            }
                            None => vec![],
                        }
                    }
                    Some("message_delta") => {
                        seen.output = event["usage"]["output_tokens"].as_u64().unwrap_or(seen.output);
                        let finish = finish_reason(&event["delta"]["stop_reason"]);
                        vec![Ok(chunk(seen, json!({}), json!(finish)))]
                    }
                    Some("message_stop") => {
                        let mut last = chunk(seen, json!({}), Value::Null);
                        last["choices"] = json!([]);
                        last["usage"] = json!({
                            "prompt_tokens": seen.input, "completion_tokens": seen.output,
                            "total_tokens": seen.input + seen.output,
                        });
                        vec![Ok(last)]
                    }
                    Some("error") => {
                        let kind = event["error"]["type"].as_str().unwrap_or_default();
                        let failure = match kind {
                            "overloaded_error" | "api_error" | "rate_limit_error" => Failure::Retryable,
                            _ => Failure::Request,
                        };
                        let message = event["error"]["message"].as_str().unwrap_or(kind);
                        vec![Err(CallError::new(failure, None, message.chars().take(300).collect::<String>()))]
                    }
                    _ => vec![],
                };
                std::future::ready(Some(out))
            })
            .flat_map(futures::stream::iter),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_requests_become_anthropic_ones() {
        let body = json!({"model": "x", "max_tokens": 50, "stop": "END", "temperature": 0.3, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": [{"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"},
        ]});
        let out = to_anthropic(&body, "claude-x", true, 1024);
        assert_eq!(out["system"], "Be brief.");
        assert_eq!(out["messages"].as_array().unwrap().len(), 3);
        assert_eq!(out["messages"][0]["content"], "Hi\n\nthere");
        assert_eq!(out["max_tokens"], 50);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["stream"], true);
        assert_eq!(find_event_end(b"data: a\r\n\r\nx", 0), Some((7, 11)));

        // Tool calls and their answers become Anthropic's blocks; a tool's answer and the
        // user's next words are one user turn.
        let body = json!({"tool_choice": "required", "parallel_tool_calls": false,
        "tools": [{"type": "function", "function": {"name": "f", "description": "F.",
            "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}],
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
            {"role": "user", "content": "thanks"},
        ]});
        let out = to_anthropic(&body, "claude-x", false, 1024);
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "42"},
                    {"type": "text", "text": "thanks"}]},
            ])
        );
        assert_eq!(
            out["tools"],
            json!([{"name": "f", "description": "F.", "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}])
        );
        assert_eq!(
            out["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        let back = from_anthropic(
            &json!({"id": "m", "model": "claude-x", "stop_reason": "tool_use",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 2}}],
            "usage": {"input_tokens": 3, "output_tokens": 4}}),
        );
        let message = &back["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        assert_eq!(
            message["tool_calls"][0]["function"]["arguments"],
            "{\"a\":2}"
        );
        assert_eq!(back["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(find_event_end(b"data: a\n\nx", 6), Some((7, 9)));
    }
}
