//! Tenant isolation on every route (another tenant's item, discrepancy, claim or snapshot is a
//! 404, by id and by SKU; lists never mix tenants), permissions (reading is for everyone in
//! the tenant, changing needs TENANT_ADMIN or `inventory:manage`), and the same rules on gRPC.

use reqwest::Method;
use serde_json::{Value, json};
use tonic::{Code, Request, metadata::MetadataValue};

use agora_proto::inventory::v1::{
    GetItemRequest, ListDiscrepanciesRequest, inventory_service_client::InventoryServiceClient,
};
use agora_shared::testing::{Call, Store, problem};

use crate::support::{Session, platform};

agora_shared::on_sqlite_and_postgres!(isolation_on_every_route, permissions, grpc_reads);

async fn isolation_on_every_route(store: Store) {
    let p = platform(store).await;
    let a = p.tenant("Acme").await;
    let b = p.tenant("Beta").await;
    let item = p
        .item(
            &a,
            json!({"sku": "A-1", "name": "Anvil", "on_hand": 90, "unit_price": 5000}),
        )
        .await;
    let snap = p.counts(&a, "warehouse", &[("A-1", 40)]).await;
    let d = p.discrepancies(&a, "A-1").await[0].clone();
    let claim = p
        .authed(Method::POST, "/api/v1/inventory/claims", &a)
        .json(&json!({"discrepancy_id": d["id"], "claim_type": "reimbursement", "provider": "amazon"}))
        .value()
        .await;
    let id = item["id"].as_str().unwrap();
    let (d_id, c_id) = (d["id"].as_str().unwrap(), claim["id"].as_str().unwrap());
    let s_id = snap["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/inventory/items/{id}"),
        "/api/v1/inventory/items/A-1".into(),
        format!("/api/v1/inventory/items/{id}/changes"),
        format!("/api/v1/inventory/items/{id}/discrepancies"),
        format!("/api/v1/inventory/discrepancies/{d_id}"),
        format!("/api/v1/inventory/claims/{c_id}"),
        format!("/api/v1/inventory/snapshots/{s_id}"),
    ] {
        problem(p.get(&b, &path).await, 404).await;
    }
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/api/v1/inventory/items/{id}"),
            json!({"on_hand": 1}),
        ),
        (
            Method::DELETE,
            format!("/api/v1/inventory/items/{id}"),
            Value::Null,
        ),
        (
            Method::PATCH,
            format!("/api/v1/inventory/discrepancies/{d_id}"),
            json!({"status": "resolved"}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/inventory/claims/{c_id}"),
            json!({"status": "processing"}),
        ),
        (
            Method::POST,
            format!("/api/v1/inventory/claims/{c_id}/submit"),
            Value::Null,
        ),
    ] {
        let mut req = p.authed(method, &path, &b);
        if !body.is_null() {
            req = req.json(&body);
        }
        problem(req.call().await, 404).await;
    }
    let resp = p
        .authed(Method::POST, "/api/v1/inventory/claims", &b)
        .json(&json!({"discrepancy_id": d_id, "claim_type": "refund", "provider": "manual"}))
        .call()
        .await;
    problem(resp, 404).await;
    for list in [
        "/api/v1/inventory/items",
        "/api/v1/inventory/discrepancies",
        "/api/v1/inventory/claims",
    ] {
        let page: Value = p.get(&b, list).await.json().await.unwrap();
        assert!(page["items"].as_array().unwrap().is_empty(), "{list}");
    }
    // Beta's own SKU A-1 is its own item, and Beta's reconcile never touches Acme's.
    let report = p
        .authed(Method::POST, "/api/v1/inventory/reconcile", &b)
        .json(&json!([{"sku": "A-1", "source_value": 3, "target_value": 0}]))
        .value()
        .await;
    assert_eq!(report["results"][0]["outcome"], "created");
    let scan = p
        .authed(Method::POST, "/api/v1/inventory/scan", &b)
        .value()
        .await;
    assert_eq!(scan["compared"], 0);
    // Acme's item, discrepancy and claim are as they were.
    let mine: Value = p
        .get(&a, &format!("/api/v1/inventory/items/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["on_hand"], 90);
    let d_now: Value = p
        .get(&a, &format!("/api/v1/inventory/discrepancies/{d_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d_now["status"], "open");
    let c_now: Value = p
        .get(&a, &format!("/api/v1/inventory/claims/{c_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c_now["status"], "pending");
}

async fn permissions(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    let clerk = p.member(&admin, "clerk@acme.test", &[]).await;
    let keeper = p
        .member(&admin, "keeper@acme.test", &["inventory:manage"])
        .await;
    p.item(
        &admin,
        json!({"sku": "A-1", "name": "Anvil", "on_hand": 10}),
    )
    .await;
    // Everyone reads.
    assert_eq!(
        p.get(&clerk, "/api/v1/inventory/items/A-1").await.status(),
        200
    );
    assert_eq!(p.get(&clerk, "/api/v1/inventory/rules").await.status(), 200);
    // Changing needs the permission.
    let writes = [
        (
            Method::POST,
            "/api/v1/inventory/items",
            json!({"sku": "B", "name": "B"}),
        ),
        (
            Method::PATCH,
            "/api/v1/inventory/items/A-1",
            json!({"on_hand": 3}),
        ),
        (
            Method::POST,
            "/api/v1/inventory/snapshots",
            json!({"source": "manual", "counts": [{"sku": "A-1", "quantity": 1}]}),
        ),
        (
            Method::POST,
            "/api/v1/inventory/reconcile",
            json!([{"sku": "A-1", "source_value": 1, "target_value": 10}]),
        ),
        (
            Method::PUT,
            "/api/v1/inventory/rules",
            json!({"auto_resolve_low": true}),
        ),
        (Method::POST, "/api/v1/inventory/scan", Value::Null),
    ];
    for (method, path, body) in &writes {
        let mut req = p.authed(method.clone(), path, &clerk);
        if !body.is_null() {
            req = req.json(body);
        }
        problem(req.call().await, 403).await;
    }
    let csv = p
        .authed(Method::POST, "/api/v1/inventory/items/import", &clerk)
        .header("content-type", "text/csv")
        .body("sku\nX\n")
        .call()
        .await;
    problem(csv, 403).await;
    let item: Value = p
        .get(&admin, "/api/v1/inventory/items/A-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(item["on_hand"], 10, "nothing the clerk sent changed it");
    for (method, path, body) in writes {
        let mut req = p.authed(method, path, &keeper);
        if !body.is_null() {
            req = req.json(&body);
        }
        let status = req.call().await.status().as_u16();
        assert!((200..300).contains(&status), "{path}: {status}");
    }
}

fn authed<T>(message: T, who: &Session) -> Request<T> {
    let mut req = Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {}", who.access)).unwrap();
    req.metadata_mut().insert("authorization", value);
    req
}

async fn grpc_reads(store: Store) {
    let p = platform(store).await;
    let a = p.tenant("Acme").await;
    let b = p.tenant("Beta").await;
    let item = p
        .item(
            &a,
            json!({"sku": "A-1", "name": "Anvil", "on_hand": 90, "unit_price": 5000}),
        )
        .await;
    p.counts(&a, "warehouse", &[("A-1", 40)]).await;
    let mut client = InventoryServiceClient::connect(p.grpc.clone())
        .await
        .unwrap();
    let got = client
        .get_item(authed(
            GetItemRequest {
                tenant_id: String::new(),
                id: "A-1".into(),
            },
            &a,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.id.as_str(), got.on_hand, got.unit_price),
        (item["id"].as_str().unwrap(), 90, 5000)
    );
    let list = client
        .list_discrepancies(authed(
            ListDiscrepanciesRequest {
                status: "open".into(),
                ..Default::default()
            },
            &a,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.discrepancies.len(), 1);
    assert_eq!(list.discrepancies[0].difference, -50);
    assert_eq!(list.discrepancies[0].severity, "high");
    // Beta: Acme's item is not found; naming Acme's tenant is refused.
    let err = client
        .get_item(authed(
            GetItemRequest {
                tenant_id: String::new(),
                id: got.id.clone(),
            },
            &b,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .list_discrepancies(authed(
            ListDiscrepanciesRequest {
                tenant_id: a.tenant_id.clone(),
                ..Default::default()
            },
            &b,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client
        .list_discrepancies(authed(
            ListDiscrepanciesRequest {
                status: "lost".into(),
                ..Default::default()
            },
            &a,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .get_item(Request::new(GetItemRequest {
            tenant_id: String::new(),
            id: "A-1".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}
