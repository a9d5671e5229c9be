//! Gmail connections at work: access tokens kept fresh (an `invalid_grant` stops the
//! connection until the seller consents again), and scans of the mailbox for Amazon's
//! reimbursement notices and case mails. Each mail is read once per connection. Anyone can
//! send a seller mail, so only mails from a trusted sender that Gmail found authentic (DMARC
//! pass for the sender's domain) count. One that names a single waiting Amazon claim (by its
//! case id, or by SKU for a reimbursement claim) is attached to it as evidence; a reimbursement
//! notice approves a claim only when it names the claim's case, the claim was filed
//! (`processing`), and its reimbursement id was never counted before.

use std::{sync::Arc, time::Duration};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use agora_shared::{
    AppError, AppResult,
    db::{DbConnection, now},
};

use crate::{
    InventoryState,
    domain::{ClaimStatus, ConnectionStatus, Provider},
    events,
    google::{self, GoogleError, Mail},
    model::Evidence,
    store::{self, connections::ConnectionRow, gmail::MailMessageRow},
};

/// Who moves claims on a mail's word, in their events.
pub const GMAIL_ACTOR: &str = "gmail";

/// What one scan of a mailbox did.
#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq)]
pub struct MailScanReport {
    /// Messages the search found.
    pub found: i64,
    /// Of them, read for the first time.
    pub read: i64,
    /// Claims a mail was attached to.
    pub attached: i64,
    /// Claims a reimbursement notice approved.
    pub approved: i64,
}

/// The connection's error as an answer, and the connection stopped when Google refused
/// its grant.
pub async fn refused(
    state: &InventoryState,
    connection: &ConnectionRow,
    e: GoogleError,
) -> AppError {
    match e {
        GoogleError::InvalidGrant(why) => {
            // Only the grant that was refused: a consent given meanwhile stands.
            let (id, used) = (connection.id.clone(), connection.credentials.clone());
            let reason = format!("Google refused the authorization: {why}");
            let stopped = state
                .db
                .write(move |conn| {
                    store::connections::mark_failed(conn, &id, &used, &reason, true, now())
                })
                .await;
            if let Err(e) = stopped {
                return e;
            }
            AppError::Conflict(
                "Google refused the mailbox's authorization: consent again (POST /connections/gmail/authorize)"
                    .into(),
            )
            .with_code("inventory.reauth_required")
        }
        GoogleError::NotConfigured => {
            AppError::Unavailable(e.to_string()).with_code("inventory.google_unconfigured")
        }
        other => AppError::Unavailable(other.to_string()),
    }
}

/// A live access token of the connection: the kept one while it has a minute left (unless
/// `fresh`: Gmail refused it), else a new one (kept, sealed).
pub async fn access_token(
    state: &InventoryState,
    connection: &ConnectionRow,
    fresh: bool,
) -> AppResult<String> {
    let sealer = state.sealer()?;
    let open = |sealed: &str| {
        sealer
            .open_text(sealed, &connection.id)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("a sealed token does not open: {e}")))
    };
    if let (false, Some(token), Some(expires)) = (
        fresh,
        &connection.access_token,
        connection.access_expires_at,
    ) && expires > now() + chrono::Duration::seconds(60)
    {
        return open(token);
    }
    let refresh_token = open(&connection.credentials)?;
    let tokens = match state.google.refresh(&refresh_token).await {
        Ok(t) => t,
        Err(e) => return Err(refused(state, connection, e).await),
    };
    let sealed = sealer.seal(tokens.access_token.as_bytes(), &connection.id);
    let (tenant, id) = (connection.tenant_id.clone(), connection.id.clone());
    let expires_in = tokens.expires_in;
    state
        .db
        .write(move |conn| {
            if let Some(mut row) = store::connections::get(conn, &tenant, &id)? {
                row.access_token = Some(sealed);
                row.access_expires_at =
                    Some(now() + chrono::Duration::seconds(expires_in.as_secs() as i64));
                store::connections::update(conn, &row)?;
            }
            Ok(())
        })
        .await?;
    Ok(tokens.access_token)
}

/// Scans the connection's mailbox once; the connection records when it last did, or why not.
pub async fn scan(
    state: &Arc<InventoryState>,
    connection: &ConnectionRow,
) -> AppResult<MailScanReport> {
    let result = scan_once(state, connection).await;
    let (tenant, id) = (connection.tenant_id.clone(), connection.id.clone());
    let error = result.as_ref().err().map(|e| e.to_string());
    let noted = state
        .db
        .write(move |conn| {
            if let Some(mut row) = store::connections::get(conn, &tenant, &id)?
                && row.status == ConnectionStatus::Active
            {
                match error {
                    None => {
                        row.last_synced_at = Some(now());
                        row.last_error = None;
                    }
                    Some(e) => row.last_error = Some(e.chars().take(500).collect()),
                }
                store::connections::update(conn, &row)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = noted {
        tracing::warn!(error = %e, "cannot record a mailbox scan");
    }
    result
}

/// The search: the configured one, within the trusted senders' mail.
fn query(config: &crate::config::GoogleConfig) -> String {
    format!(
        "from:({}) {}",
        config.trusted_senders.join(" OR "),
        config.mail_query
    )
}

async fn scan_once(
    state: &Arc<InventoryState>,
    connection: &ConnectionRow,
) -> AppResult<MailScanReport> {
    if connection.provider != Provider::Gmail {
        return Err(AppError::Conflict(format!(
            "a {} connection has no mailbox to scan",
            connection.provider
        ))
        .with_code("inventory.nothing_to_scan"));
    }
    if connection.status != ConnectionStatus::Active {
        return Err(AppError::Conflict(
            "the mailbox's authorization was refused: consent again".into(),
        )
        .with_code("inventory.reauth_required"));
    }
    let mut access = access_token(state, connection, false).await?;
    let config = state.google.config();
    let q = query(config);
    let mut searched = state.google.search(&access, &q, config.max_messages).await;
    if searched == Err(GoogleError::Unauthorized) {
        // Revoked early or expired before its time: once more with a new one.
        access = access_token(state, connection, true).await?;
        searched = state.google.search(&access, &q, config.max_messages).await;
    }
    let ids = match searched {
        Ok(ids) => ids,
        Err(e) => return Err(refused(state, connection, e).await),
    };
    let mut report = MailScanReport {
        found: ids.len() as i64,
        ..Default::default()
    };
    let (connection_id, lookup) = (connection.id.clone(), ids.clone());
    let seen = state
        .db
        .read(move |conn| store::gmail::seen(conn, &connection_id, &lookup))
        .await?;
    for id in ids.into_iter().filter(|id| !seen.contains(id)) {
        let mail = match state.google.message(&access, &id).await {
            Ok(mail) => mail,
            // A message Gmail cannot give us readably is recorded as such and passed over;
            // the others are still read.
            Err(GoogleError::Failed(why)) => Mail {
                id: id.clone(),
                subject: format!("(unreadable: {why})"),
                ..Default::default()
            },
            Err(e) => return Err(refused(state, connection, e).await),
        };
        let connection = connection.clone();
        let trusted = config.trusted_senders.clone();
        let (read, attached, approved) = state
            .db
            .write(move |conn| apply(conn, &connection, &mail, &trusted))
            .await?;
        report.read += i64::from(read);
        report.attached += i64::from(attached);
        report.approved += i64::from(approved);
    }
    Ok(report)
}

/// Applies one mail, once: (read now, attached, approved).
fn apply(
    conn: &mut DbConnection,
    connection: &ConnectionRow,
    mail: &Mail,
    trusted: &[String],
) -> AppResult<(bool, bool, bool)> {
    let mut row = MailMessageRow {
        connection_id: connection.id.clone(),
        message_id: mail.id.clone(),
        tenant_id: connection.tenant_id.clone(),
        subject: mail.subject.chars().take(300).collect(),
        outcome: String::new(),
        read_at: now(),
    };
    if !store::gmail::record(conn, &row)? {
        return Ok((false, false, false));
    }
    let (outcome, attached, approved) = judge(conn, connection, mail, trusted)?;
    row.outcome = outcome.chars().take(500).collect();
    store::gmail::set_outcome(conn, &row.connection_id, &row.message_id, &row.outcome)?;
    Ok((true, attached, approved))
}

/// What one mail does to the tenant's claims: (outcome, attached, approved).
fn judge(
    conn: &mut DbConnection,
    connection: &ConnectionRow,
    mail: &Mail,
    trusted: &[String],
) -> AppResult<(String, bool, bool)> {
    if mail.subject.starts_with("(unreadable") {
        return Ok((mail.subject.clone(), false, false));
    }
    let sender = google::sender_address(&mail.from).unwrap_or_default();
    if !trusted.iter().any(|t| t.eq_ignore_ascii_case(&sender))
        || !google::authenticated(mail, &sender)
    {
        return Ok((
            format!("ignored: not from an authenticated trusted sender ({sender})"),
            false,
            false,
        ));
    }
    let notice = google::notice(&format!("{}\n{}", mail.subject, mail.text));
    let (claims, by_case) = store::gmail::waiting_claims(
        conn,
        &connection.tenant_id,
        &notice.skus,
        notice.case_id.as_deref(),
    )?;
    let mut claim = match claims.as_slice() {
        [] => return Ok(("names no waiting Amazon claim".into(), false, false)),
        [claim] => claim.clone(),
        many => {
            return Ok((
                format!("names {} waiting claims; attach it by hand", many.len()),
                false,
                false,
            ));
        }
    };
    let mut evidence: Vec<Evidence> = serde_json::from_str(&claim.evidence).unwrap_or_default();
    let attach = evidence.len() < 100;
    if attach {
        let mut description = format!("{} ({}, {})", mail.subject, mail.from, mail.date);
        if let Some(r) = &notice.reimbursement_id {
            description.push_str(&format!("; reimbursement {r}"));
        }
        if let Some(a) = &notice.amount {
            description.push_str(&format!("; amount {a}"));
        }
        evidence.push(Evidence {
            kind: "email".into(),
            reference: format!("gmail:{}", mail.id),
            description: description.chars().take(2000).collect(),
        });
        claim.evidence = serde_json::to_string(&evidence).map_err(anyhow::Error::from)?;
    }
    // Approval: a reimbursement notice about this claim's case, once the claim was filed, for
    // a reimbursement never counted before.
    let mut why_not = String::new();
    let approve = match (&notice.reimbursement_id, by_case, claim.status) {
        (Some(reimbursement), true, ClaimStatus::Processing) => {
            let counted = store::gmail::count_reimbursement(
                conn,
                &connection.tenant_id,
                reimbursement,
                &claim.id,
                &mail.id,
                now(),
            )?;
            if !counted {
                why_not = format!("; reimbursement {reimbursement} was counted before");
            }
            counted
        }
        (Some(_), false, _) => {
            why_not = "; a reimbursement approves only the claim of the case it names".into();
            false
        }
        (Some(_), true, _) => {
            why_not = "; the claim is approved once it is filed (processing)".into();
            false
        }
        (None, _, _) => false,
    };
    claim.updated_at = now();
    let from = claim.status;
    if approve {
        claim.status = ClaimStatus::Approved;
    }
    if !store::claims::save(conn, &mut claim)? {
        return Err(changed());
    }
    if approve {
        events::claim_moved(
            conn,
            &claim,
            from.as_str(),
            &format!("{GMAIL_ACTOR}:{}", connection.id),
        )?;
    }
    Ok((
        format!(
            "claim {}: {}{}{}",
            claim.id,
            if attach { "attached" } else { "evidence full" },
            if approve { ", approved" } else { "" },
            why_not
        ),
        attach,
        approve,
    ))
}

fn changed() -> AppError {
    AppError::Conflict("the claim changed meanwhile; scan again".into())
        .with_code("inventory.claim_changed")
}

/// Scans every active Gmail connection every `interval`; one connection's failure is logged
/// and the others go on.
pub async fn run(
    state: Arc<InventoryState>,
    interval: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let connections = state
            .db
            .read(|conn| store::connections::active_of(conn, Provider::Gmail))
            .await;
        let connections = match connections {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list Gmail connections");
                continue;
            }
        };
        for connection in connections {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            match scan(&state, &connection).await {
                Ok(report) => tracing::info!(connection = %connection.id, read = report.read,
                    attached = report.attached, approved = report.approved, "mailbox scanned"),
                Err(e) => {
                    tracing::warn!(connection = %connection.id, error = %e, "mailbox scan failed")
                }
            }
        }
    }
}
