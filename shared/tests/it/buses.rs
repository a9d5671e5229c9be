//! One conformance suite for the bus port, run against the in-process bus and Kafka (when
//! AGORA_TEST_KAFKA_BROKERS names a broker): publish and consume with CloudEvents attributes,
//! per-key order, redelivery after a member dies before committing, inbox dedupe, and
//! dead-lettering.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use agora_shared::{
    AppError,
    bus::{
        Event, EventBus, Handler, InProcessBus, SharedBus, Subscription,
        kafka::{KafkaBus, KafkaConfig},
        run_consumer,
    },
    db::KERNEL_MIGRATIONS,
    testing::{TestDb, skip_or_fail},
};

/// A bus and a fresh topic (and its dead-letter topic) on it.
struct TestBus {
    bus: SharedBus,
    topic: String,
}

fn topic_name() -> String {
    format!("agora.test-{}.events", uuid::Uuid::now_v7().simple())
}

fn memory() -> TestBus {
    TestBus {
        bus: Arc::new(InProcessBus::new()),
        topic: topic_name(),
    }
}

async fn kafka() -> Option<TestBus> {
    let Ok(brokers) = std::env::var("AGORA_TEST_KAFKA_BROKERS") else {
        skip_or_fail("kafka", "AGORA_TEST_KAFKA_BROKERS is not set");
        return None;
    };
    let config = KafkaConfig {
        brokers: Some(brokers),
        ..Default::default()
    };
    let bus = KafkaBus::new(&config).expect("kafka client");
    let topic = topic_name();
    bus.create_topics(&[topic.clone(), format!("{topic}.dlq")], 3, 1)
        .await
        .expect("topics created");
    Some(TestBus {
        bus: Arc::new(bus),
        topic,
    })
}

macro_rules! on_every_bus {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::memory()).await
                }
            )*
        }
        mod kafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(bus) = super::kafka().await {
                        super::$name(bus).await
                    }
                }
            )*
        }
    };
}

on_every_bus!(
    events_arrive_with_their_attributes_in_key_order,
    uncommitted_events_are_redelivered,
    consumers_dedupe_and_dead_letter,
);

/// A subscription to a topic that does not exist yet (a deployment without the service that
/// owns it) waits for it instead of failing, and reads it once it is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_subscriptions_wait_for_missing_topics() {
    let Ok(brokers) = std::env::var("AGORA_TEST_KAFKA_BROKERS") else {
        skip_or_fail("kafka", "AGORA_TEST_KAFKA_BROKERS is not set");
        return;
    };
    let bus = KafkaBus::new(&KafkaConfig {
        brokers: Some(brokers),
        topic_refresh_ms: 1000,
        ..Default::default()
    })
    .expect("kafka client");
    let topic = topic_name();
    let mut sub = bus.subscribe(&topic, "waiters").await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_secs(3), sub.next()).await;
    assert!(
        waiting.is_err(),
        "no event and no error while the topic is missing: {:?}",
        waiting.map(|r| r.map(|d| d.event.id))
    );
    bus.create_topics(std::slice::from_ref(&topic), 1, 1)
        .await
        .expect("topic created");
    let sent = event("k", 7);
    bus.publish(&topic, &sent).await.unwrap();
    let got = next(&mut sub).await;
    assert_eq!(got.event.id, sent.id);
}

fn event(key: &str, seq: u32) -> Event {
    let mut e = Event::new(
        "agora/test",
        "agora.test.happened",
        key,
        Some("tenant-1".into()),
        seq.to_be_bytes().to_vec(),
    );
    e.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
    e
}

fn seq(e: &Event) -> u32 {
    u32::from_be_bytes(e.data.clone().try_into().expect("4 bytes"))
}

async fn next(sub: &mut Box<dyn Subscription>) -> agora_shared::bus::Delivery {
    tokio::time::timeout(Duration::from_secs(30), sub.next())
        .await
        .expect("an event within 30 s")
        .expect("the bus answers")
}

async fn events_arrive_with_their_attributes_in_key_order(b: TestBus) {
    let mut sent = Vec::new();
    for i in 0..30 {
        let e = event(&format!("k{}", i % 3), i);
        b.bus.publish(&b.topic, &e).await.unwrap();
        sent.push(e);
    }
    let mut sub = b.bus.subscribe(&b.topic, "readers").await.unwrap();
    let mut got: Vec<Event> = Vec::new();
    while got.len() < 30 {
        let d = next(&mut sub).await;
        sub.commit(&d).await.unwrap();
        got.push(d.event);
    }
    let by_id: HashMap<&str, &Event> = sent.iter().map(|e| (e.id.as_str(), e)).collect();
    for e in &got {
        let original = by_id[e.id.as_str()];
        assert_eq!(
            (
                &e.event_type,
                &e.source,
                &e.key,
                &e.tenant_id,
                &e.traceparent,
                &e.data
            ),
            (
                &original.event_type,
                &original.source,
                &original.key,
                &original.tenant_id,
                &original.traceparent,
                &original.data
            )
        );
        assert_eq!(e.time.timestamp_millis(), original.time.timestamp_millis());
    }
    for k in 0..3 {
        let key = format!("k{k}");
        let order: Vec<u32> = got.iter().filter(|e| e.key == key).map(seq).collect();
        assert_eq!(order.len(), 10);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{key}: {order:?}");
    }
}

async fn uncommitted_events_are_redelivered(b: TestBus) {
    for i in 0..3 {
        b.bus.publish(&b.topic, &event("one-key", i)).await.unwrap();
    }
    let mut first = b.bus.subscribe(&b.topic, "workers").await.unwrap();
    let d0 = next(&mut first).await;
    assert_eq!(seq(&d0.event), 0);
    first.commit(&d0).await.unwrap();
    let d1 = next(&mut first).await;
    assert_eq!(seq(&d1.event), 1);
    // The member dies before committing d1: the group's next member gets it again.
    drop(first);
    let mut second = b.bus.subscribe(&b.topic, "workers").await.unwrap();
    assert_eq!(seq(&next(&mut second).await.event), 1);
    assert_eq!(seq(&next(&mut second).await.event), 2);
    // Another group reads everything from the start.
    let mut other = b.bus.subscribe(&b.topic, "auditors").await.unwrap();
    assert_eq!(seq(&next(&mut other).await.event), 0);
}

async fn consumers_dedupe_and_dead_letter(b: TestBus) {
    let db = TestDb::sqlite();
    let store = db.migrated(KERNEL_MIGRATIONS, 4).await;
    let handled = Arc::new(Mutex::new(Vec::new()));
    let handler: Handler = {
        let handled = handled.clone();
        Arc::new(move |_conn, e: &Event| {
            if seq(e) == 13 {
                return Err(AppError::Conflict("thirteen is refused".into()));
            }
            handled.lock().unwrap().push(seq(e));
            Ok(())
        })
    };
    let first = event("k", 1);
    for e in [first.clone(), event("k", 13), first.clone(), event("k", 2)] {
        b.bus.publish(&b.topic, &e).await.unwrap();
    }
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_consumer(
        b.bus.clone(),
        store,
        b.topic.clone(),
        "handlers".into(),
        handler,
        shutdown.clone(),
    ));
    let mut dead = b
        .bus
        .subscribe(&format!("{}.dlq", b.topic), "inspectors")
        .await
        .unwrap();
    let d = next(&mut dead).await;
    assert_eq!(seq(&d.event), 13);
    assert_eq!(d.event.event_type, "agora.test.happened.failed");
    assert!(
        d.event.source.contains("thirteen is refused"),
        "{}",
        d.event.source
    );
    tokio::time::timeout(Duration::from_secs(30), async {
        while handled.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("events handled");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        *handled.lock().unwrap(),
        [1, 2],
        "the duplicate was handled once"
    );
    shutdown.cancel();
    consumer.await.unwrap().unwrap();
}
