//! `/tickets/{id}/comments`: anyone in the tenant comments and reads; authors may edit or delete
//! their own comments for `tickets.comment_edit_secs` (15 minutes by default).

use actix_web::{HttpResponse, web};

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, now},
    http::{Caller, PageParams, ValidJson},
};

use super::{created, load};
use crate::{
    TicketsState, events,
    model::*,
    store::{self, comments::CommentRow},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tickets/{id}/comments", web::get().to(list))
        .route("/tickets/{id}/comments", web::post().to(create))
        .route("/tickets/{id}/comments/{comment_id}", web::patch().to(edit))
        .route(
            "/tickets/{id}/comments/{comment_id}",
            web::delete().to(delete),
        );
}

fn window(state: &TicketsState) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(state.config.comment_edit_secs).unwrap_or(i64::MAX / 2))
}

/// The caller's own comment, still within the edit window.
fn own_comment(
    conn: &mut DbConnection,
    caller: &Caller,
    ticket_id: &str,
    comment_id: &str,
    window: chrono::Duration,
) -> AppResult<CommentRow> {
    let ticket = load(conn, &caller.tenant_id, ticket_id)?;
    let comment = store::comments::get(conn, &ticket.id, comment_id)?
        .ok_or_else(|| AppError::not_found("comment"))?;
    if comment.author_id != caller.user_id {
        return Err(AppError::Forbidden(
            "only the author may change a comment".into(),
        ));
    }
    if now() > comment.created_at + window {
        return Err(AppError::Conflict(format!(
            "comments can be changed for {} minutes after posting",
            window.num_minutes()
        )));
    }
    Ok(comment)
}

#[utoipa::path(post, path = "/api/v1/tickets/{id}/comments", tag = "tickets", request_body = CommentBody,
    params(("id" = String, Path)),
    responses((status = 201, body = Comment), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn create(
    state: web::Data<TicketsState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<CommentBody>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let text = body.0.body.trim().to_owned();
    if text.is_empty() {
        return Err(AppError::invalid("body", "must not be blank"));
    }
    let comment = state
        .db
        .write(move |conn| {
            let ticket = load(conn, &caller.tenant_id, &id)?;
            let at = now();
            let comment = CommentRow {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: caller.tenant_id.clone(),
                ticket_id: ticket.id.clone(),
                author_id: caller.user_id.clone(),
                body: text,
                created_at: at,
                updated_at: at,
            };
            store::comments::insert(conn, &comment)?;
            events::commented(conn, &ticket, &comment)?;
            Ok(comment)
        })
        .await?;
    Ok(created(format!(
        "/api/v1/tickets/{}/comments/{}",
        comment.ticket_id, comment.id
    ))
    .json(Comment::new(&comment, window(&state))))
}

#[utoipa::path(get, path = "/api/v1/tickets/{id}/comments", tag = "tickets",
    params(("id" = String, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = CommentPage), (status = 404)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<TicketsState>,
    caller: Caller,
    id: web::Path<String>,
    page: web::Query<PageParams>,
) -> AppResult<HttpResponse> {
    let page = super::child_page(
        &state.db,
        caller.tenant_id,
        id.into_inner(),
        &page,
        store::comments::list,
        |c| c.id.clone(),
    )
    .await?;
    let window = window(&state);
    Ok(HttpResponse::Ok().json(page.map(|c| Comment::new(&c, window))))
}

#[utoipa::path(patch, path = "/api/v1/tickets/{id}/comments/{comment_id}", tag = "tickets",
    request_body = CommentBody, params(("id" = String, Path), ("comment_id" = String, Path)),
    responses((status = 200, body = Comment), (status = 403, description = "not the author"),
        (status = 404), (status = 409, description = "the edit window has passed")),
    security(("bearer" = [])))]
pub async fn edit(
    state: web::Data<TicketsState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: ValidJson<CommentBody>,
) -> AppResult<HttpResponse> {
    let (ticket_id, comment_id) = path.into_inner();
    let text = body.0.body.trim().to_owned();
    if text.is_empty() {
        return Err(AppError::invalid("body", "must not be blank"));
    }
    let window = window(&state);
    let comment = state
        .db
        .write(move |conn| {
            let mut comment = own_comment(conn, &caller, &ticket_id, &comment_id, window)?;
            comment.body = text;
            comment.updated_at = now();
            store::comments::update_body(conn, &comment.id, &comment.body, comment.updated_at)?;
            Ok(comment)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Comment::new(&comment, window)))
}

#[utoipa::path(delete, path = "/api/v1/tickets/{id}/comments/{comment_id}", tag = "tickets",
    params(("id" = String, Path), ("comment_id" = String, Path)),
    responses((status = 204), (status = 403), (status = 404), (status = 409)), security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<TicketsState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (ticket_id, comment_id) = path.into_inner();
    let window = window(&state);
    state
        .db
        .write(move |conn| {
            let comment = own_comment(conn, &caller, &ticket_id, &comment_id, window)?;
            store::comments::delete(conn, &comment.id)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
