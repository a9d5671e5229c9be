//! The platform test kit with auth, tickets, analytics (metrics scraped every second) and the
//! gateway on one in-process bus, plus what only analytics' tests need.

use std::{ops::Deref, sync::Arc, time::Duration};

use reqwest::Method;
use serde_json::Value;

use agora_analytics::{AnalyticsState, Credential};
use agora_shared::testing::Store;

pub use agora_testkit::Session;
use agora_testkit::{eventually, ok_json};

pub struct Platform {
    kit: agora_testkit::Platform,
    pub analytics: Arc<AnalyticsState>,
    pub analytics_grpc: String,
    /// The service credential analytics calls tickets with.
    pub credential: Credential,
}

impl Deref for Platform {
    type Target = agora_testkit::Platform;
    fn deref(&self) -> &Self::Target {
        &self.kit
    }
}

/// Starts auth, tickets, analytics and the gateway.
pub async fn platform(store: Store) -> Platform {
    let mut kit = agora_testkit::Platform::builder(store)
        .service("tickets", "")
        .service("analytics", "metrics_scrape_secs = 1")
        .start()
        .await;
    let issuer = agora_auth::admin::service_token_issuer(kit.auth.keyring.clone(), "analytics");
    let credential = Credential::Issued(Arc::new(issuer));
    let tickets = agora_tickets::start(&kit.context(), kit.shutdown.clone())
        .await
        .expect("tickets starts");
    kit.serve(tickets.service);
    let analytics = agora_analytics::start(
        &kit.context(),
        kit.shutdown.clone(),
        Some(credential.clone()),
    )
    .await
    .expect("analytics starts");
    let analytics_grpc = format!("http://{}", analytics.service.grpc_addr.expect("grpc"));
    let state = analytics.state.clone();
    kit.serve(analytics.service);
    kit.gateway().await;
    Platform {
        kit,
        analytics: state,
        analytics_grpc,
        credential,
    }
}

impl Platform {
    /// A TENANT_USER of `admin`'s tenant.
    pub async fn member(&self, admin: &Session, email: &str) -> Session {
        self.kit.member(admin, email, &[]).await
    }

    /// POST /analytics/query, expecting 200.
    pub async fn query(&self, who: &Session, body: Value) -> Value {
        let req = self.authed(Method::POST, "/api/v1/analytics/query", who);
        ok_json(req.json(&body), &format!("query {body}")).await
    }

    /// GET of an analytics view, expecting 200.
    pub async fn view(&self, who: &Session, path: &str) -> Value {
        ok_json(self.authed(Method::GET, path, who), path).await
    }

    /// Waits until analytics has handled `n` events in total (its inbox), at most `limit`.
    pub async fn ingested(&self, n: i64, limit: Duration) {
        let handled = || async {
            let seen = self.inbox().await;
            if seen >= n {
                Ok(())
            } else {
                Err(format!("{seen} handled"))
            }
        };
        eventually(limit, &format!("analytics handles {n} events"), handled).await
    }

    /// Events analytics has handled.
    pub async fn inbox(&self) -> i64 {
        use agora_shared::db::outbox_schema::inbox;
        use diesel::prelude::*;
        let count = |conn: &mut _| Ok(inbox::table.count().get_result::<i64>(conn)?);
        self.analytics.db.read(count).await.expect("inbox count")
    }
}
