//! How requests change a ticket: building a new one, replacing its fields, patching it and moving
//! its status, with the SLA clock kept right. No I/O; the handlers load, call these, and save.

use chrono::NaiveDateTime;

use agora_shared::db::Json;

use crate::{
    domain::{SlaClock, Status, clean_tags},
    model::{TicketFields, TicketPatch},
    store::tickets::TicketRow,
};

/// What a change did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// Wire names of the fields whose value changed.
    pub fields: Vec<&'static str>,
    /// The status before, when the status moved.
    pub moved_from: Option<Status>,
    /// The SLA override was set, changed or removed (needs the manage permission).
    pub sla_override_changed: bool,
    /// The ticket was finished after its due time and its breach had not been announced yet:
    /// announce it with this change (the breach watch only looks at unfinished tickets).
    pub breach_to_announce: bool,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

fn trimmed(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A new OPEN ticket with its SLA clock started at `now`.
pub fn new_ticket(
    tenant_id: &str,
    number: i64,
    f: &TicketFields,
    actor: &str,
    now: NaiveDateTime,
) -> TicketRow {
    let sla_hours = f.sla_hours.unwrap_or(f.priority.default_sla_hours());
    let clock = SlaClock::new(now, sla_hours);
    TicketRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant_id.to_owned(),
        number,
        title: f.title.trim().to_owned(),
        description: f.description.trim().to_owned(),
        category: f.category,
        priority: f.priority,
        priority_rank: f.priority.rank(),
        status: Status::Open,
        location: trimmed(&f.location),
        zone: trimmed(&f.zone),
        latitude: f.latitude,
        longitude: f.longitude,
        customer_name: trimmed(&f.customer_name),
        customer_contact: trimmed(&f.customer_contact),
        team_id: None,
        assignee_id: None,
        sla_override: f.sla_hours,
        due_at: clock.due_at(),
        at_risk_at: clock.at_risk_at(),
        paused_secs: 0,
        clock_stopped_at: None,
        estimated_duration_minutes: f.estimated_duration_minutes,
        progress: f.progress,
        completed_at: None,
        tags: Json(clean_tags(&f.tags)),
        breach_notified_at: None,
        version: 1,
        created_by: actor.to_owned(),
        created_at: now,
        updated_at: now,
        deleted_at: None,
    }
}

/// Assigns `value` to `slot`, recording `name` when it differs.
fn set<T: PartialEq>(change: &mut Change, name: &'static str, slot: &mut T, value: T) {
    if *slot != value {
        *slot = value;
        change.fields.push(name);
    }
}

/// Replaces every editable field (PUT).
pub fn replace(row: &mut TicketRow, f: &TicketFields, now: NaiveDateTime) -> Change {
    let patch = TicketPatch {
        title: Some(f.title.clone()),
        description: Some(f.description.clone()),
        category: Some(f.category),
        priority: Some(f.priority),
        status: None,
        location: Some(f.location.clone()),
        zone: Some(f.zone.clone()),
        latitude: Some(f.latitude),
        longitude: Some(f.longitude),
        customer_name: Some(f.customer_name.clone()),
        customer_contact: Some(f.customer_contact.clone()),
        sla_hours: Some(f.sla_hours),
        estimated_duration_minutes: Some(f.estimated_duration_minutes),
        progress: Some(f.progress),
        tags: Some(f.tags.clone()),
    };
    // Without a status move, patching cannot fail.
    patch_ticket(row, &patch, now).unwrap_or_default()
}

/// Applies a partial update; an illegal status move is an error naming the allowed ones.
pub fn patch_ticket(
    row: &mut TicketRow,
    p: &TicketPatch,
    now: NaiveDateTime,
) -> Result<Change, String> {
    let mut c = Change::default();
    if let Some(v) = &p.title {
        set(&mut c, "title", &mut row.title, v.trim().to_owned());
    }
    if let Some(v) = &p.description {
        set(
            &mut c,
            "description",
            &mut row.description,
            v.trim().to_owned(),
        );
    }
    if let Some(v) = p.category {
        set(&mut c, "category", &mut row.category, v);
    }
    if let Some(v) = &p.location {
        set(&mut c, "location", &mut row.location, trimmed(v));
    }
    if let Some(v) = &p.zone {
        set(&mut c, "zone", &mut row.zone, trimmed(v));
    }
    if let Some(v) = p.latitude {
        set(&mut c, "latitude", &mut row.latitude, v);
    }
    if let Some(v) = p.longitude {
        set(&mut c, "longitude", &mut row.longitude, v);
    }
    if let Some(v) = &p.customer_name {
        set(&mut c, "customer_name", &mut row.customer_name, trimmed(v));
    }
    if let Some(v) = &p.customer_contact {
        set(
            &mut c,
            "customer_contact",
            &mut row.customer_contact,
            trimmed(v),
        );
    }
    if let Some(v) = p.estimated_duration_minutes {
        set(
            &mut c,
            "estimated_duration_minutes",
            &mut row.estimated_duration_minutes,
            v,
        );
    }
    if let Some(v) = p.progress {
        set(&mut c, "progress", &mut row.progress, v);
    }
    if let Some(v) = &p.tags {
        set(&mut c, "tags", &mut row.tags, Json(clean_tags(v)));
    }
    // Priority and SLA override change the due time; hold time already served is kept.
    let sla_before = row.sla_hours();
    if let Some(v) = p.priority {
        set(&mut c, "priority", &mut row.priority, v);
        row.priority_rank = v.rank();
    }
    if let Some(v) = p.sla_hours
        && row.sla_override != v
    {
        row.sla_override = v;
        c.sla_override_changed = true;
    }
    if row.sla_hours() != sla_before {
        c.fields.push("sla_hours");
        let mut clock = row.clock();
        clock.sla_hours = row.sla_hours();
        row.set_clock(&clock);
        c.fields.push("due_at");
    }
    if let Some(to) = p.status {
        let from = row.status();
        if to != from {
            from.check_move(to)?;
            move_status(row, from, to, now);
            c.fields.push("status");
            c.moved_from = Some(from);
            if to.is_final()
                && row.breach_notified_at.is_none()
                && row.sla_status(now) == crate::domain::SlaStatus::Breached
            {
                row.breach_notified_at = Some(now);
                c.breach_to_announce = true;
            }
        }
    }
    Ok(c)
}

/// The side effects of a legal move on the clock, completion time and progress.
fn move_status(row: &mut TicketRow, from: Status, to: Status, now: NaiveDateTime) {
    let mut clock = row.clock();
    match to {
        Status::OnHold | Status::Cancelled => clock.stop(now),
        Status::Completed => {
            clock.stop(now);
            row.completed_at = Some(now);
            row.progress = 100;
        }
        Status::Open | Status::InProgress if from == Status::OnHold => clock.resume(now),
        Status::Open | Status::InProgress => {}
    }
    row.set_clock(&clock);
    row.status = to;
}

/// Records a save: a new version and update time.
pub fn touch(row: &mut TicketRow, now: NaiveDateTime) {
    row.version += 1;
    row.updated_at = now;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Category, Priority, SlaStatus};

    fn at(h: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc()
            + chrono::Duration::hours(h)
    }

    fn fields(priority: Priority) -> TicketFields {
        serde_json::from_value(serde_json::json!({
            "title": " Fibre cut ", "category": "REPAIR", "priority": priority, "tags": ["a", "a", " b"]
        }))
        .unwrap()
    }

    fn patch(v: serde_json::Value) -> TicketPatch {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn new_tickets_are_open_with_the_priority_sla() {
        let row = new_ticket("t", 7, &fields(Priority::High), "u", at(0));
        assert_eq!(row.title, "Fibre cut");
        assert_eq!(row.status, Status::Open);
        assert_eq!(row.sla_hours(), 8);
        assert_eq!(row.due_at, at(8));
        assert_eq!(row.tags.0, ["a", "b"]);
        assert_eq!(row.category, Category::Repair);
    }

    #[test]
    fn whole_life_with_hold_and_priority_change() {
        let mut row = new_ticket("t", 1, &fields(Priority::High), "u", at(0));
        let c = patch_ticket(
            &mut row,
            &patch(serde_json::json!({"status": "IN_PROGRESS"})),
            at(1),
        )
        .unwrap();
        assert_eq!(c.moved_from, Some(Status::Open));
        patch_ticket(
            &mut row,
            &patch(serde_json::json!({"status": "ON_HOLD"})),
            at(2),
        )
        .unwrap();
        patch_ticket(
            &mut row,
            &patch(serde_json::json!({"status": "IN_PROGRESS"})),
            at(5),
        )
        .unwrap();
        assert_eq!(row.paused_secs, 3 * 3600);
        assert_eq!(row.due_at, at(11));
        let c = patch_ticket(
            &mut row,
            &patch(serde_json::json!({"priority": "URGENT"})),
            at(6),
        )
        .unwrap();
        assert!(c.fields.contains(&"due_at") && !c.sla_override_changed);
        assert_eq!(row.due_at, at(7));
        let err = patch_ticket(
            &mut row,
            &patch(serde_json::json!({"status": "OPEN"})),
            at(6),
        )
        .unwrap_err();
        assert!(
            err.contains("allowed: COMPLETED, ON_HOLD, CANCELLED"),
            "{err}"
        );
        let c = patch_ticket(
            &mut row,
            &patch(serde_json::json!({"status": "COMPLETED"})),
            at(6),
        )
        .unwrap();
        assert!(!c.breach_to_announce, "completed in time");
        assert_eq!((row.completed_at, row.progress), (Some(at(6)), 100));
        assert_eq!(row.sla_status(at(50)), SlaStatus::OnTime);
    }

    #[test]
    fn finishing_late_announces_the_breach_once() {
        let mut row = new_ticket("t", 1, &fields(Priority::Urgent), "u", at(0));
        patch_ticket(
            &mut row,
            &patch(serde_json::json!({"status": "IN_PROGRESS"})),
            at(1),
        )
        .unwrap();
        let c = patch_ticket(
            &mut row,
            &patch(serde_json::json!({"status": "COMPLETED"})),
            at(5),
        )
        .unwrap();
        assert!(c.breach_to_announce);
        assert_eq!(row.breach_notified_at, Some(at(5)));
        let mut announced = new_ticket("t", 2, &fields(Priority::Urgent), "u", at(0));
        announced.breach_notified_at = Some(at(4));
        let c = patch_ticket(
            &mut announced,
            &patch(serde_json::json!({"status": "CANCELLED"})),
            at(5),
        )
        .unwrap();
        assert!(!c.breach_to_announce, "already announced by the watch");
    }

    #[test]
    fn override_and_clearing() {
        let mut row = new_ticket("t", 1, &fields(Priority::Low), "u", at(0));
        let c = patch_ticket(&mut row, &patch(serde_json::json!({"sla_hours": 2})), at(0)).unwrap();
        assert!(c.sla_override_changed);
        assert_eq!(row.due_at, at(2));
        let c = patch_ticket(
            &mut row,
            &patch(serde_json::json!({"sla_hours": null, "location": null})),
            at(0),
        )
        .unwrap();
        assert!(c.sla_override_changed);
        assert_eq!(row.due_at, at(72));
        let c = patch_ticket(
            &mut row,
            &patch(serde_json::json!({"title": "Fibre cut"})),
            at(0),
        )
        .unwrap();
        assert!(c.is_empty());
    }
}
