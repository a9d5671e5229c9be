//! Other services' events turned into publications:
//! - each ticket event goes to the ticket's channel and to its tenant's `dashboard`;
//! - a Judge0 submission's verdict goes to `submission:<token>` and to its owner's
//!   `user:<id>`, and an exercise attempt's score to its owner's `user:<id>`.
//!
//! Delivery is at least once (an event redelivered after a crash is published again); each
//! publication carries the event's id to tell.

use prost::Message as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use agora_proto::{events::v1 as ev, tickets::v1::Ticket};
use agora_shared::bus::{Event, SharedBus, topic_for};

use crate::{channel::Key, hub::Hub};

/// The consumer group of every realtime replica: each event reaches one of them, which
/// publishes it to all (through the engine).
pub const GROUP: &str = "realtime";

/// A ticket as live views need it: no description, customer or contact details.
fn ticket_json(t: &Ticket) -> Value {
    json!({
        "ticket_id": t.id,
        "number": t.number,
        "title": t.title,
        "category": t.category,
        "priority": t.priority,
        "status": t.status,
        "zone": t.zone,
        "team_id": t.team_id,
        "assignee_id": t.assignee_id,
        "sla_status": t.sla_status,
        "due_at": t.due_at,
        "progress": t.progress,
        "deleted": t.deleted,
        "version": t.version,
        "updated_at": t.updated_at,
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// The publication an event becomes: its event name, the ticket id, and the data for the
/// ticket's channel and for the dashboard. `None` for events live views do not show.
pub fn ticket_publication(event: &Event) -> Option<(String, String, Value, Value)> {
    let name = event.event_type.strip_prefix("agora.tickets.")?.to_owned();
    let data = &event.data[..];
    let (ticket, extra) = match name.as_str() {
        "ticket.created" => {
            let m = ev::TicketCreated::decode(data).ok()?;
            (m.ticket?, json!({ "actor_id": m.actor_id }))
        }
        "ticket.updated" | "ticket.deleted" => {
            let m = ev::TicketUpdated::decode(data).ok()?;
            (
                m.ticket?,
                json!({ "changed_fields": m.changed_fields, "actor_id": m.actor_id }),
            )
        }
        "ticket.status_changed" => {
            let m = ev::TicketStatusChanged::decode(data).ok()?;
            (
                m.ticket?,
                json!({ "from_status": m.from_status, "to_status": m.to_status, "actor_id": m.actor_id }),
            )
        }
        "ticket.assigned" => {
            let m = ev::TicketAssigned::decode(data).ok()?;
            (
                m.ticket?,
                json!({ "team_id": m.team_id, "user_id": m.user_id, "over_capacity": m.over_capacity, "actor_id": m.actor_id }),
            )
        }
        "ticket.sla_breached" => {
            let m = ev::TicketSlaBreached::decode(data).ok()?;
            (m.ticket?, json!({ "detected_at": m.detected_at }))
        }
        "ticket.commented" => {
            let m = ev::TicketCommented::decode(data).ok()?;
            let base = json!({ "event_id": event.id, "ticket_id": m.ticket_id, "comment_id": m.comment_id, "author_id": m.author_id });
            let full = with(base.clone(), json!({ "body": m.body }));
            return Some((name, m.ticket_id, full, base));
        }
        _ => return None,
    };
    let data = with(
        with(ticket_json(&ticket), extra),
        json!({ "event_id": event.id }),
    );
    Some((name, ticket.id, data.clone(), data))
}

/// Where one event goes: (channel, event name, data) for each channel of its tenant.
pub type Publications = Vec<(String, String, Value)>;

/// The publications a tickets event becomes.
pub fn from_tickets(event: &Event) -> Publications {
    let Some((name, ticket_id, data, dashboard)) = ticket_publication(event) else {
        return Vec::new();
    };
    vec![
        (format!("ticket:{ticket_id}"), name.clone(), data),
        ("dashboard".to_owned(), name, dashboard),
    ]
}

/// The publications a code-exec event becomes. They carry what the event does (a verdict, a
/// score), never a program's text: hidden test cases stay in code-exec.
pub fn from_code_exec(event: &Event) -> Publications {
    let Some(name) = event.event_type.strip_prefix("agora.code_exec.") else {
        return Vec::new();
    };
    let data = &event.data[..];
    match name {
        "submission.finished" => {
            let Ok(m) = ev::SubmissionFinished::decode(data) else {
                return Vec::new();
            };
            let body = json!({
                "event_id": event.id,
                "token": m.token,
                "language_id": m.language_id,
                "language": m.language,
                "status": { "id": m.status_id, "description": m.status },
                "time": m.time,
                "wall_time": m.wall_time,
                "memory": m.memory_kb,
                "finished_at": m.finished_at,
            });
            vec![
                (
                    format!("submission:{}", m.token),
                    name.to_owned(),
                    body.clone(),
                ),
                (format!("user:{}", m.user_id), name.to_owned(), body),
            ]
        }
        "attempt.finished" => {
            let Ok(m) = ev::AttemptFinished::decode(data) else {
                return Vec::new();
            };
            let body = json!({
                "event_id": event.id,
                "attempt_id": m.attempt_id,
                "exercise_id": m.exercise_id,
                "exercise_version": m.exercise_version,
                "language_id": m.language_id,
                "score": m.score,
                "max_score": m.max_score,
                "passed": m.passed,
                "cases": m.cases,
                "accepted_cases": m.accepted_cases,
                "case_status_ids": m.case_status_ids,
                "finished_at": m.finished_at,
            });
            vec![(format!("user:{}", m.user_id), name.to_owned(), body)]
        }
        _ => Vec::new(),
    }
}

/// How one service's events become publications.
pub type Mapper = fn(&Event) -> Publications;

/// The services whose events realtime publishes, and how.
pub const SOURCES: [(&str, Mapper); 2] = [("tickets", from_tickets), ("code-exec", from_code_exec)];

/// Publishes `source`'s events, as `map` makes them, until `shutdown`.
pub async fn run(
    bus: SharedBus,
    hub: Hub,
    source: &'static str,
    map: Mapper,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut sub = bus.subscribe(&topic_for(source), GROUP).await?;
    loop {
        let delivery = tokio::select! {
            d = sub.next() => d?,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let event = &delivery.event;
        let publications = match event.tenant_id.as_deref() {
            // Channels are names within a tenant; a channel name the event spells badly
            // (an id with characters channels refuse) is no channel anyone can hold.
            Some(tenant) => map(event)
                .into_iter()
                .filter(|(channel, ..)| crate::channel::parse(channel).is_ok())
                .map(|(channel, name, data)| (Key::new(tenant, &channel), name, data))
                .collect(),
            None => Vec::new(),
        };
        // Retried until published: the event is committed only once it was.
        let mut wait = std::time::Duration::from_millis(100);
        let mut next = 0;
        while next < publications.len() {
            let (key, name, data) = &publications[next];
            match hub.engine.publish(key, name, data.clone(), None).await {
                Ok(_) => next += 1,
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), event = %event.id, "publishing an event failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.cancelled() => return Ok(()),
                    }
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
            }
        }
        sub.commit(&delivery).await?;
    }
}
