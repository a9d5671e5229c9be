//! An HTTP/2 upstream that goes away mid-flight, as nginx does after `keepalive_requests` or a
//! server does when it drains: written frame by frame (RFC 9113) so that the GOAWAY lands
//! exactly between two streams the gateway already sent. The stream above the GOAWAY's last
//! stream was never processed, so the gateway sends it again on a new connection (RFC 9113
//! section 8.7) and the client never sees the upstream's restart. A stream refused alone
//! (RST_STREAM REFUSED_STREAM) is sent again on the same connection.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use reqwest::Method;

use crate::support::{Call, stack};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const RST_STREAM: u8 = 0x3;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const REFUSED_STREAM: u32 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(out: &mut impl Write, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    let mut head = [0u8; 9];
    head[..3].copy_from_slice(&len.to_be_bytes()[1..]);
    head[3] = kind;
    head[4] = flags;
    head[5..].copy_from_slice(&stream.to_be_bytes());
    out.write_all(&head).unwrap();
    out.write_all(payload).unwrap();
}

/// `:status: 200` (HPACK static table entry 8), no body.
fn ok(out: &mut impl Write, stream: u32) {
    frame(out, HEADERS, END_HEADERS | END_STREAM, stream, &[0x88]);
}

/// The next frame: (type, flags, stream, payload), or `None` when the peer closed.
fn read_frame(conn: &mut TcpStream) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    conn.read_exact(&mut head).ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0; len];
    conn.read_exact(&mut payload).ok()?;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    Some((head[3], head[4], stream, payload))
}

/// What the upstream saw.
#[derive(Default)]
struct Upstream {
    /// Streams on each connection, in order, as (connection, stream id).
    streams: Mutex<Vec<(usize, u32)>>,
    connections: AtomicUsize,
    /// Refuse the first request's stream (REFUSED_STREAM) instead of draining the first
    /// connection.
    refuse_first_stream: bool,
}

/// Answers every complete request at once, except on its first connection: there it holds
/// the first request until a second one arrives, then sends GOAWAY naming the first as the
/// last it will process, answers the first, and closes (or, with `refuse_first_stream`,
/// resets the first request's stream with REFUSED_STREAM and answers the rest).
fn start(upstream: Arc<Upstream>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let upstream = upstream.clone();
            std::thread::spawn(move || serve(&mut conn, &upstream));
        }
    });
    port
}

fn serve(conn: &mut TcpStream, upstream: &Upstream) {
    let mut preface = [0u8; 24];
    if conn.read_exact(&mut preface).is_err() || preface != PREFACE {
        return; // not HTTP/2 with prior knowledge (an HTTP/1.1 probe): hang up
    }
    let index = upstream.connections.fetch_add(1, Ordering::SeqCst);
    let draining = index == 0 && !upstream.refuse_first_stream;
    let mut refuse = upstream.refuse_first_stream && index == 0;
    frame(conn, SETTINGS, 0, 0, &[]);
    let mut held = None;
    while let Some((kind, flags, stream, payload)) = read_frame(conn) {
        if kind == HEADERS {
            upstream.streams.lock().unwrap().push((index, stream));
        }
        match kind {
            SETTINGS if flags & ACK == 0 => frame(conn, SETTINGS, ACK, 0, &[]),
            PING if flags & ACK == 0 => frame(conn, PING, ACK, 0, &payload),
            // A request is complete at its END_STREAM (on its HEADERS, or its last DATA).
            HEADERS | DATA if flags & END_STREAM != 0 && refuse => {
                refuse = false;
                frame(conn, RST_STREAM, 0, stream, &REFUSED_STREAM.to_be_bytes());
            }
            HEADERS | DATA if flags & END_STREAM != 0 => match (draining, held) {
                (false, _) => ok(conn, stream),
                (true, None) => held = Some(stream),
                (true, Some(first)) => {
                    let mut goaway = first.to_be_bytes().to_vec();
                    goaway.extend_from_slice(&0u32.to_be_bytes()); // NO_ERROR
                    frame(conn, GOAWAY, 0, 0, &goaway);
                    ok(conn, first);
                    conn.flush().unwrap();
                    std::thread::sleep(Duration::from_millis(100));
                    return;
                }
            },
            _ => {}
        }
    }
}

/// The gateway (one worker, so both requests share its one HTTP/2 connection) in front of a
/// draining upstream, with a first request held there; `second` is sent next.
async fn draining(second: Method, body: Option<reqwest::Body>) -> (u16, Vec<(usize, u32)>) {
    let upstream = Arc::new(Upstream::default());
    let (s, user) = gateway_before(&upstream).await;
    let first = tokio::spawn(s.get_as("/api/v1/draining/first", &user.access).call());
    for _ in 0..500 {
        if !upstream.streams.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut request = s
        .req(second, "/api/v1/draining/second")
        .bearer_auth(&user.access);
    if let Some(body) = body {
        request = request.body(body);
    }
    let second = request.call().await.status().as_u16();
    assert_eq!(
        first.await.unwrap().status(),
        200,
        "the held request is answered"
    );
    let streams = upstream.streams.lock().unwrap().clone();
    (second, streams)
}

/// The gateway (one worker: one shared HTTP/2 connection) in front of `upstream` at
/// /api/v1/draining, and a user of it.
async fn gateway_before(
    upstream: &Arc<Upstream>,
) -> (crate::support::Stack, agora_testkit::Session) {
    let port = start(upstream.clone());
    let s = stack(
        "http_workers = 1",
        &format!(
            "[gateway.services.draining]\nurl = \"http://127.0.0.1:{port}\"\n\
             prefixes = [\"/api/v1/draining\"]\nhttp2 = true\nrequired = false\n"
        ),
    )
    .await;
    let user = s.register("a@x.test", "Acme").await;
    (s, user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_refused_alone_is_sent_again_on_the_same_connection() {
    let upstream = Arc::new(Upstream {
        refuse_first_stream: true,
        ..Default::default()
    });
    let (s, user) = gateway_before(&upstream).await;
    let resp = s
        .req(Method::DELETE, "/api/v1/draining/refused")
        .bearer_auth(&user.access)
        .call()
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        upstream.streams.lock().unwrap().clone(),
        [(0, 1), (0, 3)],
        "refused on stream 1, sent again as stream 3 of the same connection"
    );
    let metrics = s.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("agora_gateway_upstream_replays_total{service=\"draining\"}")),
        "the replay is counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_refused_by_goaway_is_sent_again_on_a_new_connection() {
    let (status, streams) = draining(Method::DELETE, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        streams,
        [(0, 1), (0, 3), (1, 1)],
        "the second request went out on the first connection, was refused by its GOAWAY, \
         and was sent once more on a second connection (a DELETE too: it was never processed)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stream_whose_body_was_streamed_is_not_sent_twice() {
    // The gateway streams request bodies upstream as they arrive, so it has no copy of one to
    // send again: the client gets a 502 and may retry itself.
    let chunks = futures::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(actix_web::web::Bytes::from(vec![b'x'; 1024]))),
    );
    let (status, streams) = draining(Method::POST, Some(reqwest::Body::wrap_stream(chunks))).await;
    assert_eq!(status, 502);
    assert_eq!(streams, [(0, 1), (0, 3)], "nothing was sent again");
}
