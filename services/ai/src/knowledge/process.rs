//! Processing a document: its text extracted, chunked, embedded, and its chunks written in
//! one transaction with its COMPLETED status (or its ERROR and the reason). Small text
//! documents are processed in the request that gives them; the rest by the workers here,
//! which claim waiting documents (one replica wins each claim) and take over documents whose
//! worker went away.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;

use agora_shared::AppResult;

use super::{
    chunk, extract,
    store::{self, NewChunk},
};
use crate::{AiState, local::embed};

use super::reembed;

/// A claim older than this is taken to be a worker that went away.
const STALE_CLAIM: Duration = Duration::from_secs(300);

/// How often idle workers look for documents (another replica may have queued some).
const POLL: Duration = Duration::from_secs(2);

/// Processes document `id` as attempt `attempt` (a later attempt's result replaces this
/// one's, which is then dropped).
pub async fn process(state: &AiState, id: &str, attempt: i64) -> AppResult<()> {
    let doc = id.to_owned();
    let Some(store::Upload {
        tenant_id: tenant,
        collection_id: collection,
        format,
        content,
        mut models,
    }) = state
        .db
        .read(move |conn| store::document_content(conn, &doc))
        .await?
    else {
        return Ok(());
    };
    let format = extract::Format::parse(&format).unwrap_or(extract::Format::Text);
    let limits = extract::Limits {
        max_bytes: state.config.max_extracted_bytes,
        memory_mib: state.config.extraction_memory_mib,
        permits: state.extraction.clone(),
    };
    let extracted = extract::extract(format, content, &limits).await;
    let doc = id.to_owned();
    let text = match extracted {
        Ok(text) => text,
        Err(reason) => {
            tracing::info!(document = %id, %reason, "document could not be processed");
            return state
                .db
                .write(move |conn| store::fail(conn, &doc, attempt, &reason))
                .await;
        }
    };
    let (target, overlap) = (state.config.chunk_chars, state.config.chunk_overlap_chars);
    let chunks = Arc::new(
        tokio::task::spawn_blocking(move || chunk::chunk(&text, target, overlap))
            .await
            .map_err(|e| anyhow::anyhow!("chunking failed: {e}"))?,
    );
    // The collection's model may change while its chunks are embedded (a change takes the
    // collection's lock and `complete` checks under it): embed again with the new one.
    for _ in 0..3 {
        let embedders = (
            state.embedders.get(&models.current),
            models.next.as_deref().map(|m| state.embedders.get(m)),
        );
        let (current, next) = match embedders {
            (Some(current), None) => (current, None),
            (Some(current), Some(Some(next))) => (current, Some(next)),
            (None, _) | (_, Some(None)) => {
                let missing = match embedders.0 {
                    None => models.current.clone(),
                    Some(_) => models.next.clone().unwrap_or_default(),
                };
                let reason = format!(
                    "the collection's embedding model `{missing}` is not one this service has"
                );
                return state
                    .db
                    .write(move |conn| store::fail(conn, &doc, attempt, &reason))
                    .await;
            }
        };
        let (chunks, tenant, collection_id, doc_id, slots) = (
            chunks.clone(),
            tenant.clone(),
            collection.clone(),
            doc.clone(),
            models.clone(),
        );
        let rows = tokio::task::spawn_blocking(move || {
            chunks
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let text = c.indexed_text();
                    let (embedding, embedding_alt, spare_change) = slots.place(
                        embed::to_bytes(&current.embed(&text)),
                        next.as_ref().map(|n| embed::to_bytes(&n.embed(&text))),
                    );
                    NewChunk {
                        id: uuid::Uuid::now_v7().to_string(),
                        tenant_id: tenant.clone(),
                        collection_id: collection_id.clone(),
                        document_id: doc_id.clone(),
                        ordinal: i as i32,
                        embedding,
                        embedding_alt,
                        spare_change,
                        heading: c.heading.clone(),
                        text: c.text.clone(),
                        start_offset: c.start as i64,
                        end_offset: c.end as i64,
                    }
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| anyhow::anyhow!("embedding failed: {e}"))?;
        let (doc_id, with) = (doc.clone(), models.clone());
        let stored = state
            .db
            .write(move |conn| store::complete(conn, &doc_id, attempt, &rows, &with))
            .await?;
        match stored {
            store::Stored::Completed => return Ok(()),
            store::Stored::Dropped => {
                tracing::debug!(document = %id, attempt, "document changed while processed; result dropped");
                return Ok(());
            }
            store::Stored::ModelChanged => {
                let c = collection.clone();
                match state.db.read(move |conn| store::models(conn, &c)).await? {
                    Some(now) => models = now,
                    None => return Ok(()),
                }
            }
        }
    }
    // The models changed three times in a row: the claim is left to go stale, and a worker
    // takes the document up again.
    tracing::info!(document = %id, "the collection's embedding model kept changing; processed later");
    Ok(())
}

/// Deletes the documents whose content never came, at most once per `every`.
async fn expire_uploads(state: &AiState, last: &mut Instant, every: Duration) {
    if last.elapsed() < every {
        return;
    }
    *last = Instant::now();
    let expiry = Duration::from_secs(state.config.upload_expiry_secs);
    let before = agora_shared::db::now() - chrono::Duration::from_std(expiry).unwrap_or_default();
    if !matches!(
        state
            .db
            .read(move |conn| store::any_expired(conn, before))
            .await,
        Ok(true)
    ) {
        return;
    }
    match state
        .db
        .write(move |conn| store::expire_uploads(conn, before))
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(documents = n, "uploads that never came deleted"),
        Err(err) => tracing::warn!(error = %err, "cannot delete expired uploads"),
    }
}

/// A worker: processes waiting documents until `shutdown`.
pub async fn run(state: Arc<AiState>, shutdown: CancellationToken) {
    let every = Duration::from_secs(state.config.upload_expiry_secs.min(60));
    let mut expired = Instant::now();
    loop {
        expire_uploads(&state, &mut expired, every).await;
        loop {
            let now = agora_shared::db::now();
            let stale = now - chrono::Duration::from_std(STALE_CLAIM).unwrap_or_default();
            let waiting = state
                .db
                .read(move |conn| store::any_waiting(conn, stale))
                .await;
            if !matches!(waiting, Ok(true)) {
                break;
            }
            let claimed = state
                .db
                .write(move |conn| store::claim(conn, now, stale))
                .await;
            match claimed {
                Ok(Some((id, attempt))) => {
                    if let Err(err) = process(&state, &id, attempt).await {
                        tracing::warn!(document = %id, error = %err, "document processing failed; retried later");
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot claim documents");
                    break;
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
        }
        match reembed::work(&state, &shutdown).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "re-embedding failed; retried later"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = state.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
