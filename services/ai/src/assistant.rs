//! The field-force assistant: questions about the tenant's own tickets and figures, answered
//! by looking them up (tickets' and analytics' gRPC, with the caller's credential) and saying
//! what was found. The local model reads a question by rules:
//! - a ticket number (`CTT-000012`) asks about that ticket, or, with "who should", "assign",
//!   "recommend" or "which team", who should take it;
//! - "how many" / "count" / "number of" counts tickets, narrowed by the statuses, priorities,
//!   categories and zones the question names ("overdue" is a breached SLA);
//! - "zone" with "risk", "overdue", "urgent" or "worst" lists the zones at risk;
//! - "sla", "compliance" or "on time" gives this week's SLA compliance and its trend;
//! - anything else is answered with what it can be asked.
//!
//! Every answer carries what was looked up (`data`), and says so when nothing was found.

use serde_json::{Value, json};

use agora_proto::tickets::v1::{
    GetTicketRequest, ListTicketsRequest, ticket_service_client::TicketServiceClient,
};
use agora_shared::{AppResult, grpc::Forward, http::Caller};

use crate::{AiState, insights, recommend};

/// The model's name, as answers report it.
pub const MODEL: &str = "field-assistant";

const STATUSES: [(&str, &str); 6] = [
    ("in progress", "IN_PROGRESS"),
    ("open", "OPEN"),
    ("completed", "COMPLETED"),
    ("done", "COMPLETED"),
    ("cancelled", "CANCELLED"),
    ("on hold", "ON_HOLD"),
];
const PRIORITIES: [&str; 4] = ["urgent", "high", "medium", "low"];
const CATEGORIES: [(&str, &str); 6] = [
    ("fiber installation", "FIBER_INSTALLATION"),
    ("fibre installation", "FIBER_INSTALLATION"),
    ("maintenance", "MAINTENANCE"),
    ("repair", "REPAIR"),
    ("inspection", "INSPECTION"),
    ("emergenc", "EMERGENCY"),
];
const ZONES: [&str; 5] = ["northern", "southern", "central", "east coast", "borneo"];

/// What a question asks.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    Ticket(String),
    Recommend(String),
    Count(Filters),
    Zones,
    Sla,
    Help,
}

/// The narrowing a counting question names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub status: Vec<String>,
    pub priority: Vec<String>,
    pub category: Vec<String>,
    pub zone: Option<String>,
    pub overdue: bool,
}

fn ticket_number(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .find(|w| {
            w.split_once('-').is_some_and(|(prefix, digits)| {
                (2..=5).contains(&prefix.len())
                    && prefix.chars().all(|c| c.is_ascii_alphabetic())
                    && digits.len() >= 3
                    && digits.chars().all(|c| c.is_ascii_digit())
            })
        })
        .map(str::to_ascii_uppercase)
}

/// Reads a question.
pub fn read(question: &str) -> Intent {
    let q = question.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| q.contains(w));
    if let Some(number) = ticket_number(question) {
        if has(&["who should", "assign", "recommend", "which team"]) {
            return Intent::Recommend(number);
        }
        return Intent::Ticket(number);
    }
    if has(&["how many", "count", "number of"]) {
        let mut f = Filters::default();
        for (word, status) in STATUSES {
            if q.contains(word) && !f.status.iter().any(|s| s == status) {
                f.status.push(status.into());
            }
        }
        for p in PRIORITIES {
            if q.contains(p) {
                f.priority.push(p.to_uppercase());
            }
        }
        for (word, category) in CATEGORIES {
            if q.contains(word) && !f.category.iter().any(|c| c == category) {
                f.category.push(category.into());
            }
        }
        f.zone = ZONES.iter().find(|z| q.contains(*z)).map(|z| {
            z.split(' ')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect::<Vec<_>>()
                .join(" ")
        });
        f.overdue = has(&["overdue", "breach", "late"]);
        return Intent::Count(f);
    }
    if q.contains("zone") && has(&["risk", "overdue", "urgent", "worst"]) || q.contains("at risk") {
        return Intent::Zones;
    }
    if has(&["sla", "compliance", "on time"]) {
        return Intent::Sla;
    }
    Intent::Help
}

/// What the assistant can be asked.
pub const HELP: &str = "I can look up your tickets and figures: ask about a ticket by its number \
    (\"What is the status of CTT-000012?\"), who should take one (\"Who should take CTT-000012?\"), \
    how many tickets there are (\"How many urgent tickets are open in Northern?\"), which zones are \
    at risk, or how the SLA compliance is going.";

/// Answers `question` for `caller`: the text, and what was looked up.
pub async fn answer(
    state: &AiState,
    caller: &Caller,
    question: &str,
) -> AppResult<(String, Value)> {
    match read(question) {
        Intent::Ticket(number) => ticket(state, caller, &number).await,
        Intent::Recommend(number) => {
            match recommend::rank_for(state, caller, number.clone(), 3).await {
                Ok(r) => {
                    let text = match r.candidates.first() {
                        Some(best) => format!(
                            "{} fits {} best (score {:.2}): {}; {}.",
                            best.name,
                            r.ticket_number,
                            best.score,
                            best.factors["location"].explanation,
                            best.factors["availability"].explanation
                        ),
                        None => format!("The tenant has no team to take {}.", r.ticket_number),
                    };
                    Ok((text, json!({"tool": "recommendations", "result": r})))
                }
                Err(e) if e.status() == actix_web::http::StatusCode::NOT_FOUND => Ok((
                    format!("I found no ticket {number}."),
                    json!({"tool": "recommendations", "ticket": number, "found": false}),
                )),
                Err(e) => Err(e),
            }
        }
        Intent::Count(f) => count(state, caller, &f).await,
        Intent::Zones => {
            let zones = insights::zones_at_risk(state, caller).await?;
            let text = match zones.is_empty() {
                true => "No zone has overdue or urgent open tickets.".to_owned(),
                false => {
                    zones
                        .iter()
                        .map(|z| {
                            format!(
                                "{}: {} overdue and {} urgent of {} open",
                                z.zone, z.overdue, z.urgent_open, z.open
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                        + "."
                }
            };
            Ok((text, json!({"tool": "insights", "zones_at_risk": zones})))
        }
        Intent::Sla => {
            let sla = insights::sla(state, caller).await?;
            Ok((
                insights::sla_sentence(&sla),
                json!({"tool": "insights", "sla": sla}),
            ))
        }
        Intent::Help => Ok((HELP.to_owned(), json!({"tool": null}))),
    }
}

async fn ticket(state: &AiState, caller: &Caller, number: &str) -> AppResult<(String, Value)> {
    let mut client =
        TicketServiceClient::with_interceptor(state.tickets.clone(), Forward::for_caller(caller));
    let found = client
        .get_ticket(GetTicketRequest {
            id: number.to_owned(),
            tenant_id: String::new(),
        })
        .await;
    let t = match found {
        Ok(t) => t.into_inner(),
        Err(s) if s.code() == tonic::Code::NotFound => {
            return Ok((
                format!("I found no ticket {number}."),
                json!({"tool": "tickets.get", "ticket": number, "found": false}),
            ));
        }
        Err(s) => return Err(crate::recommend::grpc_error(s)),
    };
    let team = match t.team_id.is_empty() {
        true => "not assigned".to_owned(),
        false => format!("assigned to team {}", t.team_id),
    };
    let zone = match t.zone.is_empty() {
        true => String::new(),
        false => format!(" in {}", t.zone),
    };
    let text = format!(
        "{} \"{}\" is {}, {} priority{zone}, {team}; due {} (SLA {}).",
        t.number, t.title, t.status, t.priority, t.due_at, t.sla_status
    );
    let data = json!({"tool": "tickets.get", "ticket": {
        "id": t.id, "number": t.number, "title": t.title, "status": t.status,
        "priority": t.priority, "zone": t.zone, "team_id": t.team_id, "due_at": t.due_at,
        "sla_status": t.sla_status,
    }});
    Ok((text, data))
}

async fn count(state: &AiState, caller: &Caller, f: &Filters) -> AppResult<(String, Value)> {
    let request = ListTicketsRequest {
        status: f.status.clone(),
        priority: f.priority.clone(),
        category: f.category.clone(),
        zone: f.zone.clone().unwrap_or_default(),
        sla_status: if f.overdue {
            "BREACHED".into()
        } else {
            String::new()
        },
        sort: "number".into(),
        ..ListTicketsRequest::default()
    };
    let tickets = recommend::tickets_of(state, caller, request).await?;
    let n = tickets.len();
    let mut what = Vec::new();
    if !f.priority.is_empty() {
        what.push(f.priority.join(" or "));
    }
    if !f.category.is_empty() {
        what.push(f.category.join(" or "));
    }
    let at_least = if n >= recommend::MAX_TICKETS {
        "at least "
    } else {
        ""
    };
    let mut text = format!(
        "There {} {at_least}{n} {}ticket{}",
        if n == 1 { "is" } else { "are" },
        what.iter().map(|w| format!("{w} ")).collect::<String>(),
        if n == 1 { "" } else { "s" }
    );
    if !f.status.is_empty() {
        text.push_str(&format!(" with status {}", f.status.join(" or ")));
    }
    if f.overdue {
        text.push_str(" past their SLA");
    }
    if let Some(zone) = &f.zone {
        text.push_str(&format!(" in {zone}"));
    }
    text.push('.');
    let numbers: Vec<&str> = tickets.iter().take(10).map(|t| t.number.as_str()).collect();
    if !numbers.is_empty() {
        text.push_str(&format!(" {}", numbers.join(", ")));
        if n > numbers.len() {
            text.push_str(&format!(" and {} more", n - numbers.len()));
        }
        text.push('.');
    }
    let data = json!({"tool": "tickets.list", "filters": {
        "status": f.status, "priority": f.priority, "category": f.category, "zone": f.zone,
        "overdue": f.overdue,
    }, "count": n, "numbers": numbers});
    Ok((text, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_read_by_rules() {
        assert_eq!(
            read("What's up with ctt-000012?"),
            Intent::Ticket("CTT-000012".into())
        );
        assert_eq!(
            read("Who should take CTT-000012?"),
            Intent::Recommend("CTT-000012".into())
        );
        let Intent::Count(f) = read("How many urgent tickets are open in East Coast?") else {
            panic!("a count");
        };
        assert_eq!(f.status, ["OPEN"]);
        assert_eq!(f.priority, ["URGENT"]);
        assert_eq!(f.zone.as_deref(), Some("East Coast"));
        assert_eq!(read("Which zones are at risk?"), Intent::Zones);
        assert_eq!(read("How is our SLA compliance?"), Intent::Sla);
        assert_eq!(read("Tell me a joke"), Intent::Help);
    }
}
