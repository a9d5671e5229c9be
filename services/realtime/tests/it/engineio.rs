//! Engine.IO sessions spoken raw over long-polling through the gateway: what a client that
//! misbehaves (or an attacker) can and cannot do. Socket.IO's own client is exercised in
//! scripts/ci/socketio/check.mjs.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::Store;
use agora_testkit::eventually;

use crate::support::{Platform, platform, short_token};

/// A session's id, from a polling handshake.
async fn handshake(p: &Platform) -> String {
    let resp = p
        .client
        .get(p.url("/socket.io/?EIO=4&transport=polling"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    let open: Value = serde_json::from_str(body.strip_prefix('0').expect("open packet")).unwrap();
    assert_eq!(open["upgrades"], json!(["websocket"]));
    open["sid"].as_str().unwrap().to_owned()
}

async fn post(p: &Platform, sid: &str, packets: &str) -> reqwest::Response {
    p.client
        .post(p.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}")))
        .body(packets.to_owned())
        .send()
        .await
        .unwrap()
}

async fn poll(p: &Platform, sid: &str) -> (u16, String) {
    let resp = p
        .client
        .get(p.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}")))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn presence(p: &Platform, admin: &crate::support::Session, channel: &str) -> usize {
    let body: Value = p
        .authed(
            Method::GET,
            &format!("/api/v1/realtime/channels/{channel}/presence"),
            admin,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["clients"].as_array().unwrap().len()
}

async fn misbehaving_sessions_end(store: Store) {
    let p = platform(store, "send_queue = 64").await;
    let admin = p.tenant("Acme").await;

    // Wrong protocol version, unknown session, unknown transport: Engine.IO's errors.
    let resp = p
        .client
        .get(p.url("/socket.io/?EIO=3&transport=polling"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], 5);
    let (status, body) = poll(&p, "no-such-session").await;
    assert_eq!((status, body.contains("Session ID unknown")), (400, true));

    // A connected session that stops polling while publications pile up is dropped, and
    // leaves the channel's presence.
    let sid = handshake(&p).await;
    let token = json!({ "token": admin.access });
    assert_eq!(post(&p, &sid, &format!("40{token}")).await.status(), 200);
    let (_, connected) = poll(&p, &sid).await;
    assert!(connected.starts_with("40{"), "{connected}");
    let join = r#"421["join_conversation",{"conversation_id":"c1"}]"#;
    assert_eq!(post(&p, &sid, join).await.status(), 200);
    let (_, acked) = poll(&p, &sid).await;
    assert!(
        acked.starts_with("431[{\"channel\":\"conversation:c1\""),
        "{acked}"
    );
    assert_eq!(presence(&p, &admin, "conversation:c1").await, 1);
    for i in 0..200 {
        let resp = p
            .authed(Method::POST, "/api/v1/realtime/publish", &admin)
            .json(
                &json!({"channel": "conversation:c1", "event": "agent_response", "data": {"i": i}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    eventually(
        Duration::from_secs(5),
        "the stalled session is gone",
        || async {
            match presence(&p, &admin, "conversation:c1").await {
                0 => Ok(()),
                n => Err(format!("{n} present")),
            }
        },
    )
    .await;
    let (status, _) = poll(&p, &sid).await;
    assert_eq!(status, 400, "the session no longer exists");

    // A token that expires ends its session with an Engine.IO close (the client reconnects
    // with a fresh one).
    let sid = handshake(&p).await;
    let short = json!({ "token": short_token(&p, &admin, 2) });
    post(&p, &sid, &format!("40{short}")).await;
    let (_, connected) = poll(&p, &sid).await;
    assert!(connected.starts_with("40{"), "{connected}");
    let (status, closed) = poll(&p, &sid).await;
    assert_eq!((status, closed.as_str()), (200, "1"), "closed at expiry");

    // A failed connect ends its session: one attempt each.
    let sid = handshake(&p).await;
    post(&p, &sid, r#"40{"token":"forged"}"#).await;
    let (_, refused) = poll(&p, &sid).await;
    assert!(refused.starts_with("44{"), "{refused}");
    eventually(
        Duration::from_secs(5),
        "the refused session is gone",
        || async {
            match poll(&p, &sid).await {
                (400, _) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    // A session that never connects is dropped after 10 s.
    let sid = handshake(&p).await;
    let idle = p.realtime.sessions.len();
    assert!(idle >= 1);
    eventually(
        Duration::from_secs(15),
        "the idle session is gone",
        || async {
            match poll(&p, &sid).await {
                (400, _) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(
        p.realtime
            .pending
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no session waits to connect any more"
    );
}

crate::on_every_store!(misbehaving_sessions_end);
