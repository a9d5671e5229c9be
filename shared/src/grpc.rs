//! gRPC plumbing: a server with `grpc.health.v1` and graceful shutdown, the metadata that carries
//! caller identity and trace context between services, and a client channel builder with connect
//! and request timeouts.

use std::{net::SocketAddr, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, Routes},
    transport::{Channel, Endpoint},
};

use crate::http::{Authenticator, Caller};

/// How long a stopping gRPC server waits for its connections to close.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `routes` (which should include the health service from [`health`]) on `listener`
/// until `shutdown`, letting in-flight calls finish.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(30))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.map_err(Into::into),
        _ = shutdown.cancelled() => {}
    }
    // Graceful shutdown waits for every connection to close; a peer that keeps its channel
    // open must not hold the process, so the drain is bounded like the HTTP server's.
    match tokio::time::timeout(DRAIN, server).await {
        Ok(result) => result?,
        Err(_) => tracing::warn!(
            drain_secs = DRAIN.as_secs(),
            "grpc connections still open after the drain; closing them"
        ),
    }
    Ok(())
}

/// Creates the health reporter and its service, to add to a service's routes.
pub fn health() -> (
    tonic_health::server::HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    tonic_health::server::health_reporter()
}

/// A lazily connecting channel to `addr` with connect and per-request timeouts.
pub fn channel(
    addr: &str,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> anyhow::Result<Channel> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    Ok(Endpoint::from_shared(uri)?
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Client interceptor that forwards the caller's credential and the trace context.
#[derive(Clone, Default)]
pub struct Forward {
    /// `Bearer <token>` of the caller on whose behalf the call is made, if any.
    pub authorization: Option<String>,
    /// The peer secret, for calls to auth (`auth_peer.secret`).
    pub peer_secret: Option<crate::config::Secret>,
}

impl Forward {
    /// Forwards `caller`'s own credential, so the callee applies the caller's identity.
    pub fn for_caller(caller: &Caller) -> Self {
        Self {
            authorization: Some(caller.credential.authorization()),
            peer_secret: None,
        }
    }

    /// Also presents the peer secret (auth answers only Agora's services).
    pub fn with_peer_secret(mut self, secret: Option<&crate::config::Secret>) -> Self {
        self.peer_secret = secret.cloned();
        self
    }
}

impl Interceptor for Forward {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(auth) = &self.authorization {
            let value = MetadataValue::try_from(auth.as_str())
                .map_err(|_| Status::invalid_argument("credential is not valid metadata"))?;
            request.metadata_mut().insert("authorization", value);
        }
        if let Some(secret) = &self.peer_secret {
            let mut value = MetadataValue::try_from(secret.expose())
                .map_err(|_| Status::invalid_argument("peer secret is not valid metadata"))?;
            value.set_sensitive(true);
            request
                .metadata_mut()
                .insert(crate::config::PEER_SECRET_HEADER, value);
        }
        if let Some(tp) = crate::telemetry::current_traceparent()
            && let Ok(value) = MetadataValue::try_from(tp.as_str())
        {
            request.metadata_mut().insert("traceparent", value);
        }
        Ok(request)
    }
}

/// How a service calls a peer as itself: a configured platform-admin API key or token, or
/// tokens auth issues in-process (embedded mode).
#[derive(Clone)]
pub enum ServiceCredential {
    Static(crate::config::Secret),
    Issued(std::sync::Arc<dyn Fn() -> anyhow::Result<String> + Send + Sync>),
}

impl std::fmt::Debug for ServiceCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceCredential(***)")
    }
}

impl ServiceCredential {
    /// `message` as a request carrying the credential (`x-api-key` for an API key).
    pub fn authorize<T>(&self, message: T) -> anyhow::Result<Request<T>> {
        let secret = match self {
            Self::Static(s) => s.expose().to_owned(),
            Self::Issued(issue) => issue()?,
        };
        let mut request = Request::new(message);
        let (name, value) = if secret.starts_with(crate::http::caller::API_KEY_PREFIX) {
            ("x-api-key", secret)
        } else {
            ("authorization", format!("Bearer {secret}"))
        };
        request.metadata_mut().insert(name, value.parse()?);
        Ok(request)
    }
}

/// Server side: the verified caller of a gRPC request (401-equivalent `Unauthenticated` when the
/// credential is missing or invalid).
pub async fn caller<T>(auth: &Authenticator, request: &Request<T>) -> Result<Caller, Status> {
    let md = request.metadata();
    let authorization = md.get("authorization").and_then(|v| v.to_str().ok());
    let api_key = md.get("x-api-key").and_then(|v| v.to_str().ok());
    auth.authenticate(authorization, api_key)
        .await
        .map_err(Status::from)
}

/// The trace context a gRPC request carried, continued, or a new one.
pub fn traceparent<T>(request: &Request<T>) -> String {
    crate::telemetry::continue_or_start_trace(
        request
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok()),
    )
}

/// Binds `addr` (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}
