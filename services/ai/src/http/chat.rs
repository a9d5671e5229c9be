//! The field-force assistant's chat: conversations kept per user (each its user's own: no
//! one else, in the tenant or not, finds it), each message answered by `crate::assistant`.

use actix_web::{HttpResponse, web};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, rfc3339},
    http::{Caller, Page, PageParams, ValidJson},
};

use crate::{
    AiState, assistant,
    schema::{conversation_messages as messages, conversations},
};

/// Longest message, in characters.
const MAX_MESSAGE_CHARS: usize = 4000;

/// Messages a conversation holds at most (its user starts another past it).
const MAX_MESSAGES: i64 = 400;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/ai/chat", web::post().to(chat))
        .route("/api/v1/ai/chat/conversations", web::get().to(list))
        .route("/api/v1/ai/chat/conversations/{id}", web::get().to(get))
        .route(
            "/api/v1/ai/chat/conversations/{id}",
            web::delete().to(delete),
        );
}

#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct ChatIn {
    /// 1 to 4,000 characters.
    pub message: String,
    /// The conversation to continue (none: a new one).
    pub conversation_id: Option<String>,
    /// A chat model alias to answer with (it calls the look-ups as tools); none or `local`:
    /// the built-in assistant, which reads questions by rules.
    pub model: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOut {
    /// user or assistant.
    pub role: String,
    pub content: String,
    /// What the assistant looked up.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatOut {
    pub conversation_id: String,
    pub reply: MessageOut,
    pub provider: String,
    pub model: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationOut {
    pub id: String,
    pub title: String,
    pub created_at: String,
    pub updated_at: String,
    /// Reading one conversation: its messages, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<MessageOut>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    pub items: Vec<ConversationOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = conversations)]
struct ConversationRow {
    id: String,
    tenant_id: String,
    user_id: String,
    title: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = messages)]
struct MessageRow {
    role: String,
    content: String,
    data: Option<String>,
    created_at: NaiveDateTime,
}

fn render_message(m: MessageRow) -> MessageOut {
    MessageOut {
        role: m.role,
        content: m.content,
        data: m.data.and_then(|d| serde_json::from_str(&d).ok()),
        created_at: rfc3339(m.created_at),
    }
}

fn render(c: ConversationRow, messages: Option<Vec<MessageOut>>) -> ConversationOut {
    ConversationOut {
        id: c.id,
        title: c.title,
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
        messages,
    }
}

/// The caller's own conversation `id` (anyone else's is not found).
fn owned(conn: &mut DbConnection, caller: &Caller, id: &str) -> AppResult<ConversationRow> {
    conversations::table
        .filter(conversations::id.eq(id))
        .filter(conversations::tenant_id.eq(&caller.tenant_id))
        .filter(conversations::user_id.eq(&caller.user_id))
        .select(ConversationRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::not_found("conversation"))
}

/// Adds a message to a conversation; returns its number in the conversation.
fn append(
    conn: &mut DbConnection,
    conversation: &str,
    role: &str,
    content: &str,
    data: Option<&Value>,
    at: NaiveDateTime,
) -> AppResult<i32> {
    // Messages of one conversation are numbered one writer at a time (SQLite has one writer;
    // on PostgreSQL, a lock on the conversation until the transaction ends).
    agora_shared::db::xact_lock(conn, &format!("ai:conversation:{conversation}"))?;
    let next: Option<i32> = messages::table
        .filter(messages::conversation_id.eq(conversation))
        .select(diesel::dsl::max(messages::ordinal))
        .first(conn)?;
    let ordinal = next.map_or(0, |n| n + 1);
    // A question needs room for its answer too.
    let needed = if role == "user" { 2 } else { 1 };
    if i64::from(ordinal) + needed > MAX_MESSAGES {
        return Err(AppError::Conflict(format!(
            "the conversation holds {MAX_MESSAGES} messages, the most it may; start another"
        ))
        .with_code("ai.conversation_full"));
    }
    diesel::insert_into(messages::table)
        .values((
            messages::id.eq(uuid::Uuid::now_v7().to_string()),
            messages::conversation_id.eq(conversation),
            messages::ordinal.eq(ordinal),
            messages::role.eq(role),
            messages::content.eq(content),
            messages::data.eq(data.map(Value::to_string)),
            messages::created_at.eq(at),
        ))
        .execute(conn)?;
    diesel::update(conversations::table.find(conversation))
        .set(conversations::updated_at.eq(at))
        .execute(conn)?;
    Ok(ordinal)
}

/// Messages of a conversation a model is given, at most (the latest).
const HISTORY: i64 = 20;

/// The latest messages of a conversation up to message `upto` (the question being
/// answered: not another one sent at the same time), oldest first: (role, content).
fn recent(
    conn: &mut DbConnection,
    conversation: &str,
    upto: i32,
) -> AppResult<Vec<(String, String)>> {
    let mut rows: Vec<(String, String)> = messages::table
        .filter(messages::conversation_id.eq(conversation))
        .filter(messages::ordinal.le(upto))
        .order(messages::ordinal.desc())
        .select((messages::role, messages::content))
        .limit(HISTORY)
        .load(conn)?;
    rows.reverse();
    Ok(rows)
}

#[utoipa::path(post, path = "/api/v1/ai/chat", tag = "ai", request_body = ChatIn,
    responses((status = 200, description = "the assistant's answer, from the tenant's tickets and figures, kept in the caller's conversation", body = ChatOut),
        (status = 404, description = "no such conversation of the caller's"), (status = 409, description = "the conversation is full"), (status = 422)),
    security(("bearer" = [])))]
pub async fn chat(
    state: web::Data<AiState>,
    caller: Caller,
    body: ValidJson<ChatIn>,
) -> AppResult<HttpResponse> {
    let body = body.0;
    let model = super::answers::check_model(&state, &caller, "model", body.model.as_deref())
        .await?
        .map(|(alias, own)| (alias.to_owned(), own));
    let message = body.message.trim().to_owned();
    if message.is_empty() || message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(AppError::invalid(
            "message",
            format!("must be 1 to {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    // The conversation first: a question to someone else's is never answered.
    let now = agora_shared::db::now();
    let (owner, text) = (caller.clone(), message.clone());
    let conversation = state
        .db
        .write(move |conn| {
            let id = match body.conversation_id {
                Some(id) => owned(conn, &owner, &id)?.id,
                None => {
                    let row = ConversationRow {
                        id: uuid::Uuid::now_v7().to_string(),
                        tenant_id: owner.tenant_id.clone(),
                        user_id: owner.user_id.clone(),
                        title: text.chars().take(80).collect(),
                        created_at: now,
                        updated_at: now,
                    };
                    diesel::insert_into(conversations::table)
                        .values(&row)
                        .execute(conn)?;
                    row.id
                }
            };
            let ordinal = append(conn, &id, "user", &text, None, now)?;
            Ok((id, ordinal))
        })
        .await?;
    let (conversation, asked) = conversation;
    let (content, data, provider, model) = match model {
        None => {
            let (content, data) = assistant::answer(&state, &caller, &message).await?;
            (
                content,
                data,
                crate::local::PROVIDER.to_owned(),
                assistant::MODEL.to_owned(),
            )
        }
        Some((alias, own)) => {
            let id = conversation.clone();
            let history = state.db.read(move |conn| recent(conn, &id, asked)).await?;
            let (content, data, provider) =
                assistant::model::answer(&state, &caller, &alias, own.as_ref(), &history).await?;
            (content, data, provider, alias)
        }
    };
    let at = agora_shared::db::now();
    let (id, c, d) = (conversation.clone(), content.clone(), data.clone());
    state
        .db
        .write(move |conn| append(conn, &id, "assistant", &c, Some(&d), at).map(|_| ()))
        .await?;
    Ok(HttpResponse::Ok().json(ChatOut {
        conversation_id: conversation,
        reply: MessageOut {
            role: "assistant".into(),
            content,
            data: Some(data),
            created_at: rfc3339(at),
        },
        provider,
        model,
    }))
}

#[utoipa::path(get, path = "/api/v1/ai/chat/conversations", tag = "ai",
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "the caller's own conversations", body = ConversationPage), (status = 422)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AiState>,
    caller: Caller,
    page: web::Query<PageParams>,
) -> AppResult<HttpResponse> {
    let (limit, after) = (page.limit()?, page.after()?);
    let page = state
        .db
        .read(move |conn| {
            let mut q = conversations::table
                .filter(conversations::tenant_id.eq(&caller.tenant_id))
                .filter(conversations::user_id.eq(&caller.user_id))
                .select(ConversationRow::as_select())
                .order(conversations::id)
                .limit(limit + 1)
                .into_boxed();
            if let Some(after) = after {
                q = q.filter(conversations::id.gt(after));
            }
            let rows = q.load(conn)?;
            Ok(Page::from_rows(rows, limit, |c| c.id.clone()))
        })
        .await?;
    Ok(HttpResponse::Ok().json(page.map(|c| render(c, None))))
}

#[utoipa::path(get, path = "/api/v1/ai/chat/conversations/{id}", tag = "ai",
    responses((status = 200, description = "the conversation with its messages", body = ConversationOut), (status = 404)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AiState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let out = state
        .db
        .read(move |conn| {
            let c = owned(conn, &caller, &id)?;
            let rows: Vec<MessageRow> = messages::table
                .filter(messages::conversation_id.eq(&c.id))
                .order(messages::ordinal)
                .select(MessageRow::as_select())
                .load(conn)?;
            Ok(render(
                c,
                Some(rows.into_iter().map(render_message).collect()),
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(delete, path = "/api/v1/ai/chat/conversations/{id}", tag = "ai",
    responses((status = 204, description = "deleted with its messages"), (status = 404)),
    security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<AiState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    state
        .db
        .write(move |conn| {
            let c = owned(conn, &caller, &id)?;
            diesel::delete(messages::table.filter(messages::conversation_id.eq(&c.id)))
                .execute(conn)?;
            diesel::delete(conversations::table.find(&c.id)).execute(conn)?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
