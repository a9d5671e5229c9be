//! Amazon sync runs: a run pages `getInventorySummaries` at the usage plan's rate (2 requests
//! a second, burst 2), records each page's counts as the run's snapshot and moves the items'
//! FBA quantities, all in the transaction that advances the run (so a run taken over after a
//! crash resumes at the page it had reached), then scans for discrepancies. One run at a time
//! per connection, across replicas and restarts: a unique index allows one live run, and a
//! replica works on it only while it holds the run's lease.

use std::{collections::HashMap, num::NonZeroU32, sync::Arc, time::Duration};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use governor::{Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use agora_shared::{AppError, AppResult, db::DbConnection, db::now};

use crate::{
    InventoryState,
    amazon::{AccessToken, AmazonError, Page},
    domain::{ConnectionStatus, Provider, SyncStatus, SyncTrigger},
    events, scan,
    schema::items,
    stock,
    store::{
        self,
        connections::{ConnectionRow, SyncRunRow},
        items::ItemRow,
        snapshots::{CountRow, SnapshotRow},
    },
};

/// Who syncs act as in audits and events.
pub const SYNCER: &str = "system:sync";

/// The source a connection's counts are recorded as: `amazon:<marketplace>`, so that two
/// marketplaces of one seller keep counts of their own (and users cannot post as Amazon).
pub fn source_of(connection: &ConnectionRow) -> String {
    format!("{}:{}", connection.provider.as_str(), connection.account)
}

/// Starts a run of `connection` (409 `inventory.sync_running` while one runs) and wakes the
/// worker.
pub async fn start(
    state: &Arc<InventoryState>,
    tenant_id: &str,
    connection_id: &str,
    trigger: SyncTrigger,
    actor: &str,
) -> AppResult<SyncRunRow> {
    let (tenant, id, actor) = (
        tenant_id.to_owned(),
        connection_id.to_owned(),
        actor.to_owned(),
    );
    let run = state
        .db
        .write(move |conn| {
            let connection = crate::http::load_connection(conn, &tenant, &id)?;
            if connection.provider != Provider::Amazon {
                return Err(AppError::Conflict(format!(
                    "a {} connection has no inventory to sync",
                    connection.provider
                ))
                .with_code("inventory.nothing_to_sync"));
            }
            if connection.status != ConnectionStatus::Active {
                return Err(AppError::Conflict(
                    "the connection needs to be authorized again before it can sync".into(),
                )
                .with_code("inventory.reauth_required"));
            }
            if store::connections::runs(conn, &connection.id, None, 0)?
                .first()
                .is_some_and(|r| r.live.is_some())
            {
                return Err(running());
            }
            new_run(conn, &connection, trigger, &actor)
        })
        .await?;
    state.wake.notify_one();
    Ok(run)
}

fn running() -> AppError {
    AppError::Conflict("a sync of this connection is running".into())
        .with_code("inventory.sync_running")
}

/// Inserts a live run and its (empty) snapshot; the unique index refuses a second live run.
fn new_run(
    conn: &mut DbConnection,
    connection: &ConnectionRow,
    trigger: SyncTrigger,
    actor: &str,
) -> AppResult<SyncRunRow> {
    let at = now();
    let snapshot = SnapshotRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: connection.tenant_id.clone(),
        source: source_of(connection),
        item_count: 0,
        created_by: actor.to_owned(),
        created_at: at,
    };
    store::snapshots::insert(conn, &snapshot)?;
    let run = SyncRunRow {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: connection.tenant_id.clone(),
        connection_id: connection.id.clone(),
        status: SyncStatus::Running,
        trigger,
        live: Some(1),
        lease_owner: None,
        lease_until: None,
        snapshot_id: snapshot.id,
        next_token: None,
        pages: 0,
        items_seen: 0,
        errors: 0,
        failure: None,
        started_at: at,
        updated_at: at,
        finished_at: None,
    };
    store::connections::insert_run(conn, &run).map_err(|e| match e {
        AppError::Conflict(_) => running(),
        other => other,
    })?;
    Ok(run)
}

/// Takes unheld runs (new ones, and those whose holder went silent) and works on them; starts
/// scheduled runs when they are due. Until `shutdown`.
pub async fn worker(state: Arc<InventoryState>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let every = Duration::from_secs(state.config.sync_check_secs);
    let mut last_schedule = tokio::time::Instant::now() - every;
    loop {
        if last_schedule.elapsed() >= every {
            last_schedule = tokio::time::Instant::now();
            if let Err(err) = schedule(&state).await {
                tracing::warn!(error = %err, "sync scheduling failed");
            }
        }
        match take_one(&state).await {
            Ok(Some((run, owner))) => {
                let state = state.clone();
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    let id = run.id.clone();
                    if let Err(err) = work(&state, run, &owner, &stop).await {
                        tracing::warn!(run = %id, error = %err, "sync run stopped");
                    }
                });
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "looking for sync runs failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = state.wake.notified() => {}
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Starts a run of every Amazon connection whose last run started `sync_interval_secs` ago.
async fn schedule(state: &Arc<InventoryState>) -> AppResult<()> {
    let interval = chrono::Duration::seconds(state.config.sync_interval_secs as i64);
    let due = state
        .db
        .read(move |conn| store::connections::due(conn, Provider::Amazon, now() - interval))
        .await?;
    for connection in due {
        let started = state
            .db
            .write(move |conn| new_run(conn, &connection, SyncTrigger::Schedule, SYNCER))
            .await;
        match started {
            Ok(run) => {
                tracing::info!(run = %run.id, connection = %run.connection_id, "scheduled sync")
            }
            // Another replica started it first.
            Err(e) if e.code() == "inventory.sync_running" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A run taken for one task of this process: the owner names the process and the take, so a
/// run this process took over again (its first task went silent) is never held twice.
async fn take_one(state: &Arc<InventoryState>) -> AppResult<Option<(SyncRunRow, String)>> {
    let at = now();
    let candidates = state
        .db
        .read(move |conn| store::connections::unheld(conn, at, 10))
        .await?;
    let until = at + lease(state);
    for id in candidates {
        let owner = format!("{}/{}", state.worker_id, uuid::Uuid::now_v7());
        let holder = owner.clone();
        let taken = state
            .db
            .write(move |conn| {
                if store::connections::take(conn, &id, &owner, at, until)? {
                    store::connections::held(conn, &id, &owner)
                } else {
                    Ok(None)
                }
            })
            .await?;
        if let Some(run) = taken {
            return Ok(Some((run, holder)));
        }
    }
    Ok(None)
}

fn lease(state: &InventoryState) -> chrono::Duration {
    chrono::Duration::seconds(state.config.sync_lease_secs as i64)
}

/// Works on a held run until it ends, the lease is lost or the service stops.
async fn work(
    state: &Arc<InventoryState>,
    mut run: SyncRunRow,
    owner: &str,
    shutdown: &CancellationToken,
) -> AppResult<()> {
    // Taken over after its last page was recorded: only the end is left to do.
    if run.pages > 0 && run.next_token.is_none() {
        return finish(state, run, owner).await;
    }
    let amazon = &state.amazon;
    let config = amazon.config().clone();
    let quota =
        Quota::per_second(NonZeroU32::new(config.requests_per_second).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN));
    let limiter = RateLimiter::direct(quota);
    // The lease covers a token request and a page request at their timeouts.
    let calls = Duration::from_secs(config.timeout_secs.saturating_mul(2));
    let connection_id = run.connection_id.clone();
    let mut connection = state
        .db
        .read(move |conn| store::connections::get_any(conn, &connection_id))
        .await?
        .ok_or_else(|| AppError::not_found("connection"))?;
    let mut token: Option<AccessToken> = None;
    // Amazon refused the stored access token: the next one comes from LWA.
    let mut refused = false;
    let mut empty_pages = 0u32;
    loop {
        if run.pages >= i64::from(config.max_pages) {
            let endless = AmazonError::Failed(format!(
                "Amazon was still paging after {} pages (amazon.max_pages)",
                config.max_pages
            ));
            return fail(state, run, owner, &connection, endless).await;
        }
        let mut attempt = 0u32;
        let page = loop {
            if shutdown.is_cancelled() {
                // Another replica (or this one, restarted) resumes once the lease lapses.
                return Ok(());
            }
            attempt += 1;
            if !hold(state, &run, owner, calls).await? {
                return Ok(());
            }
            let access = match &token {
                Some(t) => t.token.clone(),
                None => match access_token(state, &mut connection, refused).await {
                    Ok(t) => {
                        let value = t.token.clone();
                        token = Some(t);
                        value
                    }
                    Err(AmazonError::Retry { reason, after }) if attempt < config.max_attempts => {
                        run.errors += 1;
                        tracing::info!(run = %run.id, %reason, "retrying the token request");
                        if !backoff(state, &run, owner, attempt, after, shutdown).await? {
                            return Ok(());
                        }
                        continue;
                    }
                    Err(e) => return fail(state, run, owner, &connection, e).await,
                },
            };
            limiter.until_ready().await;
            let marketplace = connection.account.clone();
            match amazon
                .inventory_page(&access, &marketplace, run.next_token.as_deref())
                .await
            {
                Ok(page) => break page,
                Err(AmazonError::Unauthorized) if attempt < config.max_attempts => {
                    token = None;
                    refused = true;
                    run.errors += 1;
                }
                Err(AmazonError::Retry { reason, after }) if attempt < config.max_attempts => {
                    run.errors += 1;
                    tracing::info!(run = %run.id, %reason, attempt, "retrying a page");
                    if !backoff(state, &run, owner, attempt, after, shutdown).await? {
                        return Ok(());
                    }
                }
                Err(e) => return fail(state, run, owner, &connection, e).await,
            }
        };
        if page.next_token.is_some() && page.next_token == run.next_token {
            let repeated =
                AmazonError::Failed("Amazon answered the nextToken it was asked for".into());
            return fail(state, run, owner, &connection, repeated).await;
        }
        empty_pages = if page.summaries.is_empty() {
            empty_pages + 1
        } else {
            0
        };
        if page.next_token.is_some() && empty_pages >= EMPTY_PAGES {
            let empty = AmazonError::Failed(format!(
                "Amazon answered {EMPTY_PAGES} empty pages in a row and still a nextToken"
            ));
            return fail(state, run, owner, &connection, empty).await;
        }
        let more = page.next_token.is_some();
        let before = run.clone();
        run = match apply_page(state, run, owner, source_of(&connection), page).await {
            Ok(Some(run)) => run,
            // The lease was lost: another replica has the run.
            Ok(None) => return Ok(()),
            // A page that cannot be recorded would fail again on every take-over: the run
            // ends here with the reason, and the next one starts afresh.
            Err(e) => {
                let unrecorded = AmazonError::Failed(format!("a page could not be recorded: {e}"));
                return fail(state, before, owner, &connection, unrecorded).await;
            }
        };
        if !more {
            return finish(state, run, owner).await;
        }
    }
}

/// Empty pages in a row that still name a next one, before a run gives up.
const EMPTY_PAGES: u32 = 10;

/// Renews `owner`'s lease of the run for the lease time plus `extra`; false when lost.
async fn hold(
    state: &Arc<InventoryState>,
    run: &SyncRunRow,
    owner: &str,
    extra: Duration,
) -> AppResult<bool> {
    let (id, holder) = (run.id.clone(), owner.to_owned());
    let until = now() + lease(state) + chrono::Duration::from_std(extra).unwrap_or_default();
    state
        .db
        .write(move |conn| store::connections::renew(conn, &id, &holder, until))
        .await
}

/// Waits before attempt `attempt + 1`: Retry-After when Amazon gave one, else the backoff
/// doubling from `backoff_ms`, capped at 60 s. The lease is renewed to cover the wait first;
/// false when it was lost.
async fn backoff(
    state: &Arc<InventoryState>,
    run: &SyncRunRow,
    owner: &str,
    attempt: u32,
    after: Option<Duration>,
    shutdown: &CancellationToken,
) -> AppResult<bool> {
    let config = state.amazon.config();
    let doubling = config
        .backoff_ms
        .saturating_mul(1 << attempt.clamp(1, 16).saturating_sub(1));
    let wait = after.unwrap_or(Duration::from_millis(doubling.min(60_000)));
    if !hold(state, run, owner, wait).await? {
        return Ok(false);
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = shutdown.cancelled() => {}
    }
    Ok(true)
}

/// The connection's access token: the stored one while it has a minute left (and Amazon has
/// not `refused` it), else a new one from LWA, stored sealed only if the connection's credentials are still the ones it was
/// made with. The connection is read afresh first (new credentials may have come meanwhile).
async fn access_token(
    state: &Arc<InventoryState>,
    connection: &mut ConnectionRow,
    refused: bool,
) -> Result<AccessToken, AmazonError> {
    let sealer = state.sealer.as_ref().ok_or_else(|| {
        AmazonError::Failed("inventory_sync.key_encryption_key is not set".into())
    })?;
    let id = connection.id.clone();
    match state
        .db
        .read(move |conn| store::connections::get_any(conn, &id))
        .await
    {
        Ok(Some(fresh)) => *connection = fresh,
        Ok(None) => return Err(AmazonError::Failed("the connection was removed".into())),
        Err(e) => {
            return Err(AmazonError::Retry {
                reason: format!("the store: {e}"),
                after: None,
            });
        }
    }
    let at = now();
    if let (Some(sealed), Some(expires)) = (&connection.access_token, connection.access_expires_at)
        && !refused
        && expires - at > chrono::Duration::seconds(60)
        && let Ok(token) = sealer.open(sealed, &connection.id)
    {
        return Ok(AccessToken {
            token: String::from_utf8_lossy(&token).into_owned(),
            expires_in: (expires - at).to_std().unwrap_or_default(),
        });
    }
    let refresh = sealer
        .open(&connection.credentials, &connection.id)
        .map_err(|e| AmazonError::Failed(format!("the stored credentials do not open: {e}")))?;
    let refresh = String::from_utf8_lossy(&refresh).into_owned();
    let token = state.amazon.refresh(&refresh).await?;
    let sealed = sealer.seal(token.token.as_bytes(), &connection.id);
    let expires = at + chrono::Duration::seconds(token.expires_in.as_secs() as i64);
    connection.access_token = Some(sealed.clone());
    connection.access_expires_at = Some(expires);
    let (id, credentials) = (connection.id.clone(), connection.credentials.clone());
    let stored = state
        .db
        .write(move |conn| {
            store::connections::keep_access(conn, &id, &credentials, &sealed, expires, now())
        })
        .await;
    if let Err(e) = stored {
        tracing::warn!(error = %e, "could not keep the new access token");
    }
    Ok(token)
}

/// Records a page: counts of the run's snapshot (items Amazon names first are created), the
/// items' FBA quantities, the run's progress and lease. `None` when the lease was lost.
async fn apply_page(
    state: &Arc<InventoryState>,
    run: SyncRunRow,
    owner: &str,
    source: String,
    page: Page,
) -> AppResult<Option<SyncRunRow>> {
    let owner = owner.to_owned();
    let currency = state.config.default_currency.clone();
    let lease = lease(state);
    let errors = run.errors;
    state
        .db
        .write(move |conn| {
            let Some(mut run) = store::connections::held(conn, &run.id, &owner)? else {
                return Ok(None);
            };
            let at = now();
            // The retries counted since the last page are this holder's to add.
            run.errors = errors;
            let seen = record(conn, &run, &page, &source, &currency, at)?;
            run.pages += 1;
            run.items_seen += seen;
            run.next_token = page.next_token.clone();
            run.lease_until = Some(at + lease);
            run.updated_at = at;
            if !store::connections::save_held(conn, &run, &owner)? {
                return Err(AppError::Conflict("the sync run was taken over".into()));
            }
            Ok(Some(run))
        })
        .await
}

fn record(
    conn: &mut DbConnection,
    run: &SyncRunRow,
    page: &Page,
    run_source: &str,
    currency: &str,
    at: NaiveDateTime,
) -> AppResult<i64> {
    scan::lock_tenant(conn, &run.tenant_id)?;
    let skus: Vec<String> = page
        .summaries
        .iter()
        .filter_map(|s| s.seller_sku.clone())
        .filter(|s| crate::domain::valid_sku(s))
        .collect();
    let mut known: HashMap<String, ItemRow> = items::table
        .filter(items::tenant_id.eq(&run.tenant_id))
        .filter(items::sku.eq_any(&skus))
        .select(ItemRow::as_select())
        .load::<ItemRow>(conn)?
        .into_iter()
        .map(|i| (i.sku.clone(), i))
        .collect();
    let mut seen = 0;
    let mut recorded = std::collections::HashSet::new();
    for summary in &page.summaries {
        let Some(sku) = summary
            .seller_sku
            .as_deref()
            .filter(|s| crate::domain::valid_sku(s))
        else {
            continue;
        };
        // A SKU Amazon lists twice in a page is counted once.
        if !recorded.insert(sku) {
            continue;
        }
        let details = summary.inventory_details.clone().unwrap_or_default();
        // Without a total there is nothing to compare: no count (not a count of 0).
        let Some(total) = summary.total_quantity else {
            continue;
        };
        let total = total.clamp(0, crate::model::MAX_QUANTITY);
        let clamp = |v: Option<i64>| v.unwrap_or(0).clamp(0, crate::model::MAX_QUANTITY);
        let item = match known.remove(sku) {
            Some(mut item) => {
                let before = item.clone();
                item.fulfillable = clamp(details.fulfillable_quantity);
                item.inbound = clamp(Some(summary.inbound()));
                item.reserved = clamp(details.reserved_quantity.and_then(|r| r.total));
                item.unfulfillable = clamp(details.unfulfillable_quantity.and_then(|u| u.total));
                if item.asin.is_none() {
                    item.asin = summary.asin.clone().filter(|a| a.len() <= 20);
                }
                if item.fnsku.is_none() {
                    item.fnsku = summary.fn_sku.clone().filter(|f| f.len() <= 20);
                }
                if item != before {
                    item.version += 1;
                    item.updated_at = at;
                    // An edit at the same moment wins; the next sync brings these again.
                    store::items::update(conn, &item)?;
                }
                item
            }
            None => {
                let name = summary
                    .product_name
                    .as_deref()
                    .map(|n| {
                        n.chars()
                            .filter(|c| !c.is_control())
                            .take(200)
                            .collect::<String>()
                    })
                    .filter(|n| !n.trim().is_empty());
                let mut item = stock::new_from_source(
                    &run.tenant_id,
                    sku,
                    name.as_deref(),
                    total,
                    currency,
                    at,
                );
                item.fulfillable = clamp(details.fulfillable_quantity);
                item.inbound = clamp(Some(summary.inbound()));
                item.reserved = clamp(details.reserved_quantity.and_then(|r| r.total));
                item.unfulfillable = clamp(details.unfulfillable_quantity.and_then(|u| u.total));
                item.asin = summary.asin.clone().filter(|a| a.len() <= 20);
                item.fnsku = summary.fn_sku.clone().filter(|f| f.len() <= 20);
                stock::get_or_create(conn, item, &format!("source:{}", run_source), SYNCER)?.0
            }
        };
        store::snapshots::record_count(
            conn,
            &CountRow {
                tenant_id: run.tenant_id.clone(),
                item_id: item.id.clone(),
                source: run_source.to_owned(),
                quantity: total,
                snapshot_id: run.snapshot_id.clone(),
                observed_at: at,
            },
        )?;
        seen += 1;
    }
    Ok(seen)
}

/// The last page is in: the tenant's counts are scanned, the run completes and
/// `sync.completed` says what the scan found. When the scan cannot be done (a store timeout
/// on a very large tenant, say) the run completes all the same, without a scan's report: the
/// periodic scan catches up, and the pages are never fetched again.
async fn finish(state: &Arc<InventoryState>, run: SyncRunRow, owner: &str) -> AppResult<()> {
    let scanned = complete(state, run.clone(), owner, true).await;
    match scanned {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::warn!(run = %run.id, error = %e, "the scan after a sync failed; completing without it");
            complete(state, run, owner, false).await
        }
    }
}

async fn complete(
    state: &Arc<InventoryState>,
    run: SyncRunRow,
    owner: &str,
    with_scan: bool,
) -> AppResult<()> {
    let owner = owner.to_owned();
    let errors = run.errors;
    state
        .db
        .write(move |conn| {
            let Some(mut run) = store::connections::held(conn, &run.id, &owner)? else {
                return Ok(());
            };
            let at = now();
            run.errors = errors;
            let report = if with_scan {
                scan::scan(conn, &run.tenant_id, None, at)?
            } else {
                crate::model::ScanReport::default()
            };
            if !end(conn, &mut run, &owner, SyncStatus::Completed, at)? {
                return Ok(());
            }
            store::connections::mark_synced(conn, &run.connection_id, at)?;
            events::sync_completed(conn, &run, &report)
        })
        .await
}

/// Ends `owner`'s run with `status` (no longer live, nobody's lease) and gives its snapshot the
/// count of what it saw; false when `owner` no longer held it.
fn end(
    conn: &mut DbConnection,
    run: &mut SyncRunRow,
    owner: &str,
    status: SyncStatus,
    at: NaiveDateTime,
) -> AppResult<bool> {
    run.status = status;
    run.live = None;
    run.lease_owner = None;
    run.lease_until = None;
    run.finished_at = Some(at);
    run.updated_at = at;
    if !store::connections::save_held(conn, run, owner)? {
        return Ok(false);
    }
    store::snapshots::set_count(conn, &run.snapshot_id, run.items_seen)?;
    Ok(true)
}

/// Ends the run as failed with the reason; an `invalid_grant` also marks the connection
/// `reauth_required` (no retry until the seller authorizes again).
async fn fail(
    state: &Arc<InventoryState>,
    run: SyncRunRow,
    owner: &str,
    connection: &ConnectionRow,
    error: AmazonError,
) -> AppResult<()> {
    let owner = owner.to_owned();
    let reauth = matches!(error, AmazonError::InvalidGrant(_));
    let reason = error.to_string();
    let (connection_id, credentials) = (connection.id.clone(), connection.credentials.clone());
    tracing::warn!(run = %run.id, %reason, "sync run failed");
    let errors = run.errors;
    state
        .db
        .write(move |conn| {
            let Some(mut run) = store::connections::held(conn, &run.id, &owner)? else {
                return Ok(());
            };
            let at = now();
            run.errors = errors;
            run.failure = Some(reason.clone());
            if !end(conn, &mut run, &owner, SyncStatus::Failed, at)? {
                return Ok(());
            }
            // Only the credentials that failed are marked: new ones given meanwhile stand.
            store::connections::mark_failed(
                conn,
                &connection_id,
                &credentials,
                &reason,
                reauth,
                at,
            )?;
            events::sync_failed(conn, &run)
        })
        .await
}
