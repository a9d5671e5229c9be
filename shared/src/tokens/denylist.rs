//! Refused access tokens: revoked token ids, and cut-offs that refuse every token of a user, a
//! session or a tenant issued before a moment (deactivation, demotion, password change,
//! suspension), each kept until the tokens it refuses would have expired anyway.

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;

use super::LEEWAY_SECS;
use crate::error::AppError;

/// The subjects a token belongs to, as cut-offs name them.
pub fn subjects(user: &str, tenant: &str, session: Option<&str>) -> Vec<String> {
    let mut out = vec![format!("user:{user}"), format!("tenant:{tenant}")];
    out.extend(session.map(|s| format!("session:{s}")));
    out
}

#[async_trait]
pub trait Denylist: Send + Sync {
    async fn deny(&self, jti: &str, expires_at: i64);
    /// Refuses every token of `subject` (`user:<id>`, `session:<id>`, `tenant:<id>`) issued
    /// before or in millisecond `at_ms` (Unix time), until second `until` (when the last such
    /// token has expired).
    async fn cut_off(&self, subject: &str, at_ms: i64, until: i64);
    /// Whether a token is refused: `jti` was revoked, or one of `subjects` was cut off after
    /// the token was issued (`issued_ms`). An error when that cannot be known (the token is
    /// refused).
    async fn refuses(
        &self,
        jti: &str,
        subjects: &[String],
        issued_ms: i64,
    ) -> Result<bool, AppError>;

    /// Whether the entries this process holds refuse the token, without a round trip: all of
    /// them for a list in memory, the local copy of one kept elsewhere. Checked even when the
    /// gateway vouches for the token, so a revocation this process knows of holds when the
    /// shared list lost it.
    fn refuses_locally(&self, jti: &str, subjects: &[String], issued_ms: i64) -> bool;

    /// Whether `jti` was revoked.
    async fn is_denied(&self, jti: &str) -> Result<bool, AppError> {
        self.refuses(jti, &[], 0).await
    }

    /// The list in Redis, when it is there: a caller with a Redis round trip of its own to
    /// make (the gateway's rate-limit script) reads the entries in that round trip instead.
    fn in_redis(&self) -> Option<&crate::redis::RedisDenylist> {
        None
    }
}

/// Revocations and cut-offs held in memory: the in-process denylist of the embedded platform,
/// and the local copy of a shared one.
#[derive(Default)]
pub struct Entries {
    /// Token id -> when it expires.
    denied: HashMap<String, i64>,
    /// Subject -> (cut-off millisecond, kept until second).
    cuts: HashMap<String, (i64, i64)>,
}

impl Entries {
    pub fn deny(&mut self, jti: &str, expires_at: i64) {
        let now = chrono::Utc::now().timestamp() - LEEWAY_SECS as i64;
        self.denied.retain(|_, exp| *exp > now);
        self.denied.insert(jti.to_owned(), expires_at);
    }

    pub fn cut_off(&mut self, subject: &str, at: i64, until: i64) {
        let now = chrono::Utc::now().timestamp() - LEEWAY_SECS as i64;
        self.cuts.retain(|_, (_, keep)| *keep > now);
        let entry = self.cuts.entry(subject.to_owned()).or_insert((at, until));
        *entry = (entry.0.max(at), entry.1.max(until));
    }

    /// Whether these entries refuse the token.
    pub fn refuses(&self, jti: &str, subjects: &[String], issued_ms: i64) -> bool {
        self.denied.contains_key(jti)
            || subjects
                .iter()
                .any(|s| self.cuts.get(s).is_some_and(|(at, _)| issued_ms <= *at))
    }
}

/// In-memory denylist (embedded mode; the owner persists entries and reloads them at start).
#[derive(Default)]
pub struct MemoryDenylist {
    entries: Mutex<Entries>,
}

impl MemoryDenylist {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Denylist for MemoryDenylist {
    async fn deny(&self, jti: &str, expires_at: i64) {
        self.entries().deny(jti, expires_at);
    }

    async fn cut_off(&self, subject: &str, at: i64, until: i64) {
        self.entries().cut_off(subject, at, until);
    }

    async fn refuses(
        &self,
        jti: &str,
        subjects: &[String],
        issued_ms: i64,
    ) -> Result<bool, AppError> {
        Ok(self.refuses_locally(jti, subjects, issued_ms))
    }

    fn refuses_locally(&self, jti: &str, subjects: &[String], issued_ms: i64) -> bool {
        self.entries().refuses(jti, subjects, issued_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cut_off_refuses_tokens_issued_before_it_only() {
        let list = MemoryDenylist::default();
        let now = chrono::Utc::now().timestamp();
        let mine = subjects("u1", "t1", Some("s1"));
        list.cut_off("tenant:t1", now, now + 900).await;
        assert!(list.refuses("a", &mine, now - 1).await.unwrap());
        let same = list.refuses("a", &mine, now).await.unwrap();
        assert!(same, "the same millisecond: refused");
        let after = list.refuses("b", &mine, now + 1).await.unwrap();
        assert!(!after, "issued after: kept");
        assert!(
            !list
                .refuses("c", &subjects("u2", "t2", None), now - 1)
                .await
                .unwrap()
        );
        list.cut_off("session:s1", now + 5, now + 900).await;
        assert!(list.refuses("d", &mine, now + 4).await.unwrap());
        assert!(
            !list
                .refuses("e", &subjects("u1", "t1", Some("s2")), now + 4)
                .await
                .unwrap()
        );
        // A later cut-off of the same subject moves it forward, never back.
        list.cut_off("session:s1", now + 2, now + 900).await;
        assert!(list.refuses("d", &mine, now + 4).await.unwrap());
        list.deny("f", now + 900).await;
        assert!(list.is_denied("f").await.unwrap());
    }
}
