//! The `[inventory_sync]` configuration section (`AGORA_INVENTORY_SYNC__*`).

use serde::{Deserialize, Serialize};

use agora_shared::config::{ConfigError, ServiceEndpoints, Validate};

/// Settings of the inventory-sync service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct InventoryConfig {
    #[serde(flatten)]
    pub endpoints: ServiceEndpoints,
    /// How often every tenant's counts are scanned for discrepancies (RULES.md: every 2 h).
    pub scan_interval_secs: u64,
    /// Currency of items created without one (ISO 4217).
    pub default_currency: String,
    /// Largest CSV import, in bytes.
    pub import_max_bytes: usize,
    /// actix worker threads for this service.
    pub http_workers: usize,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            endpoints: ServiceEndpoints::new(crate::PORTS.0, crate::PORTS.1),
            scan_interval_secs: 2 * 60 * 60,
            default_currency: "USD".into(),
            import_max_bytes: 5 * 1024 * 1024,
            http_workers: 2,
        }
    }
}

impl Validate for InventoryConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        self.endpoints.validate(prefix)?;
        if self.scan_interval_secs == 0 {
            return Err(ConfigError::new(
                key("scan_interval_secs"),
                "must be at least 1",
            ));
        }
        if !crate::domain::valid_currency(&self.default_currency) {
            return Err(ConfigError::new(
                key("default_currency"),
                "must be an ISO 4217 code of three capital letters",
            ));
        }
        if self.import_max_bytes < 1024 {
            return Err(ConfigError::new(
                key("import_max_bytes"),
                "must be at least 1024",
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
        let cfg: InventoryConfig = ConfigSource::from_toml("").section(crate::SECTION).unwrap();
        assert_eq!(cfg.endpoints.http_addr.port(), 8084);
        assert_eq!(cfg.scan_interval_secs, 7200);
        let err = ConfigSource::from_toml("[inventory_sync]\ndefault_currency = \"usd\"\n")
            .section::<InventoryConfig>(crate::SECTION)
            .unwrap_err();
        assert_eq!(err.key, "inventory_sync.default_currency");
    }
}
