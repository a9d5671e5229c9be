//! Collections, documents and chunks in the service's store. Every read and write names the
//! tenant; a row of another tenant is never found. A change to a collection's chunks moves
//! its `generation` on in the same transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Text};

use agora_shared::{AppError, AppResult, db::DbConnection};

use crate::schema::{chunks, collections, documents};

/// Processing states of a document.
pub const UPLOADING: &str = "UPLOADING";
pub const PROCESSING: &str = "PROCESSING";
pub const COMPLETED: &str = "COMPLETED";
pub const ERROR: &str = "ERROR";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = collections)]
pub struct CollectionRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: Option<String>,
    pub embedding_model: String,
    pub generation: i64,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The model its chunks are being embedded with again, while they are.
    pub next_embedding_model: Option<String>,
    pub reembed_started_at: Option<NaiveDateTime>,
    /// The number of the latest change of model.
    pub reembed_change: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = documents)]
pub struct NewDocument {
    pub id: String,
    pub tenant_id: String,
    pub collection_id: String,
    pub title: String,
    pub format: String,
    pub content: Vec<u8>,
    pub bytes: i64,
    pub metadata: String,
    pub status: String,
    pub attempt: i64,
    pub claimed_at: Option<NaiveDateTime>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A document as it is shown (its content is not loaded).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = documents)]
pub struct DocumentRow {
    pub id: String,
    pub tenant_id: String,
    pub collection_id: String,
    pub title: String,
    pub format: String,
    pub bytes: i64,
    pub metadata: String,
    pub status: String,
    pub error: Option<String>,
    pub chunk_count: i32,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub processed_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = chunks)]
pub struct NewChunk {
    pub id: String,
    pub tenant_id: String,
    pub collection_id: String,
    pub document_id: String,
    pub ordinal: i32,
    pub heading: Option<String>,
    pub text: String,
    pub start_offset: i64,
    pub end_offset: i64,
    /// Its vector slots (see [`Models::place`]).
    pub embedding: Vec<u8>,
    pub embedding_alt: Option<Vec<u8>>,
    /// The change of model its spare slot holds a vector for.
    pub spare_change: Option<i64>,
}

/// A chunk as search results and citations show it.
#[derive(Debug, Clone, Queryable)]
pub struct ChunkText {
    pub id: String,
    pub document_id: String,
    pub collection_id: String,
    pub ordinal: i32,
    pub heading: Option<String>,
    pub text: String,
    pub title: String,
}

fn is_unique_violation(err: &diesel::result::Error) -> bool {
    matches!(
        err,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Adds a collection; 409 when the tenant has one of that name, 422 past the tenant's cap.
pub fn create_collection(conn: &mut DbConnection, row: &CollectionRow, cap: u32) -> AppResult<()> {
    lock(conn, &format!("tenant:{}", row.tenant_id))?;
    let count: i64 = collections::table
        .filter(collections::tenant_id.eq(&row.tenant_id))
        .count()
        .get_result(conn)?;
    if count >= i64::from(cap) {
        return Err(AppError::Conflict(format!(
            "the tenant has {count} collections, the most it may have"
        ))
        .with_code("ai.too_many_collections"));
    }
    diesel::insert_into(collections::table)
        .values(row)
        .execute(conn)
        .map_err(|e| match is_unique_violation(&e) {
            true => AppError::Conflict(format!("a collection named `{}` exists", row.name))
                .with_code("ai.collection_exists"),
            false => e.into(),
        })?;
    Ok(())
}

pub fn collection(conn: &mut DbConnection, tenant: &str, id: &str) -> AppResult<CollectionRow> {
    collections::table
        .filter(collections::tenant_id.eq(tenant))
        .filter(collections::id.eq(id))
        .select(CollectionRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("collection"))
}

/// The tenant's collections by id, after `after`.
pub fn collections(
    conn: &mut DbConnection,
    tenant: &str,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<CollectionRow>> {
    let mut q = collections::table
        .filter(collections::tenant_id.eq(tenant))
        .select(CollectionRow::as_select())
        .order(collections::id)
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(collections::id.gt(after.to_owned()));
    }
    Ok(q.load(conn)?)
}

/// Documents of each of the tenant's collections (in the order of `ids`).
pub fn document_counts(conn: &mut DbConnection, ids: &[String]) -> AppResult<Vec<i64>> {
    let counts: Vec<(String, i64)> = documents::table
        .filter(documents::collection_id.eq_any(ids))
        .group_by(documents::collection_id)
        .select((documents::collection_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(ids
        .iter()
        .map(|id| counts.iter().find(|(c, _)| c == id).map_or(0, |(_, n)| *n))
        .collect())
}

pub fn rename_collection(
    conn: &mut DbConnection,
    tenant: &str,
    id: &str,
    name: Option<&str>,
    description: Option<Option<&str>>,
) -> AppResult<CollectionRow> {
    let mut row = collection(conn, tenant, id)?;
    if let Some(name) = name {
        row.name = name.to_owned();
    }
    if let Some(description) = description {
        row.description = description.map(str::to_owned);
    }
    row.updated_at = agora_shared::db::now();
    diesel::update(collections::table.find(id))
        .set((
            collections::name.eq(&row.name),
            collections::description.eq(&row.description),
            collections::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .map_err(|e| match is_unique_violation(&e) {
            true => AppError::Conflict(format!("a collection named `{}` exists", row.name))
                .with_code("ai.collection_exists"),
            false => e.into(),
        })?;
    Ok(row)
}

/// Deletes a collection, its documents and their chunks.
pub fn delete_collection(conn: &mut DbConnection, tenant: &str, id: &str) -> AppResult<()> {
    collection(conn, tenant, id)?;
    lock_collection(conn, id)?;
    if let DbConnection::Sqlite(c) = conn {
        diesel::sql_query("DELETE FROM chunk_terms WHERE collection_id = ?")
            .bind::<Text, _>(id)
            .execute(c)?;
    }
    diesel::delete(chunks::table.filter(chunks::collection_id.eq(id))).execute(conn)?;
    diesel::delete(documents::table.filter(documents::collection_id.eq(id))).execute(conn)?;
    diesel::delete(collections::table.find(id)).execute(conn)?;
    Ok(())
}

/// Makes concurrent transactions on `key` take turns (PostgreSQL; SQLite has one writer).
pub(super) fn lock(conn: &mut DbConnection, key: &str) -> AppResult<()> {
    agora_shared::db::xact_lock(conn, &format!("ai:{key}"))
}

/// Takes collection `id`'s lock until the transaction ends: what changes its chunks or its
/// models takes it first, before touching any row (one order, no deadlock).
pub fn lock_collection(conn: &mut DbConnection, id: &str) -> AppResult<()> {
    lock(conn, &format!("collection:{id}"))
}

/// Adds a document to a collection of its tenant, within the collection's cap.
pub fn insert_document(conn: &mut DbConnection, row: &NewDocument, cap: u32) -> AppResult<()> {
    collection(conn, &row.tenant_id, &row.collection_id)?;
    lock_collection(conn, &row.collection_id)?;
    let count: i64 = documents::table
        .filter(documents::collection_id.eq(&row.collection_id))
        .count()
        .get_result(conn)?;
    if count >= i64::from(cap) {
        return Err(AppError::Conflict(format!(
            "the collection has {count} documents, the most it may have"
        ))
        .with_code("ai.too_many_documents"));
    }
    diesel::insert_into(documents::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn document(
    conn: &mut DbConnection,
    tenant: &str,
    collection: &str,
    id: &str,
) -> AppResult<DocumentRow> {
    documents::table
        .filter(documents::tenant_id.eq(tenant))
        .filter(documents::collection_id.eq(collection))
        .filter(documents::id.eq(id))
        .select(DocumentRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("document"))
}

pub fn documents(
    conn: &mut DbConnection,
    tenant: &str,
    collection: &str,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<DocumentRow>> {
    let mut q = documents::table
        .filter(documents::tenant_id.eq(tenant))
        .filter(documents::collection_id.eq(collection))
        .select(DocumentRow::as_select())
        .order(documents::id)
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(documents::id.gt(after.to_owned()));
    }
    Ok(q.load(conn)?)
}

/// A chunk of a document, as the document shows it.
#[derive(Debug, Clone, Queryable)]
pub struct DocumentChunk {
    pub id: String,
    pub ordinal: i32,
    pub heading: Option<String>,
    pub text: String,
}

/// What a worker needs to process a document.
#[derive(Debug, Clone, Queryable)]
pub struct Upload {
    pub tenant_id: String,
    pub collection_id: String,
    pub format: String,
    pub content: Vec<u8>,
    /// The collection's embedding model, and the one it is being embedded with again.
    pub models: Models,
}

/// A collection's embedding model and, while it is re-embedded, its next one; the vector
/// slot of the current model's vectors, and the number of the change under way.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Models {
    pub current: String,
    pub next: Option<String>,
    pub slot: i16,
    pub change: i64,
}

/// A chunk's vector slots as stored: (`embedding`, `embedding_alt`, `spare_change`).
pub type Slots = (Vec<u8>, Option<Vec<u8>>, Option<i64>);

impl Models {
    /// Where a chunk's vectors go: the current model's in the current slot, the next
    /// model's (if a change is under way) in the other, marked with the change.
    pub fn place(&self, current: Vec<u8>, next: Option<Vec<u8>>) -> Slots {
        let change = next.as_ref().map(|_| self.change);
        match self.slot {
            0 => (current, next, change),
            _ => (next.unwrap_or_default(), Some(current), change),
        }
    }
}

/// The models' columns of `collections`, as [`Models`] reads them.
macro_rules! models_columns {
    () => {
        (
            collections::embedding_model,
            collections::next_embedding_model,
            collections::vector_slot,
            collections::reembed_change,
        )
    };
}

/// The chunks of a document, in order.
pub fn document_chunks(
    conn: &mut DbConnection,
    document_id: &str,
) -> AppResult<Vec<DocumentChunk>> {
    Ok(chunks::table
        .filter(chunks::document_id.eq(document_id))
        .order(chunks::ordinal)
        .select((chunks::id, chunks::ordinal, chunks::heading, chunks::text))
        .load(conn)?)
}

/// What a worker needs to process document `id`.
pub fn document_content(conn: &mut DbConnection, id: &str) -> AppResult<Option<Upload>> {
    Ok(documents::table
        .inner_join(collections::table)
        .filter(documents::id.eq(id))
        .select((
            documents::tenant_id,
            documents::collection_id,
            documents::format,
            documents::content,
            models_columns!(),
        ))
        .first(conn)
        .optional()?)
}

/// Whether a document waits to be processed (a read, so that idle workers commit nothing).
pub fn any_waiting(conn: &mut DbConnection, stale_before: NaiveDateTime) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        documents::table
            .filter(documents::status.eq(PROCESSING))
            .filter(
                documents::claimed_at
                    .is_null()
                    .or(documents::claimed_at.lt(stale_before)),
            ),
    ))
    .get_result(conn)?)
}

/// Workers a document may have taken before it is given up: a document that left its worker
/// this often without an outcome (the process died, out of memory, say) would take down
/// every replica in turn.
pub const MAX_CLAIMS: i32 = 3;

/// Takes a document waiting to be processed (or left by a worker since before
/// `stale_before`): its id and the attempt the claim is. Documents never taken go first; one
/// already taken `MAX_CLAIMS` times is marked ERROR instead.
pub fn claim(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    stale_before: NaiveDateTime,
) -> AppResult<Option<(String, i64)>> {
    let waiting: Vec<(String, i64, i32)> = documents::table
        .filter(documents::status.eq(PROCESSING))
        .filter(
            documents::claimed_at
                .is_null()
                .or(documents::claimed_at.lt(stale_before)),
        )
        .order((documents::claims, documents::updated_at))
        .select((documents::id, documents::attempt, documents::claims))
        .limit(5)
        .load(conn)?;
    for (id, attempt, claims) in waiting {
        if claims >= MAX_CLAIMS {
            fail(
                conn,
                &id,
                attempt,
                &format!(
                    "processing stopped {claims} times without finishing; the document may cost too much to read"
                ),
            )?;
            continue;
        }
        // Only one replica's update finds the attempt it read.
        let taken = diesel::update(
            documents::table
                .filter(documents::id.eq(&id))
                .filter(documents::attempt.eq(attempt))
                .filter(documents::status.eq(PROCESSING)),
        )
        .set((
            documents::attempt.eq(attempt + 1),
            documents::claims.eq(documents::claims + 1),
            documents::claimed_at.eq(Some(now)),
        ))
        .execute(conn)?;
        if taken == 1 {
            return Ok(Some((id, attempt + 1)));
        }
    }
    Ok(None)
}

/// Whether the document is still at `attempt` (not reprocessed nor deleted since).
fn current(conn: &mut DbConnection, id: &str, attempt: i64) -> AppResult<Option<String>> {
    Ok(documents::table
        .filter(documents::id.eq(id))
        .filter(documents::attempt.eq(attempt))
        .select(documents::collection_id)
        .first(conn)
        .optional()?)
}

pub(super) fn bump(conn: &mut DbConnection, collection: &str) -> AppResult<()> {
    diesel::update(collections::table.find(collection))
        .set(collections::generation.eq(collections::generation + 1))
        .execute(conn)?;
    Ok(())
}

fn delete_chunks_of(conn: &mut DbConnection, document_id: &str) -> AppResult<()> {
    if let DbConnection::Sqlite(c) = conn {
        diesel::sql_query("DELETE FROM chunk_terms WHERE document_id = ?")
            .bind::<Text, _>(document_id)
            .execute(c)?;
    }
    diesel::delete(chunks::table.filter(chunks::document_id.eq(document_id))).execute(conn)?;
    Ok(())
}

/// What became of a document's chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Completed,
    /// The document was reprocessed or deleted meanwhile: the result is dropped.
    Dropped,
    /// The collection's embedding models are no longer those the chunks were embedded
    /// with: embed them again.
    ModelChanged,
}

/// The embedding models of collection `id`.
pub fn models(conn: &mut DbConnection, id: &str) -> AppResult<Option<Models>> {
    Ok(collections::table
        .find(id)
        .select(models_columns!())
        .first(conn)
        .optional()?)
}

/// Replaces a document's chunks, embedded by `embedded_with`, and marks it COMPLETED, if it
/// is still at `attempt` and its collection's models are still those.
pub fn complete(
    conn: &mut DbConnection,
    id: &str,
    attempt: i64,
    rows: &[NewChunk],
    embedded_with: &Models,
) -> AppResult<Stored> {
    let Some(collection) = current(conn, id, attempt)? else {
        return Ok(Stored::Dropped);
    };
    // A change of model takes this lock too: chunks are never written by the model before.
    lock_collection(conn, &collection)?;
    // Reprocessed or deleted while this waited for the lock: dropped.
    if current(conn, id, attempt)?.is_none() {
        return Ok(Stored::Dropped);
    }
    if models(conn, &collection)?.as_ref() != Some(embedded_with) {
        return Ok(Stored::ModelChanged);
    }
    delete_chunks_of(conn, id)?;
    for batch in rows.chunks(500) {
        match conn {
            DbConnection::Sqlite(c) => diesel::insert_into(chunks::table)
                .values(batch)
                .execute(c)?,
            DbConnection::Postgres(c) => diesel::insert_into(chunks::table)
                .values(batch)
                .execute(c)?,
        };
    }
    if let DbConnection::Sqlite(c) = conn {
        for row in rows {
            let indexed = match &row.heading {
                Some(h) => format!("{h}\n{}", row.text),
                None => row.text.clone(),
            };
            diesel::sql_query(
                "INSERT INTO chunk_terms (chunk_id, tenant_id, collection_id, document_id, text) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind::<Text, _>(&row.id)
            .bind::<Text, _>(&row.tenant_id)
            .bind::<Text, _>(&row.collection_id)
            .bind::<Text, _>(&row.document_id)
            .bind::<Text, _>(indexed)
            .execute(c)?;
        }
    }
    let now = agora_shared::db::now();
    diesel::update(documents::table.find(id))
        .set((
            documents::status.eq(COMPLETED),
            documents::error.eq(None::<String>),
            documents::chunk_count.eq(rows.len() as i32),
            documents::claimed_at.eq(None::<NaiveDateTime>),
            documents::processed_at.eq(Some(now)),
            documents::updated_at.eq(now),
        ))
        .execute(conn)?;
    bump(conn, &collection)?;
    Ok(Stored::Completed)
}

/// Marks a document ERROR with `reason`, if it is still at `attempt`; its chunks go (it is
/// no longer what they were cut from).
pub fn fail(conn: &mut DbConnection, id: &str, attempt: i64, reason: &str) -> AppResult<()> {
    let Some(collection) = current(conn, id, attempt)? else {
        return Ok(());
    };
    lock_collection(conn, &collection)?;
    if current(conn, id, attempt)?.is_none() {
        return Ok(());
    }
    delete_chunks_of(conn, id)?;
    let now = agora_shared::db::now();
    diesel::update(documents::table.find(id))
        .set((
            documents::status.eq(ERROR),
            documents::error.eq(Some(reason)),
            documents::chunk_count.eq(0),
            documents::claimed_at.eq(None::<NaiveDateTime>),
            documents::processed_at.eq(Some(now)),
            documents::updated_at.eq(now),
        ))
        .execute(conn)?;
    bump(conn, &collection)
}

/// Puts a document back for the workers to process again; its current chunks stay
/// searchable until the new ones replace them. A worker still processing an earlier attempt
/// has its result dropped.
pub fn reprocess(
    conn: &mut DbConnection,
    tenant: &str,
    collection: &str,
    id: &str,
) -> AppResult<()> {
    if document(conn, tenant, collection, id)?.status == UPLOADING {
        return Err(not_uploaded());
    }
    let now = agora_shared::db::now();
    diesel::update(documents::table.find(id))
        .set((
            documents::status.eq(PROCESSING),
            documents::error.eq(None::<String>),
            documents::attempt.eq(documents::attempt + 1),
            documents::claims.eq(0),
            documents::claimed_at.eq(None::<NaiveDateTime>),
            documents::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

fn not_uploaded() -> AppError {
    AppError::Conflict("the document's content has not been uploaded".into())
        .with_code("ai.document_uploading")
}

/// Gives an UPLOADING document its content, and it becomes PROCESSING (held by this request
/// when `claim` is set, for a worker otherwise); 409 if it is not (or no longer) UPLOADING.
pub fn upload(
    conn: &mut DbConnection,
    tenant: &str,
    collection: &str,
    id: &str,
    content: &[u8],
    claim: bool,
) -> AppResult<()> {
    document(conn, tenant, collection, id)?;
    let now = agora_shared::db::now();
    // Of two uploads at once, one finds the document UPLOADING.
    let given = diesel::update(
        documents::table
            .filter(documents::id.eq(id))
            .filter(documents::status.eq(UPLOADING)),
    )
    .set((
        documents::content.eq(content),
        documents::bytes.eq(content.len() as i64),
        documents::status.eq(PROCESSING),
        documents::attempt.eq(1),
        documents::claims.eq(0),
        documents::claimed_at.eq(claim.then_some(now)),
        documents::updated_at.eq(now),
    ))
    .execute(conn)?;
    if given == 0 {
        return Err(
            AppError::Conflict("the document's content was uploaded already".into())
                .with_code("ai.document_uploaded"),
        );
    }
    Ok(())
}

/// Whether a document is left UPLOADING since before `before` (a read, so that idle workers
/// commit nothing).
pub fn any_expired(conn: &mut DbConnection, before: NaiveDateTime) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        documents::table
            .filter(documents::status.eq(UPLOADING))
            .filter(documents::created_at.lt(before)),
    ))
    .get_result(conn)?)
}

/// Deletes documents left UPLOADING since before `before` (their content never came);
/// returns how many.
pub fn expire_uploads(conn: &mut DbConnection, before: NaiveDateTime) -> AppResult<usize> {
    Ok(diesel::delete(
        documents::table
            .filter(documents::status.eq(UPLOADING))
            .filter(documents::created_at.lt(before)),
    )
    .execute(conn)?)
}

pub fn delete_document(
    conn: &mut DbConnection,
    tenant: &str,
    collection: &str,
    id: &str,
) -> AppResult<()> {
    document(conn, tenant, collection, id)?;
    lock_collection(conn, collection)?;
    delete_chunks_of(conn, id)?;
    diesel::delete(documents::table.find(id)).execute(conn)?;
    bump(conn, collection)
}

/// The generation and embedding model of each of the tenant's collections among `ids`
/// (others are left out).
pub fn generations(
    conn: &mut DbConnection,
    tenant: &str,
    ids: &[String],
) -> AppResult<Vec<(String, i64, String)>> {
    Ok(collections::table
        .filter(collections::tenant_id.eq(tenant))
        .filter(collections::id.eq_any(ids))
        .select((
            collections::id,
            collections::generation,
            collections::embedding_model,
        ))
        .load(conn)?)
}

/// A chunk's vector: (chunk id, document id, embedding).
pub type ChunkVector = (String, String, Vec<u8>);

/// Every chunk vector of a collection by its current model, and the collection's generation
/// they are of.
pub fn vectors(
    conn: &mut DbConnection,
    tenant: &str,
    collection: &str,
) -> AppResult<(i64, Vec<ChunkVector>)> {
    let Some((generation, slot)) = collections::table
        .filter(collections::tenant_id.eq(tenant))
        .filter(collections::id.eq(collection))
        .select((collections::generation, collections::vector_slot))
        .first::<(i64, i16)>(conn)
        .optional()?
    else {
        return Ok((0, Vec::new()));
    };
    let of_collection = chunks::table
        .filter(chunks::tenant_id.eq(tenant))
        .filter(chunks::collection_id.eq(collection));
    let rows = match slot {
        0 => of_collection
            .select((chunks::id, chunks::document_id, chunks::embedding))
            .load(conn)?,
        _ => of_collection
            .select((
                chunks::id,
                chunks::document_id,
                chunks::embedding_alt.assume_not_null(),
            ))
            .filter(chunks::embedding_alt.is_not_null())
            .load(conn)?,
    };
    Ok((generation, rows))
}

/// The ids and metadata (JSON) of the completed documents of the tenant's collections.
pub fn metadata(
    conn: &mut DbConnection,
    tenant: &str,
    collections: &[String],
) -> AppResult<Vec<(String, String)>> {
    Ok(documents::table
        .filter(documents::tenant_id.eq(tenant))
        .filter(documents::collection_id.eq_any(collections))
        .filter(documents::status.eq(COMPLETED))
        .select((documents::id, documents::metadata))
        .load(conn)?)
}

/// The tenant's chunks among `ids`, with their documents' titles.
pub fn chunk_texts(
    conn: &mut DbConnection,
    tenant: &str,
    ids: &[String],
) -> AppResult<Vec<ChunkText>> {
    Ok(chunks::table
        .inner_join(documents::table)
        .filter(chunks::tenant_id.eq(tenant))
        .filter(chunks::id.eq_any(ids))
        .select((
            chunks::id,
            chunks::document_id,
            chunks::collection_id,
            chunks::ordinal,
            chunks::heading,
            chunks::text,
            documents::title,
        ))
        .load(conn)?)
}

#[derive(QueryableByName)]
struct Hit {
    #[diesel(sql_type = Text)]
    chunk_id: String,
    #[diesel(sql_type = Double)]
    score: f64,
}

/// Keyword search: chunks of the tenant's `collections` holding any of `terms`, best first
/// (BM25 on SQLite, cover density on PostgreSQL), scores higher for better.
pub fn keyword(
    conn: &mut DbConnection,
    tenant: &str,
    collections: &[String],
    terms: &[String],
    limit: i64,
) -> AppResult<Vec<(String, f64)>> {
    if terms.is_empty() || collections.is_empty() {
        return Ok(Vec::new());
    }
    let hits: Vec<Hit> = match conn {
        DbConnection::Sqlite(c) => {
            let expr = terms
                .iter()
                .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(" OR ");
            let marks = vec!["?"; collections.len()].join(", ");
            let sql = format!(
                "SELECT chunk_id, -bm25(chunk_terms) AS score FROM chunk_terms \
                 WHERE chunk_terms MATCH ? AND tenant_id = ? AND collection_id IN ({marks}) \
                 ORDER BY score DESC, chunk_id LIMIT ?"
            );
            let mut q = diesel::sql_query(sql)
                .into_boxed()
                .bind::<Text, _>(format!("text : ({expr})"))
                .bind::<Text, _>(tenant.to_owned());
            for id in collections {
                q = q.bind::<Text, _>(id.clone());
            }
            q.bind::<BigInt, _>(limit).load(c)?
        }
        DbConnection::Postgres(c) => {
            let expr = terms
                .iter()
                .map(|t| format!("'{}'", t.replace('\\', "").replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(" | ");
            diesel::sql_query(
                "SELECT id AS chunk_id, ts_rank_cd(terms, q)::float8 AS score \
                 FROM chunks, to_tsquery('simple', $1) q \
                 WHERE terms @@ q AND tenant_id = $2 AND collection_id = ANY($3) \
                 ORDER BY score DESC, id LIMIT $4",
            )
            .bind::<Text, _>(expr)
            .bind::<Text, _>(tenant)
            .bind::<diesel::sql_types::Array<Text>, _>(collections)
            .bind::<BigInt, _>(limit)
            .load(c)?
        }
    };
    Ok(hits.into_iter().map(|h| (h.chunk_id, h.score)).collect())
}
