//! One conformance suite over both engines, in memory and in Redis: offsets and epochs,
//! history and recovery positions, trimming, presence, delivery to local subscribers (with
//! typing never echoed and signals to their one user), tenants apart, and a subscriber that
//! cannot keep up told to close.

use std::{sync::Arc, time::Duration};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use agora_realtime::{
    channel::Key,
    hub::{
        ClientInfo, Engine, Local, MemoryEngine, Message, Position, Push, Retention, Subscriber,
    },
    redis_engine::RedisEngine,
};

const RETENTION: Retention = Retention {
    size: 5,
    ttl: Duration::from_secs(60),
    meta_ttl: Duration::from_secs(300),
};

fn info(client: &str, user: &str) -> ClientInfo {
    ClientInfo {
        client: client.into(),
        user_id: user.into(),
        transport: "native".into(),
    }
}

fn subscriber(client: &str, user: &str, queue: usize) -> (Subscriber, mpsc::Receiver<Push>) {
    let (tx, rx) = mpsc::channel(queue);
    let sub = Subscriber {
        client: Arc::from(client),
        user_id: Arc::from(user),
        tx,
        overflow: CancellationToken::new(),
    };
    (sub, rx)
}

/// The next push, within 5 s.
async fn next(rx: &mut mpsc::Receiver<Push>) -> Push {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a push within 5 s")
        .expect("open")
}

/// Nothing pushed within 300 ms.
async fn nothing(rx: &mut mpsc::Receiver<Push>) {
    if let Ok(Some(push)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        panic!("unexpected push {push:?}");
    }
}

async fn conformance(engine: Arc<dyn Engine>, local: Arc<Local>) {
    let tenant = uuid::Uuid::now_v7().to_string();
    let key = Key::new(&tenant, "session:x");

    // Reading a channel never opened keeps nothing: offset 0 of no epoch, every time.
    for _ in 0..2 {
        let read = engine.history(&key, None, 10).await.unwrap();
        assert_eq!(read.position, Position::none());
        assert!(read.publications.is_empty());
    }
    // Opened (a subscriber): offset 0 in a fresh epoch; offsets then follow one another.
    let empty = engine.open(&key, None, 10).await.unwrap();
    assert_eq!(empty.position.offset, 0);
    assert!(!empty.position.epoch.is_empty());
    assert!(empty.publications.is_empty());
    let epoch = empty.position.epoch.clone();
    for i in 1..=3u64 {
        let (p, e) = engine
            .publish(&key, "new_message", json!({"i": i}), Some(info("c0", "u0")))
            .await
            .unwrap();
        assert_eq!((p.offset, e.as_str()), (i, epoch.as_str()));
    }
    let at = |offset: u64, epoch: &str| Position {
        offset,
        epoch: epoch.to_owned(),
    };
    let newest = engine.history(&key, None, 2).await.unwrap();
    let offsets: Vec<u64> = newest.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![2, 3]);
    assert_eq!(newest.position, at(3, &epoch));
    assert_eq!(newest.publications[1].data, json!({"i": 3}));
    assert_eq!(newest.publications[1].info, Some(info("c0", "u0")));
    let since = engine
        .history(&key, Some(&at(1, &epoch)), 10)
        .await
        .unwrap();
    assert!(since.complete);
    assert_eq!(since.publications.len(), 2);
    let limited = engine.history(&key, Some(&at(1, &epoch)), 1).await.unwrap();
    assert!(limited.complete, "a limit is not a lost position");
    assert_eq!(limited.publications[0].offset, 2);
    assert!(
        engine
            .history(&key, Some(&at(3, &epoch)), 10)
            .await
            .unwrap()
            .complete
    );
    assert!(
        !engine
            .history(&key, Some(&at(1, "other")), 10)
            .await
            .unwrap()
            .complete
    );
    assert!(
        !engine
            .history(&key, Some(&at(9, &epoch)), 10)
            .await
            .unwrap()
            .complete
    );

    // Trimmed to the last five: an older position is no longer recoverable.
    for i in 4..=10u64 {
        engine
            .publish(&key, "tick", json!({"i": i}), None)
            .await
            .unwrap();
    }
    let kept = engine.history(&key, None, 100).await.unwrap();
    let offsets: Vec<u64> = kept.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![6, 7, 8, 9, 10]);
    assert!(
        !engine
            .history(&key, Some(&at(3, &epoch)), 100)
            .await
            .unwrap()
            .complete
    );
    assert!(
        engine
            .history(&key, Some(&at(5, &epoch)), 100)
            .await
            .unwrap()
            .complete
    );

    // Another tenant's channel of the same name is another stream.
    let theirs = Key::new(&uuid::Uuid::now_v7().to_string(), "session:x");
    let (p, _) = engine
        .publish(&theirs, "tick", json!({}), None)
        .await
        .unwrap();
    assert_eq!(p.offset, 1);
    assert!(engine.presence(&theirs).await.unwrap().is_empty());

    // Presence.
    engine.presence_add(&key, &info("c1", "u1")).await.unwrap();
    engine.presence_add(&key, &info("c2", "u2")).await.unwrap();
    let mut present: Vec<String> = engine
        .presence(&key)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.client)
        .collect();
    present.sort();
    assert_eq!(present, vec!["c1", "c2"]);
    engine.presence_remove(&key, "c1").await.unwrap();
    assert_eq!(engine.presence(&key).await.unwrap(), vec![info("c2", "u2")]);

    // Delivery to this process's subscribers, wherever it was published.
    let (one, mut one_rx) = subscriber("c1", "u1", 16);
    let (two, mut two_rx) = subscriber("c2", "u2", 16);
    assert!(local.add(&key, one));
    assert!(local.add(&key, two));
    let (p, e) = engine
        .publish(&key, "tick", json!({"n": 1}), None)
        .await
        .unwrap();
    for rx in [&mut one_rx, &mut two_rx] {
        match &next(rx).await.message {
            Message::Pub { epoch, publication } => {
                assert_eq!((epoch.as_str(), publication.offset), (e.as_str(), p.offset));
            }
            other => panic!("{other:?}"),
        }
    }
    let typing = Message::Typing {
        client: "c1".into(),
        user_id: "u1".into(),
        typing: true,
    };
    engine.broadcast(&key, typing.clone()).await.unwrap();
    assert_eq!(next(&mut two_rx).await.message, typing);
    nothing(&mut one_rx).await;
    let signal = Message::Signal {
        from_user_id: "u2".into(),
        to_user_id: "u1".into(),
        data: json!({"sdp": "x"}),
    };
    engine.broadcast(&key, signal.clone()).await.unwrap();
    assert_eq!(next(&mut one_rx).await.message, signal);
    nothing(&mut two_rx).await;
    // Nothing of another tenant's channel reaches them.
    engine
        .publish(&theirs, "tick", json!({}), None)
        .await
        .unwrap();
    nothing(&mut one_rx).await;

    // A subscriber that does not keep up is told to close; the others are not held back.
    let (slow, _slow_rx) = subscriber("c3", "u3", 1);
    let overflow = slow.overflow.clone();
    assert!(local.add(&key, slow));
    for n in 0..3 {
        engine
            .publish(&key, "tick", json!({"n": n}), None)
            .await
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(5), overflow.cancelled())
        .await
        .expect("the slow subscriber is told to close");
    for _ in 0..3 {
        assert!(matches!(
            next(&mut two_rx).await.message,
            Message::Pub { .. }
        ));
    }
    local.remove(&key, "c3");
    local.remove(&key, "c1");
    local.remove(&key, "c2");
    assert_eq!(local.subscriptions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_engine_conforms() {
    let local = Arc::new(Local::default());
    let engine = Arc::new(MemoryEngine::new(local.clone(), RETENTION));
    conformance(engine, local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_engine_conforms() {
    let Some(redis) = agora_shared::testing::redis() else {
        return;
    };
    let local = Arc::new(Local::default());
    let engine = Arc::new(RedisEngine::new(redis.clone(), local.clone(), RETENTION));
    let stop = CancellationToken::new();
    tokio::spawn(engine.clone().listen(stop.clone()));
    // Listening before anything is published.
    let fanout = redis.key("rt:fanout");
    agora_testkit::eventually(Duration::from_secs(5), "the engine listens", || {
        let (redis, fanout) = (redis.clone(), fanout.clone());
        async move {
            let (_, n): (String, u64) = redis
                .run(|mut conn| async move {
                    redis::cmd("PUBSUB")
                        .arg("NUMSUB")
                        .arg(&fanout)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            if n >= 1 {
                Ok(())
            } else {
                Err("not yet".to_owned())
            }
        }
    })
    .await;
    conformance(engine, local).await;
    stop.cancel();
}
