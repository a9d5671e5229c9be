//! The platform end to end: tickets made through the gateway reach analytics through the bus,
//! a fresh analytics store backfills from tickets' gRPC API, the dashboard, gRPC queries,
//! tenant isolation and refused requests.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{Value, json};

use agora_proto::analytics::v1::{self as pb, analytics_service_client::AnalyticsServiceClient};
use agora_shared::{
    service::Discovered,
    testing::{Call, problem},
};

use crate::support::{Platform, Session, platform};
use agora_shared::testing::Store;

agora_shared::on_sqlite_and_postgres!(
    tickets_from_the_gateway_reach_analytics,
    a_fresh_store_backfills_from_tickets,
    grpc_queries_and_tenant_isolation,
    bad_requests_are_refused_with_the_part_named,
);

/// Polls `query` as `who` until the first metric of the first row is `n`.
async fn until(p: &Platform, who: &Session, query: Value, n: i64) -> Duration {
    let started = Instant::now();
    loop {
        let r = p.query(who, query.clone()).await;
        if r["results"][0]["metrics"][0].as_i64() == Some(n) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "saw {r} waiting for {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn tickets_from_the_gateway_reach_analytics(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Live Co").await;
    let tech = p.member(&admin, "tech@live-co.test").await;
    let mut ids = Vec::new();
    for (i, zone) in ["Northern", "Northern", "Central"].iter().enumerate() {
        let t = p
            .ticket(&tech, json!({"title": format!("job {i}"), "category": "REPAIR", "priority": "URGENT", "zone": zone}))
            .await;
        ids.push(t["id"].as_str().unwrap().to_owned());
    }
    until(
        &p,
        &tech,
        json!({"metrics": ["created"], "date_range": "7d"}),
        3,
    )
    .await;
    let zones = p.query(&tech, json!({"metrics": ["open", "urgent_open"], "date_range": "all", "dimensions": ["zone"]})).await;
    assert_eq!(
        zones["results"],
        json!([{"dimensions": ["Northern"], "metrics": [2, 2]}, {"dimensions": ["Central"], "metrics": [1, 1]}])
    );

    // Work one to completion through the gateway.
    for status in ["IN_PROGRESS", "COMPLETED"] {
        let resp = p
            .authed(
                Method::PATCH,
                &format!("/api/v1/tickets/{}", ids[0]),
                &admin,
            )
            .json(&json!({"status": status}))
            .call()
            .await;
        assert_eq!(resp.status(), 200);
    }
    until(
        &p,
        &tech,
        json!({"metrics": ["completed", "sla_compliance"], "date_range": "7d"}),
        1,
    )
    .await;
    let r = p
        .query(
            &tech,
            json!({"metrics": ["completed", "sla_compliance", "open"], "date_range": "7d"}),
        )
        .await;
    assert_eq!(r["results"][0]["metrics"], json!([1, 100.0, 2]));

    // The dashboard: totals, the last 24 hours and the activity feed, newest first, in pages.
    let overview = p.view(&tech, "/api/v1/dashboard/overview").await;
    assert_eq!(overview["tickets"]["total"], 3);
    assert_eq!(overview["tickets"]["open"], 2);
    assert_eq!(overview["tickets"]["completed"], 1);
    assert_eq!(overview["last_24h"]["created"], 3);
    assert_eq!(overview["last_24h"]["completed"], 1);
    let counts: BTreeMap<String, i64> = overview["events_24h"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_owned(),
                e["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts["agora.tickets.ticket.created"], 3);
    assert_eq!(counts["agora.tickets.ticket.status_changed"], 2);
    let first = p.view(&tech, "/api/v1/dashboard/activities?limit=2").await;
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items[0]["summary"]
            .as_str()
            .unwrap()
            .ends_with("IN_PROGRESS -> COMPLETED"),
        "{first}"
    );
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = p
        .view(
            &tech,
            &format!("/api/v1/dashboard/activities?limit=10&cursor={cursor}"),
        )
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 3);
    assert!(rest["next_cursor"].is_null());
    assert!(
        rest["items"][2]["summary"]
            .as_str()
            .unwrap()
            .contains("created (REPAIR, URGENT, Northern)")
    );

    // Request performance is platform-wide: platform admins only.
    let resp = p
        .authed(Method::GET, "/api/v1/dashboard/performance", &admin)
        .call()
        .await;
    problem(resp, 403).await;
    let root = p.platform_admin().await;
    for _ in 0..5 {
        p.view(&tech, "/api/v1/analytics/zones").await;
    }
    // Samples are taken every second; wait for one that follows the requests above.
    let started = Instant::now();
    let services = loop {
        let perf = p.view(&root, "/api/v1/dashboard/performance").await;
        let services: BTreeMap<String, Value> = perf["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["service"].as_str().unwrap().to_owned(), s.clone()))
            .collect();
        let seen = |name: &str| {
            services
                .get(name)
                .and_then(|s| s["requests"].as_f64())
                .is_some_and(|n| n >= 5.0)
        };
        if perf["window_secs"].as_f64().unwrap_or(0.0) > 0.0 && seen("gateway") && seen("analytics")
        {
            break services;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{perf}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for name in ["gateway", "analytics"] {
        let s = &services[name];
        assert!(s["requests"].as_f64().unwrap() >= 5.0, "{name}: {s}");
        assert!(s["request_rate"].as_f64().unwrap() > 0.0);
        assert!(s["latency_ms_p99"].as_f64().unwrap() > 0.0);
        assert_eq!(s["error_rate"].as_f64(), Some(0.0));
    }
}

async fn a_fresh_store_backfills_from_tickets(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Backfill Co").await;
    let zones = ["Northern", "Southern", "Central"];
    for i in 0..12 {
        let t = p
            .ticket(&admin, json!({"title": format!("job {i}"), "category": "MAINTENANCE", "priority": "MEDIUM", "zone": zones[i % 3]}))
            .await;
        if i % 4 == 0 {
            for status in ["IN_PROGRESS", "COMPLETED"] {
                p.authed(
                    Method::PATCH,
                    &format!("/api/v1/tickets/{}", t["id"].as_str().unwrap()),
                    &admin,
                )
                .json(&json!({"status": status}))
                .call()
                .await;
            }
        }
    }
    let body_flow = json!({"metrics": ["created", "completed", "breached", "mean_time_to_complete"],
                           "date_range": "7d", "dimensions": ["time:day", "zone", "team", "category", "priority"]});
    // Completions and creations interleave: wait for both to be counted in full.
    until(
        &p,
        &admin,
        json!({"metrics": ["completed"], "date_range": "all"}),
        3,
    )
    .await;
    until(
        &p,
        &admin,
        json!({"metrics": ["tickets"], "date_range": "all"}),
        12,
    )
    .await;
    let stock_by_events = p.query(&admin, json!({"metrics": ["tickets", "open"], "date_range": "all", "dimensions": ["zone", "status"]})).await;
    let flow_by_events = p.query(&admin, body_flow.clone()).await;

    // A second analytics on a fresh store and a bus of its own hears no events: only the
    // first-start backfill can fill it.
    let fresh = agora_shared::testing::TestDb::sqlite();
    let toml = format!(
        "[analytics]\nhttp_addr = \"127.0.0.1:0\"\ngrpc_addr = \"127.0.0.1:0\"\ndatabase_url = \"{}\"\n",
        fresh.url
    );
    let (ctx, _quiet_bus) = agora_shared::testing::service_context(&toml);
    let discovered: Vec<Discovered> = p
        .discovered
        .iter()
        .filter(|d| d.name != "analytics")
        .cloned()
        .collect();
    let second = agora_analytics::start(
        &ctx.with_discovered(&discovered),
        p.shutdown.child_token(),
        Some(p.credential.clone()),
    )
    .await
    .expect("second analytics starts");
    let base = format!("http://{}", second.service.http_addr);
    let started = Instant::now();
    loop {
        if agora_analytics::backfill::done(&second.state.db)
            .await
            .unwrap()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "backfill did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ask = |body: Value| {
        let client = p.client.clone();
        let base = base.clone();
        let token = admin.access.clone();
        async move {
            client
                .post(format!("{base}/api/v1/analytics/query"))
                .bearer_auth(token)
                .json(&body)
                .value()
                .await
        }
    };
    let stock_by_backfill = ask(json!({"metrics": ["tickets", "open"], "date_range": "all", "dimensions": ["zone", "status"]})).await;
    assert_eq!(
        stock_by_backfill, stock_by_events,
        "same state from the backfill"
    );
    assert_eq!(
        ask(body_flow.clone()).await,
        flow_by_events,
        "same rollups from the backfill"
    );

    // A rebuild on the store the events filled counts nothing twice.
    let report = agora_analytics::backfill::run(
        &p.analytics.db,
        p.analytics.tickets_channel.clone(),
        &p.credential,
    )
    .await
    .expect("rebuild");
    assert_eq!(report.tickets, 12);
    assert_eq!(
        p.query(&admin, body_flow).await,
        flow_by_events,
        "a rebuild changes nothing"
    );
}

async fn grpc_client(p: &Platform) -> AnalyticsServiceClient<tonic::transport::Channel> {
    AnalyticsServiceClient::connect(p.analytics_grpc.clone())
        .await
        .expect("grpc connects")
}

fn authorized<T>(who: &Session, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", who.access).parse().unwrap(),
    );
    r
}

async fn grpc_queries_and_tenant_isolation(store: Store) {
    let p = platform(store).await;
    let acme = p.tenant("Acme").await;
    let globex = p.tenant("Globex").await;
    for (i, priority) in ["URGENT", "LOW", "URGENT"].iter().enumerate() {
        p.ticket(&acme, json!({"title": format!("a{i}"), "category": "REPAIR", "priority": priority, "zone": "Northern"}))
            .await;
    }
    p.ticket(
        &globex,
        json!({"title": "g", "category": "REPAIR", "priority": "URGENT", "zone": "Northern"}),
    )
    .await;
    until(
        &p,
        &acme,
        json!({"metrics": ["created"], "date_range": "all"}),
        3,
    )
    .await;
    until(
        &p,
        &globex,
        json!({"metrics": ["created"], "date_range": "all"}),
        1,
    )
    .await;

    let mut client = grpc_client(&p).await;
    let request = pb::QueryRequest {
        metrics: vec!["created".into(), "sla_compliance".into()],
        date_range: "7d".into(),
        dimensions: vec!["priority".into()],
        filters: vec![pb::Filter {
            kind: Some(pb::filter::Kind::Condition(pb::Condition {
                operator: "contains".into(),
                dimension: "zone".into(),
                values: vec!["north".into()],
            })),
        }],
        order_by: vec![pb::Order {
            key: "priority".into(),
            descending: true,
        }],
        ..Default::default()
    };
    let rows = client
        .query(authorized(&acme, request.clone()))
        .await
        .expect("query")
        .into_inner()
        .rows;
    let got: Vec<(String, Option<f64>, Option<f64>)> = rows
        .iter()
        .map(|r| {
            (
                r.dimensions[0].clone(),
                r.metrics[0].value,
                r.metrics[1].value,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("URGENT".into(), Some(2.0), None),
            ("LOW".into(), Some(1.0), None)
        ],
        "the caller's tenant only; compliance has nothing to average"
    );

    // Another tenant's analytics: forbidden to tenant users, allowed to platform admins.
    let mut other = request.clone();
    other.tenant_id = globex.tenant_id.clone();
    let err = client
        .query(authorized(&acme, other.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let resp = p
        .authed(Method::POST, "/api/v1/analytics/query", &acme)
        .json(&json!({"metrics": ["created"], "tenant_id": globex.tenant_id}))
        .call()
        .await;
    problem(resp, 403).await;
    let root = p.platform_admin().await;
    let rows = client
        .query(authorized(&root, other))
        .await
        .expect("admin query")
        .into_inner()
        .rows;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].metrics[0].value, Some(1.0));
    let globex_zones = p.view(&globex, "/api/v1/analytics/zones").await;
    assert_eq!(
        globex_zones[0]["open"], 1,
        "globex sees its own ticket only"
    );
    let feed = p.view(&globex, "/api/v1/dashboard/activities").await;
    assert_eq!(feed["items"].as_array().unwrap().len(), 1);
    let aging = p.view(&globex, "/api/v1/analytics/tickets/aging").await;
    assert_eq!(aging["open"], 1);
    let overview = p.view(&globex, "/api/v1/dashboard/overview").await;
    assert_eq!(overview["tickets"]["total"], 1);

    // Invalid gRPC queries are InvalidArgument naming the part.
    let mut bad = request;
    bad.metrics = vec!["visitors".into()];
    let err = client.query(authorized(&acme, bad)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("metrics[0]"), "{}", err.message());
}

async fn bad_requests_are_refused_with_the_part_named(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Strict Co").await;
    let tech = p.member(&admin, "tech@strict-co.test").await;
    let fields = |v: &Value| -> Vec<String> {
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    };
    let resp = p
        .authed(Method::POST, "/api/v1/analytics/query", &tech)
        .json(&json!({"metrics": ["created", "open", "nope"], "dimensions": ["status"], "date_range": ["2026-02-30", "2026-03-01"],
                      "filters": [["is", "zone"]], "order_by": [["team", "asc"]], "limit": 100000}))
        .call()
        .await;
    let body = problem(resp, 422).await;
    assert_eq!(
        fields(&body),
        [
            "metrics[2]",
            "date_range",
            "dimensions[0]",
            "filters[0]",
            "order_by[0]",
            "limit"
        ]
    );
    let resp = p
        .authed(Method::POST, "/api/v1/analytics/query", &tech)
        .header("content-type", "application/json")
        .body("{\"metrics\": [")
        .call()
        .await;
    problem(resp, 400).await;
    let resp = p
        .req(Method::POST, "/api/v1/analytics/query")
        .json(&json!({"metrics": ["created"]}))
        .call()
        .await;
    problem(resp, 401).await;

    for (path, field) in [
        ("/api/v1/analytics/forecast?horizon=9", "horizon"),
        ("/api/v1/analytics/forecast?level=2", "level"),
        ("/api/v1/analytics/forecast?category=PLUMBING", "category"),
        ("/api/v1/analytics/trends?date_range=all", "date_range"),
        ("/api/v1/analytics/performance?from=2026-01-01", "from"),
        ("/api/v1/analytics/zones?date_range=fortnight", "date_range"),
        ("/api/v1/dashboard/activities?cursor=bm9wZQ", "cursor"),
        ("/api/v1/dashboard/activities?limit=0", "limit"),
    ] {
        let resp = p.authed(Method::GET, path, &tech).call().await;
        let body = problem(resp, 422).await;
        assert_eq!(fields(&body), [field], "{path}");
    }

    // Plan factors: tenant admins (or analytics:manage) only, positive numbers only.
    let factors = json!({"team_divisor": 3.0, "hours_per_ticket": 4.0, "tickets_per_vehicle": 3.0, "fibre_metres_per_ticket": 100.0});
    let resp = p
        .authed(Method::PUT, "/api/v1/analytics/forecast/factors", &tech)
        .json(&factors)
        .call()
        .await;
    problem(resp, 403).await;
    let mut bad = factors.clone();
    bad["tickets_per_vehicle"] = json!(0);
    let resp = p
        .authed(Method::PUT, "/api/v1/analytics/forecast/factors", &admin)
        .json(&bad)
        .call()
        .await;
    let body = problem(resp, 422).await;
    assert_eq!(fields(&body), ["tickets_per_vehicle"]);
    let resp = p
        .authed(Method::PUT, "/api/v1/analytics/forecast/factors", &admin)
        .json(&factors)
        .call()
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        p.view(&tech, "/api/v1/analytics/forecast/factors").await,
        factors
    );

    // A new tenant with no history gets an empty, well-formed forecast.
    let forecast = p.view(&tech, "/api/v1/analytics/forecast").await;
    assert_eq!(forecast["series"], json!([]));
    assert_eq!(forecast["plan"], json!([]));
}
