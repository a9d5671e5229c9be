//! The platform with auth, ai and the gateway, and helpers to fill knowledge bases.

use std::{ops::Deref, time::Duration};

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::{Call, Store};

pub use agora_testkit::Session;

pub struct Platform {
    kit: agora_testkit::Platform,
    /// The ai service's gRPC address.
    pub grpc: String,
}

impl Deref for Platform {
    type Target = agora_testkit::Platform;
    fn deref(&self) -> &Self::Target {
        &self.kit
    }
}

/// Starts auth, tickets, ai with `settings` (lines of `[ai]`) and the gateway.
pub async fn platform(store: Store, settings: &str) -> Platform {
    start(store, settings, false).await
}

/// The same with analytics too (its store is the fourth).
pub async fn with_analytics(store: Store) -> Platform {
    start(store, "", true).await
}

async fn start(store: Store, settings: &str, analytics: bool) -> Platform {
    let mut builder = agora_testkit::Platform::builder(store)
        .service("tickets", "")
        .service("ai", settings);
    if analytics {
        builder = builder.service("analytics", "metrics_scrape_secs = 60");
    }
    let mut kit = builder.start().await;
    let tickets = agora_tickets::start(&kit.context(), kit.shutdown.clone())
        .await
        .expect("tickets starts");
    kit.serve(tickets.service);
    if analytics {
        let started = agora_analytics::start(&kit.context(), kit.shutdown.clone(), None)
            .await
            .expect("analytics starts");
        kit.serve(started.service);
    }
    let started = agora_ai::start(&kit.context(), kit.shutdown.clone())
        .await
        .expect("ai starts");
    let grpc = format!(
        "http://{}",
        started.service.grpc_addr.expect("ai serves gRPC")
    );
    kit.serve(started.service);
    kit.gateway().await;
    Platform { kit, grpc }
}

impl Platform {
    /// A collection of `who`'s tenant; returns its id.
    pub async fn collection(&self, who: &Session, name: &str) -> String {
        let resp = self
            .authed(Method::POST, "/api/v1/ai/collections", who)
            .json(&json!({"name": name}))
            .call()
            .await;
        assert_eq!(resp.status(), 201, "create collection");
        let body: Value = resp.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    /// Adds a text document (processed in the request); returns its JSON.
    pub async fn text(&self, who: &Session, collection: &str, title: &str, text: &str) -> Value {
        let resp = self
            .authed(
                Method::POST,
                &format!("/api/v1/ai/collections/{collection}/documents"),
                who,
            )
            .json(&json!({"title": title, "text": text}))
            .call()
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["status"], "COMPLETED", "{body}");
        body
    }

    /// Uploads a file; returns the status and the document's JSON.
    pub async fn upload(
        &self,
        who: &Session,
        collection: &str,
        name: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> (u16, Value) {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_owned())
            .mime_str(mime)
            .unwrap();
        let form = reqwest::multipart::Form::new().part("file", part);
        let resp = self
            .authed(
                Method::POST,
                &format!("/api/v1/ai/collections/{collection}/documents"),
                who,
            )
            .multipart(form)
            .call()
            .await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The document once it is no longer PROCESSING (within 30 s).
    pub async fn processed(&self, who: &Session, collection: &str, id: &str) -> Value {
        let path = format!("/api/v1/ai/collections/{collection}/documents/{id}");
        agora_testkit::eventually(
            Duration::from_secs(30),
            "the document is processed",
            || async {
                let body = self.authed(Method::GET, &path, who).value().await;
                match body["status"] == "PROCESSING" {
                    true => Err(body.to_string()),
                    false => Ok(body),
                }
            },
        )
        .await
    }

    /// A search; returns the items.
    pub async fn search(
        &self,
        who: &Session,
        collections: &[&str],
        query: &str,
        mode: &str,
    ) -> Vec<Value> {
        let body =
            json!({"collection_ids": collections, "query": query, "mode": mode, "limit": 10});
        let resp = self
            .authed(Method::POST, "/api/v1/ai/search", who)
            .json(&body)
            .call()
            .await;
        assert_eq!(resp.status(), 200, "search");
        let out: Value = resp.json().await.unwrap();
        out["items"].as_array().unwrap().clone()
    }

    /// POSTs `body` to `path` as `who`; returns the status and JSON body.
    pub async fn post_as(&self, who: &Session, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .authed(Method::POST, path, who)
            .json(&body)
            .call()
            .await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// Runs each `async fn name(store: Store)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name(agora_shared::testing::TestDb::sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    if std::env::var("AGORA_TEST_DATABASE_URL").is_err() {
                        agora_shared::testing::skip_or_fail("postgres", "AGORA_TEST_DATABASE_URL is not set");
                        return;
                    }
                    super::$name(|| agora_shared::testing::TestDb::postgres().expect("postgres")).await
                }
            )*
        }
    };
}
