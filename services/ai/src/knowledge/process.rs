//! Processing a document: its text extracted, chunked, embedded, and its chunks written in
//! one transaction with its COMPLETED status (or its ERROR and the reason). Small text
//! documents are processed in the request that gives them; the rest by the workers here,
//! which claim waiting documents (one replica wins each claim) and take over documents whose
//! worker went away.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use agora_shared::AppResult;

use super::{
    chunk, extract,
    store::{self, NewChunk},
};
use crate::{AiState, local::embed};

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
    }) = state
        .db
        .read(move |conn| store::document_content(conn, &doc))
        .await?
    else {
        return Ok(());
    };
    let format = extract::Format::parse(&format).unwrap_or(extract::Format::Text);
    let extracted = extract::extract(format, content, state.config.max_extracted_bytes).await;
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
    let rows = tokio::task::spawn_blocking(move || {
        chunk::chunk(&text, target, overlap)
            .into_iter()
            .enumerate()
            .map(|(i, c)| NewChunk {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: tenant.clone(),
                collection_id: collection.clone(),
                document_id: doc.clone(),
                ordinal: i as i32,
                embedding: embed::to_bytes(&embed::embed(&c.indexed_text())),
                heading: c.heading,
                text: c.text,
                start_offset: c.start as i64,
                end_offset: c.end as i64,
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| anyhow::anyhow!("chunking failed: {e}"))?;
    let doc = id.to_owned();
    let stored = state
        .db
        .write(move |conn| store::complete(conn, &doc, attempt, &rows))
        .await?;
    if !stored {
        tracing::debug!(document = %id, attempt, "document changed while processed; result dropped");
    }
    Ok(())
}

/// A worker: processes waiting documents until `shutdown`.
pub async fn run(state: Arc<AiState>, shutdown: CancellationToken) {
    loop {
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
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = state.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
