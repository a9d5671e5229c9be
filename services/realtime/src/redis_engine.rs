//! Channel state in Redis, for replicas (`realtime.engine = "redis"`): each channel's stream
//! position (epoch and last offset, assigned in one script so that replicas never hand out the
//! same offset), its last publications, and its presence (entries each replica refreshes, so
//! that a replica's clients leave when it dies). Every publication and ephemeral message is
//! published on one pub/sub channel that every replica listens to, and handed to its local
//! subscribers. While Redis is unreachable a replica keeps its clients; publications fail, and
//! a client that missed some once it is back is told to reconnect and recover (4009).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use agora_shared::redis::Redis;

use crate::{
    channel::Key,
    hub::{
        ClientInfo, Delivery, Engine, History, Local, Message, Position, Publication, Retention,
        after, new_epoch,
    },
};

/// How long a presence entry lives unless its replica refreshes it (every third of it).
const PRESENCE_TTL: Duration = Duration::from_secs(30);

/// Appends a publication: KEYS = meta, history, fan-out channel; ARGV = a new epoch (used when
/// the stream has none), size, ttl, meta ttl, the publication's fields as a JSON object
/// without its offset, the channel key as JSON. Returns {offset, epoch}.
const PUBLISH: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
end
local top = redis.call('HINCRBY', KEYS[1], 'top', 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
local rest = string.sub(ARGV[5], 2)
local entry = '{"offset":' .. top .. ',' .. rest
redis.call('RPUSH', KEYS[2], entry)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', KEYS[3], '{"key":' .. ARGV[6] .. ',"message":{"kind":"pub","epoch":"' .. epoch .. '","offset":' .. top .. ',' .. rest .. '}')
return {top, epoch}
"#;

/// Reads a stream: KEYS = meta, history; ARGV = a new epoch, meta ttl, history ttl, the
/// offset publications are wanted after (-1: none) and its epoch, limit, history size,
/// whether to make the stream when there is none (`1`, a subscriber) or not (`0`, a read).
/// Returns {epoch, top, entries}: the newest `limit` kept, or the first `limit` kept after
/// the offset (nothing when the epoch is another). A stream made by a subscriber and never
/// published to lives as long as a publication would, or as its subscribers' presence.
const READ: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  if ARGV[8] == '0' then
    return {'', 0, {}}
  end
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
local top = tonumber(redis.call('HGET', KEYS[1], 'top'))
if top > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
local since = tonumber(ARGV[4])
local limit = math.min(tonumber(ARGV[6]), tonumber(ARGV[7]))
if limit <= 0 then
  return {epoch, top, {}}
end
local first = -limit
local last = -1
if since >= 0 then
  if ARGV[5] ~= epoch or since >= top then
    return {epoch, top, {}}
  end
  local missed = math.min(top - since, tonumber(ARGV[7]))
  first = -missed
  last = math.min(-missed + limit - 1, -1)
end
return {epoch, top, redis.call('LRANGE', KEYS[2], first, last)}
"#;

/// Presence now: KEYS = scores, infos; ARGV = now (ms). Drops expired entries; returns the
/// infos of the rest.
const PRESENCE: &str = r#"
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for i = 1, #dead, 500 do
  local part = {unpack(dead, i, math.min(i + 499, #dead))}
  redis.call('ZREM', KEYS[1], unpack(part))
  redis.call('HDEL', KEYS[2], unpack(part))
end
local live = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for i = 1, #live, 500 do
  local part = {unpack(live, i, math.min(i + 499, #live))}
  for _, v in ipairs(redis.call('HMGET', KEYS[2], unpack(part))) do
    if v then table.insert(out, v) end
  end
end
return out
"#;

/// A kept publication, with when it was made (ms).
#[derive(Deserialize)]
struct Entry {
    #[serde(flatten)]
    publication: Publication,
    t: i64,
}

pub struct RedisEngine {
    redis: Redis,
    local: Arc<Local>,
    retention: Retention,
    publish: redis::Script,
    read: redis::Script,
    presence: redis::Script,
    /// This replica's presence entries, refreshed while they last.
    mine: Mutex<HashMap<(Key, String), ClientInfo>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn failed(what: &str, err: String) -> anyhow::Error {
    anyhow::anyhow!("redis {what}: {err}")
}

impl RedisEngine {
    pub fn new(redis: Redis, local: Arc<Local>, retention: Retention) -> Self {
        Self {
            redis,
            local,
            retention,
            publish: redis::Script::new(PUBLISH),
            read: redis::Script::new(READ),
            presence: redis::Script::new(PRESENCE),
            mine: Mutex::new(HashMap::new()),
        }
    }

    fn keys(&self, key: &Key) -> (String, String, String, String) {
        // One hash slot per channel (Redis Cluster): the braces.
        let base = self.redis.key(&format!("rt:{{{key}}}"));
        (
            format!("{base}:meta"),
            format!("{base}:hist"),
            format!("{base}:pres"),
            format!("{base}:info"),
        )
    }

    fn fanout(&self) -> String {
        self.redis.key("rt:fanout")
    }

    async fn fan_out(&self, delivery: &Delivery) -> anyhow::Result<()> {
        let (channel, payload) = (self.fanout(), serde_json::to_string(delivery)?);
        self.redis
            .run(|mut conn| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
            .map_err(|e| failed("publish", e))
    }

    /// Writes presence entries (and keeps their channels' positions alive meanwhile), in one
    /// round trip.
    async fn put_presence(&self, entries: &[(Key, ClientInfo)]) -> anyhow::Result<()> {
        let expires = now_ms() + PRESENCE_TTL.as_millis() as i64;
        let ttl = PRESENCE_TTL.as_secs() as i64 * 2;
        let mut pipe = redis::pipe();
        for (key, info) in entries {
            let (meta, _, scores, infos) = self.keys(key);
            pipe.zadd(&scores, &info.client, expires)
                .hset(&infos, &info.client, serde_json::to_string(info)?)
                .expire(&scores, ttl)
                .expire(&infos, ttl)
                // The stream's position lives while someone is subscribed; GT never shortens
                // what a publication gave it.
                .cmd("EXPIRE")
                .arg(&meta)
                .arg(ttl)
                .arg("GT")
                .ignore();
        }
        self.redis
            .run(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
            .map_err(|e| failed("presence", e))
    }

    async fn read_stream(
        &self,
        key: &Key,
        since: Option<&Position>,
        limit: usize,
        create: bool,
    ) -> anyhow::Result<History> {
        let (meta, hist, ..) = self.keys(key);
        let script = self.read.clone();
        let r = self.retention;
        let after_offset = since.map_or(-1, |s| s.offset.min(i64::MAX as u64) as i64);
        let since_epoch = since.map(|s| s.epoch.clone()).unwrap_or_default();
        let (epoch, top, entries): (String, u64, Vec<String>) = self
            .redis
            .run(|mut conn| async move {
                script
                    .key(meta)
                    .key(hist)
                    .arg(new_epoch())
                    .arg(r.meta_ttl.as_secs().max(1))
                    .arg(r.ttl.as_secs().max(1))
                    .arg(after_offset)
                    .arg(since_epoch)
                    .arg(limit)
                    .arg(r.size)
                    .arg(if create { 1 } else { 0 })
                    .invoke_async(&mut conn)
                    .await
            })
            .await
            .map_err(|e| failed("history", e))?;
        let oldest = now_ms() - self.retention.ttl.as_millis() as i64;
        let kept: Vec<Publication> = entries
            .iter()
            .filter_map(|e| serde_json::from_str::<Entry>(e).ok())
            .filter(|e| e.t >= oldest)
            .map(|e| e.publication)
            .collect();
        Ok(after(
            kept.iter(),
            Position { offset: top, epoch },
            since,
            limit,
        ))
    }

    /// Deletes one presence entry (whether or not this replica still holds it).
    async fn remove_presence(&self, key: &Key, client: &str) -> anyhow::Result<()> {
        let (_, _, scores, infos) = self.keys(key);
        let client = client.to_owned();
        self.redis
            .run(|mut conn| async move {
                redis::pipe()
                    .atomic()
                    .zrem(&scores, &client)
                    .hdel(&infos, &client)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
            .map_err(|e| failed("presence", e))
    }

    /// Hands every replica's messages to this one's subscribers, and keeps this replica's
    /// presence entries alive, until `shutdown`; reconnects after failures.
    pub async fn listen(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let refresher = {
            let engine = self.clone();
            let stop = shutdown.clone();
            async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(PRESENCE_TTL / 3) => {}
                        _ = stop.cancelled() => return,
                    }
                    let keys: Vec<(Key, String)> = engine
                        .mine
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .keys()
                        .cloned()
                        .collect();
                    for batch in keys.chunks(200) {
                        // Entries that left since the list was taken are not written back.
                        let entries: Vec<(Key, ClientInfo)> = {
                            let mine = engine.mine.lock().unwrap_or_else(|p| p.into_inner());
                            batch
                                .iter()
                                .filter_map(|k| mine.get(k).map(|info| (k.0.clone(), info.clone())))
                                .collect()
                        };
                        if let Err(err) = engine.put_presence(&entries).await {
                            tracing::warn!(error = %format!("{err:#}"), "refreshing presence failed");
                            continue;
                        }
                        // One that left while the batch was being written may have been
                        // written back after its removal: removed again.
                        let gone: Vec<(Key, String)> = {
                            let mine = engine.mine.lock().unwrap_or_else(|p| p.into_inner());
                            entries
                                .iter()
                                .map(|(k, info)| (k.clone(), info.client.clone()))
                                .filter(|entry| !mine.contains_key(entry))
                                .collect()
                        };
                        for (key, client) in gone {
                            let _ = engine.remove_presence(&key, &client).await;
                        }
                    }
                }
            }
        };
        tokio::spawn(refresher);
        loop {
            let session = async {
                let mut pubsub = self.redis.pubsub().await?;
                pubsub.subscribe(self.fanout()).await?;
                tracing::info!("realtime listening to its replicas");
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let Ok(payload) = msg.get_payload::<String>() else {
                        continue;
                    };
                    match serde_json::from_str::<Delivery>(&payload) {
                        Ok(delivery) => self.local.deliver(delivery),
                        Err(err) => {
                            tracing::warn!(error = %err, "unreadable realtime fan-out message")
                        }
                    }
                }
                Ok::<(), redis::RedisError>(())
            };
            tokio::select! {
                ended = session => if let Err(err) = ended {
                    tracing::warn!(error = %err, "realtime fan-out lost; reconnecting");
                },
                _ = shutdown.cancelled() => return Ok(()),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }
}

#[async_trait]
impl Engine for RedisEngine {
    async fn publish(
        &self,
        key: &Key,
        event: &str,
        data: Value,
        info: Option<ClientInfo>,
    ) -> anyhow::Result<(Publication, String)> {
        let (meta, hist, ..) = self.keys(key);
        let mut body = json!({ "event": event, "data": data, "t": now_ms() });
        if let Some(info) = &info {
            body["info"] = json!(info);
        }
        let body = body.to_string();
        let key_json = serde_json::to_string(key)?;
        let r = self.retention;
        let script = self.publish.clone();
        let fanout = self.fanout();
        let (offset, epoch): (u64, String) = self
            .redis
            .run(|mut conn| async move {
                script
                    .key(meta)
                    .key(hist)
                    .key(fanout)
                    .arg(new_epoch())
                    .arg(r.size)
                    .arg(r.ttl.as_secs().max(1))
                    .arg(r.meta_ttl.as_secs().max(1))
                    .arg(body)
                    .arg(key_json)
                    .invoke_async(&mut conn)
                    .await
            })
            .await
            .map_err(|e| failed("publish", e))?;
        Ok((
            Publication {
                offset,
                event: event.to_owned(),
                data,
                info,
            },
            epoch,
        ))
    }

    async fn history(
        &self,
        key: &Key,
        since: Option<&Position>,
        limit: usize,
    ) -> anyhow::Result<History> {
        self.read_stream(key, since, limit, false).await
    }

    async fn open(
        &self,
        key: &Key,
        since: Option<&Position>,
        limit: usize,
    ) -> anyhow::Result<History> {
        self.read_stream(key, since, limit, true).await
    }

    async fn presence_add(&self, key: &Key, info: &ClientInfo) -> anyhow::Result<()> {
        self.put_presence(std::slice::from_ref(&(key.clone(), info.clone())))
            .await?;
        self.mine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((key.clone(), info.client.clone()), info.clone());
        Ok(())
    }

    async fn presence_remove(&self, key: &Key, client: &str) -> anyhow::Result<()> {
        self.mine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(key.clone(), client.to_owned()));
        self.remove_presence(key, client).await
    }

    async fn presence(&self, key: &Key) -> anyhow::Result<Vec<ClientInfo>> {
        let (_, _, scores, infos) = self.keys(key);
        let script = self.presence.clone();
        let values: Vec<String> = self
            .redis
            .run(|mut conn| async move {
                script
                    .key(scores)
                    .key(infos)
                    .arg(now_ms())
                    .invoke_async(&mut conn)
                    .await
            })
            .await
            .map_err(|e| failed("presence", e))?;
        Ok(values
            .iter()
            .filter_map(|v| serde_json::from_str(v).ok())
            .collect())
    }

    async fn broadcast(&self, key: &Key, message: Message) -> anyhow::Result<()> {
        self.fan_out(&Delivery {
            key: key.clone(),
            message,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fan-out message the publish script assembles reads back as the delivery it is.
    #[test]
    fn scripted_publication_reads_back() {
        let key = Key::new("t1", "session:x");
        let body = json!({"event": "new_message", "data": {"text": "hi"}, "t": 5,
            "info": {"client": "c", "user_id": "u", "transport": "native"}})
        .to_string();
        let rest = &body[1..];
        let assembled = format!(
            r#"{{"key":{},"message":{{"kind":"pub","epoch":"E","offset":7,{rest}}}"#,
            serde_json::to_string(&key).unwrap()
        );
        let delivery: Delivery = serde_json::from_str(&assembled).expect(&assembled);
        assert_eq!(delivery.key, key);
        let Message::Pub { epoch, publication } = delivery.message else {
            panic!("not a publication")
        };
        assert_eq!(epoch, "E");
        assert_eq!(publication.offset, 7);
        assert_eq!(publication.data, json!({"text": "hi"}));
        assert_eq!(publication.info.unwrap().user_id, "u");
        let entry: Entry = serde_json::from_str(&format!(r#"{{"offset":7,{rest}"#)).expect("entry");
        assert_eq!((entry.t, entry.publication.offset), (5, 7));
    }
}
