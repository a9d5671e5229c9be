//! The outbox and inbox on a real store (SQLite and PostgreSQL): events survive until published, and a
//! consumer handles a redelivered event once.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio_util::sync::CancellationToken;

use agora_shared::{
    bus::{Event, EventBus, InProcessBus, Outbox, Subscription, run_consumer, run_relay},
    db::{Db, KERNEL_MIGRATIONS},
    testing::{Store, TestDb},
};

/// A store at `db` with the kernel's tables (all the outbox and inbox need).
async fn migrated(db: &TestDb) -> Db {
    db.migrated(KERNEL_MIGRATIONS, 8).await
}

async fn outbox_waits_for_the_bus_and_inbox_dedupes(store: Store) {
    let db = store();
    let store = migrated(&db).await;
    // Events written in transactions, in order, for two aggregates.
    let mut ids = Vec::new();
    for i in 0..20 {
        let event = Event::new(
            "agora/test",
            "agora.test.happened",
            format!("k{}", i % 2),
            Some("t1".into()),
            vec![i as u8],
        );
        ids.push(event.id.clone());
        store
            .write(move |conn| Outbox::enqueue(conn, "agora.test.events", &event))
            .await
            .unwrap();
    }
    // A rolled-back transaction leaves no event behind.
    let ghost = Event::new("agora/test", "agora.test.ghost", "k0", None, vec![]);
    let _ = store
        .write(move |conn| {
            Outbox::enqueue(conn, "agora.test.events", &ghost)?;
            Err::<(), _>(agora_shared::AppError::Conflict("rolled back".into()))
        })
        .await;
    assert_eq!(Outbox::pending(&store).await.unwrap(), 20);

    let bus = InProcessBus::new();
    let shutdown = CancellationToken::new();
    let relay = tokio::spawn(run_relay(
        store.clone(),
        Arc::new(bus.clone()),
        shutdown.clone(),
    ));

    // Consume with inbox dedupe; publish a duplicate of the first event as a redelivery.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let handler: agora_shared::bus::Handler = {
        let seen = seen.clone();
        let count = count.clone();
        Arc::new(move |_conn, event: &Event| {
            count.fetch_add(1, Ordering::SeqCst);
            seen.lock().unwrap().push(event.id.clone());
            Ok(())
        })
    };
    let consumer = tokio::spawn(run_consumer(
        Arc::new(bus.clone()),
        store.clone(),
        "agora.test.events".into(),
        "test-consumer".into(),
        handler,
        shutdown.clone(),
    ));
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while count.load(Ordering::SeqCst) < 20 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("all events consumed");
    let mut first = Event::new("x", "y", "k0", None, vec![]);
    first.id = ids[0].clone();
    bus.publish("agora.test.events", &first).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        20,
        "a redelivered event is handled once"
    );
    assert_eq!(*seen.lock().unwrap(), ids, "published in outbox order");
    assert_eq!(Outbox::pending(&store).await.unwrap(), 0);
    shutdown.cancel();
    relay.await.unwrap();
    consumer.await.unwrap().unwrap();
}

async fn uncommitted_events_are_redelivered(store: Store) {
    let db = store();
    let _ = db;
    let bus = InProcessBus::new();
    for i in 0..3u8 {
        bus.publish("t", &Event::new("s", "e", "k", None, vec![i]))
            .await
            .unwrap();
    }
    let mut first = bus.subscribe("t", "g").await.unwrap();
    let d0 = first.next().await.unwrap();
    first.commit(&d0).await.unwrap();
    let d1 = first.next().await.unwrap();
    assert_eq!(d1.event.data, vec![1]);
    // The member dies before committing d1: the next member gets it again.
    drop(first);
    let mut second = bus.subscribe("t", "g").await.unwrap();
    assert_eq!(second.next().await.unwrap().event.data, vec![1]);
    assert_eq!(second.next().await.unwrap().event.data, vec![2]);
    // Another group sees everything from the start.
    let mut other = bus.subscribe("t", "h").await.unwrap();
    assert_eq!(other.next().await.unwrap().event.data, vec![0]);
}

/// Reads relayed events (their sequence numbers) until `got` holds `n`.
async fn take(sub: &mut Box<dyn Subscription>, got: &mut Vec<u32>, n: usize) {
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while got.len() < n {
            let d = sub.next().await.unwrap();
            got.push(u32::from_be_bytes(d.event.data.try_into().unwrap()));
        }
    })
    .await
    .expect("events relayed");
}

/// Two replicas' relays on one store: each event reaches the bus once, in per-key order, and
/// when the publishing replica stops the other takes over.
async fn replicas_relay_each_event_once_in_order(store: Store) {
    let db = store();
    let store = migrated(&db).await;
    let enqueue = |from: u32, to: u32| {
        let store = store.clone();
        async move {
            for i in from..to {
                let event = Event::new(
                    "agora/test",
                    "agora.test.happened",
                    format!("k{}", i % 5),
                    None,
                    i.to_be_bytes().to_vec(),
                );
                store
                    .write(move |conn| Outbox::enqueue(conn, "agora.test.events", &event))
                    .await
                    .unwrap();
            }
        }
    };
    enqueue(0, 150).await;
    let bus = InProcessBus::new();
    let mut sub = bus.subscribe("agora.test.events", "counter").await.unwrap();
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let relay_a = tokio::spawn(run_relay(
        store.clone(),
        Arc::new(bus.clone()),
        stop_a.clone(),
    ));
    let relay_b = tokio::spawn(run_relay(
        store.clone(),
        Arc::new(bus.clone()),
        stop_b.clone(),
    ));
    let mut got: Vec<u32> = Vec::new();
    take(&mut sub, &mut got, 150).await;
    // One replica stops (releasing its lease); the other relays what comes next.
    stop_a.cancel();
    relay_a.await.unwrap();
    enqueue(150, 300).await;
    take(&mut sub, &mut got, 300).await;
    // Nothing more arrives: no event was published twice.
    let extra = tokio::time::timeout(std::time::Duration::from_millis(1200), sub.next()).await;
    assert!(extra.is_err(), "an event was published twice");
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, (0..300).collect::<Vec<u32>>());
    for k in 0..5 {
        let of_key: Vec<u32> = got.iter().copied().filter(|i| i % 5 == k).collect();
        assert!(
            of_key.windows(2).all(|w| w[0] < w[1]),
            "key k{k} out of order"
        );
    }
    stop_b.cancel();
    relay_b.await.unwrap();
}

agora_shared::on_sqlite_and_postgres!(
    outbox_waits_for_the_bus_and_inbox_dedupes,
    uncommitted_events_are_redelivered,
    replicas_relay_each_event_once_in_order
);
