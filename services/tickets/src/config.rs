//! The `[tickets]` configuration section (`AGORA_TICKETS__*`).

use serde::{Deserialize, Serialize};

use agora_shared::config::{ConfigError, ServiceEndpoints, Validate};

/// Settings of the tickets service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TicketsConfig {
    #[serde(flatten)]
    pub endpoints: ServiceEndpoints,
    /// The auth service's HTTP base URL (JWKS) and gRPC address (API keys, teams).
    pub auth_url: String,
    pub auth_grpc: String,
    /// `iss` and `aud` accepted on access tokens.
    pub issuer: String,
    pub audience: String,
    pub jwks_refetch_secs: u64,
    pub api_key_cache_secs: u64,
    /// How often overdue tickets are looked for (each gets one `ticket.sla_breached`).
    pub sla_check_secs: u64,
    /// How long authors may edit or delete their comments.
    pub comment_edit_secs: u64,
    /// actix worker threads for this service.
    pub http_workers: usize,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        Self {
            endpoints: ServiceEndpoints::new(crate::PORTS.0, crate::PORTS.1),
            auth_url: "http://127.0.0.1:8081".into(),
            auth_grpc: "127.0.0.1:9081".into(),
            issuer: "agora".into(),
            audience: "agora".into(),
            jwks_refetch_secs: 10,
            api_key_cache_secs: 10,
            sla_check_secs: 30,
            comment_edit_secs: 15 * 60,
            http_workers: 2,
        }
    }
}

impl Validate for TicketsConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        self.endpoints.validate(prefix)?;
        if !(self.auth_url.starts_with("http://") || self.auth_url.starts_with("https://")) {
            return Err(ConfigError::new(
                key("auth_url"),
                "must be an http:// or https:// URL",
            ));
        }
        if self.auth_grpc.trim().is_empty() {
            return Err(ConfigError::new(key("auth_grpc"), "must not be empty"));
        }
        if self.sla_check_secs == 0 {
            return Err(ConfigError::new(
                key("sla_check_secs"),
                "must be at least 1",
            ));
        }
        if self.http_workers == 0 {
            return Err(ConfigError::new(key("http_workers"), "must be at least 1"));
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
        let cfg: TicketsConfig = ConfigSource::from_toml("").section("tickets").unwrap();
        assert_eq!(cfg.endpoints.http_addr.port(), 8082);
        assert_eq!(cfg.comment_edit_secs, 900);
        let err = ConfigSource::from_toml("[tickets]\nauth_url = \"ftp://x\"\n")
            .section::<TicketsConfig>("tickets")
            .unwrap_err();
        assert_eq!(err.key, "tickets.auth_url");
    }
}
