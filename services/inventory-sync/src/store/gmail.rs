//! Google consents under way and the Gmail messages each connection read.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use agora_shared::{AppResult, db::DbConnection};

use crate::{
    domain::{ClaimProvider, ClaimStatus, ClaimType},
    schema::{claims, mail_messages, oauth_states, reimbursements},
    store::claims::ClaimRow,
};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_states)]
pub struct OAuthStateRow {
    /// SHA-256 (hex) of the state handed to Google.
    pub state_hash: String,
    pub tenant_id: String,
    pub user_id: String,
    pub provider: String,
    /// The PKCE verifier, sealed for the state's hash.
    pub verifier: String,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = mail_messages)]
pub struct MailMessageRow {
    pub connection_id: String,
    pub message_id: String,
    pub tenant_id: String,
    pub subject: String,
    pub outcome: String,
    pub read_at: NaiveDateTime,
}

/// Keeps a consent under way; lapsed ones are dropped on the way.
pub fn begin(conn: &mut DbConnection, row: &OAuthStateRow, now: NaiveDateTime) -> AppResult<()> {
    diesel::delete(oauth_states::table.filter(oauth_states::expires_at.lt(now))).execute(conn)?;
    diesel::insert_into(oauth_states::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Takes the consent whose state hashes to `state_hash` that user `user_id` of `tenant_id`
/// started: it is gone afterwards, so a state is used once (of two concurrent takers, one
/// gets it); another caller's attempt finds nothing and leaves it. `None` when none.
pub fn take(
    conn: &mut DbConnection,
    state_hash: &str,
    tenant_id: &str,
    user_id: &str,
) -> AppResult<Option<OAuthStateRow>> {
    let mine = || {
        oauth_states::table
            .filter(oauth_states::state_hash.eq(state_hash))
            .filter(oauth_states::tenant_id.eq(tenant_id))
            .filter(oauth_states::user_id.eq(user_id))
    };
    let row = mine()
        .select(OAuthStateRow::as_select())
        .first(conn)
        .optional()?;
    let n = diesel::delete(mine()).execute(conn)?;
    Ok(row.filter(|_| n == 1))
}

/// Records that the connection read message `row.message_id`; false when it had.
pub fn record(conn: &mut DbConnection, row: &MailMessageRow) -> AppResult<bool> {
    let n = agora_shared::on_each_backend!(conn, c => diesel::insert_into(mail_messages::table)
        .values(row)
        .on_conflict((mail_messages::connection_id, mail_messages::message_id))
        .do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

/// What reading the message did.
pub fn set_outcome(
    conn: &mut DbConnection,
    connection_id: &str,
    message_id: &str,
    outcome: &str,
) -> AppResult<()> {
    diesel::update(
        mail_messages::table
            .filter(mail_messages::connection_id.eq(connection_id))
            .filter(mail_messages::message_id.eq(message_id)),
    )
    .set(mail_messages::outcome.eq(outcome))
    .execute(conn)?;
    Ok(())
}

/// Message ids among `ids` the connection read before.
pub fn seen(
    conn: &mut DbConnection,
    connection_id: &str,
    ids: &[String],
) -> AppResult<Vec<String>> {
    Ok(mail_messages::table
        .filter(mail_messages::connection_id.eq(connection_id))
        .filter(mail_messages::message_id.eq_any(ids))
        .select(mail_messages::message_id)
        .load(conn)?)
}

/// Counts reimbursement `reimbursement_id` of the tenant for `claim_id`; false when it was
/// counted before (for any claim).
pub fn count_reimbursement(
    conn: &mut DbConnection,
    tenant_id: &str,
    reimbursement_id: &str,
    claim_id: &str,
    message_id: &str,
    at: NaiveDateTime,
) -> AppResult<bool> {
    let n = agora_shared::on_each_backend!(conn, c => diesel::insert_into(reimbursements::table)
        .values((
            reimbursements::tenant_id.eq(tenant_id),
            reimbursements::reimbursement_id.eq(reimbursement_id),
            reimbursements::claim_id.eq(claim_id),
            reimbursements::message_id.eq(message_id),
            reimbursements::recorded_at.eq(at),
        ))
        .on_conflict((reimbursements::tenant_id, reimbursements::reimbursement_id))
        .do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

/// The tenant's Amazon claims still waiting (pending or processing) whose case is `case_id`
/// (and `true`), or else its waiting reimbursement claims on one of `skus` (and `false`).
pub fn waiting_claims(
    conn: &mut DbConnection,
    tenant_id: &str,
    skus: &[String],
    case_id: Option<&str>,
) -> AppResult<(Vec<ClaimRow>, bool)> {
    let waiting = || {
        claims::table
            .filter(claims::tenant_id.eq(tenant_id))
            .filter(claims::provider.eq(ClaimProvider::Amazon))
            .filter(claims::status.eq_any([ClaimStatus::Pending, ClaimStatus::Processing]))
    };
    if let Some(case_id) = case_id {
        let by_case: Vec<ClaimRow> = waiting()
            .filter(claims::external_reference.eq(case_id))
            .select(ClaimRow::as_select())
            .load(conn)?;
        if !by_case.is_empty() {
            return Ok((by_case, true));
        }
    }
    if skus.is_empty() {
        return Ok((Vec::new(), false));
    }
    let by_sku = waiting()
        .filter(claims::claim_type.eq(ClaimType::Reimbursement))
        .filter(claims::sku.eq_any(skus))
        .order(claims::id.asc())
        .select(ClaimRow::as_select())
        .limit(50)
        .load(conn)?;
    Ok((by_sku, false))
}
