//! Backfill and rebuild: reads every tenant's tickets from the tickets service's gRPC API,
//! merges them into the facts as if they were events (a newer fact already ingested is kept),
//! then recomputes each tenant's rollups from its facts. Run once on first start and by
//! `agora analytics rebuild`.

use std::{sync::Arc, time::Duration};

use diesel::prelude::*;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use agora_proto::tickets::v1::{self as pb, ticket_service_client::TicketServiceClient};
use agora_shared::db::{Db, now};

use crate::{AnalyticsState, ingest::fact_of, schema::backfills, store};

/// How a backfill authenticates to tickets: a configured platform-admin API key or token, or
/// tokens issued in-process (embedded mode).
pub use agora_shared::grpc::ServiceCredential as Credential;

/// What a backfill did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub tenants: usize,
    pub tickets: usize,
}

/// The largest page tickets serves.
const PAGE: i32 = 200;

/// Backfills every tenant that has tickets.
pub async fn run(db: &Db, channel: Channel, credential: &Credential) -> anyhow::Result<Report> {
    let mut client = TicketServiceClient::new(channel);
    let tenants = client
        .list_ticket_tenants(credential.authorize(pb::ListTicketTenantsRequest {})?)
        .await?
        .into_inner()
        .tenant_ids;
    let mut report = Report::default();
    for tenant_id in tenants {
        report.tickets += tenant(db, &mut client, credential, &tenant_id).await?;
        report.tenants += 1;
    }
    let tickets = report.tickets as i64;
    db.write(move |conn| {
        diesel::delete(backfills::table.find("tickets")).execute(conn)?;
        diesel::insert_into(backfills::table)
            .values((
                backfills::name.eq("tickets"),
                backfills::completed_at.eq(now()),
                backfills::tickets.eq(tickets),
            ))
            .execute(conn)?;
        Ok(())
    })
    .await?;
    Ok(report)
}

async fn tenant(
    db: &Db,
    client: &mut TicketServiceClient<Channel>,
    credential: &Credential,
    tenant_id: &str,
) -> anyhow::Result<usize> {
    let mut cursor = String::new();
    let mut seen = 0;
    loop {
        let page = client
            .list_tickets(credential.authorize(pb::ListTicketsRequest {
                tenant_id: tenant_id.to_owned(),
                sort: "number".into(),
                limit: PAGE,
                cursor: cursor.clone(),
                ..Default::default()
            })?)
            .await?
            .into_inner();
        let facts = page
            .tickets
            .iter()
            .map(fact_of)
            .collect::<Result<Vec<_>, _>>()?;
        seen += facts.len();
        db.write(move |conn| {
            let at = now();
            for fact in facts {
                store::facts::apply(conn, fact, at)?;
            }
            Ok(())
        })
        .await?;
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    let tenant_id = tenant_id.to_owned();
    db.write(move |conn| store::rollups::recompute(conn, &tenant_id, now()))
        .await?;
    Ok(seen)
}

/// Whether a backfill has completed on this store.
pub async fn done(db: &Db) -> anyhow::Result<bool> {
    Ok(db
        .read(|conn| {
            Ok(backfills::table
                .find("tickets")
                .count()
                .get_result::<i64>(conn)?
                > 0)
        })
        .await?)
}

/// Backfills once per store, retrying while tickets cannot be reached.
pub async fn on_first_start(
    state: Arc<AnalyticsState>,
    credential: Credential,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if done(&state.db).await? {
        return Ok(());
    }
    let mut wait = Duration::from_secs(1);
    loop {
        match run(&state.db, state.tickets_channel.clone(), &credential).await {
            Ok(report) => {
                tracing::info!(
                    tenants = report.tenants,
                    tickets = report.tickets,
                    "analytics backfilled from tickets"
                );
                return Ok(());
            }
            Err(err) => tracing::warn!(error = %err, "backfill from tickets failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return Ok(()),
        }
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}
