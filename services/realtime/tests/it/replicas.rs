//! Two realtime replicas sharing Redis (`engine = "redis"`): publications, offsets, presence,
//! typing and recovery span both, ticket events consumed by either reach subscribers of both,
//! and a replica that loses Redis keeps its clients and recovers.

use std::time::Duration;

use serde_json::{Value, json};

use agora_shared::testing::Store;
use agora_testkit::eventually;

use crate::support::Ws;

async fn two_replicas_share_channels(store: Store) {
    let Some(redis) = agora_shared::testing::redis() else {
        return;
    };
    let mut kit = agora_testkit::Platform::builder(store)
        .service("tickets", "")
        .service("realtime", "engine = \"redis\"\nhistory_size = 50")
        .start()
        .await;
    let tickets = agora_tickets::start(&kit.context(), kit.shutdown.clone())
        .await
        .expect("tickets starts");
    kit.serve(tickets.service);
    let mut ctx = kit.context();
    ctx.redis = Some(redis.clone());
    let mut bases = Vec::new();
    for _ in 0..2 {
        let replica = agora_realtime::start(&ctx, kit.shutdown.clone(), None)
            .await
            .expect("replica starts");
        bases.push(format!("http://{}", replica.service.http_addr));
        kit.serve(replica.service);
    }
    kit.gateway().await;
    let (one, two) = (&bases[0], &bases[1]);
    let admin = kit.tenant("Acme").await;
    let member = kit.member(&admin, "m@acme.test", &[]).await;

    let mut b = Ws::connect(two, &member.access).await;
    b.subscribe("session:x").await;
    let mut a = Ws::connect(one, &admin.access).await;
    a.subscribe("session:x").await;
    let join = b.push().await;
    assert_eq!(
        join["join"]["info"]["user_id"],
        admin.user_id.as_str(),
        "{join}"
    );

    let r = a
        .call(json!({"publish": {"channel": "session:x", "data": {"text": "from one"}}}))
        .await;
    assert_eq!(r["published"]["offset"], 1);
    let pushed = b.push().await;
    assert_eq!(pushed["pub"]["data"]["text"], "from one", "{pushed}");
    assert_eq!(a.push().await["pub"]["offset"], 1);
    let r = b
        .call(json!({"publish": {"channel": "session:x", "data": {"text": "from two"}}}))
        .await;
    assert_eq!(
        r["published"]["offset"], 2,
        "offsets are one sequence across replicas"
    );
    assert_eq!(a.push().await["pub"]["data"]["text"], "from two");
    assert_eq!(b.push().await["pub"]["offset"], 2);

    let presence = a.call(json!({"presence": {"channel": "session:x"}})).await;
    assert_eq!(presence["presence"]["clients"].as_array().unwrap().len(), 2);
    b.call(json!({"typing": {"channel": "session:x"}})).await;
    assert_eq!(a.push().await["typing"]["user_id"], member.user_id.as_str());

    // Publications through both replicas at once: one sequence, seen in order on both.
    let sends = (0..20).map(|i| {
        let base = bases[i % 2].clone();
        let kit = &kit;
        let admin = &admin;
        async move {
            let url = format!("{base}/api/v1/realtime/publish");
            let resp = kit
                .client
                .post(url)
                .bearer_auth(&admin.access)
                .json(&json!({"channel": "session:x", "event": "tick", "data": {"i": i}}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
            resp.json::<Value>().await.unwrap()["offset"]
                .as_u64()
                .unwrap()
        }
    });
    let mut offsets = futures::future::join_all(sends).await;
    offsets.sort();
    assert_eq!(offsets, (3..=22).collect::<Vec<_>>());
    for ws in [&mut a, &mut b] {
        let mut seen = Vec::new();
        for _ in 0..20 {
            seen.push(ws.push().await["pub"]["offset"].as_u64().unwrap());
        }
        assert_eq!(seen, (3..=22).collect::<Vec<_>>());
    }

    // Recovery on the other replica.
    let mut c = Ws::connect(one, &member.access).await;
    let sub = c.subscribe("session:x").await;
    let epoch = sub["epoch"].clone();
    drop(c);
    a.call(json!({"publish": {"channel": "session:x", "data": {"text": "missed"}}}))
        .await;
    let mut c = Ws::connect(two, &member.access).await;
    let r = c
        .call(json!({"subscribe": {"channel": "session:x", "recover": true, "offset": 22, "epoch": epoch}}))
        .await;
    assert_eq!(r["subscribed"]["recovered"], true, "{r}");
    assert_eq!(r["subscribed"]["publications"][0]["data"]["text"], "missed");
    drop(c);

    // A ticket event, consumed by one replica, reaches dashboards on both.
    let mut d1 = Ws::connect(one, &member.access).await;
    d1.subscribe("dashboard").await;
    let mut d2 = Ws::connect(two, &member.access).await;
    d2.subscribe("dashboard").await;
    kit.ticket(
        &admin,
        json!({"title": "Splice", "category": "REPAIR", "priority": "LOW"}),
    )
    .await;
    assert_eq!(d1.next_pub().await["event"], "ticket.created");
    assert_eq!(d2.next_pub().await["event"], "ticket.created");

    // Redis drops both replicas' feeds: their clients stay; once the feeds are back, a client
    // that missed a publication meanwhile is told to recover, and does.
    let fanout = redis.key("rt:fanout");
    let listeners = || {
        let (redis, fanout) = (redis.clone(), fanout.clone());
        async move {
            redis
                .run(|mut conn| async move {
                    redis::cmd("PUBSUB")
                        .arg("NUMSUB")
                        .arg(&fanout)
                        .query_async::<(String, u64)>(&mut conn)
                        .await
                })
                .await
                .map(|(_, n)| n)
                .unwrap_or(0)
        }
    };
    // Drain pushes the earlier steps left (b saw a's messages; a saw its own).
    let before = b
        .call(json!({"history": {"channel": "session:x", "limit": 1}}))
        .await;
    let last = before["history"]["offset"].as_u64().unwrap();
    redis
        .run(|mut conn| async move {
            redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query_async::<u64>(&mut conn)
                .await
        })
        .await
        .expect("client kill");
    let r = a
        .call(json!({"publish": {"channel": "session:x", "data": {"text": "while away"}}}))
        .await;
    assert!(
        r["published"].is_object(),
        "publishing needs Redis, which answers: {r}"
    );
    eventually(
        Duration::from_secs(10),
        "both replicas listen again",
        || async {
            let n = listeners().await;
            if n >= 2 {
                Ok(())
            } else {
                Err(format!("{n} listening"))
            }
        },
    )
    .await;
    let pong = b.call(json!({"ping": {}})).await;
    assert_eq!(pong["pong"], json!({}), "the client stayed connected");
    a.call(json!({"publish": {"channel": "session:x", "data": {"text": "after"}}}))
        .await;
    let (code, _) = b.closed().await;
    assert_eq!(code, 4009, "a gap is reported, not skipped");
    let mut b = Ws::connect(two, &member.access).await;
    let r = b
        .call(json!({"subscribe": {"channel": "session:x", "recover": true, "offset": last, "epoch": epoch}}))
        .await;
    assert_eq!(r["subscribed"]["recovered"], true, "{r}");
    let texts: Vec<&str> = r["subscribed"]["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["while away", "after"]);
}

// One store is enough (the replicas share Redis, not the store), and one run: dropping the
// Redis server's pub/sub connections would disturb a second replica pair running beside it.
#[actix_web::test]
async fn two_replicas_sharing_redis() {
    two_replicas_share_channels(agora_shared::testing::TestDb::sqlite).await
}
