//! The `[code_exec]` configuration section (`AGORA_CODE_EXEC__*`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use agora_shared::config::{ConfigError, ServiceEndpoints, Validate};

/// Settings of the code-exec service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CodeExecConfig {
    #[serde(flatten)]
    pub endpoints: ServiceEndpoints,
    /// actix worker threads for this service.
    pub http_workers: usize,
    /// Where the sandbox keeps its slots' mount points (only root may enter it); defaults to
    /// `<data_dir>/code-exec`.
    pub work_dir: Option<PathBuf>,
    /// Programs run at once (each slot runs as a uid of its own); defaults to the cores.
    pub slots: Option<usize>,
    /// The uid (and gid) of slot 0; slot n runs as `first_uid + n`. No one else may use them.
    pub first_uid: u32,
    /// Start even where the host lacks cgroups, seccomp or Landlock (`/system_info` then says
    /// which layers are missing). Namespaces and a uid per slot are never optional.
    pub allow_weaker_isolation: bool,
    /// Submissions a tenant may have waiting or running at once (more: 429).
    pub max_queued_per_tenant: u32,
    /// How long `?wait=true` waits for a verdict before answering with the submission as it is.
    pub wait_timeout_secs: u64,
    /// Largest source, stdin and expected output, each, in bytes.
    pub max_input_bytes: usize,
    /// Bytes kept of stdout and of stderr, each; a program writing more is stopped.
    pub max_output_bytes: usize,
    /// Submissions in one batch.
    pub max_batch_size: usize,
    /// How long finished submissions are kept (then deleted, results and all).
    pub keep_results_secs: u64,
    /// How long finished exercise attempts are kept (a student's record; then deleted).
    pub keep_attempts_secs: u64,
    /// Let `callback_url` name private, loopback and other internal addresses (a development
    /// machine's own receiver, say). Off: callbacks reach public addresses only.
    pub callbacks_allow_private: bool,
}

impl Default for CodeExecConfig {
    fn default() -> Self {
        Self {
            endpoints: ServiceEndpoints::new(crate::PORTS.0, crate::PORTS.1),
            http_workers: 2,
            work_dir: None,
            slots: None,
            first_uid: 61_000,
            allow_weaker_isolation: false,
            max_queued_per_tenant: 100,
            wait_timeout_secs: 30,
            max_input_bytes: 256 * 1024,
            max_output_bytes: 1024 * 1024,
            max_batch_size: 20,
            keep_results_secs: 7 * 24 * 3600,
            keep_attempts_secs: 365 * 24 * 3600,
            callbacks_allow_private: false,
        }
    }
}

impl Validate for CodeExecConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        self.endpoints.validate(prefix)?;
        for (name, value) in [
            ("http_workers", self.http_workers),
            ("max_input_bytes", self.max_input_bytes),
            ("max_output_bytes", self.max_output_bytes),
            ("max_batch_size", self.max_batch_size),
            ("max_queued_per_tenant", self.max_queued_per_tenant as usize),
            ("wait_timeout_secs", self.wait_timeout_secs as usize),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key(name), "must be at least 1"));
            }
        }
        for (name, value) in [
            ("keep_results_secs", self.keep_results_secs),
            ("keep_attempts_secs", self.keep_attempts_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key(name), "must be at least 1"));
            }
        }
        if self.wait_timeout_secs > 50 {
            return Err(ConfigError::new(
                key("wait_timeout_secs"),
                "must be at most 50 (the gateway gives code-exec 60 s to answer)",
            ));
        }
        if self.slots == Some(0) {
            return Err(ConfigError::new(key("slots"), "must be at least 1"));
        }
        if self.first_uid < 1000 || self.first_uid > u32::MAX - 4096 {
            return Err(ConfigError::new(
                key("first_uid"),
                "must be an unprivileged uid (1000 or more) with room for every slot after it",
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
        let cfg: CodeExecConfig = ConfigSource::from_toml("").section("code_exec").unwrap();
        assert_eq!(cfg.endpoints.http_addr.port(), 8085);
        assert_eq!(cfg.first_uid, 61_000);
        let err = ConfigSource::from_toml("[code_exec]\nfirst_uid = 0\n")
            .section::<CodeExecConfig>("code_exec")
            .unwrap_err();
        assert_eq!(err.key, "code_exec.first_uid");
    }
}
