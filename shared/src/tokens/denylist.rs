//! Revoked access-token ids.

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;

use super::LEEWAY_SECS;
use crate::error::AppError;

/// Revoked access-token ids, kept until the token would have expired anyway.
#[async_trait]
pub trait Denylist: Send + Sync {
    async fn deny(&self, jti: &str, expires_at: i64);
    /// Whether `jti` was revoked; an error when that cannot be known (the token is refused).
    async fn is_denied(&self, jti: &str) -> Result<bool, AppError>;
}

/// In-memory denylist (embedded mode; the owner persists entries and reloads them at start).
#[derive(Default)]
pub struct MemoryDenylist {
    entries: Mutex<HashMap<String, i64>>,
}

#[async_trait]
impl Denylist for MemoryDenylist {
    async fn deny(&self, jti: &str, expires_at: i64) {
        let now = chrono::Utc::now().timestamp() - LEEWAY_SECS as i64;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, exp| *exp > now);
        entries.insert(jti.to_owned(), expires_at);
    }

    async fn is_denied(&self, jti: &str) -> Result<bool, AppError> {
        Ok(self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(jti))
    }
}
