//! The hub every connection of this process goes through, whichever its protocol: the local
//! subscribers of each channel, and the engine that keeps channels' history and presence and
//! carries publications to every process's subscribers (in memory for one process; Redis for
//! replicas, see `redis_engine`).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::channel::Key;

/// Who a client is, as others in a channel see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub client: String,
    pub user_id: String,
    /// `native` or `socket.io`.
    pub transport: String,
}

/// One publication of a channel's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    pub offset: u64,
    /// Its event name, as Socket.IO clients receive it.
    pub event: String,
    pub data: Value,
    /// The client that published it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<ClientInfo>,
}

/// Where a channel's stream is: its last offset, in its epoch (a new epoch when the stream was
/// lost and started again, so that offsets of the old one are never taken for the new one's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub offset: u64,
    pub epoch: String,
}

impl Position {
    /// Where a channel never opened is: offset 0 of no epoch.
    pub fn none() -> Self {
        Self {
            offset: 0,
            epoch: String::new(),
        }
    }
}

/// What reaches a channel's subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// A publication, in its stream's epoch.
    Pub {
        epoch: String,
        #[serde(flatten)]
        publication: Publication,
    },
    Join(ClientInfo),
    Leave(ClientInfo),
    /// Ephemeral, never kept; not sent back to the typing client.
    Typing {
        client: String,
        user_id: String,
        typing: bool,
    },
    /// WebRTC signalling: only to `to_user_id`'s connections in the channel.
    Signal {
        from_user_id: String,
        to_user_id: String,
        data: Value,
    },
}

/// A message for one channel, as handed to each subscriber's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub key: Key,
    pub message: Message,
}

pub type Push = Arc<Delivery>;

/// One connection's place in a channel.
pub struct Subscriber {
    pub client: Arc<str>,
    pub user_id: Arc<str>,
    pub tx: mpsc::Sender<Push>,
    /// Cancelled when the connection cannot keep up (its queue is full): it is closed.
    pub overflow: CancellationToken,
}

/// This process's subscribers, per channel, in shards: a delivery to one channel never waits
/// for one to another (unless they share a shard).
pub struct Local {
    shards: Vec<Mutex<Channels>>,
    hasher: RandomState,
}

type Channels = HashMap<Key, HashMap<Arc<str>, Subscriber>>;

impl Default for Local {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl Local {
    fn shard(&self, key: &Key) -> std::sync::MutexGuard<'_, Channels> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `subscriber`; false when its client is already there.
    pub fn add(&self, key: &Key, subscriber: Subscriber) -> bool {
        let mut channels = self.shard(key);
        let subs = channels.entry(key.clone()).or_default();
        if subs.contains_key(&subscriber.client) {
            return false;
        }
        subs.insert(subscriber.client.clone(), subscriber);
        true
    }

    pub fn remove(&self, key: &Key, client: &str) {
        let mut channels = self.shard(key);
        if let Some(subs) = channels.get_mut(key) {
            subs.remove(client);
            if subs.is_empty() {
                channels.remove(key);
            }
        }
    }

    /// Hands `delivery` to each subscriber it is for, without waiting: a subscriber whose queue
    /// is full is told to close (a slow client never slows the channel).
    pub fn deliver(&self, delivery: Delivery) {
        let channels = self.shard(&delivery.key);
        let Some(subs) = channels.get(&delivery.key) else {
            return;
        };
        let push = Arc::new(delivery);
        for sub in subs.values() {
            let wanted = match &push.message {
                Message::Typing { client, .. } => **client != *sub.client,
                Message::Join(info) | Message::Leave(info) => *info.client != *sub.client,
                Message::Signal { to_user_id, .. } => **to_user_id == *sub.user_id,
                Message::Pub { .. } => true,
            };
            if wanted && sub.tx.try_send(push.clone()).is_err() {
                sub.overflow.cancel();
            }
        }
    }

    /// Subscriptions held here, over all channels.
    pub fn subscriptions(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let channels = shard.lock().unwrap_or_else(|p| p.into_inner());
                channels.values().map(HashMap::len).sum::<usize>()
            })
            .sum()
    }
}

/// A channel's kept publications after a position.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub publications: Vec<Publication>,
    pub position: Position,
    /// Whether the position asked for is still in the stream: same epoch, and nothing after it
    /// trimmed (the publications may still stop at the limit).
    pub complete: bool,
}

/// Keeps channels' streams and presence, and carries messages to subscribers everywhere.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Appends a publication to the channel's stream (offset assigned atomically) and
    /// delivers it to every subscriber.
    async fn publish(
        &self,
        key: &Key,
        event: &str,
        data: Value,
        info: Option<ClientInfo>,
    ) -> anyhow::Result<(Publication, String)>;

    /// Publications after `since` (all kept, without one), oldest first, at most `limit`:
    /// the newest `limit` without `since`, the first `limit` after it with one. Reading keeps
    /// nothing: a channel never opened is at offset 0 of no epoch (`""`).
    async fn history(
        &self,
        key: &Key,
        since: Option<&Position>,
        limit: usize,
    ) -> anyhow::Result<History>;

    /// `history` for a subscriber: the stream is made (with its epoch) when there is none,
    /// so that the position the subscriber starts from is one it can recover from.
    async fn open(
        &self,
        key: &Key,
        since: Option<&Position>,
        limit: usize,
    ) -> anyhow::Result<History>;

    async fn presence_add(&self, key: &Key, info: &ClientInfo) -> anyhow::Result<()>;
    async fn presence_remove(&self, key: &Key, client: &str) -> anyhow::Result<()>;
    async fn presence(&self, key: &Key) -> anyhow::Result<Vec<ClientInfo>>;

    /// Delivers an ephemeral message (join, leave, typing, signal) to every subscriber.
    async fn broadcast(&self, key: &Key, message: Message) -> anyhow::Result<()>;
}

/// How long channels keep what they keep.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub size: usize,
    pub ttl: Duration,
    pub meta_ttl: Duration,
}

/// 128 random bits, hex: client ids and Socket.IO session ids (which let whoever knows one
/// post into its session, so they are never guessable).
pub fn random_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A new epoch: random, short, URL-safe.
pub fn new_epoch() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..8)
        .map(|_| {
            let i = rng.gen_range(0..62u8);
            char::from(match i {
                0..=9 => b'0' + i,
                10..=35 => b'a' + i - 10,
                _ => b'A' + i - 36,
            })
        })
        .collect()
}

/// Picks publications after `since` out of a stream holding `kept` (oldest first) up to
/// `position`: the newest `limit` without `since`, the first `limit` after it with one.
pub fn after<'a>(
    kept: impl DoubleEndedIterator<Item = &'a Publication> + ExactSizeIterator,
    position: Position,
    since: Option<&Position>,
    limit: usize,
) -> History {
    match since {
        None => {
            let skip = kept.len().saturating_sub(limit);
            History {
                publications: kept.skip(skip).cloned().collect(),
                position,
                complete: true,
            }
        }
        Some(since) => {
            if since.epoch != position.epoch || since.offset > position.offset {
                return History {
                    publications: Vec::new(),
                    position,
                    complete: false,
                };
            }
            let mut missed = kept.filter(|p| p.offset > since.offset).peekable();
            // Complete when nothing after `since` was trimmed: the first kept one follows it
            // directly (or nothing was published since).
            let complete = since.offset == position.offset
                || missed.peek().is_some_and(|p| p.offset == since.offset + 1);
            History {
                publications: missed.take(limit).cloned().collect(),
                position,
                complete,
            }
        }
    }
}

struct Stream {
    epoch: String,
    top: u64,
    kept: VecDeque<(Instant, Publication)>,
    presence: BTreeMap<String, ClientInfo>,
    touched: Instant,
}

impl Stream {
    fn new() -> Self {
        Self {
            epoch: new_epoch(),
            top: 0,
            kept: VecDeque::new(),
            presence: BTreeMap::new(),
            touched: Instant::now(),
        }
    }

    fn trim(&mut self, retention: &Retention, now: Instant) {
        while self.kept.len() > retention.size {
            self.kept.pop_front();
        }
        while self
            .kept
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > retention.ttl)
        {
            self.kept.pop_front();
        }
    }
}

const SHARDS: usize = 16;

/// Everything in this process: the embedded platform's engine.
pub struct MemoryEngine {
    local: Arc<Local>,
    retention: Retention,
    shards: Vec<Mutex<HashMap<Key, Stream>>>,
    hasher: RandomState,
}

impl MemoryEngine {
    pub fn new(local: Arc<Local>, retention: Retention) -> Self {
        Self {
            local,
            retention,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &Key) -> std::sync::MutexGuard<'_, HashMap<Key, Stream>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops expired publications and forgets streams nobody used for `meta_ttl`.
    pub fn sweep(&self) {
        let now = Instant::now();
        for shard in &self.shards {
            let mut streams = shard.lock().unwrap_or_else(|p| p.into_inner());
            streams.retain(|_, s| {
                s.trim(&self.retention, now);
                // A stream never published to (only read, or subscribed to and left) is kept
                // no longer than a publication would be.
                let keep_for = match s.top {
                    0 => self.retention.ttl,
                    _ => self.retention.meta_ttl,
                };
                !s.kept.is_empty()
                    || !s.presence.is_empty()
                    || now.duration_since(s.touched) < keep_for
            });
        }
    }

    fn read(&self, key: &Key, since: Option<&Position>, limit: usize, create: bool) -> History {
        let now = Instant::now();
        let mut streams = self.shard(key);
        if !create && !streams.contains_key(key) {
            return after(std::iter::empty(), Position::none(), since, limit);
        }
        let stream = streams.entry(key.clone()).or_insert_with(Stream::new);
        stream.trim(&self.retention, now);
        stream.touched = now;
        let position = Position {
            offset: stream.top,
            epoch: stream.epoch.clone(),
        };
        after(stream.kept.iter().map(|(_, p)| p), position, since, limit)
    }

    /// Streams held (for tests and metrics).
    pub fn streams(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

#[async_trait]
impl Engine for MemoryEngine {
    async fn publish(
        &self,
        key: &Key,
        event: &str,
        data: Value,
        info: Option<ClientInfo>,
    ) -> anyhow::Result<(Publication, String)> {
        let now = Instant::now();
        let mut streams = self.shard(key);
        let stream = streams.entry(key.clone()).or_insert_with(Stream::new);
        stream.top += 1;
        stream.touched = now;
        let publication = Publication {
            offset: stream.top,
            event: event.to_owned(),
            data,
            info,
        };
        stream.kept.push_back((now, publication.clone()));
        stream.trim(&self.retention, now);
        let epoch = stream.epoch.clone();
        // Delivered under the stream's lock: subscribers see offsets in order.
        self.local.deliver(Delivery {
            key: key.clone(),
            message: Message::Pub {
                epoch: epoch.clone(),
                publication: publication.clone(),
            },
        });
        Ok((publication, epoch))
    }

    async fn history(
        &self,
        key: &Key,
        since: Option<&Position>,
        limit: usize,
    ) -> anyhow::Result<History> {
        Ok(self.read(key, since, limit, false))
    }

    async fn open(
        &self,
        key: &Key,
        since: Option<&Position>,
        limit: usize,
    ) -> anyhow::Result<History> {
        Ok(self.read(key, since, limit, true))
    }

    async fn presence_add(&self, key: &Key, info: &ClientInfo) -> anyhow::Result<()> {
        let mut streams = self.shard(key);
        let stream = streams.entry(key.clone()).or_insert_with(Stream::new);
        stream.presence.insert(info.client.clone(), info.clone());
        Ok(())
    }

    async fn presence_remove(&self, key: &Key, client: &str) -> anyhow::Result<()> {
        let mut streams = self.shard(key);
        if let Some(stream) = streams.get_mut(key) {
            stream.presence.remove(client);
            stream.touched = Instant::now();
        }
        Ok(())
    }

    async fn presence(&self, key: &Key) -> anyhow::Result<Vec<ClientInfo>> {
        let streams = self.shard(key);
        Ok(streams
            .get(key)
            .map(|s| s.presence.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn broadcast(&self, key: &Key, message: Message) -> anyhow::Result<()> {
        self.local.deliver(Delivery {
            key: key.clone(),
            message,
        });
        Ok(())
    }
}

/// This process's subscribers and the engine behind them.
#[derive(Clone)]
pub struct Hub {
    pub local: Arc<Local>,
    pub engine: Arc<dyn Engine>,
}
