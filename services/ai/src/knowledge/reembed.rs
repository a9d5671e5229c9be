//! Changing a collection's embedding model. Each chunk has two vector slots; the collection
//! names the one its current model's vectors are in (`vector_slot`). A change is recorded at
//! once (`next_embedding_model`, numbered `reembed_change`); the document workers then embed
//! the collection's chunks again into the other slot, in chunk id order, marking each with
//! the change (`spare_change`). They hold a lease on the collection that another replica
//! takes over if it lapses, and keep their place (`reembed_cursor`), so nothing is done
//! twice. Searches go on with the current slot meanwhile. The last batch flips the slot with
//! the collection's model, in one transaction that writes one row whatever the collection's
//! size; stopping a change writes nothing to the chunks either. Chunks written during a
//! change are embedded by both models (see `process`), so the cursor never looks back.

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use tokio_util::sync::CancellationToken;

use agora_shared::{AppResult, db::DbConnection};

use super::store::{self, CollectionRow, bump};
use crate::{
    AiState,
    local::embed,
    schema::{chunks, collections},
};

/// Chunks embedded per transaction.
const BATCH: i64 = 256;

/// A lease older than this is taken to be a worker that went away.
const LEASE: Duration = Duration::from_secs(60);

/// How long one turn of a worker re-embeds before it looks for documents again.
const TURN: Duration = Duration::from_secs(2);

/// Where a change of model stands.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Progress {
    /// The model the chunks are being embedded with.
    pub model: String,
    /// Chunks embedded with it so far, and all the collection's chunks.
    pub done: i64,
    pub total: i64,
    pub started_at: String,
}

/// A chunk not yet embedded for change `$change`.
macro_rules! pending {
    ($change:expr) => {
        chunks::spare_change
            .is_null()
            .or(chunks::spare_change.ne($change))
    };
}

/// The progress of the tenant's collection's change of model, if one is under way.
pub fn progress(conn: &mut DbConnection, row: &CollectionRow) -> AppResult<Option<Progress>> {
    let (Some(model), Some(started)) = (&row.next_embedding_model, row.reembed_started_at) else {
        return Ok(None);
    };
    let of_collection = || {
        chunks::table
            .filter(chunks::tenant_id.eq(&row.tenant_id))
            .filter(chunks::collection_id.eq(&row.id))
    };
    let total: i64 = of_collection().count().get_result(conn)?;
    let done: i64 = of_collection()
        .filter(chunks::spare_change.eq(row.reembed_change))
        .count()
        .get_result(conn)?;
    Ok(Some(Progress {
        model: model.clone(),
        done,
        total,
        started_at: agora_shared::db::rfc3339(started),
    }))
}

/// Sets the model the tenant's collection `id` is embedded with: at once for a collection
/// without chunks, otherwise by re-embedding in the background. Naming the current model
/// stops a change under way; naming the model of the change under way, or the current one
/// when none is, changes nothing.
pub fn change_model(
    conn: &mut DbConnection,
    tenant: &str,
    id: &str,
    model: &str,
    now: NaiveDateTime,
) -> AppResult<CollectionRow> {
    store::collection(conn, tenant, id)?;
    store::lock_collection(conn, id)?;
    let mut row = store::collection(conn, tenant, id)?;
    let unchanged = match &row.next_embedding_model {
        Some(next) => next == model,
        None => row.embedding_model == model,
    };
    if unchanged {
        return Ok(row);
    }
    let stop = row.embedding_model == model;
    let any_chunk: bool = diesel::select(diesel::dsl::exists(
        chunks::table.filter(chunks::collection_id.eq(id)),
    ))
    .get_result(conn)?;
    row.updated_at = now;
    row.reembed_started_at = None;
    if stop || !any_chunk {
        let switched = row.embedding_model != model;
        row.embedding_model = model.to_owned();
        row.next_embedding_model = None;
        diesel::update(collections::table.find(id))
            .set((
                collections::embedding_model.eq(&row.embedding_model),
                collections::next_embedding_model.eq(None::<String>),
                collections::reembed_started_at.eq(None::<NaiveDateTime>),
                collections::reembed_claimed_at.eq(None::<NaiveDateTime>),
                collections::reembed_cursor.eq(None::<String>),
                collections::updated_at.eq(now),
            ))
            .execute(conn)?;
        if switched {
            bump(conn, id)?;
            row.generation += 1;
        }
        return Ok(row);
    }
    row.next_embedding_model = Some(model.to_owned());
    row.reembed_started_at = Some(now);
    row.reembed_change += 1;
    diesel::update(collections::table.find(id))
        .set((
            collections::next_embedding_model.eq(&row.next_embedding_model),
            collections::reembed_change.eq(collections::reembed_change + 1),
            collections::reembed_started_at.eq(Some(now)),
            collections::reembed_claimed_at.eq(None::<NaiveDateTime>),
            collections::reembed_cursor.eq(None::<String>),
            collections::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(row)
}

/// A collection a worker holds the lease of: the change it is for, and where it is.
#[derive(Clone)]
struct Lease {
    id: String,
    model: String,
    change: i64,
    /// The slot of the current model's vectors (the change writes the other).
    slot: i16,
    cursor: String,
}

/// Whether a collection waits to be re-embedded with one of `models` (a read, so that idle
/// workers commit nothing).
fn any_waiting(
    conn: &mut DbConnection,
    models: &[String],
    stale_before: NaiveDateTime,
) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        collections::table
            .filter(collections::next_embedding_model.eq_any(models))
            .filter(
                collections::reembed_claimed_at
                    .is_null()
                    .or(collections::reembed_claimed_at.lt(stale_before)),
            ),
    ))
    .get_result(conn)?)
}

/// Takes the lease of a collection waiting to be re-embedded with one of `models` (the ones
/// this replica has).
fn claim(
    conn: &mut DbConnection,
    models: &[String],
    now: NaiveDateTime,
    stale_before: NaiveDateTime,
) -> AppResult<Option<Lease>> {
    type Waiting = (
        String,
        Option<String>,
        i64,
        i16,
        Option<NaiveDateTime>,
        Option<String>,
    );
    let waiting: Vec<Waiting> = collections::table
        .filter(collections::next_embedding_model.eq_any(models))
        .filter(
            collections::reembed_claimed_at
                .is_null()
                .or(collections::reembed_claimed_at.lt(stale_before)),
        )
        .order(collections::reembed_started_at)
        .select((
            collections::id,
            collections::next_embedding_model,
            collections::reembed_change,
            collections::vector_slot,
            collections::reembed_claimed_at,
            collections::reembed_cursor,
        ))
        .limit(5)
        .load(conn)?;
    for (id, model, change, slot, claimed, cursor) in waiting {
        let Some(model) = model else { continue };
        // Only one replica's update finds the lease as it read it.
        let target = collections::table
            .filter(collections::id.eq(&id))
            .filter(collections::reembed_change.eq(change));
        let set = collections::reembed_claimed_at.eq(Some(now));
        let taken = match claimed {
            Some(at) => diesel::update(target.filter(collections::reembed_claimed_at.eq(at)))
                .set(set)
                .execute(conn)?,
            None => diesel::update(target.filter(collections::reembed_claimed_at.is_null()))
                .set(set)
                .execute(conn)?,
        };
        if taken == 1 {
            return Ok(Some(Lease {
                id,
                model,
                change,
                slot,
                cursor: cursor.unwrap_or_default(),
            }));
        }
    }
    Ok(None)
}

/// Whether the collection is still to be re-embedded by `lease`'s change (not stopped or
/// changed again since).
fn still(conn: &mut DbConnection, lease: &Lease) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        collections::table
            .filter(collections::id.eq(&lease.id))
            .filter(collections::next_embedding_model.eq(&lease.model))
            .filter(collections::reembed_change.eq(lease.change)),
    ))
    .get_result(conn)?)
}

/// The next chunks after the lease's cursor not yet embedded for its change: (id, text to
/// embed).
fn batch(conn: &mut DbConnection, lease: &Lease) -> AppResult<Vec<(String, String)>> {
    let rows: Vec<(String, Option<String>, String)> = chunks::table
        .filter(chunks::collection_id.eq(&lease.id))
        .filter(chunks::id.gt(&lease.cursor))
        .filter(pending!(lease.change))
        .order(chunks::id)
        .select((chunks::id, chunks::heading, chunks::text))
        .limit(BATCH)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, heading, text)| {
            let indexed = match heading {
                Some(h) => format!("{h}\n{text}"),
                None => text,
            };
            (id, indexed)
        })
        .collect())
}

/// Writes a batch's vectors into the spare slot and moves the cursor on; `false` if the
/// change was stopped or changed meanwhile.
fn save(
    conn: &mut DbConnection,
    lease: &Lease,
    vectors: &[(String, Vec<u8>)],
    now: NaiveDateTime,
) -> AppResult<bool> {
    store::lock_collection(conn, &lease.id)?;
    if !still(conn, lease)? {
        return Ok(false);
    }
    for (chunk, vector) in vectors {
        let target = chunks::table
            .filter(chunks::id.eq(chunk))
            .filter(pending!(lease.change));
        let mark = chunks::spare_change.eq(Some(lease.change));
        match lease.slot {
            // The current model's vectors are in `embedding`: the spare is `embedding_alt`.
            0 => diesel::update(target)
                .set((chunks::embedding_alt.eq(Some(vector)), mark))
                .execute(conn)?,
            _ => diesel::update(target)
                .set((chunks::embedding.eq(vector), mark))
                .execute(conn)?,
        };
    }
    if let Some((last, _)) = vectors.last() {
        diesel::update(collections::table.find(&lease.id))
            .set((
                collections::reembed_cursor.eq(Some(last)),
                collections::reembed_claimed_at.eq(Some(now)),
            ))
            .execute(conn)?;
    }
    Ok(true)
}

/// Flips the collection to the spare slot with its new model, if every chunk has a vector
/// there; `false` (the cursor back to the start, and the lease let go) if some chunk has none.
fn finish(conn: &mut DbConnection, lease: &Lease, now: NaiveDateTime) -> AppResult<bool> {
    store::lock_collection(conn, &lease.id)?;
    if !still(conn, lease)? {
        return Ok(true);
    }
    let missing: bool = diesel::select(diesel::dsl::exists(
        chunks::table
            .filter(chunks::collection_id.eq(&lease.id))
            .filter(pending!(lease.change)),
    ))
    .get_result(conn)?;
    if missing {
        diesel::update(collections::table.find(&lease.id))
            .set((
                collections::reembed_cursor.eq(None::<String>),
                collections::reembed_claimed_at.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
        return Ok(false);
    }
    diesel::update(collections::table.find(&lease.id))
        .set((
            collections::vector_slot.eq(1 - lease.slot),
            collections::embedding_model.eq(&lease.model),
            collections::next_embedding_model.eq(None::<String>),
            collections::reembed_started_at.eq(None::<NaiveDateTime>),
            collections::reembed_claimed_at.eq(None::<NaiveDateTime>),
            collections::reembed_cursor.eq(None::<String>),
            collections::updated_at.eq(now),
        ))
        .execute(conn)?;
    bump(conn, &lease.id)?;
    Ok(true)
}

/// A worker's turn at re-embedding: whether it did any (and there may be more).
pub async fn work(state: &AiState, shutdown: &CancellationToken) -> AppResult<bool> {
    let models: Vec<String> = state.embedders.names();
    let now = agora_shared::db::now();
    let stale = now - chrono::Duration::from_std(LEASE).unwrap_or_default();
    let wanted = models.clone();
    if !state
        .db
        .read(move |conn| any_waiting(conn, &wanted, stale))
        .await?
    {
        return Ok(false);
    }
    let Some(mut lease) = state
        .db
        .write(move |conn| claim(conn, &models, now, stale))
        .await?
    else {
        return Ok(false);
    };
    let Some(embedder) = state.embedders.get(&lease.model) else {
        return Ok(false);
    };
    let began = Instant::now();
    loop {
        let reading = lease.clone();
        let texts = state.db.read(move |conn| batch(conn, &reading)).await?;
        let now = agora_shared::db::now();
        if texts.is_empty() {
            let done = state
                .db
                .write(move |conn| finish(conn, &lease, now))
                .await?;
            if !done {
                tracing::warn!("re-embedding found chunks behind its cursor; going over them");
            }
            return Ok(true);
        }
        let permit = state
            .local_work
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| anyhow::anyhow!("local work closed: {e}"))?;
        let embedder = embedder.clone();
        let vectors = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            texts
                .into_iter()
                .map(|(id, text)| (id, embed::to_bytes(&embedder.embed(&text))))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| anyhow::anyhow!("re-embedding failed: {e}"))?;
        lease.cursor = vectors.last().map(|(id, _)| id.clone()).unwrap_or_default();
        let saved_lease = lease.clone();
        let going = state
            .db
            .write(move |conn| save(conn, &saved_lease, &vectors, now))
            .await?;
        if !going {
            return Ok(true);
        }
        if shutdown.is_cancelled() || began.elapsed() > TURN {
            // Let the lease lapse at once for whichever worker comes next.
            let id = lease.id.clone();
            state
                .db
                .write(move |conn| {
                    diesel::update(collections::table.find(&id))
                        .set(collections::reembed_claimed_at.eq(None::<NaiveDateTime>))
                        .execute(conn)?;
                    Ok(())
                })
                .await?;
            return Ok(true);
        }
    }
}
