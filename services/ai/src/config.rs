//! The `[ai]` configuration section (`AGORA_AI__*`).

use serde::{Deserialize, Serialize};

use agora_shared::config::{ConfigError, ServiceEndpoints, Validate};

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
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            endpoints: ServiceEndpoints::new(crate::PORTS.0, crate::PORTS.1),
            http_workers: 2,
            max_document_bytes: 20 * 1024 * 1024,
            max_extracted_bytes: 8 * 1024 * 1024,
            inline_bytes: 256 * 1024,
            chunk_chars: 1000,
            chunk_overlap_chars: 150,
            max_collections_per_tenant: 100,
            max_documents_per_collection: 10_000,
            max_input_bytes: 256 * 1024,
            vector_cache_mib: 512,
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
