//! Typed, layered configuration: serde defaults, then an optional TOML file, then environment
//! variables `AGORA_<SECTION>__<KEY>`. Every section is validated at start-up, and a bad value
//! stops the process with one line naming the key and the problem.

use std::{fmt, net::SocketAddr, path::PathBuf};

use figment::{
    Figment, Provider,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// A configuration problem, reported as `invalid configuration: <key>: <problem>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// A section that can check itself after loading.
pub trait Validate {
    /// `prefix` is the section's key, used to name offending keys in errors.
    fn validate(&self, prefix: &str) -> Result<(), ConfigError>;
}

/// The merged configuration sources, from which typed sections are extracted.
#[derive(Clone)]
pub struct ConfigSource {
    figment: Figment,
}

impl ConfigSource {
    /// Defaults, then `file` (if given, it must exist), then `AGORA_*` environment variables.
    pub fn load(file: Option<PathBuf>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::new(
                    "config file",
                    format!("{} does not exist or is not a file", path.display()),
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed("AGORA_").split("__").map(|k| {
            // AGORA_AUTH__DATABASE_URL -> auth.database_url; keys are case-insensitive.
            k.as_str().to_ascii_lowercase().into()
        }));
        Ok(Self { figment })
    }

    /// Sources from explicit `key = value` pairs layered over defaults; used by tests and tools.
    pub fn from_toml(text: &str) -> Self {
        Self {
            figment: Figment::new().merge(Toml::string(text)),
        }
    }

    /// Extracts and validates section `key` (`""` for the top level).
    pub fn section<T>(&self, key: &str) -> Result<T, ConfigError>
    where
        T: DeserializeOwned + Serialize + Default + Validate,
    {
        let figment = Figment::from(Serialized::defaults(T::default())).merge(if key.is_empty() {
            self.figment.clone()
        } else {
            self.figment.clone().focus(key)
        });
        let value: T = figment.extract().map_err(|err| figment_error(key, err))?;
        value.validate(key)?;
        Ok(value)
    }

    /// The keys the file and the environment set that `known` does not have, as dotted paths
    /// (`auth.http_adr`): a misspelt key would otherwise be ignored without a word. `known`
    /// holds the sections' defaults as JSON objects (a struct's fields, `null` for an unset
    /// option); under a path in `open` (a map whose keys are the operator's, such as
    /// `gateway.services`) any key is accepted and its contents are checked against the map's
    /// first default entry, when it has one.
    pub fn unknown_keys(&self, known: &serde_json::Value, open: &[&str]) -> Vec<String> {
        let mut unknown = Vec::new();
        if let (Ok(data), serde_json::Value::Object(known)) = (self.figment.data(), known) {
            for dict in data.values() {
                unknown_in(&mut unknown, "", dict, known, open);
            }
        }
        unknown.sort();
        unknown.dedup();
        unknown
    }
}

fn unknown_in(
    unknown: &mut Vec<String>,
    prefix: &str,
    given: &figment::value::Dict,
    known: &serde_json::Map<String, serde_json::Value>,
    open: &[&str],
) {
    let template = open
        .contains(&prefix)
        .then(|| known.values().next())
        .map(|first| first.and_then(serde_json::Value::as_object));
    for (key, value) in given {
        let path = match prefix {
            "" => key.clone(),
            _ => format!("{prefix}.{key}"),
        };
        let expected = match (known.get(key.as_str()), template) {
            (Some(expected), _) => expected.as_object(),
            // An operator's own entry in an open map: shaped like the defaults' first one.
            (None, Some(template)) => template,
            (None, None) => {
                unknown.push(path);
                continue;
            }
        };
        if let (figment::value::Value::Dict(_, inner), Some(expected)) = (value, expected) {
            unknown_in(unknown, &path, inner, expected, open);
        }
    }
}

fn figment_error(section: &str, err: figment::Error) -> ConfigError {
    let err = err
        .into_iter()
        .next()
        .expect("figment errors are never empty");
    let mut key: Vec<String> = Vec::new();
    if !section.is_empty() {
        key.push(section.to_owned());
    }
    key.extend(err.path.iter().cloned());
    let key = if key.is_empty() {
        "config".to_owned()
    } else {
        key.join(".")
    };
    ConfigError::new(key, err.kind.to_string())
}

/// A secret configuration value: never shown by `Debug` or logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret, in time that depends neither on where they differ
    /// nor on their lengths (the digests are compared).
    pub fn matches(&self, presented: &[u8]) -> bool {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        Sha256::digest(self.0.as_bytes())
            .ct_eq(&Sha256::digest(presented))
            .into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How the platform runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Everything in one process, SQLite under `data_dir`, in-process bus.
    #[default]
    Embedded,
    /// One or more services per process, PostgreSQL, Kafka and Redis.
    Distributed,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines in embedded mode, JSON in distributed mode.
    #[default]
    Auto,
    Pretty,
    Json,
}

/// Settings shared by the whole process (top level of the configuration).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CommonConfig {
    pub mode: Mode,
    /// Where embedded stores live (`<data_dir>/<service>.db`).
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    /// `tracing` filter, e.g. `info,agora_auth=debug`; `RUST_LOG` wins when set.
    pub log_level: String,
    /// First platform admin created in embedded mode (generated and printed once when unset).
    pub bootstrap_admin_email: Option<String>,
    pub bootstrap_admin_password: Option<Secret>,
}

impl Default for CommonConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Embedded,
            data_dir: PathBuf::from("./data"),
            log_format: LogFormat::Auto,
            log_level: "info".into(),
            bootstrap_admin_email: None,
            bootstrap_admin_password: None,
        }
    }
}

impl Validate for CommonConfig {
    fn validate(&self, _prefix: &str) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("data_dir", "must not be empty"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| ConfigError::new("log_level", e.to_string()))?;
        Ok(())
    }
}

/// How every service but auth (and the gateway) reaches and trusts the auth service: the
/// `[auth_peer]` section, shared by all of them and validated once. In embedded mode the
/// addresses of the auth service started in the same process replace `url` and `grpc`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthPeerConfig {
    /// The auth service's HTTP base URL (JWKS).
    pub url: String,
    /// Its gRPC address (API keys, teams).
    pub grpc: String,
    /// `iss` and `aud` accepted on access tokens.
    pub issuer: String,
    pub audience: String,
    /// Least time between JWKS refetches on an unknown key id.
    pub jwks_refetch_secs: u64,
    /// How long an API-key verification is reused (the delay before a revocation bites when
    /// Redis does not carry it).
    pub api_key_cache_secs: u64,
    /// What services present to auth's gRPC `VerifyApiKey` (metadata `x-agora-peer`), so that
    /// its port is no key oracle for whoever reaches it. Auth and every service share the one
    /// value. Required in distributed mode (at least 32 printable ASCII characters, e.g.
    /// `openssl rand -base64 32`); in embedded mode a random one per process.
    pub secret: Option<Secret>,
}

/// Metadata key of the peer secret on auth's gRPC calls.
pub const PEER_SECRET_HEADER: &str = "x-agora-peer";

impl Default for AuthPeerConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8081".into(),
            grpc: "127.0.0.1:9081".into(),
            issuer: "agora".into(),
            audience: "agora".into(),
            jwks_refetch_secs: 10,
            api_key_cache_secs: 10,
            secret: None,
        }
    }
}

impl AuthPeerConfig {
    /// This configuration with a peer secret: the configured one, else a random one for the
    /// services of this process (embedded mode; `serve` in distributed mode refuses to start
    /// without a configured one).
    pub fn with_process_secret(mut self) -> Self {
        if self.secret.is_none() {
            use base64::Engine;
            let bytes: [u8; 32] = rand::random();
            self.secret = Some(Secret::new(
                base64::engine::general_purpose::STANDARD.encode(bytes),
            ));
        }
        self
    }
}

impl Validate for AuthPeerConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(ConfigError::new(
                key("url"),
                "must be an http:// or https:// URL",
            ));
        }
        for (k, v) in [
            ("grpc", &self.grpc),
            ("issuer", &self.issuer),
            ("audience", &self.audience),
        ] {
            if v.trim().is_empty() {
                return Err(ConfigError::new(key(k), "must not be empty"));
            }
        }
        if let Some(secret) = &self.secret {
            let s = secret.expose();
            if s.len() < 32 || !s.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::new(
                    key("secret"),
                    "must be at least 32 printable ASCII characters without spaces",
                ));
            }
        }
        Ok(())
    }
}

/// The store of a service's section alone (what `agora migrate` needs of it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreSection {
    pub database_url: Option<String>,
}

impl Validate for StoreSection {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if let Some(url) = &self.database_url {
            crate::db::Backend::from_url(url)
                .map_err(|problem| ConfigError::new(format!("{prefix}.database_url"), problem))?;
        }
        Ok(())
    }
}

impl StoreSection {
    /// The configured URL (section `prefix`), or `<data_dir>/<service>.db` in embedded mode.
    pub fn resolve(
        &self,
        prefix: &str,
        service: &str,
        common: &CommonConfig,
    ) -> Result<String, ConfigError> {
        store_url(self.database_url.as_deref(), prefix, common, service)
    }
}

/// The store URL of `service`: `configured`, or an SQLite file under `data_dir` in embedded
/// mode; distributed mode requires one (the error names `<prefix>.database_url`).
fn store_url(
    configured: Option<&str>,
    prefix: &str,
    common: &CommonConfig,
    service: &str,
) -> Result<String, ConfigError> {
    match (configured, common.mode) {
        (Some(url), _) => Ok(url.to_owned()),
        (None, Mode::Embedded) => Ok(format!(
            "sqlite://{}",
            common.data_dir.join(format!("{service}.db")).display()
        )),
        (None, Mode::Distributed) => Err(ConfigError::new(
            format!("{prefix}.database_url"),
            "is required in distributed mode",
        )),
    }
}

/// Addresses and store of one service; every service section flattens this in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceEndpoints {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// `sqlite://path`, `postgres://...`; defaults to `<data_dir>/<service>.db` in embedded mode.
    pub database_url: Option<String>,
    /// Largest number of pooled store connections.
    pub database_pool_size: u32,
}

impl ServiceEndpoints {
    pub fn new(http_port: u16, grpc_port: u16) -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], http_port)),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], grpc_port)),
            database_url: None,
            database_pool_size: 10,
        }
    }

    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if let Some(url) = &self.database_url {
            crate::db::Backend::from_url(url)
                .map_err(|problem| ConfigError::new(format!("{prefix}.database_url"), problem))?;
        }
        if self.database_pool_size == 0 {
            return Err(ConfigError::new(
                format!("{prefix}.database_pool_size"),
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// The store URL to use: the configured one, or an SQLite file under `data_dir` in embedded
    /// mode. Distributed mode requires an explicit URL.
    pub fn resolve_database_url(
        &self,
        prefix: &str,
        common: &CommonConfig,
        service: &str,
    ) -> Result<String, ConfigError> {
        store_url(self.database_url.as_deref(), prefix, common, service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(default)]
    struct Section {
        port: u16,
        name: String,
    }

    impl Default for Section {
        fn default() -> Self {
            Self {
                port: 80,
                name: "x".into(),
            }
        }
    }

    impl Validate for Section {
        fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
            if self.name.is_empty() {
                return Err(ConfigError::new(
                    format!("{prefix}.name"),
                    "must not be empty",
                ));
            }
            Ok(())
        }
    }

    #[test]
    fn misspelt_and_foreign_keys_are_named() {
        let known = serde_json::json!({
            "mode": "embedded",
            "svc": {"port": 80, "name": "x", "key": null},
            "gateway": {"services": {"auth": {"url": "u", "http2": true}}, "routes": {}},
        });
        let open = ["gateway.services", "gateway.routes"];
        let source = ConfigSource::from_toml(
            r#"
            mode = "distributed"
            colour = "blue"
            [svc]
            port = 81
            prot = 82
            key = "set"
            [gateway.services.auth]
            url = "http://auth"
            [gateway.services.mine]
            url = "http://mine"
            htp2 = false
            [gateway.routes."/api/v1/x"]
            anything = 1
            [gateway.extra]
            a = 1
            "#,
        );
        assert_eq!(
            source.unknown_keys(&known, &open),
            [
                "colour",
                "gateway.extra",
                "gateway.services.mine.htp2",
                "svc.prot"
            ]
        );
        let clean = ConfigSource::from_toml("[svc]\nport = 1\n");
        assert!(clean.unknown_keys(&known, &open).is_empty());
    }

    #[test]
    fn defaults_then_overrides() {
        let src = ConfigSource::from_toml("[svc]\nport = 9000\n");
        let s: Section = src.section("svc").unwrap();
        assert_eq!(s.port, 9000);
        assert_eq!(s.name, "x");
    }

    #[test]
    fn bad_value_names_the_key() {
        let src = ConfigSource::from_toml("[svc]\nport = \"many\"\n");
        let err = src.section::<Section>("svc").unwrap_err();
        assert_eq!(err.key, "svc.port");
        assert!(
            err.to_string()
                .starts_with("invalid configuration: svc.port: "),
            "{err}"
        );
    }

    #[test]
    fn validation_runs() {
        let src = ConfigSource::from_toml("[svc]\nname = \"\"\n");
        let err = src.section::<Section>("svc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration: svc.name: must not be empty"
        );
    }

    #[test]
    fn the_auth_peer_section_is_checked_once_for_everyone() {
        let peer: AuthPeerConfig = ConfigSource::from_toml("").section("auth_peer").unwrap();
        assert_eq!(
            (peer.url.as_str(), peer.grpc.as_str()),
            ("http://127.0.0.1:8081", "127.0.0.1:9081")
        );
        let err = ConfigSource::from_toml("[auth_peer]\nurl = \"ftp://x\"\n")
            .section::<AuthPeerConfig>("auth_peer")
            .unwrap_err();
        assert_eq!(err.key, "auth_peer.url");
        let err = ConfigSource::from_toml("[auth_peer]\naudience = \" \"\n")
            .section::<AuthPeerConfig>("auth_peer")
            .unwrap_err();
        assert_eq!(err.key, "auth_peer.audience");
    }

    #[test]
    fn unknown_database_scheme_is_rejected() {
        let mut endpoints = ServiceEndpoints::new(1, 2);
        endpoints.database_url = Some("mysql://localhost/x".into());
        let err = endpoints.validate("auth").unwrap_err();
        assert_eq!(err.key, "auth.database_url");
    }
}
