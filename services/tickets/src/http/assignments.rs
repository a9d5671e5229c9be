//! `/tickets/{id}/assignments`: assign a ticket to a team of the tenant (and optionally one of
//! its members), checked through auth's gRPC API; the history is kept. Exceeding the team's daily
//! capacity is allowed and flagged.

use actix_web::{HttpResponse, web};
use chrono::NaiveTime;
use tonic::Code;

use agora_proto::auth::v1::{GetTeamRequest, Team, auth_service_client::AuthServiceClient};
use agora_shared::{
    AppError, AppResult,
    db::now,
    grpc::Forward,
    http::{Caller, PageParams, ValidJson},
};

use super::{MANAGE, created, load};
use crate::{
    TicketsState, changes, events,
    model::*,
    store::{self, assignments::AssignmentRow},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tickets/{id}/assignments", web::get().to(list))
        .route("/tickets/{id}/assignments", web::post().to(assign));
}

/// The caller's team `team_id`, asked of auth with the caller's own credential (so auth applies
/// the caller's tenant): unknown or another tenant's team is a 422 on `team_id`.
async fn team(state: &TicketsState, caller: &Caller, team_id: &str) -> AppResult<Team> {
    let mut client = AuthServiceClient::with_interceptor(
        state.auth_channel.clone(),
        Forward::for_caller(caller).with_peer_secret(state.auth_peer_secret.as_ref()),
    );
    match client
        .get_team(GetTeamRequest {
            team_id: team_id.to_owned(),
        })
        .await
    {
        Ok(team) => Ok(team.into_inner()),
        Err(status) if status.code() == Code::NotFound => {
            Err(AppError::invalid("team_id", "no such team in your tenant"))
        }
        // Auth's own answer (denied, invalid, unavailable...) is the caller's answer.
        Err(status) => Err(status.into()),
    }
}

#[utoipa::path(post, path = "/api/v1/tickets/{id}/assignments", tag = "tickets", request_body = AssignRequest,
    params(("id" = String, Path)),
    responses((status = 201, body = Assigned), (status = 403), (status = 404),
        (status = 409, description = "the ticket is completed or cancelled"),
        (status = 422, description = "unknown team, or the user is not a member")),
    security(("bearer" = [])))]
pub async fn assign(
    state: web::Data<TicketsState>,
    caller: Caller,
    id: web::Path<String>,
    body: ValidJson<AssignRequest>,
) -> AppResult<HttpResponse> {
    caller.require_permission(MANAGE)?;
    let body = body.0;
    let id = id.into_inner();
    // Another tenant's or a missing ticket is a 404 before anything is asked of auth.
    let (tenant_id, ticket_id) = (caller.tenant_id.clone(), id.clone());
    state
        .db
        .read(move |conn| load(conn, &tenant_id, &ticket_id))
        .await?;
    let team = team(&state, &caller, body.team_id.trim()).await?;
    let user_id = body
        .user_id
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    if let Some(user) = user_id
        && !team.member_ids.iter().any(|m| m == user)
    {
        return Err(AppError::invalid(
            "user_id",
            format!("is not a member of team {}", team.name),
        ));
    }
    let user_id = user_id.map(str::to_owned);
    let (assignment, row, load_today) = state
        .db
        .write(move |conn| {
            let mut row = load(conn, &caller.tenant_id, &id)?;
            if row.status().is_final() {
                return Err(AppError::Conflict(format!(
                    "a {} ticket cannot be assigned",
                    row.status
                )));
            }
            let at = now();
            let day_start = at.date().and_time(NaiveTime::MIN);
            let earlier = store::assignments::team_load_since(
                conn,
                &caller.tenant_id,
                &team.id,
                day_start,
                &row.id,
            )?;
            let load_today = earlier + 1;
            let assignment = AssignmentRow {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: caller.tenant_id.clone(),
                ticket_id: row.id.clone(),
                team_id: team.id.clone(),
                user_id,
                note: body.note.trim().to_owned(),
                over_capacity: load_today > i64::from(team.daily_capacity),
                assigned_by: caller.user_id.clone(),
                assigned_at: at,
            };
            store::assignments::insert(conn, &assignment)?;
            let before = row.version;
            row.team_id = Some(team.id.clone());
            row.assignee_id = assignment.user_id.clone();
            changes::touch(&mut row, at);
            if !store::tickets::save(conn, &row, before)? {
                return Err(AppError::stale(
                    "tickets.stale_version",
                    "the ticket changed meanwhile; read it again",
                ));
            }
            events::assigned(conn, &row, &assignment)?;
            Ok((assignment, row, (team.daily_capacity, load_today)))
        })
        .await?;
    let (daily_capacity, assigned_today) = load_today;
    let body = Assigned {
        assignment: Assignment::from(&assignment),
        ticket: Ticket::new(&row, now()),
        team_load: TeamLoad {
            daily_capacity,
            assigned_today,
            over_capacity: assignment.over_capacity,
        },
    };
    Ok(created(format!("/api/v1/tickets/{}/assignments", row.id))
        .insert_header((actix_web::http::header::ETAG, super::etag(row.version)))
        .json(body))
}

#[utoipa::path(get, path = "/api/v1/tickets/{id}/assignments", tag = "tickets",
    params(("id" = String, Path), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = AssignmentPage), (status = 404)), security(("bearer" = [])))]
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
        store::assignments::list,
        |a| a.id.clone(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(page.map(|a| Assignment::from(&a))))
}
