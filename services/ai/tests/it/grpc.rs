//! gRPC `AiService` as the other services call it: each method for the caller its credential
//! names, with the HTTP API's rules (another tenant's collection is NotFound, bad input
//! InvalidArgument, no credential Unauthenticated, the budget counted).

use serde_json::json;
use tonic::{Code, Request};

use agora_proto::ai::v1::{self as pb, ai_service_client::AiServiceClient};
use agora_shared::testing::{Call, Store};

use crate::support::{Session, platform};

fn authed<T>(message: T, who: &Session) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", who.access).parse().unwrap(),
    );
    r
}

async fn every_method_for_its_caller(store: Store) {
    let p = platform(store, "").await;
    let acme = p.tenant("Acme").await;
    let globex = p.tenant("Globex").await;
    let c = p.collection(&acme, "Handbook").await;
    p.text(
        &acme,
        &c,
        "Returns",
        "# Returns\n\nRefunds are paid within five business days.",
    )
    .await;
    let mut client = AiServiceClient::connect(p.grpc.clone()).await.unwrap();

    let hits = client
        .search(authed(
            pb::SearchRequest {
                collection_ids: vec![c.clone()],
                query: "refunds".into(),
                ..Default::default()
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].heading, "Returns");

    let answer = client
        .answer(authed(
            pb::AnswerRequest {
                collection_ids: vec![c.clone()],
                question: "When are refunds paid?".into(),
                top_k: 0,
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.grounded);
    assert_eq!(
        answer.citations[0].quote,
        "Refunds are paid within five business days."
    );
    assert_eq!(answer.provider, "local");

    let chat = client
        .chat(authed(
            pb::ChatRequest {
                model: "local".into(),
                messages: vec![pb::ChatMessage {
                    role: "user".into(),
                    content: "When are refunds paid?".into(),
                }],
                max_tokens: None,
                collection_ids: vec![c.clone()],
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(chat.content, "Refunds are paid within five business days.");
    assert_eq!(
        (chat.finish_reason.as_str(), chat.provider.as_str()),
        ("stop", "local")
    );
    assert!(chat.prompt_tokens > 0 && chat.completion_tokens > 0);
    assert_eq!(chat.citations.len(), 1);

    // The same answer as it is written.
    let mut deltas = client
        .chat_stream(authed(
            pb::ChatRequest {
                model: "local".into(),
                messages: vec![pb::ChatMessage {
                    role: "user".into(),
                    content: "When are refunds paid?".into(),
                }],
                max_tokens: None,
                collection_ids: vec![c.clone()],
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut written = String::new();
    let mut last = pb::ChatDelta::default();
    while let Some(delta) = deltas.message().await.unwrap() {
        written.push_str(&delta.content);
        last = delta;
    }
    assert_eq!(written, "Refunds are paid within five business days.");
    assert_eq!(
        (last.finish_reason.as_str(), last.provider.as_str()),
        ("stop", "local")
    );
    assert!(last.completion_tokens > 0);

    let embedded = client
        .embed(authed(
            pb::EmbedRequest {
                model: "local".into(),
                inputs: vec!["a refund".into(), "a delivery".into()],
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(embedded.embeddings.len(), 2);
    assert_eq!(embedded.embeddings[0].values.len(), 1024);

    let summary = client
        .summarize(authed(
            pb::SummarizeRequest {
                text: "One fact. Another fact. A third fact.".into(),
                max_sentences: 1,
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.sentences.len(), 1);

    let checked = client
        .fact_check(authed(
            pb::FactCheckRequest {
                claims: vec!["Refunds are paid within ten business days.".into()],
                collection_ids: vec![c.clone()],
                ..Default::default()
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checked.results[0].verdict, "contradicted");
    assert_eq!(checked.results[0].evidence[0].source_index, -1);

    let emotion = client
        .emotion(authed(
            pb::EmotionRequest {
                text: "I am so confused, I don't understand".into(),
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(emotion.dominant, "confusion");
    assert!((emotion.emotions.values().sum::<f32>() - 1.0).abs() < 0.01);

    // Another tenant's collection is not found; bad input is the caller's; no credential, no call.
    let err = client
        .search(authed(
            pb::SearchRequest {
                collection_ids: vec![c.clone()],
                query: "refunds".into(),
                ..Default::default()
            },
            &globex,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = client
        .chat(authed(
            pb::ChatRequest {
                model: "local".into(),
                collection_ids: vec![c.clone()],
                messages: vec![pb::ChatMessage {
                    role: "user".into(),
                    content: "refunds?".into(),
                }],
                max_tokens: None,
            },
            &globex,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = client
        .summarize(authed(
            pb::SummarizeRequest {
                text: String::new(),
                max_sentences: 0,
            },
            &acme,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .chat(authed(
            pb::ChatRequest {
                model: "gpt-9".into(),
                ..Default::default()
            },
            &acme,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .emotion(Request::new(pb::EmotionRequest { text: "hi".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // The budget counts gRPC calls as the HTTP API's.
    let usage = p
        .authed(reqwest::Method::GET, "/api/v1/ai/budget", &acme)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(usage["usage"]["requests"], json!(3), "{usage}");
}

/// Calls whose deadline passes at any point, the writing of their reservation included,
/// give their reservation back: none holds the tenant's budget afterwards.
async fn callers_that_go_away_give_their_reservation_back(store: Store) {
    let p = platform(store, "").await;
    let acme = p.tenant("Acme").await;
    let client = AiServiceClient::connect(p.grpc.clone()).await.unwrap();
    let calls = (0..60u64).map(|i| {
        let mut client = client.clone();
        let mut request = authed(
            pb::ChatRequest {
                model: "local".into(),
                messages: vec![pb::ChatMessage {
                    role: "user".into(),
                    content: format!("How are refunds paid, question {i}?"),
                }],
                max_tokens: Some(200),
                ..Default::default()
            },
            &acme,
        );
        // Deadlines from 1 to 20 ms: the service drops the call wherever it falls.
        request.set_timeout(std::time::Duration::from_millis(1 + i % 20));
        async move { client.chat(request).await }
    });
    let results = futures::future::join_all(calls).await;
    let cut = results
        .iter()
        .filter(
            |r| matches!(r, Err(e) if matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled)),
        )
        .count();
    assert!(cut > 0, "no call was cut short: the test proves nothing");
    agora_testkit::eventually(
        std::time::Duration::from_secs(10),
        "every reservation is given back",
        || async {
            let usage = p
                .authed(reqwest::Method::GET, "/api/v1/ai/budget", &acme)
                .value()
                .await;
            match usage["usage"]["tokens_reserved"] == json!(0) {
                true => Ok(()),
                false => Err(usage.to_string()),
            }
        },
    )
    .await;
}

/// A caller that goes away while a provider answers pays for what it asked: the provider
/// bills the call all the same.
#[actix_web::test]
async fn a_caller_gone_during_a_provider_call_pays_its_reservation() {
    use agora_testkit::fake_llm::{FakeLlm, Step};
    let a = FakeLlm::start("A");
    let settings = format!(
        "providers = {{ a = {{ kind = \"openai\", base_url = \"{}/v1\", timeout_secs = 10 }} }}\n\
         models = {{ gpt = {{ deployments = [{{ provider = \"a\", model = \"gpt-a\" }}] }} }}\n",
        a.url
    );
    let p = platform(agora_shared::testing::TestDb::sqlite, &settings).await;
    let acme = p.tenant("Acme").await;
    let mut client = AiServiceClient::connect(p.grpc.clone()).await.unwrap();
    a.script(&[Step::Delay(std::time::Duration::from_millis(1500))]);
    let mut request = authed(
        pb::ChatRequest {
            model: "gpt".into(),
            messages: vec![pb::ChatMessage {
                role: "user".into(),
                content: "Write me a long answer".into(),
            }],
            max_tokens: Some(300),
            ..Default::default()
        },
        &acme,
    );
    request.set_timeout(std::time::Duration::from_millis(300));
    let err = client.chat(request).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
    agora_testkit::eventually(
        std::time::Duration::from_secs(10),
        "the call is settled at its reservation",
        || async {
            let usage = p
                .authed(reqwest::Method::GET, "/api/v1/ai/budget", &acme)
                .value()
                .await;
            let used = usage["usage"]["tokens_used"].as_i64().unwrap_or(0);
            match usage["usage"]["tokens_reserved"] == json!(0) && used > 300 {
                true => Ok(()),
                false => Err(usage.to_string()),
            }
        },
    )
    .await;
}

crate::on_every_store!(
    every_method_for_its_caller,
    callers_that_go_away_give_their_reservation_back
);
