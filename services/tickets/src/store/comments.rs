//! Comments on tickets.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use crate::schema::comments;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = comments)]
pub struct CommentRow {
    pub id: String,
    pub tenant_id: String,
    pub ticket_id: String,
    pub author_id: String,
    pub body: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &CommentRow) -> AppResult<()> {
    diesel::insert_into(comments::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut DbConnection, ticket_id: &str, id: &str) -> AppResult<Option<CommentRow>> {
    Ok(comments::table
        .filter(comments::ticket_id.eq(ticket_id))
        .filter(comments::id.eq(id))
        .select(CommentRow::as_select())
        .first(conn)
        .optional()?)
}

/// A ticket's comments, oldest first, after the comment id `after`.
pub fn list(
    conn: &mut DbConnection,
    ticket_id: &str,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<CommentRow>> {
    let mut query = comments::table
        .filter(comments::ticket_id.eq(ticket_id))
        .order(comments::id.asc())
        .select(CommentRow::as_select())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(comments::id.gt(after));
    }
    Ok(query.load(conn)?)
}

pub fn update_body(
    conn: &mut DbConnection,
    id: &str,
    body: &str,
    at: NaiveDateTime,
) -> AppResult<()> {
    diesel::update(comments::table.find(id))
        .set((comments::body.eq(body), comments::updated_at.eq(at)))
        .execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut DbConnection, id: &str) -> AppResult<()> {
    diesel::delete(comments::table.find(id)).execute(conn)?;
    Ok(())
}
