//! Collections and their documents: create, list, read, rename, delete; documents given as
//! JSON text or uploaded as a file (multipart), processed at once when small, in the
//! background otherwise; reprocess; delete.

use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, rfc3339},
    http::{Caller, Page, PageParams, ValidJson, json::double_option},
};

use super::{clean, require_manage};
use crate::{
    AiState,
    knowledge::{
        extract::{self, Format},
        process,
        reembed::{self, Progress},
        store::{self, CollectionRow, DocumentRow, NewDocument, PROCESSING, UPLOADING},
    },
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/ai/collections", web::post().to(create))
        .route("/api/v1/ai/collections", web::get().to(list))
        .route("/api/v1/ai/collections/{id}", web::get().to(get))
        .route("/api/v1/ai/collections/{id}", web::patch().to(update))
        .route("/api/v1/ai/collections/{id}", web::delete().to(delete))
        .route(
            "/api/v1/ai/collections/{id}/documents",
            web::post().to(add_document),
        )
        .route(
            "/api/v1/ai/collections/{id}/documents",
            web::get().to(documents),
        )
        .route(
            "/api/v1/ai/collections/{id}/documents/{doc_id}",
            web::get().to(document),
        )
        .route(
            "/api/v1/ai/collections/{id}/documents/{doc_id}",
            web::delete().to(delete_document),
        )
        .route(
            "/api/v1/ai/collections/{id}/documents/{doc_id}/content",
            web::put().to(upload_content),
        )
        .route(
            "/api/v1/ai/collections/{id}/documents/{doc_id}/reprocess",
            web::post().to(reprocess),
        );
}

#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct CollectionIn {
    /// Unique in the tenant, 1 to 100 characters.
    pub name: String,
    pub description: Option<String>,
    /// The model its chunks are embedded with: `lexical-hash-1024` (built in) or a static
    /// model of `ai.embedding_models`; by default `ai.default_embedding_model`.
    pub embedding_model: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct CollectionPatch {
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Another model: the chunks are embedded again in the background (`reembedding`
    /// shows how far), and searches use the current vectors until all are done. The
    /// current model stops a change under way.
    pub embedding_model: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionOut {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The model its chunks are embedded with (and searches embed queries with).
    pub embedding_model: String,
    /// A change of embedding model under way: its chunks embedded again so far.
    pub reembedding: Option<Progress>,
    pub document_count: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionPage {
    pub items: Vec<CollectionOut>,
    pub next_cursor: Option<String>,
}

fn render_collection(
    row: CollectionRow,
    document_count: i64,
    reembedding: Option<Progress>,
) -> CollectionOut {
    CollectionOut {
        id: row.id,
        name: row.name,
        description: row.description,
        embedding_model: row.embedding_model,
        reembedding,
        document_count,
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
    }
}

/// The embedding model a request names (or the default), if this service has it.
fn embedding_model(state: &AiState, name: Option<&str>) -> AppResult<String> {
    let name = name.unwrap_or(state.embedders.default_model());
    match state.embedders.get(name) {
        Some(model) => Ok(model.name().to_owned()),
        None => Err(AppError::invalid(
            "embedding_model",
            format!(
                "`{name}` is not an embedding model of this service ({})",
                state.embedders.names().join(", ")
            ),
        )),
    }
}

/// A collection as shown, read in the same transaction as its counts.
fn shown(conn: &mut DbConnection, row: CollectionRow) -> AppResult<CollectionOut> {
    let n = store::document_counts(conn, std::slice::from_ref(&row.id))?[0];
    let progress = reembed::progress(conn, &row)?;
    Ok(render_collection(row, n, progress))
}

fn description(value: Option<&str>) -> AppResult<Option<String>> {
    value
        .map(|d| match d.chars().count() {
            0..=2000 => Ok(d.trim().to_owned()),
            _ => Err(AppError::invalid(
                "description",
                "must be at most 2000 characters",
            )),
        })
        .transpose()
}

#[utoipa::path(post, path = "/api/v1/ai/collections", tag = "ai", request_body = CollectionIn,
    responses((status = 201, body = CollectionOut), (status = 403, description = "needs TENANT_ADMIN or ai:manage"),
        (status = 409, description = "a collection of that name exists, or the tenant has as many as it may"), (status = 422)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AiState>,
    caller: Caller,
    body: ValidJson<CollectionIn>,
) -> AppResult<HttpResponse> {
    require_manage(&caller)?;
    let now = agora_shared::db::now();
    let row = CollectionRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: caller.tenant_id.clone(),
        name: clean("name", &body.0.name, 100)?,
        description: description(body.0.description.as_deref())?,
        embedding_model: embedding_model(&state, body.0.embedding_model.as_deref())?,
        generation: 0,
        created_by: caller.user_id.clone(),
        created_at: now,
        updated_at: now,
        next_embedding_model: None,
        reembed_started_at: None,
        reembed_change: 0,
    };
    let cap = state.config.max_collections_per_tenant;
    let stored = row.clone();
    state
        .db
        .write(move |conn| store::create_collection(conn, &stored, cap))
        .await?;
    Ok(HttpResponse::Created().json(render_collection(row, 0, None)))
}

#[utoipa::path(get, path = "/api/v1/ai/collections", tag = "ai",
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = CollectionPage), (status = 422)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AiState>,
    caller: Caller,
    page: web::Query<PageParams>,
) -> AppResult<HttpResponse> {
    let (limit, after) = (page.limit()?, page.after()?);
    let tenant = caller.tenant_id.clone();
    let page = state
        .db
        .read(move |conn| {
            let rows = store::collections(conn, &tenant, after.as_deref(), limit)?;
            let page = Page::from_rows(rows, limit, |c| c.id.clone());
            let ids: Vec<String> = page.items.iter().map(|c| c.id.clone()).collect();
            let counts = store::document_counts(conn, &ids)?;
            let mut items = Vec::with_capacity(page.items.len());
            for (row, n) in page.items.into_iter().zip(counts) {
                let progress = reembed::progress(conn, &row)?;
                items.push(render_collection(row, n, progress));
            }
            Ok(Page {
                items,
                next_cursor: page.next_cursor,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(get, path = "/api/v1/ai/collections/{id}", tag = "ai",
    responses((status = 200, body = CollectionOut), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AiState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (tenant, id) = (caller.tenant_id.clone(), id.into_inner());
    let out = state
        .db
        .read(move |conn| {
            let row = store::collection(conn, &tenant, &id)?;
            shown(conn, row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(patch, path = "/api/v1/ai/collections/{id}", tag = "ai", request_body = CollectionPatch,
    responses((status = 200, body = CollectionOut), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AiState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<CollectionPatch>,
) -> AppResult<HttpResponse> {
    require_manage(&caller)?;
    let name = body
        .0
        .name
        .as_deref()
        .map(|n| clean("name", n, 100))
        .transpose()?;
    let description = match body.0.description {
        None => None,
        Some(d) => Some(description(d.as_deref())?),
    };
    let model = body
        .0
        .embedding_model
        .as_deref()
        .map(|m| embedding_model(&state, Some(m)))
        .transpose()?;
    let (tenant, id) = (caller.tenant_id.clone(), id.into_inner());
    let now = agora_shared::db::now();
    let out = state
        .db
        .write(move |conn| {
            if model.is_some() {
                store::lock_collection(conn, &id)?;
            }
            let mut row = store::rename_collection(
                conn,
                &tenant,
                &id,
                name.as_deref(),
                description.as_ref().map(|d| d.as_deref()),
            )?;
            if let Some(model) = &model {
                row = reembed::change_model(conn, &tenant, &id, model, now)?;
            }
            shown(conn, row)
        })
        .await?;
    if out.reembedding.is_some() {
        state.wake.notify_one();
    }
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(delete, path = "/api/v1/ai/collections/{id}", tag = "ai",
    responses((status = 204, description = "deleted, with its documents and their chunks"), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<AiState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    require_manage(&caller)?;
    let (tenant, id) = (caller.tenant_id.clone(), id.into_inner());
    state
        .db
        .write(move |conn| store::delete_collection(conn, &tenant, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A document given as text, or announced to have its file uploaded next (no `text`).
#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct DocumentIn {
    /// 1 to 300 characters.
    pub title: String,
    /// The document's text (Markdown headings, `#`, become its chunks' context). Without
    /// it, the document is UPLOADING until its content is PUT to `upload_url`.
    pub text: Option<String>,
    /// With `text`: `markdown` (the default) or `text`. Without: the format of the file to
    /// come (`text`, `markdown`, `html`, `pdf` or `docx`), which is required.
    pub format: Option<String>,
    /// A JSON object (at most 32 keys, 8 KiB) searches can filter on.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChunkOut {
    pub id: String,
    pub ordinal: i32,
    pub heading: Option<String>,
    pub text: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentOut {
    pub id: String,
    pub collection_id: String,
    pub title: String,
    /// text, markdown, html, pdf or docx.
    pub format: String,
    pub bytes: i64,
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// UPLOADING (its content not yet given), PROCESSING, COMPLETED or ERROR.
    pub status: String,
    /// Where to PUT the content of an UPLOADING document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_url: Option<String>,
    /// Why processing failed (ERROR only).
    pub error: Option<String>,
    pub chunk_count: i32,
    pub created_at: String,
    pub updated_at: String,
    pub processed_at: Option<String>,
    /// The document's chunks, in order (reading one document only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<Vec<ChunkOut>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentPage {
    pub items: Vec<DocumentOut>,
    pub next_cursor: Option<String>,
}

fn render_document(row: DocumentRow, chunks: Option<Vec<ChunkOut>>) -> DocumentOut {
    let upload_url = (row.status == UPLOADING).then(|| {
        format!(
            "/api/v1/ai/collections/{}/documents/{}/content",
            row.collection_id, row.id
        )
    });
    DocumentOut {
        upload_url,
        id: row.id,
        collection_id: row.collection_id,
        title: row.title,
        format: row.format,
        bytes: row.bytes,
        metadata: serde_json::from_str(&row.metadata).unwrap_or(Value::Object(Map::new())),
        status: row.status,
        error: row.error,
        chunk_count: row.chunk_count,
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
        processed_at: row.processed_at.map(rfc3339),
        chunks,
    }
}

/// Checks a document's metadata: an object of at most 32 keys and 8 KiB.
fn metadata(value: Option<Value>) -> AppResult<String> {
    let value = value.unwrap_or(Value::Object(Map::new()));
    let Value::Object(map) = &value else {
        return Err(AppError::invalid("metadata", "must be a JSON object"));
    };
    if map.len() > 32 {
        return Err(AppError::invalid("metadata", "must have at most 32 keys"));
    }
    let text = value.to_string();
    if text.len() > 8192 {
        return Err(AppError::invalid(
            "metadata",
            "must be at most 8 KiB as JSON",
        ));
    }
    Ok(text)
}

/// A document as received, before it is stored (no content: to be uploaded).
struct Received {
    title: String,
    format: Format,
    content: Option<Vec<u8>>,
    metadata: String,
}

#[utoipa::path(post, path = "/api/v1/ai/collections/{id}/documents", tag = "ai",
    request_body(description = "JSON {title, text}, or multipart/form-data with `file` (txt, md, html, pdf or docx) and optionally `title` and `metadata` (a JSON object as text)",
        content(
            (DocumentIn = "application/json"),
            (Object = "multipart/form-data"),
        )),
    responses((status = 201, description = "processed in the request: COMPLETED (searchable now) or ERROR", body = DocumentOut),
        (status = 202, description = "stored; PROCESSING in the background (poll the document)", body = DocumentOut),
        (status = 403), (status = 404), (status = 409, description = "the collection has as many documents as it may"),
        (status = 413), (status = 415, description = "a file in a format not taken, or a body neither JSON nor multipart"), (status = 422)),
    security(("bearer" = [])))]
pub async fn add_document(
    state: web::Data<AiState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> AppResult<HttpResponse> {
    require_manage(&caller)?;
    let collection = id.into_inner();
    // The collection first: nothing is read of a body sent to another tenant's.
    let (tenant, c) = (caller.tenant_id.clone(), collection.clone());
    state
        .db
        .read(move |conn| store::collection(conn, &tenant, &c))
        .await?;
    let essence = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let max = state.config.max_document_bytes;
    let received = if essence == "multipart/form-data" {
        from_multipart(Multipart::new(req.headers(), payload), max).await?
    } else if essence == "application/json" || essence.ends_with("+json") {
        from_json(payload, agora_shared::http::json::content_length(&req), max).await?
    } else {
        return Err(AppError::UnsupportedMediaType(
            "send JSON {title, text} or multipart/form-data with a `file`".into(),
        ));
    };
    let now = agora_shared::db::now();
    let announced = received.content.is_none();
    let content = received.content.unwrap_or_default();
    let inline = !announced && inline(&state, received.format, content.len());
    let row = NewDocument {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: caller.tenant_id.clone(),
        collection_id: collection.clone(),
        title: received.title,
        format: received.format.as_str().into(),
        bytes: content.len() as i64,
        content,
        metadata: received.metadata,
        status: if announced { UPLOADING } else { PROCESSING }.into(),
        // Inline, this request holds the claim (a worker takes it over if the process dies).
        attempt: i64::from(!announced),
        claimed_at: inline.then_some(now),
        created_by: caller.user_id.clone(),
        created_at: now,
        updated_at: now,
    };
    let doc_id = row.id.clone();
    let cap = state.config.max_documents_per_collection;
    state
        .db
        .write(move |conn| store::insert_document(conn, &row, cap))
        .await?;
    if announced {
        let created = actix_web::http::StatusCode::CREATED;
        return answer(&state, &caller.tenant_id, &collection, &doc_id, created).await;
    }
    given(&state, &caller.tenant_id, &collection, &doc_id, inline).await
}

/// Whether a document is processed in the request that gives it.
fn inline(state: &AiState, format: Format, bytes: usize) -> bool {
    format.is_light() && bytes <= state.config.inline_bytes
}

/// Processes a document just given (in the request when `inline`, by a worker otherwise)
/// and answers with it.
async fn given(
    state: &web::Data<AiState>,
    tenant: &str,
    collection: &str,
    id: &str,
    inline: bool,
) -> AppResult<HttpResponse> {
    // 202 for a document handed to the workers, however fast one of them was; 201 for one
    // processed here (a claim taken over by a worker, after a failure, still reads
    // PROCESSING: 202).
    let status = if inline {
        process::process(state, id, 1).await?;
        actix_web::http::StatusCode::CREATED
    } else {
        state.wake.notify_one();
        actix_web::http::StatusCode::ACCEPTED
    };
    answer(state, tenant, collection, id, status).await
}

/// The document as it stands, with `status` (202 whenever it is still PROCESSING).
async fn answer(
    state: &AiState,
    tenant: &str,
    collection: &str,
    id: &str,
    status: actix_web::http::StatusCode,
) -> AppResult<HttpResponse> {
    let (tenant, collection, id) = (tenant.to_owned(), collection.to_owned(), id.to_owned());
    let out = state
        .db
        .read(move |conn| store::document(conn, &tenant, &collection, &id))
        .await?;
    let status = match out.status.as_str() {
        PROCESSING => actix_web::http::StatusCode::ACCEPTED,
        _ => status,
    };
    Ok(HttpResponse::build(status).json(render_document(out, None)))
}

#[utoipa::path(put, path = "/api/v1/ai/collections/{id}/documents/{doc_id}/content", tag = "ai",
    request_body(description = "The file's bytes, in the format the document was announced with", content(
        (Vec<u8> = "application/octet-stream"),
    )),
    responses((status = 201, description = "processed in the request: COMPLETED or ERROR", body = DocumentOut),
        (status = 202, description = "PROCESSING in the background", body = DocumentOut),
        (status = 403), (status = 404), (status = 409, description = "the document is not UPLOADING (its content was given)"),
        (status = 413), (status = 422, description = "an empty body")),
    security(("bearer" = [])))]
pub async fn upload_content(
    state: web::Data<AiState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> AppResult<HttpResponse> {
    require_manage(&caller)?;
    let max = state.config.max_document_bytes;
    let too_large = || AppError::PayloadTooLarge(format!("a document is at most {max} bytes"));
    // Too large by its own account: refused before anything is read.
    let declared = agora_shared::http::json::content_length(&req);
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let (collection, id) = path.into_inner();
    // The document first: nothing is read of a body for another tenant's, or one given.
    let (tenant, c, d) = (caller.tenant_id.clone(), collection.clone(), id.clone());
    let doc = state
        .db
        .read(move |conn| store::document(conn, &tenant, &c, &d))
        .await?;
    if doc.status != UPLOADING {
        return Err(
            AppError::Conflict("the document's content was uploaded already".into())
                .with_code("ai.document_uploaded"),
        );
    }
    let body = agora_shared::http::json::read_body(&mut payload, declared, max, too_large).await?;
    if body.is_empty() {
        return Err(AppError::invalid("body", "is empty: send the file's bytes"));
    }
    let format = Format::parse(&doc.format).unwrap_or(Format::Text);
    let inline = inline(&state, format, body.len());
    let (tenant, c, d) = (caller.tenant_id.clone(), collection.clone(), id.clone());
    state
        .db
        .write(move |conn| store::upload(conn, &tenant, &c, &d, &body, inline))
        .await?;
    given(&state, &caller.tenant_id, &collection, &id, inline).await
}

async fn from_json(
    mut payload: web::Payload,
    declared: Option<usize>,
    max: usize,
) -> AppResult<Received> {
    // The JSON around the text: escapes can double it, and the title and metadata add a bit.
    let limit = max * 2 + 64 * 1024;
    let too_large = || AppError::PayloadTooLarge(format!("a document is at most {max} bytes"));
    let body =
        agora_shared::http::json::read_body(&mut payload, declared, limit, too_large).await?;
    let input: DocumentIn = agora_shared::http::json::parse(&body)?;
    let title = clean("title", &input.title, 300)?;
    let Some(text) = input.text else {
        // Announced: its file comes next.
        let format = input.format.as_deref().ok_or_else(|| {
            AppError::invalid(
                "format",
                "is required without `text`: the format of the file to upload",
            )
        })?;
        let format = Format::parse(format).ok_or_else(|| {
            AppError::invalid("format", "must be text, markdown, html, pdf or docx")
        })?;
        return Ok(Received {
            title,
            format,
            content: None,
            metadata: metadata(input.metadata)?,
        });
    };
    if text.trim().is_empty() {
        return Err(AppError::invalid("text", "must not be empty"));
    }
    if text.len() > max {
        return Err(AppError::PayloadTooLarge(format!(
            "a document is at most {max} bytes"
        )));
    }
    let format = match input.format.as_deref() {
        None | Some("markdown") => Format::Markdown,
        Some("text") => Format::Text,
        Some(_) => return Err(AppError::invalid("format", "must be markdown or text")),
    };
    Ok(Received {
        title,
        format,
        content: Some(text.into_bytes()),
        metadata: metadata(input.metadata)?,
    })
}

async fn from_multipart(mut form: Multipart, max: usize) -> AppResult<Received> {
    let mut file: Option<(Format, Vec<u8>, Option<String>)> = None;
    let mut title = None;
    let mut meta = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| AppError::BadRequest(format!("multipart: {e}")))?;
        let name = field.name().unwrap_or_default().to_owned();
        let limit = match name.as_str() {
            "file" => max,
            "title" | "metadata" => 16 * 1024,
            other => {
                return Err(AppError::invalid(
                    other,
                    "is not a field of a document upload (file, title, metadata)",
                ));
            }
        };
        let file_name = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .map(str::to_owned);
        let content_type = field.content_type().map(|m| m.essence_str().to_owned());
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| AppError::BadRequest(format!("multipart: {e}")))?;
            if bytes.len() + chunk.len() > limit {
                return Err(match name.as_str() {
                    "file" => {
                        AppError::PayloadTooLarge(format!("a document is at most {max} bytes"))
                    }
                    _ => AppError::invalid(&name, "must be at most 16 KiB"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "file" => {
                if file.is_some() {
                    return Err(AppError::invalid("file", "must be given once"));
                }
                let format = Format::detect(file_name.as_deref(), content_type.as_deref())
                    .ok_or_else(|| {
                        AppError::UnsupportedMediaType(format!(
                            "a document must be {}",
                            extract::ACCEPTED
                        ))
                    })?;
                file = Some((format, bytes, file_name));
            }
            "title" => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| AppError::invalid("title", "must be UTF-8 text"))?;
                title = Some(clean("title", &text, 300)?);
            }
            _ => {
                let value: Value = serde_json::from_slice(&bytes)
                    .map_err(|_| AppError::invalid("metadata", "must be a JSON object"))?;
                meta = Some(value);
            }
        }
    }
    let (format, content, file_name) =
        file.ok_or_else(|| AppError::invalid("file", "is required"))?;
    if content.is_empty() {
        return Err(AppError::invalid("file", "is empty"));
    }
    let title = match title {
        Some(t) => t,
        None => clean("title", file_name.as_deref().unwrap_or("untitled"), 300)
            .unwrap_or_else(|_| "untitled".into()),
    };
    Ok(Received {
        title,
        format,
        content: Some(content),
        metadata: metadata(meta)?,
    })
}

#[utoipa::path(get, path = "/api/v1/ai/collections/{id}/documents", tag = "ai",
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = DocumentPage), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn documents(
    state: web::Data<AiState>,
    caller: Caller,
    id: web::Path<String>,
    page: web::Query<PageParams>,
) -> AppResult<HttpResponse> {
    let (limit, after) = (page.limit()?, page.after()?);
    let (tenant, id) = (caller.tenant_id.clone(), id.into_inner());
    let page = state
        .db
        .read(move |conn| {
            store::collection(conn, &tenant, &id)?;
            let rows = store::documents(conn, &tenant, &id, after.as_deref(), limit)?;
            Ok(Page::from_rows(rows, limit, |d| d.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page.map(|d| render_document(d, None))))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DocumentQuery {
    /// Leave out the chunks.
    #[serde(default)]
    pub without_chunks: bool,
}

#[utoipa::path(get, path = "/api/v1/ai/collections/{id}/documents/{doc_id}", tag = "ai", params(DocumentQuery),
    responses((status = 200, description = "the document, with its chunks", body = DocumentOut), (status = 404)),
    security(("bearer" = [])))]
pub async fn document(
    state: web::Data<AiState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<DocumentQuery>,
) -> AppResult<HttpResponse> {
    let (collection, id) = path.into_inner();
    let tenant = caller.tenant_id.clone();
    let with_chunks = !query.without_chunks;
    let out = state
        .db
        .read(move |conn| {
            let row = store::document(conn, &tenant, &collection, &id)?;
            let chunks = match with_chunks {
                true => Some(
                    store::document_chunks(conn, &row.id)?
                        .into_iter()
                        .map(|c| ChunkOut {
                            id: c.id,
                            ordinal: c.ordinal,
                            heading: c.heading,
                            text: c.text,
                        })
                        .collect(),
                ),
                false => None,
            };
            Ok(render_document(row, chunks))
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(delete, path = "/api/v1/ai/collections/{id}/documents/{doc_id}", tag = "ai",
    responses((status = 204, description = "deleted with its chunks"), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete_document(
    state: web::Data<AiState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    require_manage(&caller)?;
    let (collection, id) = path.into_inner();
    let tenant = caller.tenant_id.clone();
    state
        .db
        .write(move |conn| store::delete_document(conn, &tenant, &collection, &id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/ai/collections/{id}/documents/{doc_id}/reprocess", tag = "ai",
    responses((status = 202, description = "PROCESSING again in the background; its chunks stay searchable until replaced", body = DocumentOut),
        (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn reprocess(
    state: web::Data<AiState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    require_manage(&caller)?;
    let (collection, id) = path.into_inner();
    let tenant = caller.tenant_id.clone();
    let out = state
        .db
        .write(move |conn| {
            store::reprocess(conn, &tenant, &collection, &id)?;
            store::document(conn, &tenant, &collection, &id)
        })
        .await?;
    state.wake.notify_one();
    Ok(HttpResponse::Accepted().json(render_document(out, None)))
}
