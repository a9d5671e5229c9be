//! Stripe connections, Stripe-backed claims and Stripe's webhooks against a local Stripe
//! (`agora_testkit::fake_stripe`): a key checked before it is kept sealed, a refund made once
//! however often (and however concurrently) a claim is submitted, a dispute answered with the
//! claim's evidence, Stripe's refusals named, a rolled key stopping the connection; webhooks
//! whose forged, stale or missing signatures change nothing, whose events apply once however
//! often Stripe delivers them, and which only ever move their own connection's claims.

use diesel::prelude::*;
use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};

use agora_inventory_sync::schema::{connections, stripe_events};
use agora_proto::events::v1 as ev;
use agora_shared::testing::{Call, Store, problem};
use agora_testkit::fake_stripe::FakeStripe;

use crate::support::{Platform, Session, platform_with};

agora_shared::on_sqlite_and_postgres!(
    connect_sync_reconcile_claim_and_webhook,
    refund_claim_filed_once_and_completed_by_webhook,
    lost_answers_and_early_news_never_refund_twice,
    disputes_refusals_and_rolled_keys,
    concurrent_submits_and_deliveries_act_once,
    tenants_and_connections_stay_apart,
);

const WHSEC: &str = "whsec_acmeEndpointSecret";

async fn stripe_platform(store: Store) -> (Platform, FakeStripe) {
    let fake = FakeStripe::start();
    fake.key("sk_test_acme", "acct_acme");
    fake.payment("pi_order1", "usd", 100_000);
    let settings = format!("[inventory_sync.stripe]\napi_url = \"{}\"\n", fake.url);
    (platform_with(store, &settings).await, fake)
}

/// Connects the tenant's Stripe account with `key` and the endpoint secret; the connection.
async fn connect(p: &Platform, who: &Session, key: &str, whsec: &str) -> Value {
    let resp = p
        .authed(Method::POST, "/api/v1/inventory/connections", who)
        .json(&json!({"provider": "stripe", "secret_key": key, "webhook_secret": whsec}))
        .call()
        .await;
    assert_eq!(resp.status(), 201, "connect stripe");
    resp.json().await.unwrap()
}

/// A discrepancy sure enough to claim on (150 jars of 20.00 USD short): its id.
async fn discrepancy(p: &Platform, who: &Session, sku: &str) -> String {
    p.item(
        who,
        json!({"sku": sku, "name": "Jar", "on_hand": 500, "unit_price": 2000}),
    )
    .await;
    p.counts(who, "warehouse", &[(sku, 350)]).await;
    let d = &p.discrepancies(who, sku).await[0];
    assert!(d["confidence"].as_f64().unwrap() >= 0.7, "{d}");
    d["id"].as_str().unwrap().to_owned()
}

async fn claim(p: &Platform, who: &Session, body: Value) -> reqwest::Response {
    p.authed(Method::POST, "/api/v1/inventory/claims", who)
        .json(&body)
        .call()
        .await
}

async fn submit(p: &Platform, who: &Session, claim_id: &str) -> reqwest::Response {
    p.authed(
        Method::POST,
        &format!("/api/v1/inventory/claims/{claim_id}/submit"),
        who,
    )
    .call()
    .await
}

/// Delivers `payload` to the connection's webhook with `signature` (None: no header).
async fn deliver(
    p: &Platform,
    connection: &Value,
    payload: &[u8],
    signature: Option<String>,
) -> reqwest::Response {
    let mut req = p
        .req(Method::POST, connection["webhook_path"].as_str().unwrap())
        .header("content-type", "application/json; charset=utf-8")
        .body(payload.to_vec());
    if let Some(s) = signature {
        req = req.header("Stripe-Signature", s);
    }
    req.send().await.unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn signed(payload: &[u8]) -> Option<String> {
    Some(FakeStripe::sign(WHSEC, now(), payload))
}

async fn claim_of(p: &Platform, who: &Session, id: &str) -> Value {
    p.get(who, &format!("/api/v1/inventory/claims/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

/// The claim status moves on the bus, as "from>to by actor".
async fn moves(p: &Platform) -> Vec<String> {
    p.events_of("agora.inventory.claim.status_changed")
        .await
        .iter()
        .map(|e| {
            let m = ev::ClaimStatusChanged::decode(e.data.as_slice()).unwrap();
            format!("{}>{} by {}", m.from_status, m.to_status, m.actor_id)
        })
        .collect()
}

async fn stored_events(p: &Platform) -> i64 {
    p.state
        .db
        .read(|conn| Ok(stripe_events::table.count().get_result::<i64>(conn)?))
        .await
        .unwrap()
}

/// The whole commerce flow: Amazon connected and synced, its counts against ours scored,
/// one difference reconciled, a refund claimed through Stripe on another, and Stripe's
/// webhook settling it.
async fn connect_sync_reconcile_claim_and_webhook(store: Store) {
    use agora_testkit::fake_amazon::{FakeAmazon, FbaItem};
    let amazon = FakeAmazon::start("amzn1.application-oa2-client.t", "lwa-secret", &["Atzr|s"]);
    amazon.plan(50.0, 50.0);
    let fake = FakeStripe::start();
    fake.key("sk_test_acme", "acct_acme");
    fake.payment("pi_order9", "usd", 100_000);
    let settings = format!(
        "[inventory_sync.stripe]\napi_url = \"{s}\"\n\
         [inventory_sync.amazon]\nlwa_url = \"{a}/auth/o2/token\"\nsp_api_url = \"{a}\"\n\
         client_id = \"amzn1.application-oa2-client.t\"\nclient_secret = \"lwa-secret\"\n",
        s = fake.url,
        a = amazon.url
    );
    let p = platform_with(store, &settings).await;
    let admin = p.tenant("Acme").await;
    for (sku, held) in [("MUG-1", 100), ("LAMP-2", 40)] {
        p.item(
            &admin,
            json!({"sku": sku, "name": sku, "on_hand": held, "unit_price": 2500}),
        )
        .await;
    }
    // Amazon holds 70 mugs (30 short) and 10 lamps (30 short).
    amazon.stock(
        "ATVPDKIKX0DER",
        vec![FbaItem::new("MUG-1", 70), FbaItem::new("LAMP-2", 10)],
    );
    let amazon_connection: Value = p
        .authed(Method::POST, "/api/v1/inventory/connections", &admin)
        .json(&json!({"provider": "amazon", "marketplace_id": "ATVPDKIKX0DER", "refresh_token": "Atzr|s"}))
        .value()
        .await;
    let syncs = format!(
        "/api/v1/inventory/connections/{}/syncs",
        amazon_connection["id"].as_str().unwrap()
    );
    // Connecting starts a sync; it ends with both differences found.
    let run = agora_testkit::eventually(
        std::time::Duration::from_secs(30),
        "the first sync",
        || async {
            let page = p.authed(Method::GET, &syncs, &admin).value().await;
            match page["items"][0]["status"].as_str() {
                Some("completed") => Ok(page["items"][0].clone()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(run["items_seen"], 2);
    let mug = p.discrepancies(&admin, "MUG-1").await[0].clone();
    let lamp = p.discrepancies(&admin, "LAMP-2").await[0].clone();
    assert_eq!(
        (&mug["difference"], &lamp["difference"]),
        (&json!(-30), &json!(-30))
    );
    // The mugs were miscounted here: reconciled to Amazon's count.
    let report: Value = p
        .authed(Method::POST, "/api/v1/inventory/reconcile", &admin)
        .json(&json!([{"sku": "MUG-1", "source_value": 70, "target_value": 100}]))
        .value()
        .await;
    assert_eq!(report["reconciled"], json!(["MUG-1"]));
    assert_eq!(
        p.discrepancies(&admin, "MUG-1").await[0]["status"],
        "resolved"
    );
    // The lamps were sold and never shipped: the customer is refunded through Stripe.
    let connection = connect(&p, &admin, "sk_test_acme", WHSEC).await;
    let made: Value = claim(
        &p,
        &admin,
        json!({"discrepancy_id": lamp["id"], "claim_type": "refund", "provider": "stripe",
               "amount": 30 * 2500,
               "stripe": {"connection_id": connection["id"], "target": "pi_order9"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = made["id"].as_str().unwrap();
    // The Stripe balance cannot cover it today; topped up, the submit goes through (a new
    // request, not the refusal replayed by its idempotency key).
    fake.refuse_next_refund(
        "balance_insufficient",
        "You have insufficient funds in your Stripe account for this transfer.",
    );
    let refused = problem(submit(&p, &admin, id).await, 422).await;
    assert_eq!(refused["code"], "inventory.stripe_balance_insufficient");
    assert_eq!(claim_of(&p, &admin, id).await["status"], "pending");
    assert!(fake.refunds().is_empty());
    let filed: Value = submit(&p, &admin, id).await.json().await.unwrap();
    assert_eq!(filed["status"], "processing", "{filed}");
    let mut refund = fake.refunds()[0].clone();
    refund["status"] = json!("succeeded");
    let event = FakeStripe::event("refund.updated", refund);
    assert_eq!(
        deliver(&p, &connection, &event, signed(&event))
            .await
            .status(),
        200
    );
    assert_eq!(claim_of(&p, &admin, id).await["status"], "completed");
}

async fn refund_claim_filed_once_and_completed_by_webhook(store: Store) {
    let (p, fake) = stripe_platform(store).await;
    let admin = p.tenant("Acme").await;

    // Connected without an endpoint secret first: the endpoint needs the connection's path.
    let resp = p
        .authed(Method::POST, "/api/v1/inventory/connections", &admin)
        .json(&json!({"provider": "stripe", "secret_key": "sk_test_acme"}))
        .call()
        .await;
    assert_eq!(resp.status(), 201);
    let connection: Value = resp.json().await.unwrap();
    let cid = connection["id"].as_str().unwrap().to_owned();
    assert_eq!(connection["account"], "acct_acme");
    assert_eq!(connection["status"], "active");
    assert_eq!(connection["webhook_secret_set"], false);
    assert_eq!(
        connection["webhook_path"],
        format!("/api/v1/inventory/webhooks/stripe/{cid}")
    );
    let early = FakeStripe::event(
        "refund.updated",
        json!({"id": "re_x", "status": "succeeded"}),
    );
    let resp = deliver(&p, &connection, &early, signed(&early)).await;
    assert_eq!(
        problem(resp, 409).await["code"],
        "inventory.no_webhook_secret"
    );
    let path = format!("/api/v1/inventory/connections/{cid}/credentials");
    let connection: Value = p
        .authed(Method::PUT, &path, &admin)
        .json(&json!({"webhook_secret": WHSEC}))
        .value()
        .await;
    assert_eq!(connection["webhook_secret_set"], true);
    // Neither secret is ever answered, nor stored in clear.
    let listed = p
        .get(&admin, "/api/v1/inventory/connections")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !listed.contains("sk_test_acme") && !listed.contains(WHSEC),
        "{listed}"
    );
    let stored: (String, Option<String>) = p
        .state
        .db
        .read(move |conn| {
            Ok(connections::table
                .find(&cid)
                .select((connections::credentials, connections::webhook_secret))
                .first(conn)?)
        })
        .await
        .unwrap();
    assert!(!stored.0.contains("sk_test_acme"));
    assert!(!stored.1.unwrap().contains("EndpointSecret"));

    // A refund claim of 25.00 on the order's payment intent.
    let d = discrepancy(&p, &admin, "JAR-1").await;
    let cid = connection["id"].as_str().unwrap();
    let resp = claim(
        &p,
        &admin,
        json!({"discrepancy_id": d, "claim_type": "refund", "provider": "stripe", "amount": 2500,
               "stripe": {"connection_id": cid, "target": "pi_order1"}}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "pending");
    assert_eq!(
        created["stripe"],
        json!({"connection_id": cid, "target": "pi_order1"})
    );
    assert!(fake.refunds().is_empty(), "nothing is filed before submit");

    // Submitted: one refund, tagged with the claim; submitting again files nothing more.
    let filed: Value = submit(&p, &admin, &id).await.json().await.unwrap();
    assert_eq!(filed["status"], "processing");
    let refunds = fake.refunds();
    assert_eq!(refunds.len(), 1);
    let refund = &refunds[0];
    assert_eq!(filed["external_reference"], refund["id"]);
    assert_eq!(
        (
            &refund["amount"],
            &refund["payment_intent"],
            &refund["metadata"]["agora_claim_id"]
        ),
        (&json!(2500), &json!("pi_order1"), &json!(id))
    );
    let again: Value = submit(&p, &admin, &id).await.json().await.unwrap();
    assert_eq!(again, filed);
    assert_eq!(fake.refunds().len(), 1);

    // Stripe says the refund succeeded: the claim is completed, on Stripe's word.
    let mut object = refund.clone();
    object["status"] = json!("succeeded");
    let event = FakeStripe::event("refund.updated", object.clone());
    let before = moves(&p).await.len();
    let resp = deliver(&p, &connection, &event, signed(&event)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"received": true, "duplicate": false})
    );
    assert_eq!(claim_of(&p, &admin, &id).await["status"], "completed");
    let all = moves(&p).await;
    assert_eq!(
        all[before..],
        [
            "processing>approved by stripe",
            "approved>completed by stripe"
        ]
    );

    // Stripe delivers it again (it retries for days): taken, applied once.
    let resp = deliver(&p, &connection, &event, signed(&event)).await;
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"received": true, "duplicate": true})
    );
    assert_eq!(moves(&p).await.len(), all.len());

    // Forged, stale, unsigned, tampered, or signed for another endpoint: refused, and nothing
    // changes.
    let mut failed = object.clone();
    failed["status"] = json!("failed");
    let bad = FakeStripe::event("refund.updated", failed);
    let stored = stored_events(&p).await;
    let tampered = {
        let other = FakeStripe::event(
            "refund.updated",
            json!({"id": "re_other", "status": "failed"}),
        );
        signed(&other)
    };
    for (what, signature) in [
        (
            "another secret",
            Some(FakeStripe::sign("whsec_guessed", now(), &bad)),
        ),
        (
            "signed 301 s ago",
            Some(FakeStripe::sign(WHSEC, now() - 301, &bad)),
        ),
        ("no header", None),
        ("another body's signature", tampered),
        (
            "only a v0 signature",
            Some(FakeStripe::sign(WHSEC, now(), &bad).replace("v1=", "v0=")),
        ),
        ("garbage", Some("t=now,v1=zz".into())),
    ] {
        let resp = deliver(&p, &connection, &bad, signature).await;
        let body = problem(resp, 400).await;
        assert_eq!(body["code"], "inventory.bad_signature", "{what}");
    }
    assert_eq!(stored_events(&p).await, stored);
    assert_eq!(claim_of(&p, &admin, &id).await["status"], "completed");
    assert_eq!(moves(&p).await.len(), all.len());
    // Signed right but not a Stripe event: a clear 4xx, nothing recorded.
    let resp = deliver(&p, &connection, b"[1,2]", signed(b"[1,2]")).await;
    assert!(resp.status().is_client_error());
    assert_eq!(stored_events(&p).await, stored);

    // A late "failed" about the completed claim is taken and changes nothing.
    let late = FakeStripe::event(
        "refund.updated",
        json!({"id": object["id"], "status": "failed"}),
    );
    assert_eq!(
        deliver(&p, &connection, &late, signed(&late))
            .await
            .status(),
        200
    );
    assert_eq!(claim_of(&p, &admin, &id).await["status"], "completed");

    // What each delivery did, newest first, for the tenant to read.
    let log = p
        .get(
            &admin,
            &format!("/api/v1/inventory/connections/{cid}/events"),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let outcomes: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 2, "{log}");
    assert!(outcomes[0].contains("completed already"), "{log}");
    assert!(outcomes[1].ends_with("is completed"), "{log}");
}

async fn disputes_refusals_and_rolled_keys(store: Store) {
    let (p, fake) = stripe_platform(store).await;
    let admin = p.tenant("Acme").await;
    let connection = connect(&p, &admin, "sk_test_acme", WHSEC).await;
    let cid = connection["id"].as_str().unwrap();

    // A dispute answered with the claim's evidence, then lost.
    fake.dispute("dp_chargeback1");
    let d = discrepancy(&p, &admin, "JAR-1").await;
    let created: Value = claim(
        &p,
        &admin,
        json!({"discrepancy_id": d, "claim_type": "dispute", "provider": "stripe",
               "notes": "delivered in full",
               "stripe": {"connection_id": cid, "target": "dp_chargeback1"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = created["id"].as_str().unwrap();
    let filed: Value = submit(&p, &admin, id).await.json().await.unwrap();
    assert_eq!(filed["status"], "processing");
    assert_eq!(filed["external_reference"], "dp_chargeback1");
    let answers = fake.dispute_answers();
    assert_eq!(answers.len(), 1);
    let form = &answers[0].1;
    assert_eq!(form["submit"], "true");
    assert_eq!(form["metadata[agora_claim_id]"], id);
    let text = &form["evidence[uncategorized_text]"];
    assert!(
        text.contains("JAR-1")
            && text.contains("warehouse counted 350")
            && text.contains("delivered in full"),
        "{text}"
    );
    let event = FakeStripe::event(
        "charge.dispute.closed",
        json!({"id": "dp_chargeback1", "object": "dispute", "status": "lost"}),
    );
    assert_eq!(
        deliver(&p, &connection, &event, signed(&event))
            .await
            .status(),
        200
    );
    assert_eq!(claim_of(&p, &admin, id).await["status"], "rejected");

    // Stripe refuses: more than was paid; a payment in another currency.
    let d2 = discrepancy(&p, &admin, "JAR-2").await;
    let big: Value = claim(
        &p,
        &admin,
        json!({"discrepancy_id": d2, "claim_type": "refund", "provider": "stripe", "amount": 100_001,
               "stripe": {"connection_id": cid, "target": "pi_order1"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    let big_id = big["id"].as_str().unwrap();
    let refused = problem(submit(&p, &admin, big_id).await, 422).await;
    assert_eq!(refused["code"], "inventory.stripe_amount_too_large");
    assert_eq!(refused["errors"][0]["field"], "stripe.amount", "{refused}");
    assert_eq!(claim_of(&p, &admin, big_id).await["status"], "pending");
    fake.payment("ch_euro", "eur", 100_000);
    let d3 = discrepancy(&p, &admin, "JAR-3").await;
    let euro: Value = claim(
        &p,
        &admin,
        json!({"discrepancy_id": d3, "claim_type": "refund", "provider": "stripe",
               "stripe": {"connection_id": cid, "target": "ch_euro"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    let euro_id = euro["id"].as_str().unwrap();
    let mismatch = problem(submit(&p, &admin, euro_id).await, 422).await;
    assert_eq!(mismatch["code"], "inventory.currency_mismatch");
    assert!(fake.refunds().is_empty());

    // Stripe fails once: retried with the same Idempotency-Key, one refund.
    fake.inject(&[500]);
    let posts = fake.posts();
    let d4 = discrepancy(&p, &admin, "JAR-4").await;
    let ok: Value = claim(
        &p,
        &admin,
        json!({"discrepancy_id": d4, "claim_type": "refund", "provider": "stripe", "amount": 1000,
               "stripe": {"connection_id": cid, "target": "pi_order1"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    let ok_id = ok["id"].as_str().unwrap();
    let filed: Value = submit(&p, &admin, ok_id).await.json().await.unwrap();
    assert_eq!(filed["status"], "processing");
    assert_eq!(fake.posts() - posts, 2, "a failed try and its retry");
    assert_eq!(fake.refunds().len(), 1);

    // The key is rolled at Stripe: the submit says so and the connection waits for a new key.
    fake.roll("sk_test_acme");
    let refused = problem(submit(&p, &admin, big_id).await, 409).await;
    assert_eq!(refused["code"], "inventory.reauth_required");
    let path = format!("/api/v1/inventory/connections/{cid}");
    let stopped = p.get(&admin, &path).await.json::<Value>().await.unwrap();
    assert_eq!(stopped["status"], "reauth_required");
    // Another account's key is not this connection's; the account's new key is.
    fake.key("sk_test_other", "acct_other");
    fake.key("sk_test_acme2", "acct_acme");
    let creds = format!("{path}/credentials");
    let wrong = p
        .authed(Method::PUT, &creds, &admin)
        .json(&json!({"secret_key": "sk_test_other"}))
        .call()
        .await;
    assert_eq!(problem(wrong, 422).await["code"], "inventory.other_account");
    let rolled = p
        .authed(Method::PUT, &creds, &admin)
        .json(&json!({"secret_key": "sk_test_acme2"}))
        .value()
        .await;
    assert_eq!(rolled["status"], "active");
    // A Stripe connection takes no refresh token, and has nothing to sync.
    let mixed = p
        .authed(Method::PUT, &creds, &admin)
        .json(&json!({"refresh_token": "Atzr|x"}))
        .call()
        .await;
    assert_eq!(
        problem(mixed, 422).await["errors"][0]["field"],
        "refresh_token"
    );
    let sync = p
        .authed(Method::POST, &format!("{path}/syncs"), &admin)
        .call()
        .await;
    assert_eq!(
        problem(sync, 409).await["code"],
        "inventory.nothing_to_sync"
    );

    // Keys Stripe refuses, or that are not keys at all, are not kept.
    let refused = p
        .authed(Method::POST, "/api/v1/inventory/connections", &admin)
        .json(&json!({"provider": "stripe", "secret_key": "sk_test_unknown"}))
        .call()
        .await;
    assert_eq!(problem(refused, 422).await["code"], "inventory.invalid_key");
    for body in [
        json!({"provider": "stripe", "secret_key": "pk_test_publishable"}),
        json!({"provider": "stripe", "secret_key": "sk_test_acme2", "webhook_secret": "secret"}),
        json!({"provider": "stripe", "secret_key": "sk_test_acme2", "marketplace_id": "X"}),
    ] {
        let resp = p
            .authed(Method::POST, "/api/v1/inventory/connections", &admin)
            .json(&body)
            .call()
            .await;
        assert_eq!(resp.status(), 422, "{body}");
    }
    // The account is connected once.
    let twice = p
        .authed(Method::POST, "/api/v1/inventory/connections", &admin)
        .json(&json!({"provider": "stripe", "secret_key": "sk_test_acme2"}))
        .call()
        .await;
    assert_eq!(
        problem(twice, 409).await["code"],
        "inventory.duplicate_connection"
    );

    // Claims that do not fit Stripe are refused when raised.
    let d5 = discrepancy(&p, &admin, "JAR-5").await;
    for (body, field) in [
        (
            json!({"claim_type": "refund", "provider": "stripe"}),
            "stripe",
        ),
        (
            json!({"claim_type": "reimbursement", "provider": "stripe",
                   "stripe": {"connection_id": cid, "target": "pi_order1"}}),
            "claim_type",
        ),
        (
            json!({"claim_type": "refund", "provider": "stripe",
                   "stripe": {"connection_id": cid, "target": "dp_chargeback1"}}),
            "stripe.target",
        ),
        (
            json!({"claim_type": "refund", "provider": "stripe",
                   "stripe": {"connection_id": cid, "target": "pi_../../v1/account"}}),
            "stripe.target",
        ),
        (
            json!({"claim_type": "refund", "provider": "amazon",
                   "stripe": {"connection_id": cid, "target": "pi_order1"}}),
            "stripe",
        ),
    ] {
        let mut body = body;
        body["discrepancy_id"] = json!(d5);
        let resp = claim(&p, &admin, body.clone()).await;
        let problem = problem(resp, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    // An Amazon claim is filed by the seller, not from here.
    let amazon: Value = claim(
        &p,
        &admin,
        json!({"discrepancy_id": d5, "claim_type": "reimbursement", "provider": "amazon"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let resp = submit(&p, &admin, amazon["id"].as_str().unwrap()).await;
    assert_eq!(
        problem(resp, 409).await["code"],
        "inventory.not_submittable"
    );
}

async fn concurrent_submits_and_deliveries_act_once(store: Store) {
    let (p, fake) = stripe_platform(store).await;
    let admin = p.tenant("Acme").await;
    let connection = connect(&p, &admin, "sk_test_acme", WHSEC).await;
    let cid = connection["id"].as_str().unwrap();
    let d = discrepancy(&p, &admin, "JAR-1").await;
    let created: Value = claim(
        &p,
        &admin,
        json!({"discrepancy_id": d, "claim_type": "refund", "provider": "stripe", "amount": 700,
               "stripe": {"connection_id": cid, "target": "pi_order1"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = created["id"].as_str().unwrap();

    // Ten submits at once: one refund, one move to processing, the same answer for all.
    let before = moves(&p).await.len();
    let answers = futures::future::join_all((0..10).map(|_| submit(&p, &admin, id))).await;
    let mut references = std::collections::BTreeSet::new();
    for resp in answers {
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "processing");
        references.insert(body["external_reference"].as_str().unwrap().to_owned());
    }
    assert_eq!(fake.refunds().len(), 1);
    assert_eq!(references.len(), 1);
    assert_eq!(
        moves(&p).await[before..],
        [format!("pending>processing by {}", admin.user_id)]
    );

    // The same event delivered ten times at once: applied once.
    let mut object = fake.refunds()[0].clone();
    object["status"] = json!("succeeded");
    let event = FakeStripe::event("refund.updated", object);
    let answers = futures::future::join_all(
        (0..10).map(|_| deliver(&p, &connection, &event, signed(&event))),
    )
    .await;
    let mut duplicates = 0;
    for resp in answers {
        assert_eq!(resp.status(), 200);
        if resp.json::<Value>().await.unwrap()["duplicate"] == true {
            duplicates += 1;
        }
    }
    assert_eq!(duplicates, 9);
    assert_eq!(claim_of(&p, &admin, id).await["status"], "completed");
    assert_eq!(moves(&p).await.len(), before + 3);
}

async fn tenants_and_connections_stay_apart(store: Store) {
    let (p, fake) = stripe_platform(store).await;
    let acme = p.tenant("Acme").await;
    let globex = p.tenant("Globex").await;
    fake.key("sk_test_globex", "acct_globex");
    let acme_conn = connect(&p, &acme, "sk_test_acme", WHSEC).await;
    let globex_secret = "whsec_globexSecret";
    let globex_conn = connect(&p, &globex, "sk_test_globex", globex_secret).await;
    let acme_cid = acme_conn["id"].as_str().unwrap();
    let d = discrepancy(&p, &acme, "JAR-1").await;
    let acme_claim: Value = claim(
        &p,
        &acme,
        json!({"discrepancy_id": d, "claim_type": "refund", "provider": "stripe", "amount": 500,
               "stripe": {"connection_id": acme_cid, "target": "pi_order1"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    let claim_id = acme_claim["id"].as_str().unwrap();

    // Globex sees none of Acme's connection, cannot raise claims on it, nor submit Acme's.
    let path = format!("/api/v1/inventory/connections/{acme_cid}");
    for sub in ["", "/events"] {
        let resp = p.get(&globex, &format!("{path}{sub}")).await;
        assert_eq!(resp.status(), 404, "{sub}");
    }
    let resp = p
        .authed(Method::PUT, &format!("{path}/credentials"), &globex)
        .json(&json!({"webhook_secret": "whsec_takeover"}))
        .call()
        .await;
    assert_eq!(resp.status(), 404);
    let gd = discrepancy(&p, &globex, "JAR-9").await;
    let resp = claim(
        &p,
        &globex,
        json!({"discrepancy_id": gd, "claim_type": "refund", "provider": "stripe",
               "stripe": {"connection_id": acme_cid, "target": "pi_order1"}}),
    )
    .await;
    assert_eq!(
        problem(resp, 422).await["errors"][0]["field"],
        "stripe.connection_id"
    );
    assert_eq!(submit(&p, &globex, claim_id).await.status(), 404);
    assert!(fake.refunds().is_empty());

    // Globex signs events on its own endpoint naming Acme's claim: they move nothing.
    let event = FakeStripe::event(
        "refund.updated",
        json!({"id": "re_forged", "status": "failed", "metadata": {"agora_claim_id": claim_id}}),
    );
    let signature = FakeStripe::sign(globex_secret, now(), &event);
    let resp = deliver(&p, &globex_conn, &event, Some(signature.clone())).await;
    assert_eq!(resp.status(), 200);
    // Nor does Globex's signature open Acme's endpoint.
    let resp = deliver(&p, &acme_conn, &event, Some(signature)).await;
    assert_eq!(problem(resp, 400).await["code"], "inventory.bad_signature");
    assert_eq!(claim_of(&p, &acme, claim_id).await["status"], "pending");
    // An unknown connection has no Stripe endpoint.
    let ghost = json!({"webhook_path": "/api/v1/inventory/webhooks/stripe/0190f0f0-0000-7000-8000-000000000000"});
    assert_eq!(
        deliver(&p, &ghost, &event, signed(&event)).await.status(),
        404
    );

    // A removed connection's endpoint is gone, and its claims say so when submitted.
    let resp = p.authed(Method::DELETE, &path, &acme).call().await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        deliver(&p, &acme_conn, &event, signed(&event))
            .await
            .status(),
        404
    );
    let resp = submit(&p, &acme, claim_id).await;
    assert_eq!(
        problem(resp, 409).await["code"],
        "inventory.connection_gone"
    );
}

async fn lost_answers_and_early_news_never_refund_twice(store: Store) {
    let (p, fake) = stripe_platform(store).await;
    let admin = p.tenant("Acme").await;
    let connection = connect(&p, &admin, "sk_test_acme", WHSEC).await;
    let cid = connection["id"].as_str().unwrap();
    let refund_claim = |sku: &'static str, amount: i64, target: &'static str| {
        let p = &p;
        let admin = &admin;
        async move {
            let d = discrepancy(p, admin, sku).await;
            let made: Value = claim(
                p,
                admin,
                json!({"discrepancy_id": d, "claim_type": "refund", "provider": "stripe",
                       "amount": amount, "stripe": {"connection_id": cid, "target": target}}),
            )
            .await
            .json()
            .await
            .unwrap();
            made["id"].as_str().unwrap().to_owned()
        }
    };

    // Stripe refunds, but every answer is lost (its idempotency key replays the failure):
    // 503, and the claim stays pending.
    let a = refund_claim("JAR-1", 700, "pi_order1").await;
    fake.lose_answers(3);
    let lost = problem(submit(&p, &admin, &a).await, 503).await;
    assert!(
        lost["detail"]
            .as_str()
            .unwrap()
            .contains("submitting again is safe"),
        "{lost}"
    );
    assert_eq!(fake.refunds().len(), 1, "made once, answered never");
    assert_eq!(claim_of(&p, &admin, &a).await["status"], "pending");
    // A day later Stripe has forgotten the key: the submit finds the refund, makes none.
    fake.forget_idempotency_keys();
    let filed: Value = submit(&p, &admin, &a).await.json().await.unwrap();
    let refunds = fake.refunds();
    assert_eq!(refunds.len(), 1);
    assert_eq!(filed["status"], "processing");
    assert_eq!(filed["external_reference"], refunds[0]["id"]);

    // Stripe's news of a refund for an unfiled claim (the submit's write lost, say) files it.
    let b = refund_claim("JAR-2", 300, "pi_order1").await;
    let early = FakeStripe::event(
        "refund.created",
        json!({"id": "re_early", "object": "refund", "status": "pending", "amount": 300,
               "payment_intent": "pi_order1", "metadata": {"agora_claim_id": b}}),
    );
    assert_eq!(
        deliver(&p, &connection, &early, signed(&early))
            .await
            .status(),
        200
    );
    let learnt = claim_of(&p, &admin, &b).await;
    assert_eq!(
        (&learnt["status"], &learnt["external_reference"]),
        (&json!("processing"), &json!("re_early"))
    );
    let again: Value = submit(&p, &admin, &b).await.json().await.unwrap();
    assert_eq!(again["external_reference"], "re_early");
    assert_eq!(fake.refunds().len(), 1, "no refund made for it");

    // News naming a claim but refunding another payment, or from the other mode, moves nothing.
    let c = refund_claim("JAR-3", 200, "pi_order1").await;
    let other = FakeStripe::event(
        "refund.updated",
        json!({"id": "re_other", "status": "succeeded", "payment_intent": "pi_someone_else",
               "metadata": {"agora_claim_id": c}}),
    );
    assert_eq!(
        deliver(&p, &connection, &other, signed(&other))
            .await
            .status(),
        200
    );
    let mut live: Value = serde_json::from_slice(&FakeStripe::event(
        "refund.updated",
        json!({"id": "re_live", "status": "succeeded", "payment_intent": "pi_order1",
               "metadata": {"agora_claim_id": c}}),
    ))
    .unwrap();
    live["livemode"] = json!(true);
    let live = serde_json::to_vec(&live).unwrap();
    assert_eq!(
        deliver(&p, &connection, &live, signed(&live))
            .await
            .status(),
        200
    );
    let untouched = claim_of(&p, &admin, &c).await;
    assert_eq!(untouched["status"], "pending");
    assert_eq!(untouched["external_reference"], Value::Null);
    let log = p
        .get(
            &admin,
            &format!("/api/v1/inventory/connections/{cid}/events"),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert!(
        log["items"][0]["outcome"]
            .as_str()
            .unwrap()
            .contains("live-mode event for a test-mode key"),
        "{log}"
    );
    assert!(
        log["items"][1]["outcome"]
            .as_str()
            .unwrap()
            .contains("refunds another payment"),
        "{log}"
    );

    // Only a submit files a Stripe claim, and only Stripe names its reference.
    let path = format!("/api/v1/inventory/claims/{c}");
    let skip = p
        .authed(Method::PATCH, &path, &admin)
        .json(&json!({"status": "processing"}))
        .call()
        .await;
    assert_eq!(
        problem(skip, 409).await["code"],
        "inventory.file_with_submit"
    );
    let named = p
        .authed(Method::PATCH, &path, &admin)
        .json(&json!({"status": "pending", "external_reference": "re_made_up"}))
        .call()
        .await;
    assert_eq!(
        problem(named, 422).await["errors"][0]["field"],
        "external_reference"
    );

    // A dispute is claimed once.
    fake.dispute("dp_once");
    for expected in [201, 409] {
        let d = discrepancy(&p, &admin, &format!("DSP-{expected}")).await;
        let resp = claim(
            &p,
            &admin,
            json!({"discrepancy_id": d, "claim_type": "dispute", "provider": "stripe",
                   "stripe": {"connection_id": cid, "target": "dp_once"}}),
        )
        .await;
        assert_eq!(resp.status(), expected);
    }

    // Filed claims wait for Stripe's news through the connection: it cannot go meanwhile.
    let resp = p
        .authed(
            Method::DELETE,
            &format!("/api/v1/inventory/connections/{cid}"),
            &admin,
        )
        .call()
        .await;
    assert_eq!(
        problem(resp, 409).await["code"],
        "inventory.connection_in_use"
    );
}
