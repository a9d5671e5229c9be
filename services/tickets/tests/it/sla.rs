//! The SLA clock through the API: hold time does not count, priority changes keep it, at-risk
//! and breached standings, and exactly one breach event per ticket, also across a restart.

use std::time::Duration;

use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use agora_proto::events::v1 as ev;
use agora_shared::testing::Call;

use crate::support::{platform, secs_from_now};
use agora_shared::testing::Store;
use agora_testkit::eventually;

agora_shared::on_sqlite_and_postgres!(
    hold_time_and_standing,
    breach_announced_once_also_after_restart
);

const HOUR: i64 = 3600;

async fn hold_time_and_standing(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    let t = p
        .ticket(
            &admin,
            json!({"title": "x", "category": "REPAIR", "priority": "HIGH"}),
        )
        .await;
    let id = t["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/tickets/{id}");
    let get = || p.authed(Method::GET, &path, &admin).value();
    let patch = |v: Value| p.authed(Method::PATCH, &path, &admin).json(&v).value();

    // 2 h worked, then 3 h on hold: the due time moves 3 h later than created + 8 h.
    p.age(&id, 2).await;
    patch(json!({"status": "ON_HOLD"})).await;
    p.age(&id, 3).await;
    let held = get().await;
    assert_eq!(
        held["sla_status"], "PENDING",
        "the clock stands still on hold"
    );
    let t = patch(json!({"status": "IN_PROGRESS"})).await;
    // created 5 h ago + 8 h SLA + 3 h hold = due in 6 h.
    assert!((secs_from_now(&t["due_at"]) - 6 * HOUR).abs() < 60, "{t}");
    assert_eq!(t["sla_status"], "PENDING");

    // 5 more hours: 7 of 8 h used -> at risk.
    p.age(&id, 5).await;
    assert_eq!(get().await["sla_status"], "AT_RISK");
    let at_risk = p
        .authed(Method::GET, "/api/v1/tickets?sla_status=AT_RISK", &admin)
        .value()
        .await;
    assert_eq!(at_risk["items"].as_array().unwrap().len(), 1);

    // A priority change recomputes the due time and keeps the hold: URGENT = 4 h, 7 h used.
    let t = patch(json!({"priority": "URGENT"})).await;
    assert_eq!(t["sla_status"], "BREACHED");
    // created 10 h ago + 4 h + 3 h hold = due 3 h ago.
    assert!((secs_from_now(&t["due_at"]) + 3 * HOUR).abs() < 60, "{t}");
    let t = patch(json!({"priority": "LOW"})).await;
    assert!((secs_from_now(&t["due_at"]) - 65 * HOUR).abs() < 60, "{t}");
    assert_eq!(t["sla_status"], "PENDING");

    // Completed late is breached; completed in time is on time.
    let late = p
        .ticket(
            &admin,
            json!({"title": "late", "category": "REPAIR", "priority": "URGENT"}),
        )
        .await;
    let late_id = late["id"].as_str().unwrap();
    p.age(late_id, 5).await;
    let late_path = format!("/api/v1/tickets/{late_id}");
    for status in ["IN_PROGRESS", "COMPLETED"] {
        p.authed(Method::PATCH, &late_path, &admin)
            .json(&json!({"status": status}))
            .call()
            .await;
    }
    let late = p.authed(Method::GET, &late_path, &admin).value().await;
    assert_eq!(late["sla_status"], "BREACHED");
    // Announced once: by the watch while it was open, or by the completion if that came first.
    let announced: Vec<String> = p
        .events_of("agora.tickets.ticket.sla_breached")
        .await
        .iter()
        .map(|e| {
            ev::TicketSlaBreached::decode(e.data.as_slice())
                .unwrap()
                .ticket
                .unwrap()
                .id
        })
        .filter(|id| id == late_id)
        .collect();
    assert_eq!(announced.len(), 1);
    let stats = p
        .authed(Method::GET, "/api/v1/tickets/stats/summary", &admin)
        .value()
        .await;
    assert_eq!(stats["by_sla_status"]["BREACHED"], 1);
    assert_eq!(stats["by_sla_status"]["PENDING"], 1);
    assert_eq!(stats["completed"], 1);
    let mean = stats["mean_time_to_complete_hours"].as_f64().unwrap();
    assert!((mean - 5.0).abs() < 0.05, "mean time to complete {mean}");
}

async fn breach_announced_once_also_after_restart(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    let t = p
        .ticket(
            &admin,
            json!({"title": "x", "category": "EMERGENCY", "priority": "URGENT"}),
        )
        .await;
    let id = t["id"].as_str().unwrap().to_owned();
    let fine = p
        .ticket(
            &admin,
            json!({"title": "y", "category": "REPAIR", "priority": "LOW"}),
        )
        .await;
    p.age(&id, 5).await;
    // The watch runs every second: wait until it has announced the breach.
    let announced = || async {
        let ids = breached(&p).await;
        if ids.contains(&id) {
            Ok(())
        } else {
            Err(format!("announced so far: {ids:?}"))
        }
    };
    eventually(
        Duration::from_secs(10),
        "the watch announces the breach",
        announced,
    )
    .await;
    // A restarted instance on the same store must not announce it again.
    let again = agora_tickets::start(
        &p.ctx.with_discovered(&p.discovered),
        CancellationToken::new(),
    )
    .await
    .expect("second instance starts");
    agora_tickets::sla_watch::check_once(&again.state)
        .await
        .unwrap();
    agora_tickets::sla_watch::check_once(&p.state)
        .await
        .unwrap();
    let breaches = p.events_of("agora.tickets.ticket.sla_breached").await;
    assert_eq!(breaches.len(), 1, "exactly one breach event");
    let msg = ev::TicketSlaBreached::decode(breaches[0].data.as_slice()).unwrap();
    let ticket = msg.ticket.unwrap();
    assert_eq!(ticket.id, id);
    assert_eq!(ticket.sla_status, "BREACHED");
    assert_eq!(msg.due_at, ticket.due_at);
    assert_ne!(ticket.id, fine["id"].as_str().unwrap());

    // A ticket that breaches while the service is down is announced by the next start.
    let down = p
        .ticket(
            &admin,
            json!({"title": "z", "category": "REPAIR", "priority": "URGENT"}),
        )
        .await;
    let down_id = down["id"].as_str().unwrap().to_owned();
    p.tickets_shutdown.cancel();
    again.service.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.age(&down_id, 6).await;
    let restarted = agora_tickets::start(
        &p.ctx.with_discovered(&p.discovered),
        CancellationToken::new(),
    )
    .await
    .expect("restart");
    // The watch looks at start, then every second.
    let announced = || async {
        let ids = breached(&p).await;
        if ids.contains(&down_id) {
            Ok(ids)
        } else {
            Err(format!("announced so far: {ids:?}"))
        }
    };
    let ids = eventually(
        Duration::from_secs(10),
        "the restart announces the breach",
        announced,
    )
    .await;
    assert_eq!(ids, [id.clone(), down_id.clone()]);
    restarted.service.shutdown.cancel();
}

/// Ids of the tickets whose breach was announced so far, in order.
async fn breached(p: &crate::support::Platform) -> Vec<String> {
    let events = p.events_of("agora.tickets.ticket.sla_breached").await;
    let id = |e: &agora_shared::bus::Event| {
        let msg = ev::TicketSlaBreached::decode(e.data.as_slice()).unwrap();
        msg.ticket.unwrap().id
    };
    events.iter().map(id).collect()
}
