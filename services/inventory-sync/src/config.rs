//! The `[inventory_sync]` configuration section (`AGORA_INVENTORY_SYNC__*`).

use serde::{Deserialize, Serialize};

use agora_shared::config::{ConfigError, Secret, ServiceEndpoints, Validate};

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
    /// Base64 of 32 random bytes: seals connections' credentials and tokens (AES-256-GCM).
    /// Required in distributed mode; embedded mode keeps one in `<data_dir>/inventory-sync.key`.
    pub key_encryption_key: Option<Secret>,
    /// How often each Amazon connection is synced (RULES.md: every 6 h).
    pub sync_interval_secs: u64,
    /// How often due syncs and abandoned runs are looked for.
    pub sync_check_secs: u64,
    /// How long a replica holds a run without news before another takes it over.
    pub sync_lease_secs: u64,
    /// Amazon's endpoints and this application's Login with Amazon credentials.
    pub amazon: AmazonConfig,
    /// Stripe's API and how its webhooks are checked.
    pub stripe: StripeConfig,
    /// Google OAuth 2.0 and Gmail, for reimbursement and case mails as claims' evidence.
    pub google: GoogleConfig,
}

/// `[inventory_sync.google]`: this application's Google OAuth client and Gmail's API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GoogleConfig {
    /// The OAuth client (Google Cloud console, "Web application").
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// Where Google sends the seller back after consent: the tenant's app page, which posts
    /// the `code` and `state` it receives to `/api/v1/inventory/connections/gmail/callback`.
    /// Must be one of the client's authorized redirect URIs.
    pub redirect_url: Option<String>,
    pub auth_url: String,
    pub token_url: String,
    pub revoke_url: String,
    pub gmail_url: String,
    /// The senders whose mails count (exact addresses), and only when Gmail found them
    /// authentic (DMARC pass for the sender's domain). The search is limited to them.
    pub trusted_senders: Vec<String>,
    /// Gmail search for Amazon's reimbursement and case mails (within the trusted senders').
    pub mail_query: String,
    /// Messages one scan reads at most.
    pub max_messages: u32,
    /// How often every Gmail connection is scanned.
    pub scan_interval_secs: u64,
    /// How long a consent may take between authorize and callback.
    pub consent_ttl_secs: u64,
    pub timeout_secs: u64,
}

impl Default for GoogleConfig {
    fn default() -> Self {
        Self {
            client_id: None,
            client_secret: None,
            redirect_url: None,
            auth_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            revoke_url: "https://oauth2.googleapis.com/revoke".into(),
            gmail_url: "https://gmail.googleapis.com".into(),
            trusted_senders: vec!["seller-notification@amazon.com".into()],
            mail_query: "(reimbursement OR \"case id\") newer_than:180d".into(),
            max_messages: 100,
            scan_interval_secs: 6 * 60 * 60,
            consent_ttl_secs: 600,
            timeout_secs: 30,
        }
    }
}

/// `[inventory_sync.stripe]`: Stripe's API (tenants bring their own keys) and webhooks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StripeConfig {
    /// Stripe's API.
    pub api_url: String,
    /// A webhook whose signature's timestamp is further than this from now is refused
    /// (Stripe's libraries' default: 300 s), so a captured delivery cannot be replayed later.
    pub webhook_tolerance_secs: u64,
    /// Timeout of one request.
    pub timeout_secs: u64,
}

impl Default for StripeConfig {
    fn default() -> Self {
        Self {
            api_url: "https://api.stripe.com".into(),
            webhook_tolerance_secs: 300,
            timeout_secs: 30,
        }
    }
}

/// `[inventory_sync.amazon]`: Login with Amazon and the Selling Partner API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AmazonConfig {
    /// LWA's token endpoint (EU: https://api.amazon.co.uk/auth/o2/token, FE: .co.jp).
    pub lwa_url: String,
    /// The SP-API host of the sellers' region (EU: sellingpartnerapi-eu, FE: -fe).
    pub sp_api_url: String,
    /// The application's LWA client id and secret (Seller Central, Developer Central).
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// getInventorySummaries' usage plan: requests per second and burst.
    pub requests_per_second: u32,
    pub burst: u32,
    /// Attempts at one page (throttled or failing) before the run fails.
    pub max_attempts: u32,
    /// First backoff after a 429 or a 5xx (doubles each time; Retry-After wins when given).
    pub backoff_ms: u64,
    /// Pages one run reads at most (50 SKUs each) before it gives up on a nextToken that
    /// never ends.
    pub max_pages: u32,
    /// Timeout of one request.
    pub timeout_secs: u64,
}

impl Default for AmazonConfig {
    fn default() -> Self {
        Self {
            lwa_url: "https://api.amazon.com/auth/o2/token".into(),
            sp_api_url: "https://sellingpartnerapi-na.amazon.com".into(),
            client_id: None,
            client_secret: None,
            requests_per_second: 2,
            burst: 2,
            max_attempts: 6,
            backoff_ms: 1000,
            max_pages: 20_000,
            timeout_secs: 30,
        }
    }
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            endpoints: ServiceEndpoints::new(crate::PORTS.0, crate::PORTS.1),
            scan_interval_secs: 2 * 60 * 60,
            default_currency: "USD".into(),
            import_max_bytes: 5 * 1024 * 1024,
            http_workers: 2,
            key_encryption_key: None,
            sync_interval_secs: 6 * 60 * 60,
            sync_check_secs: 30,
            sync_lease_secs: 60,
            amazon: AmazonConfig::default(),
            stripe: StripeConfig::default(),
            google: GoogleConfig::default(),
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
        for (name, value) in [
            ("sync_interval_secs", self.sync_interval_secs),
            ("sync_check_secs", self.sync_check_secs),
            ("sync_lease_secs", self.sync_lease_secs),
            ("amazon.timeout_secs", self.amazon.timeout_secs),
            ("stripe.timeout_secs", self.stripe.timeout_secs),
            ("google.timeout_secs", self.google.timeout_secs),
            ("google.scan_interval_secs", self.google.scan_interval_secs),
            ("google.consent_ttl_secs", self.google.consent_ttl_secs),
            ("google.max_messages", u64::from(self.google.max_messages)),
            (
                "stripe.webhook_tolerance_secs",
                self.stripe.webhook_tolerance_secs,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key(name), "must be at least 1"));
            }
        }
        if let Some(kek) = &self.key_encryption_key {
            agora_shared::sealed::Sealer::from_base64(kek.expose())
                .map_err(|e| ConfigError::new(key("key_encryption_key"), e))?;
        }
        let amazon = &self.amazon;
        for (name, url) in [
            ("amazon.lwa_url", &amazon.lwa_url),
            ("amazon.sp_api_url", &amazon.sp_api_url),
            ("stripe.api_url", &self.stripe.api_url),
            ("google.auth_url", &self.google.auth_url),
            ("google.token_url", &self.google.token_url),
            ("google.revoke_url", &self.google.revoke_url),
            ("google.gmail_url", &self.google.gmail_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError::new(key(name), "must be an http(s) URL"));
            }
        }
        for sender in &self.google.trusted_senders {
            if crate::google::sender_address(sender).as_deref()
                != Some(sender.to_ascii_lowercase().as_str())
            {
                return Err(ConfigError::new(
                    key("google.trusted_senders"),
                    format!("`{sender}` is not a mail address"),
                ));
            }
        }
        if amazon.requests_per_second == 0
            || amazon.burst == 0
            || amazon.max_attempts == 0
            || amazon.max_pages == 0
        {
            return Err(ConfigError::new(
                key("amazon"),
                "requests_per_second, burst, max_attempts and max_pages must be at least 1",
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
        let cfg: InventoryConfig = ConfigSource::from_toml("").section(crate::SECTION).unwrap();
        assert_eq!(cfg.endpoints.http_addr.port(), 8084);
        assert_eq!(cfg.scan_interval_secs, 7200);
        let err = ConfigSource::from_toml("[inventory_sync]\ndefault_currency = \"usd\"\n")
            .section::<InventoryConfig>(crate::SECTION)
            .unwrap_err();
        assert_eq!(err.key, "inventory_sync.default_currency");
    }
}
