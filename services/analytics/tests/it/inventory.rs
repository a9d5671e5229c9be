//! Inventory-sync's events in analytics: a real inventory-sync on the same bus finds
//! discrepancies and moves claims; `/analytics/inventory` answers what was found, settled,
//! claimed, recovered and rejected, per currency and per tenant, and the activity feed tells
//! it.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::{Call, Store};
use agora_testkit::{Session, eventually};

agora_shared::on_sqlite_and_postgres!(discrepancies_and_claims_in_figures);

async fn platform(store: Store) -> agora_testkit::Platform {
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let mut kit = agora_testkit::Platform::builder(store)
        .service("analytics", "metrics_scrape_secs = 60")
        .service(
            "inventory_sync",
            &format!("scan_interval_secs = 3600\nkey_encryption_key = \"{key}\""),
        )
        .start()
        .await;
    let analytics = agora_analytics::start(&kit.context(), kit.shutdown.clone(), None)
        .await
        .expect("analytics starts");
    kit.serve(analytics.service);
    let inventory = agora_inventory_sync::start(&kit.context(), kit.shutdown.clone())
        .await
        .expect("inventory-sync starts");
    kit.serve(inventory.service);
    kit.gateway().await;
    kit
}

/// A discrepancy of `sku` (`held` on hand at `price` minor units of `currency`, counted
/// `counted` by a warehouse): its id.
async fn discrepancy(
    p: &agora_testkit::Platform,
    who: &Session,
    sku: &str,
    currency: &str,
    (held, counted, price): (i64, i64, i64),
) -> String {
    p.authed(Method::POST, "/api/v1/inventory/items", who)
        .json(
            &json!({"sku": sku, "name": sku, "on_hand": held, "unit_price": price,
                      "currency": currency}),
        )
        .value()
        .await;
    p.authed(Method::POST, "/api/v1/inventory/snapshots", who)
        .json(&json!({"source": "warehouse", "counts": [{"sku": sku, "quantity": counted}]}))
        .value()
        .await;
    let page = p
        .authed(
            Method::GET,
            &format!("/api/v1/inventory/discrepancies?sku={sku}"),
            who,
        )
        .value()
        .await;
    page["items"][0]["id"].as_str().unwrap().to_owned()
}

/// A claim on discrepancy `d`, moved through `statuses`.
async fn claim(p: &agora_testkit::Platform, who: &Session, d: &str, statuses: &[&str]) {
    let claim = p
        .authed(Method::POST, "/api/v1/inventory/claims", who)
        .json(&json!({"discrepancy_id": d, "claim_type": "reimbursement", "provider": "amazon"}))
        .value()
        .await;
    let path = format!("/api/v1/inventory/claims/{}", claim["id"].as_str().unwrap());
    for status in statuses {
        p.authed(Method::PATCH, &path, who)
            .json(&json!({"status": status}))
            .value()
            .await;
    }
}

async fn figures(p: &agora_testkit::Platform, who: &Session) -> Value {
    p.authed(
        Method::GET,
        "/api/v1/analytics/inventory?date_range=7d",
        who,
    )
    .value()
    .await
}

async fn discrepancies_and_claims_in_figures(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    let globex = p.tenant("Globex").await;

    // 150 jars of 20.00 USD missing: found, claimed, recovered.
    let jar = discrepancy(&p, &admin, "JAR-1", "USD", (500, 350, 2000)).await;
    claim(&p, &admin, &jar, &["processing", "approved", "completed"]).await;
    // 10 cups of 5.00 EUR missing: found, settled by hand, claimed, rejected.
    let cup = discrepancy(&p, &admin, "CUP-2", "EUR", (100, 90, 500)).await;
    claim(&p, &admin, &cup, &["processing", "rejected"]).await;
    p.authed(
        Method::PATCH,
        &format!("/api/v1/inventory/discrepancies/{cup}"),
        &admin,
    )
    .json(&json!({"status": "resolved", "note": "found in the back"}))
    .value()
    .await;
    // Globex has a discrepancy of its own, never in Acme's figures.
    discrepancy(&p, &globex, "JAR-1", "USD", (10, 2, 100)).await;

    let expected = json!([
        {"currency": "EUR", "discrepancies_detected": 1, "value_detected": 5000,
         "discrepancies_resolved": 1, "open_discrepancies": 0, "open_value_at_stake": 0,
         "claims_created": 1, "amount_claimed": 5000, "claims_completed": 0,
         "amount_recovered": 0, "claims_rejected": 1, "recovery_rate_pct": 0.0},
        {"currency": "USD", "discrepancies_detected": 1, "value_detected": 300000,
         "discrepancies_resolved": 0, "open_discrepancies": 1, "open_value_at_stake": 300000,
         "claims_created": 1, "amount_claimed": 300000, "claims_completed": 1,
         "amount_recovered": 300000, "claims_rejected": 0, "recovery_rate_pct": 100.0},
    ]);
    let report = eventually(
        Duration::from_secs(20),
        "analytics' inventory figures",
        || async {
            let report = figures(&p, &admin).await;
            if report["currencies"] == expected {
                Ok(report)
            } else {
                Err(report.to_string())
            }
        },
    )
    .await;
    assert_eq!(report["open_by_severity"], json!({"critical": 1}));
    let theirs = eventually(Duration::from_secs(20), "Globex's figures", || async {
        let report = figures(&p, &globex).await;
        if report["currencies"][0]["discrepancies_detected"] == 1 {
            Ok(report)
        } else {
            Err(report.to_string())
        }
    })
    .await;
    assert_eq!(theirs["currencies"].as_array().unwrap().len(), 1);
    assert_eq!(theirs["currencies"][0]["value_detected"], 800);
    assert_eq!(theirs["currencies"][0]["claims_created"], 0);
    // A date range before any of it counts nothing found or claimed, but what is open is open.
    let past = p
        .authed(
            Method::GET,
            "/api/v1/analytics/inventory?from=2020-01-01&to=2020-01-31",
            &admin,
        )
        .value()
        .await;
    let usd = past["currencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["currency"] == "USD")
        .unwrap()
        .clone();
    assert_eq!(
        (
            &usd["discrepancies_detected"],
            &usd["claims_created"],
            &usd["open_discrepancies"]
        ),
        (&json!(0), &json!(0), &json!(1))
    );
    // The activity feed tells it in words.
    let feed = p
        .authed(Method::GET, "/api/v1/dashboard/activities?limit=50", &admin)
        .value()
        .await;
    let lines: Vec<&str> = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["summary"].as_str().unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("critical discrepancy on JAR-1 from warehouse")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("reimbursement claim approved -> completed")),
        "{lines:?}"
    );
}
