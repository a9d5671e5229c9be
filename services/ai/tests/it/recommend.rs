//! Field-force recommendations: the tenant's teams ranked for a ticket by the assignment
//! rules' weights, from teams (auth) and tickets (tickets) made through the gateway. The
//! expected scores are computed here from the rules as docs/ai.md states them, not by the
//! service's code.

use reqwest::Method;
use serde_json::{Value, json};

use agora_shared::testing::{Call, Store};

use crate::support::{Platform, Session, platform};

const WEIGHTS: [(&str, f64); 7] = [
    ("location", 0.25),
    ("availability", 0.20),
    ("productivity", 0.15),
    ("skill", 0.15),
    ("workload", 0.10),
    ("sla", 0.10),
    ("customer_timing", 0.05),
];

async fn team(
    p: &Platform,
    admin: &Session,
    name: &str,
    zone: &str,
    skills: &[&str],
    capacity: i32,
) -> String {
    let body = json!({"name": name, "zone": zone, "skills": skills, "daily_capacity": capacity});
    let team = p
        .authed(Method::POST, "/api/v1/teams", admin)
        .json(&body)
        .value()
        .await;
    team["id"].as_str().expect("team id").to_owned()
}

async fn ticket(
    p: &Platform,
    admin: &Session,
    body: Value,
    team: Option<&str>,
    done: bool,
) -> Value {
    let t = p.ticket(admin, body).await;
    let path = format!("/api/v1/tickets/{}", t["id"].as_str().unwrap());
    if let Some(team) = team {
        let resp = p
            .authed(Method::POST, &format!("{path}/assignments"), admin)
            .json(&json!({"team_id": team}))
            .call()
            .await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }
    if done {
        for status in ["IN_PROGRESS", "COMPLETED"] {
            let resp = p
                .authed(Method::PATCH, &path, admin)
                .json(&json!({"status": status}))
                .call()
                .await;
            assert_eq!(resp.status(), 200);
        }
    }
    t
}

/// The score the rules give: (factor scores in WEIGHTS' order).
fn expected(factors: [f64; 7]) -> f64 {
    WEIGHTS.iter().zip(factors).map(|((_, w), s)| w * s).sum()
}

async fn teams_ranked_by_the_rules(store: Store) {
    let p = platform(store, "").await;
    let admin = p.tenant("Acme").await;
    let north = team(
        &p,
        &admin,
        "North Fibre",
        "Northern",
        &["Fiber splicing"],
        3,
    )
    .await;
    let central = team(&p, &admin, "Central Repairs", "Central", &["repair"], 5).await;
    let full = team(&p, &admin, "Northern Generalists", "Northern", &[], 2).await;
    // North Fibre has 2 tickets open, Northern Generalists 2 (its whole capacity); Central
    // Repairs completed one, on time.
    for _ in 0..2 {
        ticket(
            &p,
            &admin,
            json!({"title": "splice", "category": "REPAIR", "zone": "Northern"}),
            Some(&north),
            false,
        )
        .await;
        ticket(
            &p,
            &admin,
            json!({"title": "check", "category": "INSPECTION", "zone": "Northern"}),
            Some(&full),
            false,
        )
        .await;
    }
    ticket(
        &p,
        &admin,
        json!({"title": "fix", "category": "REPAIR", "zone": "Central"}),
        Some(&central),
        true,
    )
    .await;
    // The ticket to place: fibre in the north, LOW priority (72 h: it can wait a day).
    let target = ticket(
        &p,
        &admin,
        json!({"title": "New line", "category": "FIBER_INSTALLATION", "zone": "Northern", "priority": "LOW"}),
        None,
        false,
    )
    .await;

    let (status, out) = p
        .post_as(
            &admin,
            "/api/v1/ai/recommendations",
            json!({"ticket_id": target["number"]}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["ticket_id"], target["id"]);
    assert_eq!(out["provider"], "local");
    // By the rules: location, availability, productivity, skill, workload, SLA, timing.
    let want_north = [1.0, 1.0 / 3.0, 0.0, 1.0, 0.0, 0.5, 1.0];
    let want = [
        ("Central Repairs", [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]),
        ("North Fibre", want_north),
        ("Northern Generalists", [1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5]),
    ];
    let candidates = out["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 3);
    for (candidate, (name, factors)) in candidates.iter().zip(want) {
        assert_eq!(candidate["name"], name, "{out}");
        let score = candidate["score"].as_f64().unwrap();
        assert!(
            (score - expected(factors)).abs() < 1e-4,
            "{name}: {score} vs {}",
            expected(factors)
        );
        for ((factor, weight), value) in WEIGHTS.iter().zip(factors) {
            let f = &candidate["factors"][factor];
            assert!(
                (f["score"].as_f64().unwrap() - value).abs() < 1e-4,
                "{name} {factor}: {f}"
            );
            assert_eq!(f["weight"].as_f64().unwrap(), *weight);
            assert!(f["explanation"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
    let north_fibre = &candidates[1]["factors"];
    assert_eq!(
        north_fibre["skill"]["explanation"],
        "skill `Fiber splicing` fits FIBER_INSTALLATION"
    );
    assert_eq!(
        north_fibre["availability"]["explanation"],
        "1 of its 3 daily slots free (2 active)"
    );

    // An URGENT ticket cannot wait: a full team's timing is 0.
    let urgent = ticket(&p, &admin, json!({"title": "Outage", "category": "EMERGENCY", "zone": "Northern", "priority": "URGENT"}), None, false).await;
    let (_, out) = p
        .post_as(
            &admin,
            "/api/v1/ai/recommendations",
            json!({"ticket_id": urgent["id"], "limit": 1}),
        )
        .await;
    assert_eq!(out["candidates"].as_array().unwrap().len(), 1);
    let (_, all) = p
        .post_as(
            &admin,
            "/api/v1/ai/recommendations",
            json!({"ticket_id": urgent["id"], "limit": 3}),
        )
        .await;
    let generalists = all["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Northern Generalists")
        .unwrap();
    assert_eq!(generalists["factors"]["customer_timing"]["score"], 0.0);

    // The same over gRPC, for the other services.
    let mut client =
        agora_proto::ai::v1::ai_service_client::AiServiceClient::connect(p.grpc.clone())
            .await
            .unwrap();
    let mut request = tonic::Request::new(agora_proto::ai::v1::RecommendRequest {
        ticket_id: target["id"].as_str().unwrap().to_owned(),
        limit: 0,
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", admin.access).parse().unwrap(),
    );
    let reply = client.recommend(request).await.unwrap().into_inner();
    assert_eq!(reply.candidates[0].name, "Central Repairs");
    assert!((reply.candidates[1].score - expected(want_north)).abs() < 1e-4);
    assert_eq!(reply.candidates[1].factors["skill"].score, 1.0);

    // Another tenant's ticket is not found; bad input is named.
    let globex = p.tenant("Globex").await;
    let (status, _) = p
        .post_as(
            &globex,
            "/api/v1/ai/recommendations",
            json!({"ticket_id": target["id"]}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = p
        .post_as(
            &admin,
            "/api/v1/ai/recommendations",
            json!({"ticket_id": target["id"], "limit": 0}),
        )
        .await;
    assert_eq!(
        (status, crate::fields(&body)),
        (422, vec!["limit".to_owned()])
    );
}

crate::on_every_store!(teams_ranked_by_the_rules);
