//! The OpenAI-compatible API as OpenAI documents it: the model list, chat completions
//! (whole and streamed as server-sent events), embeddings (floats and base64), and errors
//! carrying OpenAI's `error` object. The official Python SDK is run against it too
//! (scripts/ci/openai_client.py, in CI).

use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::{Call, Store};

use crate::support::platform;

const BASE: &str = "/api/v1/ai/openai/v1";

async fn an_openai_client_talks_to_the_local_model(store: Store) {
    let p = platform(store, "").await;
    let admin = p.tenant("Acme").await;
    let c = p.collection(&admin, "Handbook").await;
    p.text(
        &admin,
        &c,
        "Returns",
        "Refunds are paid within five business days.",
    )
    .await;

    let models = p
        .authed(Method::GET, &format!("{BASE}/models"), &admin)
        .value()
        .await;
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "local");
    assert_eq!(models["data"][0]["object"], "model");
    let one = p
        .authed(Method::GET, &format!("{BASE}/models/local"), &admin)
        .value()
        .await;
    assert_eq!(one["id"], "local");

    // A chat, whole.
    let question = json!({"model": "local", "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": [{"type": "text", "text": "When are refunds paid?"}]},
    ], "temperature": 0.2, "user": "u-1"});
    let (status, chat) = p
        .post_as(
            &admin,
            &format!("{BASE}/chat/completions"),
            question.clone(),
        )
        .await;
    assert_eq!(status, 200, "{chat}");
    assert_eq!(chat["object"], "chat.completion");
    assert!(chat["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(chat["model"], "local");
    assert_eq!(chat["provider"], "local");
    let choice = &chat["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        "Refunds are paid within five business days."
    );
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &chat["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    // The same, streamed: chunks as server-sent events, the same content, then [DONE].
    let mut streamed = question.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let resp = p
        .authed(Method::POST, &format!("{BASE}/chat/completions"), &admin)
        .json(&streamed)
        .call()
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = resp.text().await.unwrap();
    let events: Vec<&str> = body
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").expect("data lines only"))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Refunds are paid within five business days.");
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("stop")]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], chat["usage"]);

    // max_tokens cuts the answer and says so.
    let mut short = question.clone();
    short["max_tokens"] = json!(3);
    let (_, cut) = p
        .post_as(&admin, &format!("{BASE}/chat/completions"), short)
        .await;
    assert_eq!(cut["choices"][0]["finish_reason"], "length");
    assert!(
        cut["usage"]["completion_tokens"].as_u64().unwrap() <= 3,
        "{cut}"
    );

    // Embeddings: floats, base64 of the same floats, and fewer dimensions.
    let (status, floats) = p
        .post_as(
            &admin,
            &format!("{BASE}/embeddings"),
            json!({"model": "local", "input": ["refunds", "delivery"]}),
        )
        .await;
    assert_eq!(status, 200, "{floats}");
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["data"][1]["index"], 1);
    let vector: Vec<f32> = floats["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(vector.len(), 1024);
    let (_, encoded) = p
        .post_as(
            &admin,
            &format!("{BASE}/embeddings"),
            json!({"model": "local", "input": "refunds", "encoding_format": "base64"}),
        )
        .await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(decoded, vector);
    let (_, small) = p
        .post_as(
            &admin,
            &format!("{BASE}/embeddings"),
            json!({"model": "local", "input": "refunds", "dimensions": 64}),
        )
        .await;
    let small: Vec<f64> = small["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(small.len(), 64);
    assert!((small.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-4);

    // Errors: problem documents carrying OpenAI's error object.
    for (path, body, status, param, code) in [
        (
            "chat/completions",
            json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}),
            404,
            Value::Null,
            "model_not_found",
        ),
        (
            "chat/completions",
            json!({"model": "local", "messages": []}),
            422,
            json!("messages"),
            "validation_failed",
        ),
        (
            "chat/completions",
            json!({"model": "local", "messages": [{"role": "robot", "content": "hi"}]}),
            422,
            json!("messages[0].role"),
            "validation_failed",
        ),
        (
            "chat/completions",
            json!({"model": "local", "n": 2, "messages": [{"role": "user", "content": "hi"}]}),
            422,
            json!("n"),
            "validation_failed",
        ),
        (
            // Built to wrap the budget's arithmetic.
            "chat/completions",
            json!({"model": "local", "max_tokens": 9_223_372_036_854_775_808u64, "messages": [{"role": "user", "content": "hi"}]}),
            422,
            json!("max_tokens"),
            "validation_failed",
        ),
        (
            "chat/completions",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            422,
            json!("model"),
            "validation_failed",
        ),
        (
            "embeddings",
            json!({"model": "local", "input": [1, 2, 3]}),
            422,
            json!("input"),
            "validation_failed",
        ),
        (
            "embeddings",
            json!({"model": "local", "input": ""}),
            422,
            json!("input[0]"),
            "validation_failed",
        ),
        (
            "embeddings",
            json!({"model": "local", "input": "x", "dimensions": 2000}),
            422,
            json!("dimensions"),
            "validation_failed",
        ),
        (
            "embeddings",
            json!({"model": "nope", "input": "x"}),
            404,
            Value::Null,
            "model_not_found",
        ),
    ] {
        let resp = p
            .authed(Method::POST, &format!("{BASE}/{path}"), &admin)
            .json(&body)
            .call()
            .await;
        assert_eq!(resp.status(), status, "{body}");
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["status"], status);
        assert_eq!(problem["error"]["param"], param, "{problem}");
        assert_eq!(problem["error"]["code"], code, "{problem}");
        assert!(
            problem["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let resp = p
        .authed(Method::GET, &format!("{BASE}/models/gpt-9"), &admin)
        .call()
        .await;
    assert_eq!(resp.status(), 404);
    // Without a credential, the gateway refuses.
    let resp = p.req(Method::GET, &format!("{BASE}/models")).call().await;
    assert_eq!(resp.status(), 401);
}

crate::on_every_store!(an_openai_client_talks_to_the_local_model);
