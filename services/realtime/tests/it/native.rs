//! The native protocol through the gateway: chat, presence, typing and signals, recovery,
//! history, bad input.

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::Store;

use crate::support::{Ws, platform};

async fn chat_presence_typing_and_signals(store: Store) {
    let p = platform(store, "").await;
    let admin = p.tenant("Acme").await;
    let member = p.member(&admin, "m1@acme.test", &[]).await;
    let other = p.member(&admin, "m2@acme.test", &[]).await;
    let globex = p.tenant("Globex").await;
    let base = p.url("");
    let mut a = Ws::connect(&base, &admin.access).await;
    let mut b = Ws::connect(&base, &member.access).await;
    let mut c = Ws::connect(&base, &other.access).await;
    let mut x = Ws::connect(&base, &globex.access).await;

    let sub = a.subscribe("session:s1").await;
    assert_eq!(sub["offset"], 0);
    assert_eq!(sub["recovered"], false);
    assert!(sub["epoch"].as_str().is_some_and(|e| !e.is_empty()));
    b.subscribe("session:s1").await;
    let join = a.push().await;
    assert_eq!(join["join"]["channel"], "session:s1");
    assert_eq!(join["join"]["info"]["user_id"], member.user_id.as_str());
    assert_eq!(join["join"]["info"]["transport"], "native");
    c.subscribe("session:s1").await;
    assert_eq!(
        a.push().await["join"]["info"]["user_id"],
        other.user_id.as_str()
    );
    assert_eq!(
        b.push().await["join"]["info"]["user_id"],
        other.user_id.as_str()
    );
    // The same name in another tenant is another channel.
    x.subscribe("session:s1").await;

    let published = a
        .call(json!({"publish": {"channel": "session:s1", "data": {"text": "hello"}}}))
        .await;
    assert_eq!(published["published"]["offset"], 1, "{published}");
    for ws in [&mut b, &mut c] {
        let pushed = ws.push().await;
        let p = &pushed["pub"];
        assert_eq!(p["channel"], "session:s1", "{pushed}");
        assert_eq!(p["offset"], 1);
        assert_eq!(p["event"], "new_message");
        assert_eq!(p["data"]["text"], "hello");
        assert_eq!(p["data"]["session_id"], "s1");
        assert_eq!(p["data"]["user_id"], admin.user_id.as_str());
        assert!(p["data"]["message_id"].is_string());
        assert_eq!(p["info"]["user_id"], admin.user_id.as_str());
    }
    // The publisher hears its own message too (its offset follows).
    assert_eq!(a.push().await["pub"]["offset"], 1);
    x.quiet(300).await;

    let presence = b.call(json!({"presence": {"channel": "session:s1"}})).await;
    let mut users: Vec<&str> = presence["presence"]["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user_id"].as_str().unwrap())
        .collect();
    users.sort();
    let mut want = vec![
        admin.user_id.as_str(),
        member.user_id.as_str(),
        other.user_id.as_str(),
    ];
    want.sort();
    assert_eq!(users, want);
    let stats = b
        .call(json!({"presence_stats": {"channel": "session:s1"}}))
        .await;
    assert_eq!(
        stats["presence_stats"],
        json!({"num_clients": 3, "num_users": 3})
    );
    let theirs = x.call(json!({"presence": {"channel": "session:s1"}})).await;
    assert_eq!(theirs["presence"]["clients"].as_array().unwrap().len(), 1);

    // Typing reaches the others, never the typist, and is never kept.
    b.call(json!({"typing": {"channel": "session:s1", "typing": true}}))
        .await;
    for ws in [&mut a, &mut c] {
        let t = ws.push().await;
        assert_eq!(
            t["typing"],
            json!({"channel": "session:s1", "user_id": member.user_id, "typing": true})
        );
    }
    b.quiet(200).await;
    let history = b.call(json!({"history": {"channel": "session:s1"}})).await;
    assert_eq!(
        history["history"]["publications"].as_array().unwrap().len(),
        1
    );

    // A signal goes to the named user only.
    a.call(json!({"signal": {"channel": "session:s1", "to_user_id": member.user_id, "data": {"sdp": "offer"}}}))
        .await;
    let s = b.push().await;
    assert_eq!(
        s["signal"],
        json!({"channel": "session:s1", "from_user_id": admin.user_id, "data": {"sdp": "offer"}})
    );
    c.quiet(200).await;

    b.call(json!({"unsubscribe": {"channel": "session:s1"}}))
        .await;
    let left = a.push().await;
    assert_eq!(left["leave"]["info"]["user_id"], member.user_id.as_str());

    // What clients may not do, each named.
    assert_eq!(
        b.refused(json!({"publish": {"channel": "session:s1", "data": {"text": "x"}}}))
            .await,
        "not_subscribed"
    );
    b.subscribe("tenant").await;
    // Tenant-wide channels tell no joins (every arrival would reach everyone).
    c.subscribe("tenant").await;
    b.quiet(200).await;
    assert_eq!(
        b.refused(json!({"publish": {"channel": "tenant", "data": {"text": "x"}}}))
            .await,
        "forbidden"
    );
    assert_eq!(
        b.refused(json!({"subscribe": {"channel": "tenant"}})).await,
        "already_subscribed"
    );
    assert_eq!(
        b.refused(json!({"subscribe": {"channel": format!("user:{}", admin.user_id)}}))
            .await,
        "forbidden"
    );
    b.subscribe(&format!("user:{}", member.user_id)).await;
    for bad in [
        "Session:s1",
        "session: s1",
        "session:s1/x",
        "session:",
        "lobby",
    ] {
        assert_eq!(
            b.refused(json!({"subscribe": {"channel": bad}})).await,
            "bad_request",
            "{bad}"
        );
    }
    assert_eq!(
        a.refused(json!({"publish": {"channel": "session:s1", "data": {"text": "  "}}}))
            .await,
        "bad_request"
    );
    assert_eq!(
        a.refused(json!({"publish": {"channel": "session:s1", "data": {"text": "x", "user_id": "someone"}}}))
            .await,
        "bad_request"
    );
    assert_eq!(
        a.refused(json!({"subscribe": {}, "presence": {"channel": "tenant"}}))
            .await,
        "bad_request"
    );
    assert_eq!(
        a.refused(json!({"connect": {"token": "x"}})).await,
        "already_connected"
    );
    a.send_text("{not json".into()).await;
    let reply = a.next_json().await;
    assert_eq!(reply["error"]["code"], "bad_request", "{reply}");
    assert!(reply.get("id").is_none());
    a.send_text(r#"{"id": 41, "subscribe": {"chanel": "tenant"}}"#.into())
        .await;
    let reply = a.next_json().await;
    assert_eq!(reply["id"], 41);
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("chanel"),
        "{reply}"
    );
    let pong = a.call(json!({"ping": {}})).await;
    assert_eq!(pong["pong"], json!({}));

    // Closed connections leave nothing behind: no connection, subscription or presence.
    drop((a, b, c, x));
    let rt = p.realtime.clone();
    agora_testkit::eventually(
        std::time::Duration::from_secs(5),
        "connections released",
        || {
            let rt = rt.clone();
            async move {
                let open = rt.connections.load(std::sync::atomic::Ordering::Relaxed);
                let subs = rt.hub.local.subscriptions();
                if open == 0 && subs == 0 {
                    Ok(())
                } else {
                    Err(format!("{open} open, {subs} subscriptions"))
                }
            }
        },
    )
    .await;
    let key = agora_realtime::channel::Key::new(&admin.tenant_id, "session:s1");
    assert_eq!(rt.hub.engine.presence(&key).await.unwrap(), vec![]);
}

async fn publishes_are_rate_limited_and_sized(store: Store) {
    let p = platform(
        store,
        "client_publish_burst = 3\nclient_publish_per_sec = 1\nmax_message_bytes = 2048\nclient_command_burst = 12\nclient_commands_per_sec = 1\nmax_connections_per_user = 2",
    )
    .await;
    let admin = p.tenant("Acme").await;
    let mut a = Ws::connect(&p.url(""), &admin.access).await;
    a.subscribe("conversation:c1").await;
    let publish = json!({"publish": {"channel": "conversation:c1", "data": {"text": "hi"}}});
    for _ in 0..3 {
        let r = a.call(publish.clone()).await;
        assert!(r["published"].is_object(), "{r}");
    }
    assert_eq!(a.refused(publish.clone()).await, "too_many_requests");
    // Every other command has an allowance too (5 spent so far, with the subscribe).
    for _ in 0..7 {
        assert_eq!(a.call(json!({"ping": {}})).await["pong"], json!({}));
    }
    assert_eq!(a.refused(json!({"ping": {}})).await, "too_many_requests");
    // A user holds at most two connections here: the third is refused and closed.
    let _second = Ws::connect(&p.url(""), &admin.access).await;
    let mut third = Ws::open(&p.url("")).await;
    assert_eq!(
        third
            .refused(json!({"connect": {"token": admin.access}}))
            .await,
        "too_many_connections"
    );
    assert_eq!(third.closed().await.0, 4029);
    // A frame larger than the limit closes the connection.
    let big =
        json!({"publish": {"channel": "conversation:c1", "data": {"text": "x".repeat(4096)}}});
    a.send_text(big.to_string()).await;
    let (code, _) = a.closed().await;
    assert_eq!(code, 4000);
}

async fn recovery_after_a_drop(store: Store) {
    let p = platform(store, "history_size = 25").await;
    let admin = p.tenant("Acme").await;
    let member = p.member(&admin, "m@acme.test", &[]).await;
    let base = p.url("");
    let publish = |n: usize| {
        let p = &p;
        let admin = &admin;
        async move {
            for i in 0..n {
                let body = json!({"channel": "conversation:c9", "event": "agent_response", "data": {"n": i}});
                let resp = p
                    .authed(Method::POST, "/api/v1/realtime/publish", admin)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
            }
        }
    };
    publish(2).await;
    let mut b = Ws::connect(&base, &member.access).await;
    let sub = b.subscribe("conversation:c9").await;
    let (offset, epoch) = (sub["offset"].as_u64().unwrap(), sub["epoch"].clone());
    assert_eq!(offset, 2);
    drop(b);

    publish(20).await;
    let mut b = Ws::connect(&base, &member.access).await;
    let r = b
        .call(json!({"subscribe": {"channel": "conversation:c9", "recover": true, "offset": offset, "epoch": epoch}}))
        .await;
    let s = &r["subscribed"];
    assert_eq!(s["recovered"], true, "{r}");
    let offsets: Vec<u64> = s["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, (3..=22).collect::<Vec<_>>());
    let ns: Vec<u64> = s["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, (0..20).collect::<Vec<_>>());
    assert_eq!(s["publications"][0]["event"], "agent_response");
    assert_eq!(s["offset"], 22);
    // Live publications continue from there.
    publish(1).await;
    assert_eq!(b.push().await["pub"]["offset"], 23);
    drop(b);

    // Nothing missed: recovered, nothing to give.
    let mut b = Ws::connect(&base, &member.access).await;
    let r = b
        .call(json!({"subscribe": {"channel": "conversation:c9", "recover": true, "offset": 23, "epoch": epoch}}))
        .await;
    assert_eq!(r["subscribed"]["recovered"], true);
    assert_eq!(r["subscribed"]["publications"], json!([]));
    drop(b);

    // More missed than the history keeps: not recovered, the client reloads.
    publish(30).await;
    let mut b = Ws::connect(&base, &member.access).await;
    let r = b
        .call(json!({"subscribe": {"channel": "conversation:c9", "recover": true, "offset": 23, "epoch": epoch}}))
        .await;
    assert_eq!(r["subscribed"]["recovered"], false, "{r}");
    assert_eq!(r["subscribed"]["publications"], json!([]));
    assert_eq!(r["subscribed"]["offset"], 53);
    // Another epoch's position is never taken for this one's.
    b.call(json!({"unsubscribe": {"channel": "conversation:c9"}}))
        .await;
    let r = b
        .call(json!({"subscribe": {"channel": "conversation:c9", "recover": true, "offset": 52, "epoch": "elsewhere"}}))
        .await;
    assert_eq!(r["subscribed"]["recovered"], false);
    assert_eq!(
        b.refused(json!({"subscribe": {"channel": "conversation:c8", "recover": true}}))
            .await,
        "bad_request"
    );

    // History: the newest kept, oldest first; after a position; a lost position refused.
    let h = b
        .call(json!({"history": {"channel": "conversation:c9", "limit": 5}}))
        .await;
    let offsets: Vec<u64> = h["history"]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![49, 50, 51, 52, 53]);
    let h = b
        .call(json!({"history": {"channel": "conversation:c9", "since": {"offset": 50, "epoch": epoch}}}))
        .await;
    assert_eq!(h["history"]["publications"].as_array().unwrap().len(), 3);
    assert_eq!(
        b.refused(json!({"history": {"channel": "conversation:c9", "since": {"offset": 1, "epoch": epoch}}}))
            .await,
        "unrecoverable_position"
    );
    let http = p
        .authed(
            Method::GET,
            &format!(
                "/api/v1/realtime/channels/conversation:c9/history?limit=2&since_offset=50&epoch={}",
                epoch.as_str().unwrap()
            ),
            &admin,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(http.status(), 200);
    let body: Value = http.json().await.unwrap();
    assert_eq!(body["publications"][0]["offset"], 51);
    assert_eq!(body["publications"].as_array().unwrap().len(), 2);
}

crate::on_every_store!(
    chat_presence_typing_and_signals,
    publishes_are_rate_limited_and_sized,
    recovery_after_a_drop,
);
