//! What the tickets service publishes, on `agora.tickets.events` keyed by ticket id (it consumes
//! nothing). Every event is written to the outbox in the transaction of its change.

use chrono::NaiveDateTime;
use prost::Message;

use agora_proto::{events::v1 as ev, tickets::v1 as pb};
use agora_shared::{
    AppResult,
    bus::{Event, Outbox, topic_for},
    db::DbConnection,
};

use crate::{
    changes::Change,
    domain::format_number,
    store::{assignments::AssignmentRow, comments::CommentRow, tickets::TicketRow},
};

pub const SOURCE: &str = "agora/tickets";

pub fn topic() -> String {
    topic_for("tickets")
}

fn rfc3339(t: Option<NaiveDateTime>) -> String {
    t.map(agora_shared::db::rfc3339).unwrap_or_default()
}

/// The ticket as other services see it, with its SLA standing at `now`.
pub fn ticket_message(row: &TicketRow, now: NaiveDateTime) -> pb::Ticket {
    pb::Ticket {
        id: row.id.clone(),
        tenant_id: row.tenant_id.clone(),
        number: format_number(row.number),
        title: row.title.clone(),
        description: row.description.clone(),
        category: row.category.as_str().into(),
        priority: row.priority.as_str().into(),
        status: row.status.as_str().into(),
        location: row.location.clone().unwrap_or_default(),
        zone: row.zone.clone().unwrap_or_default(),
        latitude: row.latitude,
        longitude: row.longitude,
        customer_name: row.customer_name.clone().unwrap_or_default(),
        customer_contact: row.customer_contact.clone().unwrap_or_default(),
        team_id: row.team_id.clone().unwrap_or_default(),
        assignee_id: row.assignee_id.clone().unwrap_or_default(),
        sla_hours: row.sla_hours(),
        due_at: rfc3339(Some(row.due_at)),
        sla_status: row.sla_status(now).as_str().to_owned(),
        estimated_duration_minutes: row.estimated_duration_minutes,
        progress: row.progress,
        completed_at: rfc3339(row.completed_at),
        tags: row.tags.0.clone(),
        created_at: rfc3339(Some(row.created_at)),
        updated_at: rfc3339(Some(row.updated_at)),
        deleted: row.deleted_at.is_some(),
        version: row.version,
    }
}

/// Writes `agora.tickets.<name>` for ticket `row` to the outbox.
fn emit(
    conn: &mut DbConnection,
    name: &str,
    row: &TicketRow,
    message: &impl Message,
) -> AppResult<()> {
    let event = Event::new(
        SOURCE,
        &format!("agora.tickets.{name}"),
        &row.id,
        Some(row.tenant_id.clone()),
        message.encode_to_vec(),
    );
    Outbox::enqueue(conn, &topic(), &event)
}

pub fn created(conn: &mut DbConnection, row: &TicketRow, actor: &str) -> AppResult<()> {
    let message = ev::TicketCreated {
        ticket: Some(ticket_message(row, row.updated_at)),
        actor_id: actor.to_owned(),
    };
    emit(conn, "ticket.created", row, &message)
}

/// `ticket.status_changed` when the status moved, and `ticket.updated` when other fields did.
pub fn changed(
    conn: &mut DbConnection,
    row: &TicketRow,
    change: &Change,
    actor: &str,
) -> AppResult<()> {
    let ticket = ticket_message(row, row.updated_at);
    let others: Vec<String> = change
        .fields
        .iter()
        .filter(|f| **f != "status")
        .map(|f| (*f).to_owned())
        .collect();
    if !others.is_empty() {
        let message = ev::TicketUpdated {
            ticket: Some(ticket.clone()),
            changed_fields: others,
            actor_id: actor.to_owned(),
        };
        emit(conn, "ticket.updated", row, &message)?;
    }
    if let Some(from) = change.moved_from {
        let message = ev::TicketStatusChanged {
            ticket: Some(ticket),
            from_status: from.as_str().to_owned(),
            to_status: row.status.as_str().into(),
            actor_id: actor.to_owned(),
        };
        emit(conn, "ticket.status_changed", row, &message)?;
    }
    Ok(())
}

pub fn deleted(conn: &mut DbConnection, row: &TicketRow, actor: &str) -> AppResult<()> {
    let message = ev::TicketUpdated {
        ticket: Some(ticket_message(row, row.updated_at)),
        changed_fields: vec!["deleted".to_owned()],
        actor_id: actor.to_owned(),
    };
    emit(conn, "ticket.deleted", row, &message)
}

pub fn assigned(conn: &mut DbConnection, row: &TicketRow, a: &AssignmentRow) -> AppResult<()> {
    let message = ev::TicketAssigned {
        ticket: Some(ticket_message(row, row.updated_at)),
        assignment_id: a.id.clone(),
        team_id: a.team_id.clone(),
        user_id: a.user_id.clone().unwrap_or_default(),
        note: a.note.clone(),
        over_capacity: a.over_capacity,
        actor_id: a.assigned_by.clone(),
    };
    emit(conn, "ticket.assigned", row, &message)
}

pub fn commented(conn: &mut DbConnection, row: &TicketRow, c: &CommentRow) -> AppResult<()> {
    let message = ev::TicketCommented {
        ticket_id: row.id.clone(),
        tenant_id: row.tenant_id.clone(),
        comment_id: c.id.clone(),
        author_id: c.author_id.clone(),
        body: c.body.clone(),
    };
    emit(conn, "ticket.commented", row, &message)
}

pub fn sla_breached(conn: &mut DbConnection, row: &TicketRow, now: NaiveDateTime) -> AppResult<()> {
    let message = ev::TicketSlaBreached {
        ticket: Some(ticket_message(row, now)),
        due_at: rfc3339(Some(row.due_at)),
        detected_at: rfc3339(Some(now)),
    };
    emit(conn, "ticket.sla_breached", row, &message)
}
