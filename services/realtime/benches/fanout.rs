//! Prints what one realtime process holds and how fast it delivers, in embedded mode:
//! - connections held (native protocol, each connected with an access token and subscribed to
//!   a channel) and the server's memory per idle connection (its resident set's growth over
//!   `AGORA_BENCH_CONNECTIONS`, 10,000);
//! - one publication to 1,000 subscribers: delivery latency p50/p99 (publish to each client's
//!   receipt, over 20 publications);
//! - the same across two replicas through Redis (500 subscribers on each, publications made on
//!   one), when AGORA_TEST_REDIS_URL names a Redis.
//!
//! The clients run in a second process (this binary again), so the server's memory is its
//! own. `cargo bench -p agora-realtime --bench fanout`.

use std::{
    cell::RefCell,
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use awc::ws::{Frame, Message};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

use agora_realtime::{RealtimeState, channel::Key};
use agora_shared::testing::TestDb;

/// One user holds every connection here.
const SETTINGS: &str = "max_connections_per_user = 20000";

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    match std::env::var("AGORA_BENCH_ROLE").as_deref() {
        Ok("clients") => actix_web::rt::System::new().block_on(clients()),
        _ => actix_web::rt::System::new().block_on(server()),
    }
}

/// One connected, subscribed native client.
async fn open(
    base: String,
    token: String,
    channel: &'static str,
) -> (
    impl futures::Sink<Message, Error = awc::error::WsProtocolError>,
    impl futures::Stream<Item = Result<Frame, awc::error::WsProtocolError>>,
) {
    let url = format!("{base}/api/v1/realtime/ws").replacen("http://", "ws://", 1);
    let (_, framed) = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
        .ws(url)
        .connect()
        .await
        .expect("websocket");
    let (mut tx, mut rx) = framed.split();
    for command in [
        json!({"id": 1, "connect": {"token": &token}}),
        json!({"id": 2, "subscribe": {"channel": channel}}),
    ] {
        tx.send(Message::Text(command.to_string().into()))
            .await
            .unwrap();
        loop {
            match rx.next().await {
                Some(Ok(Frame::Text(t))) => {
                    let v: Value = serde_json::from_slice(&t).unwrap();
                    assert!(v.get("error").is_none(), "{v}");
                    if v["id"] == command["id"] {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("{other:?}"),
            }
        }
    }
    (tx, rx)
}

/// The client process: opens the connections it is told to, says READY, then either holds
/// them until its input closes (`idle`) or reports each publication's latency (`fanout`).
async fn clients() {
    let var = |k: &str| std::env::var(k).unwrap();
    let bases: Vec<String> = var("AGORA_BENCH_URLS")
        .split(',')
        .map(str::to_owned)
        .collect();
    let token = var("AGORA_BENCH_TOKEN");
    let n: usize = var("AGORA_BENCH_N").parse().unwrap();
    let mode = var("AGORA_BENCH_MODE");
    let channel = if mode == "idle" {
        "tenant"
    } else {
        "dashboard"
    };
    let latencies = Rc::new(RefCell::new(Vec::<f64>::new()));
    let mut held = Vec::with_capacity(n);
    let opened = futures::stream::iter(0..n)
        .map(|i| {
            let base = bases[i % bases.len()].clone();
            let token = token.clone();
            async move { open(base, token, channel).await }
        })
        .buffer_unordered(64);
    futures::pin_mut!(opened);
    while let Some((tx, mut rx)) = opened.next().await {
        if mode == "idle" {
            held.push((
                Box::pin(tx) as std::pin::Pin<Box<dyn futures::Sink<Message, Error = _>>>,
                Box::pin(rx) as std::pin::Pin<Box<dyn futures::Stream<Item = _>>>,
            ));
        } else {
            let latencies = latencies.clone();
            let mut tx = Box::pin(tx);
            actix_web::rt::spawn(async move {
                while let Some(Ok(frame)) = rx.next().await {
                    match frame {
                        Frame::Text(t) => {
                            let v: Value = serde_json::from_slice(&t).unwrap();
                            if let Some(sent) = v["pub"]["data"]["t"].as_u64() {
                                let ms = (now_ns().saturating_sub(sent)) as f64 / 1e6;
                                latencies.borrow_mut().push(ms);
                            }
                        }
                        Frame::Ping(b) => {
                            let _ = tx.send(Message::Pong(b)).await;
                        }
                        _ => {}
                    }
                }
            });
        }
    }
    println!("READY");
    std::io::stdout().flush().unwrap();
    if mode == "idle" {
        // Held until the server closes our input.
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
        drop(held);
        return;
    }
    let expected: usize = var("AGORA_BENCH_EXPECT").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while latencies.borrow().len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut l = latencies.borrow().clone();
    l.sort_by(|a, b| a.total_cmp(b));
    println!(
        "DONE {} {:.2} {:.2}",
        l.len(),
        percentile(&l, 0.5),
        percentile(&l, 0.99)
    );
}

/// Runs the client process; returns it once it said READY.
fn spawn_clients(
    bases: &[String],
    token: &str,
    n: usize,
    mode: &str,
    expect: usize,
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("AGORA_BENCH_ROLE", "clients")
        .env("AGORA_BENCH_URLS", bases.join(","))
        .env("AGORA_BENCH_TOKEN", token)
        .env("AGORA_BENCH_N", n.to_string())
        .env("AGORA_BENCH_MODE", mode)
        .env("AGORA_BENCH_EXPECT", expect.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client process");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "READY", "the client process did not get ready");
    (child, out)
}

/// Publishes `count` stamped publications to `dashboard` through `state`, 50 ms apart;
/// the clients report delivery latency.
async fn publish_stamped(state: &RealtimeState, tenant: &str, count: usize) {
    let key = Key::new(tenant, "dashboard");
    for _ in 0..count {
        state
            .hub
            .engine
            .publish(&key, "tick", json!({"t": now_ns()}), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn finish(mut child: std::process::Child, mut out: BufReader<std::process::ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let _ = child.wait();
    line
}

async fn server() {
    let connections: usize = std::env::var("AGORA_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut kit = agora_testkit::Platform::builder(TestDb::sqlite)
        .default_workers()
        .service("realtime", SETTINGS)
        .start()
        .await;
    let realtime = agora_realtime::start(&kit.context(), kit.shutdown.clone(), None)
        .await
        .unwrap();
    let state = realtime.state.clone();
    let base = format!("http://{}", realtime.service.http_addr);
    kit.serve(realtime.service);
    let admin = kit.tenant("Bench").await;
    println!(
        "realtime fan-out benchmark (one process, {} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // Idle connections held, and the server's memory per connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib();
    let started = Instant::now();
    let (mut child, _out) = spawn_clients(
        std::slice::from_ref(&base),
        &admin.access,
        connections,
        "idle",
        0,
    );
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = state.connections.load(std::sync::atomic::Ordering::Relaxed);
    let after = rss_kib();
    println!(
        "connections held: {held} (goal >= 10,000), opened in {took:.1?} ({:.0}/s, each authenticated and subscribed)",
        held as f64 / took.as_secs_f64()
    );
    println!(
        "server memory per idle connection: {:.1} KiB (resident set {} -> {} MiB)",
        (after.saturating_sub(before)) as f64 / held.max(1) as f64,
        before / 1024,
        after / 1024
    );
    drop(child.stdin.take());
    let _ = child.wait();

    // 1 publication -> 1,000 subscribers, in one process.
    let subscribers = 1000;
    let rounds = 20;
    let (child, out) = spawn_clients(
        std::slice::from_ref(&base),
        &admin.access,
        subscribers,
        "fanout",
        subscribers * rounds,
    );
    publish_stamped(&state, &admin.tenant_id, rounds).await;
    let line = finish(child, out);
    report(
        "1 publish -> 1,000 subscribers (one process)",
        &line,
        subscribers * rounds,
    );

    // The same across two replicas through Redis.
    let Some(redis) = agora_shared::testing::redis() else {
        println!("two replicas through Redis: skipped (AGORA_TEST_REDIS_URL is not set)");
        return;
    };
    let mut pair = agora_testkit::Platform::builder(TestDb::sqlite)
        .default_workers()
        .service("realtime", &format!("{SETTINGS}\nengine = \"redis\""))
        .start()
        .await;
    let mut ctx = pair.context();
    ctx.redis = Some(redis);
    let mut bases = Vec::new();
    let mut states: Vec<Arc<RealtimeState>> = Vec::new();
    for _ in 0..2 {
        let replica = agora_realtime::start(&ctx, pair.shutdown.clone(), None)
            .await
            .unwrap();
        bases.push(format!("http://{}", replica.service.http_addr));
        states.push(replica.state.clone());
        pair.serve(replica.service);
    }
    let admin = pair.tenant("Pair").await;
    let (child, out) = spawn_clients(
        &bases,
        &admin.access,
        subscribers,
        "fanout",
        subscribers * rounds,
    );
    publish_stamped(&states[0], &admin.tenant_id, rounds).await;
    let line = finish(child, out);
    report(
        "1 publish -> 1,000 subscribers on two replicas through Redis (500 each)",
        &line,
        subscribers * rounds,
    );
    drop(kit);
}

fn report(what: &str, line: &str, expected: usize) {
    let parts: Vec<&str> = line.split_whitespace().collect();
    match parts.as_slice() {
        ["DONE", got, p50, p99] => {
            println!("{what}: delivered {got}/{expected}, p50 {p50} ms, p99 {p99} ms")
        }
        _ => println!("{what}: the clients reported {line:?}"),
    }
}
