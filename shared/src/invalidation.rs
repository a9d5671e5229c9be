//! Telling caches to forget: a revoked API key, a user whose rights changed, a suspended
//! tenant, a changed key set. With Redis the message reaches every process (pub/sub); without,
//! every service of this process (a broadcast channel), so the embedded platform forgets at
//! once too. The caches also expire on their own, so delivery is best effort.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::redis::{Invalidate, Redis};

/// The in-process channel, shared by every service started with one context.
#[derive(Clone)]
pub struct LocalInvalidations(broadcast::Sender<String>);

impl Default for LocalInvalidations {
    fn default() -> Self {
        Self(broadcast::channel(1024).0)
    }
}

/// Where a service publishes invalidations and from where its caches hear them.
#[derive(Clone)]
pub struct Invalidations {
    pub(crate) redis: Option<Redis>,
    pub(crate) local: LocalInvalidations,
}

impl Invalidations {
    /// Tells every cache to forget `what`: `jwks`, `api_key:<id>`, `user:<id>`, `tenant:<id>`.
    pub async fn publish(&self, what: &str) {
        match &self.redis {
            Some(redis) => redis.publish_invalidation(what).await,
            // No receiver (nothing cached in this process) is not an error.
            None => drop(self.local.0.send(what.to_owned())),
        }
    }

    /// Hands every invalidation to `target` until `shutdown`.
    pub async fn watch(
        self,
        target: Arc<dyn Invalidate>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        if let Some(redis) = self.redis {
            return redis.watch_invalidations(target, shutdown).await;
        }
        let mut rx = self.local.0.subscribe();
        loop {
            let what = tokio::select! {
                got = rx.recv() => match got {
                    Ok(what) => what,
                    // Messages were missed: forget everything instead.
                    Err(broadcast::error::RecvError::Lagged(_)) => "*".to_owned(),
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = shutdown.cancelled() => return Ok(()),
            };
            target.invalidate(&what).await;
        }
    }
}
