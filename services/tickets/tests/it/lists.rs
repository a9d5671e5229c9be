//! Lists (filters, search, sort, cursor pages), statistics, tenant isolation on every route, and
//! the gRPC TicketService.

use reqwest::Method;
use serde_json::{Value, json};
use tonic::{Code, Request, metadata::MetadataValue};

use agora_proto::tickets::v1::{
    GetTicketRequest, ListTicketsRequest, StatsRequest, ticket_service_client::TicketServiceClient,
};
use agora_shared::testing::{Call, problem};

use crate::support::{Platform, Session, platform};
use agora_shared::testing::Store;

agora_shared::on_sqlite_and_postgres!(
    filters_sort_and_pages,
    text_search_finds_the_same_on_every_store,
    isolation_on_every_route,
    grpc_reads
);

/// Creates the fixture: 12 tickets across priorities, categories, zones and statuses.
async fn fixture(p: &Platform, who: &Session) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..12 {
        let priority = ["LOW", "MEDIUM", "HIGH", "URGENT"][i % 4];
        let category = ["REPAIR", "INSPECTION", "FIBER_INSTALLATION"][i % 3];
        let zone = ["Northern", "Central"][i % 2];
        let title = if i == 7 {
            "Splice 100% of the 50_pair cable".to_owned()
        } else {
            format!("job {i}")
        };
        let t = p
            .ticket(who, json!({"title": title, "description": format!("desc {i}"), "category": category, "priority": priority, "zone": zone}))
            .await;
        out.push(t);
    }
    for t in &out[..3] {
        let path = format!("/api/v1/tickets/{}", t["id"].as_str().unwrap());
        p.authed(Method::PATCH, &path, who)
            .json(&json!({"status": "IN_PROGRESS"}))
            .call()
            .await;
    }
    out
}

fn numbers(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
        .iter()
        .map(|t| t["number"].as_str().unwrap().to_owned())
        .collect()
}

async fn filters_sort_and_pages(store: Store) {
    let p = platform(store).await;
    let a = p.tenant("Acme").await;
    fixture(&p, &a).await;
    let list = |q: &str| {
        p.authed(Method::GET, &format!("/api/v1/tickets{q}"), &a)
            .value()
    };

    // Newest first by default; cursor pages cover everything exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=5&cursor={c}"),
            None => "?limit=5".to_owned(),
        };
        let page = list(&q).await;
        seen.extend(numbers(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (1..=12).rev().map(|n| format!("CTT-{n:06}")).collect();
    assert_eq!(seen, expected);

    assert_eq!(
        numbers(&list("?status=IN_PROGRESS&sort=number").await),
        ["CTT-000001", "CTT-000002", "CTT-000003"]
    );
    assert_eq!(numbers(&list("?status=OPEN,IN_PROGRESS").await).len(), 12);
    assert_eq!(
        numbers(&list("?priority=URGENT&sort=created_at").await),
        ["CTT-000004", "CTT-000008", "CTT-000012"]
    );
    assert_eq!(
        numbers(&list("?category=REPAIR&zone=Northern&sort=number").await),
        ["CTT-000001", "CTT-000007"]
    );
    assert_eq!(
        numbers(&list("?q=50_PAIR").await),
        ["CTT-000008"],
        "case-insensitive, wildcards literal"
    );
    assert_eq!(numbers(&list("?q=100%25").await), ["CTT-000008"]);
    assert_eq!(
        numbers(&list("?q=DESC%2011").await),
        ["CTT-000012"],
        "description is searched too"
    );
    assert_eq!(numbers(&list("?sla_status=PENDING").await).len(), 12);
    assert!(numbers(&list("?sla_status=BREACHED").await).is_empty());
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let past = (chrono::Utc::now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        numbers(&list(&format!("?created_from={past}&created_to={future}")).await).len(),
        12
    );
    assert!(numbers(&list(&format!("?created_from={future}")).await).is_empty());

    // Sort by priority descending, paged: urgent first, ties by number.
    let first = list("?sort=-priority&limit=4").await;
    assert_eq!(
        numbers(&first),
        ["CTT-000012", "CTT-000008", "CTT-000004", "CTT-000011"]
    );
    let c = first["next_cursor"].as_str().unwrap();
    let second = list(&format!("?sort=-priority&limit=4&cursor={c}")).await;
    assert_eq!(
        numbers(&second),
        ["CTT-000007", "CTT-000003", "CTT-000010", "CTT-000006"]
    );
    // Due time ascending: the URGENT ones are due first.
    let due = list("?sort=due_at&limit=3").await;
    assert_eq!(numbers(&due), ["CTT-000004", "CTT-000008", "CTT-000012"]);
    let c = due["next_cursor"].as_str().unwrap();
    assert_eq!(
        numbers(&list(&format!("?sort=due_at&limit=3&cursor={c}")).await),
        ["CTT-000003", "CTT-000007", "CTT-000011"]
    );
    // A cursor of one sort order is refused by another.
    problem(
        p.authed(
            Method::GET,
            &format!("/api/v1/tickets?sort=number&cursor={c}"),
            &a,
        )
        .call()
        .await,
        422,
    )
    .await;

    let stats = p
        .authed(Method::GET, "/api/v1/tickets/stats/summary", &a)
        .value()
        .await;
    assert_eq!(stats["total"], 12);
    assert_eq!(
        stats["by_status"],
        json!({"OPEN": 9, "IN_PROGRESS": 3, "ON_HOLD": 0, "COMPLETED": 0, "CANCELLED": 0})
    );
    assert_eq!(
        stats["by_priority"],
        json!({"LOW": 3, "MEDIUM": 3, "HIGH": 3, "URGENT": 3})
    );
    assert_eq!(stats["by_category"]["REPAIR"], 4);
    assert_eq!(stats["by_category"]["EMERGENCY"], 0);
    assert_eq!(stats["by_zone"], json!({"Central": 6, "Northern": 6}));
    assert_eq!(stats["by_sla_status"]["PENDING"], 12);
    assert_eq!(stats["mean_time_to_complete_hours"], Value::Null);
}

/// `q` is a case-insensitive substring of the title or the description, the same on SQLite
/// (a trigram index from three characters, a scan below) and PostgreSQL; search syntax in `q`
/// is plain text; edits are found at once; another tenant's tickets never.
async fn text_search_finds_the_same_on_every_store(store: Store) {
    let p = platform(store).await;
    let a = p.tenant("Acme").await;
    let b = p.tenant("Beta").await;
    for (title, description) in [
        ("Splice cabinet 4", "Fiber cut near the Straße corner"),
        ("Replace ONT", "customer says \"no light\" (red LED)"),
        ("Inspect pole 42", "NOT urgent; check *all* bolts: 10-12"),
    ] {
        p.ticket(&a, json!({"title": title, "description": description, "category": "REPAIR", "priority": "LOW"}))
            .await;
    }
    p.ticket(
        &b,
        json!({"title": "Splice cabinet 9", "category": "REPAIR", "priority": "LOW"}),
    )
    .await;
    let search = |q: &str| {
        let q = q.to_owned();
        let p = &p;
        let a = &a;
        async move {
            let url =
                reqwest::Url::parse_with_params("http://x/api/v1/tickets", [("q", q.as_str())])
                    .unwrap();
            let page = p
                .authed(
                    Method::GET,
                    &format!("/api/v1/tickets?{}", url.query().unwrap()),
                    a,
                )
                .value()
                .await;
            numbers(&page)
        }
    };
    let (one, two, three) = ("CTT-000001", "CTT-000002", "CTT-000003");
    for (q, expected) in [
        ("splice", vec![one]),
        ("CABINET 4", vec![one]),
        ("straße", vec![one]),
        ("\"no light\"", vec![two]),
        ("(red", vec![two]),
        ("*all*", vec![three]),
        ("NOT urgent", vec![three]),
        ("10-12", vec![three]),
        ("ce", vec![two, one]),
        ("e", vec![three, two, one]),
        ("pole 42 NOT", vec![]),
        ("cabinet 9", vec![]),
        // Several words: found by the longest and checked whole.
        ("cut near the STRASSE", vec![]),
        ("cut near the straße", vec![one]),
        ("splice pole", vec![]),
        ("check *all* bolts: 10", vec![three]),
        // A title's end and a description's start are not one text.
        ("4 fiber", vec![]),
    ] {
        assert_eq!(search(q).await, expected, "q={q:?}");
    }
    // An edit is searchable at once, and the old text is gone.
    let id = p
        .authed(Method::GET, "/api/v1/tickets?q=replace", &a)
        .value()
        .await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patched = p
        .authed(Method::PATCH, &format!("/api/v1/tickets/{id}"), &a)
        .json(&json!({"title": "Swap ONT"}))
        .call()
        .await;
    assert_eq!(patched.status(), 200);
    assert!(search("replace").await.is_empty());
    assert_eq!(search("swap ont").await, vec![two]);
    // On SQLite the index itself is in step (the searches above went through it).
    if p.state.db.is_sqlite() {
        let indexed = |phrase: &'static str| {
            p.state.db.read(move |conn| {
                #[derive(diesel::QueryableByName)]
                struct Hits {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                let hits: Hits = diesel::RunQueryDsl::get_result(
                    diesel::sql_query(
                        "SELECT count(*) AS n FROM ticket_search WHERE ticket_search MATCH ?",
                    )
                    .bind::<diesel::sql_types::Text, _>(phrase),
                    conn,
                )?;
                Ok(hits.n)
            })
        };
        assert_eq!(indexed("\"swap ont\"").await.unwrap(), 1);
        assert_eq!(indexed("\"replace\"").await.unwrap(), 0);
        assert_eq!(indexed("\"splice cabinet\"").await.unwrap(), 2);
    }

    // sort=relevance: title matches first, then description-only ones, each newest first;
    // cursor pages walk that order exactly once, through the index and through the scan.
    for (title, description) in [
        ("Crew report", "pole leaning after the storm"),
        ("Pole 9 down", "urgent"),
    ] {
        p.ticket(&a, json!({"title": title, "description": description, "category": "REPAIR", "priority": "LOW"}))
            .await;
    }
    let (four, five) = ("CTT-000004", "CTT-000005");
    for (q, expected) in [
        ("pole", vec![five, three, four]),
        ("po", vec![five, four, three]),
    ] {
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = p
                .authed(
                    Method::GET,
                    &format!("/api/v1/tickets?q={q}&sort=relevance&limit=1{cursor}"),
                    &a,
                )
                .value()
                .await;
            seen.extend(numbers(&page));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(seen, expected, "q={q:?}");
    }
    for query in ["sort=relevance", "sort=-relevance&q=pole"] {
        let body = problem(
            p.authed(Method::GET, &format!("/api/v1/tickets?{query}"), &a)
                .call()
                .await,
            422,
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "sort", "{query}: {body}");
    }
}

async fn isolation_on_every_route(store: Store) {
    let p = platform(store).await;
    let a = p.tenant("Acme").await;
    let b = p.tenant("Beta").await;
    let team_b = p.team(&b, "B crew", &[], 5).await;
    let t = p
        .ticket(&a, json!({"title": "secret", "category": "REPAIR"}))
        .await;
    let id = t["id"].as_str().unwrap();
    let path = format!("/api/v1/tickets/{id}");
    let comment = p
        .authed(Method::POST, &format!("{path}/comments"), &a)
        .json(&json!({"body": "hi"}))
        .value()
        .await;
    let comment_path = format!("{path}/comments/{}", comment["id"].as_str().unwrap());
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, path.clone(), None),
        (Method::GET, "/api/v1/tickets/CTT-000001".into(), None),
        (Method::PATCH, path.clone(), Some(json!({"title": "mine"}))),
        (
            Method::PUT,
            path.clone(),
            Some(json!({"title": "mine", "category": "REPAIR"})),
        ),
        (Method::DELETE, path.clone(), None),
        (Method::GET, format!("{path}/assignments"), None),
        (
            Method::POST,
            format!("{path}/assignments"),
            Some(json!({"team_id": team_b})),
        ),
        (Method::GET, format!("{path}/comments"), None),
        (
            Method::POST,
            format!("{path}/comments"),
            Some(json!({"body": "x"})),
        ),
        (
            Method::PATCH,
            comment_path.clone(),
            Some(json!({"body": "x"})),
        ),
        (Method::DELETE, comment_path.clone(), None),
    ];
    for (method, route, body) in routes {
        let mut req = p.authed(method.clone(), &route, &b);
        if let Some(body) = body {
            req = req.json(&body);
        }
        problem(req.call().await, 404).await;
    }
    let list = p.authed(Method::GET, "/api/v1/tickets", &b).value().await;
    assert_eq!(list["items"], json!([]));
    let stats = p
        .authed(Method::GET, "/api/v1/tickets/stats/summary", &b)
        .value()
        .await;
    assert_eq!(stats["total"], 0);
    let still = p.authed(Method::GET, &path, &a).value().await;
    assert_eq!(still["title"], "secret");
    let comments = p
        .authed(Method::GET, &format!("{path}/comments"), &a)
        .value()
        .await;
    assert_eq!(comments["items"].as_array().unwrap().len(), 1);
}

fn authed<T>(message: T, who: &Session) -> Request<T> {
    let mut req = Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {}", who.access)).unwrap();
    req.metadata_mut().insert("authorization", value);
    req
}

async fn grpc_reads(store: Store) {
    let p = platform(store).await;
    let a = p.tenant("Acme").await;
    let b = p.tenant("Beta").await;
    fixture(&p, &a).await;
    let mut client = TicketServiceClient::connect(p.tickets_grpc.clone())
        .await
        .unwrap();

    let t = client
        .get_ticket(authed(
            GetTicketRequest {
                id: "CTT-000004".into(),
                tenant_id: String::new(),
            },
            &a,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (t.priority.as_str(), t.sla_hours, t.tenant_id.as_str()),
        ("URGENT", 4, a.tenant_id.as_str())
    );
    let err = client
        .get_ticket(authed(
            GetTicketRequest {
                id: t.id.clone(),
                tenant_id: String::new(),
            },
            &b,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .get_ticket(authed(
            GetTicketRequest {
                id: t.id.clone(),
                tenant_id: a.tenant_id.clone(),
            },
            &b,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client
        .get_ticket(Request::new(GetTicketRequest {
            id: t.id.clone(),
            tenant_id: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let page = client
        .list_tickets(authed(
            ListTicketsRequest {
                status: vec!["OPEN".into()],
                zone: "Central".into(),
                sort: "number".into(),
                limit: 2,
                ..Default::default()
            },
            &a,
        ))
        .await
        .unwrap()
        .into_inner();
    let got: Vec<&str> = page.tickets.iter().map(|t| t.number.as_str()).collect();
    assert_eq!(got, ["CTT-000004", "CTT-000006"]);
    let rest = client
        .list_tickets(authed(
            ListTicketsRequest {
                status: vec!["OPEN".into()],
                zone: "Central".into(),
                sort: "number".into(),
                limit: 10,
                cursor: page.next_cursor,
                ..Default::default()
            },
            &a,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.tickets.len(), 3);
    assert!(rest.next_cursor.is_empty());
    let err = client
        .list_tickets(authed(
            ListTicketsRequest {
                sla_status: "LATE".into(),
                ..Default::default()
            },
            &a,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let stats = client
        .stats(authed(StatsRequest::default(), &a))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.total, 12);
    assert_eq!(stats.by_status["IN_PROGRESS"], 3);
    assert_eq!(stats.by_zone["Central"], 6);
    let other = client
        .stats(authed(StatsRequest::default(), &b))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other.total, 0);
}
