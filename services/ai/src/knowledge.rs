//! Knowledge bases: collections of a tenant's documents, their text extracted (`extract`) and
//! cut into chunks with heading context (`chunk`), stored with their embeddings and a
//! full-text index (`store`), processed in the request or in the background (`process`),
//! and searched semantically, by keyword, or both fused by reciprocal rank (`search`, over the
//! vectors cached in `vectors`).

pub mod chunk;
pub mod extract;
pub mod process;
pub mod reembed;
pub mod search;
pub mod store;
pub mod vectors;
