//! `/teams/{id}/members`: adding and removing one member of a team (TENANT_ADMIN or
//! `teams:manage`); members must be users of the caller's tenant.

use actix_web::{HttpResponse, web};

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, now},
    http::{Caller, ValidJson},
};

use super::teams::{MANAGE, load};
use crate::{AuthState, events, model::*, store};

/// The distinct `ids`, all users of `tenant_id` (422 naming the others).
pub(super) fn check_members(
    conn: &mut DbConnection,
    tenant_id: &str,
    ids: &[String],
) -> AppResult<Vec<String>> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    let found = store::users::existing_in_tenant(conn, tenant_id, &ids)?;
    let unknown: Vec<&str> = ids
        .iter()
        .filter(|id| !found.contains(id))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(AppError::invalid(
            "member_ids",
            format!("not users of this tenant: {}", unknown.join(", ")),
        ));
    }
    Ok(ids)
}

#[utoipa::path(post, path = "/api/v1/teams/{id}/members", tag = "teams", request_body = AddMemberRequest,
    responses((status = 200, body = Team), (status = 403), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn add_member(
    state: web::Data<AuthState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<AddMemberRequest>,
) -> AppResult<HttpResponse> {
    change_members(&state, &caller, id.into_inner(), Some(body.0.user_id), None).await
}

#[utoipa::path(delete, path = "/api/v1/teams/{id}/members/{user_id}", tag = "teams",
    responses((status = 200, body = Team), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn remove_member(
    state: web::Data<AuthState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (id, user_id) = path.into_inner();
    change_members(&state, &caller, id, None, Some(user_id)).await
}

async fn change_members(
    state: &AuthState,
    caller: &Caller,
    id: String,
    add: Option<String>,
    remove: Option<String>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let tenant_id = caller.tenant_id.clone();
    let team = state
        .db
        .write(move |conn| {
            let mut t = load(conn, &tenant_id, &id)?;
            let mut members = store::teams::members(conn, &t.id)?;
            if let Some(user_id) = add {
                members.push(user_id);
            }
            if let Some(user_id) = remove {
                let before = members.len();
                members.retain(|m| *m != user_id);
                if members.len() == before {
                    return Err(AppError::not_found("team member"));
                }
            }
            let members = check_members(conn, &tenant_id, &members)?;
            store::teams::set_members(conn, &t.id, &members)?;
            t.updated_at = now();
            store::teams::update(conn, &t)?;
            events::team_changed(conn, "team.updated", &t, &members)?;
            Ok(Team::new(&t, members))
        })
        .await?;
    Ok(HttpResponse::Ok().json(team))
}
