//! What analytics consumes: a mapping table from event type to a reader that turns the event
//! into an activity line and, for ticket events, the ticket's new fact. A new kind of event
//! (conversations, code submissions, discrepancies, ...) is one more row here and, when it
//! carries state, one more fact table; the consumer plumbing stays the same.

use chrono::{DateTime, NaiveDateTime};
use prost::Message;

use agora_proto::{events::v1 as ev, tickets::v1 as pb};
use agora_shared::{
    AppError, AppResult,
    bus::{BatchHandler, Event, Handler},
    db::{DbConnection, now},
};
use std::sync::Arc;

use crate::{
    domain::{self, Fact},
    store::{activities::ActivityRow, facts},
};

/// The consumer group analytics reads as.
pub const GROUP: &str = "analytics";

/// Services whose event topics analytics consumes.
pub const SOURCES: &[&str] = &["tickets"];

/// What one event means to analytics.
pub struct Reading {
    pub summary: String,
    /// The ticket's state after the event, when the event carries it.
    pub ticket: Option<Fact>,
}

/// One row of the mapping table.
pub struct Mapping {
    pub event_type: &'static str,
    pub read: fn(&Event) -> AppResult<Reading>,
}

pub const MAPPINGS: &[Mapping] = &[
    Mapping {
        event_type: "agora.tickets.ticket.created",
        read: ticket_created,
    },
    Mapping {
        event_type: "agora.tickets.ticket.updated",
        read: ticket_updated,
    },
    Mapping {
        event_type: "agora.tickets.ticket.deleted",
        read: ticket_updated,
    },
    Mapping {
        event_type: "agora.tickets.ticket.status_changed",
        read: ticket_status_changed,
    },
    Mapping {
        event_type: "agora.tickets.ticket.assigned",
        read: ticket_assigned,
    },
    Mapping {
        event_type: "agora.tickets.ticket.sla_breached",
        read: ticket_sla_breached,
    },
    Mapping {
        event_type: "agora.tickets.ticket.commented",
        read: ticket_commented,
    },
];

/// The consumer's handler: runs inside the transaction that records the event in the inbox.
pub fn handler() -> Handler {
    Arc::new(|conn: &mut DbConnection, event: &Event| handle(conn, event))
}

/// The consumer's batch handler: the same as `handler` for each event in turn, set-based.
pub fn batch_handler() -> BatchHandler {
    Arc::new(|conn: &mut DbConnection, events: &[Event]| handle_batch(conn, events))
}

/// What one event adds: its activity line and, when it carries one, the ticket's fact.
fn read(event: &Event) -> AppResult<Option<(ActivityRow, Option<Fact>)>> {
    let Some(mapping) = MAPPINGS.iter().find(|m| m.event_type == event.event_type) else {
        tracing::debug!(event_type = %event.event_type, "event type not mapped; skipped");
        return Ok(None);
    };
    let reading = (mapping.read)(event)?;
    let tenant_id = match (&event.tenant_id, &reading.ticket) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => f.tenant_id.clone(),
        (None, None) => return Err(AppError::invalid("tenant_id", "event names no tenant")),
    };
    let activity = ActivityRow {
        id: event.id.clone(),
        tenant_id,
        event_type: event.event_type.clone(),
        source: event.source.clone(),
        subject: event.key.clone(),
        summary: reading.summary,
        occurred_at: event.time.naive_utc(),
    };
    Ok(Some((activity, reading.ticket)))
}

pub fn handle(conn: &mut DbConnection, event: &Event) -> AppResult<()> {
    handle_as_of(conn, event, now())
}

/// `handle` with the clock read once by the caller (the hourly window depends on it).
pub fn handle_as_of(conn: &mut DbConnection, event: &Event, now: NaiveDateTime) -> AppResult<()> {
    let Some((activity, fact)) = read(event)? else {
        return Ok(());
    };
    crate::store::activities::insert(conn, &activity)?;
    if let Some(fact) = fact {
        facts::apply(conn, fact, now)?;
    }
    Ok(())
}

/// Applies events in order with one statement per table (per 1,000 rows). Any event that
/// cannot be read fails the whole batch, which the consumer then handles one at a time.
pub fn handle_batch(conn: &mut DbConnection, events: &[Event]) -> AppResult<()> {
    handle_batch_as_of(conn, events, now())
}

/// `handle_batch` with the clock read once by the caller.
pub fn handle_batch_as_of(
    conn: &mut DbConnection,
    events: &[Event],
    now: NaiveDateTime,
) -> AppResult<()> {
    let mut activities = Vec::with_capacity(events.len());
    let mut incoming = Vec::with_capacity(events.len());
    for event in events {
        if let Some((activity, fact)) = read(event)? {
            activities.push(activity);
            incoming.extend(fact);
        }
    }
    crate::store::activities::insert_many(conn, &activities)?;
    facts::apply_many(conn, incoming, now)?;
    Ok(())
}

fn decode<M: Message + Default>(event: &Event) -> AppResult<M> {
    M::decode(event.data.as_slice())
        .map_err(|e| AppError::invalid("data", format!("not a valid {}: {e}", event.event_type)))
}

fn time(field: &str, value: &str) -> AppResult<NaiveDateTime> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.naive_utc())
        .map_err(|_| AppError::invalid(field, format!("not an RFC 3339 time: {value:?}")))
}

fn optional_time(field: &str, value: &str) -> AppResult<Option<NaiveDateTime>> {
    if value.is_empty() {
        Ok(None)
    } else {
        time(field, value).map(Some)
    }
}

/// The fact a ticket message describes.
pub fn fact_of(t: &pb::Ticket) -> AppResult<Fact> {
    let created_at = time("ticket.created_at", &t.created_at)?;
    Ok(Fact {
        tenant_id: t.tenant_id.clone(),
        ticket_id: t.id.clone(),
        number: t.number.clone(),
        category: t.category.clone(),
        priority: t.priority.clone(),
        status: t.status.clone(),
        zone: t.zone.clone(),
        team_id: t.team_id.clone(),
        created_at,
        created_day: domain::day_bucket(created_at),
        due_at: time("ticket.due_at", &t.due_at)?,
        completed_at: optional_time("ticket.completed_at", &t.completed_at)?,
        first_assigned_at: None,
        breached: t.sla_status == "BREACHED",
        deleted: t.deleted,
        version: t.version,
    })
}

fn ticket(t: Option<pb::Ticket>) -> AppResult<pb::Ticket> {
    t.ok_or_else(|| AppError::invalid("ticket", "event carries no ticket"))
}

fn ticket_created(event: &Event) -> AppResult<Reading> {
    let m: ev::TicketCreated = decode(event)?;
    let t = ticket(m.ticket)?;
    let zone = if t.zone.is_empty() {
        "no zone"
    } else {
        &t.zone
    };
    Ok(Reading {
        summary: format!(
            "{} created ({}, {}, {zone})",
            t.number, t.category, t.priority
        ),
        ticket: Some(fact_of(&t)?),
    })
}

fn ticket_updated(event: &Event) -> AppResult<Reading> {
    let m: ev::TicketUpdated = decode(event)?;
    let t = ticket(m.ticket)?;
    let summary = if t.deleted {
        format!("{} deleted", t.number)
    } else {
        format!("{} updated ({})", t.number, m.changed_fields.join(", "))
    };
    Ok(Reading {
        summary,
        ticket: Some(fact_of(&t)?),
    })
}

fn ticket_status_changed(event: &Event) -> AppResult<Reading> {
    let m: ev::TicketStatusChanged = decode(event)?;
    let t = ticket(m.ticket)?;
    Ok(Reading {
        summary: format!("{} {} -> {}", t.number, m.from_status, m.to_status),
        ticket: Some(fact_of(&t)?),
    })
}

fn ticket_assigned(event: &Event) -> AppResult<Reading> {
    let m: ev::TicketAssigned = decode(event)?;
    let t = ticket(m.ticket)?;
    let mut fact = fact_of(&t)?;
    // The assignment's own time is the ticket's change time of this version.
    fact.first_assigned_at = Some(time("ticket.updated_at", &t.updated_at)?);
    let over = if m.over_capacity {
        " (over capacity)"
    } else {
        ""
    };
    Ok(Reading {
        summary: format!("{} assigned to team {}{over}", t.number, m.team_id),
        ticket: Some(fact),
    })
}

fn ticket_sla_breached(event: &Event) -> AppResult<Reading> {
    let m: ev::TicketSlaBreached = decode(event)?;
    let t = ticket(m.ticket)?;
    let mut fact = fact_of(&t)?;
    fact.breached = true;
    Ok(Reading {
        summary: format!("{} breached its SLA (due {})", t.number, m.due_at),
        ticket: Some(fact),
    })
}

fn ticket_commented(event: &Event) -> AppResult<Reading> {
    let m: ev::TicketCommented = decode(event)?;
    Ok(Reading {
        summary: format!("comment on ticket {}", m.ticket_id),
        ticket: None,
    })
}
