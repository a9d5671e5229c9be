//! The local model on texts: extractive summaries, fact-checks against a tenant's
//! collections or given sources, and emotion with a tutoring recommendation.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use agora_shared::{
    AppError, AppResult,
    http::{Caller, ValidJson},
};

use super::{answers, input_text};
use crate::{
    AiState,
    local::{self, answer::Passage, emotion, factcheck, summary},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/ai/summarize", web::post().to(summarize))
        .route("/api/v1/ai/emotion", web::post().to(emotion_route))
        .route("/api/v1/ai/fact-check", web::post().to(fact_check));
}

/// Most claims checked in one request (each is a search).
pub const MAX_CLAIMS: usize = 20;

#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct SummarizeIn {
    pub text: String,
    /// 1 to 20 (default 3).
    pub max_sentences: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryOut {
    /// The text's most central sentences, in its order, as written.
    pub summary: String,
    pub sentences: Vec<String>,
    pub provider: &'static str,
    pub model: &'static str,
}

/// Runs the local model's work on the blocking pool, a few requests at a time (each may cost
/// up to a second of CPU).
pub async fn blocking<T: Send + 'static>(
    state: &AiState,
    f: impl FnOnce() -> T + Send + 'static,
) -> AppResult<T> {
    let _turn = state
        .local_work
        .acquire()
        .await
        .map_err(|_| AppError::Unavailable("the service is stopping".into()))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("local model failed: {e}")))
}

#[utoipa::path(post, path = "/api/v1/ai/summarize", tag = "ai", request_body = SummarizeIn,
    responses((status = 200, body = SummaryOut), (status = 422)), security(("bearer" = [])))]
pub async fn summarize(
    state: web::Data<AiState>,
    _caller: Caller,
    body: ValidJson<SummarizeIn>,
) -> AppResult<HttpResponse> {
    let body = body.0;
    input_text("text", &body.text, state.config.max_input_bytes)?;
    let max = body.max_sentences.unwrap_or(3);
    if !(1..=20).contains(&max) {
        return Err(AppError::invalid("max_sentences", "must be from 1 to 20"));
    }
    let sentences = blocking(&state, move || {
        summary::summarize(&body.text, max)
            .into_iter()
            .map(|(a, b)| body.text[a..b].to_owned())
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(HttpResponse::Ok().json(SummaryOut {
        summary: sentences.join(" "),
        sentences,
        provider: local::PROVIDER,
        model: summary::MODEL,
    }))
}

#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct EmotionIn {
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmotionOut {
    /// Each emotion's share (they sum to 1): joy, interest, confusion, frustration, boredom,
    /// anxiety, sadness, anger, surprise and neutral.
    pub emotions: BTreeMap<&'static str, f32>,
    pub dominant: &'static str,
    /// What a tutor is advised to do.
    pub recommendation: &'static str,
    /// The words the reading rests on.
    pub cues: Vec<String>,
    pub provider: &'static str,
    pub model: &'static str,
}

#[utoipa::path(post, path = "/api/v1/ai/emotion", tag = "ai", request_body = EmotionIn,
    responses((status = 200, body = EmotionOut), (status = 422)), security(("bearer" = [])))]
pub async fn emotion_route(
    state: web::Data<AiState>,
    _caller: Caller,
    body: ValidJson<EmotionIn>,
) -> AppResult<HttpResponse> {
    let text = body.0.text;
    input_text("text", &text, state.config.max_input_bytes)?;
    let reading = blocking(&state, move || emotion::read(&text)).await?;
    Ok(HttpResponse::Ok().json(EmotionOut {
        emotions: reading.scores,
        dominant: reading.dominant,
        recommendation: reading.recommendation,
        cues: reading.cues,
        provider: local::PROVIDER,
        model: emotion::MODEL,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceIn {
    pub title: Option<String>,
    pub text: String,
}

#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct FactCheckIn {
    /// The claims to check (1 to 20); or `text`, whose sentences are the claims.
    pub claims: Option<Vec<String>>,
    pub text: Option<String>,
    /// The tenant's collections to look for evidence in; or `sources`.
    pub collection_ids: Option<Vec<String>>,
    /// Texts to look for evidence in (1 to 20).
    pub sources: Option<Vec<SourceIn>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceOut {
    /// The sentence the verdict rests on, as written.
    pub quote: String,
    /// Where it is: a document and chunk of a collection, or a source by index.
    pub document_id: Option<String>,
    pub chunk_id: Option<String>,
    pub source_index: Option<usize>,
    pub title: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimOut {
    pub claim: String,
    /// supported, contradicted or unverified.
    pub verdict: &'static str,
    pub reason: String,
    /// The sentences behind the verdict (none when unverified).
    pub evidence: Vec<EvidenceOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FactCheckOut {
    pub results: Vec<ClaimOut>,
    pub provider: &'static str,
    pub model: &'static str,
}

#[utoipa::path(post, path = "/api/v1/ai/fact-check", tag = "ai", request_body = FactCheckIn,
    responses((status = 200, description = "a verdict per claim, each backed by a quoted sentence or `unverified`", body = FactCheckOut),
        (status = 404, description = "a collection the tenant does not have"), (status = 422)),
    security(("bearer" = [])))]
pub async fn fact_check(
    state: web::Data<AiState>,
    caller: Caller,
    body: ValidJson<FactCheckIn>,
) -> AppResult<HttpResponse> {
    let body = body.0;
    let max = state.config.max_input_bytes;
    let claims = match (body.claims, body.text) {
        (Some(claims), None) => {
            for (i, c) in claims.iter().enumerate() {
                input_text(&format!("claims[{i}]"), c, answers::MAX_QUERY_BYTES)?;
            }
            claims
        }
        (None, Some(text)) => {
            input_text("text", &text, max)?;
            let claims = factcheck::claims(&text, MAX_CLAIMS);
            if claims.is_empty() {
                return Err(AppError::invalid(
                    "text",
                    "holds no sentence that states something",
                ));
            }
            claims
        }
        _ => return Err(AppError::invalid("claims", "give either claims or text")),
    };
    if claims.is_empty() || claims.len() > MAX_CLAIMS {
        return Err(AppError::invalid(
            "claims",
            format!("must be 1 to {MAX_CLAIMS} claims"),
        ));
    }
    let mut results = Vec::with_capacity(claims.len());
    match (body.collection_ids, body.sources) {
        (Some(ids), None) => {
            for claim in claims {
                let passages = answers::passages(&state, &caller, &ids, &claim, 5).await?;
                results.push(blocking(&state, move || judge(claim, &passages, false)).await?);
            }
        }
        (None, Some(sources)) => {
            if sources.is_empty() || sources.len() > 20 {
                return Err(AppError::invalid("sources", "must be 1 to 20 texts"));
            }
            let total: usize = sources.iter().map(|s| s.text.len()).sum();
            if total > max {
                return Err(AppError::invalid(
                    "sources",
                    format!("are {total} bytes; at most {max}"),
                ));
            }
            let passages: Vec<Passage> = sources
                .into_iter()
                .map(|s| Passage {
                    document_id: String::new(),
                    chunk_id: String::new(),
                    title: s.title.unwrap_or_default(),
                    text: s.text,
                })
                .collect();
            results = blocking(&state, move || {
                claims
                    .into_iter()
                    .map(|c| judge(c, &passages, true))
                    .collect::<Vec<_>>()
            })
            .await?;
        }
        _ => {
            return Err(AppError::invalid(
                "collection_ids",
                "give either collection_ids or sources",
            ));
        }
    }
    Ok(HttpResponse::Ok().json(FactCheckOut {
        results,
        provider: local::PROVIDER,
        model: factcheck::MODEL,
    }))
}

fn judge(claim: String, passages: &[Passage], sources: bool) -> ClaimOut {
    let check = factcheck::check(&claim, passages);
    let evidence = check
        .evidence
        .iter()
        .map(|q| {
            let p = &passages[q.passage];
            EvidenceOut {
                quote: p.text[q.start..q.end].to_owned(),
                document_id: (!sources).then(|| p.document_id.clone()),
                chunk_id: (!sources).then(|| p.chunk_id.clone()),
                source_index: sources.then_some(q.passage),
                title: (!p.title.is_empty()).then(|| p.title.clone()),
            }
        })
        .collect();
    ClaimOut {
        claim,
        verdict: check.verdict.as_str(),
        reason: check.reason,
        evidence,
    }
}
