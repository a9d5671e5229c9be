//! The built-in local model: no key, no network, deterministic, and honest about what it is.
//! Embeddings from hashed word and character n-grams (`embed`), extractive answers and
//! fact-checks that only quote what was retrieved (`answer`, `factcheck`), extractive
//! summaries by TextRank (`summary`) and emotion from a lexicon (`emotion`). Every answer
//! names `local` as its provider and the model that made it.

pub mod answer;
pub mod embed;
pub mod emotion;
pub mod factcheck;
pub mod static_model;
pub mod summary;
pub mod text;

/// The provider every answer of this module names.
pub const PROVIDER: &str = "local";

/// The model id clients ask for (`model: "local"`), for chat and embeddings alike.
pub const MODEL: &str = "local";
