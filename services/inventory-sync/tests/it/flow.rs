//! The commerce flow end to end: items imported from CSV, Amazon's counts recorded, the
//! discrepancies they reveal, reconciliation, a claim taken through its statuses, and the
//! events each step publishes.

use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};

use agora_proto::events::v1 as ev;
use agora_shared::testing::{Call, Store, problem};

use crate::support::platform;

agora_shared::on_sqlite_and_postgres!(
    import_count_reconcile_claim,
    auto_resolve_rule_takes_the_source_count,
    agreeing_counts_settle_a_live_discrepancy,
    items_crud_and_history,
);

async fn import_count_reconcile_claim(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;

    // Three items from a CSV file (unit prices in cents).
    let csv = "sku,name,on_hand,fulfillable,unit_price,currency,reorder_point\n\
               MUG-1,Mug,100,90,1250,USD,20\n\
               CUP-2,Cup,40,40,300,USD,\n\
               JAR-3,Jar,500,480,2000,USD,\n";
    let resp = p
        .authed(Method::POST, "/api/v1/inventory/items/import", &admin)
        .header("content-type", "text/csv")
        .body(csv)
        .call()
        .await;
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report, json!({"created": 3, "updated": 0, "unchanged": 0}));
    let mug = p.get(&admin, "/api/v1/inventory/items/MUG-1").await;
    let mug: Value = mug.json().await.unwrap();
    assert_eq!(mug["on_hand"], 100);
    assert_eq!(mug["reorder_point"], 20);
    assert_eq!(mug["reorder_quantity"], 50, "the default");
    assert_eq!(mug["needs_reorder"], false);

    // Amazon counts: the mug 88 (12 missing: medium), the cup 41 (ignored), the jar 350 (150
    // missing: critical), and a SKU we never had.
    let snap = p
        .counts(
            &admin,
            "warehouse",
            &[("MUG-1", 88), ("CUP-2", 41), ("JAR-3", 350), ("NEW-9", 7)],
        )
        .await;
    assert_eq!(snap["created_items"], json!(["NEW-9"]));
    assert_eq!(snap["scan"]["compared"], 4);
    assert_eq!(snap["scan"]["detected"], 2);
    let new: Value = p
        .get(&admin, "/api/v1/inventory/items/NEW-9")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            &new["on_hand"],
            &new["reorder_point"],
            &new["reorder_quantity"]
        ),
        (&json!(7), &json!(10), &json!(50))
    );
    let snapshot: Value = p
        .get(
            &admin,
            &format!(
                "/api/v1/inventory/snapshots/{}",
                snap["id"].as_str().unwrap()
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&snapshot["source"], &snapshot["item_count"]),
        (&json!("warehouse"), &json!(4))
    );

    let mug_d = &p.discrepancies(&admin, "MUG-1").await[0];
    assert_eq!(mug_d["difference"], -12);
    assert_eq!(mug_d["severity"], "medium");
    assert_eq!(mug_d["suggested_action"], "investigate");
    assert_eq!(mug_d["confidence"], 0.8);
    // 3 + 12/20 + min(3, 12.50 x 12 / 1000)
    assert!((mug_d["impact"].as_f64().unwrap() - (3.0 + 0.6 + 0.15)).abs() < 1e-9);
    assert_eq!(mug_d["value_at_stake"], 15000);
    assert_eq!(mug_d["status"], "open");
    let jar_d = &p.discrepancies(&admin, "JAR-3").await[0];
    assert_eq!(jar_d["severity"], "critical");
    assert_eq!(jar_d["suggested_action"], "escalate");
    assert!((jar_d["confidence"].as_f64().unwrap() - 0.8 * 0.9).abs() < 1e-9);
    assert_eq!(jar_d["impact"], 10.0);
    assert!(
        p.discrepancies(&admin, "CUP-2").await.is_empty(),
        "1 unit is ignored"
    );
    let detected = p.events_of("agora.inventory.discrepancy.detected").await;
    assert_eq!(detected.len(), 2);
    let first = ev::DiscrepancyDetected::decode(detected[0].data.as_slice()).unwrap();
    assert_eq!(first.discrepancy.unwrap().tenant_id, admin.tenant_id);

    // Someone looks into the jar; the mug is reconciled to Amazon's count; a stale line fails.
    let jar_id = jar_d["id"].as_str().unwrap();
    let moved = p
        .authed(
            Method::PATCH,
            &format!("/api/v1/inventory/discrepancies/{jar_id}"),
            &admin,
        )
        .json(&json!({"status": "investigating", "note": "counting the shelf"}))
        .value()
        .await;
    assert_eq!(moved["status"], "investigating");
    let report = p
        .authed(Method::POST, "/api/v1/inventory/reconcile", &admin)
        .json(&json!([
            {"sku": "MUG-1", "source_value": 88, "target_value": 100},
            {"sku": "JAR-3", "source_value": 350, "target_value": 480},
            {"sku": "LID-4", "source_value": 12, "target_value": 0},
        ]))
        .value()
        .await;
    assert_eq!(report["reconciled"], json!(["MUG-1", "LID-4"]));
    assert_eq!(report["failed"], json!(["JAR-3"]));
    assert_eq!(report["results"][0]["outcome"], "reconciled");
    assert_eq!(
        (&report["results"][0]["from"], &report["results"][0]["to"]),
        (&json!(100), &json!(88))
    );
    assert_eq!(report["results"][1]["outcome"], "failed");
    assert!(
        report["results"][1]["error"]
            .as_str()
            .unwrap()
            .contains("on hand is 500")
    );
    assert_eq!(report["results"][2]["outcome"], "created");
    let mug_after = &p.discrepancies(&admin, "MUG-1").await[0];
    assert_eq!(mug_after["status"], "resolved", "reconciling settles it");
    let changes = p
        .get(&admin, "/api/v1/inventory/items/MUG-1/changes")
        .await
        .json::<Value>()
        .await
        .unwrap();
    let reasons: Vec<&str> = changes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["import", "reconcile"]);
    assert_eq!(changes["items"][1]["actor_id"], json!(admin.user_id));
    let reconciled = p.events_of("agora.inventory.item.quantity_changed").await;
    let last = ev::ItemQuantityChanged::decode(reconciled.last().unwrap().data.as_slice()).unwrap();
    assert_eq!(
        (last.from_quantity, last.to_quantity),
        (0, 12),
        "LID-4 created at 12"
    );

    // A claim on the jar: its evidence, then pending -> processing -> approved -> completed.
    let resp = p
        .authed(Method::POST, "/api/v1/inventory/claims", &admin)
        .json(&json!({"discrepancy_id": jar_id, "claim_type": "reimbursement", "provider": "amazon",
            "evidence": [{"kind": "note", "reference": "shelf count", "description": "150 short"}]}))
        .call()
        .await;
    assert_eq!(resp.status(), 201);
    let claim: Value = resp.json().await.unwrap();
    assert_eq!(claim["status"], "pending");
    assert_eq!(claim["amount"], 150 * 2000);
    assert_eq!(claim["currency"], "USD");
    let kinds: Vec<&str> = claim["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["discrepancy", "snapshot", "note"]);
    let claim_path = format!("/api/v1/inventory/claims/{}", claim["id"].as_str().unwrap());
    let skip = p
        .authed(Method::PATCH, &claim_path, &admin)
        .json(&json!({"status": "approved"}))
        .call()
        .await;
    let skip = problem(skip, 409).await;
    assert_eq!(skip["code"], "inventory.claim_transition");
    for status in ["processing", "approved", "completed"] {
        let moved = p
            .authed(Method::PATCH, &claim_path, &admin)
            .json(&json!({"status": status, "external_reference": "CASE-123"}))
            .value()
            .await;
        assert_eq!(moved["status"], status);
    }
    let again = p
        .authed(Method::POST, "/api/v1/inventory/claims", &admin)
        .json(
            &json!({"discrepancy_id": jar_id, "claim_type": "reimbursement", "provider": "amazon"}),
        )
        .call()
        .await;
    assert_eq!(
        problem(again, 409).await["code"],
        "inventory.duplicate_claim"
    );
    let moves = p.events_of("agora.inventory.claim.status_changed").await;
    let moves: Vec<String> = moves
        .iter()
        .map(|e| {
            ev::ClaimStatusChanged::decode(e.data.as_slice())
                .unwrap()
                .to_status
        })
        .collect();
    assert_eq!(moves, ["processing", "approved", "completed"]);
    let listed = p
        .get(&admin, "/api/v1/inventory/claims?status=completed")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

async fn auto_resolve_rule_takes_the_source_count(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    p.item(&admin, json!({"sku": "A", "name": "A", "on_hand": 50}))
        .await;
    p.item(&admin, json!({"sku": "B", "name": "B", "on_hand": 50}))
        .await;
    let rules = p
        .authed(Method::PUT, "/api/v1/inventory/rules", &admin)
        .json(&json!({"auto_resolve_low": true}))
        .value()
        .await;
    assert_eq!(rules["auto_resolve_low"], true);
    let snap = p.counts(&admin, "warehouse", &[("A", 46), ("B", 40)]).await;
    assert_eq!(snap["scan"]["auto_resolved"], 1);
    let a = &p.discrepancies(&admin, "A").await[0];
    assert_eq!(
        (&a["status"], &a["suggested_action"]),
        (&json!("auto_resolved"), &json!("auto_resolve"))
    );
    assert!(a["resolved_at"].is_string());
    let item: Value = p
        .get(&admin, "/api/v1/inventory/items/A")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(item["on_hand"], 46, "the source's count was taken");
    let b = &p.discrepancies(&admin, "B").await[0];
    assert_eq!(
        (&b["status"], &b["severity"]),
        (&json!("open"), &json!("medium"))
    );
    let resolved = p.events_of("agora.inventory.discrepancy.resolved").await;
    let how = ev::DiscrepancyResolved::decode(resolved[0].data.as_slice())
        .unwrap()
        .how;
    assert_eq!(how, "auto_resolve");
    // Two sources that disagree never take turns setting the quantity: a low difference is
    // taken from one only when no other source's count disagrees with it.
    p.item(&admin, json!({"sku": "T", "name": "T", "on_hand": 10}))
        .await;
    p.counts(&admin, "warehouse", &[("T", 10)]).await;
    let snap = p.counts(&admin, "shopify", &[("T", 13)]).await;
    assert_eq!(snap["scan"]["auto_resolved"], 0);
    for _ in 0..2 {
        let scan = p
            .authed(Method::POST, "/api/v1/inventory/scan", &admin)
            .value()
            .await;
        assert_eq!(scan["auto_resolved"], 0, "{scan}");
    }
    let t: Value = p
        .get(&admin, "/api/v1/inventory/items/T")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((&t["on_hand"], &t["version"]), (&json!(10), &json!(1)));
    // An auto-resolved discrepancy is final.
    let path = format!(
        "/api/v1/inventory/discrepancies/{}",
        a["id"].as_str().unwrap()
    );
    let resp = p
        .authed(Method::PATCH, &path, &admin)
        .json(&json!({"status": "investigating"}))
        .call()
        .await;
    assert_eq!(
        problem(resp, 409).await["code"],
        "inventory.discrepancy_transition"
    );
}

async fn agreeing_counts_settle_a_live_discrepancy(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    p.item(
        &admin,
        json!({"sku": "A", "name": "A", "on_hand": 50, "unit_price": 100}),
    )
    .await;
    p.counts(&admin, "manual", &[("A", 30)]).await;
    // A later count moves the same live discrepancy; it does not open a second one.
    let snap = p.counts(&admin, "manual", &[("A", 20)]).await;
    assert_eq!(snap["scan"]["updated"], 1);
    let found = p.discrepancies(&admin, "A").await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        (&found[0]["difference"], &found[0]["severity"]),
        (&json!(-30), &json!("high"))
    );
    assert_eq!(
        found[0]["confidence"], 0.7,
        "manual, no earlier discrepancy"
    );
    // Another source's count is its own discrepancy.
    p.counts(&admin, "warehouse", &[("A", 45)]).await;
    assert_eq!(p.discrepancies(&admin, "A").await.len(), 2);
    // On hand edited to what manual counted: the manual one is settled by the next scan.
    p.authed(Method::PATCH, "/api/v1/inventory/items/A", &admin)
        .json(&json!({"on_hand": 21}))
        .value()
        .await;
    let scan = p
        .authed(Method::POST, "/api/v1/inventory/scan", &admin)
        .value()
        .await;
    assert_eq!(
        (&scan["resolved"], &scan["updated"]),
        (&json!(1), &json!(1))
    );
    let found = p.discrepancies(&admin, "A").await;
    let manual = found.iter().find(|d| d["source"] == "manual").unwrap();
    assert_eq!(manual["status"], "resolved");
    let warehouse = found.iter().find(|d| d["source"] == "warehouse").unwrap();
    assert_eq!(warehouse["difference"], 24, "45 counted, 21 on hand");
    // A third discrepancy of the SKU has history: x0.95.
    p.counts(&admin, "manual", &[("A", 10)]).await;
    let newest = &p.discrepancies(&admin, "A").await[0];
    assert_eq!(newest["source"], "manual");
    assert!((newest["confidence"].as_f64().unwrap() - 0.665).abs() < 1e-9);
    let history = p
        .get(&admin, "/api/v1/inventory/items/A/discrepancies")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(history["items"].as_array().unwrap().len(), 3);
    // Below 0.7: no claim.
    let resp = p
        .authed(Method::POST, "/api/v1/inventory/claims", &admin)
        .json(&json!({"discrepancy_id": newest["id"], "claim_type": "adjustment", "provider": "manual"}))
        .call()
        .await;
    let low = problem(resp, 422).await;
    assert_eq!(low["code"], "inventory.low_confidence");
}

async fn items_crud_and_history(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    let item = p
        .item(
            &admin,
            json!({"sku": "S-1", "name": "Saucer", "asin": "B000TEST01", "unit_price": 499,
                "currency": "EUR", "fulfillable": 5, "reorder_point": 8}),
        )
        .await;
    assert_eq!(item["needs_reorder"], true);
    assert_eq!(item["currency"], "EUR");
    let id = item["id"].as_str().unwrap();
    let dup = p
        .authed(Method::POST, "/api/v1/inventory/items", &admin)
        .json(&json!({"sku": "S-1", "name": "Again"}))
        .call()
        .await;
    assert_eq!(problem(dup, 409).await["code"], "inventory.duplicate_sku");
    let path = format!("/api/v1/inventory/items/{id}");
    let stale = p
        .authed(Method::PATCH, &path, &admin)
        .header("if-match", "\"7\"")
        .json(&json!({"name": "Saucer XL"}))
        .call()
        .await;
    assert_eq!(problem(stale, 412).await["code"], "inventory.stale_version");
    let patched = p
        .authed(Method::PATCH, &path, &admin)
        .header("if-match", "\"1\"")
        .json(&json!({"name": "Saucer XL", "asin": null, "fulfillable": 30}))
        .value()
        .await;
    assert_eq!(
        (&patched["name"], &patched["asin"], &patched["version"]),
        (&json!("Saucer XL"), &Value::Null, &json!(2))
    );
    assert_eq!(patched["needs_reorder"], false);
    p.item(&admin, json!({"sku": "S-2", "name": "Spoon"})).await;
    p.item(&admin, json!({"sku": "T-1", "name": "Tray"})).await;
    let page = p
        .get(&admin, "/api/v1/inventory/items?sku_prefix=S-&limit=1")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["sku"], "S-1");
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = p
        .get(
            &admin,
            &format!("/api/v1/inventory/items?sku_prefix=S-&limit=1&cursor={cursor}"),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(next["items"][0]["sku"], "S-2");
    assert!(next["next_cursor"].is_null());
    let lower = p
        .get(&admin, "/api/v1/inventory/items?sku_prefix=s-")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert!(
        lower["items"].as_array().unwrap().is_empty(),
        "SKUs are case-sensitive"
    );
    let reorder = p
        .get(&admin, "/api/v1/inventory/items?needs_reorder=true")
        .await
        .json::<Value>()
        .await
        .unwrap();
    let skus: Vec<&str> = reorder["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sku"].as_str().unwrap())
        .collect();
    assert_eq!(
        skus,
        ["S-2", "T-1"],
        "0 fulfillable against the default point of 10"
    );
    let resp = p.authed(Method::DELETE, &path, &admin).call().await;
    assert_eq!(resp.status(), 204);
    assert_eq!(p.get(&admin, &path).await.status(), 404);
}
