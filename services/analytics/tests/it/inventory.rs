//! Inventory-sync's events in analytics: a real inventory-sync on the same bus finds
//! discrepancies and moves claims; `/analytics/inventory` answers what was found, settled,
//! claimed, recovered and rejected, per currency and per tenant, and the activity feed tells
//! it.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use agora_analytics::ingest;
use agora_proto::events::v1 as ev;
use agora_shared::{
    bus::Event,
    testing::{Call, Store},
};
use agora_testkit::{Session, eventually};

agora_shared::on_sqlite_and_postgres!(
    discrepancies_and_claims_in_figures,
    newest_version_wins_whatever_the_order,
);

async fn platform(store: Store) -> agora_testkit::Platform {
    platform_and_state(store).await.0
}

async fn platform_and_state(
    store: Store,
) -> (
    agora_testkit::Platform,
    std::sync::Arc<agora_analytics::AnalyticsState>,
) {
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
    let state = analytics.state.clone();
    kit.serve(analytics.service);
    let inventory = agora_inventory_sync::start(&kit.context(), kit.shutdown.clone())
        .await
        .expect("inventory-sync starts");
    kit.serve(inventory.service);
    kit.gateway().await;
    (kit, state)
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
    // An item deleted with a live discrepancy takes it out of the open figures.
    discrepancy(&p, &admin, "GONE-1", "USD", (10, 2, 100)).await;
    let usd_open = |n: i64| {
        let p = &p;
        let admin = &admin;
        async move {
            eventually(Duration::from_secs(20), "the open USD figures", || async {
                let report = figures(p, admin).await;
                let usd = report["currencies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["currency"] == "USD")
                    .cloned()
                    .unwrap_or_default();
                if usd["open_discrepancies"] == n {
                    Ok(usd)
                } else {
                    Err(report.to_string())
                }
            })
            .await
        }
    };
    usd_open(2).await;
    let resp = p
        .authed(Method::DELETE, "/api/v1/inventory/items/GONE-1", &admin)
        .call()
        .await;
    assert_eq!(resp.status(), 204);
    let usd = usd_open(1).await;
    assert_eq!(usd["discrepancies_resolved"], 1);
    assert_eq!(usd["open_value_at_stake"], 300000);
}

fn claim_event(tenant: &str, kind: &str, version: i64, status: &str, updated_at: &str) -> Event {
    use prost::Message;
    let claim = ev::Claim {
        id: "claim-1".into(),
        tenant_id: tenant.into(),
        discrepancy_id: "d-1".into(),
        sku: "JAR-1".into(),
        claim_type: "reimbursement".into(),
        provider: "amazon".into(),
        status: status.into(),
        amount: 1200,
        currency: "USD".into(),
        confidence: 0.9,
        version,
        created_at: "2026-11-01T10:00:00.000000Z".into(),
        updated_at: updated_at.into(),
    };
    let data = if kind == "created" {
        ev::ClaimCreated {
            claim: Some(claim),
            actor_id: "u".into(),
        }
        .encode_to_vec()
    } else {
        ev::ClaimStatusChanged {
            claim: Some(claim),
            from_status: String::new(),
            to_status: status.into(),
            actor_id: "u".into(),
        }
        .encode_to_vec()
    };
    Event::new(
        "agora/inventory-sync",
        &format!("agora.inventory.claim.{kind}"),
        "item-1",
        Some(tenant.into()),
        data,
    )
}

/// What the claim fact holds: status, created_at, settled_at.
async fn claim_row(db: &agora_shared::db::Db) -> (String, String, Option<String>) {
    db.read(|conn| {
        use agora_analytics::schema::inventory_claims as c;
        use diesel::prelude::*;
        let (status, created, settled): (
            String,
            chrono::NaiveDateTime,
            Option<chrono::NaiveDateTime>,
        ) = c::table
            .find("claim-1")
            .select((c::status, c::created_at, c::settled_at))
            .first(conn)?;
        Ok((status, created.to_string(), settled.map(|s| s.to_string())))
    })
    .await
    .unwrap()
}

/// Events applied late, out of order or twice leave the newest version, whichever path
/// (one by one or set-based) applies them; an event naming another tenant's claim is refused.
async fn newest_version_wins_whatever_the_order(store: Store) {
    let (p, state) = platform_and_state(store).await;
    let tenant = p.tenant("Acme").await.tenant_id;
    // Each call makes new events (new ids, as redeliveries after the inbox would be).
    let events = || {
        vec![
            claim_event(
                &tenant,
                "status_changed",
                2,
                "processing",
                "2026-11-02T09:00:00.000000Z",
            ),
            claim_event(
                &tenant,
                "status_changed",
                4,
                "completed",
                "2026-11-04T09:00:00.000000Z",
            ),
            claim_event(
                &tenant,
                "status_changed",
                3,
                "approved",
                "2026-11-03T09:00:00.000000Z",
            ),
            claim_event(
                &tenant,
                "created",
                1,
                "pending",
                "2026-11-01T10:00:00.000000Z",
            ),
            claim_event(
                &tenant,
                "status_changed",
                4,
                "completed",
                "2026-11-05T09:00:00.000000Z",
            ),
        ]
    };
    let now = agora_shared::db::now();
    let one_by_one = events();
    state
        .db
        .write(move |conn| {
            one_by_one
                .iter()
                .try_for_each(|e| ingest::handle_as_of(conn, e, now))
        })
        .await
        .unwrap();
    let expected = (
        "completed".to_owned(),
        "2026-11-01 10:00:00".to_owned(),
        Some("2026-11-04 09:00:00".to_owned()),
    );
    assert_eq!(claim_row(&state.db).await, expected);
    // The same events again, set-based: nothing moves.
    let batch = events();
    state
        .db
        .write(move |conn| ingest::handle_batch_as_of(conn, &batch, now))
        .await
        .unwrap();
    assert_eq!(claim_row(&state.db).await, expected);
    // Another tenant's event about the same id is refused and changes nothing.
    let foreign = claim_event(
        "someone-else",
        "status_changed",
        9,
        "rejected",
        "2026-11-09T09:00:00.000000Z",
    );
    let refused = state
        .db
        .write(move |conn| ingest::handle_as_of(conn, &foreign, now))
        .await;
    assert!(refused.is_err());
    assert_eq!(claim_row(&state.db).await, expected);
}
