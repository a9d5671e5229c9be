//! gRPC `agora.ai.v1.AiService`, for the other services. Each call is answered by the same
//! handler as its HTTP route (the same validation, rights, limits and budget), for the
//! caller its credential names, and mapped to the service's messages.

use std::{collections::HashMap, sync::Arc};

use actix_web::{HttpResponse, web};
use futures::StreamExt;
use serde_json::{Value, json};
use tonic::{Request, Response, Status, service::Routes};

use agora_proto::ai::v1::{
    self as pb,
    ai_service_server::{AiService, AiServiceServer},
};
use agora_shared::{
    AppError, grpc,
    http::{Authenticator, Caller, ValidJson},
};

use crate::{
    AiState,
    http::{answers, texts},
    openai,
};

pub struct Grpc {
    state: web::Data<AiState>,
    auth: Authenticator,
}

/// gRPC routes of the ai service, with `grpc.health.v1`.
pub fn routes(state: Arc<AiState>, auth: Authenticator) -> Routes {
    let (reporter, health) = grpc::health();
    tokio::spawn(async move { reporter.set_serving::<AiServiceServer<Grpc>>().await });
    Routes::new(health).add_service(AiServiceServer::new(Grpc {
        state: web::Data::from(state),
        auth,
    }))
}

/// The JSON body of a handler's answer (a handler's error is the call's). Handlers answer
/// these routes with whole JSON bodies, read here without waiting.
fn body(answer: Result<HttpResponse, AppError>) -> Result<Value, Status> {
    use actix_web::body::MessageBody;
    let bytes = answer?
        .into_body()
        .try_into_bytes()
        .map_err(|_| Status::internal("the answer is not a whole body"))?;
    serde_json::from_slice(&bytes).map_err(|_| Status::internal("the answer is not JSON"))
}

/// A JSON body as a handler's typed input (a wrong field is the caller's error).
fn input<T: serde::de::DeserializeOwned>(value: Value) -> Result<ValidJson<T>, Status> {
    let bytes = serde_json::to_vec(&value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(ValidJson(agora_shared::http::json::parse(&bytes)?))
}

/// The items of a JSON array (none for anything else).
fn each(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn citations(v: &Value) -> Vec<pb::Citation> {
    each(v)
        .map(|c| pb::Citation {
            document_id: text(&c["document_id"]),
            chunk_id: text(&c["chunk_id"]),
            title: text(&c["title"]),
            quote: text(&c["quote"]),
        })
        .collect()
}

/// A `ChatRequest` as the OpenAI chat request the HTTP API takes.
fn chat_request(r: pb::ChatRequest) -> Value {
    let mut chat = json!({
        "model": r.model,
        "messages": r.messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect::<Vec<_>>(),
    });
    if let Some(max) = r.max_tokens {
        chat["max_tokens"] = json!(max);
    }
    if !r.collection_ids.is_empty() {
        chat["collection_ids"] = json!(r.collection_ids);
    }
    chat
}

impl Grpc {
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        grpc::caller(&self.auth, request).await
    }
}

#[tonic::async_trait]
impl AiService for Grpc {
    async fn chat(
        &self,
        request: Request<pb::ChatRequest>,
    ) -> Result<Response<pb::ChatResponse>, Status> {
        let caller = self.caller(&request).await?;
        let chat = chat_request(request.into_inner());
        let bytes = web::Bytes::from(chat.to_string());
        let answer = openai::chat(self.state.clone(), caller, bytes)
            .await
            .map_err(|e| e.0);
        let v = body(answer)?;
        let choice = &v["choices"][0];
        Ok(Response::new(pb::ChatResponse {
            content: text(&choice["message"]["content"]),
            finish_reason: text(&choice["finish_reason"]),
            provider: text(&v["provider"]),
            model: text(&v["model"]),
            prompt_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
            completion_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
            citations: citations(&v["citations"]),
        }))
    }

    type ChatStreamStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::ChatDelta, Status>> + Send>>;

    async fn chat_stream(
        &self,
        request: Request<pb::ChatRequest>,
    ) -> Result<Response<Self::ChatStreamStream>, Status> {
        let caller = self.caller(&request).await?;
        let mut chat = chat_request(request.into_inner());
        chat["stream"] = json!(true);
        chat["stream_options"] = json!({"include_usage": true});
        let opening = openai::open(&self.state, &caller, chat.to_string().as_bytes())
            .await
            .map_err(|e| Status::from(e.0))?;
        let deltas: Self::ChatStreamStream = match opening.opened {
            openai::Opened::Local {
                content,
                finish,
                usage,
                ..
            } => {
                let mut deltas: Vec<Result<pb::ChatDelta, Status>> = openai::pieces(&content)
                    .into_iter()
                    .map(|piece| {
                        Ok(pb::ChatDelta {
                            content: piece,
                            ..Default::default()
                        })
                    })
                    .collect();
                deltas.push(Ok(pb::ChatDelta {
                    finish_reason: finish.into(),
                    prompt_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
                    completion_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
                    provider: crate::local::PROVIDER.into(),
                    ..Default::default()
                }));
                Box::pin(futures::stream::iter(deltas))
            }
            openai::Opened::Whole(v) => {
                let choice = &v["choices"][0];
                Box::pin(futures::stream::iter([Ok(pb::ChatDelta {
                    content: text(&choice["message"]["content"]),
                    finish_reason: text(&choice["finish_reason"]),
                    prompt_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
                    completion_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
                    provider: text(&v["provider"]),
                })]))
            }
            openai::Opened::Stream {
                chunks,
                meter,
                provider,
            } => Box::pin(openai::metered(chunks, meter).map(move |item| {
                let chunk =
                    item.map_err(|()| Status::unavailable("the provider's stream failed"))?;
                let choice = &chunk["choices"][0];
                Ok(pb::ChatDelta {
                    content: text(&choice["delta"]["content"]),
                    finish_reason: text(&choice["finish_reason"]),
                    prompt_tokens: chunk["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
                    completion_tokens: chunk["usage"]["completion_tokens"].as_u64().unwrap_or(0),
                    provider: provider.clone(),
                })
            })),
        };
        Ok(Response::new(deltas))
    }

    async fn embed(
        &self,
        request: Request<pb::EmbedRequest>,
    ) -> Result<Response<pb::EmbedResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let bytes = web::Bytes::from(
            json!({"model": r.model, "input": r.inputs, "encoding_format": "float"}).to_string(),
        );
        let answer = openai::embeddings(self.state.clone(), caller, bytes)
            .await
            .map_err(|e| e.0);
        let v = body(answer)?;
        let embeddings = each(&v["data"])
            .map(|d| pb::Embedding {
                values: each(&d["embedding"])
                    .map(|x| x.as_f64().unwrap_or(0.0) as f32)
                    .collect(),
            })
            .collect();
        Ok(Response::new(pb::EmbedResponse {
            embeddings,
            model: text(&v["model"]),
            provider: text(&v["provider"]),
            prompt_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        }))
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let mut q = json!({"collection_ids": r.collection_ids, "query": r.query});
        if !r.mode.is_empty() {
            q["mode"] = json!(r.mode);
        }
        if r.limit > 0 {
            q["limit"] = json!(r.limit);
        }
        if !r.filter_json.is_empty() {
            let filter: Value = serde_json::from_str(&r.filter_json)
                .map_err(|_| AppError::invalid("filter_json", "must be a JSON object"))?;
            q["filter"] = filter;
        }
        let v = body(answers::search_route(self.state.clone(), caller, input(q)?).await)?;
        let hits = each(&v["items"])
            .map(|h| pb::SearchHit {
                document_id: text(&h["document_id"]),
                chunk_id: text(&h["chunk_id"]),
                collection_id: text(&h["collection_id"]),
                title: text(&h["title"]),
                heading: text(&h["heading"]),
                text: text(&h["text"]),
                score: h["score"].as_f64().unwrap_or(0.0),
            })
            .collect();
        Ok(Response::new(pb::SearchResponse { hits }))
    }

    async fn answer(
        &self,
        request: Request<pb::AnswerRequest>,
    ) -> Result<Response<pb::AnswerResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let mut q = json!({"collection_ids": r.collection_ids, "question": r.question});
        if r.top_k > 0 {
            q["top_k"] = json!(r.top_k);
        }
        let v = body(answers::answer_route(self.state.clone(), caller, input(q)?).await)?;
        Ok(Response::new(pb::AnswerResponse {
            answer: text(&v["answer"]),
            citations: citations(&v["citations"]),
            grounded: v["grounded"].as_bool().unwrap_or(false),
            provider: text(&v["provider"]),
            model: text(&v["model"]),
        }))
    }

    async fn summarize(
        &self,
        request: Request<pb::SummarizeRequest>,
    ) -> Result<Response<pb::SummarizeResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let mut q = json!({"text": r.text});
        if r.max_sentences > 0 {
            q["max_sentences"] = json!(r.max_sentences);
        }
        let v = body(texts::summarize(self.state.clone(), caller, input(q)?).await)?;
        Ok(Response::new(pb::SummarizeResponse {
            summary: text(&v["summary"]),
            sentences: each(&v["sentences"]).map(text).collect(),
            provider: text(&v["provider"]),
            model: text(&v["model"]),
        }))
    }

    async fn fact_check(
        &self,
        request: Request<pb::FactCheckRequest>,
    ) -> Result<Response<pb::FactCheckResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let mut q = json!({});
        match r.claims.is_empty() {
            false => q["claims"] = json!(r.claims),
            true => q["text"] = json!(r.text),
        }
        match r.sources.is_empty() {
            false => {
                q["sources"] = json!(
                    r.sources
                        .iter()
                        .map(|s| json!({"title": s.title, "text": s.text}))
                        .collect::<Vec<_>>()
                )
            }
            true => q["collection_ids"] = json!(r.collection_ids),
        }
        let v = body(texts::fact_check(self.state.clone(), caller, input(q)?).await)?;
        let results = each(&v["results"])
            .map(|c| pb::ClaimResult {
                claim: text(&c["claim"]),
                verdict: text(&c["verdict"]),
                reason: text(&c["reason"]),
                evidence: each(&c["evidence"])
                    .map(|e| pb::Evidence {
                        quote: text(&e["quote"]),
                        document_id: text(&e["document_id"]),
                        chunk_id: text(&e["chunk_id"]),
                        source_index: e["source_index"].as_i64().map_or(-1, |i| i as i32),
                        title: text(&e["title"]),
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(pb::FactCheckResponse {
            results,
            provider: text(&v["provider"]),
            model: text(&v["model"]),
        }))
    }

    async fn emotion(
        &self,
        request: Request<pb::EmotionRequest>,
    ) -> Result<Response<pb::EmotionResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let v = body(
            texts::emotion_route(self.state.clone(), caller, input(json!({"text": r.text}))?).await,
        )?;
        let emotions: HashMap<String, f32> = v["emotions"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, x)| (k.clone(), x.as_f64().unwrap_or(0.0) as f32))
            .collect();
        Ok(Response::new(pb::EmotionResponse {
            emotions,
            dominant: text(&v["dominant"]),
            recommendation: text(&v["recommendation"]),
            cues: each(&v["cues"]).map(text).collect(),
            provider: text(&v["provider"]),
            model: text(&v["model"]),
        }))
    }

    async fn recommend(
        &self,
        request: Request<pb::RecommendRequest>,
    ) -> Result<Response<pb::RecommendResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let mut q = json!({"ticket_id": r.ticket_id});
        if r.limit > 0 {
            q["limit"] = json!(r.limit);
        }
        let v = body(crate::recommend::recommend(self.state.clone(), caller, input(q)?).await)?;
        let candidates = each(&v["candidates"])
            .map(|c| pb::Candidate {
                team_id: text(&c["team_id"]),
                name: text(&c["name"]),
                zone: text(&c["zone"]),
                score: c["score"].as_f64().unwrap_or(0.0),
                factors: c["factors"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, f)| {
                        (
                            k.clone(),
                            pb::Factor {
                                score: f["score"].as_f64().unwrap_or(0.0),
                                weight: f["weight"].as_f64().unwrap_or(0.0),
                                explanation: text(&f["explanation"]),
                            },
                        )
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(pb::RecommendResponse {
            ticket_id: text(&v["ticket_id"]),
            ticket_number: text(&v["ticket_number"]),
            candidates,
        }))
    }
}
