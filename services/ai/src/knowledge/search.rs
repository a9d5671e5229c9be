//! Search over a tenant's collections: semantic (cosine of each collection's model's embeddings),
//! keyword (the store's full-text index) or hybrid (both lists fused by reciprocal rank,
//! k = 60), filtered by tenant, collection and document metadata.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use agora_shared::{AppError, AppResult};

use crate::{AiState, local::text};

/// How a search ranks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Semantic,
    Keyword,
    Hybrid,
}

/// Reciprocal rank fusion's constant (Cormack et al.).
const RRF_K: f64 = 60.0;

/// A search.
pub struct Query<'a> {
    pub tenant: &'a str,
    pub collections: &'a [String],
    pub text: &'a str,
    pub mode: Mode,
    pub limit: usize,
    /// Documents whose metadata has each of these keys with the same value.
    pub filter: Option<&'a Map<String, Value>>,
}

/// A chunk found.
#[derive(Debug, Clone)]
pub struct Hit {
    pub chunk_id: String,
    pub document_id: String,
    pub collection_id: String,
    pub title: String,
    pub heading: Option<String>,
    pub ordinal: i32,
    pub text: String,
    pub score: f64,
}

/// What a search found, and the models the collections searched are embedded with (each
/// once, in the order the collections were named).
#[derive(Debug, Clone)]
pub struct Found {
    pub hits: Vec<Hit>,
    pub embedding_models: Vec<String>,
}

/// Runs a search; 404 names a collection the tenant does not have.
pub async fn search(state: &AiState, q: Query<'_>) -> AppResult<Found> {
    let (tenant, ids) = (q.tenant.to_owned(), q.collections.to_vec());
    let generations = state
        .db
        .read(move |conn| super::store::generations(conn, &tenant, &ids))
        .await?;
    if let Some(missing) = q
        .collections
        .iter()
        .find(|id| !generations.iter().any(|(g, _, _)| g == *id))
    {
        return Err(
            AppError::NotFound(format!("collection {missing} not found"))
                .with_code("ai.collection_not_found"),
        );
    }
    let allowed: Option<HashSet<String>> = match q.filter {
        Some(filter) if !filter.is_empty() => {
            let (tenant, ids) = (q.tenant.to_owned(), q.collections.to_vec());
            let docs = state
                .db
                .read(move |conn| super::store::metadata(conn, &tenant, &ids))
                .await?;
            Some(
                docs.into_iter()
                    .filter(|(_, meta)| matches(meta, filter))
                    .map(|(id, _)| id)
                    .collect(),
            )
        }
        _ => None,
    };
    let pool = (q.limit * 4).max(40);
    let semantic = match q.mode {
        Mode::Keyword => Vec::new(),
        _ => semantic(state, &q, &generations, allowed.as_ref(), pool).await?,
    };
    let keyword = match q.mode {
        Mode::Semantic => Vec::new(),
        _ => keyword(state, &q, allowed.as_ref(), pool).await?,
    };
    let ranked: Vec<(String, f64)> = match q.mode {
        Mode::Semantic => semantic,
        Mode::Keyword => keyword,
        Mode::Hybrid => fuse(&[semantic, keyword]),
    };
    let ranked: Vec<(String, f64)> = ranked.into_iter().take(q.limit).collect();
    let ids: Vec<String> = ranked.iter().map(|(id, _)| id.clone()).collect();
    let tenant = q.tenant.to_owned();
    let texts = state
        .db
        .read(move |conn| super::store::chunk_texts(conn, &tenant, &ids))
        .await?;
    let mut by_id: HashMap<String, super::store::ChunkText> =
        texts.into_iter().map(|c| (c.id.clone(), c)).collect();
    let hits = ranked
        .into_iter()
        // A chunk deleted since it was ranked is left out.
        .filter_map(|(id, score)| {
            let c = by_id.remove(&id)?;
            Some(Hit {
                chunk_id: c.id,
                document_id: c.document_id,
                collection_id: c.collection_id,
                title: c.title,
                heading: c.heading,
                ordinal: c.ordinal,
                text: c.text,
                score,
            })
        })
        .collect();
    Ok(Found {
        hits,
        embedding_models: models_of(q.collections, &generations),
    })
}

/// Whether a document's metadata (JSON text) has every key of `filter` with its value.
fn matches(metadata: &str, filter: &Map<String, Value>) -> bool {
    let Ok(Value::Object(meta)) = serde_json::from_str::<Value>(metadata) else {
        return false;
    };
    filter.iter().all(|(k, v)| meta.get(k) == Some(v))
}

/// The embedding models of the collections `ids` (each once, in the order of `ids`).
fn models_of(ids: &[String], generations: &[(String, i64, String)]) -> Vec<String> {
    let mut models: Vec<String> = Vec::new();
    for id in ids {
        if let Some((_, _, model)) = generations.iter().find(|(c, _, _)| c == id)
            && !models.contains(model)
        {
            models.push(model.clone());
        }
    }
    models
}

async fn semantic(
    state: &AiState,
    q: &Query<'_>,
    generations: &[(String, i64, String)],
    allowed: Option<&HashSet<String>>,
    pool: usize,
) -> AppResult<Vec<(String, f64)>> {
    // The query embedded by each collection's model (scores of two models are both cosines,
    // so their lists merge).
    let mut queries: HashMap<&str, (usize, Vec<f32>)> = HashMap::new();
    for (collection, _, model) in generations {
        if queries.contains_key(model.as_str()) {
            continue;
        }
        let embedder = state.embedders.get(model).ok_or_else(|| {
            AppError::Conflict(format!(
                "collection {collection} is embedded with `{model}`, which this service no longer has; \
                 search it by keyword, or change its embedding model"
            ))
            .with_code("ai.embedding_model_unavailable")
        })?;
        queries.insert(model, (embedder.dims(), embedder.embed(q.text)));
    }
    let mut found = Vec::new();
    for (collection, generation, model) in generations {
        let Some((dims, query)) = queries.get(model.as_str()) else {
            continue;
        };
        if query.iter().all(|x| *x == 0.0) {
            continue;
        }
        let Some(vectors) = state
            .vectors
            .get(&state.db, q.tenant, collection, *generation, *dims)
            .await?
        else {
            // Changed since the search began (a new model's vectors, maybe): left out of
            // this search rather than scored against a query of another model.
            continue;
        };
        let query = query.clone();
        let allowed = allowed.cloned();
        let nearest = tokio::task::spawn_blocking(move || {
            let pass = |doc: &str| allowed.as_ref().is_none_or(|a| a.contains(doc));
            vectors.nearest(&query, pool, &pass)
        })
        .await
        .map_err(|e| anyhow::anyhow!("semantic search failed: {e}"))?;
        found.extend(
            nearest
                .into_iter()
                .map(|(chunk, _, score)| (chunk.to_string(), f64::from(score))),
        );
    }
    found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    found.truncate(pool);
    Ok(found)
}

async fn keyword(
    state: &AiState,
    q: &Query<'_>,
    allowed: Option<&HashSet<String>>,
    pool: usize,
) -> AppResult<Vec<(String, f64)>> {
    let mut terms = text::content_words(q.text);
    terms.sort();
    terms.dedup();
    terms.truncate(64);
    let (tenant, ids) = (q.tenant.to_owned(), q.collections.to_vec());
    let fetch = if allowed.is_some() { pool * 10 } else { pool } as i64;
    let hits = state
        .db
        .read(move |conn| super::store::keyword(conn, &tenant, &ids, &terms, fetch))
        .await?;
    let Some(allowed) = allowed else {
        return Ok(hits);
    };
    // The filter is on documents; the index knows chunks. Keep those of allowed documents.
    let ids: Vec<String> = hits.iter().map(|(id, _)| id.clone()).collect();
    let tenant = q.tenant.to_owned();
    let texts = state
        .db
        .read(move |conn| super::store::chunk_texts(conn, &tenant, &ids))
        .await?;
    let pass: HashSet<String> = texts
        .into_iter()
        .filter(|c| allowed.contains(&c.document_id))
        .map(|c| c.id)
        .collect();
    Ok(hits
        .into_iter()
        .filter(|(id, _)| pass.contains(id))
        .take(pool)
        .collect())
}

/// Reciprocal rank fusion of ranked lists: each item scores the sum of 1 / (k + rank).
pub fn fuse(lists: &[Vec<(String, f64)>]) -> Vec<(String, f64)> {
    let mut scores: HashMap<&str, f64> = HashMap::new();
    for list in lists {
        for (rank, (id, _)) in list.iter().enumerate() {
            *scores.entry(id).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
    }
    let mut fused: Vec<(String, f64)> = scores
        .into_iter()
        .map(|(id, s)| (id.to_owned(), s))
        .collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_rewards_agreement() {
        let a = vec![("x".to_owned(), 0.9), ("y".to_owned(), 0.8)];
        let b = vec![("y".to_owned(), 3.0), ("z".to_owned(), 2.0)];
        let fused = fuse(&[a, b]);
        assert_eq!(fused[0].0, "y");
        assert_eq!(fused.len(), 3);
    }
}
