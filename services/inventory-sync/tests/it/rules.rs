//! Every formula of RULES.md checked through the API against values this test computes on a
//! table of cases: which differences count, severity, suggested action, confidence (source,
//! size, history) and impact (severity, size, value).

use reqwest::Method;
use serde_json::json;

use agora_inventory_sync::store::{self, snapshots::CountRow};
use agora_shared::testing::{Call, Store};

use crate::support::platform;

/// How a sync of the amazon.com marketplace records its counts.
const AMAZON_US: &str = "amazon:ATVPDKIKX0DER";

agora_shared::on_sqlite_and_postgres!(formulas_on_a_table_of_cases);

struct Case {
    source: &'static str,
    on_hand: i64,
    counted: i64,
    /// Minor units.
    price: i64,
    currency: &'static str,
    /// A discrepancy of the SKU was recorded (and resolved) before this one.
    history: bool,
    auto_resolve_low: bool,
}

/// RULES.md, written out again here: severity and its base.
fn expected(case: &Case) -> Option<(&'static str, &'static str, f64, f64)> {
    let diff = (case.counted - case.on_hand).abs();
    if diff <= 1 {
        return None;
    }
    let (severity, base) = match diff {
        d if d <= 5 => ("low", 1.0),
        d if d <= 20 => ("medium", 3.0),
        d if d <= 100 => ("high", 7.0),
        _ => ("critical", 10.0),
    };
    let action = match severity {
        "low" if case.auto_resolve_low => "auto_resolve",
        "critical" => "escalate",
        _ => "investigate",
    };
    let mut confidence: f64 = match case.source {
        "amazon" => 0.95,
        "manual" => 0.7,
        _ => 0.8,
    };
    if diff > 100 {
        confidence *= 0.9;
    }
    if case.history {
        confidence *= 0.95;
    }
    let confidence = confidence.clamp(0.1, 1.0);
    let divisor = match case.currency {
        "JPY" => 1.0,
        "KWD" => 1000.0,
        _ => 100.0,
    };
    let price = case.price as f64 / divisor;
    let d = diff as f64;
    let impact = (base + (d / 20.0).min(5.0) + (price * d / 1000.0).min(3.0)).min(10.0);
    Some((severity, action, confidence, impact))
}

async fn formulas_on_a_table_of_cases(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    let case = |source, on_hand, counted, price, currency| Case {
        source,
        on_hand,
        counted,
        price,
        currency,
        history: false,
        auto_resolve_low: false,
    };
    let mut cases = vec![
        case("amazon", 10, 10, 100, "USD"),
        case("amazon", 10, 11, 100, "USD"),
        case("amazon", 10, 9, 100, "USD"),
        case("amazon", 10, 12, 100, "USD"),
        case("manual", 10, 5, 2500, "USD"),
        case("warehouse", 10, 16, 100, "USD"),
        case("amazon", 100, 80, 99, "USD"),
        case("manual", 100, 79, 10000, "USD"),
        case("amazon", 0, 100, 1, "USD"),
        case("warehouse", 0, 101, 100, "USD"),
        case("amazon", 1000, 10, 100000, "USD"),
        case("manual", 500, 1000, 150, "JPY"),
        case("amazon", 40, 10, 1500, "KWD"),
        case("shopify", 7, 2, 0, "EUR"),
    ];
    cases.push(Case {
        history: true,
        ..case("amazon", 50, 20, 500, "USD")
    });
    cases.push(Case {
        history: true,
        ..case("manual", 50, 47, 500, "USD")
    });
    cases.push(Case {
        history: true,
        ..case("warehouse", 500, 380, 500, "USD")
    });
    cases.push(Case {
        auto_resolve_low: true,
        ..case("amazon", 50, 46, 500, "USD")
    });
    cases.push(Case {
        auto_resolve_low: true,
        ..case("manual", 50, 40, 500, "USD")
    });

    for (i, c) in cases.iter().enumerate() {
        let sku = format!("CASE-{i}");
        p.authed(Method::PUT, "/api/v1/inventory/rules", &admin)
            .json(&json!({"auto_resolve_low": c.auto_resolve_low}))
            .value()
            .await;
        let item = p
            .item(
                &admin,
                json!({"sku": sku, "name": sku, "on_hand": c.on_hand, "unit_price": c.price,
                    "currency": c.currency}),
            )
            .await;
        if c.history {
            // An earlier discrepancy of the SKU from another source, settled at once.
            p.counts(&admin, "earlier", &[(&sku, c.on_hand + 50)]).await;
            p.counts(&admin, "earlier", &[(&sku, c.on_hand)]).await;
        }
        let source = if c.source == "amazon" {
            // Amazon's counts come from syncs (tests/it/sync.rs): recorded as a sync does,
            // then scanned.
            let (tenant, item_id, counted) = (
                admin.tenant_id.clone(),
                item["id"].as_str().unwrap().to_owned(),
                c.counted,
            );
            p.state
                .db
                .write(move |conn| {
                    store::snapshots::record_count(
                        conn,
                        &CountRow {
                            tenant_id: tenant,
                            item_id,
                            source: AMAZON_US.into(),
                            quantity: counted,
                            snapshot_id: "sync".into(),
                            observed_at: agora_shared::db::now(),
                        },
                    )
                })
                .await
                .unwrap();
            p.authed(Method::POST, "/api/v1/inventory/scan", &admin)
                .value()
                .await;
            AMAZON_US
        } else {
            p.counts(&admin, c.source, &[(&sku, c.counted)]).await;
            c.source
        };
        let found = p.discrepancies(&admin, &sku).await;
        let found: Vec<_> = found.iter().filter(|d| d["source"] == source).collect();
        match expected(c) {
            None => assert!(found.is_empty(), "case {i}: {found:?}"),
            Some((severity, action, confidence, impact)) => {
                assert_eq!(found.len(), 1, "case {i}");
                let d = found[0];
                assert_eq!(d["difference"], c.counted - c.on_hand, "case {i}");
                assert_eq!(d["severity"], severity, "case {i}");
                assert_eq!(d["suggested_action"], action, "case {i}");
                let got = d["confidence"].as_f64().unwrap();
                assert!(
                    (got - confidence).abs() < 1e-9,
                    "case {i}: confidence {got} != {confidence}"
                );
                let got = d["impact"].as_f64().unwrap();
                assert!(
                    (got - impact).abs() < 1e-9,
                    "case {i}: impact {got} != {impact}"
                );
                assert_eq!(
                    d["value_at_stake"],
                    (c.counted - c.on_hand).abs() * c.price,
                    "case {i}"
                );
                let status = if action == "auto_resolve" {
                    "auto_resolved"
                } else {
                    "open"
                };
                assert_eq!(d["status"], status, "case {i}");
            }
        }
    }
}
