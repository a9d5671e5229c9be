//! Socket.IO v4 (Engine.IO protocol 4, Socket.IO protocol 5) at `/socket.io/`, long-polling
//! and WebSocket with the upgrade between them, for the products' existing front-ends. Each
//! Engine.IO session runs one task that speaks Socket.IO (the default namespace, JSON
//! packets, acks) over the hub, as native connections do: a Socket.IO client and a native
//! client in one channel see each other's messages. The token comes in the handshake's
//! `auth: {token}`; a bad one is a `connect_error`. Behind several replicas, long-polling
//! needs sticky sessions (as every Socket.IO server does); WebSocket-only clients do not.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, Session};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    RealtimeState,
    conn::{self, Accept, CmdError, Conn, Denied},
    hub::{Delivery, Message, Push},
    native::{SEND_WITHIN, within},
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    for path in ["/socket.io", "/socket.io/"] {
        cfg.route(path, web::get().to(get))
            .route(path, web::post().to(post));
    }
}

impl EioSession {
    /// `packet` left the queue for the client.
    fn taken(&self, packet: &str) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(packet.len()))
            });
    }
}

/// The Engine.IO sessions of this process.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<EioSession>>>,
}

impl Sessions {
    fn get(&self, sid: &str) -> Option<Arc<EioSession>> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sid)
            .cloned()
    }

    fn insert(&self, session: Arc<EioSession>) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session.sid.clone(), session);
    }

    fn remove(&self, sid: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sid);
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One Engine.IO session: packets in from whichever transport carries them, packets out to
/// the poll waiting or the WebSocket.
struct EioSession {
    sid: String,
    inbound: mpsc::Sender<String>,
    outbound: tokio::sync::Mutex<mpsc::Receiver<String>>,
    /// For the transports' own packets (the noop that releases a poll during an upgrade).
    outbound_tx: mpsc::Sender<String>,
    /// Its packets travel over a WebSocket now (polls are refused).
    upgraded: AtomicBool,
    /// Bytes of packets waiting for the client (see `Out`).
    queued: AtomicUsize,
    /// Fires when the session ends, whoever ends it.
    closed: CancellationToken,
}

/// Engine.IO's errors, as its servers answer them.
fn eio_error(code: u8, message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "code": code, "message": message }))
}

fn text(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=UTF-8")
        .body(body)
}

#[derive(Debug, Deserialize)]
pub struct EioQuery {
    #[serde(rename = "EIO")]
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
}

/// Packets are joined by this in a polling payload.
const SEPARATOR: char = '\u{1e}';

fn open_packet(state: &RealtimeState, sid: &str, upgrades: &[&str]) -> String {
    format!(
        "0{}",
        json!({
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": state.config.ping_secs * 1000,
            "pingTimeout": 20_000,
            "maxPayload": state.config.max_message_bytes,
        })
    )
}

/// A new session and its task, if this process takes more sessions not yet connected.
fn new_session(state: &Arc<RealtimeState>, upgraded: bool) -> Option<Arc<EioSession>> {
    let pending = conn::Pending::take(state)?;
    let (in_tx, in_rx) = mpsc::channel(64);
    let (out_tx, out_rx) = mpsc::channel(state.config.send_queue);
    let session = Arc::new(EioSession {
        sid: crate::hub::random_id(),
        inbound: in_tx,
        outbound: tokio::sync::Mutex::new(out_rx),
        outbound_tx: out_tx.clone(),
        upgraded: AtomicBool::new(upgraded),
        queued: AtomicUsize::new(0),
        closed: CancellationToken::new(),
    });
    state.sessions.insert(session.clone());
    actix_web::rt::spawn(run_socket(
        state.clone(),
        session.clone(),
        in_rx,
        out_tx,
        pending,
    ));
    Some(session)
}

fn busy() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header(("retry-after", "5"))
        .json(json!({ "code": 3, "message": "too many sessions are being opened here; retry" }))
}

async fn get(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<EioQuery>,
    state: web::Data<RealtimeState>,
) -> HttpResponse {
    let state = state.into_inner();
    if query.eio.as_deref() != Some("4") {
        return eio_error(5, "Unsupported protocol version");
    }
    match (query.transport.as_deref(), query.sid.as_deref()) {
        (Some("polling"), None) => match new_session(&state, false) {
            Some(session) => text(open_packet(&state, &session.sid, &["websocket"])),
            None => busy(),
        },
        (Some("polling"), Some(sid)) => {
            let Some(session) = state.sessions.get(sid) else {
                return eio_error(1, "Session ID unknown");
            };
            poll(&state, &session).await
        }
        (Some("websocket"), sid) => {
            let existing = match sid {
                None => None,
                Some(sid) => match state.sessions.get(sid) {
                    Some(s) if !s.upgraded.load(Ordering::Acquire) => Some(s),
                    _ => return eio_error(1, "Session ID unknown"),
                },
            };
            let Ok((response, ws, stream)) = actix_ws::handle(&req, body) else {
                return eio_error(3, "Bad request");
            };
            let max = state.config.max_message_bytes;
            let stream = stream
                .max_frame_size(max)
                .aggregate_continuations()
                .max_continuation_size(max);
            actix_web::rt::spawn(websocket(state.clone(), existing, ws, stream));
            response
        }
        _ => eio_error(0, "Transport unknown"),
    }
}

/// A long poll: the packets waiting, or those that come within a ping interval.
async fn poll(state: &RealtimeState, session: &EioSession) -> HttpResponse {
    if session.upgraded.load(Ordering::Acquire) {
        return eio_error(3, "Bad request");
    }
    // Two polls at once break the protocol: the session ends, as Engine.IO servers do.
    let Ok(mut outbound) = session.outbound.try_lock() else {
        session.closed.cancel();
        return eio_error(3, "Bad request");
    };
    let wait = Duration::from_secs(state.config.ping_secs) + Duration::from_secs(5);
    let first = tokio::select! {
        p = outbound.recv() => p,
        _ = tokio::time::sleep(wait) => Some("6".to_owned()),
        _ = session.closed.cancelled() => None,
    };
    let Some(first) = first else {
        return text("1".to_owned());
    };
    session.taken(&first);
    let mut packets = vec![first];
    while packets.len() < 256 {
        match outbound.try_recv() {
            Ok(p) => {
                session.taken(&p);
                packets.push(p);
            }
            Err(_) => break,
        }
    }
    text(packets.join(&SEPARATOR.to_string()))
}

async fn post(
    query: web::Query<EioQuery>,
    mut body: web::Payload,
    state: web::Data<RealtimeState>,
) -> HttpResponse {
    if query.eio.as_deref() != Some("4") {
        return eio_error(5, "Unsupported protocol version");
    }
    if query.transport.as_deref() != Some("polling") {
        return eio_error(0, "Transport unknown");
    }
    let Some(session) = query.sid.as_deref().and_then(|s| state.sessions.get(s)) else {
        return eio_error(1, "Session ID unknown");
    };
    if session.upgraded.load(Ordering::Acquire) {
        return eio_error(3, "Bad request");
    }
    let max = state.config.max_message_bytes;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            return eio_error(3, "Bad request");
        };
        if bytes.len() + chunk.len() > max {
            session.closed.cancel();
            return HttpResponse::PayloadTooLarge().finish();
        }
        bytes.extend_from_slice(&chunk);
    }
    let Ok(payload) = String::from_utf8(bytes) else {
        return eio_error(3, "Bad request");
    };
    for packet in payload.split(SEPARATOR) {
        if session.inbound.send(packet.to_owned()).await.is_err() {
            return eio_error(1, "Session ID unknown");
        }
    }
    text("ok".to_owned())
}

/// A WebSocket transport: a new session (`existing` none) or the upgrade of a polling one.
async fn websocket(
    state: Arc<RealtimeState>,
    existing: Option<Arc<EioSession>>,
    mut ws: Session,
    mut stream: AggregatedMessageStream,
) {
    let session = match existing {
        None => {
            let Some(session) = new_session(&state, true) else {
                let _ = ws.close(None).await;
                return;
            };
            if !within(ws.text(open_packet(&state, &session.sid, &[]))).await {
                session.closed.cancel();
                return;
            }
            session
        }
        Some(session) => {
            // The probe: "2probe" -> "3probe", then "5" once the client has drained its poll
            // (released with a noop).
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut probed = false;
            loop {
                let frame = tokio::time::timeout_at(deadline, stream.recv()).await;
                match frame {
                    Ok(Some(Ok(AggregatedMessage::Text(t)))) if &*t == "2probe" && !probed => {
                        if !within(ws.text("3probe")).await {
                            return;
                        }
                        probed = true;
                        // Wakes the poll in flight; a later one would find nothing else.
                        let _ = session.outbound_tx.try_send("6".to_owned());
                    }
                    Ok(Some(Ok(AggregatedMessage::Text(t)))) if &*t == "5" && probed => break,
                    Ok(Some(Ok(AggregatedMessage::Ping(b)))) => {
                        if !within(ws.pong(&b)).await {
                            return;
                        }
                    }
                    _ => {
                        let _ = ws.close(None).await;
                        return;
                    }
                }
            }
            session.upgraded.store(true, Ordering::Release);
            session
        }
    };
    // Waits for a poll still holding the queue to return.
    let mut outbound = session.outbound.lock().await;
    let ending = loop {
        tokio::select! {
            frame = stream.recv() => match frame {
                Some(Ok(AggregatedMessage::Text(t))) => {
                    let handed = tokio::time::timeout(SEND_WITHIN, session.inbound.send(t.to_string())).await;
                    if !matches!(handed, Ok(Ok(()))) {
                        break false;
                    }
                }
                Some(Ok(AggregatedMessage::Ping(b))) => {
                    if !within(ws.pong(&b)).await {
                        break false;
                    }
                }
                Some(Ok(AggregatedMessage::Pong(_))) => {}
                _ => break false,
            },
            packet = outbound.recv() => match packet {
                Some(p) => {
                    session.taken(&p);
                    if !within(ws.text(p)).await {
                        break false;
                    }
                }
                None => break true,
            },
            _ = session.closed.cancelled() => break true,
        }
    };
    session.closed.cancel();
    if ending {
        let _ = tokio::time::timeout(SEND_WITHIN, ws.close(None)).await;
    }
}

/// Socket.IO packets, as carried in Engine.IO message packets (`4...`).
mod packet {
    /// A packet from a client: type, namespace, ack id and JSON data.
    #[derive(Debug, PartialEq)]
    pub struct Parsed<'a> {
        pub kind: u8,
        pub namespace: &'a str,
        pub ack: Option<u64>,
        pub data: &'a str,
    }

    pub fn parse(p: &str) -> Option<Parsed<'_>> {
        let kind = p
            .as_bytes()
            .first()?
            .checked_sub(b'0')
            .filter(|k| *k <= 6)?;
        let mut rest = &p[1..];
        let mut namespace = "/";
        if rest.starts_with('/') {
            let end = rest.find(',').unwrap_or(rest.len());
            namespace = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or("");
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let ack = if digits > 0 {
            Some(rest[..digits].parse().ok()?)
        } else {
            None
        };
        Some(Parsed {
            kind,
            namespace,
            ack,
            data: &rest[digits..],
        })
    }

    pub fn event(name: &str, data: &serde_json::Value) -> String {
        format!("42{}", serde_json::json!([name, data]))
    }

    pub fn ack(id: u64, data: &serde_json::Value) -> String {
        format!("43{id}{}", serde_json::json!([data]))
    }
}

/// The field a channel's id goes by in Socket.IO payloads.
fn id_field(channel: &str) -> Option<(&'static str, &str)> {
    let (kind, id) = channel.split_once(':')?;
    let field = match kind {
        "session" => "session_id",
        "conversation" => "conversation_id",
        "ticket" => "ticket_id",
        "user" => "user_id",
        _ => return None,
    };
    Some((field, id))
}

/// A push as Socket.IO clients see it: an event and its payload.
fn push_event(d: &Delivery) -> (String, Value) {
    let channel = &d.key.channel;
    let mut base = json!({});
    match id_field(channel) {
        Some((field, id)) => base[field] = json!(id),
        None => base["channel"] = json!(channel),
    }
    match &d.message {
        Message::Pub { publication, .. } => {
            // Which channel it came from, for a client in several.
            let mut data = publication.data.clone();
            if let Value::Object(fields) = &mut data {
                fields.entry("channel").or_insert_with(|| json!(channel));
            }
            (publication.event.clone(), data)
        }
        Message::Typing {
            user_id, typing, ..
        } => {
            base["user_id"] = json!(user_id);
            base["typing"] = json!(typing);
            ("user_typing".into(), base)
        }
        Message::Signal {
            from_user_id, data, ..
        } => {
            base["from_user_id"] = json!(from_user_id);
            base["signal"] = data.clone();
            ("webrtc_signal".into(), base)
        }
        Message::Join(info) => {
            base["user_id"] = json!(info.user_id);
            ("user_joined".into(), base)
        }
        Message::Leave(info) => {
            base["user_id"] = json!(info.user_id);
            ("user_left".into(), base)
        }
    }
}

fn failure(err: &CmdError) -> Value {
    json!({ "ok": false, "error": { "code": err.code, "message": err.message } })
}

/// The channel an event's payload names: `session_id` or `conversation_id` (or `channel`).
fn target(payload: &Value, allowed: &[&str]) -> Result<String, CmdError> {
    for field in allowed {
        if let Some(id) = payload.get(*field) {
            let Some(id) = id.as_str() else {
                return Err(CmdError::new(
                    "bad_request",
                    format!("{field} must be a string"),
                ));
            };
            return Ok(match *field {
                "session_id" => format!("session:{id}"),
                "conversation_id" => format!("conversation:{id}"),
                _ => id.to_owned(),
            });
        }
    }
    Err(CmdError::new(
        "bad_request",
        format!("the payload needs {}", allowed.join(" or ")),
    ))
}

fn string<'a>(payload: &'a Value, field: &str) -> Result<&'a str, CmdError> {
    payload
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| CmdError::new("bad_request", format!("{field} must be a string")))
}

/// Handles one event; its ack's payload.
async fn on_event(conn: &mut Conn, name: &str, payload: Value, out: &Out) -> Value {
    const CHAT: &[&str] = &["session_id", "conversation_id"];
    let result: Result<Value, CmdError> = async {
        conn.command()?;
        match name {
            "join_session" | "join_conversation" | "subscribe" => {
                let fields: &[&str] = match name {
                    "join_session" => &["session_id"],
                    "join_conversation" => &["conversation_id"],
                    _ => &["channel"],
                };
                let channel = target(&payload, fields)?;
                let done = conn.subscribe(&channel, None).await?;
                Ok(json!({ "ok": true, "channel": channel, "offset": done.position.offset, "epoch": done.position.epoch }))
            }
            "leave_session" | "leave_conversation" | "unsubscribe" => {
                let fields: &[&str] = match name {
                    "leave_session" => &["session_id"],
                    "leave_conversation" => &["conversation_id"],
                    _ => &["channel"],
                };
                let channel = target(&payload, fields)?;
                conn.unsubscribe(&channel).await?;
                Ok(json!({ "ok": true }))
            }
            "send_message" => {
                let channel = target(&payload, CHAT)?;
                let text = string(&payload, "text")?;
                let (p, _) = conn.send_message(&channel, text).await?;
                Ok(json!({ "ok": true, "message_id": p.data["message_id"], "offset": p.offset }))
            }
            "typing_start" | "typing_stop" => {
                let channel = target(&payload, CHAT)?;
                conn.typing(&channel, name == "typing_start").await?;
                Ok(json!({ "ok": true }))
            }
            "webrtc_signal" => {
                let channel = target(&payload, &["session_id"])?;
                let to = string(&payload, "to_user_id")?;
                let signal = payload.get("signal").cloned().unwrap_or(Value::Null);
                conn.signal(&channel, to, signal).await?;
                Ok(json!({ "ok": true }))
            }
            "ping" => {
                out.put(packet::event("pong", &json!({})));
                Ok(json!({ "ok": true }))
            }
            other => Err(CmdError::new(
                "unknown_event",
                format!("no event {other:?} here"),
            )),
        }
    }
    .await;
    result.unwrap_or_else(|e| failure(&e))
}

/// A session's outgoing packets. Never waits: a client that lets them pile up past the
/// queue's bound (it stopped polling or reading) loses its session, so that no session task
/// ever stalls on one.
struct Out {
    tx: mpsc::Sender<String>,
    session: Arc<EioSession>,
    /// Most bytes waiting at once: packets are copies of their publications, so a count of
    /// them alone would let one session hold the queue's length in 64 KiB messages.
    budget: usize,
}

impl Out {
    /// Queues `packet`; false when the client is too far behind (or gone).
    fn put(&self, packet: String) -> bool {
        let len = packet.len();
        if self.session.queued.load(Ordering::Acquire) + len > self.budget {
            return false;
        }
        self.session.queued.fetch_add(len, Ordering::AcqRel);
        if self.tx.try_send(packet).is_err() {
            self.session.queued.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Whether the client has taken everything queued.
    fn drained(&self) -> bool {
        self.tx.capacity() == self.tx.max_capacity()
    }
}

/// How a session ends.
enum End {
    /// The client reconnects by itself (Engine.IO close: server stopping, too slow, missed
    /// publications, token expired).
    Reconnect,
    /// The server disconnected the socket (Socket.IO disconnect: credential revoked); the
    /// client stays disconnected.
    Disconnect,
    /// Its connect was refused (the connect_error is queued).
    Refused,
    /// Nothing to say: the client left, broke the protocol or fell behind.
    Silent,
}

/// The Socket.IO side of one session, until it ends: heartbeat, connect, events, pushes.
async fn run_socket(
    state: Arc<RealtimeState>,
    session: Arc<EioSession>,
    mut inbound: mpsc::Receiver<String>,
    out: mpsc::Sender<String>,
    pending: conn::Pending,
) {
    let mut pending = Some(pending);
    let out = Out {
        tx: out,
        session: session.clone(),
        budget: (2 * state.config.max_message_bytes).max(1 << 20),
    };
    let ping_every = Duration::from_secs(state.config.ping_secs);
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let recheck_every = Duration::from_secs(state.config.recheck_secs);
    let mut recheck = tokio::time::interval_at(Instant::now() + recheck_every, recheck_every);
    let mut ponged = true;
    let mut conn: Option<(Conn, mpsc::Receiver<Push>)> = None;
    // Not connected within this (as native connections): the session ends.
    let connect_by = Instant::now() + Duration::from_secs(10);
    let shutdown = state.shutdown.clone();
    let end = loop {
        let expiry = match &conn {
            None => connect_by,
            Some((c, _)) => c
                .expires_in()
                .map(|s| Instant::now() + Duration::from_secs(s as u64))
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400)),
        };
        let overflow = conn.as_ref().map(|(c, _)| c.overflow.clone());
        tokio::select! {
            biased;
            _ = session.closed.cancelled() => break End::Silent,
            _ = shutdown.cancelled() => break End::Reconnect,
            _ = async { match &overflow { Some(o) => o.cancelled().await, None => std::future::pending().await } } => {
                break End::Reconnect;
            }
            packet = inbound.recv() => {
                let Some(packet) = packet else { break End::Silent };
                match packet.as_bytes().first() {
                    Some(b'3') => ponged = true,
                    Some(b'1') => break End::Silent,
                    Some(b'4') => {
                        match socket_packet(&state, &packet[1..], &mut conn, &out).await {
                            Ok(()) => {}
                            Err(end) => break end,
                        }
                        if conn.is_some() {
                            pending = None;
                        }
                    }
                    // Upgrade and noop packets are the transports' business.
                    Some(b'5' | b'6') => {}
                    // Engine.IO 4 clients never ping; anything else breaks the protocol.
                    _ => break End::Silent,
                }
            }
            push = async { match &mut conn { Some((_, rx)) => rx.recv().await, None => std::future::pending().await } } => {
                let Some(push) = push else { break End::Silent };
                let Some((c, _)) = &mut conn else { continue };
                match c.accept(&push) {
                    Accept::Skip => {}
                    Accept::Gap => break End::Reconnect,
                    Accept::Deliver => {
                        let (event, data) = push_event(&push);
                        if !out.put(packet::event(&event, &data)) {
                            break End::Silent;
                        }
                    }
                }
            }
            _ = ping.tick() => {
                if !ponged || !out.put("2".to_owned()) {
                    break End::Silent;
                }
                ponged = false;
            }
            _ = recheck.tick() => {
                if let Some((c, _)) = &conn {
                    match c.still_allowed().await {
                        Ok(()) => {}
                        Err(Denied::Expired) => break End::Reconnect,
                        Err(Denied::Revoked(_)) => break End::Disconnect,
                        Err(Denied::Unknown(why)) => {
                            tracing::warn!(%why, "a socket's credential could not be checked again; it stays");
                        }
                    }
                }
            }
            // Not connected in time (the session ends), or the token expired (the client
            // reconnects with a fresh one).
            _ = tokio::time::sleep_until(expiry) => break if conn.is_some() { End::Reconnect } else { End::Silent },
        }
    };
    match end {
        End::Reconnect => {
            out.put("1".to_owned());
        }
        End::Disconnect => {
            out.put("41".to_owned());
        }
        End::Refused | End::Silent => {}
    }
    if let Some((mut c, _)) = conn {
        c.close().await;
    }
    // The last packet (a close, a connect_error) is left for the client's next poll, a few
    // seconds at most, before the session is gone.
    let last_words = !matches!(end, End::Silent);
    let linger = Instant::now() + Duration::from_secs(5);
    while last_words && !out.drained() && Instant::now() < linger {
        if session.closed.is_cancelled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(pending);
    state.sessions.remove(&session.sid);
    session.closed.cancel();
}

/// Handles one Socket.IO packet; the session's end when it must end.
async fn socket_packet(
    state: &Arc<RealtimeState>,
    raw: &str,
    conn: &mut Option<(Conn, mpsc::Receiver<Push>)>,
    out: &Out,
) -> Result<(), End> {
    let Some(p) = packet::parse(raw) else {
        return Err(End::Silent);
    };
    // Every packet of a connected socket counts against its allowance (events are refused
    // in their ack; anything else past it ends the session).
    if p.kind != 2
        && let Some((c, _)) = conn
        && c.command().is_err()
    {
        return Err(End::Silent);
    }
    if p.namespace != "/" {
        let message = json!({ "message": "Invalid namespace" });
        return match out.put(format!("44{},{message}", p.namespace)) {
            true => Ok(()),
            false => Err(End::Silent),
        };
    }
    let sent = match p.kind {
        0 => {
            if conn.is_some() {
                return Ok(());
            }
            let auth: Value = serde_json::from_str(p.data).unwrap_or(Value::Null);
            let token = auth.get("token").and_then(Value::as_str).unwrap_or("");
            match conn::authenticate(state, token)
                .await
                .and_then(|(caller, proof)| Conn::open(state.clone(), caller, proof, "socket.io"))
            {
                Ok((mut c, rx)) => {
                    // Each socket hears its own user's channel.
                    let own = format!("user:{}", c.caller.user_id);
                    if let Err(err) = c.subscribe(&own, None).await {
                        tracing::warn!(code = err.code, "joining the user's own channel failed");
                    }
                    let sent = out.put(format!("40{}", json!({ "sid": &*c.client })));
                    *conn = Some((c, rx));
                    sent
                }
                Err(err) => {
                    // One attempt per session: the client makes a new one to try again.
                    let message = json!({ "message": err.message, "data": { "code": err.code } });
                    out.put(format!("44{message}"));
                    return Err(End::Refused);
                }
            }
        }
        1 => return Err(End::Silent),
        2 => {
            let Some((c, _)) = conn else {
                return Ok(());
            };
            let args: Vec<Value> = match serde_json::from_str(p.data) {
                Ok(Value::Array(a)) => a,
                _ => return Err(End::Silent),
            };
            let Some(name) = args.first().and_then(Value::as_str).map(str::to_owned) else {
                return Err(End::Silent);
            };
            let payload = args.get(1).cloned().unwrap_or(Value::Null);
            let answer = on_event(c, &name, payload, out).await;
            match p.ack {
                Some(id) => out.put(packet::ack(id, &answer)),
                None => true,
            }
        }
        // Acks of the server's emits (it asks for none) and binary packets (not offered).
        3 => true,
        _ => return Err(End::Silent),
    };
    if sent { Ok(()) } else { Err(End::Silent) }
}

#[cfg(test)]
mod tests {
    use super::packet::{Parsed, parse};

    #[test]
    fn packets() {
        assert_eq!(
            parse("0{\"token\":\"t\"}"),
            Some(Parsed {
                kind: 0,
                namespace: "/",
                ack: None,
                data: "{\"token\":\"t\"}"
            })
        );
        assert_eq!(
            parse("212[\"join_session\",{}]"),
            Some(Parsed {
                kind: 2,
                namespace: "/",
                ack: Some(12),
                data: "[\"join_session\",{}]"
            })
        );
        assert_eq!(
            parse("0/admin,{}"),
            Some(Parsed {
                kind: 0,
                namespace: "/admin",
                ack: None,
                data: "{}"
            })
        );
        assert_eq!(parse("9"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("2999999999999999999999[]"), None);
    }
}
