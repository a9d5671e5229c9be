//! A deterministic 90-day history (weekly seasonality, an upward trend, assignments,
//! completions, breaches) is published as ticket events on the real bus; every number the
//! analytics API reports is checked against values computed here from the same history.
//! Replayed, stale and late events must not change or double any of them.

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Utc};
use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};

use agora_proto::{events::v1 as ev, tickets::v1 as pb};
use agora_shared::bus::{Event, EventBus};

use crate::support::{Platform, Session, platform};
use agora_shared::testing::Store;

agora_shared::on_sqlite_and_postgres!(
    numbers_match_the_history,
    replays_and_late_events_do_not_double_count,
    batches_store_what_single_events_store
);

const ZONES: [&str; 5] = ["Northern", "Southern", "Central", "East Coast", ""];
const CATEGORIES: [&str; 5] = [
    "FIBER_INSTALLATION",
    "MAINTENANCE",
    "REPAIR",
    "INSPECTION",
    "EMERGENCY",
];
const TEAMS: [&str; 3] = [
    "0190a000-0000-7000-8000-000000000001",
    "0190a000-0000-7000-8000-000000000002",
    "0190a000-0000-7000-8000-000000000003",
];

/// A linear congruential generator: the same history on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() * n as f64) as usize % n
    }
}

/// One simulated ticket and everything that happened to it.
#[derive(Debug, Clone)]
pub struct Sim {
    id: String,
    number: String,
    zone: &'static str,
    team: &'static str,
    category: &'static str,
    priority: &'static str,
    created_at: NaiveDateTime,
    due_at: NaiveDateTime,
    assigned_at: Option<NaiveDateTime>,
    status: &'static str,
    /// When it was completed or cancelled.
    finished_at: Option<NaiveDateTime>,
    completed_at: Option<NaiveDateTime>,
}

impl Sim {
    fn breached(&self, cut: NaiveDateTime) -> bool {
        self.due_at < self.finished_at.unwrap_or(cut)
    }

    fn is_open(&self) -> bool {
        !matches!(self.status, "COMPLETED" | "CANCELLED")
    }
}

pub struct History {
    pub tickets: Vec<Sim>,
    /// In publishing order (by time).
    pub events: Vec<Event>,
    /// Completion events held back to arrive last.
    pub late: Vec<Event>,
    /// Tickets whose completion is late, before it arrives.
    pub late_ids: Vec<String>,
    /// Breaches are known up to here.
    pub cut: NaiveDateTime,
    pub first_day: NaiveDate,
}

fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn message(
    t: &Sim,
    at: NaiveDateTime,
    version: i64,
    status: &str,
    team: &str,
    completed_at: Option<NaiveDateTime>,
) -> pb::Ticket {
    let breached = t.due_at < completed_at.unwrap_or(at);
    pb::Ticket {
        id: t.id.clone(),
        tenant_id: String::new(),
        number: t.number.clone(),
        title: format!("ticket {}", t.number),
        category: t.category.into(),
        priority: t.priority.into(),
        status: status.into(),
        zone: t.zone.into(),
        team_id: team.into(),
        due_at: rfc3339(t.due_at),
        sla_status: if breached { "BREACHED" } else { "ON_TIME" }.into(),
        completed_at: completed_at.map(rfc3339).unwrap_or_default(),
        created_at: rfc3339(t.created_at),
        updated_at: rfc3339(at),
        version,
        ..Default::default()
    }
}

fn event(tenant: &str, kind: &str, t: &Sim, at: NaiveDateTime, data: Vec<u8>) -> Event {
    Event {
        id: uuid::Uuid::now_v7().to_string(),
        source: "agora/tickets".into(),
        event_type: format!("agora.tickets.ticket.{kind}"),
        time: at.and_utc(),
        tenant_id: Some(tenant.to_owned()),
        traceparent: None,
        key: t.id.clone(),
        data,
    }
}

fn with_tenant(mut m: pb::Ticket, tenant: &str) -> Option<pb::Ticket> {
    m.tenant_id = tenant.to_owned();
    Some(m)
}

/// Generates the history of tenant `tenant` over the 90 days before today.
pub fn generate(tenant: &str) -> History {
    let now = Utc::now().naive_utc();
    let cut = now - Duration::minutes(1);
    let first_day = now.date() - Duration::days(90);
    let weekly = [1.3, 1.2, 1.1, 1.0, 0.9, 0.5, 0.4];
    let mut rng = Rng(7);
    let mut tickets = Vec::new();
    let mut timeline: Vec<(NaiveDateTime, Event)> = Vec::new();
    let mut late = Vec::new();
    let mut late_ids = Vec::new();
    let mut number = 0;
    for d in 0..90 {
        let day = first_day + Duration::days(d);
        let count = ((12.0 + 0.08 * d as f64)
            * weekly[day.weekday().num_days_from_monday() as usize])
            .round() as usize;
        for _ in 0..count {
            number += 1;
            let created_at =
                day.and_hms_opt(7, 0, 0).unwrap() + Duration::minutes(rng.below(11 * 60) as i64);
            let priority = match rng.next() {
                x if x < 0.15 => "URGENT",
                x if x < 0.40 => "HIGH",
                x if x < 0.80 => "MEDIUM",
                _ => "LOW",
            };
            let sla = match priority {
                "URGENT" => 4,
                "HIGH" => 8,
                "MEDIUM" => 24,
                _ => 72,
            };
            let mut t = Sim {
                id: uuid::Uuid::now_v7().to_string(),
                number: format!("CTT-{number:06}"),
                zone: ZONES[rng.below(ZONES.len())],
                team: "",
                category: CATEGORIES[rng.below(CATEGORIES.len())],
                priority,
                created_at,
                due_at: created_at + Duration::hours(sla),
                assigned_at: None,
                status: "OPEN",
                finished_at: None,
                completed_at: None,
            };
            let mut version = 1;
            let created = ev::TicketCreated {
                ticket: with_tenant(message(&t, created_at, 1, "OPEN", "", None), tenant),
                actor_id: "u".into(),
            };
            timeline.push((
                created_at,
                event(tenant, "created", &t, created_at, created.encode_to_vec()),
            ));
            let mut versions_at = vec![(created_at, 1)];
            if rng.next() < 0.85 {
                let at = created_at + Duration::minutes(30 + rng.below(6 * 60) as i64);
                if at < cut {
                    t.team = TEAMS[rng.below(TEAMS.len())];
                    t.assigned_at = Some(at);
                    version = 2;
                    versions_at.push((at, 2));
                    let m = ev::TicketAssigned {
                        ticket: with_tenant(message(&t, at, 2, "OPEN", t.team, None), tenant),
                        team_id: t.team.into(),
                        ..Default::default()
                    };
                    timeline.push((at, event(tenant, "assigned", &t, at, m.encode_to_vec())));
                    let roll = rng.next();
                    let started = at + Duration::hours(1);
                    if roll < 0.8 && started < cut {
                        t.status = "IN_PROGRESS";
                        version = 3;
                        versions_at.push((started, 3));
                        let m = ev::TicketStatusChanged {
                            ticket: with_tenant(
                                message(&t, started, 3, "IN_PROGRESS", t.team, None),
                                tenant,
                            ),
                            from_status: "OPEN".into(),
                            to_status: "IN_PROGRESS".into(),
                            actor_id: "u".into(),
                        };
                        timeline.push((
                            started,
                            event(tenant, "status_changed", &t, started, m.encode_to_vec()),
                        ));
                        let done = started + Duration::minutes(30 + rng.below(80 * 60) as i64);
                        if done < cut {
                            t.status = "COMPLETED";
                            t.finished_at = Some(done);
                            t.completed_at = Some(done);
                            version = 4;
                            versions_at.push((done, 4));
                            let m = ev::TicketStatusChanged {
                                ticket: with_tenant(
                                    message(&t, done, 4, "COMPLETED", t.team, Some(done)),
                                    tenant,
                                ),
                                from_status: "IN_PROGRESS".into(),
                                to_status: "COMPLETED".into(),
                                actor_id: "u".into(),
                            };
                            let e = event(tenant, "status_changed", &t, done, m.encode_to_vec());
                            if late.len() < 15 && d < 60 && number % 7 == 0 {
                                late.push(e);
                                late_ids.push(t.id.clone());
                            } else {
                                timeline.push((done, e));
                            }
                        }
                    } else if roll < 0.9 && started < cut {
                        t.status = "CANCELLED";
                        t.finished_at = Some(started);
                        version = 3;
                        versions_at.push((started, 3));
                        let m = ev::TicketStatusChanged {
                            ticket: with_tenant(
                                message(&t, started, 3, "CANCELLED", t.team, None),
                                tenant,
                            ),
                            from_status: "OPEN".into(),
                            to_status: "CANCELLED".into(),
                            actor_id: "u".into(),
                        };
                        timeline.push((
                            started,
                            event(tenant, "status_changed", &t, started, m.encode_to_vec()),
                        ));
                    }
                }
            }
            let _ = version;
            // The SLA watch announces a breach at the due time, with the version then current.
            if t.due_at < t.finished_at.unwrap_or(cut) {
                let (_, v) = versions_at
                    .iter()
                    .rev()
                    .find(|(at, _)| *at <= t.due_at)
                    .copied()
                    .unwrap_or((created_at, 1));
                let status = match v {
                    1 | 2 => "OPEN",
                    _ => "IN_PROGRESS",
                };
                let team = if v >= 2 { t.team } else { "" };
                let mut m = message(&t, t.due_at, v, status, team, None);
                m.sla_status = "BREACHED".into();
                let b = ev::TicketSlaBreached {
                    ticket: with_tenant(m, tenant),
                    due_at: rfc3339(t.due_at),
                    detected_at: rfc3339(t.due_at),
                };
                timeline.push((
                    t.due_at,
                    event(tenant, "sla_breached", &t, t.due_at, b.encode_to_vec()),
                ));
            }
            tickets.push(t);
        }
    }
    timeline.sort_by_key(|(at, _)| *at);
    History {
        tickets,
        events: timeline.into_iter().map(|(_, e)| e).collect(),
        late,
        late_ids,
        cut,
        first_day,
    }
}

pub async fn publish(p: &Platform, events: &[Event]) {
    for e in events {
        p.bus
            .publish("agora.tickets.events", e)
            .await
            .expect("publish");
    }
}

fn day(t: NaiveDateTime) -> String {
    t.date().to_string()
}

fn close(actual: &Value, expected: Option<f64>, what: &str) {
    match expected {
        None => assert!(actual.is_null(), "{what}: expected null, got {actual}"),
        Some(e) => {
            let a = actual.as_f64().unwrap_or(f64::NAN);
            assert!((a - e).abs() < 1e-6, "{what}: expected {e}, got {actual}");
        }
    }
}

/// Rows of a query result keyed by their dimension values joined with '|'.
fn rows(result: &Value) -> BTreeMap<String, Vec<Value>> {
    result["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            let key = r["dimensions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
                .join("|");
            (key, r["metrics"].as_array().unwrap().clone())
        })
        .collect()
}

fn count_by<K: Ord>(items: impl Iterator<Item = K>) -> BTreeMap<K, i64> {
    let mut m = BTreeMap::new();
    for k in items {
        *m.entry(k).or_default() += 1;
    }
    m
}

/// 300 older ticket states (creations and assignments) sent again as new events (new ids).
fn resent_older_states(h: &History) -> Vec<Event> {
    h.events
        .iter()
        .filter(|e| e.event_type.ends_with(".created") || e.event_type.ends_with(".assigned"))
        .take(300)
        .map(|e| Event {
            id: uuid::Uuid::now_v7().to_string(),
            ..e.clone()
        })
        .collect()
}

/// Loads the whole history (late events included) and waits for analytics to take it in.
async fn loaded(store: Store) -> (Platform, Session, History) {
    let p = platform(store).await;
    let admin = p.tenant("Acme Field").await;
    let h = generate(&admin.tenant_id);
    publish(&p, &h.events).await;
    publish(&p, &h.late).await;
    let total = (h.events.len() + h.late.len()) as i64;
    p.ingested(total, std::time::Duration::from_secs(120)).await;
    (p, admin, h)
}

async fn numbers_match_the_history(store: Store) {
    let (p, admin, h) = loaded(store).await;
    let today = Utc::now().date_naive();
    let range = json!([h.first_day.to_string(), today.to_string()]);
    let all = &h.tickets;
    assert!(
        all.len() > 900 && h.events.len() > 2500,
        "a history of thousands of events"
    );

    // Created per day and per ISO week.
    let result = p
        .query(
            &admin,
            json!({"metrics": ["created"], "date_range": range, "dimensions": ["time:day"]}),
        )
        .await;
    let expected = count_by(all.iter().map(|t| day(t.created_at)));
    let got: BTreeMap<String, i64> = rows(&result)
        .into_iter()
        .map(|(k, m)| (k, m[0].as_i64().unwrap()))
        .collect();
    assert_eq!(got, expected, "created per day");
    assert_eq!(result["meta"]["date_range"], range);
    let result = p
        .query(
            &admin,
            json!({"metrics": ["created"], "date_range": range, "dimensions": ["time:week"]}),
        )
        .await;
    let expected = count_by(all.iter().map(|t| {
        let d = t.created_at.date();
        (d - Duration::days(d.weekday().num_days_from_monday() as i64)).to_string()
    }));
    let got: BTreeMap<String, i64> = rows(&result)
        .into_iter()
        .map(|(k, m)| (k, m[0].as_i64().unwrap()))
        .collect();
    assert_eq!(got, expected, "created per week");

    // Per team: completions, time to complete, SLA compliance, first assignments.
    let metrics = json!([
        "completed",
        "mean_time_to_complete",
        "sla_compliance",
        "assigned",
        "mean_time_to_assign"
    ]);
    let result = p
        .query(
            &admin,
            json!({"metrics": metrics, "date_range": range, "dimensions": ["team"]}),
        )
        .await;
    let got = rows(&result);
    let perf = p
        .view(
            &admin,
            &format!(
                "/api/v1/analytics/performance?from={}&to={today}",
                h.first_day
            ),
        )
        .await;
    for team in TEAMS.iter().chain([&""]) {
        let done: Vec<&Sim> = all
            .iter()
            .filter(|t| t.team == *team && t.completed_at.is_some())
            .collect();
        let assigned: Vec<&Sim> = all
            .iter()
            .filter(|t| t.team == *team && t.assigned_at.is_some())
            .collect();
        let hours = |a: NaiveDateTime, b: NaiveDateTime| (b - a).num_seconds() as f64 / 3600.0;
        let mean =
            |xs: Vec<f64>| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
        let completed = done.len() as i64;
        let mttc = mean(
            done.iter()
                .map(|t| hours(t.created_at, t.completed_at.unwrap()))
                .collect(),
        );
        let in_sla = done
            .iter()
            .filter(|t| t.completed_at.unwrap() <= t.due_at)
            .count();
        let compliance = (completed > 0).then(|| in_sla as f64 / completed as f64 * 100.0);
        let mtta = mean(
            assigned
                .iter()
                .map(|t| hours(t.created_at, t.assigned_at.unwrap()))
                .collect(),
        );
        let Some(m) = got.get(*team) else {
            assert!(
                completed == 0 && assigned.is_empty(),
                "team {team:?} missing"
            );
            continue;
        };
        assert_eq!(m[0].as_i64(), Some(completed), "completed by {team:?}");
        close(&m[1], mttc, "mean time to complete");
        close(&m[2], compliance, "sla compliance");
        assert_eq!(
            m[3].as_i64(),
            Some(assigned.len() as i64),
            "assigned by {team:?}"
        );
        close(&m[4], mtta, "mean time to assign");
        let row = perf["teams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["team_id"].as_str().unwrap_or("") == *team)
            .expect("team in /performance");
        assert_eq!(row["completed"].as_i64(), Some(completed));
        close(
            &row["sla_compliance_pct"],
            compliance,
            "performance compliance",
        );
        close(
            &row["mean_time_to_first_assignment_hours"],
            mtta,
            "performance mtta",
        );
    }
    assert_eq!(
        perf["overall"]["completed"].as_i64(),
        Some(all.iter().filter(|t| t.completed_at.is_some()).count() as i64)
    );

    // Breaches by zone in a sub-range count on their due day.
    let (from, to) = (
        h.first_day + Duration::days(30),
        h.first_day + Duration::days(59),
    );
    let result = p
        .query(&admin, json!({"metrics": ["breached"], "date_range": [from.to_string(), to.to_string()], "dimensions": ["zone"]}))
        .await;
    let expected = count_by(
        all.iter()
            .filter(|t| t.breached(h.cut) && (from..=to).contains(&t.due_at.date()))
            .map(|t| t.zone.to_owned()),
    );
    let got: BTreeMap<String, i64> = rows(&result)
        .into_iter()
        .map(|(k, m)| (k, m[0].as_i64().unwrap()))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(got, expected, "breached by zone");

    // Filters: URGENT tickets, or any in a zone containing "ERN" (case-insensitive), by category;
    // ordered by count and cut to three.
    let result = p
        .query(
            &admin,
            json!({
                "metrics": ["created"], "date_range": range, "dimensions": ["category"],
                "filters": [["or", [["is", "priority", ["URGENT"]], ["contains", "zone", ["ERN"]]]],
                            ["is_not", "category", ["EMERGENCY"]]],
                "order_by": [["created", "desc"]], "limit": 3
            }),
        )
        .await;
    let expected = count_by(
        all.iter()
            .filter(|t| t.priority == "URGENT" || t.zone.to_lowercase().contains("ern"))
            .filter(|t| t.category != "EMERGENCY")
            .map(|t| t.category),
    );
    let mut expected: Vec<(i64, &str)> = expected.into_iter().map(|(k, v)| (v, k)).collect();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    expected.truncate(3);
    let got: Vec<(i64, String)> = result["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metrics"][0].as_i64().unwrap(),
                r["dimensions"][0].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(i64, String)> = expected
        .into_iter()
        .map(|(n, c)| (n, c.to_owned()))
        .collect();
    assert_eq!(got, expected, "filtered, ordered and limited");

    // Current state by status, and stock and flow metrics side by side per zone.
    let result = p
        .query(
            &admin,
            json!({"metrics": ["tickets", "open"], "date_range": "all", "dimensions": ["status"]}),
        )
        .await;
    let expected = count_by(all.iter().map(|t| t.status.to_owned()));
    for (status, m) in rows(&result) {
        assert_eq!(
            m[0].as_i64(),
            expected.get(&status).copied(),
            "tickets {status}"
        );
        let open = if matches!(status.as_str(), "COMPLETED" | "CANCELLED") {
            0
        } else {
            expected[&status]
        };
        assert_eq!(m[1].as_i64(), Some(open), "open {status}");
    }

    // Zones: open, urgent and overdue now; completions and compliance in range.
    let before = Utc::now().naive_utc();
    let zones = p
        .view(
            &admin,
            &format!("/api/v1/analytics/zones?from={}&to={today}", h.first_day),
        )
        .await;
    let after = Utc::now().naive_utc();
    for zone in ZONES {
        let of = |t: &&Sim| t.zone == zone;
        let row = zones
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["zone"].as_str().unwrap_or("") == zone)
            .expect("zone row");
        let open: Vec<&Sim> = all.iter().filter(of).filter(|t| t.is_open()).collect();
        assert_eq!(
            row["open"].as_i64(),
            Some(open.len() as i64),
            "open in {zone:?}"
        );
        assert_eq!(
            row["urgent_open"].as_i64(),
            Some(open.iter().filter(|t| t.priority == "URGENT").count() as i64)
        );
        let overdue_at = |now: NaiveDateTime| open.iter().filter(|t| t.due_at < now).count() as i64;
        let overdue = row["overdue"].as_i64().unwrap();
        assert!(
            overdue == overdue_at(before) || overdue == overdue_at(after),
            "overdue in {zone:?}: {overdue}"
        );
        let done: Vec<&Sim> = all
            .iter()
            .filter(of)
            .filter(|t| t.completed_at.is_some())
            .collect();
        assert_eq!(row["completed"].as_i64(), Some(done.len() as i64));
    }

    // Trends: created per day with a 7-day moving average and week-over-week change.
    let (from, to) = (
        h.first_day + Duration::days(30),
        h.first_day + Duration::days(59),
    );
    let trends = p
        .view(
            &admin,
            &format!("/api/v1/analytics/trends?from={from}&to={to}"),
        )
        .await;
    let per_day = count_by(all.iter().map(|t| t.created_at.date()));
    let n = |d: NaiveDate| per_day.get(&d).copied().unwrap_or(0);
    let week = |end: NaiveDate| (0..7).map(|i| n(end - Duration::days(i))).sum::<i64>();
    let days = trends["days"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    for (i, row) in days.iter().enumerate() {
        let d = from + Duration::days(i as i64);
        assert_eq!(row["date"], d.to_string());
        assert_eq!(row["created"]["count"].as_i64(), Some(n(d)));
        close(
            &row["created"]["moving_average_7d"],
            Some(week(d) as f64 / 7.0),
            "ma7",
        );
        let prev = week(d - Duration::days(7));
        close(
            &row["created"]["week_over_week_pct"],
            (prev > 0).then(|| (week(d) - prev) as f64 / prev as f64 * 100.0),
            "wow",
        );
    }
    assert_eq!(
        trends["totals"]["created"].as_i64(),
        Some((0..30).map(|i| n(from + Duration::days(i))).sum::<i64>())
    );

    // Ageing of open tickets.
    let before = Utc::now().naive_utc();
    let aging = p.view(&admin, "/api/v1/analytics/tickets/aging").await;
    let after = Utc::now().naive_utc();
    let buckets_at = |now: NaiveDateTime| {
        let mut b = [0i64; 4];
        for t in all.iter().filter(|t| t.is_open()) {
            let age = now - t.created_at;
            let i = if age < Duration::days(1) {
                0
            } else if age < Duration::days(3) {
                1
            } else if age < Duration::days(7) {
                2
            } else {
                3
            };
            b[i] += 1;
        }
        b
    };
    let got = ["0-1d", "1-3d", "3-7d", ">7d"].map(|k| aging["buckets"][k].as_i64().unwrap());
    assert!(
        got == buckets_at(before) || got == buckets_at(after),
        "ageing {got:?}"
    );
    assert_eq!(aging["open"].as_i64(), Some(got.iter().sum::<i64>()));

    // The forecast: intervals around every point and the plan the rules derive.
    let forecast = p.view(&admin, "/api/v1/analytics/forecast?horizon=7").await;
    assert_eq!(forecast["horizon_days"], 7);
    let series = forecast["series"].as_array().unwrap();
    assert_eq!(series.len(), ZONES.len() * CATEGORIES.len());
    for s in series {
        assert!(s["note"].is_null(), "{s}");
        for point in s["points"].as_array().unwrap() {
            let (lo, v, hi) = (
                point["lower"].as_f64().unwrap(),
                point["value"].as_f64().unwrap(),
                point["upper"].as_f64().unwrap(),
            );
            assert!(lo <= v && v <= hi && lo >= 0.0, "{point}");
        }
    }
    for zone in forecast["plan"].as_array().unwrap() {
        let active = zone["active"].as_f64().unwrap();
        let urgent = zone["urgent"].as_f64().unwrap();
        assert!(
            (active
                - (zone["open"].as_f64().unwrap() + zone["forecast_tickets"].as_f64().unwrap()))
            .abs()
                < 1e-9
        );
        assert_eq!(
            zone["teams"].as_i64(),
            Some((((active + urgent) / 2.0).ceil() as i64).max(1))
        );
        close(&zone["hours"], Some(active * 4.0), "hours");
        assert_eq!(
            zone["vehicles"].as_i64(),
            Some((active / 3.0).ceil() as i64)
        );
        close(
            &zone["fibre_metres"],
            Some(zone["fibre_tickets"].as_f64().unwrap() * 100.0),
            "fibre",
        );
    }
    // The tenant's own factors change the plan.
    let resp = p
        .authed(Method::PUT, "/api/v1/analytics/forecast/factors", &admin)
        .json(&json!({"team_divisor": 4.0, "hours_per_ticket": 2.5, "tickets_per_vehicle": 5.0, "fibre_metres_per_ticket": 80.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let again = p.view(&admin, "/api/v1/analytics/forecast?horizon=7").await;
    let zone = &again["plan"][0];
    let active = zone["active"].as_f64().unwrap();
    close(
        &zone["hours"],
        Some(active * 2.5),
        "hours with the tenant's factors",
    );
    assert_eq!(
        zone["vehicles"].as_i64(),
        Some((active / 5.0).ceil() as i64)
    );
}

async fn replays_and_late_events_do_not_double_count(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Replay Co").await;
    let h = generate(&admin.tenant_id);
    publish(&p, &h.events).await;
    p.ingested(h.events.len() as i64, std::time::Duration::from_secs(120))
        .await;
    let today = Utc::now().date_naive();
    let body = json!({
        "metrics": ["created", "completed", "breached", "assigned", "mean_time_to_complete", "tickets", "open"],
        "date_range": [h.first_day.to_string(), today.to_string()],
        "dimensions": ["time:day", "zone"]
    });
    let before_late = p.query(&admin, body.clone()).await;

    // The late completions land on the days they happened.
    let late: Vec<&Sim> = h
        .tickets
        .iter()
        .filter(|t| h.late_ids.contains(&t.id))
        .collect();
    assert_eq!(late.len(), 15);
    let completed_on = |result: &Value, t: &Sim| -> i64 {
        rows(result)
            .get(&format!("{}|{}", day(t.completed_at.unwrap()), t.zone))
            .map_or(0, |m| m[1].as_i64().unwrap())
    };
    publish(&p, &h.late).await;
    p.ingested(
        (h.events.len() + h.late.len()) as i64,
        std::time::Duration::from_secs(60),
    )
    .await;
    let after_late = p.query(&admin, body.clone()).await;
    let mut cells: BTreeMap<String, i64> = BTreeMap::new();
    for t in &late {
        *cells
            .entry(format!("{}|{}", day(t.completed_at.unwrap()), t.zone))
            .or_default() += 1;
    }
    for (cell, n) in &cells {
        let (d, _) = cell.split_once('|').unwrap();
        let t = late
            .iter()
            .find(|t| day(t.completed_at.unwrap()) == d)
            .unwrap();
        assert_eq!(
            completed_on(&after_late, t) - completed_on(&before_late, t),
            *n,
            "late completions land on {cell}"
        );
    }
    let total =
        |r: &Value, i: usize| -> i64 { rows(r).values().map(|m| m[i].as_i64().unwrap_or(0)).sum() };
    assert_eq!(total(&after_late, 1) - total(&before_late, 1), 15);
    assert_eq!(
        total(&after_late, 0),
        total(&before_late, 0),
        "creations unchanged"
    );

    // Redelivered events (same ids) and re-sent older states (new ids) change nothing.
    let handled = p.inbox().await;
    let replayed: Vec<Event> = h.events.iter().step_by(5).cloned().collect();
    publish(&p, &replayed).await;
    let stale = resent_older_states(&h);
    publish(&p, &stale).await;
    // A marker event published last, in another tenant: the bus delivers in order, so once
    // it is handled everything before it was too.
    let other = p.tenant("Marker Co").await;
    let marker = p
        .ticket(
            &other,
            json!({"title": "marker", "category": "REPAIR", "priority": "LOW"}),
        )
        .await;
    let started = std::time::Instant::now();
    loop {
        let r = p
            .query(&other, json!({"metrics": ["tickets"], "date_range": "all"}))
            .await;
        if r["results"][0]["metrics"][0].as_i64() == Some(1) {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "marker {} not seen",
            marker["number"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        p.inbox().await,
        handled + stale.len() as i64 + 1,
        "redeliveries are skipped by the inbox"
    );
    let after_replay = p.query(&admin, body).await;
    assert_eq!(after_replay, after_late, "nothing counted twice");
}

/// Every row the store keeps (rollup cells that net to zero aside), in key order.
async fn store_rows(db: &agora_shared::db::Db) -> Vec<String> {
    db.read(|conn| {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            row: String,
        }
        let mut out = Vec::new();
        for sql in [
            "SELECT tenant_id || '|' || ticket_id || '|' || number || '|' || category || '|' || \
             priority || '|' || status || '|' || zone || '|' || team_id || '|' || \
             CAST(created_at AS TEXT) || '|' || created_day || '|' || CAST(due_at AS TEXT) || '|' || \
             COALESCE(CAST(completed_at AS TEXT), '-') || '|' || \
             COALESCE(CAST(first_assigned_at AS TEXT), '-') || '|' || \
             CASE WHEN breached THEN 'b' ELSE '-' END || CASE WHEN deleted THEN 'd' ELSE '-' END || \
             '|' || CAST(version AS TEXT) AS row FROM ticket_facts ORDER BY tenant_id, ticket_id",
            "SELECT tenant_id || '|' || grain || '|' || bucket || '|' || zone || '|' || team_id || \
             '|' || category || '|' || priority || '|' || CAST(created AS TEXT) || '|' || \
             CAST(completed AS TEXT) || '|' || CAST(completed_in_sla AS TEXT) || '|' || \
             CAST(completion_secs AS TEXT) || '|' || CAST(breached AS TEXT) || '|' || \
             CAST(assigned AS TEXT) || '|' || CAST(assign_secs AS TEXT) AS row FROM rollups \
             WHERE created <> 0 OR completed <> 0 OR completed_in_sla <> 0 OR completion_secs <> 0 \
             OR breached <> 0 OR assigned <> 0 OR assign_secs <> 0 \
             ORDER BY tenant_id, grain, bucket, zone, team_id, category, priority",
            "SELECT id || '|' || tenant_id || '|' || event_type || '|' || subject || '|' || summary \
             AS row FROM activities ORDER BY id",
        ] {
            let rows: Vec<Row> = diesel::RunQueryDsl::load(diesel::sql_query(sql), conn)?;
            out.extend(rows.into_iter().map(|r| r.row));
        }
        Ok(out)
    })
    .await
    .expect("store rows")
}

/// The set-based batch handler leaves the store exactly as the one-event handler does, over
/// the whole history with its late completions and re-sent older states, in batches that cut
/// through tickets' event runs.
async fn batches_store_what_single_events_store(store: Store) {
    use agora_analytics::ingest;

    let h = generate("tenant-batches");
    let events: Vec<Event> = h
        .events
        .iter()
        .chain(&h.late)
        .cloned()
        .chain(resent_older_states(&h))
        .collect();
    let now = Utc::now().naive_utc();
    let mut stores = Vec::new();
    for batched in [false, true] {
        let test_db = store();
        let db = test_db.migrated(agora_analytics::MIGRATIONS, 2).await;
        for chunk in events.chunks(97) {
            let chunk = chunk.to_vec();
            db.write(move |conn| {
                if batched {
                    ingest::handle_batch_as_of(conn, &chunk, now)
                } else {
                    chunk
                        .iter()
                        .try_for_each(|e| ingest::handle_as_of(conn, e, now))
                }
            })
            .await
            .expect("events applied");
        }
        stores.push((store_rows(&db).await, test_db));
    }
    let (single, batched) = (&stores[0].0, &stores[1].0);
    assert!(single.len() > events.len(), "{} rows", single.len());
    assert_eq!(single.len(), batched.len());
    for (a, b) in single.iter().zip(batched) {
        assert_eq!(a, b);
    }
}
