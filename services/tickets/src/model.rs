//! What goes over the wire: request bodies (strictly parsed, validated) and responses.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use agora_shared::db::utc;

use crate::{
    domain::{Category, Priority, SlaStatus, Status},
    store::{assignments::AssignmentRow, comments::CommentRow, tickets::TicketRow},
};

/// A field-force work order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Ticket {
    pub id: String,
    /// `CTT-000001`, sequential per tenant.
    pub number: String,
    pub title: String,
    pub description: String,
    pub category: Category,
    pub priority: Priority,
    pub status: Status,
    pub location: Option<String>,
    pub zone: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub customer_name: Option<String>,
    pub customer_contact: Option<String>,
    pub team_id: Option<String>,
    pub assignee_id: Option<String>,
    pub sla_hours: i32,
    /// When the SLA runs out; hold time served so far pushes it back.
    pub due_at: DateTime<Utc>,
    pub sla_status: SlaStatus,
    pub estimated_duration_minutes: Option<i32>,
    pub progress: i32,
    pub completed_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Ticket {
    pub fn new(row: &TicketRow, now: NaiveDateTime) -> Self {
        Self {
            id: row.id.clone(),
            number: crate::domain::format_number(row.number),
            title: row.title.clone(),
            description: row.description.clone(),
            category: row.category,
            priority: row.priority(),
            status: row.status(),
            location: row.location.clone(),
            zone: row.zone.clone(),
            latitude: row.latitude,
            longitude: row.longitude,
            customer_name: row.customer_name.clone(),
            customer_contact: row.customer_contact.clone(),
            team_id: row.team_id.clone(),
            assignee_id: row.assignee_id.clone(),
            sla_hours: row.sla_hours(),
            due_at: utc(row.due_at),
            sla_status: row.sla_status(now),
            estimated_duration_minutes: row.estimated_duration_minutes,
            progress: row.progress,
            completed_at: row.completed_at.map(utc),
            tags: row.tags.0.clone(),
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        }
    }
}

/// A new ticket; also the body of PUT, which replaces every editable field (omitted optional
/// fields are cleared, an omitted `sla_hours` returns to the priority's default).
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketFields {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub title: String,
    #[serde(default)]
    #[validate(length(max = 10000, message = "must be at most 10000 characters"))]
    pub description: String,
    pub category: Category,
    /// Defaults to MEDIUM.
    #[serde(default = "medium")]
    pub priority: Priority,
    #[validate(length(max = 500, message = "must be at most 500 characters"))]
    pub location: Option<String>,
    /// One of the tenant's zones (GET /api/v1/tickets/zones).
    pub zone: Option<String>,
    #[validate(range(min = -90.0, max = 90.0, message = "must be between -90 and 90"))]
    pub latitude: Option<f64>,
    #[validate(range(min = -180.0, max = 180.0, message = "must be between -180 and 180"))]
    pub longitude: Option<f64>,
    #[validate(length(max = 200, message = "must be at most 200 characters"))]
    pub customer_name: Option<String>,
    #[validate(length(max = 200, message = "must be at most 200 characters"))]
    pub customer_contact: Option<String>,
    /// Overrides the priority's SLA (TENANT_ADMIN or `tickets:manage`).
    #[validate(range(min = 1, max = 8760, message = "must be between 1 and 8760"))]
    pub sla_hours: Option<i32>,
    #[validate(range(min = 1, max = 100000, message = "must be between 1 and 100000"))]
    pub estimated_duration_minutes: Option<i32>,
    #[serde(default)]
    #[validate(range(min = 0, max = 100, message = "must be between 0 and 100"))]
    pub progress: i32,
    #[serde(default)]
    #[validate(
        length(max = 20, message = "at most 20 tags"),
        custom(function = "check_tags")
    )]
    pub tags: Vec<String>,
}

fn medium() -> Priority {
    Priority::Medium
}

fn check_tags(tags: &[String]) -> Result<(), validator::ValidationError> {
    if tags.iter().any(|t| t.chars().count() > 50) {
        let mut err = validator::ValidationError::new("tags");
        err.message = Some("each tag must be at most 50 characters".into());
        return Err(err);
    }
    Ok(())
}

/// A partial update: absent fields are kept, `null` clears an optional field.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPatch {
    #[validate(length(min = 1, max = 200, message = "must be 1 to 200 characters"))]
    pub title: Option<String>,
    #[validate(length(max = 10000, message = "must be at most 10000 characters"))]
    pub description: Option<String>,
    pub category: Option<Category>,
    pub priority: Option<Priority>,
    /// Moves the ticket along its status machine (409 naming the allowed moves otherwise).
    pub status: Option<Status>,
    #[serde(default, deserialize_with = "agora_shared::http::json::double_option")]
    #[validate(length(max = 500, message = "must be at most 500 characters"))]
    #[schema(value_type = Option<String>)]
    pub location: Option<Option<String>>,
    #[serde(default, deserialize_with = "agora_shared::http::json::double_option")]
    #[schema(value_type = Option<String>)]
    pub zone: Option<Option<String>>,
    #[serde(default, deserialize_with = "agora_shared::http::json::double_option")]
    #[validate(range(min = -90.0, max = 90.0, message = "must be between -90 and 90"))]
    #[schema(value_type = Option<f64>)]
    pub latitude: Option<Option<f64>>,
    #[serde(default, deserialize_with = "agora_shared::http::json::double_option")]
    #[validate(range(min = -180.0, max = 180.0, message = "must be between -180 and 180"))]
    #[schema(value_type = Option<f64>)]
    pub longitude: Option<Option<f64>>,
    #[serde(default, deserialize_with = "agora_shared::http::json::double_option")]
    #[validate(length(max = 200, message = "must be at most 200 characters"))]
    #[schema(value_type = Option<String>)]
    pub customer_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "agora_shared::http::json::double_option")]
    #[validate(length(max = 200, message = "must be at most 200 characters"))]
    #[schema(value_type = Option<String>)]
    pub customer_contact: Option<Option<String>>,
    /// `null` returns to the priority's default (TENANT_ADMIN or `tickets:manage`).
    #[serde(default, deserialize_with = "agora_shared::http::json::double_option")]
    #[validate(range(min = 1, max = 8760, message = "must be between 1 and 8760"))]
    #[schema(value_type = Option<i32>)]
    pub sla_hours: Option<Option<i32>>,
    #[serde(default, deserialize_with = "agora_shared::http::json::double_option")]
    #[validate(range(min = 1, max = 100000, message = "must be between 1 and 100000"))]
    #[schema(value_type = Option<i32>)]
    pub estimated_duration_minutes: Option<Option<i32>>,
    #[validate(range(min = 0, max = 100, message = "must be between 0 and 100"))]
    pub progress: Option<i32>,
    #[validate(
        length(max = 20, message = "at most 20 tags"),
        custom(function = "check_tags")
    )]
    pub tags: Option<Vec<String>>,
}

/// POST /tickets/{id}/assignments
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    #[validate(length(min = 1, message = "must not be empty"))]
    pub team_id: String,
    /// A member of the team; omitted: the team as a whole.
    pub user_id: Option<String>,
    #[serde(default)]
    #[validate(length(max = 2000, message = "must be at most 2000 characters"))]
    pub note: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Assignment {
    pub id: String,
    pub ticket_id: String,
    pub team_id: String,
    pub user_id: Option<String>,
    pub note: String,
    /// The team had more tickets assigned that day than its daily capacity.
    pub over_capacity: bool,
    pub assigned_by: String,
    pub assigned_at: DateTime<Utc>,
}

impl From<&AssignmentRow> for Assignment {
    fn from(a: &AssignmentRow) -> Self {
        Self {
            id: a.id.clone(),
            ticket_id: a.ticket_id.clone(),
            team_id: a.team_id.clone(),
            user_id: a.user_id.clone(),
            note: a.note.clone(),
            over_capacity: a.over_capacity,
            assigned_by: a.assigned_by.clone(),
            assigned_at: utc(a.assigned_at),
        }
    }
}

/// The team's load on the day of an assignment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct TeamLoad {
    pub daily_capacity: i32,
    /// Tickets assigned to the team today, this one included.
    pub assigned_today: i64,
    pub over_capacity: bool,
}

/// The answer to an assignment: the record, the ticket after it, and the team's load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Assigned {
    pub assignment: Assignment,
    pub ticket: Ticket,
    pub team_load: TeamLoad,
}

/// POST and PATCH /tickets/{id}/comments
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    #[validate(length(min = 1, max = 10000, message = "must be 1 to 10000 characters"))]
    pub body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Comment {
    pub id: String,
    pub ticket_id: String,
    pub author_id: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The author may edit or delete it until then.
    pub editable_until: DateTime<Utc>,
}

impl Comment {
    pub fn new(c: &CommentRow, window: chrono::Duration) -> Self {
        Self {
            id: c.id.clone(),
            ticket_id: c.ticket_id.clone(),
            author_id: c.author_id.clone(),
            body: c.body.clone(),
            created_at: utc(c.created_at),
            updated_at: utc(c.updated_at),
            editable_until: utc(c.created_at + window),
        }
    }
}

/// The tenant's zones.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Zones {
    #[validate(length(min = 1, max = 100, message = "must list 1 to 100 zones"))]
    pub zones: Vec<String>,
}

/// GET /tickets/stats/summary
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Summary {
    pub total: i64,
    pub by_status: BTreeMap<String, i64>,
    pub by_priority: BTreeMap<String, i64>,
    pub by_category: BTreeMap<String, i64>,
    /// Tickets without a zone count under `UNSET`.
    pub by_zone: BTreeMap<String, i64>,
    pub by_sla_status: BTreeMap<String, i64>,
    pub completed: i64,
    /// Mean of completed_at - created_at over completed tickets; null when none.
    pub mean_time_to_complete_hours: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct TicketPage {
    pub items: Vec<Ticket>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AssignmentPage {
    pub items: Vec<Assignment>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CommentPage {
    pub items: Vec<Comment>,
    pub next_cursor: Option<String>,
}
