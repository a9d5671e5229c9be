//! The service's OpenAPI document, served at `/openapi.json` (the gateway merges it).

use utoipa::OpenApi;

use agora_shared::http::openapi::BearerAuth;

use crate::{domain, http, model};

#[derive(OpenApi)]
#[openapi(
    info(title = "Agora inventory-sync", description = "Items and counts, source snapshots, discrepancies scored by the commerce rules, reconciliation and claims."),
    paths(
        http::items::list, http::items::create, http::items::get, http::items::patch,
        http::items::delete, http::items::changes, http::items::discrepancies, http::items::import_csv,
        http::snapshots::record, http::snapshots::get, http::snapshots::scan_now,
        http::snapshots::rules, http::snapshots::set_rules,
        http::discrepancies::list, http::discrepancies::get, http::discrepancies::update,
        http::reconcile::reconcile,
        http::claims::list, http::claims::create, http::claims::get, http::claims::update,
        http::claims::submit, http::webhooks::stripe_event, http::connections::events,
        http::gmail::authorize, http::gmail::callback, http::gmail::scan,
        http::connections::list, http::connections::connect, http::connections::get,
        http::connections::reauthorize, http::connections::disconnect,
        http::connections::start_sync, http::connections::runs, http::connections::run,
    ),
    components(schemas(
        model::Item, model::ItemFields, model::ItemPage, model::QuantityChange,
        model::QuantityChangePage, model::ImportReport, model::NewSnapshot, model::SourceCount,
        model::Snapshot, model::SnapshotReport, model::ScanReport, model::Discrepancy,
        model::DiscrepancyPage, model::DiscrepancyUpdate, model::ReconcileLine,
        model::ReconcileRequest, model::ReconcileResult, model::ReconcileReport, model::Rules,
        model::Evidence, model::Claim, model::ClaimPage, model::NewClaim, model::ClaimUpdate,
        domain::Severity, domain::Action, domain::DiscrepancyStatus, domain::ClaimType,
        domain::ClaimProvider, domain::ClaimStatus, domain::ReconcileOutcome,
        model::Connection, model::ConnectionList, model::NewConnection, model::StripeClaim, model::StripeEvent, model::StripeEventList, model::Credentials,
        http::gmail::Consent, http::gmail::Callback, crate::mail::MailScanReport,
        model::SyncRun, model::SyncRunPage, domain::Provider, domain::ConnectionStatus,
        domain::SyncStatus, domain::SyncTrigger,
    )),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The OpenAPI 3.1 document as JSON.
pub fn document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}
