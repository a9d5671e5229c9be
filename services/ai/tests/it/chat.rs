//! The field-force assistant through the gateway: questions about tickets made through the
//! gateway answered from tickets and analytics, conversations kept per user and seen by no
//! one else, another tenant's tickets never looked up.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::{Call, Store};

use crate::support::{Platform, Session, with_analytics};

async fn say(p: &Platform, who: &Session, conversation: Option<&str>, message: &str) -> Value {
    let mut body = json!({"message": message});
    if let Some(c) = conversation {
        body["conversation_id"] = json!(c);
    }
    let (status, out) = p.post_as(who, "/api/v1/ai/chat", body).await;
    assert_eq!(status, 200, "{out}");
    out
}

async fn the_assistant_answers_from_the_tenants_tickets(store: Store) {
    let p = with_analytics(store).await;
    let admin = p.tenant("Acme").await;
    let colleague = p.member(&admin, "bo@acme.test", &[]).await;
    let body = json!({"name": "North crew", "zone": "Northern", "skills": ["repair"], "daily_capacity": 4});
    p.authed(Method::POST, "/api/v1/teams", &admin)
        .json(&body)
        .value()
        .await;
    for (title, zone, priority) in [
        ("Mast down", "Northern", "URGENT"),
        ("Cable cut", "Northern", "URGENT"),
        ("Meter check", "Central", "LOW"),
    ] {
        p.ticket(
            &admin,
            json!({"title": title, "category": "REPAIR", "zone": zone, "priority": priority}),
        )
        .await;
    }

    let first = say(
        &p,
        &admin,
        None,
        "How many urgent tickets are open in Northern?",
    )
    .await;
    let conversation = first["conversation_id"].as_str().unwrap().to_owned();
    let reply = &first["reply"];
    assert_eq!(
        reply["content"],
        "There are 2 URGENT tickets with status OPEN in Northern. CTT-000001, CTT-000002."
    );
    assert_eq!(reply["data"]["tool"], "tickets.list");
    assert_eq!(reply["data"]["count"], 2);
    assert_eq!(first["provider"], "local");

    let about = say(
        &p,
        &admin,
        Some(&conversation),
        "What is the status of ctt-000003?",
    )
    .await;
    let text = about["reply"]["content"].as_str().unwrap();
    assert!(
        text.starts_with("CTT-000003 \"Meter check\" is OPEN, LOW priority in Central"),
        "{text}"
    );

    let who = say(
        &p,
        &admin,
        Some(&conversation),
        "Who should take CTT-000001?",
    )
    .await;
    let text = who["reply"]["content"].as_str().unwrap();
    assert!(
        text.starts_with("North crew fits CTT-000001 best"),
        "{text}"
    );

    // Analytics hears the tickets on the bus: the zones at risk follow a moment later.
    let zones: Value =
        agora_testkit::eventually(Duration::from_secs(20), "zones at risk", || async {
            let v = say(&p, &admin, Some(&conversation), "Which zones are at risk?").await;
            match v["reply"]["content"] == "Northern: 0 overdue and 2 urgent of 2 open." {
                true => Ok(v),
                false => Err(v.to_string()),
            }
        })
        .await;
    assert_eq!(zones["reply"]["data"]["tool"], "insights");
    let help = say(&p, &admin, Some(&conversation), "Tell me a joke").await;
    assert!(
        help["reply"]["content"]
            .as_str()
            .unwrap()
            .starts_with("I can look up")
    );

    // The conversation is kept, in order, and is its user's alone.
    let path = format!("/api/v1/ai/chat/conversations/{conversation}");
    let before = p.authed(Method::GET, &path, &admin).value().await["messages"]
        .as_array()
        .unwrap()
        .len();
    // Ten messages at once to one conversation: every one kept, with its answer.
    let calls = (0..10).map(|i| {
        let req = p
            .authed(Method::POST, "/api/v1/ai/chat", &admin)
            .json(&json!({"message": format!("How many tickets are open? ({i})"), "conversation_id": conversation}));
        async move { req.call().await.status() }
    });
    let statuses = futures::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let kept = p.authed(Method::GET, &path, &admin).value().await;
    let messages = kept["messages"].as_array().unwrap();
    assert_eq!(messages.len(), before + 20, "{kept}");
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(
        messages[0]["content"],
        "How many urgent tickets are open in Northern?"
    );
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(
        kept["title"],
        "How many urgent tickets are open in Northern?"
    );
    assert_eq!(
        p.authed(Method::GET, &path, &colleague)
            .call()
            .await
            .status(),
        404
    );
    let (status, _) = p
        .post_as(
            &colleague,
            "/api/v1/ai/chat",
            json!({"message": "hi", "conversation_id": conversation}),
        )
        .await;
    assert_eq!(status, 404);
    let theirs = p
        .authed(Method::GET, "/api/v1/ai/chat/conversations", &colleague)
        .value()
        .await;
    assert_eq!(theirs["items"], json!([]));
    let mine = p
        .authed(Method::GET, "/api/v1/ai/chat/conversations", &admin)
        .value()
        .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);

    // Another tenant asks about the same number: its own tickets only (it has none).
    let globex = p.tenant("Globex").await;
    let other = say(&p, &globex, None, "What is the status of CTT-000001?").await;
    assert_eq!(other["reply"]["content"], "I found no ticket CTT-000001.");
    let counted = say(&p, &globex, None, "How many tickets are open?").await;
    assert_eq!(counted["reply"]["data"]["count"], 0);

    // Bad input, and deleting.
    let (status, problem) = p
        .post_as(&admin, "/api/v1/ai/chat", json!({"message": " "}))
        .await;
    assert_eq!(
        (status, crate::fields(&problem)),
        (422, vec!["message".to_owned()])
    );
    assert_eq!(
        p.authed(Method::DELETE, &path, &colleague)
            .call()
            .await
            .status(),
        404
    );
    assert_eq!(
        p.authed(Method::DELETE, &path, &admin)
            .call()
            .await
            .status(),
        204
    );
    assert_eq!(
        p.authed(Method::GET, &path, &admin).call().await.status(),
        404
    );
}

crate::on_every_store!(the_assistant_answers_from_the_tenants_tickets);
