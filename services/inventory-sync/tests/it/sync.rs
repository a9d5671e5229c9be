//! Amazon connections and syncs against a local Amazon speaking LWA and the SP-API
//! (`agora_testkit::fake_amazon`): a refresh token checked before it is kept sealed, a full
//! sync paged at the usage plan's rate into items, counts and discrepancies, retries on 429,
//! 5xx and refused access tokens, `invalid_grant` stopping the connection until it is
//! authorized again, one run at a time per connection, scheduled runs, and a run abandoned by
//! a dead replica taken over at the page it had reached.

use std::time::Duration;

use diesel::prelude::*;
use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};

use agora_inventory_sync::{
    domain::{SyncStatus, SyncTrigger},
    schema::connections,
    store::{self, connections::SyncRunRow, snapshots::SnapshotRow},
};
use agora_proto::events::v1 as ev;
use agora_shared::testing::{Call, Store, problem};
use agora_testkit::{
    eventually,
    fake_amazon::{FakeAmazon, FbaItem},
};

use crate::support::{Platform, Session, platform_with};

agora_shared::on_sqlite_and_postgres!(
    connect_sync_and_find_discrepancies,
    retries_expired_tokens_and_revocation,
    one_run_at_a_time_schedules_and_takeover,
);

const US: &str = "ATVPDKIKX0DER";
const DE: &str = "A1PA6795UKMFR9";
const CLIENT_ID: &str = "amzn1.application-oa2-client.test";
const CLIENT_SECRET: &str = "lwa-client-secret";

async fn amazon_platform(store: Store, check_secs: u64) -> (Platform, FakeAmazon) {
    let fake = FakeAmazon::start(CLIENT_ID, CLIENT_SECRET, &["Atzr|seller-1"]);
    let settings = format!(
        "sync_check_secs = {check_secs}\nsync_lease_secs = 2\n\
         [inventory_sync.amazon]\nlwa_url = \"{u}/auth/o2/token\"\nsp_api_url = \"{u}\"\n\
         client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nbackoff_ms = 20\n",
        u = fake.url
    );
    (platform_with(store, &settings).await, fake)
}

fn stock(n: usize) -> Vec<FbaItem> {
    (0..n)
        .map(|i| FbaItem::new(&format!("SKU-{i:03}"), 10))
        .collect()
}

async fn connect(p: &Platform, who: &Session, marketplace: &str, token: &str) -> reqwest::Response {
    p.authed(Method::POST, "/api/v1/inventory/connections", who)
        .json(&json!({"provider": "amazon", "marketplace_id": marketplace, "refresh_token": token}))
        .call()
        .await
}

/// Waits for run `id` to end; its JSON.
async fn ended(p: &Platform, who: &Session, id: &str) -> Value {
    let path = format!("/api/v1/inventory/syncs/{id}");
    eventually(Duration::from_secs(30), "the sync to end", || async {
        let run = p.authed(Method::GET, &path, who).value().await;
        if run["status"] == "running" {
            Err(format!("still running: {run}"))
        } else {
            Ok(run)
        }
    })
    .await
}

async fn connect_sync_and_find_discrepancies(store: Store) {
    let (p, fake) = amazon_platform(store, 3600).await;
    let admin = p.tenant("Acme").await;
    let mut items = stock(120);
    items[5].reserved = 3;
    items[10].unfulfillable = 2;
    fake.stock(US, items);
    // Our books: 30 of SKU-001 (Amazon holds 10), SKU-002 agrees.
    p.item(
        &admin,
        json!({"sku": "SKU-001", "name": "One", "on_hand": 30, "unit_price": 1000}),
    )
    .await;
    p.item(
        &admin,
        json!({"sku": "SKU-002", "name": "Two", "on_hand": 10}),
    )
    .await;
    // A broken Amazon: a summary without its total (no count, so no false discrepancy of all
    // 40), and access tokens said to live 10^16 seconds (kept to a day, no overflow).
    p.item(
        &admin,
        json!({"sku": "SKU-003", "name": "Three", "on_hand": 40}),
    )
    .await;
    fake.omit_total("SKU-003");
    fake.expires_in(10_000_000_000_000_000);

    let refused = problem(connect(&p, &admin, US, "Atzr|not-ours").await, 422).await;
    assert_eq!(refused["code"], "inventory.invalid_grant");
    let resp = connect(&p, &admin, US, "Atzr|seller-1").await;
    assert_eq!(resp.status(), 201);
    let connection: Value = resp.json().await.unwrap();
    assert_eq!(
        (&connection["status"], &connection["account"]),
        (&json!("active"), &json!(US))
    );
    assert!(!connection.to_string().contains("seller-1"), "{connection}");
    let stored: (String, Option<String>) = p
        .state
        .db
        .read(|conn| {
            Ok(connections::table
                .select((connections::credentials, connections::access_token))
                .first(conn)?)
        })
        .await
        .unwrap();
    assert!(stored.0.starts_with("sealed:v2:") && !stored.0.contains("seller-1"));
    assert!(stored.1.unwrap().starts_with("sealed:v2:"));
    let again = problem(connect(&p, &admin, US, "Atzr|seller-1").await, 409).await;
    assert_eq!(again["code"], "inventory.duplicate_connection");

    assert_eq!(
        fake.counts().0,
        2,
        "the duplicate was refused before asking Amazon"
    );
    let id = connection["id"].as_str().unwrap();
    let resp = p
        .authed(
            Method::POST,
            &format!("/api/v1/inventory/connections/{id}/syncs"),
            &admin,
        )
        .call()
        .await;
    assert_eq!(resp.status(), 202);
    let run: Value = resp.json().await.unwrap();
    let run = ended(&p, &admin, run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        (&run["pages"], &run["items_seen"], &run["trigger"]),
        (&json!(3), &json!(119), &json!("manual"))
    );
    // SKU-003's summary had no total: 119 counted, and no discrepancy for it.
    let (tokens, pages, throttled) = fake.counts();
    assert_eq!(
        (tokens, pages, throttled),
        (2, 3, 0),
        "the token from connecting, the plan's rate kept"
    );

    // Items Amazon named first exist with its quantities; ours got Amazon's FBA quantities.
    let new: Value = p
        .get(&admin, "/api/v1/inventory/items/SKU-050")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&new["on_hand"], &new["name"], &new["reorder_point"]),
        (&json!(10), &json!("Product SKU-050"), &json!(10))
    );
    assert!(new["asin"].is_string() && new["fnsku"].is_string());
    let reserved: Value = p
        .get(&admin, "/api/v1/inventory/items/SKU-005")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            &reserved["on_hand"],
            &reserved["reserved"],
            &reserved["fulfillable"]
        ),
        (&json!(13), &json!(3), &json!(10))
    );
    // One discrepancy: our 30 against Amazon's 10.
    let found: Value = p
        .get(&admin, "/api/v1/inventory/discrepancies")
        .await
        .json()
        .await
        .unwrap();
    let found = found["items"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (
            &found[0]["sku"],
            &found[0]["difference"],
            &found[0]["source"]
        ),
        (
            &json!("SKU-001"),
            &json!(-20),
            &json!("amazon:ATVPDKIKX0DER")
        )
    );
    assert_eq!(found[0]["snapshot_id"], run["snapshot_id"]);
    let snapshot: Value = p
        .get(
            &admin,
            &format!(
                "/api/v1/inventory/snapshots/{}",
                run["snapshot_id"].as_str().unwrap()
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(snapshot["item_count"], 119);
    let completed = p.events_of("agora.inventory.sync.completed").await;
    let message = ev::SyncCompleted::decode(completed[0].data.as_slice()).unwrap();
    assert_eq!(
        (
            message.run.unwrap().items_seen,
            message.discrepancies_detected
        ),
        (119, 1)
    );

    // Another tenant sees none of it.
    let other = p.tenant("Beta").await;
    for path in [
        format!("/api/v1/inventory/connections/{id}"),
        format!("/api/v1/inventory/connections/{id}/syncs"),
        format!("/api/v1/inventory/syncs/{}", run["id"].as_str().unwrap()),
    ] {
        problem(p.get(&other, &path).await, 404).await;
    }
    let resp = p
        .authed(
            Method::POST,
            &format!("/api/v1/inventory/connections/{id}/syncs"),
            &other,
        )
        .call()
        .await;
    problem(resp, 404).await;
    let resp = p
        .authed(
            Method::DELETE,
            &format!("/api/v1/inventory/connections/{id}"),
            &other,
        )
        .call()
        .await;
    problem(resp, 404).await;
    let listed: Value = p
        .get(&other, "/api/v1/inventory/connections")
        .await
        .json()
        .await
        .unwrap();
    assert!(listed["items"].as_array().unwrap().is_empty());
    // Disconnecting forgets the credentials.
    let resp = p
        .authed(
            Method::DELETE,
            &format!("/api/v1/inventory/connections/{id}"),
            &admin,
        )
        .call()
        .await;
    assert_eq!(resp.status(), 204);
    problem(
        p.get(&admin, &format!("/api/v1/inventory/connections/{id}"))
            .await,
        404,
    )
    .await;
}

async fn retries_expired_tokens_and_revocation(store: Store) {
    let (p, fake) = amazon_platform(store, 3600).await;
    let admin = p.tenant("Acme").await;
    fake.stock(US, stock(60));
    let connection: Value = connect(&p, &admin, US, "Atzr|seller-1")
        .await
        .json()
        .await
        .unwrap();
    let id = connection["id"].as_str().unwrap();
    let sync_path = format!("/api/v1/inventory/connections/{id}/syncs");
    // Throttled, then failing, then the access token refused: each retried.
    fake.inject(&[429, 500]);
    fake.expire_access_tokens();
    let run = p.authed(Method::POST, &sync_path, &admin).value().await;
    let run = ended(&p, &admin, run["id"].as_str().unwrap()).await;
    assert_eq!(
        (&run["status"], &run["pages"], &run["items_seen"]),
        (&json!("completed"), &json!(2), &json!(60)),
        "{run}"
    );
    assert_eq!(run["errors"], 3);
    assert_eq!(
        fake.counts().0,
        2,
        "a new access token after the refused one"
    );

    // The seller revokes the application: the run fails, the connection waits for new
    // credentials and refuses to sync meanwhile.
    fake.revoke();
    let run = p.authed(Method::POST, &sync_path, &admin).value().await;
    let run = ended(&p, &admin, run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed");
    assert!(
        run["failure"].as_str().unwrap().contains("reconnect"),
        "{run}"
    );
    let connection: Value = p
        .get(&admin, &format!("/api/v1/inventory/connections/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(connection["status"], "reauth_required");
    assert!(connection["last_error"].is_string());
    let refused = problem(p.authed(Method::POST, &sync_path, &admin).call().await, 409).await;
    assert_eq!(refused["code"], "inventory.reauth_required");
    let tokens_before = fake.counts().0;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.counts().0,
        tokens_before,
        "no retrying a revoked grant"
    );
    assert_eq!(p.events_of("agora.inventory.sync.failed").await.len(), 1);

    // Authorized again.
    fake.accept("Atzr|seller-2");
    let credentials = format!("/api/v1/inventory/connections/{id}/credentials");
    let refused = p
        .authed(Method::PUT, &credentials, &admin)
        .json(&json!({"refresh_token": "Atzr|seller-1"}))
        .call()
        .await;
    problem(refused, 422).await;
    let connection = p
        .authed(Method::PUT, &credentials, &admin)
        .json(&json!({"refresh_token": "Atzr|seller-2"}))
        .value()
        .await;
    assert_eq!(connection["status"], "active");
    let run = p.authed(Method::POST, &sync_path, &admin).value().await;
    let run = ended(&p, &admin, run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "completed");
    // A broken Amazon: SKUs listed twice count once; a nextToken that never moves ends the
    // run instead of paging forever, and the connection stays usable.
    fake.stock(US, stock(150));
    fake.misbehave(true, true);
    let run = p.authed(Method::POST, &sync_path, &admin).value().await;
    let run = ended(&p, &admin, run["id"].as_str().unwrap()).await;
    assert_eq!(
        (&run["status"], &run["pages"], &run["items_seen"]),
        (&json!("failed"), &json!(1), &json!(50)),
        "{run}"
    );
    assert!(
        run["failure"].as_str().unwrap().contains("nextToken"),
        "{run}"
    );
    let connection: Value = p
        .get(&admin, &format!("/api/v1/inventory/connections/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(connection["status"], "active");
    fake.misbehave(false, false);
    // The operator's LWA client secret is rotated at Amazon but not here: the sync fails as
    // not configured, and the sellers' connection is left as it is.
    fake.rotate_client_secret("rotated");
    fake.expire_access_tokens();
    let run = p.authed(Method::POST, &sync_path, &admin).value().await;
    let run = ended(&p, &admin, run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed");
    assert!(
        run["failure"].as_str().unwrap().contains("not configured"),
        "{run}"
    );
    let connection: Value = p
        .get(&admin, &format!("/api/v1/inventory/connections/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(connection["status"], "active");
    let refused = problem(connect(&p, &admin, DE, "Atzr|seller-2").await, 503).await;
    assert_eq!(refused["code"], "inventory.amazon_unconfigured");
    fake.rotate_client_secret(CLIENT_SECRET);

    // New credentials given while a run is going: the run takes them up when it needs a new
    // access token, and never marks them reauth_required for the old ones' failure.
    fake.stock(US, stock(500));
    fake.delay(Duration::from_millis(100));
    let run = p.authed(Method::POST, &sync_path, &admin).value().await;
    let run_path = format!("/api/v1/inventory/syncs/{}", run["id"].as_str().unwrap());
    eventually(Duration::from_secs(30), "the first page", || async {
        let run = p.authed(Method::GET, &run_path, &admin).value().await;
        if run["pages"].as_i64() >= Some(1) {
            Ok(run)
        } else {
            Err(format!("{run}"))
        }
    })
    .await;
    fake.accept("Atzr|seller-3");
    let connection = p
        .authed(Method::PUT, &credentials, &admin)
        .json(&json!({"refresh_token": "Atzr|seller-3"}))
        .value()
        .await;
    assert_eq!(connection["status"], "active");
    fake.revoke_token("Atzr|seller-2");
    fake.expire_access_tokens();
    let run = ended(&p, &admin, run["id"].as_str().unwrap()).await;
    assert_eq!(
        (&run["status"], &run["pages"]),
        (&json!("completed"), &json!(10)),
        "{run}"
    );
    let connection: Value = p
        .get(&admin, &format!("/api/v1/inventory/connections/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(connection["status"], "active");
    fake.delay(Duration::ZERO);
    // Reading needs a user; connecting needs the permission.
    let clerk = p.member(&admin, "clerk@acme.test", &[]).await;
    assert_eq!(
        p.get(&clerk, "/api/v1/inventory/connections")
            .await
            .status(),
        200
    );
    problem(connect(&p, &clerk, DE, "Atzr|seller-2").await, 403).await;
    problem(p.authed(Method::POST, &sync_path, &clerk).call().await, 403).await;
}

async fn one_run_at_a_time_schedules_and_takeover(store: Store) {
    let (p, fake) = amazon_platform(store, 1).await;
    let admin = p.tenant("Acme").await;
    fake.stock(US, stock(150));
    fake.stock(DE, stock(20));
    fake.delay(Duration::from_millis(200));
    let connection: Value = connect(&p, &admin, US, "Atzr|seller-1")
        .await
        .json()
        .await
        .unwrap();
    let id = connection["id"].as_str().unwrap().to_owned();
    let sync_path = format!("/api/v1/inventory/connections/{id}/syncs");
    // Ten triggers at once (and the scheduler, for which a new connection is due at once):
    // one run.
    let triggers = (0..10).map(|_| {
        let req = p.authed(Method::POST, &sync_path, &admin);
        async move { req.call().await.status().as_u16() }
    });
    let statuses = futures::future::join_all(triggers).await;
    assert!(
        statuses.iter().filter(|s| **s == 202).count() <= 1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [202, 409].contains(s)),
        "{statuses:?}"
    );
    let runs: Value = p.get(&admin, &sync_path).await.json().await.unwrap();
    assert_eq!(runs["items"].as_array().unwrap().len(), 1, "{runs}");
    let run = ended(&p, &admin, runs["items"][0]["id"].as_str().unwrap()).await;
    assert_eq!(
        (&run["status"], &run["pages"]),
        (&json!("completed"), &json!(3))
    );
    assert_eq!(
        fake.asked(),
        [
            None,
            Some("page-50".to_owned()),
            Some("page-100".to_owned())
        ],
        "each page asked for once"
    );

    // A second marketplace syncs on its own schedule, first right after connecting.
    let de: Value = connect(&p, &admin, DE, "Atzr|seller-1")
        .await
        .json()
        .await
        .unwrap();
    let de_runs = format!(
        "/api/v1/inventory/connections/{}/syncs",
        de["id"].as_str().unwrap()
    );
    let scheduled = eventually(Duration::from_secs(30), "a scheduled sync", || async {
        let runs = p.authed(Method::GET, &de_runs, &admin).value().await;
        let first = runs["items"][0].clone();
        if first["status"] == "completed" {
            Ok(first)
        } else {
            Err(format!("runs: {runs}"))
        }
    })
    .await;
    assert_eq!(
        (&scheduled["trigger"], &scheduled["items_seen"]),
        (&json!("schedule"), &json!(20))
    );

    // A replica died holding a run at its last page: once its lease lapses this one takes
    // the run over and asks for that page, not the first.
    let asked = fake.asked().len();
    let (tenant, connection_id) = (admin.tenant_id.clone(), id.clone());
    let stale = p
        .state
        .db
        .write(move |conn| {
            let at = agora_shared::db::now();
            let snapshot = SnapshotRow {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: tenant.clone(),
                source: "amazon:ATVPDKIKX0DER".into(),
                item_count: 0,
                created_by: "system:sync".into(),
                created_at: at,
            };
            store::snapshots::insert(conn, &snapshot)?;
            let run = SyncRunRow {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: tenant,
                connection_id,
                status: SyncStatus::Running,
                trigger: SyncTrigger::Manual,
                live: Some(1),
                lease_owner: Some("a-dead-replica".into()),
                lease_until: Some(at - chrono::Duration::seconds(1)),
                snapshot_id: snapshot.id,
                next_token: Some("page-100".into()),
                pages: 2,
                items_seen: 100,
                errors: 0,
                failure: None,
                started_at: at,
                updated_at: at,
                finished_at: None,
            };
            store::connections::insert_run(conn, &run)?;
            Ok(run)
        })
        .await
        .unwrap();
    let run = ended(&p, &admin, &stale.id).await;
    assert_eq!(
        (&run["status"], &run["pages"], &run["items_seen"]),
        (&json!("completed"), &json!(3), &json!(150))
    );
    assert_eq!(fake.asked()[asked..], [Some("page-100".to_owned())]);

    // A replica died after recording the last page, before completing the run: the run is
    // completed without asking Amazon anything again.
    let asked = fake.counts().1;
    let mut finished = stale.clone();
    finished.id = uuid::Uuid::now_v7().to_string();
    finished.next_token = None;
    finished.pages = 3;
    finished.items_seen = 150;
    let inserted = finished.clone();
    p.state
        .db
        .write(move |conn| store::connections::insert_run(conn, &inserted))
        .await
        .unwrap();
    let run = ended(&p, &admin, &finished.id).await;
    assert_eq!(
        (&run["status"], &run["pages"]),
        (&json!("completed"), &json!(3))
    );
    assert_eq!(fake.counts().1, asked, "no page fetched again");
}
