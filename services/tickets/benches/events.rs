//! Prints events/s end to end — written to a service's outbox in transactions, relayed to the
//! bus, handled by a deduping consumer (inbox) on its own store — and p50/p99 latency from the
//! write to the handler, for Kafka and, for reference, the in-process bus.
//!
//! `cargo bench -p agora-tickets --bench events`. Kafka: `AGORA_BENCH_KAFKA_BROKERS=host:port`,
//! or a tansu broker of its own (on PATH or in ~/.cargo/bin). SQLite stores in a temp dir;
//! `AGORA_BENCH_DATABASE_URL=postgres://...` for PostgreSQL. `AGORA_BENCH_EVENTS` (20000).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use agora_shared::{
    bus::{
        Event, Handler, InProcessBus, Outbox, SharedBus,
        kafka::{KafkaBus, KafkaConfig},
        run_consumer, run_relay,
    },
    db::Db,
    testing::{Broker, TestDb},
};

const PER_TRANSACTION: usize = 100;
const KEYS: usize = 100;

fn store() -> TestDb {
    match std::env::var("AGORA_BENCH_DATABASE_URL") {
        Ok(admin) => TestDb::postgres_at(&admin),
        Err(_) => TestDb::sqlite(),
    }
}

async fn migrated(db: &TestDb) -> Db {
    db.migrated(agora_tickets::MIGRATIONS, 8).await
}

/// Runs one end-to-end pass of `n` events over `bus`, written as fast as the store takes them
/// or, with `rate`, at that many events per second; prints a line.
async fn pass(name: &str, bus: SharedBus, topic: &str, n: usize, rate: Option<u64>) {
    let per_transaction = if rate.is_some() { 10 } else { PER_TRANSACTION };
    let (producer_db, consumer_db) = (store(), store());
    let (producer, consumer) = (migrated(&producer_db).await, migrated(&consumer_db).await);
    let latencies: Arc<Mutex<Vec<i64>>> = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let handler: Handler = {
        let latencies = latencies.clone();
        Arc::new(move |_conn, e: &Event| {
            let micros = (Utc::now() - e.time).num_microseconds().unwrap_or(i64::MAX);
            latencies.lock().unwrap().push(micros);
            Ok(())
        })
    };
    let shutdown = CancellationToken::new();
    let relay = tokio::spawn(run_relay(producer.clone(), bus.clone(), shutdown.clone()));
    let consuming = tokio::spawn(run_consumer(
        bus,
        consumer,
        topic.to_owned(),
        "bench".into(),
        handler,
        shutdown.clone(),
    ));
    let started = Instant::now();
    for batch in 0..n.div_ceil(per_transaction) {
        if let Some(rate) = rate {
            let due = Duration::from_micros((batch * per_transaction) as u64 * 1_000_000 / rate);
            tokio::time::sleep_until((started + due).into()).await;
        }
        let topic = topic.to_owned();
        producer
            .write(move |conn| {
                for i in batch * per_transaction..((batch + 1) * per_transaction).min(n) {
                    let event = Event::new(
                        "agora/bench",
                        "agora.bench.happened",
                        format!("k{}", i % KEYS),
                        None,
                        vec![0; 256],
                    );
                    Outbox::enqueue(conn, &topic, &event)?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }
    let written = started.elapsed();
    while latencies.lock().unwrap().len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{name}: events did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = started.elapsed();
    shutdown.cancel();
    relay.await.unwrap();
    consuming.await.unwrap().unwrap();
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    println!(
        "{name:<28} {:>9.0} events/s end to end   write {:>8.0}/s   latency p50 {:>8.2} ms   p99 {:>8.2} ms",
        n as f64 / total.as_secs_f64(),
        n as f64 / written.as_secs_f64(),
        pct(0.50),
        pct(0.99),
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("AGORA_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    println!(
        "outbox -> bus -> deduping consumer, {n} events of 256 bytes over {KEYS} keys, \
         {PER_TRANSACTION} per transaction, stores {}",
        store().backend
    );
    pass(
        "in-process bus, burst",
        Arc::new(InProcessBus::new()),
        "agora.bench.events",
        n,
        None,
    )
    .await;

    let mut own_broker = None;
    let brokers = match std::env::var("AGORA_BENCH_KAFKA_BROKERS") {
        Ok(b) => b,
        Err(_) => {
            let broker = Broker::start().expect("a tansu binary, or AGORA_BENCH_KAFKA_BROKERS");
            let address = broker.address();
            own_broker = Some(broker);
            address
        }
    };
    let kafka = KafkaBus::new(&KafkaConfig {
        brokers: Some(brokers),
        ..Default::default()
    })
    .unwrap();
    // Topics of this run's own, so events of earlier runs on the same broker do not count.
    let topic = || format!("agora.bench-{}.events", uuid::Uuid::now_v7().simple());
    let (burst, steady) = (topic(), topic());
    for t in [&burst, &steady] {
        kafka
            .create_topics(&[t.clone(), format!("{t}.dlq")], 3, 1)
            .await
            .unwrap();
    }
    let kafka: SharedBus = Arc::new(kafka);
    pass("kafka, burst", kafka.clone(), &burst, n, None).await;
    // Below capacity, latency is the relay's and the consumer's, not a queue's.
    pass(
        "kafka, 1000 events/s steady",
        kafka,
        &steady,
        5_000,
        Some(1000),
    )
    .await;
    drop(own_broker);
}
