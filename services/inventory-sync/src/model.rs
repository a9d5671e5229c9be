//! What goes over the wire: request bodies (strictly parsed, validated) and responses.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::{Validate, ValidationError};

use agora_shared::db::utc;

use crate::{
    domain::{
        self, Action, ClaimProvider, ClaimStatus, ClaimType, ConnectionStatus, DiscrepancyStatus,
        Provider, ReconcileOutcome, Severity, SyncStatus, SyncTrigger,
    },
    store::{
        claims::ClaimRow,
        connections::{ConnectionRow, SyncRunRow},
        discrepancies::DiscrepancyRow,
        items::{ItemRow, QuantityChangeRow},
        stripe_events::StripeEventRow,
    },
};

/// Largest quantity any count may hold.
pub const MAX_QUANTITY: i64 = 1_000_000_000;
/// Largest unit price, in minor units.
pub const MAX_PRICE: i64 = 1_000_000_000_000;

fn check_sku(sku: &str) -> Result<(), ValidationError> {
    if domain::valid_sku(sku) {
        Ok(())
    } else {
        Err(ValidationError::new("sku").with_message(
            "must be 1 to 64 characters without control characters or surrounding spaces".into(),
        ))
    }
}

/// Free text without NUL (PostgreSQL keeps none in text; the same on every store).
fn no_nul(text: &str) -> Result<(), ValidationError> {
    if text.contains('\0') {
        Err(ValidationError::new("nul")
            .with_message("must not contain NUL (\\u0000) characters".into()))
    } else {
        Ok(())
    }
}

fn check_currency(code: &str) -> Result<(), ValidationError> {
    if domain::valid_currency(code) {
        Ok(())
    } else {
        Err(ValidationError::new("currency")
            .with_message("must be an ISO 4217 code of three capital letters".into()))
    }
}

fn check_source(source: &str) -> Result<(), ValidationError> {
    if source == domain::AMAZON {
        Err(ValidationError::new("source").with_message(
            "Amazon's counts come from syncs of an Amazon connection, not from snapshots".into(),
        ))
    } else if domain::valid_source(source) {
        Ok(())
    } else {
        Err(ValidationError::new("source")
            .with_message("must be 1 to 40 of a-z, 0-9, _ and -".into()))
    }
}

/// A stock-keeping unit and our count of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Item {
    pub id: String,
    pub sku: String,
    pub asin: Option<String>,
    pub fnsku: Option<String>,
    pub name: String,
    /// Units we hold (what reconciliation sets and scans compare).
    pub on_hand: i64,
    pub fulfillable: i64,
    pub inbound: i64,
    pub reserved: i64,
    pub unfulfillable: i64,
    /// Minor units of `currency` (1999 = 19.99 USD).
    pub unit_price: i64,
    pub currency: String,
    pub reorder_point: i64,
    pub reorder_quantity: i64,
    /// Fulfillable units at or below the reorder point.
    pub needs_reorder: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&ItemRow> for Item {
    fn from(r: &ItemRow) -> Self {
        Self {
            id: r.id.clone(),
            sku: r.sku.clone(),
            asin: r.asin.clone(),
            fnsku: r.fnsku.clone(),
            name: r.name.clone(),
            on_hand: r.on_hand,
            fulfillable: r.fulfillable,
            inbound: r.inbound,
            reserved: r.reserved,
            unfulfillable: r.unfulfillable,
            unit_price: r.unit_price,
            currency: r.currency.clone(),
            reorder_point: r.reorder_point,
            reorder_quantity: r.reorder_quantity,
            needs_reorder: r.fulfillable <= r.reorder_point,
            version: r.version,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

/// An item's fields. Creating needs `sku` and `name`; quantities default to 0, the reorder
/// point to 10 and the reorder quantity to 50. Changing keeps absent fields; `null` clears
/// `asin` and `fnsku`.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemFields {
    #[validate(custom(function = "check_sku"))]
    pub sku: Option<String>,
    #[validate(
        length(min = 1, max = 200, message = "must be 1 to 200 characters"),
        custom(function = "no_nul")
    )]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "agora_shared::http::json::double_option")]
    #[validate(
        length(min = 1, max = 20, message = "must be 1 to 20 characters"),
        custom(function = "no_nul")
    )]
    #[schema(value_type = Option<String>)]
    pub asin: Option<Option<String>>,
    #[serde(default, deserialize_with = "agora_shared::http::json::double_option")]
    #[validate(
        length(min = 1, max = 20, message = "must be 1 to 20 characters"),
        custom(function = "no_nul")
    )]
    #[schema(value_type = Option<String>)]
    pub fnsku: Option<Option<String>>,
    #[validate(range(
        min = 0,
        max = 1_000_000_000,
        message = "must be between 0 and 1000000000"
    ))]
    pub on_hand: Option<i64>,
    #[validate(range(
        min = 0,
        max = 1_000_000_000,
        message = "must be between 0 and 1000000000"
    ))]
    pub fulfillable: Option<i64>,
    #[validate(range(
        min = 0,
        max = 1_000_000_000,
        message = "must be between 0 and 1000000000"
    ))]
    pub inbound: Option<i64>,
    #[validate(range(
        min = 0,
        max = 1_000_000_000,
        message = "must be between 0 and 1000000000"
    ))]
    pub reserved: Option<i64>,
    #[validate(range(
        min = 0,
        max = 1_000_000_000,
        message = "must be between 0 and 1000000000"
    ))]
    pub unfulfillable: Option<i64>,
    /// Minor units of `currency`.
    #[validate(range(
        min = 0,
        max = 1_000_000_000_000i64,
        message = "must be between 0 and 1000000000000"
    ))]
    pub unit_price: Option<i64>,
    /// Defaults to the service's `default_currency`.
    #[validate(custom(function = "check_currency"))]
    pub currency: Option<String>,
    #[validate(range(
        min = 0,
        max = 1_000_000_000,
        message = "must be between 0 and 1000000000"
    ))]
    pub reorder_point: Option<i64>,
    #[validate(range(
        min = 0,
        max = 1_000_000_000,
        message = "must be between 0 and 1000000000"
    ))]
    pub reorder_quantity: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemPage {
    pub items: Vec<Item>,
    pub next_cursor: Option<String>,
}

/// One change of an item's on-hand quantity.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuantityChange {
    pub id: String,
    pub from_quantity: i64,
    pub to_quantity: i64,
    /// reconcile, auto_resolve, import, edit, create
    pub reason: String,
    pub actor_id: String,
    pub created_at: DateTime<Utc>,
}

impl From<&QuantityChangeRow> for QuantityChange {
    fn from(r: &QuantityChangeRow) -> Self {
        Self {
            id: r.id.clone(),
            from_quantity: r.from_quantity,
            to_quantity: r.to_quantity,
            reason: r.reason.clone(),
            actor_id: r.actor_id.clone(),
            created_at: utc(r.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuantityChangePage {
    pub items: Vec<QuantityChange>,
    pub next_cursor: Option<String>,
}

/// What a CSV import did.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ImportReport {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// One source's counts of some items, taken at once.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSnapshot {
    /// `manual`, or any other name of 1-40 of a-z, 0-9, `_`, `-` (`amazon` is the syncs').
    #[validate(custom(function = "check_source"))]
    pub source: String,
    #[validate(
        length(min = 1, max = 10000, message = "must hold 1 to 10000 counts"),
        nested
    )]
    pub counts: Vec<SourceCount>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceCount {
    #[validate(custom(function = "check_sku"))]
    pub sku: String,
    #[validate(range(
        min = 0,
        max = 1_000_000_000,
        message = "must be between 0 and 1000000000"
    ))]
    pub quantity: i64,
    /// The item's name, when the source names an item we do not have yet.
    #[validate(
        length(min = 1, max = 200, message = "must be 1 to 200 characters"),
        custom(function = "no_nul")
    )]
    pub name: Option<String>,
}

/// What a scan found and did.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ScanReport {
    /// Counts compared.
    pub compared: u64,
    /// New discrepancies.
    pub detected: u64,
    /// Live discrepancies whose numbers moved.
    pub updated: u64,
    /// Live discrepancies settled because the counts now agree.
    pub resolved: u64,
    /// New low discrepancies resolved by the tenant's rule.
    pub auto_resolved: u64,
}

/// Counts one source reported at once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    pub id: String,
    pub source: String,
    pub item_count: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A recorded snapshot and the scan of its items.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotReport {
    pub id: String,
    pub source: String,
    pub item_count: i64,
    /// Items the source named first (created with reorder point 10 and quantity 50).
    pub created_items: Vec<String>,
    pub scan: ScanReport,
    pub created_at: DateTime<Utc>,
}

/// A difference between a source's count and ours.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Discrepancy {
    pub id: String,
    pub item_id: String,
    pub sku: String,
    pub source: String,
    pub snapshot_id: String,
    /// Our on-hand quantity when it was last compared.
    pub expected: i64,
    /// The source's count.
    pub observed: i64,
    /// observed - expected
    pub difference: i64,
    pub severity: Severity,
    pub suggested_action: Action,
    pub confidence: f64,
    /// 0 to 10.
    pub impact: f64,
    /// |difference| x unit price, minor units of `currency`.
    pub value_at_stake: i64,
    pub currency: String,
    pub status: DiscrepancyStatus,
    pub note: Option<String>,
    pub detected_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl From<&DiscrepancyRow> for Discrepancy {
    fn from(r: &DiscrepancyRow) -> Self {
        Self {
            id: r.id.clone(),
            item_id: r.item_id.clone(),
            sku: r.sku.clone(),
            source: r.source.clone(),
            snapshot_id: r.snapshot_id.clone(),
            expected: r.expected,
            observed: r.observed,
            difference: r.difference,
            severity: r.severity,
            suggested_action: r.suggested_action,
            confidence: r.confidence,
            impact: r.impact,
            value_at_stake: r.value_at_stake,
            currency: r.currency.clone(),
            status: r.status,
            note: r.note.clone(),
            detected_at: utc(r.detected_at),
            updated_at: utc(r.updated_at),
            resolved_at: r.resolved_at.map(utc),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiscrepancyPage {
    pub items: Vec<Discrepancy>,
    pub next_cursor: Option<String>,
}

/// A status change by hand: investigating, escalated or resolved.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscrepancyUpdate {
    pub status: DiscrepancyStatus,
    #[validate(
        length(max = 2000, message = "must be at most 2000 characters"),
        custom(function = "no_nul")
    )]
    pub note: Option<String>,
}

/// One line of a reconciliation: set the item's on-hand quantity to `source_value`, if it is
/// still `target_value`.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileLine {
    #[validate(custom(function = "check_sku"))]
    pub sku: String,
    #[validate(range(
        min = 0,
        max = 1_000_000_000,
        message = "must be between 0 and 1000000000"
    ))]
    pub source_value: i64,
    /// Our quantity as the caller saw it; the line fails if it has moved since.
    #[validate(range(
        min = 0,
        max = 1_000_000_000,
        message = "must be between 0 and 1000000000"
    ))]
    pub target_value: i64,
}

/// Lines to reconcile: a JSON array (at most 10000 lines).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct ReconcileRequest(pub Vec<ReconcileLine>);

impl Validate for ReconcileRequest {
    fn validate(&self) -> Result<(), validator::ValidationErrors> {
        let mut errors = validator::ValidationErrors::new();
        if self.0.is_empty() || self.0.len() > 10_000 {
            errors.add(
                "items",
                ValidationError::new("length").with_message("must hold 1 to 10000 lines".into()),
            );
        }
        for (i, line) in self.0.iter().enumerate() {
            if let Err(e) = line.validate() {
                for (field, _) in e.field_errors() {
                    let message = format!("line {i}: {field} is not valid");
                    errors.add(
                        "items",
                        ValidationError::new("line").with_message(message.into()),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// What happened to one line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ReconcileResult {
    pub sku: String,
    pub outcome: ReconcileOutcome,
    /// The item's on-hand quantity before, when it existed.
    pub from: Option<i64>,
    /// Its quantity after (unchanged for a failed line).
    pub to: Option<i64>,
    /// Why the line failed.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReconcileReport {
    /// Items set to their source value (created ones included).
    pub reconciled: Vec<String>,
    pub failed: Vec<String>,
    pub results: Vec<ReconcileResult>,
}

/// The tenant's scan rules.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Low discrepancies (2-5 units) are settled at once by taking the source's count.
    pub auto_resolve_low: bool,
}

/// A document backing a claim.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// discrepancy, snapshot, email, document, note
    #[validate(
        length(min = 1, max = 40, message = "must be 1 to 40 characters"),
        custom(function = "no_nul")
    )]
    pub kind: String,
    #[validate(
        length(min = 1, max = 500, message = "must be 1 to 500 characters"),
        custom(function = "no_nul")
    )]
    pub reference: String,
    #[serde(default)]
    #[validate(
        length(max = 2000, message = "must be at most 2000 characters"),
        custom(function = "no_nul")
    )]
    pub description: String,
}

/// A claim for money a discrepancy says the tenant is owed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Claim {
    pub id: String,
    pub discrepancy_id: String,
    pub item_id: String,
    pub sku: String,
    pub claim_type: ClaimType,
    pub provider: ClaimProvider,
    pub status: ClaimStatus,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    pub confidence: f64,
    pub evidence: Vec<Evidence>,
    pub notes: Option<String>,
    /// The provider's case or refund id, once filed.
    pub external_reference: Option<String>,
    /// Stripe claims: what they act on, through which connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripe: Option<StripeClaim>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&ClaimRow> for Claim {
    fn from(r: &ClaimRow) -> Self {
        Self {
            id: r.id.clone(),
            discrepancy_id: r.discrepancy_id.clone(),
            item_id: r.item_id.clone(),
            sku: r.sku.clone(),
            claim_type: r.claim_type,
            provider: r.provider,
            status: r.status,
            amount: r.amount,
            currency: r.currency.clone(),
            confidence: r.confidence,
            evidence: serde_json::from_str(&r.evidence).unwrap_or_default(),
            notes: r.notes.clone(),
            external_reference: r.external_reference.clone(),
            stripe: r.stripe_target.as_ref().map(|target| StripeClaim {
                connection_id: r.connection_id.clone(),
                target: target.clone(),
            }),
            created_by: r.created_by.clone(),
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimPage {
    pub items: Vec<Claim>,
    pub next_cursor: Option<String>,
}

/// A new claim on a discrepancy whose confidence is at least 0.7.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClaim {
    pub discrepancy_id: String,
    pub claim_type: ClaimType,
    pub provider: ClaimProvider,
    /// Minor units of the item's currency; defaults to the discrepancy's value at stake.
    #[validate(range(
        min = 1,
        max = 1_000_000_000_000i64,
        message = "must be between 1 and 1000000000000"
    ))]
    pub amount: Option<i64>,
    #[validate(
        length(max = 2000, message = "must be at most 2000 characters"),
        custom(function = "no_nul")
    )]
    pub notes: Option<String>,
    /// More evidence; the discrepancy and its snapshot are always attached.
    #[serde(default)]
    #[validate(length(max = 50, message = "at most 50 entries"), nested)]
    pub evidence: Vec<Evidence>,
    /// Required when `provider` is `stripe`: the connection and the Stripe object the claim
    /// acts on when submitted.
    #[validate(nested)]
    pub stripe: Option<StripeClaim>,
}

/// What a Stripe claim acts on: a refund of a payment intent (`pi_...`) or charge (`ch_...`),
/// or the answer to a dispute (`dp_...`), through one of the tenant's Stripe connections.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StripeClaim {
    /// Null once the connection is removed.
    pub connection_id: Option<String>,
    #[validate(custom(function = "check_stripe_target"))]
    pub target: String,
}

fn check_stripe_target(id: &str) -> Result<(), ValidationError> {
    if crate::stripe::Target::of(id).is_some() {
        Ok(())
    } else {
        Err(ValidationError::new("target").with_message(
            "must be a Stripe payment intent (pi_...), charge (ch_...) or dispute (dp_...) id"
                .into(),
        ))
    }
}

/// A claim's next status (pending -> processing -> approved | rejected; approved -> completed).
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimUpdate {
    pub status: ClaimStatus,
    #[validate(
        length(max = 2000, message = "must be at most 2000 characters"),
        custom(function = "no_nul")
    )]
    pub notes: Option<String>,
    #[validate(
        length(min = 1, max = 200, message = "must be 1 to 200 characters"),
        custom(function = "no_nul")
    )]
    pub external_reference: Option<String>,
    /// Evidence to add (a reimbursement notice, a case email...).
    #[serde(default)]
    #[validate(length(max = 50, message = "at most 50 entries"), nested)]
    pub evidence: Vec<Evidence>,
}

fn check_marketplace(id: &str) -> Result<(), ValidationError> {
    if (1..=20).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        Ok(())
    } else {
        Err(ValidationError::new("marketplace_id")
            .with_message("must be an Amazon marketplace id (ATVPDKIKX0DER for amazon.com)".into()))
    }
}

/// A tenant's account at a provider (its credentials never leave the service).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Connection {
    pub id: String,
    pub provider: Provider,
    /// The marketplace (Amazon) or the account id (Stripe, `acct_...`).
    pub account: String,
    /// `reauth_required`: the provider refused the authorization; PUT new credentials.
    pub status: ConnectionStatus,
    /// Stripe: where the tenant's Stripe webhook endpoint sends events (on the gateway's
    /// public address), and whether its signing secret is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret_set: Option<bool>,
    pub last_error: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&ConnectionRow> for Connection {
    fn from(r: &ConnectionRow) -> Self {
        Self {
            id: r.id.clone(),
            provider: r.provider,
            account: r.account.clone(),
            status: r.status,
            webhook_path: (r.provider == Provider::Stripe)
                .then(|| format!("/api/v1/inventory/webhooks/stripe/{}", r.id)),
            webhook_secret_set: (r.provider == Provider::Stripe)
                .then_some(r.webhook_secret.is_some()),
            last_error: r.last_error.clone(),
            last_synced_at: r.last_synced_at.map(utc),
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionList {
    pub items: Vec<Connection>,
}

/// A tenant's account to connect. Amazon: the marketplace to sync and the LWA refresh token
/// the seller's authorization of this application produced. Stripe: the account's secret (or
/// restricted) key, and the signing secret of the webhook endpoint the tenant made in Stripe
/// for the connection's `webhook_path` (which can be given later, once the endpoint exists).
/// Credentials are checked with the provider before they are kept, sealed.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    pub provider: Provider,
    /// Amazon: the marketplace (ATVPDKIKX0DER for amazon.com).
    #[validate(custom(function = "check_marketplace"))]
    pub marketplace_id: Option<String>,
    /// Amazon: `Atzr|...`.
    #[validate(
        length(min = 1, max = 2048, message = "must be 1 to 2048 characters"),
        custom(function = "no_nul")
    )]
    pub refresh_token: Option<String>,
    /// Stripe: `sk_live_...`, `sk_test_...`, `rk_live_...` or `rk_test_...`.
    #[validate(custom(function = "check_stripe_key"))]
    pub secret_key: Option<String>,
    /// Stripe: `whsec_...`.
    #[validate(custom(function = "check_webhook_secret"))]
    pub webhook_secret: Option<String>,
}

/// New credentials for a connection: a refresh token for Amazon (after `reauth_required`);
/// a secret key, a webhook signing secret or both for Stripe (rolled keys, a new endpoint).
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[validate(
        length(min = 1, max = 2048, message = "must be 1 to 2048 characters"),
        custom(function = "no_nul")
    )]
    pub refresh_token: Option<String>,
    #[validate(custom(function = "check_stripe_key"))]
    pub secret_key: Option<String>,
    #[validate(custom(function = "check_webhook_secret"))]
    pub webhook_secret: Option<String>,
}

fn stripe_secret(value: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| {
        value.strip_prefix(p).is_some_and(|rest| {
            (1..=250).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
    })
}

fn check_stripe_key(key: &str) -> Result<(), ValidationError> {
    if stripe_secret(key, &["sk_live_", "sk_test_", "rk_live_", "rk_test_"]) {
        Ok(())
    } else {
        Err(ValidationError::new("secret_key").with_message(
            "must be a Stripe secret or restricted key (sk_live_..., sk_test_..., rk_...)".into(),
        ))
    }
}

fn check_webhook_secret(secret: &str) -> Result<(), ValidationError> {
    if stripe_secret(secret, &["whsec_"]) {
        Ok(())
    } else {
        Err(ValidationError::new("webhook_secret")
            .with_message("must be a Stripe webhook signing secret (whsec_...)".into()))
    }
}

/// A Stripe event a connection's webhook took, and what it did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct StripeEvent {
    /// Stripe's event id (`evt_...`).
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub outcome: String,
    pub received_at: DateTime<Utc>,
}

impl From<&StripeEventRow> for StripeEvent {
    fn from(r: &StripeEventRow) -> Self {
        Self {
            id: r.event_id.clone(),
            event_type: r.event_type.clone(),
            outcome: r.outcome.clone(),
            received_at: utc(r.received_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StripeEventList {
    pub items: Vec<StripeEvent>,
}

/// A sync of a connection and how far it got.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct SyncRun {
    pub id: String,
    pub connection_id: String,
    pub status: SyncStatus,
    pub trigger: SyncTrigger,
    /// The snapshot its counts are recorded in.
    pub snapshot_id: String,
    pub pages: i64,
    pub items_seen: i64,
    /// Requests that had to be retried (throttled, failing, refused tokens).
    pub errors: i64,
    pub failure: Option<String>,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&SyncRunRow> for SyncRun {
    fn from(r: &SyncRunRow) -> Self {
        Self {
            id: r.id.clone(),
            connection_id: r.connection_id.clone(),
            status: r.status,
            trigger: r.trigger,
            snapshot_id: r.snapshot_id.clone(),
            pages: r.pages,
            items_seen: r.items_seen,
            errors: r.errors,
            failure: r.failure.clone(),
            started_at: utc(r.started_at),
            updated_at: utc(r.updated_at),
            finished_at: r.finished_at.map(utc),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncRunPage {
    pub items: Vec<SyncRun>,
    pub next_cursor: Option<String>,
}
