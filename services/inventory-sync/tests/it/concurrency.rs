//! The same request sent many times at once: one live discrepancy per item and source, one
//! claim per discrepancy, one move of a claim however often it is asked for, and reconciliations that never lose a
//! count.

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::{Call, Store};

use crate::support::platform;

agora_shared::on_sqlite_and_postgres!(races);

async fn races(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    p.item(
        &admin,
        json!({"sku": "A", "name": "A", "on_hand": 100, "unit_price": 100}),
    )
    .await;

    // 20 snapshots of the same source at once: one live discrepancy, moved by the others.
    let snaps = (0..20).map(|i| {
        let req = p.authed(Method::POST, "/api/v1/inventory/snapshots", &admin);
        async move {
            req.json(&json!({"source": "amazon", "counts": [{"sku": "A", "quantity": 50 + i}]}))
                .call()
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(snaps).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let found = p.discrepancies(&admin, "A").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let d_id = found[0]["id"].as_str().unwrap().to_owned();

    // 20 claims on it at once: one is made.
    let claims = (0..20).map(|_| {
        let req = p.authed(Method::POST, "/api/v1/inventory/claims", &admin);
        let body =
            json!({"discrepancy_id": d_id, "claim_type": "reimbursement", "provider": "amazon"});
        async move { req.json(&body).call().await.status().as_u16() }
    });
    let statuses = futures::future::join_all(claims).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [201, 409].contains(s)),
        "{statuses:?}"
    );
    let claim = p
        .get(&admin, "/api/v1/inventory/claims")
        .await
        .json::<Value>()
        .await
        .unwrap();
    let claim_path = format!(
        "/api/v1/inventory/claims/{}",
        claim["items"][0]["id"].as_str().unwrap()
    );

    // 20 moves pending -> processing at once: one moves it (one event); the others find it
    // there already, which is what they asked for.
    let moves = (0..20).map(|_| {
        let req = p.authed(Method::PATCH, &claim_path, &admin);
        async move {
            req.json(&json!({"status": "processing"}))
                .call()
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(moves).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        p.events_of("agora.inventory.claim.status_changed")
            .await
            .len(),
        1
    );

    // 20 reconciliations of the same line at once: exactly one applies it.
    let lines = (0..20).map(|_| {
        let req = p.authed(Method::POST, "/api/v1/inventory/reconcile", &admin);
        async move {
            req.json(&json!([{"sku": "A", "source_value": 60, "target_value": 100}]))
                .call()
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    let reports = futures::future::join_all(lines).await;
    let outcomes: Vec<&str> = reports
        .iter()
        .map(|r| r["results"][0]["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "reconciled").count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .all(|o| ["reconciled", "unchanged", "failed"].contains(o)),
        "{outcomes:?}"
    );
    let changes = p
        .get(&admin, "/api/v1/inventory/items/A/changes")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        changes["items"].as_array().unwrap().len(),
        2,
        "create and one reconcile"
    );
}
