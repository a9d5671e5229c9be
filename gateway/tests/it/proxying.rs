//! Routing, forwarding headers, streaming, timeouts, WebSockets, CORS, security headers, body
//! limits and the gateway's own endpoints.

use std::{sync::atomic::Ordering, time::Duration};

use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::Value;

use crate::support::{Call, Stack, problem, stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_forwarding_headers() {
    let s = stack("", "").await;
    let user = s.register("a@x.test", "Acme").await;
    problem(s.req(Method::GET, "/api/v1/nowhere").call().await, 404).await;
    problem(
        s.req(Method::GET, "/api/v1/echoes")
            .bearer_auth(&user.access)
            .call()
            .await,
        404,
    )
    .await;
    // Auth's own routes go to auth.
    let me: Value = s.get_as("/api/v1/auth/me", &user.access).value().await;
    assert_eq!(me["id"], user.user_id.as_str());

    let resp = s
        .get_as("/api/v1/echo/a/b?x=1&y=two", &user.access)
        .header("x-request-id", "req-42")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "host=evil.example;proto=https")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "must not pass")
        .call()
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    assert_eq!(resp.headers()["x-upstream"], "echo");
    for h in [
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
        "content-security-policy",
    ] {
        assert!(resp.headers().contains_key(h), "{h}");
    }
    assert!(!resp.headers().contains_key("strict-transport-security"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["version"], "HTTP/1.1",
        "upstreams speak HTTP/1.1 unless told"
    );
    assert_eq!(body["path"], "/api/v1/echo/a/b");
    assert_eq!(body["query"], "x=1&y=two");
    let h = &body["headers"];
    // An untrusted peer's X-Forwarded-* are replaced, not extended or believed.
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert!(
        h["x-forwarded-host"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(h["x-request-id"], "req-42");
    assert!(h["traceparent"].as_str().unwrap().starts_with("00-"));
    assert!(
        h.get("x-hop").is_none(),
        "hop-by-hop request headers are dropped"
    );
}

/// An upstream configured with `http2 = true` gets the same forwarding over one multiplexed
/// connection per worker: headers, streamed bodies, timeouts and refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstreams() {
    let s = stack("", "").await;
    let user = s.register("a@x.test", "Acme").await;
    let calls = (0..40).map(|i| {
        s.get_as(&format!("/h2/api/v1/echo/n/{i}?x={i}"), &user.access)
            .header("x-request-id", format!("req-{i}"))
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "must not pass")
            .call()
    });
    for (i, resp) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-request-id"], format!("req-{i}").as_str());
        assert_eq!(resp.headers()["x-upstream"], "echo");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["version"], "HTTP/2.0");
        assert_eq!(
            body["path"],
            format!("/api/v1/echo/n/{i}"),
            "mount prefix stripped"
        );
        assert_eq!(body["query"], format!("x={i}"));
        let h = &body["headers"];
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-request-id"], format!("req-{i}").as_str());
        assert!(
            h.get("x-hop").is_none(),
            "hop-by-hop request headers are dropped"
        );
        assert!(h.get("connection").is_none());
    }
    // The auth service's own routes (HTTP/2 by default) answer too.
    let me: Value = s.get_as("/api/v1/auth/me", &user.access).value().await;
    assert_eq!(me["id"], user.user_id.as_str());

    // A streamed body of unknown length arrives whole.
    const MIB: usize = 1024 * 1024;
    let chunks =
        futures::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(bytes_of(16 * 1024))));
    let resp = s
        .req(Method::POST, "/h2/api/v1/echo/x")
        .bearer_auth(&user.access)
        .body(reqwest::Body::wrap_stream(chunks))
        .call()
        .await;
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got["body_bytes"], 8 * 16 * 1024);
    // Over the limit while streaming: 413, and the connection stays usable.
    let chunks =
        futures::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(bytes_of(MIB / 2 + 1))));
    let streamed = s
        .req(Method::POST, "/h2/api/v1/echo/upload")
        .bearer_auth(&user.access)
        .body(reqwest::Body::wrap_stream(chunks))
        .call()
        .await;
    problem(streamed, 413).await;

    let started = std::time::Instant::now();
    problem(
        s.get_as("/h2/api/v1/echo/slow", &user.access).call().await,
        504,
    )
    .await;
    assert!(started.elapsed() < Duration::from_millis(2500));
    let after: Value = s
        .get_as("/h2/api/v1/echo/after", &user.access)
        .value()
        .await;
    assert_eq!(
        after["path"], "/api/v1/echo/after",
        "a timed-out stream leaves the connection usable"
    );
    let body = problem(
        s.get_as("/api/v1/dead-h2/x", &user.access).call().await,
        502,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("unavailable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_and_hsts() {
    let s = stack("trusted_proxies = [\"127.0.0.1\"]\nhsts = true", "").await;
    let user = s.register("a@x.test", "Acme").await;
    let resp = s
        .get_as("/api/v1/echo/x", &user.access)
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "api.example.test")
        .call()
        .await;
    assert!(resp.headers().contains_key("strict-transport-security"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    // A trusted proxy's scheme and host are passed on.
    assert_eq!(body["headers"]["x-forwarded-proto"], "https");
    assert_eq!(body["headers"]["x-forwarded-host"], "api.example.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_dead_upstreams() {
    let s = stack("", "").await;
    let user = s.register("a@x.test", "Acme").await;
    let started = std::time::Instant::now();
    let body = problem(
        s.get_as("/api/v1/echo/slow", &user.access).call().await,
        504,
    )
    .await;
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert!(
        !body["detail"].as_str().unwrap().contains("127.0.0.1"),
        "no upstream internals"
    );
    let body = problem(s.get_as("/api/v1/dead/x", &user.access).call().await, 502).await;
    assert!(!body["detail"].as_str().unwrap().contains("127.0.0.1"));

    let health = s.req(Method::GET, "/health").call().await;
    assert_eq!(health.status(), 200, "the dead service is not required");
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["services"]["auth"]["status"], "ok");
    assert_eq!(health["services"]["echo"]["status"], "ok");
    assert_eq!(health["services"]["dead"]["status"], "unreachable");

    let metrics = s.metrics().await;
    assert!(
        metrics
            .contains("agora_gateway_upstream_errors_total{kind=\"timeout\",service=\"echo\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("agora_gateway_upstream_errors_total{kind=\"connect\",service=\"dead\"} 1")
    );
    let proxied =
        "agora_gateway_requests_total{route=\"/api/v1/echo\",service=\"echo\",status=\"504\"} 1";
    assert!(metrics.contains(proxied), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_service_down_makes_health_503() {
    let s = stack(
        "",
        "[gateway.services.broken]\nurl = \"http://127.0.0.1:1\"\nprefixes = [\"/api/v1/broken\"]\nrequired = true\n",
    )
    .await;
    let resp = s.req(Method::GET, "/health").call().await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stream_through() {
    const MIB: usize = 1024 * 1024;
    let s = stack("upload_prefixes = [\"/api/v1/echo/upload\"]", "").await;
    let user = s.register("a@x.test", "Acme").await;
    // The client sends 1 MiB, then waits until the upstream has received some of it before
    // sending the other 49: a gateway that buffered bodies whole would deadlock here.
    let seen = s.seen.clone();
    let chunk = bytes_of(MIB);
    let body = futures::stream::unfold(0usize, move |i| {
        let seen = seen.clone();
        let chunk = chunk.clone();
        async move {
            if i == 50 {
                return None;
            }
            if i == 1 {
                let waited = tokio::time::timeout(Duration::from_secs(10), async {
                    while seen.upload_bytes.load(Ordering::SeqCst) == 0 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
                .await;
                if waited.is_err() {
                    return Some((
                        Err(std::io::Error::other(
                            "upstream saw nothing: body was buffered",
                        )),
                        i + 1,
                    ));
                }
            }
            Some((Ok::<_, std::io::Error>(chunk), i + 1))
        }
    });
    let resp = s
        .req(Method::POST, "/api/v1/echo/upload")
        .bearer_auth(&user.access)
        .body(reqwest::Body::wrap_stream(body))
        .call()
        .await;
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got["bytes"], 50 * MIB);

    // Over the (default 1 MiB) limit elsewhere: 413, declared or streamed.
    let big = s
        .req(Method::POST, "/api/v1/echo/x")
        .bearer_auth(&user.access)
        .body(vec![b'x'; 2 * MIB])
        .call()
        .await;
    problem(big, 413).await;
    let chunks =
        futures::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(bytes_of(MIB / 2 + 1))));
    let streamed = s
        .req(Method::POST, "/api/v1/echo/x")
        .bearer_auth(&user.access)
        .body(reqwest::Body::wrap_stream(chunks))
        .call()
        .await;
    problem(streamed, 413).await;

    let huge = "x".repeat(20 * 1024);
    let resp = s
        .get_as("/api/v1/echo/x", &user.access)
        .header("x-huge", huge)
        .call()
        .await;
    problem(resp, 431).await;
}

fn bytes_of(n: usize) -> actix_web::web::Bytes {
    actix_web::web::Bytes::from(vec![b'a'; n])
}

#[actix_web::test]
async fn websocket_echo_through_the_gateway() {
    let s = stack("", "").await;
    let user = s.register("a@x.test", "Acme").await;
    let url = s.url("/api/v1/echo/ws").replacen("http://", "ws://", 1);
    let (_, mut ws) = awc::Client::new()
        .ws(url.clone())
        .bearer_auth(&user.access)
        .connect()
        .await
        .expect("websocket through the gateway");
    ws.send(awc::ws::Message::Text("hello".into()))
        .await
        .unwrap();
    match ws.next().await {
        Some(Ok(awc::ws::Frame::Text(t))) => assert_eq!(&t[..], b"echo: hello"),
        other => panic!("{other:?}"),
    }
    ws.send(awc::ws::Message::Binary(
        actix_web::web::Bytes::from_static(b"\x01\x02"),
    ))
    .await
    .unwrap();
    match ws.next().await {
        Some(Ok(awc::ws::Frame::Binary(b))) => assert_eq!(&b[..], b"\x01\x02"),
        other => panic!("{other:?}"),
    }
    ws.send(awc::ws::Message::Close(None)).await.unwrap();
    // Without a credential the upgrade is refused at the edge.
    let refused = awc::Client::new().ws(url).connect().await;
    assert!(refused.is_err());
}

/// The next frame that is not a pong, within 10 s.
async fn next_frame<S, E>(ws: &mut S) -> awc::ws::Frame
where
    S: futures::Stream<Item = Result<awc::ws::Frame, E>> + Unpin,
    E: std::fmt::Debug,
{
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(awc::ws::Frame::Pong(_)))) => continue,
            Ok(Some(Ok(frame))) => return frame,
            other => panic!("no frame: {other:?}"),
        }
    }
}

fn closed_with(frame: awc::ws::Frame) -> String {
    match frame {
        awc::ws::Frame::Close(Some(reason)) => {
            assert_eq!(reason.code, awc::ws::CloseCode::Away);
            reason.description.unwrap_or_default()
        }
        other => panic!("expected a close, got {other:?}"),
    }
}

#[actix_web::test]
async fn websockets_are_bounded_per_user() {
    let s = stack("websocket = { max_per_caller = 2 }", "").await;
    let ana = s.register("a@x.test", "Acme").await;
    let bo = s.register("b@y.test", "Beta").await;
    // A second credential of the same user (an API key) counts against the same user.
    let key: serde_json::Value = s
        .req(Method::POST, "/api/v1/api-keys")
        .bearer_auth(&ana.access)
        .json(&serde_json::json!({"name": "ws", "role": "TENANT_USER"}))
        .call()
        .await
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    let url = s.url("/api/v1/echo/ws").replacen("http://", "ws://", 1);
    let open = |token: &str| {
        awc::Client::new()
            .ws(url.clone())
            .bearer_auth(token)
            .connect()
    };
    let (_, first) = open(&ana.access).await.unwrap();
    let (_, _second) = open(&key).await.unwrap();
    for third in [&ana.access, &key] {
        match open(third).await {
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
                assert_eq!(status, 429)
            }
            other => panic!("third connection: {:?}", other.map(|_| ())),
        }
    }
    let (_, _other) = open(&bo.access).await.expect("another user connects");
    // Closing one frees its place.
    drop(first);
    agora_testkit::eventually(
        std::time::Duration::from_secs(5),
        "a place is free again",
        || async { open(&ana.access).await.map(drop).map_err(|e| e.to_string()) },
    )
    .await;
}

#[actix_web::test]
async fn anonymous_websockets_are_bounded_per_address() {
    // A public WebSocket (realtime's authenticate in their first frame): the gateway sees no
    // caller, and counts them by client address, with a bound of their own.
    let s = stack(
        "websocket = { max_per_caller = 1, max_per_address = 3 }\npublic_paths = [\"/api/v1/echo/ws\"]",
        "",
    )
    .await;
    let url = s.url("/api/v1/echo/ws").replacen("http://", "ws://", 1);
    let open = || awc::Client::new().ws(url.clone()).connect();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(open().await.expect("within the address's bound").1);
    }
    match open().await {
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => assert_eq!(status, 429),
        other => panic!("fourth connection: {:?}", other.map(|_| ())),
    }
}

#[actix_web::test]
async fn websockets_end_when_idle_and_at_their_lifetime() {
    let s = stack(
        "websocket = { idle_timeout_secs = 1, max_lifetime_secs = 3 }",
        "",
    )
    .await;
    let ana = s.register("a@x.test", "Acme").await;
    let url = s.url("/api/v1/echo/ws").replacen("http://", "ws://", 1);
    let open = || {
        awc::Client::new()
            .ws(url.clone())
            .bearer_auth(&ana.access)
            .connect()
    };
    // A silent connection is closed after the idle timeout.
    let (_, mut silent) = open().await.unwrap();
    assert_eq!(closed_with(next_frame(&mut silent).await), "idle timeout");

    // One that keeps talking is still closed at the end of its lifetime.
    let (_, mut chatty) = open().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let reason = loop {
        assert!(std::time::Instant::now() < deadline, "never closed");
        // After the close a send may fail; the close frame is read next either way.
        let _ = chatty
            .send(awc::ws::Message::Text("still here".into()))
            .await;
        match next_frame(&mut chatty).await {
            awc::ws::Frame::Text(t) => assert_eq!(&t[..], b"echo: still here"),
            close => break closed_with(close),
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!(reason, "connection lifetime reached; reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_front_ends_are_allowed_in_embedded_mode_only() {
    let preflight = |s: &Stack, origin: &'static str| {
        s.req(Method::OPTIONS, "/api/v1/echo/x")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .call()
    };
    // The test platform runs in embedded mode: a SPA on a dev server works out of the box.
    let embedded = stack("", "").await;
    let ok = preflight(&embedded, "http://localhost:5173").await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let ok = preflight(&embedded, "http://127.0.0.1:3000").await;
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://127.0.0.1:3000"
    );
    for foreign in ["http://localhost.evil.test:5173", "https://evil.test"] {
        let refused = preflight(&embedded, foreign).await;
        assert!(refused.status().is_client_error(), "{foreign}");
        assert!(
            !refused
                .headers()
                .contains_key("access-control-allow-origin")
        );
    }
    // What distributed mode does unless configured otherwise: closed.
    let closed = stack("", "[gateway.cors]\nlocal_origins = false\n").await;
    let refused = preflight(&closed, "http://localhost:5173").await;
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_at_the_edge() {
    let s = stack(
        "",
        "[gateway.cors]\norigins = [\"https://app.example.test\"]\ncredentials = true\n",
    )
    .await;
    let preflight = s
        .req(Method::OPTIONS, "/api/v1/echo/x")
        .header("origin", "https://app.example.test")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .call()
        .await;
    assert_eq!(preflight.status(), 200);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.test"
    );
    assert_eq!(
        preflight.headers()["access-control-allow-credentials"],
        "true"
    );
    assert_eq!(preflight.headers()["access-control-max-age"], "600");
    assert_eq!(s.hits(), 0, "preflights are answered at the edge");
    let foreign = s
        .req(Method::OPTIONS, "/api/v1/echo/x")
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .call()
        .await;
    assert!(foreign.status().is_client_error());
    assert!(
        !foreign
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let user = s.register("a@x.test", "Acme").await;
    let actual = s
        .get_as("/api/v1/echo/x", &user.access)
        .header("origin", "https://app.example.test")
        .call()
        .await;
    assert_eq!(
        actual.headers()["access-control-allow-origin"],
        "https://app.example.test"
    );
    let exposed = actual.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("ratelimit-remaining") && exposed.contains("x-request-id"),
        "{exposed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_openapi_and_docs() {
    let s = stack("", "").await;
    let doc: Value = s.req(Method::GET, "/openapi.json").value().await;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/v1/auth/login"), "auth's paths");
    assert!(
        paths.contains_key("/api/v1/echo/headers"),
        "the echo service's paths"
    );
    assert!(doc["components"]["schemas"]["TokenResponse"].is_object());
    assert!(doc["components"]["schemas"]["Echo"].is_object());
    assert!(
        doc["info"]["description"]
            .as_str()
            .unwrap()
            .contains("dead"),
        "unavailable services are named"
    );
    // The API console: Swagger UI served from the gateway itself (no CDN), over the merged
    // document, with "try it out" and the bearer token kept.
    let docs = s.req(Method::GET, "/docs/").call().await;
    assert_eq!(docs.status(), 200);
    assert!(
        docs.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = docs.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(
        !csp.contains("http"),
        "the console loads nothing from elsewhere: {csp}"
    );
    let page = docs.text().await.unwrap();
    assert!(page.contains("swagger-ui-bundle.js"), "{page}");
    assert!(!page.contains("https://"), "no asset from a CDN");
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css"] {
        let resp = s.req(Method::GET, &format!("/docs/{asset}")).call().await;
        assert_eq!(resp.status(), 200, "{asset}");
    }
    let init = s
        .req(Method::GET, "/docs/swagger-initializer.js")
        .call()
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("\"/openapi.json\""), "{init}");
    assert!(init.contains("\"tryItOutEnabled\": true"), "{init}");
    assert!(init.contains("\"persistAuthorization\": true"), "{init}");
    let bare = s.req(Method::GET, "/docs").call().await;
    assert_eq!(bare.status(), 200, "/docs leads to the console");
}

/// `/metrics` and the per-service detail of `/health` were public and unlimited on the public
/// listener. With `ops_token` set, metrics need it and `/health` tells anyone else only the
/// overall status; a flood of health requests costs the upstreams one round a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_endpoints_need_the_ops_token() {
    let s = stack("ops_token = \"0ps-t0ken-for-monitoring\"", "").await;
    problem(s.req(Method::GET, "/metrics").call().await, 401).await;
    let wrong = s
        .req(Method::GET, "/metrics")
        .bearer_auth("0ps-t0ken-for-monitorinG");
    problem(wrong.call().await, 401).await;
    let ops = |path: &str| {
        s.req(Method::GET, path)
            .bearer_auth("0ps-t0ken-for-monitoring")
    };
    let metrics = ops("/metrics").call().await;
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("agora_gateway_requests_total")
    );

    let anyone: Value = s.req(Method::GET, "/health").value().await;
    assert_eq!(
        anyone,
        serde_json::json!({"status": "ok"}),
        "no upstream names or timings"
    );
    let detail: Value = ops("/health").value().await;
    assert_eq!(detail["services"]["echo"]["status"], "ok");

    let checks = || {
        s.seen
            .health_checks
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let before = checks();
    let flood = (0..50).map(|_| s.req(Method::GET, "/health").call());
    for resp in futures::future::join_all(flood).await {
        assert_eq!(resp.status(), 200);
    }
    // The test upstream counts the checks that reached it: at most two more rounds (a second
    // may turn over) for 50 requests, where there were 50 rounds before.
    assert!(
        checks() - before <= 2,
        "{} upstream checks",
        checks() - before
    );
}
