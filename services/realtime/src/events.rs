//! Other services' events turned into publications: each ticket event goes to the ticket's
//! channel and to its tenant's `dashboard`. Delivery is at least once (an event redelivered
//! after a crash is published again); each publication carries the event's id to tell.

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

/// Publishes the tickets service's events until `shutdown`.
pub async fn run(bus: SharedBus, hub: Hub, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut sub = bus.subscribe(&topic_for("tickets"), GROUP).await?;
    loop {
        let delivery = tokio::select! {
            d = sub.next() => d?,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let event = &delivery.event;
        if let (Some(tenant), Some((name, ticket_id, data, dashboard))) =
            (event.tenant_id.as_deref(), ticket_publication(event))
        {
            // Retried until published: the event is committed only once it was.
            let mut wait = std::time::Duration::from_millis(100);
            loop {
                let published = async {
                    let key = Key::new(tenant, &format!("ticket:{ticket_id}"));
                    hub.engine.publish(&key, &name, data.clone(), None).await?;
                    let key = Key::new(tenant, "dashboard");
                    hub.engine
                        .publish(&key, &name, dashboard.clone(), None)
                        .await
                };
                match published.await {
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(error = %format!("{err:#}"), event = %event.id, "publishing a ticket event failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = shutdown.cancelled() => return Ok(()),
                        }
                        wait = (wait * 2).min(std::time::Duration::from_secs(5));
                    }
                }
            }
        }
        sub.commit(&delivery).await?;
    }
}
