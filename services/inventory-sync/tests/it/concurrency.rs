//! The same request sent many times at once: one live discrepancy per item and source, one
//! claim per discrepancy, one move of a claim however often it is asked for, and reconciliations that never lose a
//! count.

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::{Call, Store};

use crate::support::platform;

agora_shared::on_sqlite_and_postgres!(races, new_skus_and_crossed_orders);

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
            req.json(&json!({"source": "warehouse", "counts": [{"sku": "A", "quantity": 50 + i}]}))
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

/// Snapshots naming the same new SKU at once all succeed and make one item; snapshots naming
/// the same SKUs in opposite orders never deadlock into a 5xx; concurrent additions of
/// evidence to a claim are each kept or refused, never lost.
async fn new_skus_and_crossed_orders(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    let snaps = (0..20).map(|i| {
        let req = p.authed(Method::POST, "/api/v1/inventory/snapshots", &admin);
        let counts = if i % 2 == 0 {
            json!([{"sku": "NEW-1", "quantity": 5}, {"sku": "X", "quantity": 1}, {"sku": "Y", "quantity": 2}])
        } else {
            json!([{"sku": "Y", "quantity": 3}, {"sku": "X", "quantity": 4}, {"sku": "NEW-1", "quantity": 5}])
        };
        async move {
            req.json(&json!({"source": "warehouse", "counts": counts}))
                .call()
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(snaps).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let items = p
        .get(&admin, "/api/v1/inventory/items?sku=NEW-1")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(items["items"].as_array().unwrap().len(), 1);

    p.item(
        &admin,
        json!({"sku": "C", "name": "C", "on_hand": 100, "unit_price": 10}),
    )
    .await;
    p.counts(&admin, "warehouse", &[("C", 40)]).await;
    let d = p.discrepancies(&admin, "C").await[0]["id"].clone();
    let claim = p
        .authed(Method::POST, "/api/v1/inventory/claims", &admin)
        .json(&json!({"discrepancy_id": d, "claim_type": "adjustment", "provider": "manual"}))
        .value()
        .await;
    let path = format!("/api/v1/inventory/claims/{}", claim["id"].as_str().unwrap());
    let adds = (0..20).map(|i| {
        let req = p.authed(Method::PATCH, &path, &admin);
        async move {
            let evidence = json!([{"kind": "note", "reference": format!("n{i}")}]);
            req.json(&json!({"status": "pending", "evidence": evidence}))
                .call()
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(adds).await;
    assert!(
        statuses.iter().all(|s| [200, 409].contains(s)),
        "{statuses:?}"
    );
    let kept = statuses.iter().filter(|s| **s == 200).count();
    let claim = p.get(&admin, &path).await.json::<Value>().await.unwrap();
    assert_eq!(
        claim["evidence"].as_array().unwrap().len(),
        2 + kept,
        "{statuses:?}"
    );
}
