//! `/teams`: field-force teams of the caller's tenant. Everyone in the tenant reads; writing
//! needs TENANT_ADMIN or the `teams:manage` permission. Members must be users of the tenant.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, Json, now},
    http::{Caller, Page, PageParams, ValidJson},
};

use super::{
    created,
    team_members::{add_member, check_members, remove_member},
};
use crate::{
    AuthState, events,
    model::*,
    store::{self, teams::TeamRow},
};

pub const MANAGE: &str = "teams:manage";
pub const DEFAULT_CAPACITY: i32 = 5;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/teams", web::get().to(list))
        .route("/teams", web::post().to(create))
        .route("/teams/{id}", web::get().to(get))
        .route("/teams/{id}", web::patch().to(update))
        .route("/teams/{id}", web::delete().to(delete))
        .route("/teams/{id}/members", web::post().to(add_member))
        .route(
            "/teams/{id}/members/{user_id}",
            web::delete().to(remove_member),
        );
}

#[derive(Debug, Deserialize)]
pub struct TeamQuery {
    pub zone: Option<String>,
    #[serde(flatten)]
    pub page: PageParams,
}

fn clean_skills(skills: &[String]) -> Json<Vec<String>> {
    let mut skills: Vec<String> = skills
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    skills.dedup();
    Json(skills)
}

pub(super) fn load(conn: &mut DbConnection, tenant_id: &str, id: &str) -> AppResult<TeamRow> {
    store::teams::get(conn, tenant_id, id)?.ok_or_else(|| AppError::not_found("team"))
}

#[utoipa::path(get, path = "/api/v1/teams", tag = "teams",
    params(("zone" = Option<String>, Query), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = TeamPage)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AuthState>,
    caller: Caller,
    query: web::Query<TeamQuery>,
) -> AppResult<HttpResponse> {
    let query = query.into_inner();
    let (limit, after) = (query.page.limit()?, query.page.after()?);
    let tenant_id = caller.tenant_id.clone();
    let page = state
        .db
        .read(move |conn| {
            let rows = store::teams::list(
                conn,
                &tenant_id,
                query.zone.as_deref(),
                after.as_deref(),
                limit,
            )?;
            let page = Page::from_rows(rows, limit, |t| t.id.clone());
            let mut items = Vec::with_capacity(page.items.len());
            for t in &page.items {
                items.push(Team::new(t, store::teams::members(conn, &t.id)?));
            }
            Ok(Page {
                items,
                next_cursor: page.next_cursor,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(post, path = "/api/v1/teams", tag = "teams", request_body = CreateTeamRequest,
    responses((status = 201, body = Team), (status = 403), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AuthState>,
    caller: Caller,
    body: ValidJson<CreateTeamRequest>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let body = body.0;
    let tenant_id = caller.tenant_id.clone();
    let team = state
        .db
        .write(move |conn| {
            let members = check_members(conn, &tenant_id, &body.member_ids)?;
            let team = TeamRow {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id,
                name: body.name.trim().to_owned(),
                zone: body.zone.trim().to_owned(),
                skills: clean_skills(&body.skills),
                daily_capacity: body.daily_capacity.unwrap_or(DEFAULT_CAPACITY),
                created_at: now(),
                updated_at: now(),
            };
            store::teams::insert(conn, &team)?;
            store::teams::set_members(conn, &team.id, &members)?;
            events::team_changed(conn, "team.created", &team, &members)?;
            Ok(Team::new(&team, members))
        })
        .await?;
    Ok(created(format!("/api/v1/teams/{}", team.id), team))
}

#[utoipa::path(get, path = "/api/v1/teams/{id}", tag = "teams",
    responses((status = 200, body = Team), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AuthState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (tenant_id, id) = (caller.tenant_id.clone(), id.into_inner());
    let team = state
        .db
        .read(move |conn| {
            let t = load(conn, &tenant_id, &id)?;
            Ok(Team::new(&t, store::teams::members(conn, &t.id)?))
        })
        .await?;
    Ok(HttpResponse::Ok().json(team))
}

#[utoipa::path(patch, path = "/api/v1/teams/{id}", tag = "teams", request_body = UpdateTeamRequest,
    responses((status = 200, body = Team), (status = 403), (status = 404), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AuthState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<UpdateTeamRequest>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let (tenant_id, id, body) = (caller.tenant_id.clone(), id.into_inner(), body.0);
    let team = state
        .db
        .write(move |conn| {
            let mut t = load(conn, &tenant_id, &id)?;
            if let Some(name) = body.name {
                t.name = name.trim().to_owned();
            }
            if let Some(zone) = body.zone {
                t.zone = zone.trim().to_owned();
            }
            if let Some(skills) = body.skills {
                t.skills = clean_skills(&skills);
            }
            t.daily_capacity = body.daily_capacity.unwrap_or(t.daily_capacity);
            t.updated_at = now();
            store::teams::update(conn, &t)?;
            let members = match body.member_ids {
                Some(ids) => {
                    let ids = check_members(conn, &tenant_id, &ids)?;
                    store::teams::set_members(conn, &t.id, &ids)?;
                    ids
                }
                None => store::teams::members(conn, &t.id)?,
            };
            events::team_changed(conn, "team.updated", &t, &members)?;
            Ok(Team::new(&t, members))
        })
        .await?;
    Ok(HttpResponse::Ok().json(team))
}

#[utoipa::path(delete, path = "/api/v1/teams/{id}", tag = "teams",
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<AuthState>,
    caller: Caller,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let (tenant_id, id) = (caller.tenant_id.clone(), id.into_inner());
    state
        .db
        .write(move |conn| {
            let t = load(conn, &tenant_id, &id)?;
            let members = store::teams::members(conn, &t.id)?;
            store::teams::delete(conn, &tenant_id, &id)?;
            events::team_changed(conn, "team.deleted", &t, &members)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
