//! The models chunks and queries are embedded with: the built-in `lexical-hash-1024`, and
//! the static models configured under `ai.embedding_models`, read once at start. A
//! collection names its model; vectors of two models are never compared.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use crate::{
    config::AiConfig,
    local::{embed, static_model::StaticModel},
};

/// One embedding model.
#[derive(Clone)]
pub enum Embedder {
    Lexical,
    Static {
        name: Arc<str>,
        model: Arc<StaticModel>,
    },
}

impl Embedder {
    pub fn name(&self) -> &str {
        match self {
            Embedder::Lexical => embed::MODEL,
            Embedder::Static { name, .. } => name,
        }
    }

    pub fn dims(&self) -> usize {
        match self {
            Embedder::Lexical => embed::DIMS,
            Embedder::Static { model, .. } => model.dims(),
        }
    }

    /// The embedding of `text` (CPU work: call it off the async threads for many texts).
    pub fn embed(&self, text: &str) -> Vec<f32> {
        match self {
            Embedder::Lexical => embed::embed(text),
            Embedder::Static { model, .. } => model.embed(text),
        }
    }
}

/// The models this replica has.
pub struct Embedders {
    statics: BTreeMap<String, Arc<StaticModel>>,
    default: String,
}

impl Embedders {
    /// Reads the configured models; a model that does not read is an error naming its key.
    pub fn load(config: &AiConfig) -> anyhow::Result<Self> {
        let mut statics = BTreeMap::new();
        for (name, model) in &config.embedding_models {
            let loaded = StaticModel::load(Path::new(&model.path))
                .map_err(|e| anyhow::anyhow!("ai.embedding_models.{name}.path: {e:#}"))?;
            tracing::info!(model = %name, dims = loaded.dims(), "static embedding model loaded");
            statics.insert(name.clone(), Arc::new(loaded));
        }
        Ok(Self {
            statics,
            default: config.default_embedding_model.clone(),
        })
    }

    /// The model called `name`, if this replica has it.
    pub fn get(&self, name: &str) -> Option<Embedder> {
        if name == embed::MODEL {
            return Some(Embedder::Lexical);
        }
        self.statics
            .get_key_value(name)
            .map(|(name, model)| Embedder::Static {
                name: Arc::from(name.as_str()),
                model: model.clone(),
            })
    }

    /// What new collections are embedded with.
    pub fn default_model(&self) -> &str {
        &self.default
    }

    /// The static models' names.
    pub fn static_names(&self) -> impl Iterator<Item = &str> {
        self.statics.keys().map(String::as_str)
    }

    /// Every model's name, the built-in one first.
    pub fn names(&self) -> Vec<String> {
        std::iter::once(embed::MODEL.to_owned())
            .chain(self.statics.keys().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EmbeddingModelConfig;
    use agora_shared::config::ConfigSource;

    #[test]
    fn models_are_checked_at_start() {
        let mut config = AiConfig::default();
        config.embedding_models.insert(
            "mini".into(),
            EmbeddingModelConfig {
                path: "/nonexistent/agora-model".into(),
            },
        );
        let err = Embedders::load(&config).err().unwrap().to_string();
        assert!(err.contains("ai.embedding_models.mini.path"), "{err}");
        // A default that is no model, and a name taken by a built-in model, are refused.
        for toml in [
            "[ai]\ndefault_embedding_model = \"mini\"\n",
            "[ai]\nembedding_models = { local = { path = \"/x\" } }\n",
            "[ai]\nembedding_models = { \"bad name\" = { path = \"/x\" } }\n",
        ] {
            let err = ConfigSource::from_toml(toml)
                .section::<AiConfig>("ai")
                .err()
                .unwrap();
            assert!(err.to_string().contains("ai."), "{err}");
        }
    }
}
