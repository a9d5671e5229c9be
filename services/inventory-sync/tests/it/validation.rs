//! Bad input is a 4xx problem naming what is wrong, and changes nothing: CSV files refused
//! whole with every problem by line, snapshots and reconciliations checked field by field,
//! filters checked.

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::{Call, Store, problem};

use crate::support::platform;

agora_shared::on_sqlite_and_postgres!(bad_csv_changes_nothing, bad_bodies_and_filters);

async fn bad_csv_changes_nothing(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    p.item(&admin, json!({"sku": "KEEP", "name": "Keep", "on_hand": 5}))
        .await;
    let import = |body: &'static [u8], content_type: &'static str| {
        p.authed(Method::POST, "/api/v1/inventory/items/import", &admin)
            .header("content-type", content_type)
            .body(body)
            .call()
    };
    // A good row and a bad one: the file is refused and the good row is not written.
    let resp = import(b"sku,on_hand\nKEEP,9\nNEW,lots\nNEW2,-4\n", "text/csv").await;
    let found = problem(resp, 422).await;
    let fields: Vec<&str> = found["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["line 3: on_hand", "line 4: on_hand"], "{found}");
    let keep: Value = p
        .get(&admin, "/api/v1/inventory/items/KEEP")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keep["on_hand"], 5);
    assert_eq!(
        p.get(&admin, "/api/v1/inventory/items/NEW").await.status(),
        404
    );
    problem(import(b"sku\nA\n", "application/json").await, 400).await;
    problem(import(b"sku,name\n\xff\xfe,x\n", "text/csv").await, 400).await;
    let huge = "sku\n".to_owned() + &"X\n".repeat(3 * 1024 * 1024);
    let resp = p
        .authed(Method::POST, "/api/v1/inventory/items/import", &admin)
        .header("content-type", "text/csv")
        .body(huge)
        .call()
        .await;
    assert_eq!(resp.status(), 413);
    // An import larger than the gateway's default body limit (1 MiB) goes through.
    let mut big = String::from("sku,name,on_hand\n");
    for i in 0..20_000 {
        big.push_str(&format!(
            "BULK-{i:05},A product with a long enough name {i:05},{i}\n"
        ));
    }
    assert!(big.len() > 1024 * 1024);
    let resp = p
        .authed(Method::POST, "/api/v1/inventory/items/import", &admin)
        .header("content-type", "text/csv")
        .body(big)
        .call()
        .await;
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["created"], 20_000);
    // A re-import of the same values changes nothing and says so.
    let same = import(b"sku,on_hand\nKEEP,5\n", "text/csv").await;
    let same: Value = same.json().await.unwrap();
    assert_eq!(same, json!({"created": 0, "updated": 0, "unchanged": 1}));
}

async fn bad_bodies_and_filters(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    p.item(&admin, json!({"sku": "A", "name": "A", "on_hand": 5}))
        .await;
    let post =
        |path: &'static str, body: Value| p.authed(Method::POST, path, &admin).json(&body).call();
    let bad = [
        ("/api/v1/inventory/items", json!({"name": "no sku"}), "sku"),
        (
            "/api/v1/inventory/items",
            json!({"sku": " padded", "name": "x"}),
            "sku",
        ),
        (
            "/api/v1/inventory/items",
            json!({"sku": "B", "name": "x", "currency": "usd"}),
            "currency",
        ),
        (
            "/api/v1/inventory/items",
            json!({"sku": "B", "name": "x", "on_hand": -1}),
            "on_hand",
        ),
        (
            "/api/v1/inventory/snapshots",
            json!({"source": "Amazon", "counts": [{"sku": "A", "quantity": 1}]}),
            "source",
        ),
        (
            "/api/v1/inventory/snapshots",
            json!({"source": "amazon", "counts": [{"sku": "A", "quantity": 1}]}),
            "source",
        ),
        (
            "/api/v1/inventory/snapshots",
            json!({"source": "warehouse", "counts": []}),
            "counts",
        ),
        (
            "/api/v1/inventory/items",
            json!({"sku": "B", "name": "nul\u{0}name"}),
            "name",
        ),
        (
            "/api/v1/inventory/snapshots",
            json!({"source": "warehouse", "counts": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}]}),
            "counts[1].sku",
        ),
        ("/api/v1/inventory/reconcile", json!([]), "items"),
        (
            "/api/v1/inventory/reconcile",
            json!([{"sku": "A", "source_value": -3, "target_value": 5}]),
            "items",
        ),
        (
            "/api/v1/inventory/claims",
            json!({"discrepancy_id": "x", "claim_type": "bribe", "provider": "manual"}),
            "claim_type",
        ),
    ];
    for (path, body, field) in bad {
        let found = problem(post(path, body.clone()).await, 422).await;
        let fields: Vec<&str> = found["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{path} {body}: {found}"
        );
    }
    let item: Value = p
        .get(&admin, "/api/v1/inventory/items/A")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(item["on_hand"], 5);
    for query in [
        // base64url of a NUL: no cursor this API hands out.
        "/api/v1/inventory/items?cursor=AA",
        "/api/v1/inventory/discrepancies?status=lost",
        "/api/v1/inventory/discrepancies?severity=huge",
        "/api/v1/inventory/claims?status=paid",
        "/api/v1/inventory/items?needs_reorder=maybe",
        "/api/v1/inventory/items?limit=0",
    ] {
        problem(p.get(&admin, query).await, 422).await;
    }
    problem(p.get(&admin, "/api/v1/inventory/claims/nope").await, 404).await;
}
