//! One client connection, whichever its protocol: who it is, the channels it holds, what it
//! may do in them, and how its credential is checked again while it stays open. The native
//! protocol (`native`) and Socket.IO (`socketio`) only translate frames into these calls.

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Code;

use agora_proto::tickets::v1::{self as tickets_pb, ticket_service_client::TicketServiceClient};
use agora_shared::{
    AppError,
    http::{Caller, Credential},
    tokens::RevocationCheck,
};

use crate::{
    RealtimeState,
    channel::{self, Key, Kind},
    hub::{ClientInfo, Delivery, History, Message, Position, Publication, Push, Subscriber},
};

/// A command's refusal, as both protocols report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CmdError {
    pub code: &'static str,
    pub message: String,
}

impl CmdError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new("bad_request", message)
    }

    fn unavailable(err: anyhow::Error) -> Self {
        tracing::warn!(error = %format!("{err:#}"), "realtime engine failed");
        Self::new("unavailable", "channel state is unavailable; retry")
    }
}

/// How an open connection's right to stay is checked again.
pub enum Proof {
    /// Its own credential (access token or API key), verified again.
    Credential,
    /// It came with a connection token: the access token behind it, by what refuses it.
    Revocation(RevocationCheck),
}

/// Why a connection's credential no longer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The access token expired: the client reconnects with a fresh one.
    Expired,
    /// Revoked, cut off, logged out, deleted: the client is told so.
    Revoked(String),
    /// It could not be checked now (the denylist or auth is unreachable).
    Unknown(String),
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Expired => f.write_str("token expired"),
            Self::Revoked(why) | Self::Unknown(why) => f.write_str(why),
        }
    }
}

/// What a connection does with a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Deliver,
    Skip,
    /// Publications were missed (the engine lost some while Redis was away).
    Gap,
}

/// A client's subscriptions' answer.
pub struct Subscribed {
    pub position: Position,
    pub recovered: bool,
    pub publications: Vec<Publication>,
}

/// An allowance of one connection: a token bucket, full at first.
struct Bucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    at: Instant,
}

impl Bucket {
    fn new(burst: u32, per_sec: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            per_sec: f64::from(per_sec),
            at: Instant::now(),
        }
    }

    /// Takes one, or says how many `what` the bucket allows.
    fn spend(&mut self, what: &str) -> Result<(), CmdError> {
        if self.take() {
            return Ok(());
        }
        Err(CmdError::new(
            "too_many_requests",
            format!(
                "at most {} {what} a second per connection (bursts of {})",
                self.per_sec, self.burst
            ),
        ))
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_sec;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One connection.
pub struct Conn {
    pub state: Arc<RealtimeState>,
    pub caller: Caller,
    pub proof: Proof,
    pub client: Arc<str>,
    pub transport: &'static str,
    tx: mpsc::Sender<Push>,
    /// Cancelled when the client fell too far behind: the protocol closes it (4008).
    pub overflow: CancellationToken,
    /// Channel -> the last position this client was given in it.
    subs: HashMap<String, Position>,
    /// Publishes, typing notices and signals.
    bucket: Bucket,
    /// Every command.
    commands: Bucket,
}

impl Conn {
    /// A connection of `caller`; its pushes arrive on the returned receiver. Refused when
    /// the user already holds `max_connections_per_user` here.
    pub fn open(
        state: Arc<RealtimeState>,
        caller: Caller,
        proof: Proof,
        transport: &'static str,
    ) -> Result<(Self, mpsc::Receiver<Push>), CmdError> {
        let config = &state.config;
        {
            let mut per_user = state.per_user.lock().unwrap_or_else(|p| p.into_inner());
            let open = per_user
                .entry((caller.tenant_id.clone(), caller.user_id.clone()))
                .or_default();
            if *open >= config.max_connections_per_user {
                return Err(CmdError::new(
                    "too_many_connections",
                    format!(
                        "at most {} open connections per user",
                        config.max_connections_per_user
                    ),
                ));
            }
            *open += 1;
        }
        let (tx, rx) = mpsc::channel(config.send_queue);
        state.connections.fetch_add(1, Ordering::Relaxed);
        let conn = Self {
            proof,
            client: Arc::from(crate::hub::random_id()),
            transport,
            tx,
            overflow: CancellationToken::new(),
            subs: HashMap::new(),
            bucket: Bucket::new(config.client_publish_burst, config.client_publish_per_sec),
            commands: Bucket::new(config.client_command_burst, config.client_commands_per_sec),
            caller,
            state,
        };
        Ok((conn, rx))
    }

    /// Spends one command of the connection's allowance.
    pub fn command(&mut self) -> Result<(), CmdError> {
        self.commands.spend("commands")
    }

    pub fn info(&self) -> ClientInfo {
        ClientInfo {
            client: self.client.to_string(),
            user_id: self.caller.user_id.clone(),
            transport: self.transport.to_owned(),
        }
    }

    fn key(&self, channel: &str) -> Key {
        Key::new(&self.caller.tenant_id, channel)
    }

    /// When the access token behind this connection expires (Unix seconds); API keys do not.
    pub fn expires_at(&self) -> Option<i64> {
        match &self.caller.credential {
            Credential::Jwt { exp, .. } => Some(*exp),
            Credential::ApiKey { .. } => None,
        }
    }

    /// Seconds until then (`None` for API keys).
    pub fn expires_in(&self) -> Option<i64> {
        self.expires_at()
            .map(|exp| (exp - chrono::Utc::now().timestamp()).max(0))
    }

    /// Whether the caller may see `channel`'s messages (and so its presence and history).
    async fn authorize(&self, name: &str) -> Result<Kind, CmdError> {
        let kind = channel::parse(name).map_err(CmdError::bad)?;
        match &kind {
            Kind::User(id) if *id != self.caller.user_id => {
                return Err(CmdError::new(
                    "forbidden",
                    "user channels are their own user's only",
                ));
            }
            Kind::Ticket(id) => self.may_see_ticket(id).await?,
            // Conversations belong to the agents service and sessions to the tutor, neither
            // of which runs yet: any member of the tenant may use them, and only in it. A
            // submission's channel is its token's holders', as Judge0's GET is.
            _ => {}
        }
        Ok(kind)
    }

    /// Asks the tickets service whether the caller may see ticket `id`: with the caller's own
    /// credential, or as realtime for the caller's tenant when the connection came with a
    /// connection token.
    async fn may_see_ticket(&self, id: &str) -> Result<(), CmdError> {
        let message = tickets_pb::GetTicketRequest {
            id: id.to_owned(),
            tenant_id: self.caller.tenant_id.clone(),
        };
        let request = match (&self.proof, &self.state.service_credential) {
            (Proof::Credential, _) => {
                let mut request = tonic::Request::new(message);
                let value = self
                    .caller
                    .credential
                    .authorization()
                    .parse()
                    .map_err(|_| CmdError::new("unauthorized", "credential is not usable"))?;
                request.metadata_mut().insert("authorization", value);
                request
            }
            (Proof::Revocation(_), Some(credential)) => credential
                .authorize(message)
                .map_err(|e| CmdError::unavailable(e.context("realtime's tickets credential")))?,
            (Proof::Revocation(_), None) => {
                return Err(CmdError::new(
                    "unavailable",
                    "ticket channels need a connection with an access token here (realtime.tickets_credential is not set)",
                ));
            }
        };
        let mut client = TicketServiceClient::new(self.state.tickets.clone());
        match client.get_ticket(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Err(CmdError::new(
                "not_found",
                format!("no ticket {id} in your tenant"),
            )),
            Err(status)
                if matches!(
                    status.code(),
                    Code::PermissionDenied | Code::Unauthenticated
                ) =>
            {
                Err(CmdError::new("forbidden", "you may not see this ticket"))
            }
            Err(status) => Err(CmdError::unavailable(anyhow::anyhow!(
                "tickets answered {status}"
            ))),
        }
    }

    /// Joins `channel`; with `recover`, also the publications missed since that position.
    pub async fn subscribe(
        &mut self,
        channel: &str,
        recover: Option<Position>,
    ) -> Result<Subscribed, CmdError> {
        if self.subs.contains_key(channel) {
            return Err(CmdError::new(
                "already_subscribed",
                format!("already subscribed to {channel}"),
            ));
        }
        if self.subs.len() >= self.state.config.max_channels_per_connection {
            return Err(CmdError::new(
                "limit",
                format!(
                    "at most {} channels per connection",
                    self.state.config.max_channels_per_connection
                ),
            ));
        }
        let kind = self.authorize(channel).await?;
        let key = self.key(channel);
        let hub = &self.state.hub;
        hub.local.add(
            &key,
            Subscriber {
                client: self.client.clone(),
                user_id: Arc::from(self.caller.user_id.as_str()),
                tx: self.tx.clone(),
                overflow: self.overflow.clone(),
            },
        );
        // Registered first, then the stream read: a publication made in between is both in
        // the history and queued, and `accept` drops the second copy by its offset.
        let config = &self.state.config;
        let history = match &recover {
            Some(since) => {
                hub.engine
                    .open(&key, Some(since), config.recovery_max_publications)
                    .await
            }
            None => hub.engine.open(&key, None, 0).await,
        };
        let history = match history {
            Ok(h) => h,
            Err(err) => {
                hub.local.remove(&key, &self.client);
                return Err(CmdError::unavailable(err));
            }
        };
        let info = self.info();
        // Joins and leaves are told in conversations and sessions (a few people each), not
        // in tenant-wide channels, where every arrival would reach everyone.
        let joined = async {
            hub.engine.presence_add(&key, &info).await?;
            if kind.clients_publish() {
                hub.engine
                    .broadcast(&key, Message::Join(info.clone()))
                    .await?;
            }
            Ok::<(), anyhow::Error>(())
        };
        if let Err(err) = joined.await {
            hub.local.remove(&key, &self.client);
            let _ = hub.engine.presence_remove(&key, &info.client).await;
            return Err(CmdError::unavailable(err));
        }
        let History {
            publications,
            position,
            complete,
        } = history;
        // Recovered: every publication missed is here (none trimmed, no more than the limit).
        let recovered = complete
            && recover
                .as_ref()
                .is_some_and(|since| position.offset - since.offset == publications.len() as u64);
        let publications = if recovered { publications } else { Vec::new() };
        self.subs.insert(channel.to_owned(), position.clone());
        Ok(Subscribed {
            position,
            recovered,
            publications,
        })
    }

    /// Leaves `channel`.
    pub async fn unsubscribe(&mut self, channel: &str) -> Result<(), CmdError> {
        if self.subs.remove(channel).is_none() {
            return Err(not_subscribed(channel));
        }
        self.leave(channel).await;
        Ok(())
    }

    async fn leave(&self, channel: &str) {
        leave(&self.state, &self.key(channel), self.info()).await;
    }

    fn subscribed(&self, channel: &str) -> Result<Kind, CmdError> {
        if !self.subs.contains_key(channel) {
            return Err(not_subscribed(channel));
        }
        channel::parse(channel).map_err(CmdError::bad)
    }

    fn spend(&mut self) -> Result<(), CmdError> {
        self.bucket.spend("messages")
    }

    /// A chat message from this client in a conversation or session it is subscribed to.
    pub async fn send_message(
        &mut self,
        channel: &str,
        text: &str,
    ) -> Result<(Publication, String), CmdError> {
        let kind = self.subscribed(channel)?;
        let field = match &kind {
            Kind::Conversation(_) => "conversation_id",
            Kind::Session(_) => "session_id",
            _ => {
                return Err(CmdError::new(
                    "forbidden",
                    format!("clients publish only in conversations and sessions, not in {channel}"),
                ));
            }
        };
        if text.trim().is_empty() {
            return Err(CmdError::bad("text must not be empty"));
        }
        if text.len() > self.state.config.max_message_bytes {
            return Err(CmdError::new(
                "message_too_big",
                format!(
                    "text is longer than {} bytes",
                    self.state.config.max_message_bytes
                ),
            ));
        }
        self.spend()?;
        let id = channel
            .split_once(':')
            .map(|(_, id)| id)
            .unwrap_or_default();
        let data = json!({
            field: id,
            "message_id": uuid::Uuid::now_v7().to_string(),
            "user_id": self.caller.user_id,
            "text": text,
            "sent_at": agora_shared::db::rfc3339(agora_shared::db::now()),
        });
        self.state
            .hub
            .engine
            .publish(&self.key(channel), "new_message", data, Some(self.info()))
            .await
            .map_err(CmdError::unavailable)
    }

    /// Tells the channel's other clients this one started or stopped typing (never kept).
    pub async fn typing(&mut self, channel: &str, typing: bool) -> Result<(), CmdError> {
        let kind = self.subscribed(channel)?;
        if !kind.clients_publish() {
            return Err(CmdError::new(
                "forbidden",
                format!("typing is for conversations and sessions, not {channel}"),
            ));
        }
        self.spend()?;
        let message = Message::Typing {
            client: self.client.to_string(),
            user_id: self.caller.user_id.clone(),
            typing,
        };
        self.state
            .hub
            .engine
            .broadcast(&self.key(channel), message)
            .await
            .map_err(CmdError::unavailable)
    }

    /// Relays a WebRTC signal to `to_user_id`'s connections in the session, and no one else's.
    pub async fn signal(
        &mut self,
        channel: &str,
        to_user_id: &str,
        data: Value,
    ) -> Result<(), CmdError> {
        let kind = self.subscribed(channel)?;
        if !matches!(kind, Kind::Session(_)) {
            return Err(CmdError::new(
                "forbidden",
                "signals are relayed within sessions only",
            ));
        }
        if to_user_id.is_empty() {
            return Err(CmdError::bad("to_user_id must name a user"));
        }
        if serde_json::to_vec(&data).map_or(0, |v| v.len()) > self.state.config.max_message_bytes {
            return Err(CmdError::new("message_too_big", "signal is too big"));
        }
        self.spend()?;
        let message = Message::Signal {
            from_user_id: self.caller.user_id.clone(),
            to_user_id: to_user_id.to_owned(),
            data,
        };
        self.state
            .hub
            .engine
            .broadcast(&self.key(channel), message)
            .await
            .map_err(CmdError::unavailable)
    }

    /// Who is in `channel` (subscribed, or allowed to be).
    pub async fn presence(&self, channel: &str) -> Result<Vec<ClientInfo>, CmdError> {
        if !self.subs.contains_key(channel) {
            self.authorize(channel).await?;
        }
        self.state
            .hub
            .engine
            .presence(&self.key(channel))
            .await
            .map_err(CmdError::unavailable)
    }

    /// `channel`'s kept publications (after `since`), at most `limit`.
    pub async fn history(
        &self,
        channel: &str,
        since: Option<Position>,
        limit: usize,
    ) -> Result<History, CmdError> {
        if !self.subs.contains_key(channel) {
            self.authorize(channel).await?;
        }
        let history = self
            .state
            .hub
            .engine
            .history(&self.key(channel), since.as_ref(), limit)
            .await
            .map_err(CmdError::unavailable)?;
        if since.is_some() && !history.complete {
            return Err(CmdError::new(
                "unrecoverable_position",
                crate::http::LOST_POSITION,
            ));
        }
        Ok(history)
    }

    /// What to do with a push: pushes of channels the client left are skipped, and so is a
    /// publication it was already given (by its offset); one that skips offsets (or comes in
    /// another epoch) means the client missed some, and must reconnect and recover.
    pub fn accept(&mut self, push: &Delivery) -> Accept {
        if push.key.tenant != self.caller.tenant_id {
            return Accept::Skip;
        }
        let Some(last) = self.subs.get_mut(&push.key.channel) else {
            return Accept::Skip;
        };
        match &push.message {
            Message::Pub { epoch, publication } => {
                if *epoch != last.epoch {
                    Accept::Gap
                } else if publication.offset <= last.offset {
                    Accept::Skip
                } else if publication.offset == last.offset + 1 {
                    last.offset = publication.offset;
                    Accept::Deliver
                } else {
                    Accept::Gap
                }
            }
            _ => Accept::Deliver,
        }
    }

    /// Replaces the credential (a client refreshing its access token): it must be the same
    /// user in the same tenant.
    pub async fn refresh(&mut self, token: &str) -> Result<(), CmdError> {
        if token.starts_with(agora_shared::http::caller::API_KEY_PREFIX)
            || token.starts_with(crate::store::PREFIX)
        {
            return Err(CmdError::new(
                "bad_request",
                "a refresh takes an access token (API keys do not expire; connection tokens are for connecting)",
            ));
        }
        let caller = self
            .state
            .authenticator
            .authenticate(Some(&format!("Bearer {token}")), None)
            .await
            .map_err(|e| CmdError::new("unauthorized", problem_detail(&e)))?;
        if caller.user_id != self.caller.user_id || caller.tenant_id != self.caller.tenant_id {
            return Err(CmdError::new(
                "forbidden",
                "a refresh must be the connection's own user's",
            ));
        }
        self.caller = caller;
        self.proof = Proof::Credential;
        Ok(())
    }

    /// Whether the connection may stay open: its credential is still good (not expired,
    /// revoked, cut off or deleted). A check that cannot be made (Redis or auth away) is
    /// `Unknown`: the connection stays, and is checked again next time.
    pub async fn still_allowed(&self) -> Result<(), Denied> {
        match &self.proof {
            Proof::Credential => {
                let checked = self
                    .state
                    .authenticator
                    .authenticate(Some(&self.caller.credential.authorization()), None)
                    .await;
                match checked {
                    Ok(_) => Ok(()),
                    Err(AppError::Unauthorized(why)) if why.contains("expired") => {
                        Err(Denied::Expired)
                    }
                    Err(e @ (AppError::Unauthorized(_) | AppError::Forbidden(_))) => {
                        Err(Denied::Revoked(problem_detail(&e)))
                    }
                    Err(e) => Err(Denied::Unknown(problem_detail(&e))),
                }
            }
            Proof::Revocation(check) => {
                unexpired_and_unrevoked(&self.state, &self.caller, check).await
            }
        }
    }

    /// Leaves every channel (the connection is closing).
    pub async fn close(&mut self) {
        let channels: Vec<String> = self.subs.drain().map(|(c, _)| c).collect();
        for channel in channels {
            self.leave(&channel).await;
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.state.connections.fetch_sub(1, Ordering::Relaxed);
        {
            let mut per_user = self
                .state
                .per_user
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let key = (self.caller.tenant_id.clone(), self.caller.user_id.clone());
            if let Some(open) = per_user.get_mut(&key) {
                *open -= 1;
                if *open == 0 {
                    per_user.remove(&key);
                }
            }
        }
        // A connection dropped without `close` (its task ended abruptly) still leaves.
        let channels: Vec<String> = self.subs.drain().map(|(c, _)| c).collect();
        if channels.is_empty() {
            return;
        }
        let info = self.info();
        for channel in &channels {
            self.state
                .hub
                .local
                .remove(&self.key(channel), &self.client);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (state, tenant) = (self.state.clone(), self.caller.tenant_id.clone());
        runtime.spawn(async move {
            for channel in channels {
                leave(&state, &Key::new(&tenant, &channel), info.clone()).await;
            }
        });
    }
}

/// A place among the connections not yet authenticated; given back when dropped.
pub struct Pending(Arc<RealtimeState>);

impl Pending {
    /// A place, or `None` when `max_pending_connections` are waiting already.
    pub fn take(state: &Arc<RealtimeState>) -> Option<Self> {
        let before = state.pending.fetch_add(1, Ordering::AcqRel);
        if before >= state.config.max_pending_connections {
            state.pending.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(state.clone()))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes a client out of a channel: out of this process's subscribers and the presence, and
/// (in conversations and sessions) a leave to the others.
async fn leave(state: &RealtimeState, key: &Key, info: ClientInfo) {
    let hub = &state.hub;
    hub.local.remove(key, &info.client);
    let told = channel::parse(&key.channel).is_ok_and(|k| k.clients_publish());
    let left = async {
        hub.engine.presence_remove(key, &info.client).await?;
        if told {
            hub.engine
                .broadcast(key, Message::Leave(info.clone()))
                .await?;
        }
        Ok::<(), anyhow::Error>(())
    };
    if let Err(err) = left.await {
        tracing::warn!(error = %format!("{err:#}"), "leaving a channel's presence failed");
    }
}

fn not_subscribed(channel: &str) -> CmdError {
    CmdError::new("not_subscribed", format!("not subscribed to {channel}"))
}

/// What a refused credential's problem says, without the credential.
pub fn problem_detail(err: &AppError) -> String {
    err.problem().detail
}

/// Authenticates a connect frame's token: a connection token (redeemed once), an access
/// token or an API key.
pub async fn authenticate(state: &RealtimeState, token: &str) -> Result<(Caller, Proof), CmdError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(CmdError::new("unauthorized", "a token is required"));
    }
    if token.starts_with(crate::store::PREFIX) {
        let owned = token.to_owned();
        let redeemed = state
            .db
            .write(move |conn| crate::store::redeem(conn, &owned, agora_shared::db::now()))
            .await
            .map_err(|e| CmdError::unavailable(anyhow::anyhow!(problem_detail(&e))))?
            .ok_or_else(|| {
                CmdError::new(
                    "unauthorized",
                    "invalid connection token (unknown, used or expired)",
                )
            })?;
        unexpired_and_unrevoked(state, &redeemed.caller, &redeemed.revocation)
            .await
            .map_err(|why| CmdError::new("unauthorized", why.to_string()))?;
        return Ok((redeemed.caller, Proof::Revocation(redeemed.revocation)));
    }
    let caller = state
        .authenticator
        .authenticate(Some(&format!("Bearer {token}")), None)
        .await
        .map_err(|e| CmdError::new("unauthorized", problem_detail(&e)))?;
    Ok((caller, Proof::Credential))
}

/// The access token behind a connection token: not expired, not revoked or cut off.
async fn unexpired_and_unrevoked(
    state: &RealtimeState,
    caller: &Caller,
    check: &RevocationCheck,
) -> Result<(), Denied> {
    if let Credential::Jwt { exp, .. } = &caller.credential
        && *exp <= chrono::Utc::now().timestamp()
    {
        return Err(Denied::Expired);
    }
    let refused = state
        .authenticator
        .verifier
        .denylist()
        .refuses(&check.jti, &check.subjects, check.issued_ms)
        .await
        .map_err(|e| Denied::Unknown(problem_detail(&e)))?;
    if refused {
        return Err(Denied::Revoked("access token revoked".into()));
    }
    Ok(())
}
