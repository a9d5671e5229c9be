//! The audit log; every entry is also published as an event.

use diesel::prelude::*;

use agora_proto::events::v1::AuditRecorded;
use agora_shared::{
    AppResult,
    bus::{Event, Outbox},
    db::{DbConnection, now},
};

use crate::{events, schema::audit_log};

/// One audited action.
pub struct Audit<'a> {
    pub action: &'a str,
    pub tenant_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    /// What the action was about (user id, key id, or the email of an unknown account).
    pub subject: &'a str,
    pub client_ip: Option<&'a str>,
    pub detail: serde_json::Value,
}

/// Stores the entry and its `agora.auth.audit.<action>` event in the current transaction.
pub fn record(conn: &mut DbConnection, audit: Audit<'_>) -> AppResult<()> {
    let id = uuid::Uuid::now_v7().to_string();
    let detail = audit.detail.to_string();
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::id.eq(&id),
            audit_log::tenant_id.eq(audit.tenant_id),
            audit_log::user_id.eq(audit.user_id),
            audit_log::action.eq(audit.action),
            audit_log::subject.eq(audit.subject),
            audit_log::client_ip.eq(audit.client_ip),
            audit_log::detail.eq(&detail),
            audit_log::created_at.eq(now()),
        ))
        .execute(conn)?;
    let message = AuditRecorded {
        audit_id: id,
        action: audit.action.to_owned(),
        tenant_id: audit.tenant_id.unwrap_or_default().to_owned(),
        user_id: audit.user_id.unwrap_or_default().to_owned(),
        subject: audit.subject.to_owned(),
        client_ip: audit.client_ip.unwrap_or_default().to_owned(),
        detail_json: detail,
    };
    let event: Event = events::event(
        &format!("audit.{}", audit.action),
        audit.user_id.unwrap_or(audit.subject),
        audit.tenant_id,
        &message,
    );
    Outbox::enqueue(conn, &events::topic(), &event)
}
