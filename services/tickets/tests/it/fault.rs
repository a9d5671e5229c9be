//! A broker outage loses nothing: with the broker stopped, auth and tickets keep serving and
//! their events wait in the outbox; when it returns, every event reaches a deduping consumer
//! exactly once and in per-ticket order (counted, not sampled).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use diesel::prelude::*;
use reqwest::Method;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use agora_shared::{
    bus::{
        Event, Handler, Outbox,
        kafka::{KafkaBus, KafkaConfig},
        run_consumer,
    },
    db::outbox_schema::outbox,
    testing::{Broker, Call, TestDb},
};

use crate::support::platform_on;

const TOPICS: [&str; 2] = ["agora.tickets.events", "agora.auth.events"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_loses_and_duplicates_nothing() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let config = KafkaConfig {
        brokers: Some(broker.address()),
        publish_timeout_ms: 1500,
        ..Default::default()
    };
    let kafka = Arc::new(KafkaBus::new(&config).expect("kafka client"));
    let topics: Vec<String> = TOPICS.map(String::from).to_vec();
    kafka.create_topics(&topics, 3, 1).await.expect("topics");
    let p = platform_on(TestDb::sqlite, Some(kafka.clone())).await;
    let admin = p.tenant("Acme").await;

    broker.stop();
    // Both services keep answering while the broker is away.
    let tech = p.member(&admin, "tech@acme.test", &[]).await;
    let mut paths = Vec::new();
    for i in 0..5 {
        let t = p
            .ticket(
                &tech,
                json!({"title": format!("job {i}"), "category": "REPAIR"}),
            )
            .await;
        paths.push(format!("/api/v1/tickets/{}", t["id"].as_str().unwrap()));
    }
    for path in &paths {
        for change in [
            json!({"status": "IN_PROGRESS"}),
            json!({"progress": 50}),
            json!({"status": "COMPLETED"}),
        ] {
            let resp = p
                .authed(Method::PATCH, path, &tech)
                .json(&change)
                .call()
                .await;
            assert_eq!(resp.status(), 200);
        }
    }
    let waiting = Outbox::pending(&p.state.db).await.unwrap();
    assert_eq!(
        waiting, 20,
        "5 tickets x (created, 2 status changes, 1 update)"
    );

    broker.resume();
    // In-memory storage: the restarted broker starts empty, as a new cluster would.
    kafka
        .create_topics(&topics, 3, 1)
        .await
        .expect("topics again");
    let consumer_db = TestDb::sqlite();
    let consumer_store = consumer_db.migrated(agora_tickets::MIGRATIONS, 4).await;
    let handled: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let handler: Handler = {
        let handled = handled.clone();
        Arc::new(move |_conn, e: &Event| {
            handled.lock().unwrap().push((e.key.clone(), e.id.clone()));
            Ok(())
        })
    };
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_consumer(
        kafka.clone(),
        consumer_store,
        TOPICS[0].into(),
        "fault-test".into(),
        handler,
        shutdown.clone(),
    ));
    let arrived = tokio::time::timeout(Duration::from_secs(90), async {
        while handled.lock().unwrap().len() < 20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if arrived.is_err() {
        let errors: Vec<(i32, Option<String>)> = p
            .state
            .db
            .read(|conn| {
                Ok(outbox::table
                    .filter(outbox::sent_at.is_null())
                    .select((outbox::attempts, outbox::last_error))
                    .load(conn)?)
            })
            .await
            .unwrap();
        panic!(
            "{} of 20 events handled; waiting in the outbox: {errors:?}",
            handled.lock().unwrap().len()
        );
    }
    // The relay marks what it published: the outbox empties (the last batch may be marked
    // just after its events were handled).
    agora_testkit::eventually(Duration::from_secs(10), "the outbox drains", || async {
        match Outbox::pending(&p.state.db).await.unwrap() {
            0 => Ok(()),
            n => Err(format!("{n} pending")),
        }
    })
    .await;

    let expected: Vec<(String, String)> = p
        .state
        .db
        .read(|conn| {
            Ok(outbox::table
                .order(outbox::id.asc())
                .select((outbox::event_key, outbox::event_id))
                .load(conn)?)
        })
        .await
        .unwrap();
    let got = handled.lock().unwrap().clone();
    assert_eq!(got.len(), expected.len(), "each event handled exactly once");
    let mut a = got.clone();
    let mut b = expected.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the same events");
    for (key, _) in &expected {
        let order = |list: &[(String, String)]| -> Vec<String> {
            list.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, id)| id.clone())
                .collect()
        };
        assert_eq!(order(&got), order(&expected), "ticket {key} in order");
    }
    shutdown.cancel();
    consumer.await.unwrap().unwrap();
}
