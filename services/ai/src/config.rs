//! The `[ai]` configuration section (`AGORA_AI__*`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use agora_shared::config::{ConfigError, Secret, ServiceEndpoints, Validate};

/// What API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI's chat completions and embeddings, at any base URL (OpenAI, Azure OpenAI's
    /// v1 API, Ollama, vLLM, LM Studio, Mistral, Groq...).
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
}

/// A model provider the router may call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// The API's base, e.g. `https://api.openai.com/v1` or `https://api.anthropic.com`.
    pub base_url: String,
    /// The platform's key for it (a tenant's own key, when it set one, is used instead);
    /// none for servers that take none (a local Ollama).
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// How long a call may take (for a stream: until its first event, then between events).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    60
}

/// One way to serve a model alias: a provider's model, and what its tokens cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// A key of `ai.providers`.
    pub provider: String,
    /// The provider's model name.
    pub model: String,
    /// Minor units of the platform's currency per million input and output tokens.
    #[serde(default)]
    pub input_cost_per_million: i64,
    #[serde(default)]
    pub output_cost_per_million: i64,
}

/// A model alias clients name (`default`, `fast`, `embed`...): its deployments, tried in
/// order (each one the next one's fallback).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub deployments: Vec<DeploymentConfig>,
}

/// A static embedding model (Model2Vec's format) collections may be embedded with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingModelConfig {
    /// The directory holding its `tokenizer.json`, `model.safetensors` and `config.json`
    /// (a `minishlab/potion-*` model as downloaded, say).
    pub path: String,
}

/// Settings of the ai service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AiConfig {
    #[serde(flatten)]
    pub endpoints: ServiceEndpoints,
    /// actix worker threads for this service.
    pub http_workers: usize,
    /// Largest document, as uploaded (a file) or given (text), in bytes.
    pub max_document_bytes: usize,
    /// Largest text a document may yield once extracted, in bytes (a small compressed file
    /// can hold far more text than it weighs).
    pub max_extracted_bytes: usize,
    /// Documents up to this size (text, Markdown, HTML) are processed in the request that
    /// gives them (201, searchable at once); larger ones and PDF and DOCX files in the
    /// background (202).
    pub inline_bytes: usize,
    /// Memory a process reading an HTML, PDF or DOCX file may take, in MiB (the `agora` binary
    /// reads them in child processes; a file needing more is ERROR).
    pub extraction_memory_mib: u64,
    /// How long a document announced without its content (UPLOADING) waits for it before
    /// it is deleted, in seconds.
    pub upload_expiry_secs: u64,
    /// A chunk's target length in characters (a section's end also ends a chunk).
    pub chunk_chars: usize,
    /// Characters of a chunk's end repeated at the start of the next (whole sentences).
    pub chunk_overlap_chars: usize,
    /// Collections a tenant may have.
    pub max_collections_per_tenant: u32,
    /// Documents a collection may have.
    pub max_documents_per_collection: u32,
    /// Largest text given to summarize, emotion, fact-check, chat and embeddings, in bytes.
    pub max_input_bytes: usize,
    /// Memory the in-process vector cache may hold, in MiB (collections past it are read
    /// from the store for each search).
    pub vector_cache_mib: usize,
    /// Model providers by name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Model aliases (`local` is built in and cannot be one).
    pub models: BTreeMap<String, ModelConfig>,
    /// Static embedding models by the name collections and `/embeddings` know them by,
    /// besides the built-in `lexical-hash-1024`.
    pub embedding_models: BTreeMap<String, EmbeddingModelConfig>,
    /// The model new collections are embedded with when they name none.
    pub default_embedding_model: String,
    /// Seals tenants' own provider keys (base64 of 32 random bytes); without it tenants
    /// cannot set keys.
    pub key_encryption_key: Option<Secret>,
    /// Retries of a deployment on 429, 5xx, timeouts and refused connections, before the
    /// next deployment is tried.
    pub max_retries: u32,
    /// The longest `Retry-After` waited for; a longer one moves on to the next deployment.
    pub max_retry_after_secs: u64,
    /// How long a deployment that failed (or said 429) is skipped.
    pub cooldown_secs: u64,
    /// Tokens a chat call reserves for its answer when it names no `max_tokens`.
    pub default_max_tokens: u64,
    /// The tickets service's gRPC address (recommendations read tickets and teams' loads);
    /// embedded mode fills it in.
    pub tickets_grpc: String,
    /// The analytics service's gRPC address (insights); embedded mode fills it in.
    pub analytics_grpc: String,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            endpoints: ServiceEndpoints::new(crate::PORTS.0, crate::PORTS.1),
            http_workers: 2,
            max_document_bytes: 20 * 1024 * 1024,
            max_extracted_bytes: 8 * 1024 * 1024,
            inline_bytes: 256 * 1024,
            upload_expiry_secs: 24 * 3600,
            extraction_memory_mib: 1024,
            chunk_chars: 1000,
            chunk_overlap_chars: 150,
            max_collections_per_tenant: 100,
            max_documents_per_collection: 10_000,
            max_input_bytes: 256 * 1024,
            vector_cache_mib: 512,
            providers: BTreeMap::new(),
            models: BTreeMap::new(),
            embedding_models: BTreeMap::new(),
            default_embedding_model: crate::local::embed::MODEL.into(),
            key_encryption_key: None,
            max_retries: 2,
            max_retry_after_secs: 10,
            cooldown_secs: 5,
            default_max_tokens: 1024,
            tickets_grpc: "127.0.0.1:9082".into(),
            analytics_grpc: "127.0.0.1:9083".into(),
        }
    }
}

impl Validate for AiConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        self.endpoints.validate(prefix)?;
        for (name, value) in [
            ("http_workers", self.http_workers),
            ("max_document_bytes", self.max_document_bytes),
            ("max_extracted_bytes", self.max_extracted_bytes),
            ("max_input_bytes", self.max_input_bytes),
            ("upload_expiry_secs", self.upload_expiry_secs as usize),
            ("extraction_memory_mib", self.extraction_memory_mib as usize),
            (
                "max_collections_per_tenant",
                self.max_collections_per_tenant as usize,
            ),
            (
                "max_documents_per_collection",
                self.max_documents_per_collection as usize,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key(name), "must be at least 1"));
            }
        }
        if !(200..=8000).contains(&self.chunk_chars) {
            return Err(ConfigError::new(
                key("chunk_chars"),
                "must be from 200 to 8000",
            ));
        }
        if self.chunk_overlap_chars * 2 > self.chunk_chars {
            return Err(ConfigError::new(
                key("chunk_overlap_chars"),
                "must be at most half of chunk_chars",
            ));
        }
        for (name, provider) in &self.providers {
            let url = reqwest::Url::parse(&provider.base_url).ok();
            if !url.is_some_and(|u| matches!(u.scheme(), "http" | "https")) {
                return Err(ConfigError::new(
                    key(&format!("providers.{name}.base_url")),
                    "must be an http(s) URL",
                ));
            }
            if provider.timeout_secs == 0 {
                return Err(ConfigError::new(
                    key(&format!("providers.{name}.timeout_secs")),
                    "must be at least 1",
                ));
            }
        }
        for (alias, model) in &self.models {
            if alias == crate::local::MODEL {
                return Err(ConfigError::new(
                    key("models.local"),
                    "`local` is the built-in model; name the alias otherwise",
                ));
            }
            if model.deployments.is_empty() {
                return Err(ConfigError::new(
                    key(&format!("models.{alias}.deployments")),
                    "must name at least one deployment",
                ));
            }
            for (i, d) in model.deployments.iter().enumerate() {
                if !self.providers.contains_key(&d.provider) {
                    return Err(ConfigError::new(
                        key(&format!("models.{alias}.deployments[{i}].provider")),
                        format!("`{}` is not a key of {prefix}.providers", d.provider),
                    ));
                }
            }
        }
        for name in self.embedding_models.keys() {
            let ok = (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                return Err(ConfigError::new(
                    key(&format!("embedding_models.{name}")),
                    "a name is 1 to 64 of letters, digits, '-', '_' and '.'",
                ));
            }
            if name == crate::local::MODEL
                || name == crate::local::embed::MODEL
                || self.models.contains_key(name)
            {
                return Err(ConfigError::new(
                    key(&format!("embedding_models.{name}")),
                    "names a built-in model or a model alias; name it otherwise",
                ));
            }
        }
        if self.default_embedding_model != crate::local::embed::MODEL
            && !self
                .embedding_models
                .contains_key(&self.default_embedding_model)
        {
            return Err(ConfigError::new(
                key("default_embedding_model"),
                format!(
                    "must be `{}` or a key of {prefix}.embedding_models",
                    crate::local::embed::MODEL
                ),
            ));
        }
        if let Some(kek) = &self.key_encryption_key
            && let Err(e) = agora_shared::sealed::Sealer::from_base64(kek.expose())
        {
            return Err(ConfigError::new(key("key_encryption_key"), e));
        }
        if self.upload_expiry_secs > 30 * 24 * 3600 {
            return Err(ConfigError::new(
                key("upload_expiry_secs"),
                "must be at most 2592000 (30 days)",
            ));
        }
        if self.inline_bytes > self.max_document_bytes {
            return Err(ConfigError::new(
                key("inline_bytes"),
                "must be at most max_document_bytes",
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
        let cfg: AiConfig = ConfigSource::from_toml("").section("ai").unwrap();
        assert_eq!(cfg.endpoints.http_addr.port(), 8087);
        assert_eq!(cfg.chunk_chars, 1000);
        let err = ConfigSource::from_toml("[ai]\nchunk_overlap_chars = 900\n")
            .section::<AiConfig>("ai")
            .unwrap_err();
        assert_eq!(err.key, "ai.chunk_overlap_chars");
    }
}
