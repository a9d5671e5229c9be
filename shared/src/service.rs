//! What the binary needs to start a service: the shared context handed to each service's
//! `start`, and the handle a started service returns.

use std::{net::SocketAddr, sync::Arc};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    bus::SharedBus,
    config::{CommonConfig, ConfigSource},
    tokens::Denylist,
};

/// Everything a service gets from the process that runs it.
#[derive(Clone)]
pub struct ServiceContext {
    pub common: CommonConfig,
    pub config: ConfigSource,
    pub bus: SharedBus,
    /// Revoked access tokens, shared by every service of this process.
    pub denylist: Arc<dyn Denylist>,
    /// Apply migrations at start (always in embedded mode; opt-in in distributed mode).
    pub migrate_on_start: bool,
}

/// A service started in this process, whose addresses replace the configured ones of its
/// peers (embedded mode binds what it can and tells the others).
#[derive(Debug, Clone)]
pub struct Discovered {
    pub name: String,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
}

impl Discovered {
    /// The started service called `name`, if any.
    pub fn find<'a>(all: &'a [Discovered], name: &str) -> Option<&'a Discovered> {
        all.iter().find(|d| d.name == name)
    }
}

/// A started service: where it listens and the tasks that make it up.
pub struct RunningService {
    pub name: &'static str,
    pub http_addr: SocketAddr,
    /// Where its gRPC API listens (services without one: `None`).
    pub grpc_addr: Option<SocketAddr>,
    /// Its HTTP server, gRPC server and background jobs; they end after `shutdown` fires.
    pub tasks: JoinSet<anyhow::Result<()>>,
    /// Cancelled when any task fails, so the rest of the process stops instead of limping on.
    pub shutdown: CancellationToken,
}

impl RunningService {
    /// Waits for every task; the first failure is returned.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut result = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            let outcome = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(err) = outcome
                && result.is_ok()
            {
                self.shutdown.cancel();
                result = Err(err.context(format!("{} stopped", self.name)));
            }
        }
        result
    }
}

/// Runs an actix server until `shutdown`, then stops it gracefully (in-flight requests finish).
pub async fn run_http(
    server: actix_web::dev::Server,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let handle = server.handle();
    let stopper = tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop(true).await;
    });
    let result = server.await;
    stopper.abort();
    result.map_err(Into::into)
}
