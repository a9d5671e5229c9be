//! What the auth service publishes, on `agora.auth.events` (it consumes nothing yet).

use prost::Message;

use agora_proto::events::v1::{TeamChanged, TenantChanged, UserChanged};
use agora_shared::{
    AppResult,
    bus::{Event, Outbox, topic_for},
    db::DbConnection,
};

use crate::store::{teams::TeamRow, tenants::TenantRow, users::UserRow};

pub const SOURCE: &str = "agora/auth";

pub fn topic() -> String {
    topic_for("auth")
}

/// An event of type `agora.auth.<name>`.
pub fn event(name: &str, key: &str, tenant_id: Option<&str>, message: &impl Message) -> Event {
    Event::new(
        SOURCE,
        &format!("agora.auth.{name}"),
        key,
        tenant_id.map(str::to_owned),
        message.encode_to_vec(),
    )
}

/// Writes the event to the outbox in the current transaction.
pub fn emit(
    conn: &mut DbConnection,
    name: &str,
    key: &str,
    tenant_id: Option<&str>,
    message: &impl Message,
) -> AppResult<()> {
    Outbox::enqueue(conn, &topic(), &event(name, key, tenant_id, message))
}

pub fn tenant_changed(conn: &mut DbConnection, name: &str, t: &TenantRow) -> AppResult<()> {
    let message = TenantChanged {
        tenant_id: t.id.clone(),
        name: t.name.clone(),
        plan: t.plan.clone(),
        status: t.status.clone(),
    };
    emit(conn, name, &t.id, Some(&t.id), &message)
}

pub fn user_changed(
    conn: &mut DbConnection,
    name: &str,
    u: &UserRow,
    actor_id: Option<&str>,
) -> AppResult<()> {
    let message = UserChanged {
        user_id: u.id.clone(),
        tenant_id: u.tenant_id.clone(),
        email: u.email.clone(),
        name: u.name.clone(),
        role: u.role.to_string(),
        status: u.status.clone(),
        permissions: u.permissions(),
        actor_id: actor_id.unwrap_or_default().to_owned(),
    };
    emit(conn, name, &u.id, Some(&u.tenant_id), &message)
}

pub fn team_changed(
    conn: &mut DbConnection,
    name: &str,
    t: &TeamRow,
    members: &[String],
) -> AppResult<()> {
    let message = TeamChanged {
        team_id: t.id.clone(),
        tenant_id: t.tenant_id.clone(),
        name: t.name.clone(),
        zone: t.zone.clone(),
        skills: t.skills.0.clone(),
        daily_capacity: t.daily_capacity,
        member_ids: members.to_vec(),
    };
    emit(conn, name, &t.id, Some(&t.tenant_id), &message)
}
