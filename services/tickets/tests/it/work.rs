//! Assignments (checked against auth's teams over gRPC) and comments.

use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};

use agora_proto::events::v1 as ev;
use agora_shared::testing::{Call, problem};

use crate::support::{fields, platform};
use agora_shared::testing::Store;

agora_shared::on_sqlite_and_postgres!(assignments, comments);

async fn assignments(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    let tech = p.member(&admin, "tech@acme.test", &[]).await;
    let outsider = p.member(&admin, "other@acme.test", &[]).await;
    let lead = p
        .member(&admin, "lead@acme.test", &["tickets:manage"])
        .await;
    let crew = p.team(&admin, "Crew A", &[&tech.user_id], 1).await;
    let beta = p.tenant("Beta").await;
    let beta_team = p.team(&beta, "Beta crew", &[], 5).await;

    let t = p
        .ticket(&tech, json!({"title": "x", "category": "REPAIR"}))
        .await;
    let path = format!("/api/v1/tickets/{}/assignments", t["id"].as_str().unwrap());
    let assign = |who, body: Value| p.authed(Method::POST, &path, who).json(&body).call();

    // Unknown team, another tenant's team, a non-member: 422 naming the field.
    let body = problem(
        assign(&admin, json!({"team_id": "no-such-team"})).await,
        422,
    )
    .await;
    assert_eq!(fields(&body), ["team_id"]);
    let body = problem(assign(&admin, json!({"team_id": beta_team})).await, 422).await;
    assert_eq!(fields(&body), ["team_id"]);
    let body = problem(
        assign(
            &admin,
            json!({"team_id": crew, "user_id": outsider.user_id}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(fields(&body), ["user_id"]);
    // Plain users may not assign.
    problem(assign(&tech, json!({"team_id": crew})).await, 403).await;

    let resp = assign(
        &lead,
        json!({"team_id": crew, "user_id": tech.user_id, "note": "closest crew"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let done: Value = resp.json().await.unwrap();
    assert_eq!(done["ticket"]["team_id"], crew.as_str());
    assert_eq!(done["ticket"]["assignee_id"], tech.user_id.as_str());
    assert_eq!(done["assignment"]["note"], "closest crew");
    assert_eq!(
        done["team_load"],
        json!({"daily_capacity": 1, "assigned_today": 1, "over_capacity": false})
    );

    // The crew's capacity is 1 a day: a second ticket is assigned, flagged.
    let t2 = p
        .ticket(&tech, json!({"title": "y", "category": "REPAIR"}))
        .await;
    let path2 = format!("/api/v1/tickets/{}/assignments", t2["id"].as_str().unwrap());
    let over = p
        .authed(Method::POST, &path2, &admin)
        .json(&json!({"team_id": crew}))
        .value()
        .await;
    assert_eq!(
        over["team_load"],
        json!({"daily_capacity": 1, "assigned_today": 2, "over_capacity": true})
    );
    assert_eq!(over["assignment"]["over_capacity"], true);
    assert_eq!(over["ticket"]["assignee_id"], Value::Null);

    // Reassigning the first ticket keeps the history; the same ticket does not count twice.
    let again = assign(&admin, json!({"team_id": crew}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(again["team_load"]["assigned_today"], 2);
    let history = p.authed(Method::GET, &path, &tech).value().await;
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["user_id"], tech.user_id.as_str());
    assert_eq!(items[1]["user_id"], Value::Null);
    assert_eq!(items[1]["assigned_by"], admin.user_id.as_str());
    // Filter by team and assignee.
    let by_team = p
        .authed(
            Method::GET,
            &format!("/api/v1/tickets?team_id={crew}"),
            &tech,
        )
        .value()
        .await;
    assert_eq!(by_team["items"].as_array().unwrap().len(), 2);

    let events = p.events_of("agora.tickets.ticket.assigned").await;
    assert_eq!(events.len(), 3);
    let first = ev::TicketAssigned::decode(events[0].data.as_slice()).unwrap();
    assert_eq!(
        (first.team_id.as_str(), first.user_id.as_str()),
        (crew.as_str(), tech.user_id.as_str())
    );
    assert_eq!(first.actor_id, lead.user_id);
    assert!(
        ev::TicketAssigned::decode(events[1].data.as_slice())
            .unwrap()
            .over_capacity
    );

    // Final tickets cannot be assigned.
    let t2_path = format!("/api/v1/tickets/{}", t2["id"].as_str().unwrap());
    p.authed(Method::PATCH, &t2_path, &admin)
        .json(&json!({"status": "CANCELLED"}))
        .call()
        .await;
    problem(
        p.authed(Method::POST, &path2, &admin)
            .json(&json!({"team_id": crew}))
            .call()
            .await,
        409,
    )
    .await;
}

async fn comments(store: Store) {
    let p = platform(store).await;
    let admin = p.tenant("Acme").await;
    let tech = p.member(&admin, "tech@acme.test", &[]).await;
    let t = p
        .ticket(&admin, json!({"title": "x", "category": "REPAIR"}))
        .await;
    let path = format!("/api/v1/tickets/{}/comments", t["id"].as_str().unwrap());

    let resp = p
        .authed(Method::POST, &path, &tech)
        .json(&json!({"body": " On site now "}))
        .call()
        .await;
    assert_eq!(resp.status(), 201);
    let c: Value = resp.json().await.unwrap();
    assert_eq!(c["author_id"], tech.user_id.as_str());
    assert_eq!(c["body"], "On site now");
    let comment = format!("{path}/{}", c["id"].as_str().unwrap());
    p.authed(Method::POST, &path, &admin)
        .json(&json!({"body": "Thanks"}))
        .call()
        .await;
    problem(
        p.authed(Method::POST, &path, &tech)
            .json(&json!({"body": "  "}))
            .call()
            .await,
        422,
    )
    .await;
    problem(
        p.authed(Method::POST, &path, &tech)
            .json(&json!({"author_id": "x", "body": "hi"}))
            .call()
            .await,
        422,
    )
    .await;

    let list = p
        .authed(Method::GET, &format!("{path}?limit=1"), &admin)
        .value()
        .await;
    assert_eq!(list["items"][0]["body"], "On site now");
    let next = list["next_cursor"].as_str().unwrap();
    let rest = p
        .authed(
            Method::GET,
            &format!("{path}?limit=1&cursor={next}"),
            &admin,
        )
        .value()
        .await;
    assert_eq!(rest["items"][0]["body"], "Thanks");
    assert_eq!(rest["next_cursor"], Value::Null);

    // Only the author edits or deletes, and only within 15 minutes.
    problem(
        p.authed(Method::PATCH, &comment, &admin)
            .json(&json!({"body": "mine now"}))
            .call()
            .await,
        403,
    )
    .await;
    problem(p.authed(Method::DELETE, &comment, &admin).call().await, 403).await;
    let edited = p
        .authed(Method::PATCH, &comment, &tech)
        .json(&json!({"body": "Done"}))
        .value()
        .await;
    assert_eq!(edited["body"], "Done");
    let id = c["id"].as_str().unwrap().to_owned();
    p.state
        .db
        .write(move |conn| {
            use agora_tickets::schema::comments::dsl as c;
            use diesel::prelude::*;
            let then = agora_shared::db::now() - chrono::Duration::minutes(16);
            diesel::update(c::comments.find(&id))
                .set(c::created_at.eq(then))
                .execute(conn)?;
            Ok(())
        })
        .await
        .unwrap();
    problem(
        p.authed(Method::PATCH, &comment, &tech)
            .json(&json!({"body": "late"}))
            .call()
            .await,
        409,
    )
    .await;
    problem(p.authed(Method::DELETE, &comment, &tech).call().await, 409).await;
    let mine = p
        .authed(Method::POST, &path, &tech)
        .json(&json!({"body": "typo"}))
        .value()
        .await;
    let mine_path = format!("{path}/{}", mine["id"].as_str().unwrap());
    assert_eq!(
        p.authed(Method::DELETE, &mine_path, &tech)
            .call()
            .await
            .status(),
        204
    );
    problem(
        p.authed(Method::DELETE, &mine_path, &tech).call().await,
        404,
    )
    .await;

    let events = p.events_of("agora.tickets.ticket.commented").await;
    assert_eq!(events.len(), 3);
    let first = ev::TicketCommented::decode(events[0].data.as_slice()).unwrap();
    assert_eq!(
        (first.author_id.as_str(), first.body.as_str()),
        (tech.user_id.as_str(), "On site now")
    );
}
