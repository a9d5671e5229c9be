//! The `[analytics]` configuration section (`AGORA_ANALYTICS__*`).

use serde::{Deserialize, Serialize};

use agora_shared::config::{ConfigError, Secret, ServiceEndpoints, Validate};

/// Settings of the analytics service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalyticsConfig {
    #[serde(flatten)]
    pub endpoints: ServiceEndpoints,
    /// The tickets service's gRPC address (backfill and rebuild read tickets from it).
    pub tickets_grpc: String,
    /// A platform admin's API key (or token) for reading every tenant's tickets when
    /// backfilling. Embedded mode issues its own; without one, distributed mode skips the
    /// first-start backfill.
    #[serde(skip_serializing)]
    pub tickets_credential: Option<Secret>,
    /// Backfill from tickets when the store has never been backfilled.
    pub backfill_on_start: bool,
    /// Prometheus endpoints read for `/dashboard/performance` (the gateway's and services').
    /// Empty: this process's own `/metrics`, which in embedded mode covers every service and
    /// the gateway (they share one registry).
    pub metrics_targets: Vec<String>,
    pub metrics_scrape_secs: u64,
    /// actix worker threads for this service.
    pub http_workers: usize,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            endpoints: ServiceEndpoints::new(crate::PORTS.0, crate::PORTS.1),
            tickets_grpc: "127.0.0.1:9082".into(),
            tickets_credential: None,
            backfill_on_start: true,
            metrics_targets: Vec::new(),
            metrics_scrape_secs: 15,
            http_workers: 2,
        }
    }
}

impl Validate for AnalyticsConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        self.endpoints.validate(prefix)?;
        let is_url = |u: &str| u.starts_with("http://") || u.starts_with("https://");
        if self.tickets_grpc.trim().is_empty() {
            return Err(ConfigError::new(key("tickets_grpc"), "must not be empty"));
        }
        if let Some(bad) = self.metrics_targets.iter().find(|u| !is_url(u)) {
            return Err(ConfigError::new(
                key("metrics_targets"),
                format!("{bad:?} is not an http:// or https:// URL"),
            ));
        }
        if self.metrics_scrape_secs == 0 {
            return Err(ConfigError::new(
                key("metrics_scrape_secs"),
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
        let cfg: AnalyticsConfig = ConfigSource::from_toml("").section("analytics").unwrap();
        assert_eq!(cfg.endpoints.http_addr.port(), 8083);
        assert!(cfg.backfill_on_start);
        let err = ConfigSource::from_toml("[analytics]\nmetrics_targets = [\"gateway:8080\"]\n")
            .section::<AnalyticsConfig>("analytics")
            .unwrap_err();
        assert_eq!(err.key, "analytics.metrics_targets");
    }
}
