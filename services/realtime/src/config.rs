//! The `[realtime]` configuration section (`AGORA_REALTIME__*`).

use serde::{Deserialize, Serialize};

use agora_shared::config::{ConfigError, Secret, ServiceEndpoints, Validate};

/// Settings of the realtime service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RealtimeConfig {
    #[serde(flatten)]
    pub endpoints: ServiceEndpoints,
    /// The tickets service's gRPC address (whether a caller may see `ticket:<id>`).
    pub tickets_grpc: String,
    /// A platform admin's API key (or token) for asking tickets about a ticket on behalf of a
    /// connection made with a connection token (which carries no credential to forward).
    /// Embedded mode issues its own.
    #[serde(skip_serializing)]
    pub tickets_credential: Option<Secret>,
    /// Where channels keep history and presence and publications fan out: `memory` (one
    /// process) or `redis` (replicas sharing the `redis.url` Redis).
    pub engine: Engine,
    /// Publications kept per channel, and for how long.
    pub history_size: usize,
    pub history_ttl_secs: u64,
    /// How long a channel's stream position (offset and epoch) outlives its last publication,
    /// so that a client coming back later still learns whether it missed anything.
    pub history_meta_ttl_secs: u64,
    /// Most publications a reconnecting client is given; more missed means `recovered: false`.
    pub recovery_max_publications: usize,
    /// Largest frame (and publication) a client may send, in bytes.
    pub max_message_bytes: usize,
    /// Channels one connection may be subscribed to at once.
    pub max_channels_per_connection: usize,
    /// Client publishes (and typing notices) per connection: a burst, refilled per second.
    pub client_publish_burst: u32,
    pub client_publish_per_sec: u32,
    /// Every other command (subscribe, presence, history, refresh, ping...) per connection:
    /// a burst, refilled per second.
    pub client_command_burst: u32,
    pub client_commands_per_sec: u32,
    /// Open connections of one user (both protocols, this process); more are refused.
    pub max_connections_per_user: usize,
    /// Connections and Socket.IO sessions not yet authenticated (this process); more are
    /// refused with 503 until some connect or time out (10 s).
    pub max_pending_connections: usize,
    /// Pushes waiting for one slow client before it is disconnected (code 4008).
    pub send_queue: usize,
    /// Life of a connection token.
    pub connection_token_ttl_secs: u64,
    /// How often an open connection's credential is checked again (revocations, demotions,
    /// a deleted API key end it).
    pub recheck_secs: u64,
    /// WebSocket pings (and Socket.IO's pingInterval); a client silent for twice as long is
    /// disconnected.
    pub ping_secs: u64,
    /// actix worker threads for this service.
    pub http_workers: usize,
}

/// Where channel state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Memory,
    Redis,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            endpoints: ServiceEndpoints::new(crate::PORTS.0, crate::PORTS.1),
            tickets_grpc: "127.0.0.1:9082".into(),
            tickets_credential: None,
            engine: Engine::Memory,
            history_size: 100,
            history_ttl_secs: 300,
            history_meta_ttl_secs: 86_400,
            recovery_max_publications: 300,
            max_message_bytes: 64 * 1024,
            max_channels_per_connection: 128,
            client_publish_burst: 20,
            client_publish_per_sec: 5,
            client_command_burst: 50,
            client_commands_per_sec: 10,
            max_connections_per_user: 100,
            max_pending_connections: 10_000,
            send_queue: 1024,
            connection_token_ttl_secs: 60,
            recheck_secs: 60,
            ping_secs: 25,
            http_workers: 2,
        }
    }
}

impl RealtimeConfig {
    /// How many publications a history read gives: what was asked (none: all kept), between
    /// 1 and `history_size`.
    pub fn history_limit(&self, asked: Option<usize>) -> usize {
        asked
            .unwrap_or(self.history_size)
            .clamp(1, self.history_size)
    }
}

impl Validate for RealtimeConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        self.endpoints.validate(prefix)?;
        if self.tickets_grpc.trim().is_empty() {
            return Err(ConfigError::new(key("tickets_grpc"), "must not be empty"));
        }
        let at_least_one: [(&str, u64); 16] = [
            ("history_size", self.history_size as u64),
            ("history_ttl_secs", self.history_ttl_secs),
            ("history_meta_ttl_secs", self.history_meta_ttl_secs),
            (
                "recovery_max_publications",
                self.recovery_max_publications as u64,
            ),
            (
                "max_channels_per_connection",
                self.max_channels_per_connection as u64,
            ),
            ("client_publish_burst", u64::from(self.client_publish_burst)),
            (
                "client_publish_per_sec",
                u64::from(self.client_publish_per_sec),
            ),
            ("client_command_burst", u64::from(self.client_command_burst)),
            (
                "client_commands_per_sec",
                u64::from(self.client_commands_per_sec),
            ),
            (
                "max_connections_per_user",
                self.max_connections_per_user as u64,
            ),
            (
                "max_pending_connections",
                self.max_pending_connections as u64,
            ),
            ("send_queue", self.send_queue as u64),
            ("connection_token_ttl_secs", self.connection_token_ttl_secs),
            ("recheck_secs", self.recheck_secs),
            ("ping_secs", self.ping_secs),
            ("http_workers", self.http_workers as u64),
        ];
        if let Some((name, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::new(key(name), "must be at least 1"));
        }
        if self.max_message_bytes < 1024 {
            return Err(ConfigError::new(
                key("max_message_bytes"),
                "must be at least 1024",
            ));
        }
        if self.history_meta_ttl_secs < self.history_ttl_secs {
            return Err(ConfigError::new(
                key("history_meta_ttl_secs"),
                "must be at least history_ttl_secs",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_shared::config::ConfigSource;

    #[test]
    fn defaults_and_bad_values() {
        let cfg: RealtimeConfig = ConfigSource::from_toml("").section("realtime").unwrap();
        assert_eq!(cfg.endpoints.http_addr.port(), crate::PORTS.0);
        assert_eq!(cfg.engine, Engine::Memory);
        let err = ConfigSource::from_toml("[realtime]\nhistory_size = 0\n")
            .section::<RealtimeConfig>("realtime")
            .unwrap_err();
        assert_eq!(err.key, "realtime.history_size");
        let err = ConfigSource::from_toml("[realtime]\nengine = \"etcd\"\n")
            .section::<RealtimeConfig>("realtime")
            .unwrap_err();
        assert_eq!(err.key, "realtime.engine");
    }
}
