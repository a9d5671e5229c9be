//! Gmail connections against a local Google (`agora_testkit::fake_google`): a consent with
//! PKCE and a state bound to its caller and used once, the code exchanged for a refresh token
//! kept sealed, mailbox scans that attach Amazon's reimbursement and case mails to the claims
//! they name and approve reimbursed ones (each mail once), access tokens refreshed, a revoked
//! grant stopping the connection until the seller consents again, and disconnect revoking the
//! grant at Google.

use diesel::prelude::*;
use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};

use agora_inventory_sync::schema::connections;
use agora_proto::events::v1 as ev;
use agora_shared::testing::{Call, Store, problem};
use agora_testkit::fake_google::FakeGoogle;

use crate::support::{Platform, Session, platform_with};

agora_shared::on_sqlite_and_postgres!(consent_scan_and_disconnect, states_belong_to_their_caller,);

const CLIENT_ID: &str = "1234-agora.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "GOCSPX-test-secret";
const REDIRECT: &str = "https://app.example.test/gmail/callback";

async fn google_platform(store: Store) -> (Platform, FakeGoogle) {
    let fake = FakeGoogle::start(CLIENT_ID, CLIENT_SECRET, "seller@example.test");
    let settings = format!(
        "[inventory_sync.google]\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
         redirect_url = \"{REDIRECT}\"\ntoken_url = \"{u}/token\"\nrevoke_url = \"{u}/revoke\"\n\
         gmail_url = \"{u}\"\n",
        u = fake.url
    );
    (platform_with(store, &settings).await, fake)
}

/// Starts a consent; its authorization URL.
async fn authorize(p: &Platform, who: &Session) -> String {
    let resp = p
        .authed(
            Method::POST,
            "/api/v1/inventory/connections/gmail/authorize",
            who,
        )
        .call()
        .await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["authorization_url"].as_str().unwrap().to_owned()
}

async fn callback(p: &Platform, who: &Session, state: &str, code: &str) -> reqwest::Response {
    p.authed(
        Method::POST,
        "/api/v1/inventory/connections/gmail/callback",
        who,
    )
    .json(&json!({"state": state, "code": code}))
    .call()
    .await
}

/// A reimbursement claim on a 150-jar shortfall of `sku`: its id.
async fn amazon_claim(p: &Platform, who: &Session, sku: &str) -> String {
    p.item(
        who,
        json!({"sku": sku, "name": "Jar", "on_hand": 500, "unit_price": 2000}),
    )
    .await;
    p.counts(who, "warehouse", &[(sku, 350)]).await;
    let d = p.discrepancies(who, sku).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let claim: Value = p
        .authed(Method::POST, "/api/v1/inventory/claims", who)
        .json(&json!({"discrepancy_id": d, "claim_type": "reimbursement", "provider": "amazon"}))
        .value()
        .await;
    claim["id"].as_str().unwrap().to_owned()
}

async fn claim_of(p: &Platform, who: &Session, id: &str) -> Value {
    p.get(who, &format!("/api/v1/inventory/claims/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

async fn scan(p: &Platform, who: &Session, connection: &str) -> reqwest::Response {
    p.authed(
        Method::POST,
        &format!("/api/v1/inventory/connections/{connection}/mail-scans"),
        who,
    )
    .call()
    .await
}

async fn consent_scan_and_disconnect(store: Store) {
    let (p, fake) = google_platform(store).await;
    let admin = p.tenant("Acme").await;

    // The seller consents at Google; the app page posts what came back.
    let url = authorize(&p, &admin).await;
    assert!(
        url.starts_with("https://accounts.google.com/o/oauth2/v2/auth?"),
        "{url}"
    );
    assert!(
        url.contains(&format!(
            "redirect_uri={}",
            "https%3A%2F%2Fapp.example.test%2Fgmail%2Fcallback"
        )),
        "{url}"
    );
    let (code, state) = fake.consent(&url);
    let resp = callback(&p, &admin, &state, &code).await;
    assert_eq!(resp.status(), 201);
    let connection: Value = resp.json().await.unwrap();
    let cid = connection["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            &connection["provider"],
            &connection["account"],
            &connection["status"]
        ),
        (
            &json!("gmail"),
            &json!("seller@example.test"),
            &json!("active")
        )
    );
    // The state is used once; the code too.
    let again = callback(&p, &admin, &state, &code).await;
    assert_eq!(problem(again, 422).await["code"], "inventory.unknown_state");
    let url2 = authorize(&p, &admin).await;
    let (_, state2) = fake.consent(&url2);
    let reused = callback(&p, &admin, &state2, &code).await;
    assert_eq!(
        problem(reused, 422).await["code"],
        "inventory.invalid_grant"
    );
    // Tokens are kept sealed, never answered.
    let stored: String = {
        let cid = cid.clone();
        p.state
            .db
            .read(move |conn| {
                Ok(connections::table
                    .find(&cid)
                    .select(connections::credentials)
                    .first(conn)?)
            })
            .await
            .unwrap()
    };
    assert!(!stored.contains("fake-refresh"), "{stored}");
    let listed = p
        .get(&admin, "/api/v1/inventory/connections")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !listed.contains("fake-refresh") && !listed.contains("ya29"),
        "{listed}"
    );
    // A mailbox is connected by consent only.
    let pasted = p
        .authed(Method::POST, "/api/v1/inventory/connections", &admin)
        .json(&json!({"provider": "gmail", "refresh_token": "1//stolen"}))
        .call()
        .await;
    assert_eq!(
        problem(pasted, 422).await["code"],
        "inventory.consent_required"
    );

    // Two Amazon claims wait: the jar's (not filed yet), and the lid's filed as case
    // 1234567890.
    let jar = amazon_claim(&p, &admin, "JAR-1").await;
    let lid = amazon_claim(&p, &admin, "LID-2").await;
    let filed: Value = p
        .authed(
            Method::PATCH,
            &format!("/api/v1/inventory/claims/{lid}"),
            &admin,
        )
        .json(&json!({"status": "processing", "external_reference": "1234567890"}))
        .value()
        .await;
    assert_eq!(filed["status"], "processing");
    // Amazon's notice for the jar's SKU names no case: evidence, not approval.
    fake.mail(
        "m1",
        "Your FBA reimbursement",
        "We reimbursed you for inventory lost in our fulfillment center.\n\
         Reimbursement ID: 2846571093\nMSKU: JAR-1\nQuantity: 150\nAmount: $3,000.00 USD\n",
    );
    // Amazon's answer on the lid's case with a reimbursement: approved.
    fake.mail(
        "m2",
        "Case 1234567890: reimbursement issued",
        "Hello,\nCase ID: 1234567890\nReimbursement ID: 5550001\nMSKU: LID-2\n",
    );
    fake.mail(
        "m3",
        "Your reimbursement report",
        "Nothing to do with claims: at all\n",
    );
    // Anyone can send a seller mail: a spoofed Amazon sender Gmail did not authenticate, and
    // a real Amazon address that is not the reimbursement sender (a buyer's message relayed
    // by Amazon), move nothing.
    fake.mail_from(
        "m4",
        agora_testkit::fake_google::AMAZON,
        false,
        "Case 1234567890",
        "Case ID: 1234567890\nReimbursement ID: 666\n",
    );
    fake.mail_from(
        "m5",
        "Buyer <buyer-xyz@marketplace.amazon.com>",
        true,
        "Reimbursement",
        "Case ID: 1234567890\nReimbursement ID: 667\nMSKU: JAR-1\n",
    );
    let before = p
        .events_of("agora.inventory.claim.status_changed")
        .await
        .len();
    let report: Value = scan(&p, &admin, &cid).await.json().await.unwrap();
    assert_eq!(
        report,
        json!({"found": 4, "read": 4, "attached": 2, "approved": 1}),
        "m5 is not from a trusted sender: not even found"
    );
    let jar_now = claim_of(&p, &admin, &jar).await;
    assert_eq!(
        jar_now["status"], "pending",
        "a SKU's notice is evidence only"
    );
    let email = jar_now["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "email")
        .expect("the reimbursement mail attached")
        .clone();
    assert_eq!(email["reference"], "gmail:m1");
    assert!(
        email["description"]
            .as_str()
            .unwrap()
            .contains("reimbursement 2846571093"),
        "{email}"
    );
    let lid_now = claim_of(&p, &admin, &lid).await;
    assert_eq!(lid_now["status"], "approved");
    let references: Vec<&str> = lid_now["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "email")
        .map(|e| e["reference"].as_str().unwrap())
        .collect();
    assert_eq!(references, ["gmail:m2"], "the spoofed mail is not evidence");
    let moves: Vec<String> = p.events_of("agora.inventory.claim.status_changed").await[before..]
        .iter()
        .map(|e| {
            let m = ev::ClaimStatusChanged::decode(e.data.as_slice()).unwrap();
            format!("{}>{} by {}", m.from_status, m.to_status, m.actor_id)
        })
        .collect();
    assert_eq!(moves, [format!("processing>approved by gmail:{cid}")]);

    // A reimbursement counts once: the same id on another filed case approves nothing.
    let cap = amazon_claim(&p, &admin, "CAP-3").await;
    p.authed(
        Method::PATCH,
        &format!("/api/v1/inventory/claims/{cap}"),
        &admin,
    )
    .json(&json!({"status": "processing", "external_reference": "777"}))
    .value()
    .await;
    fake.mail(
        "m6",
        "Case 777",
        "Case ID: 777\nReimbursement ID: 5550001\n",
    );
    // Each mail is read once; new ones are read next time, after the access token is refused
    // early and a new one is fetched with the refresh token.
    fake.expire_access_tokens();
    let report: Value = scan(&p, &admin, &cid).await.json().await.unwrap();
    assert_eq!(
        report,
        json!({"found": 5, "read": 1, "attached": 1, "approved": 0})
    );
    assert_eq!(claim_of(&p, &admin, &cap).await["status"], "processing");
    let scanned = p
        .get(&admin, &format!("/api/v1/inventory/connections/{cid}"))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert!(scanned["last_synced_at"].is_string(), "{scanned}");

    // The seller revokes the application at Google: the scan says so, the connection waits.
    fake.revoke_grants();
    let refused = scan(&p, &admin, &cid).await;
    assert_eq!(
        problem(refused, 409).await["code"],
        "inventory.reauth_required"
    );
    let stopped = p
        .get(&admin, &format!("/api/v1/inventory/connections/{cid}"))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(stopped["status"], "reauth_required");
    assert!(
        stopped["last_error"]
            .as_str()
            .unwrap()
            .contains("expired or revoked")
    );
    let still = scan(&p, &admin, &cid).await;
    assert_eq!(
        problem(still, 409).await["code"],
        "inventory.reauth_required"
    );
    // Consenting again brings the same connection back.
    let url = authorize(&p, &admin).await;
    let (code, state) = fake.consent(&url);
    let back: Value = callback(&p, &admin, &state, &code)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&back["id"], &back["status"]),
        (&json!(cid), &json!("active"))
    );
    let report: Value = scan(&p, &admin, &cid).await.json().await.unwrap();
    assert_eq!(report["read"], 0);

    // Disconnecting revokes the grant at Google, then forgets it.
    let revoked_before = fake.revoked().len();
    let resp = p
        .authed(
            Method::DELETE,
            &format!("/api/v1/inventory/connections/{cid}"),
            &admin,
        )
        .call()
        .await;
    assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
    let revoked = fake.revoked();
    assert_eq!(revoked.len(), revoked_before + 1);
    assert!(revoked.last().unwrap().starts_with("1//fake-refresh"));
    let gone = p
        .get(&admin, &format!("/api/v1/inventory/connections/{cid}"))
        .await;
    assert_eq!(gone.status(), 404);
}

async fn states_belong_to_their_caller(store: Store) {
    let (p, fake) = google_platform(store).await;
    let acme = p.tenant("Acme").await;
    let colleague = p
        .member(&acme, "ops@acme.test", &["inventory:manage"])
        .await;
    let globex = p.tenant("Globex").await;

    let url = authorize(&p, &acme).await;
    let (code, state) = fake.consent(&url);
    // Another tenant's admin, or a colleague, cannot complete it (nor use it up).
    for who in [&globex, &colleague] {
        let resp = callback(&p, who, &state, &code).await;
        assert_eq!(problem(resp, 422).await["code"], "inventory.unknown_state");
    }
    // A reader may not connect anything.
    let reader = p.member(&acme, "reader@acme.test", &[]).await;
    let resp = p
        .authed(
            Method::POST,
            "/api/v1/inventory/connections/gmail/authorize",
            &reader,
        )
        .call()
        .await;
    assert_eq!(resp.status(), 403);
    // The one who started it can.
    let connection: Value = callback(&p, &acme, &state, &code)
        .await
        .json()
        .await
        .unwrap();
    let cid = connection["id"].as_str().unwrap();
    // Another tenant sees, scans and removes none of it.
    let path = format!("/api/v1/inventory/connections/{cid}");
    assert_eq!(p.get(&globex, &path).await.status(), 404);
    assert_eq!(scan(&p, &globex, cid).await.status(), 404);
    let resp = p.authed(Method::DELETE, &path, &globex).call().await;
    assert_eq!(resp.status(), 404);
    assert!(fake.revoked().is_empty());
    // A message Gmail cannot give readably is recorded as such and the others are still read.
    fake.mail("bad-id/1", "Case 1", "Case ID: 1\n");
    fake.mail("fine2", "Case 2", "Case ID: 2\n");
    let report: Value = scan(&p, &acme, cid).await.json().await.unwrap();
    assert_eq!(
        report,
        json!({"found": 2, "read": 2, "attached": 0, "approved": 0})
    );
    let report: Value = scan(&p, &acme, cid).await.json().await.unwrap();
    assert_eq!(
        report["read"], 0,
        "the unreadable one is not fetched again and again"
    );
    // A state made up, or far too long, is refused plainly.
    for state in ["made-up", &"x".repeat(600)] {
        let resp = callback(&p, &acme, state, "4/code").await;
        assert_eq!(resp.status(), 422);
    }
}
