//! The breach watch: announces `ticket.sla_breached` once per ticket whose due time passed while
//! unfinished. It works from the store (a ticket is announced when its `breach_notified_at` is
//! claimed), so breaches that happened while the service was down are announced after a
//! restart, and replicas never announce the same ticket twice.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use agora_shared::{AppError, AppResult, db::now};

use crate::{TicketsState, events, store::tickets as store};

/// Tickets announced per store round trip at most.
const BATCH: i64 = 500;

/// Checks every `every` until `shutdown`.
pub async fn run(
    state: Arc<TicketsState>,
    every: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        match check_once(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tickets = n, "sla breaches announced"),
            Err(err) => tracing::warn!(error = %err, "sla breach check failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}

/// Announces every breach not yet announced; returns how many.
pub async fn check_once(state: &TicketsState) -> AppResult<usize> {
    let mut announced = 0;
    loop {
        let at = now();
        let ids = state
            .db
            .read(move |conn| store::unannounced_breaches(conn, at, BATCH))
            .await?;
        let batch = ids.len();
        for id in ids {
            let claimed = state
                .db
                .write(move |conn| {
                    if !store::claim_breach(conn, &id, at)? {
                        return Ok(false);
                    }
                    let row =
                        store::get_any(conn, &id)?.ok_or_else(|| AppError::not_found("ticket"))?;
                    events::sla_breached(conn, &row, at)?;
                    Ok(true)
                })
                .await?;
            announced += usize::from(claimed);
        }
        if (batch as i64) < BATCH {
            return Ok(announced);
        }
    }
}
