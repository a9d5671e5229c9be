//! The `[tickets]` configuration section (`AGORA_TICKETS__*`).

use serde::{Deserialize, Serialize};

use agora_shared::config::{ConfigError, ServiceEndpoints, Validate};

/// Settings of the tickets service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TicketsConfig {
    #[serde(flatten)]
    pub endpoints: ServiceEndpoints,
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
        let err = ConfigSource::from_toml("[tickets]\nsla_check_secs = 0\n")
            .section::<TicketsConfig>("tickets")
            .unwrap_err();
        assert_eq!(err.key, "tickets.sla_check_secs");
    }
}
