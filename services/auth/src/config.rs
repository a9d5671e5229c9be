//! The `[auth]` configuration section (`AGORA_AUTH__*`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use agora_shared::{
    config::{ConfigError, Secret, ServiceEndpoints, Validate},
    tokens::{KeyPair, TokenSettings},
};

/// Settings of the auth service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    #[serde(flatten)]
    pub endpoints: ServiceEndpoints,
    /// `iss` of issued tokens.
    pub issuer: String,
    /// `aud` of issued tokens.
    pub audience: String,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    /// Ed25519 PKCS#8 PEM that signs tokens. When unset, keys are generated into the store and
    /// rotated (in distributed mode only with `key_encryption_key` set).
    pub signing_key: Option<Secret>,
    /// Earlier signing keys whose tokens still verify.
    pub previous_signing_keys: Vec<Secret>,
    /// Store-managed keys rotate after this many days (0: never).
    pub key_rotation_days: u32,
    /// Base64 of 32 random bytes; when set, store-managed private keys are sealed with it (each
    /// bound to its key id). Distributed mode requires it unless `signing_key` is set.
    pub key_encryption_key: Option<Secret>,
    /// Consecutive failed logins before an account's logins are slowed down.
    pub lockout_threshold: u32,
    /// First lockout; doubles with each further failure.
    pub lockout_base_secs: u64,
    pub lockout_max_secs: u64,
    /// `smtp://user:pass@host:port` or `smtps://...`: how auth delivers reset and invitation
    /// links (tokens never go on the bus). Without it no reset link can be delivered (a
    /// warning says so at start); invitation tokens still reach the inviter in the response.
    pub smtp_url: Option<Secret>,
    pub mail_from: String,
    /// Link in reset emails; the token is appended as `?token=`.
    pub reset_url: String,
    /// Link in invitation emails; the token is appended as `?token=`.
    pub invite_url: String,
    /// Peers whose X-Forwarded-For is believed (the gateways: IPs or CIDRs), so that the
    /// audit log, lockouts and auth's own credential limits see the client, not the gateway.
    /// Loopback when unset in embedded mode (the gateway runs in the same process).
    pub trusted_proxies: Vec<String>,
    /// Credential requests (login, register, refresh, forgot, reset, accept-invite) auth
    /// answers per client IP and minute, whatever the gateway lets through (0: no limit).
    pub credential_requests_per_minute: u32,
    /// actix worker threads for this service.
    pub http_workers: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            endpoints: ServiceEndpoints::new(crate::PORTS.0, crate::PORTS.1),
            issuer: "agora".into(),
            audience: "agora".into(),
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 7 * 24 * 3600,
            signing_key: None,
            previous_signing_keys: Vec::new(),
            key_rotation_days: 30,
            key_encryption_key: None,
            lockout_threshold: 5,
            lockout_base_secs: 30,
            lockout_max_secs: 15 * 60,
            smtp_url: None,
            mail_from: "Agora <no-reply@localhost>".into(),
            reset_url: "http://localhost:8080/reset-password".into(),
            invite_url: "http://localhost:8080/accept-invite".into(),
            trusted_proxies: Vec::new(),
            credential_requests_per_minute: 60,
            http_workers: 2,
        }
    }
}

impl AuthConfig {
    /// The sealer for stored private keys, when a key-encryption key is configured.
    pub fn sealer(&self) -> Option<agora_shared::sealed::Sealer> {
        self.key_encryption_key
            .as_ref()
            .and_then(|k| agora_shared::sealed::Sealer::from_base64(k.expose()).ok())
    }

    pub fn token_settings(&self) -> TokenSettings {
        TokenSettings {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            access_ttl: self.access_ttl(),
        }
    }

    /// How long an access token lives (and so how long a cut-off must be kept).
    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.access_ttl_secs)
    }
}

impl Validate for AuthConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        self.endpoints.validate(prefix)?;
        if self.issuer.trim().is_empty() {
            return Err(ConfigError::new(key("issuer"), "must not be empty"));
        }
        if self.audience.trim().is_empty() {
            return Err(ConfigError::new(key("audience"), "must not be empty"));
        }
        if !(60..=86_400).contains(&self.access_ttl_secs) {
            return Err(ConfigError::new(
                key("access_ttl_secs"),
                "must be between 60 and 86400",
            ));
        }
        if self.refresh_ttl_secs < self.access_ttl_secs {
            return Err(ConfigError::new(
                key("refresh_ttl_secs"),
                "must not be shorter than access_ttl_secs",
            ));
        }
        if let Some(pem) = &self.signing_key {
            KeyPair::from_pem(pem.expose()).map_err(|e| ConfigError::new(key("signing_key"), e))?;
        }
        for (i, pem) in self.previous_signing_keys.iter().enumerate() {
            KeyPair::from_pem(pem.expose())
                .map_err(|e| ConfigError::new(key(&format!("previous_signing_keys[{i}]")), e))?;
        }
        if let Some(kek) = &self.key_encryption_key {
            agora_shared::sealed::Sealer::from_base64(kek.expose())
                .map_err(|e| ConfigError::new(key("key_encryption_key"), e))?;
        }
        if self.lockout_threshold == 0 {
            return Err(ConfigError::new(
                key("lockout_threshold"),
                "must be at least 1",
            ));
        }
        if let Some(url) = &self.smtp_url
            && !(url.expose().starts_with("smtp://") || url.expose().starts_with("smtps://"))
        {
            return Err(ConfigError::new(
                key("smtp_url"),
                "must start with smtp:// or smtps://",
            ));
        }
        for (i, p) in self.trusted_proxies.iter().enumerate() {
            agora_shared::http::client_ip::parse_net(p)
                .map_err(|e| ConfigError::new(key(&format!("trusted_proxies[{i}]")), e))?;
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
    fn flattened_endpoints_and_overrides() {
        let src = ConfigSource::from_toml(
            "[auth]\nhttp_addr = \"127.0.0.1:1234\"\ndatabase_pool_size = 3\naccess_ttl_secs = 600\n",
        );
        let cfg: AuthConfig = src.section("auth").unwrap();
        assert_eq!(cfg.endpoints.http_addr.port(), 1234);
        assert_eq!(cfg.endpoints.database_pool_size, 3);
        assert_eq!(cfg.access_ttl_secs, 600);
        assert_eq!(cfg.refresh_ttl_secs, 7 * 24 * 3600);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = ConfigSource::from_toml("[auth]\nsigning_key = \"nope\"\n")
            .section::<AuthConfig>("auth")
            .unwrap_err();
        assert_eq!(err.key, "auth.signing_key");
        let err = ConfigSource::from_toml("[auth]\ndatabase_url = \"mongodb://x\"\n")
            .section::<AuthConfig>("auth")
            .unwrap_err();
        assert_eq!(err.key, "auth.database_url");
        assert!(err.problem.contains("unknown database scheme"));
    }
}
