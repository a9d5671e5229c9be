//! The platform test kit with auth, inventory-sync and the gateway, plus what only this
//! suite needs.

use std::{ops::Deref, sync::Arc};

use reqwest::Method;
use serde_json::{Value, json};

use agora_inventory_sync::InventoryState;
use agora_shared::{
    bus::Event,
    testing::{Call, Store},
};

pub use agora_testkit::Session;

pub struct Platform {
    kit: agora_testkit::Platform,
    pub state: Arc<InventoryState>,
    pub grpc: String,
}

impl Deref for Platform {
    type Target = agora_testkit::Platform;
    fn deref(&self) -> &Self::Target {
        &self.kit
    }
}

/// A key-encryption key for tests (never a file under the working directory).
pub const KEK: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub async fn platform(store: Store) -> Platform {
    platform_with(store, "").await
}

/// The platform with more `[inventory_sync]` settings (tables after keys).
pub async fn platform_with(store: Store, settings: &str) -> Platform {
    let settings = format!("scan_interval_secs = 3600\nkey_encryption_key = \"{KEK}\"\n{settings}");
    let mut kit = agora_testkit::Platform::builder(store)
        .service("inventory_sync", &settings)
        .start()
        .await;
    let started = agora_inventory_sync::start(&kit.context(), kit.shutdown.child_token())
        .await
        .expect("inventory-sync starts");
    let grpc = format!("http://{}", started.service.grpc_addr.expect("grpc"));
    let state = started.state.clone();
    kit.serve(started.service);
    kit.gateway().await;
    Platform { kit, state, grpc }
}

impl Platform {
    /// Every event of `event_type` on the service's topic so far.
    pub async fn events_of(&self, event_type: &str) -> Vec<Event> {
        self.kit
            .events_of(&self.state.db, "agora.inventory-sync.events", event_type)
            .await
    }

    /// Creates an item; answers its JSON.
    pub async fn item(&self, who: &Session, body: Value) -> Value {
        let resp = self
            .authed(Method::POST, "/api/v1/inventory/items", who)
            .json(&body)
            .call()
            .await;
        assert_eq!(resp.status(), 201, "create item {body}");
        resp.json().await.unwrap()
    }

    /// Records `source`'s counts [(sku, quantity)]; answers the snapshot report.
    pub async fn counts(&self, who: &Session, source: &str, counts: &[(&str, i64)]) -> Value {
        let counts: Vec<Value> = counts
            .iter()
            .map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity}))
            .collect();
        let resp = self
            .authed(Method::POST, "/api/v1/inventory/snapshots", who)
            .json(&json!({"source": source, "counts": counts}))
            .call()
            .await;
        assert_eq!(resp.status(), 201, "snapshot");
        resp.json().await.unwrap()
    }

    /// The tenant's discrepancies of `sku`, newest first.
    pub async fn discrepancies(&self, who: &Session, sku: &str) -> Vec<Value> {
        let page = self
            .authed(
                Method::GET,
                &format!("/api/v1/inventory/discrepancies?sku={sku}"),
                who,
            )
            .value()
            .await;
        page["items"].as_array().expect("items").clone()
    }

    pub async fn get(&self, who: &Session, path: &str) -> reqwest::Response {
        self.authed(Method::GET, path, who).call().await
    }
}
