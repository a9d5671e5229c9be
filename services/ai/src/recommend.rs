//! Field force: the teams a ticket could go to, ranked by the assignment rules' weights
//! (location 0.25, availability 0.20, productivity 0.15, skill 0.15, workload 0.10, SLA
//! 0.10, customer timing 0.05), each factor's score explained. The ticket comes from tickets'
//! gRPC and the teams from auth's, both asked with the caller's own credential (so only the
//! caller's tenant is ever seen); teams' loads and records from the tenant's tickets.
//!
//! Each factor is a score from 0 to 1:
//! - **location**: 1 when the team's zone is the ticket's, else 0;
//! - **availability**: the share of the team's daily capacity still free,
//!   `max(0, capacity - active) / capacity` (active: its OPEN and IN_PROGRESS tickets);
//! - **productivity**: tickets it completed in the last 30 days over the most any candidate
//!   team completed (0.5 for all when none did);
//! - **skill**: 1 when one of its skills names the ticket's category (a word of it, e.g.
//!   `fiber` for FIBER_INSTALLATION) or one of the ticket's tags, else 0;
//! - **workload**: `1 - active / the most any candidate has` (1 for all when none has any);
//! - **SLA**: the share of its last 30 days' completed tickets done on time (0.5 with none);
//! - **customer timing**: 1 when it has capacity free today; else 0 when the ticket is URGENT
//!   or due within 24 hours, 0.5 when it can wait a day.
//!
//! The score is the weighted sum, rounded to 4 decimals; ties go by team name.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use agora_proto::{
    auth::v1::{ListTeamsRequest, Team, auth_service_client::AuthServiceClient},
    tickets::v1::{
        GetTicketRequest, ListTicketsRequest, Ticket, ticket_service_client::TicketServiceClient,
    },
};
use agora_shared::{
    AppError, AppResult,
    grpc::Forward,
    http::{Caller, ValidJson},
};

use crate::AiState;

/// The assignment rules' weights (RULES.md, field force).
pub const WEIGHTS: [(&str, f64); 7] = [
    ("location", 0.25),
    ("availability", 0.20),
    ("productivity", 0.15),
    ("skill", 0.15),
    ("workload", 0.10),
    ("sla", 0.10),
    ("customer_timing", 0.05),
];

/// A team's daily capacity when it has none set.
const DEFAULT_CAPACITY: i32 = 5;

/// Tickets read for loads, records and counts, at most.
pub const MAX_TICKETS: usize = 5000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/ai/recommendations", web::post().to(recommend));
}

#[derive(Debug, Deserialize, ToSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct RecommendIn {
    /// The ticket's id or number (CTT-000001).
    pub ticket_id: String,
    /// Candidates returned, best first (1 to 50, default 5).
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FactorOut {
    /// 0 to 1.
    pub score: f64,
    pub weight: f64,
    /// What the score rests on.
    pub explanation: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CandidateOut {
    pub team_id: String,
    pub name: String,
    pub zone: String,
    /// The weighted sum of the factors.
    pub score: f64,
    pub factors: HashMap<String, FactorOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationOut {
    pub ticket_id: String,
    pub ticket_number: String,
    pub candidates: Vec<CandidateOut>,
    pub provider: &'static str,
    pub model: &'static str,
}

/// What the rules know of a team.
#[derive(Debug, Default, Clone, Copy)]
struct Record {
    active: i64,
    completed: i64,
    on_time: i64,
}

/// A peer's answer as this service's error. A peer refusing the credential this service
/// presented (the caller's, which this service accepted, or its own peer secret) is this
/// service's failure, not the caller's: 502, never a 401 that would sign the client out.
pub fn grpc_error(status: tonic::Status) -> AppError {
    match status.code() {
        tonic::Code::Unauthenticated => {
            tracing::warn!(message = %status.message(), "a peer service refused this service's call");
            AppError::BadGateway("a peer service refused the call".into())
        }
        _ => AppError::from(status),
    }
}

pub async fn tickets_of(
    state: &AiState,
    caller: &Caller,
    request: ListTicketsRequest,
) -> AppResult<Vec<Ticket>> {
    let mut client =
        TicketServiceClient::with_interceptor(state.tickets.clone(), Forward::for_caller(caller));
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = client
            .list_tickets(ListTicketsRequest {
                limit: 200,
                cursor: cursor.clone(),
                ..request.clone()
            })
            .await
            .map_err(grpc_error)?
            .into_inner();
        let empty = page.tickets.is_empty();
        out.extend(page.tickets);
        if empty || page.next_cursor.is_empty() || out.len() >= MAX_TICKETS {
            return Ok(out);
        }
        cursor = page.next_cursor;
    }
}

async fn teams_of(state: &AiState, caller: &Caller) -> AppResult<Vec<Team>> {
    let forward = Forward::for_caller(caller).with_peer_secret(state.auth_peer_secret.as_ref());
    let mut client = AuthServiceClient::with_interceptor(state.auth.clone(), forward);
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = client
            .list_teams(ListTeamsRequest {
                limit: 100,
                cursor: cursor.clone(),
                zone: String::new(),
            })
            .await
            .map_err(grpc_error)?
            .into_inner();
        let empty = page.teams.is_empty();
        out.extend(page.teams);
        if empty || page.next_cursor.is_empty() || out.len() >= 1000 {
            return Ok(out);
        }
        cursor = page.next_cursor;
    }
}

/// Whether one of `skills` names the ticket's category or one of its tags.
fn skilled(skills: &[String], ticket: &Ticket) -> Option<String> {
    let mut wanted: Vec<String> = ticket
        .category
        .split('_')
        .map(str::to_lowercase)
        .filter(|w| w.len() > 2)
        .collect();
    // Both spellings of fibre.
    if wanted.iter().any(|w| w == "fiber") {
        wanted.push("fibre".into());
    }
    wanted.extend(
        ticket
            .tags
            .iter()
            .map(|t| t.trim().to_lowercase())
            .filter(|t| t.chars().count() > 2),
    );
    skills.iter().find_map(|skill| {
        let s = skill.to_lowercase();
        wanted
            .iter()
            .any(|w| s.contains(w.as_str()) || (s.len() > 2 && w.contains(s.as_str())))
            .then(|| skill.clone())
    })
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Ranks `teams` for `ticket`, given their `records`, at `now`.
fn rank(
    ticket: &Ticket,
    teams: &[Team],
    records: &HashMap<String, Record>,
    now: DateTime<Utc>,
) -> Vec<CandidateOut> {
    let record = |id: &str| records.get(id).copied().unwrap_or_default();
    let most_completed = teams
        .iter()
        .map(|t| record(&t.id).completed)
        .max()
        .unwrap_or(0);
    let most_active = teams
        .iter()
        .map(|t| record(&t.id).active)
        .max()
        .unwrap_or(0);
    let urgent = ticket.priority == "URGENT"
        || DateTime::parse_from_rfc3339(&ticket.due_at)
            .is_ok_and(|due| due.with_timezone(&Utc) - now < chrono::Duration::hours(24));
    let mut out: Vec<CandidateOut> = teams
        .iter()
        .map(|team| {
            let r = record(&team.id);
            let capacity = if team.daily_capacity > 0 {
                team.daily_capacity
            } else {
                DEFAULT_CAPACITY
            };
            let free = (i64::from(capacity) - r.active).max(0);
            let same_zone = !ticket.zone.is_empty() && team.zone.eq_ignore_ascii_case(&ticket.zone);
            let skill = skilled(&team.skills, ticket);
            let mut factors = HashMap::new();
            let mut put = |name: &str, score: f64, explanation: String| {
                let weight = WEIGHTS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(0.0, |w| w.1);
                factors.insert(
                    name.to_owned(),
                    FactorOut {
                        score: round(score),
                        weight,
                        explanation,
                    },
                );
            };
            put(
                "location",
                if same_zone { 1.0 } else { 0.0 },
                match same_zone {
                    true => format!("works in {}, the ticket's zone", team.zone),
                    false => format!("works in {}; the ticket is in {}", team.zone, ticket.zone),
                },
            );
            put(
                "availability",
                free as f64 / f64::from(capacity),
                format!(
                    "{free} of its {capacity} daily slots free ({} active)",
                    r.active
                ),
            );
            put(
                "productivity",
                match most_completed {
                    0 => 0.5,
                    most => r.completed as f64 / most as f64,
                },
                format!(
                    "{} completed in 30 days (most of any team: {most_completed})",
                    r.completed
                ),
            );
            put(
                "skill",
                if skill.is_some() { 1.0 } else { 0.0 },
                match &skill {
                    Some(s) => format!("skill `{s}` fits {}", ticket.category),
                    None => format!("no skill names {}", ticket.category),
                },
            );
            put(
                "workload",
                match most_active {
                    0 => 1.0,
                    most => 1.0 - r.active as f64 / most as f64,
                },
                format!("{} active (most of any team: {most_active})", r.active),
            );
            put(
                "sla",
                match r.completed {
                    0 => 0.5,
                    n => r.on_time as f64 / n as f64,
                },
                match r.completed {
                    0 => "no completed tickets in 30 days".to_owned(),
                    n => format!("{} of {n} completed on time", r.on_time),
                },
            );
            put(
                "customer_timing",
                match (free > 0, urgent) {
                    (true, _) => 1.0,
                    (false, true) => 0.0,
                    (false, false) => 0.5,
                },
                match (free > 0, urgent) {
                    (true, _) => "can take it today".to_owned(),
                    (false, true) => "full today, and the ticket cannot wait".to_owned(),
                    (false, false) => "full today; the ticket can wait a day".to_owned(),
                },
            );
            let score = round(
                WEIGHTS
                    .iter()
                    .map(|(name, w)| w * factors[*name].score)
                    .sum(),
            );
            CandidateOut {
                team_id: team.id.clone(),
                name: team.name.clone(),
                zone: team.zone.clone(),
                score,
                factors,
            }
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.name.cmp(&b.name)));
    out
}

#[utoipa::path(post, path = "/api/v1/ai/recommendations", tag = "ai", request_body = RecommendIn,
    responses((status = 200, description = "the tenant's teams ranked for the ticket by the assignment rules, each factor explained", body = RecommendationOut),
        (status = 404, description = "no such ticket in the tenant"), (status = 422), (status = 502), (status = 503)),
    security(("bearer" = [])))]
pub async fn recommend(
    state: web::Data<AiState>,
    caller: Caller,
    body: ValidJson<RecommendIn>,
) -> AppResult<HttpResponse> {
    let body = body.0;
    let id = super::http::clean("ticket_id", &body.ticket_id, 64)?;
    let limit = body.limit.unwrap_or(5);
    if !(1..=50).contains(&limit) {
        return Err(AppError::invalid("limit", "must be from 1 to 50"));
    }
    let out = rank_for(&state, &caller, id, limit).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Ticket `id` (its id or number) of the caller's tenant, and the best `limit` teams for it.
pub async fn rank_for(
    state: &AiState,
    caller: &Caller,
    id: String,
    limit: usize,
) -> AppResult<RecommendationOut> {
    let mut client =
        TicketServiceClient::with_interceptor(state.tickets.clone(), Forward::for_caller(caller));
    let ticket = client
        .get_ticket(GetTicketRequest {
            id,
            tenant_id: String::new(),
        })
        .await
        .map_err(grpc_error)?
        .into_inner();
    let teams = teams_of(state, caller).await?;
    let active = tickets_of(
        state,
        caller,
        ListTicketsRequest {
            status: vec!["OPEN".into(), "IN_PROGRESS".into()],
            ..ListTicketsRequest::default()
        },
    )
    .await?;
    let now = Utc::now();
    // Tickets list by creation time; those completed in the last 30 days were created in the
    // last 90 (or are left out), then kept by when they were completed.
    let created_since =
        (now - chrono::Duration::days(90)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let completed_since = now - chrono::Duration::days(30);
    let completed = tickets_of(
        state,
        caller,
        ListTicketsRequest {
            status: vec!["COMPLETED".into()],
            created_from: created_since,
            ..ListTicketsRequest::default()
        },
    )
    .await?;
    let mut records: HashMap<String, Record> = HashMap::new();
    for t in active
        .iter()
        .filter(|t| t.id != ticket.id && !t.team_id.is_empty())
    {
        records.entry(t.team_id.clone()).or_default().active += 1;
    }
    let recent = |t: &&Ticket| {
        DateTime::parse_from_rfc3339(&t.completed_at)
            .is_ok_and(|at| at.with_timezone(&Utc) >= completed_since)
    };
    for t in completed
        .iter()
        .filter(|t| !t.team_id.is_empty())
        .filter(recent)
    {
        let r = records.entry(t.team_id.clone()).or_default();
        r.completed += 1;
        if t.sla_status != "BREACHED" {
            r.on_time += 1;
        }
    }
    let mut candidates = rank(&ticket, &teams, &records, now);
    candidates.truncate(limit);
    Ok(RecommendationOut {
        ticket_id: ticket.id,
        ticket_number: ticket.number,
        candidates,
        provider: crate::local::PROVIDER,
        model: "assignment-rules",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_add_up_to_one() {
        let total: f64 = WEIGHTS.iter().map(|(_, w)| w).sum();
        assert!((total - 1.0).abs() < 1e-9);
        let ticket = Ticket {
            category: "FIBER_INSTALLATION".into(),
            ..Ticket::default()
        };
        assert_eq!(
            skilled(&["Fibre splicing".into()], &ticket).as_deref(),
            Some("Fibre splicing")
        );
        assert_eq!(skilled(&["plumbing".into()], &ticket), None);
    }
}
