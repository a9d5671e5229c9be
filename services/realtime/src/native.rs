//! The native protocol: JSON text frames on `GET /api/v1/realtime/ws` (docs/realtime.md has
//! the full reference). The first frame is `{"connect": {"token"}}`; then commands carrying an
//! `id` are answered with the same `id`, and pushes (`pub`, `join`, `leave`, `typing`,
//! `signal`, `refresh`) arrive between answers.

use std::{sync::Arc, time::Duration};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{
    sync::mpsc,
    time::{Instant, sleep_until},
};

use agora_shared::AppError;

use crate::{
    RealtimeState,
    conn::{self, Accept, CmdError, Conn, Denied},
    hub::{Delivery, Message, Position, Publication, Push},
};

/// How long a client has to send its connect frame.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);
/// How long before its token expires a connection is asked to refresh it.
const REFRESH_AHEAD: Duration = Duration::from_secs(30);

/// Close codes (docs/realtime.md).
pub mod close {
    pub const BAD_REQUEST: u16 = 4000;
    pub const UNAUTHORIZED: u16 = 4001;
    pub const NO_PONG: u16 = 4002;
    pub const REVOKED: u16 = 4003;
    pub const SLOW: u16 = 4008;
    pub const INSUFFICIENT: u16 = 4009;
    pub const EXPIRED: u16 = 4010;
    pub const TOO_MANY: u16 = 4029;
}

#[utoipa::path(get, path = "/api/v1/realtime/ws", tag = "realtime",
    responses((status = 101, description = "switched to the native WebSocket protocol; the first frame must be {\"connect\": {\"token\"}}"),
        (status = 400, description = "not a WebSocket upgrade")))]
pub async fn ws(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<RealtimeState>,
) -> Result<HttpResponse, AppError> {
    let pending = conn::Pending::take(&state.clone().into_inner()).ok_or_else(|| {
        AppError::Unavailable(
            "too many connections are being opened here; retry in a few seconds".into(),
        )
    })?;
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|_| {
        AppError::BadRequest(
            "this endpoint takes a WebSocket upgrade (GET with Upgrade: websocket)".into(),
        )
    })?;
    let max = state.config.max_message_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    actix_web::rt::spawn(run(state.into_inner(), session, stream, pending));
    Ok(response)
}

/// A client command: an optional `id` and exactly one command.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Command {
    #[serde(default)]
    id: Option<Value>,
    connect: Option<TokenArgs>,
    refresh: Option<TokenArgs>,
    subscribe: Option<SubscribeArgs>,
    unsubscribe: Option<ChannelArgs>,
    publish: Option<PublishArgs>,
    presence: Option<ChannelArgs>,
    presence_stats: Option<ChannelArgs>,
    history: Option<HistoryArgs>,
    typing: Option<TypingArgs>,
    signal: Option<SignalArgs>,
    ping: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenArgs {
    token: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelArgs {
    channel: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeArgs {
    channel: String,
    #[serde(default)]
    recover: bool,
    offset: Option<u64>,
    epoch: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishArgs {
    channel: String,
    data: MessageData,
}

/// What a client publishes: a chat message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageData {
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryArgs {
    channel: String,
    since: Option<Position>,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypingArgs {
    channel: String,
    #[serde(default = "yes")]
    typing: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalArgs {
    channel: String,
    to_user_id: String,
    data: Value,
}

/// An id is echoed only when it is a number or a short string.
fn valid_id(id: &Option<Value>) -> Result<(), CmdError> {
    match id {
        None | Some(Value::Number(_)) => Ok(()),
        Some(Value::String(s)) if s.len() <= 64 => Ok(()),
        Some(_) => Err(CmdError::new(
            "bad_request",
            "id must be a number or a string of at most 64 characters",
        )),
    }
}

/// The id of a frame that is an object with a valid one.
fn id_of(text: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .filter(|id| valid_id(&Some(id.clone())).is_ok())
}

fn parse(text: &str) -> Result<Command, (Option<Value>, CmdError)> {
    let command: Command = serde_json::from_str(text).map_err(|e| {
        // The id, when the frame is an object that has one, still goes back.
        (
            id_of(text),
            CmdError::new("bad_request", format!("invalid command: {e}")),
        )
    })?;
    valid_id(&command.id).map_err(|e| (None, e))?;
    let given = [
        command.connect.is_some(),
        command.refresh.is_some(),
        command.subscribe.is_some(),
        command.unsubscribe.is_some(),
        command.publish.is_some(),
        command.presence.is_some(),
        command.presence_stats.is_some(),
        command.history.is_some(),
        command.typing.is_some(),
        command.signal.is_some(),
        command.ping.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        return Err((
            command.id,
            CmdError::new(
                "bad_request",
                "a command holds exactly one of connect, refresh, subscribe, unsubscribe, publish, presence, presence_stats, history, typing, signal, ping",
            ),
        ));
    }
    Ok(command)
}

fn reply(id: &Option<Value>, key: &str, body: Value) -> String {
    let mut out = serde_json::Map::new();
    if let Some(id) = id {
        out.insert("id".into(), id.clone());
    }
    out.insert(key.into(), body);
    Value::Object(out).to_string()
}

fn error(id: &Option<Value>, err: &CmdError) -> String {
    reply(
        id,
        "error",
        json!({ "code": err.code, "message": err.message }),
    )
}

/// A publication as clients see it.
pub fn publication_json(p: &Publication) -> Value {
    let mut v = json!({ "offset": p.offset, "event": p.event, "data": p.data });
    if let Some(info) = &p.info {
        v["info"] = json!(info);
    }
    v
}

/// A push as native clients see it.
pub fn push_json(d: &Delivery) -> String {
    let channel = &d.key.channel;
    match &d.message {
        Message::Pub { epoch, publication } => {
            let mut body = publication_json(publication);
            body["channel"] = json!(channel);
            body["epoch"] = json!(epoch);
            json!({ "pub": body })
        }
        Message::Join(info) => json!({ "join": { "channel": channel, "info": info } }),
        Message::Leave(info) => json!({ "leave": { "channel": channel, "info": info } }),
        Message::Typing {
            user_id, typing, ..
        } => json!({ "typing": { "channel": channel, "user_id": user_id, "typing": typing } }),
        Message::Signal {
            from_user_id, data, ..
        } => {
            json!({ "signal": { "channel": channel, "from_user_id": from_user_id, "data": data } })
        }
    }
    .to_string()
}

/// How long a frame may wait for the client to take it: a client that stops reading is
/// dropped instead of holding its connection's task.
pub(crate) const SEND_WITHIN: Duration = Duration::from_secs(10);

/// Whether `sending` went out in time.
pub(crate) async fn within(
    sending: impl std::future::Future<Output = Result<(), actix_ws::Closed>>,
) -> bool {
    matches!(tokio::time::timeout(SEND_WITHIN, sending).await, Ok(Ok(())))
}

async fn shut(session: Session, code: u16, why: &str) {
    let closing = session.close(Some(CloseReason {
        code: CloseCode::Other(code),
        description: Some(why.to_owned()),
    }));
    let _ = tokio::time::timeout(SEND_WITHIN, closing).await;
}

/// Waits for the connect frame and authenticates it.
async fn handshake(
    state: &Arc<RealtimeState>,
    session: &mut Session,
    stream: &mut AggregatedMessageStream,
) -> Result<(Conn, mpsc::Receiver<Push>), (u16, String)> {
    let deadline = Instant::now() + CONNECT_WITHIN;
    let text = loop {
        let next = tokio::time::timeout_at(deadline, stream.recv())
            .await
            .map_err(|_| (close::UNAUTHORIZED, "no connect frame in time".to_owned()))?;
        match next {
            Some(Ok(AggregatedMessage::Text(t))) => break t,
            Some(Ok(AggregatedMessage::Ping(b))) => {
                if !within(session.pong(&b)).await {
                    return Err((close::BAD_REQUEST, "the client does not read".to_owned()));
                }
            }
            Some(Ok(AggregatedMessage::Pong(_))) => {}
            _ => return Err((close::BAD_REQUEST, "expected a connect frame".to_owned())),
        }
    };
    let command = match parse(&text) {
        Ok(c) => c,
        Err((id, err)) => {
            let _ = session.text(error(&id, &err)).await;
            return Err((close::BAD_REQUEST, err.message));
        }
    };
    let Some(args) = command.connect else {
        let err = CmdError::new("bad_request", "the first command must be connect");
        let _ = session.text(error(&command.id, &err)).await;
        return Err((close::BAD_REQUEST, err.message));
    };
    let opened = conn::authenticate(state, &args.token)
        .await
        .and_then(|(caller, proof)| Conn::open(state.clone(), caller, proof, "native"));
    match opened {
        Ok((conn, rx)) => {
            let connected = json!({ "client": &*conn.client, "expires_in": conn.expires_in() });
            let _ = session
                .text(reply(&command.id, "connected", connected))
                .await;
            Ok((conn, rx))
        }
        Err(err) => {
            let _ = session.text(error(&command.id, &err)).await;
            let code = match err.code {
                "too_many_connections" => close::TOO_MANY,
                _ => close::UNAUTHORIZED,
            };
            Err((code, err.message))
        }
    }
}

/// When the connection is next due a refresh notice or, after it, closed: `REFRESH_AHEAD`
/// before its token expires, then at expiry (API keys: never).
fn next_deadline(conn: &Conn, warned: bool) -> Instant {
    match conn.expires_in() {
        None => Instant::now() + Duration::from_secs(86_400 * 365),
        Some(secs) => {
            let left = Duration::from_secs(secs as u64);
            if warned {
                Instant::now() + left
            } else {
                // A token with less than that left is asked for at once.
                Instant::now() + left.saturating_sub(REFRESH_AHEAD)
            }
        }
    }
}

async fn run(
    state: Arc<RealtimeState>,
    mut session: Session,
    mut stream: AggregatedMessageStream,
    pending: conn::Pending,
) {
    let handshake = handshake(&state, &mut session, &mut stream).await;
    drop(pending);
    let (mut conn, mut rx) = match handshake {
        Ok(c) => c,
        Err((code, why)) => return shut(session, code, &why).await,
    };
    let ping_every = Duration::from_secs(state.config.ping_secs);
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let recheck_every = Duration::from_secs(state.config.recheck_secs);
    let mut recheck = tokio::time::interval_at(Instant::now() + recheck_every, recheck_every);
    let mut last_heard = Instant::now();
    let mut warned = false;
    let expiry = sleep_until(next_deadline(&conn, warned));
    tokio::pin!(expiry);
    let overflow = conn.overflow.clone();
    let shutdown = state.shutdown.clone();
    let ending: Option<(u16, String)> = loop {
        tokio::select! {
            biased;
            _ = overflow.cancelled() => break Some((close::SLOW, "too slow: the pushes waiting for you passed the queue's bound".into())),
            _ = shutdown.cancelled() => break Some((1001, "server stopping; reconnect".into())),
            message = stream.recv() => {
                last_heard = Instant::now();
                match message {
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        let (answer, refreshed) = command(&mut conn, &text).await;
                        if !within(session.text(answer)).await {
                            break None;
                        }
                        if refreshed {
                            warned = false;
                            expiry.as_mut().reset(next_deadline(&conn, warned));
                        }
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if !within(session.pong(&bytes)).await {
                            break None;
                        }
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        break Some((close::BAD_REQUEST, "frames are JSON text".into()));
                    }
                    Some(Ok(AggregatedMessage::Close(_))) | None => break None,
                    Some(Err(err)) => {
                        break Some((close::BAD_REQUEST, format!("protocol error: {err}")));
                    }
                }
            }
            push = rx.recv() => {
                let Some(push) = push else { break None };
                match conn.accept(&push) {
                    Accept::Skip => {}
                    Accept::Gap => break Some((close::INSUFFICIENT, "publications were missed: reconnect and recover".into())),
                    Accept::Deliver => if !within(session.text(push_json(&push))).await {
                        break None;
                    },
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_every * 2 {
                    break Some((close::NO_PONG, "no frame from the client in two ping intervals".into()));
                }
                if !within(session.ping(b"")).await {
                    break None;
                }
            }
            _ = recheck.tick() => match conn.still_allowed().await {
                Ok(()) => {}
                Err(Denied::Expired) => break Some((close::EXPIRED, "token expired; reconnect with a fresh one".into())),
                Err(Denied::Revoked(why)) => break Some((close::REVOKED, format!("credential no longer valid: {why}"))),
                Err(Denied::Unknown(why)) => {
                    tracing::warn!(%why, "a connection's credential could not be checked again; it stays");
                }
            },
            () = &mut expiry => {
                if warned || conn.expires_in().unwrap_or(1) == 0 {
                    break Some((close::EXPIRED, "token expired; reconnect with a fresh one".into()));
                }
                warned = true;
                let notice = json!({ "refresh": { "expires_in": conn.expires_in() } }).to_string();
                if !within(session.text(notice)).await {
                    break None;
                }
                expiry.as_mut().reset(next_deadline(&conn, warned));
            }
        }
    };
    conn.close().await;
    if let Some((code, why)) = ending {
        shut(session, code, &why).await;
    }
}

/// Runs one command frame: the answer to send, and whether the credential was refreshed.
async fn command(conn: &mut Conn, text: &str) -> (String, bool) {
    // Every frame counts, even one that does not parse.
    if let Err(err) = conn.command() {
        return (error(&id_of(text), &err), false);
    }
    let command = match parse(text) {
        Ok(c) => c,
        Err((id, err)) => return (error(&id, &err), false),
    };
    let id = command.id.clone();
    match execute(conn, command).await {
        Ok((key, body)) => (reply(&id, key, body), key == "refreshed"),
        Err(err) => (error(&id, &err), false),
    }
}

async fn execute(conn: &mut Conn, c: Command) -> Result<(&'static str, Value), CmdError> {
    if c.connect.is_some() {
        return Err(CmdError::new("already_connected", "already connected"));
    }
    if let Some(a) = c.refresh {
        conn.refresh(&a.token).await?;
        return Ok(("refreshed", json!({ "expires_in": conn.expires_in() })));
    }
    if let Some(a) = c.subscribe {
        let since = match (a.recover, a.offset, a.epoch) {
            (false, _, _) => None,
            (true, Some(offset), Some(epoch)) => Some(Position { offset, epoch }),
            (true, _, _) => {
                return Err(CmdError::new(
                    "bad_request",
                    "recover needs the offset and epoch last seen",
                ));
            }
        };
        let done = conn.subscribe(&a.channel, since).await?;
        let publications: Vec<Value> = done.publications.iter().map(publication_json).collect();
        return Ok((
            "subscribed",
            json!({
                "channel": a.channel,
                "offset": done.position.offset,
                "epoch": done.position.epoch,
                "recovered": done.recovered,
                "publications": publications,
            }),
        ));
    }
    if let Some(a) = c.unsubscribe {
        conn.unsubscribe(&a.channel).await?;
        return Ok(("unsubscribed", json!({ "channel": a.channel })));
    }
    if let Some(a) = c.publish {
        let (publication, epoch) = conn.send_message(&a.channel, &a.data.text).await?;
        return Ok((
            "published",
            json!({ "offset": publication.offset, "epoch": epoch, "data": publication.data }),
        ));
    }
    if let Some(a) = c.presence {
        let clients = conn.presence(&a.channel).await?;
        return Ok(("presence", json!({ "clients": clients })));
    }
    if let Some(a) = c.presence_stats {
        let clients = conn.presence(&a.channel).await?;
        let users: std::collections::BTreeSet<&str> =
            clients.iter().map(|c| c.user_id.as_str()).collect();
        return Ok((
            "presence_stats",
            json!({ "num_clients": clients.len(), "num_users": users.len() }),
        ));
    }
    if let Some(a) = c.history {
        let history = conn
            .history(
                &a.channel,
                a.since,
                conn.state.config.history_limit(a.limit),
            )
            .await?;
        let publications: Vec<Value> = history.publications.iter().map(publication_json).collect();
        return Ok((
            "history",
            json!({
                "publications": publications,
                "offset": history.position.offset,
                "epoch": history.position.epoch,
            }),
        ));
    }
    if let Some(a) = c.typing {
        conn.typing(&a.channel, a.typing).await?;
        return Ok(("typing", json!({ "channel": a.channel })));
    }
    if let Some(a) = c.signal {
        conn.signal(&a.channel, &a.to_user_id, a.data).await?;
        return Ok(("signalled", json!({ "channel": a.channel })));
    }
    Ok(("pong", json!({})))
}
