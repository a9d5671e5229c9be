//! Inventory's vocabulary and the commerce rules (../shared/products/RULES.md): which stock
//! differences are discrepancies, their severity, suggested action, confidence and impact, the
//! discrepancy and claim status machines, and money. No I/O.

use agora_shared::wire_enum;

wire_enum!(
    /// How far a source's count is from ours.
    Severity {
        Low => "low",
        Medium => "medium",
        High => "high",
        Critical => "critical",
    }
);

wire_enum!(
    /// What to do about a discrepancy.
    Action {
        AutoResolve => "auto_resolve",
        Investigate => "investigate",
        Escalate => "escalate",
    }
);

wire_enum!(
    /// Where a discrepancy is in its life.
    DiscrepancyStatus {
        Open => "open",
        AutoResolved => "auto_resolved",
        Investigating => "investigating",
        Escalated => "escalated",
        Resolved => "resolved",
    }
);

wire_enum!(
    /// What a claim asks for.
    ClaimType {
        Reimbursement => "reimbursement",
        Refund => "refund",
        Adjustment => "adjustment",
        Dispute => "dispute",
    }
);

wire_enum!(
    /// Who a claim is filed with.
    ClaimProvider {
        Amazon => "amazon",
        Stripe => "stripe",
        Manual => "manual",
    }
);

wire_enum!(
    /// Where a claim is in its life.
    ClaimStatus {
        Pending => "pending",
        Processing => "processing",
        Approved => "approved",
        Rejected => "rejected",
        Completed => "completed",
    }
);

wire_enum!(
    /// What happened to one line of a reconciliation.
    ReconcileOutcome {
        Reconciled => "reconciled",
        Created => "created",
        Unchanged => "unchanged",
        Failed => "failed",
    }
);

wire_enum!(
    /// Where a tenant's account is.
    Provider {
        Amazon => "amazon",
        Stripe => "stripe",
        Gmail => "gmail",
    }
);

wire_enum!(
    /// Whether a connection can be used.
    ConnectionStatus {
        Active => "active",
        ReauthRequired => "reauth_required",
    }
);

wire_enum!(
    /// Where a sync run is.
    SyncStatus {
        Running => "running",
        Completed => "completed",
        Failed => "failed",
    }
);

wire_enum!(
    /// What started a sync run.
    SyncTrigger {
        Manual => "manual",
        Schedule => "schedule",
    }
);

/// A difference of this many units or fewer is not a discrepancy.
pub const IGNORED_DIFFERENCE: u64 = 1;

/// Claims are raised only for discrepancies at least this sure.
pub const CLAIM_MIN_CONFIDENCE: f64 = 0.7;

/// Reorder settings of an item a source names first.
pub const NEW_ITEM_REORDER_POINT: i64 = 10;
pub const NEW_ITEM_REORDER_QUANTITY: i64 = 50;

/// Sources with a confidence of their own; any other source counts as 0.8.
pub const AMAZON: &str = "amazon";
pub const MANUAL: &str = "manual";

/// Amazon's counts: `amazon`, or `amazon:<marketplace>` as syncs record them.
pub fn is_amazon(source: &str) -> bool {
    source == AMAZON || source.starts_with("amazon:")
}

/// Severity of a difference, or `None` when it is not a discrepancy (|diff| <= 1).
pub fn severity(difference: i64) -> Option<Severity> {
    match difference.unsigned_abs() {
        d if d <= IGNORED_DIFFERENCE => None,
        d if d <= 5 => Some(Severity::Low),
        d if d <= 20 => Some(Severity::Medium),
        d if d <= 100 => Some(Severity::High),
        _ => Some(Severity::Critical),
    }
}

/// Low ones are auto-resolved when the tenant's rule says so; critical ones escalated; the rest
/// investigated.
pub fn suggested_action(severity: Severity, auto_resolve_low: bool) -> Action {
    match severity {
        Severity::Low if auto_resolve_low => Action::AutoResolve,
        Severity::Critical => Action::Escalate,
        _ => Action::Investigate,
    }
}

/// How sure we are that a source's count is right: amazon 0.95, manual 0.7, others 0.8; x0.9
/// beyond 100 units; x0.95 when the SKU had a discrepancy before; within 0.1..=1.
pub fn confidence(source: &str, difference: i64, had_previous: bool) -> f64 {
    let mut c: f64 = match source {
        MANUAL => 0.7,
        s if is_amazon(s) => 0.95,
        _ => 0.8,
    };
    if difference.unsigned_abs() > 100 {
        c *= 0.9;
    }
    if had_previous {
        c *= 0.95;
    }
    // Six decimals hold every product of these factors exactly, without float noise
    // (0.8 x 0.9 is 0.72, not 0.7200000000000001).
    (c.clamp(0.1, 1.0) * 1e6).round() / 1e6
}

/// Impact on a 0..=10 scale: severity base (1/3/7/10) + min(5, |diff| / 20) + min(3, unit price
/// x |diff| / 1000), the price in major units of its currency.
pub fn impact(severity: Severity, difference: i64, unit_price_major: f64) -> f64 {
    let base = match severity {
        Severity::Low => 1.0,
        Severity::Medium => 3.0,
        Severity::High => 7.0,
        Severity::Critical => 10.0,
    };
    let d = difference.unsigned_abs() as f64;
    (base + (d / 20.0).min(5.0) + (unit_price_major * d / 1000.0).min(3.0)).min(10.0)
}

/// Whether a discrepancy may move from `from` to `to` by hand (auto_resolved and resolved are
/// final; scans resolve live ones themselves when the counts come to agree).
pub fn discrepancy_may_move(from: DiscrepancyStatus, to: DiscrepancyStatus) -> bool {
    use DiscrepancyStatus::*;
    matches!(
        (from, to),
        (Open, Investigating | Escalated | Resolved)
            | (Investigating, Escalated | Resolved)
            | (Escalated, Investigating | Resolved)
    )
}

impl DiscrepancyStatus {
    /// Still waiting for someone (or a scan) to settle it.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Open | Self::Investigating | Self::Escalated)
    }
}

/// Claims go pending -> processing -> approved | rejected, and approved -> completed.
pub fn claim_may_move(from: ClaimStatus, to: ClaimStatus) -> bool {
    use ClaimStatus::*;
    matches!(
        (from, to),
        (Pending, Processing) | (Processing, Approved | Rejected) | (Approved, Completed)
    )
}

/// The moves that take a claim from `from` to `to`, in order (none when it is there
/// already); `None` when allowed moves never get there (a provider's late news about a claim
/// that moved on).
pub fn claim_path(from: ClaimStatus, to: ClaimStatus) -> Option<Vec<ClaimStatus>> {
    use ClaimStatus::*;
    let chain: &[ClaimStatus] = match to {
        Rejected => &[Pending, Processing, Rejected],
        _ => &[Pending, Processing, Approved, Completed],
    };
    let start = chain.iter().position(|s| *s == from)?;
    let end = chain.iter().position(|s| *s == to)?;
    (start <= end).then(|| chain[start + 1..=end].to_vec())
}

/// Digits after the decimal point of an ISO 4217 currency (Stripe's zero- and three-decimal
/// lists; two for every other).
pub fn currency_exponent(currency: &str) -> u32 {
    const ZERO: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
        "XAF", "XOF", "XPF",
    ];
    const THREE: &[&str] = &["BHD", "JOD", "KWD", "OMR", "TND"];
    if ZERO.contains(&currency) {
        0
    } else if THREE.contains(&currency) {
        3
    } else {
        2
    }
}

/// A price in minor units as major units (1999 USD cents -> 19.99).
pub fn major_units(minor: i64, currency: &str) -> f64 {
    minor as f64 / 10f64.powi(currency_exponent(currency) as i32)
}

/// Value of `difference` units at `unit_price` (minor units), saturating.
pub fn value_at_stake(difference: i64, unit_price: i64) -> i64 {
    (difference.unsigned_abs().min(i64::MAX as u64) as i64).saturating_mul(unit_price)
}

/// A currency code: three ASCII capital letters.
pub fn valid_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// A SKU: 1 to 64 printable characters without surrounding spaces (Amazon's seller SKUs are at
/// most 40; other channels allow more).
pub fn valid_sku(sku: &str) -> bool {
    (1..=64).contains(&sku.chars().count())
        && sku.trim() == sku
        && !sku.chars().any(char::is_control)
}

/// A source name: 1 to 40 of a-z, 0-9, `_` and `-` (amazon, manual, warehouse_3...).
pub fn valid_source(source: &str) -> bool {
    (1..=40).contains(&source.len())
        && source
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_bounds() {
        assert_eq!(severity(0), None);
        assert_eq!(severity(1), None);
        assert_eq!(severity(-1), None);
        assert_eq!(severity(2), Some(Severity::Low));
        assert_eq!(severity(-5), Some(Severity::Low));
        assert_eq!(severity(6), Some(Severity::Medium));
        assert_eq!(severity(20), Some(Severity::Medium));
        assert_eq!(severity(-21), Some(Severity::High));
        assert_eq!(severity(100), Some(Severity::High));
        assert_eq!(severity(101), Some(Severity::Critical));
        assert_eq!(severity(i64::MIN), Some(Severity::Critical));
    }

    #[test]
    fn actions() {
        assert_eq!(suggested_action(Severity::Low, true), Action::AutoResolve);
        assert_eq!(suggested_action(Severity::Low, false), Action::Investigate);
        assert_eq!(suggested_action(Severity::High, true), Action::Investigate);
        assert_eq!(suggested_action(Severity::Critical, true), Action::Escalate);
    }

    #[test]
    fn confidence_by_source_size_and_history() {
        assert_eq!(confidence("amazon", 10, false), 0.95);
        assert_eq!(confidence("amazon:ATVPDKIKX0DER", 10, false), 0.95);
        assert_eq!(confidence("amazonian", 10, false), 0.8);
        assert_eq!(confidence("manual", 10, false), 0.7);
        assert_eq!(confidence("warehouse", 10, false), 0.8);
        assert!((confidence("amazon", 101, false) - 0.855).abs() < 1e-12);
        assert!((confidence("amazon", -101, true) - 0.95 * 0.9 * 0.95).abs() < 1e-12);
        assert!((confidence("manual", 3, true) - 0.665).abs() < 1e-12);
        assert_eq!(confidence("warehouse", 101, false), 0.72);
    }

    #[test]
    fn impact_is_capped() {
        // Low, 4 units at 2.50: 1 + 0.2 + 0.01.
        assert!((impact(Severity::Low, 4, 2.5) - 1.21).abs() < 1e-12);
        // High, 100 units at 50.00: 7 + 5 + min(3, 5) = 15 -> 10.
        assert_eq!(impact(Severity::High, 100, 50.0), 10.0);
        assert!((impact(Severity::Medium, -20, 0.0) - 4.0).abs() < 1e-12);
    }

    #[test]
    fn status_machines() {
        use ClaimStatus::*;
        assert!(claim_may_move(Pending, Processing));
        assert!(claim_may_move(Processing, Rejected));
        assert!(claim_may_move(Approved, Completed));
        assert!(!claim_may_move(Pending, Approved));
        assert!(!claim_may_move(Rejected, Completed));
        assert!(!claim_may_move(Completed, Pending));
        assert_eq!(
            claim_path(Pending, Completed),
            Some(vec![Processing, Approved, Completed])
        );
        assert_eq!(
            claim_path(Pending, Rejected),
            Some(vec![Processing, Rejected])
        );
        assert_eq!(claim_path(Processing, Processing), Some(vec![]));
        assert_eq!(claim_path(Completed, Processing), None);
        assert_eq!(claim_path(Approved, Rejected), None);
        assert_eq!(claim_path(Rejected, Completed), None);
        // Every step of every path is a move the claim may make.
        for from in [Pending, Processing, Approved, Rejected, Completed] {
            for to in [Pending, Processing, Approved, Rejected, Completed] {
                if let Some(path) = claim_path(from, to) {
                    let mut at = from;
                    for step in path {
                        assert!(claim_may_move(at, step), "{at} -> {step}");
                        at = step;
                    }
                    assert_eq!(at, to);
                }
            }
        }
        use DiscrepancyStatus as D;
        assert!(discrepancy_may_move(D::Open, D::Resolved));
        assert!(discrepancy_may_move(D::Escalated, D::Investigating));
        assert!(!discrepancy_may_move(D::Resolved, D::Open));
        assert!(!discrepancy_may_move(D::AutoResolved, D::Investigating));
        assert!(!discrepancy_may_move(D::Open, D::AutoResolved));
    }

    #[test]
    fn money() {
        assert_eq!(major_units(1999, "USD"), 19.99);
        assert_eq!(major_units(1999, "JPY"), 1999.0);
        assert_eq!(major_units(1999, "KWD"), 1.999);
        assert_eq!(value_at_stake(-3, 250), 750);
        assert_eq!(value_at_stake(i64::MIN, 2), i64::MAX);
        assert!(valid_currency("EUR"));
        assert!(!valid_currency("eur"));
        assert!(valid_sku("AB-12 x"));
        assert!(!valid_sku(" AB"));
        assert!(!valid_sku(""));
        assert!(valid_source("warehouse_3"));
        assert!(!valid_source("Amazon"));
    }
}
