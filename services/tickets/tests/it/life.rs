//! A ticket's whole life through the gateway: create, read, patch along the status machine,
//! replace, delete; validation, permissions, concurrency and the events it publishes.

use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};

use agora_proto::events::v1 as ev;
use agora_shared::testing::{Call, problem};

use crate::support::{fields, platform, secs_from_now};
use agora_shared::testing::Store;

agora_shared::on_sqlite_and_postgres!(
    whole_life,
    invalid_input_names_fields,
    stale_if_match_is_412,
    permissions,
    zones_per_tenant,
    parallel_creates_get_consecutive_numbers,
);

async fn whole_life(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    let tech = p.member(&admin, "tech@acme.test", &[]).await;

    let resp = p
        .authed(Method::POST, "/api/v1/tickets", &tech)
        .json(&json!({
            "title": "Fibre cut on Jalan Ampang", "description": "No signal since 9am",
            "category": "REPAIR", "priority": "HIGH", "location": "Jalan Ampang 12",
            "zone": "Central", "latitude": 3.16, "longitude": 101.71,
            "customer_name": "Siti", "customer_contact": "+60 12 345 6789",
            "estimated_duration_minutes": 90, "tags": ["fibre", "outage"]
        }))
        .call()
        .await;
    assert_eq!(resp.status(), 201);
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let t: Value = resp.json().await.unwrap();
    let id = t["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/tickets/{id}"));
    assert_eq!(t["number"], "CTT-000001");
    assert_eq!(t["status"], "OPEN");
    assert_eq!(t["sla_hours"], 8, "HIGH defaults to 8 hours");
    assert_eq!(t["sla_status"], "PENDING");
    assert_eq!(t["progress"], 0);
    assert_eq!(t["tags"], json!(["fibre", "outage"]));
    assert!((secs_from_now(&t["due_at"]) - 8 * 3600).abs() < 60);
    for key in [
        "id",
        "number",
        "title",
        "description",
        "category",
        "priority",
        "status",
        "location",
        "zone",
        "latitude",
        "longitude",
        "customer_name",
        "customer_contact",
        "team_id",
        "assignee_id",
        "sla_hours",
        "due_at",
        "sla_status",
        "estimated_duration_minutes",
        "progress",
        "completed_at",
        "tags",
        "created_at",
        "updated_at",
    ] {
        assert!(t.get(key).is_some(), "wire field {key}");
    }

    // By id and by number, with the same ETag.
    let by_number = p
        .authed(Method::GET, "/api/v1/tickets/CTT-000001", &tech)
        .call()
        .await;
    assert_eq!(by_number.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(by_number.json::<Value>().await.unwrap(), t);

    // OPEN -> COMPLETED skips a step: 409 naming the allowed moves.
    let bad = p
        .authed(Method::PATCH, &location, &tech)
        .json(&json!({"status": "COMPLETED"}))
        .call()
        .await;
    let body = problem(bad, 409).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("allowed: IN_PROGRESS, ON_HOLD, CANCELLED"),
        "{body}"
    );
    assert_eq!(body["code"], "tickets.illegal_transition", "{body}");

    // A method the path does not have: 405 naming the ones it has (not 404).
    let resp = p.authed(Method::PUT, "/api/v1/tickets", &tech).call().await;
    assert_eq!(resp.headers()["allow"], "GET, POST");
    let body = problem(resp, 405).await;
    assert_eq!(body["code"], "method_not_allowed", "{body}");
    let patch = |v: Value| p.authed(Method::PATCH, &location, &tech).json(&v).value();
    let t = patch(json!({"status": "IN_PROGRESS", "progress": 40})).await;
    assert_eq!(
        (t["status"].as_str(), t["progress"].as_i64()),
        (Some("IN_PROGRESS"), Some(40))
    );
    let t = patch(json!({"location": null, "tags": ["fibre"]})).await;
    assert_eq!(t["location"], Value::Null);
    assert_eq!(t["tags"], json!(["fibre"]));
    let t = patch(json!({"status": "COMPLETED"})).await;
    assert_eq!(t["status"], "COMPLETED");
    assert_eq!(t["progress"], 100);
    assert!(secs_from_now(&t["completed_at"]).abs() < 60);
    assert_eq!(t["sla_status"], "ON_TIME");
    let body = problem(
        p.authed(Method::PATCH, &location, &tech)
            .json(&json!({"status": "OPEN"}))
            .call()
            .await,
        409,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("cannot change status")
    );

    // PUT replaces every editable field.
    let put = p
        .authed(Method::PUT, &location, &tech)
        .json(
            &json!({"title": "Fibre cut (repaired)", "category": "MAINTENANCE", "priority": "LOW"}),
        )
        .value()
        .await;
    assert_eq!(put["title"], "Fibre cut (repaired)");
    assert_eq!(put["category"], "MAINTENANCE");
    assert_eq!(put["sla_hours"], 72);
    assert_eq!(put["customer_name"], Value::Null);
    assert_eq!(put["tags"], json!([]));
    assert_eq!(put["status"], "COMPLETED", "PUT does not touch the status");

    // Delete: 204, then 404 everywhere.
    let del = p.authed(Method::DELETE, &location, &admin).call().await;
    assert_eq!(del.status(), 204);
    problem(p.authed(Method::GET, &location, &admin).call().await, 404).await;
    problem(
        p.authed(Method::DELETE, &location, &admin).call().await,
        404,
    )
    .await;
    let list = p
        .authed(Method::GET, "/api/v1/tickets", &admin)
        .value()
        .await;
    assert_eq!(list["items"], json!([]));

    // Events, in order, with the ticket as it was after each change.
    let created = p.events_of("agora.tickets.ticket.created").await;
    assert_eq!(created.len(), 1);
    let msg = ev::TicketCreated::decode(created[0].data.as_slice()).unwrap();
    let ticket = msg.ticket.unwrap();
    assert_eq!(
        (ticket.number.as_str(), ticket.id.as_str()),
        ("CTT-000001", id.as_str())
    );
    assert_eq!(ticket.tenant_id, tech.tenant_id);
    assert_eq!(msg.actor_id, tech.user_id);
    assert_eq!(created[0].key, id);
    assert_eq!(
        created[0].tenant_id.as_deref(),
        Some(tech.tenant_id.as_str())
    );
    let moves: Vec<(String, String)> = p
        .events_of("agora.tickets.ticket.status_changed")
        .await
        .iter()
        .map(|e| {
            let m = ev::TicketStatusChanged::decode(e.data.as_slice()).unwrap();
            (m.from_status, m.to_status)
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("OPEN".into(), "IN_PROGRESS".into()),
            ("IN_PROGRESS".into(), "COMPLETED".into())
        ]
    );
    let updated: Vec<Vec<String>> = p
        .events_of("agora.tickets.ticket.updated")
        .await
        .iter()
        .map(|e| {
            ev::TicketUpdated::decode(e.data.as_slice())
                .unwrap()
                .changed_fields
        })
        .collect();
    assert_eq!(updated[0], ["progress"]);
    assert_eq!(updated[1], ["location", "tags"]);
    assert!(updated[2].contains(&"title".to_owned()) && updated[2].contains(&"due_at".to_owned()));
    let deleted = p.events_of("agora.tickets.ticket.deleted").await;
    assert_eq!(deleted.len(), 1);
    assert!(
        ev::TicketUpdated::decode(deleted[0].data.as_slice())
            .unwrap()
            .ticket
            .unwrap()
            .deleted
    );
}

async fn invalid_input_names_fields(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    let bad = |v: Value| {
        p.authed(Method::POST, "/api/v1/tickets", &admin)
            .json(&v)
            .call()
    };
    let body = problem(
        bad(json!({"title": "", "category": "REPAIR", "latitude": 91.0, "progress": 101, "tags": ["x".repeat(51)]})).await,
        422,
    )
    .await;
    let mut got = fields(&body);
    got.sort();
    assert_eq!(got, ["latitude", "progress", "tags", "title"]);
    let body = problem(
        bad(json!({"title": "x", "category": "PLUMBING"})).await,
        422,
    )
    .await;
    assert_eq!(fields(&body), ["category"]);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("FIBER_INSTALLATION")
    );
    assert_eq!(
        fields(&problem(bad(json!({"category": "REPAIR"})).await, 422).await),
        ["title"]
    );
    assert_eq!(
        fields(
            &problem(
                bad(json!({"title": "x", "category": "REPAIR", "colour": "red"})).await,
                422
            )
            .await
        )
        .len(),
        1
    );
    assert_eq!(
        fields(
            &problem(
                bad(json!({"title": "x", "category": "REPAIR", "zone": "Atlantis"})).await,
                422
            )
            .await
        ),
        ["zone"]
    );
    problem(
        p.authed(Method::POST, "/api/v1/tickets", &admin)
            .header("content-type", "application/json")
            .body("{not json")
            .call()
            .await,
        400,
    )
    .await;
    let t = p
        .ticket(&admin, json!({"title": "x", "category": "REPAIR"}))
        .await;
    let path = format!("/api/v1/tickets/{}", t["id"].as_str().unwrap());
    let body = problem(
        p.authed(Method::PATCH, &path, &admin)
            .json(&json!({"status": "DONE", "progress": -1}))
            .call()
            .await,
        422,
    )
    .await;
    assert_eq!(
        fields(&body).len(),
        1,
        "the first wrong field is named: {body}"
    );
    let body = problem(
        p.authed(
            Method::GET,
            "/api/v1/tickets?status=OPEN,DONE&sort=title&limit=0",
            &admin,
        )
        .call()
        .await,
        422,
    )
    .await;
    assert_eq!(fields(&body), ["status", "sort", "limit"]);
    problem(
        p.authed(Method::GET, "/api/v1/tickets/no-such-id", &admin)
            .call()
            .await,
        404,
    )
    .await;
    problem(p.req(Method::GET, "/api/v1/tickets").call().await, 401).await;
}

async fn stale_if_match_is_412(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    let t = p
        .ticket(&admin, json!({"title": "x", "category": "REPAIR"}))
        .await;
    let path = format!("/api/v1/tickets/{}", t["id"].as_str().unwrap());
    let etag = p.authed(Method::GET, &path, &admin).call().await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let first = p
        .authed(Method::PATCH, &path, &admin)
        .header("if-match", &etag)
        .json(&json!({"title": "first"}))
        .call()
        .await;
    assert_eq!(first.status(), 200);
    let new_etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    for method in [Method::PATCH, Method::PUT] {
        let stale = p
            .authed(method, &path, &admin)
            .header("if-match", &etag)
            .json(&json!({"title": "second", "category": "REPAIR"}))
            .call()
            .await;
        let body = problem(stale, 412).await;
        assert_eq!(body["code"], "tickets.stale_version", "{body}");
    }
    let now = p.authed(Method::GET, &path, &admin).value().await;
    assert_eq!(now["title"], "first", "a stale write changed nothing");
    let ok = p
        .authed(Method::PUT, &path, &admin)
        .header("if-match", &new_etag)
        .json(&json!({"title": "second", "category": "REPAIR"}))
        .call()
        .await;
    assert_eq!(ok.status(), 200);
    problem(
        p.authed(Method::PATCH, &path, &admin)
            .header("if-match", "soon")
            .json(&json!({}))
            .call()
            .await,
        400,
    )
    .await;
}

async fn permissions(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    let tech = p.member(&admin, "tech@acme.test", &[]).await;
    let lead = p
        .member(&admin, "lead@acme.test", &["tickets:manage"])
        .await;
    let t = p
        .ticket(&tech, json!({"title": "x", "category": "REPAIR"}))
        .await;
    let path = format!("/api/v1/tickets/{}", t["id"].as_str().unwrap());
    // Plain users create, read, update and comment, but neither override SLAs nor delete.
    problem(
        p.authed(Method::POST, "/api/v1/tickets", &tech)
            .json(&json!({"title": "x", "category": "REPAIR", "sla_hours": 2}))
            .call()
            .await,
        403,
    )
    .await;
    problem(
        p.authed(Method::PATCH, &path, &tech)
            .json(&json!({"sla_hours": 2}))
            .call()
            .await,
        403,
    )
    .await;
    problem(p.authed(Method::DELETE, &path, &tech).call().await, 403).await;
    let t = p
        .authed(Method::PATCH, &path, &tech)
        .json(&json!({"priority": "URGENT"}))
        .value()
        .await;
    assert_eq!(t["sla_hours"], 4, "a priority change is not an override");
    let t = p
        .authed(Method::PATCH, &path, &lead)
        .json(&json!({"sla_hours": 2}))
        .value()
        .await;
    assert_eq!(t["sla_hours"], 2);
    assert!((secs_from_now(&t["due_at"]) - 2 * 3600).abs() < 60);
    let t = p
        .authed(Method::PATCH, &path, &lead)
        .json(&json!({"sla_hours": null}))
        .value()
        .await;
    assert_eq!(t["sla_hours"], 4, "null returns to the priority's default");
    assert_eq!(
        p.authed(Method::DELETE, &path, &lead).call().await.status(),
        204
    );
}

async fn zones_per_tenant(store: Store) {
    let p = platform(store).await;
    let a = p.tenant("Acme").await;
    let b = p.tenant("Beta").await;
    let tech = p.member(&a, "tech@acme.test", &[]).await;
    let zones = p
        .authed(Method::GET, "/api/v1/tickets/zones", &a)
        .value()
        .await;
    assert_eq!(
        zones["zones"],
        json!(["Northern", "Southern", "Central", "East Coast", "Borneo"])
    );
    problem(
        p.authed(Method::PUT, "/api/v1/tickets/zones", &tech)
            .json(&json!({"zones": ["North"]}))
            .call()
            .await,
        403,
    )
    .await;
    let set = p
        .authed(Method::PUT, "/api/v1/tickets/zones", &a)
        .json(&json!({"zones": ["Klang Valley", " Penang ", "Klang Valley"]}))
        .value()
        .await;
    assert_eq!(set["zones"], json!(["Klang Valley", "Penang"]));
    p.ticket(
        &a,
        json!({"title": "x", "category": "REPAIR", "zone": "Penang"}),
    )
    .await;
    problem(
        p.authed(Method::POST, "/api/v1/tickets", &a)
            .json(&json!({"title": "x", "category": "REPAIR", "zone": "Central"}))
            .call()
            .await,
        422,
    )
    .await;
    let other = p
        .authed(Method::GET, "/api/v1/tickets/zones", &b)
        .value()
        .await;
    assert_eq!(
        other["zones"][0], "Northern",
        "other tenants keep their own zones"
    );
    problem(
        p.authed(Method::PUT, "/api/v1/tickets/zones", &a)
            .json(&json!({"zones": []}))
            .call()
            .await,
        422,
    )
    .await;
}

async fn parallel_creates_get_consecutive_numbers(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    let other = p.tenant("Beta").await;
    let creates = (0..50).map(|i| {
        let req = p
            .authed(Method::POST, "/api/v1/tickets", &admin)
            .json(&json!({"title": format!("job {i}"), "category": "INSPECTION"}));
        async move { req.value().await["number"].as_str().unwrap().to_owned() }
    });
    let mut numbers = futures::future::join_all(creates).await;
    numbers.sort();
    let expected: Vec<String> = (1..=50).map(|n| format!("CTT-{n:06}")).collect();
    assert_eq!(numbers, expected);
    // Numbering is per tenant.
    let first = p
        .ticket(&other, json!({"title": "x", "category": "REPAIR"}))
        .await;
    assert_eq!(first["number"], "CTT-000001");
    assert_eq!(p.events_of("agora.tickets.ticket.created").await.len(), 51);
}
