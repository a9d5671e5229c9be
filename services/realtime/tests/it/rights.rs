//! Who may do what: ticket channels checked with the tickets service, other tenants refused,
//! connection tokens, expired and revoked credentials, the admin HTTP and gRPC APIs, and
//! ticket events reaching dashboards.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tonic::Request;

use agora_proto::realtime::v1::{self as pb, realtime_service_client::RealtimeServiceClient};
use agora_shared::testing::Store;

use crate::support::{Session, Ws, api_key, platform, short_token};

/// An array nested `n` levels deep.
fn deep(n: usize) -> Value {
    (0..n).fold(json!(1), |inner, _| json!([inner]))
}

fn ticket_body() -> Value {
    json!({
        "title": "No signal", "description": "The router blinks", "category": "REPAIR",
        "priority": "HIGH", "location": "12 Main St",
        "customer_name": "Ada", "customer_contact": "+1 555 0100",
    })
}

async fn tickets_reach_dashboards_and_their_channels(store: Store) {
    let p = platform(store, "").await;
    let admin = p.tenant("Acme").await;
    let member = p.member(&admin, "tech@acme.test", &[]).await;
    let globex = p.tenant("Globex").await;
    let base = p.url("");
    let mut dash = Ws::connect(&base, &member.access).await;
    dash.subscribe("dashboard").await;
    let mut theirs = Ws::connect(&base, &globex.access).await;
    theirs.subscribe("dashboard").await;

    let started = Instant::now();
    let ticket = p.ticket(&admin, ticket_body()).await;
    let pushed = dash.push().await;
    println!(
        "a ticket created through the gateway reached a dashboard subscriber in {:?}",
        started.elapsed()
    );
    let id = ticket["id"].as_str().unwrap();
    assert_eq!(pushed["pub"]["event"], "ticket.created", "{pushed}");
    assert_eq!(pushed["pub"]["data"]["ticket_id"], id);
    assert_eq!(pushed["pub"]["data"]["title"], "No signal");
    assert!(pushed["pub"]["data"]["event_id"].is_string());
    // Live views get no customer details.
    let text = pushed.to_string();
    assert!(
        !text.contains("555 0100") && !text.contains("Ada"),
        "{text}"
    );
    theirs.quiet(300).await;

    // The ticket's own channel: its members may, another tenant may not.
    let channel = format!("ticket:{id}");
    let mut watcher = Ws::connect(&base, &member.access).await;
    watcher.subscribe(&channel).await;
    let mut spy = Ws::connect(&base, &globex.access).await;
    assert_eq!(
        spy.refused(json!({"subscribe": {"channel": channel}}))
            .await,
        "not_found"
    );
    assert_eq!(
        spy.refused(json!({"presence": {"channel": channel}})).await,
        "not_found"
    );
    assert_eq!(
        spy.refused(json!({"history": {"channel": channel}})).await,
        "not_found"
    );
    assert_eq!(
        watcher
            .refused(json!({"subscribe": {"channel": "ticket:no-such-ticket"}}))
            .await,
        "not_found"
    );
    let resp = p
        .authed(Method::PATCH, &format!("/api/v1/tickets/{id}"), &admin)
        .json(&json!({"status": "IN_PROGRESS"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let pushed = watcher.push().await;
    assert_eq!(pushed["pub"]["channel"], channel.as_str());
    assert_eq!(pushed["pub"]["event"], "ticket.status_changed", "{pushed}");
    assert_eq!(pushed["pub"]["data"]["to_status"], "IN_PROGRESS");
    assert_eq!(dash.push().await["pub"]["event"], "ticket.status_changed");

    // A connection token subscribes to tickets as realtime asks for it.
    let token = p
        .authed(Method::POST, "/api/v1/realtime/tokens", &member)
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 201);
    let token: Value = token.json().await.unwrap();
    let mut by_token = Ws::connect(&base, token["token"].as_str().unwrap()).await;
    by_token.subscribe(&channel).await;
}

async fn connection_tokens_are_single_use_and_short_lived(store: Store) {
    let p = platform(store, "connection_token_ttl_secs = 1").await;
    let admin = p.tenant("Acme").await;
    let base = p.url("");
    let issue = || async {
        let resp = p
            .authed(Method::POST, "/api/v1/realtime/tokens", &admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["expires_in"], 1);
        body["token"].as_str().unwrap().to_owned()
    };
    let token = issue().await;
    assert!(token.starts_with("rtc_"));
    let mut first = Ws::connect(&base, &token).await;
    first.subscribe("tenant").await;
    // Twice: the second is refused and closed.
    let mut again = Ws::open(&base).await;
    assert_eq!(
        again.refused(json!({"connect": {"token": token}})).await,
        "unauthorized"
    );
    assert_eq!(again.closed().await.0, 4001);
    // Used at once from 10 sockets: exactly one gets in.
    let token = issue().await;
    let mut sockets = Vec::new();
    for _ in 0..10 {
        sockets.push(Ws::open(&base).await);
    }
    let attempts = sockets.iter_mut().map(|ws| {
        let token = token.clone();
        async move { ws.call(json!({"connect": {"token": token}})).await }
    });
    let replies = futures::future::join_all(attempts).await;
    let admitted = replies
        .iter()
        .filter(|r| r["connected"].is_object())
        .count();
    assert_eq!(admitted, 1, "{replies:?}");
    // Expired before use.
    let token = issue().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut late = Ws::open(&base).await;
    assert_eq!(
        late.refused(json!({"connect": {"token": token}})).await,
        "unauthorized"
    );
    // Only signed-in users get one: an API key connects with itself.
    let key = api_key(&p, &admin).await;
    let resp = p
        .authed(Method::POST, "/api/v1/realtime/tokens", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let mut bot = Ws::connect(&base, &key).await;
    bot.subscribe("tenant").await;
    // Garbage, and no frame at all.
    let mut bad = Ws::open(&base).await;
    assert_eq!(
        bad.refused(json!({"connect": {"token": "not-a-token"}}))
            .await,
        "unauthorized"
    );
    let mut first_not_connect = Ws::open(&base).await;
    first_not_connect
        .send_text(json!({"id": 1, "subscribe": {"channel": "tenant"}}).to_string())
        .await;
    assert_eq!(
        first_not_connect.next_json().await["error"]["code"],
        "bad_request"
    );
    assert_eq!(first_not_connect.closed().await.0, 4000);
}

async fn expired_and_revoked_credentials_end_connections(store: Store) {
    let p = platform(store, "recheck_secs = 1").await;
    let admin = p.tenant("Acme").await;
    let member = p.member(&admin, "m@acme.test", &[]).await;
    let base = p.url("");

    // A token about to expire: asked to refresh at once, closed when it expires.
    let short = short_token(&p, &member, 3);
    let mut ws = Ws::open(&base).await;
    let connected = ws.call(json!({"connect": {"token": short}})).await;
    assert!(connected["connected"]["expires_in"].as_i64().unwrap() <= 3);
    ws.subscribe("tenant").await;
    let notice = ws.push().await;
    assert!(
        notice["refresh"]["expires_in"].as_i64().is_some(),
        "{notice}"
    );
    assert_eq!(ws.closed().await.0, 4010);

    // Refreshed in time, it stays; another user's token is no refresh.
    let short = short_token(&p, &member, 3);
    let mut ws = Ws::connect(&base, &short).await;
    assert_eq!(
        ws.refused(json!({"refresh": {"token": admin.access}}))
            .await,
        "forbidden"
    );
    let key = api_key(&p, &admin).await;
    assert_eq!(
        ws.refused(json!({"refresh": {"token": key}})).await,
        "bad_request",
        "an API key would make the connection outlive every token"
    );
    let r = ws.call(json!({"refresh": {"token": member.access}})).await;
    assert!(r["refreshed"]["expires_in"].as_i64().unwrap() > 60, "{r}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pong = ws.call(json!({"ping": {}})).await;
    assert_eq!(pong["pong"], json!({}));

    // A session logged out: its connections close, whether made with the access token or a
    // connection token traded for it.
    let other = p.member(&admin, "o@acme.test", &[]).await;
    let token: Value = p
        .authed(Method::POST, "/api/v1/realtime/tokens", &other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut direct = Ws::connect(&base, &other.access).await;
    let mut traded = Ws::connect(&base, token["token"].as_str().unwrap()).await;
    let resp = p
        .authed(Method::POST, "/api/v1/auth/logout", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(direct.closed().await.0, 4003);
    assert_eq!(traded.closed().await.0, 4003);
    let mut after = Ws::open(&base).await;
    assert_eq!(
        after
            .refused(json!({"connect": {"token": other.access}}))
            .await,
        "unauthorized"
    );
}

async fn admin_publishing_over_http_and_grpc(store: Store) {
    let p = platform(store, "").await;
    let admin = p.tenant("Acme").await;
    let member = p.member(&admin, "m@acme.test", &[]).await;
    let publisher = p
        .member(&admin, "pub@acme.test", &["realtime:manage"])
        .await;
    let globex = p.tenant("Globex").await;
    let root = p.platform_admin().await;
    let base = p.url("");
    let mut acme = Ws::connect(&base, &member.access).await;
    acme.subscribe("tenant").await;
    let mut theirs = Ws::connect(&base, &globex.access).await;
    theirs.subscribe("tenant").await;

    let publish = |who: &Session, body: Value| {
        p.authed(Method::POST, "/api/v1/realtime/publish", who)
            .json(&body)
            .send()
    };
    let body = json!({"channel": "tenant", "event": "dashboard_metrics", "data": {"open": 3}});
    assert_eq!(publish(&member, body.clone()).await.unwrap().status(), 403);
    let resp = publish(&publisher, body.clone()).await.unwrap();
    assert_eq!(resp.status(), 201);
    let pushed = acme.push().await;
    assert_eq!(pushed["pub"]["event"], "dashboard_metrics");
    assert_eq!(pushed["pub"]["data"], json!({"open": 3}));
    theirs.quiet(300).await;
    // Another tenant's channel: a platform admin only.
    let mut aimed = body.clone();
    aimed["tenant_id"] = json!(globex.tenant_id);
    assert_eq!(publish(&admin, aimed.clone()).await.unwrap().status(), 403);
    assert_eq!(publish(&root, aimed).await.unwrap().status(), 201);
    assert_eq!(theirs.push().await["pub"]["event"], "dashboard_metrics");
    acme.quiet(300).await;
    // Bad input names the field.
    for (bad, field) in [
        (
            json!({"channel": "Tenant", "event": "x", "data": {}}),
            "channel",
        ),
        (
            json!({"channel": "tenant", "event": "Has Space", "data": {}}),
            "event",
        ),
        (
            json!({"channel": "tenant", "event": "x", "data": "y".repeat(70_000)}),
            "data",
        ),
        (
            json!({"channel": "tenant", "event": "x", "data": deep(40)}),
            "data",
        ),
    ] {
        let resp = publish(&admin, bad).await.unwrap();
        assert_eq!(resp.status(), 422);
        let problem: Value = resp.json().await.unwrap();
        assert!(problem.to_string().contains(field), "{problem}");
    }
    let presence: Value = p
        .authed(
            Method::GET,
            "/api/v1/realtime/channels/tenant/presence",
            &admin,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(presence["clients"][0]["user_id"], member.user_id.as_str());

    // gRPC, as other services publish: the same rights.
    let mut client = RealtimeServiceClient::connect(p.realtime_grpc.clone())
        .await
        .unwrap();
    let as_who = |who: &Session, message: pb::PublishRequest| {
        let mut r = Request::new(message);
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", who.access).parse().unwrap(),
        );
        r
    };
    let message = pb::PublishRequest {
        tenant_id: String::new(),
        channel: "conversation:c1".into(),
        event: "agent_response".into(),
        data_json: r#"{"text":"Hello from the agent"}"#.into(),
    };
    let mut listener = Ws::connect(&base, &member.access).await;
    listener.subscribe("conversation:c1").await;
    let denied = client
        .publish(as_who(&member, message.clone()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let done = client
        .publish(as_who(&admin, message.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.offset, 1);
    let pushed = listener.push().await;
    assert_eq!(pushed["pub"]["data"]["text"], "Hello from the agent");
    let mut bad = message.clone();
    bad.data_json = "{not json".into();
    let err = client.publish(as_who(&admin, bad)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let mut r = Request::new(pb::HistoryRequest {
        tenant_id: String::new(),
        channel: "conversation:c1".into(),
        since_offset: 0,
        since_epoch: String::new(),
        limit: 10,
    });
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", admin.access).parse().unwrap(),
    );
    let history = client.history(r).await.unwrap().into_inner();
    assert_eq!(history.publications.len(), 1);
    assert_eq!(history.epoch, done.epoch);
    let mut r = Request::new(pb::PresenceRequest {
        tenant_id: String::new(),
        channel: "conversation:c1".into(),
    });
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", admin.access).parse().unwrap(),
    );
    let presence = client.presence(r).await.unwrap().into_inner();
    assert_eq!(presence.clients.len(), 1);
    assert_eq!(presence.clients[0].user_id, member.user_id);
}

async fn code_runs_reach_their_channels(store: Store) {
    use agora_shared::bus::{Event, EventBus};
    use prost::Message as _;

    let p = platform(store, "").await;
    let admin = p.tenant("Acme").await;
    let student = p.member(&admin, "s@acme.test", &[]).await;
    let globex = p.tenant("Globex").await;
    let base = p.url("");
    let token = uuid::Uuid::now_v7().to_string();
    let mut own = Ws::connect(&base, &student.access).await;
    own.subscribe(&format!("submission:{token}")).await;
    own.subscribe(&format!("user:{}", student.user_id)).await;
    let mut teacher = Ws::connect(&base, &admin.access).await;
    teacher.subscribe(&format!("user:{}", admin.user_id)).await;
    let mut spy = Ws::connect(&base, &globex.access).await;
    spy.subscribe(&format!("submission:{token}")).await;

    // code-exec's events, as it writes them, on the platform's bus.
    let finished = agora_proto::events::v1::SubmissionFinished {
        token: token.clone(),
        tenant_id: admin.tenant_id.clone(),
        user_id: student.user_id.clone(),
        language_id: 71,
        language: "Python (3.11.2)".into(),
        status_id: 3,
        status: "Accepted".into(),
        time: 0.02,
        wall_time: 0.05,
        memory_kb: 3800,
        created_at: "2026-12-05T10:00:00Z".into(),
        finished_at: "2026-12-05T10:00:01Z".into(),
    };
    let topic = agora_shared::bus::topic_for("code-exec");
    let publish = |name: &str, key: &str, data: Vec<u8>| {
        Event::new(
            "agora/code-exec",
            &format!("agora.code_exec.{name}"),
            key,
            Some(admin.tenant_id.clone()),
            data,
        )
    };
    let event = publish("submission.finished", &token, finished.encode_to_vec());
    p.bus.publish(&topic, &event).await.unwrap();
    let mut channels = Vec::new();
    for _ in 0..2 {
        let pushed = own.next_pub().await;
        assert_eq!(pushed["event"], "submission.finished", "{pushed}");
        assert_eq!(pushed["data"]["token"], token.as_str());
        assert_eq!(
            pushed["data"]["status"],
            json!({"id": 3, "description": "Accepted"})
        );
        assert_eq!(pushed["data"]["event_id"], event.id.as_str());
        channels.push(pushed["channel"].as_str().unwrap().to_owned());
    }
    channels.sort();
    assert_eq!(
        channels,
        vec![
            format!("submission:{token}"),
            format!("user:{}", student.user_id)
        ]
    );
    let attempt = agora_proto::events::v1::AttemptFinished {
        attempt_id: "a1".into(),
        tenant_id: admin.tenant_id.clone(),
        user_id: student.user_id.clone(),
        exercise_id: "sum-line".into(),
        exercise_version: 1,
        language_id: 71,
        language: "Python (3.11.2)".into(),
        score: 2,
        max_score: 3,
        passed: false,
        cases: 2,
        accepted_cases: 1,
        case_status_ids: vec![3, 4],
        created_at: "2026-12-05T10:00:00Z".into(),
        finished_at: "2026-12-05T10:00:02Z".into(),
    };
    let event = publish("attempt.finished", "a1", attempt.encode_to_vec());
    p.bus.publish(&topic, &event).await.unwrap();
    let pushed = own.next_pub().await;
    assert_eq!(pushed["event"], "attempt.finished");
    assert_eq!(pushed["channel"], format!("user:{}", student.user_id));
    assert_eq!(
        (
            pushed["data"]["score"].clone(),
            pushed["data"]["max_score"].clone()
        ),
        (json!(2), json!(3))
    );
    // Nobody else's channels, and no other tenant's.
    teacher.quiet(300).await;
    spy.quiet(300).await;
}

crate::on_every_store!(
    code_runs_reach_their_channels,
    tickets_reach_dashboards_and_their_channels,
    connection_tokens_are_single_use_and_short_lived,
    expired_and_revoked_credentials_end_connections,
    admin_publishing_over_http_and_grpc,
);
