//! The proxy's upstream leg: one client per gateway worker on hyper's connection API.
//!
//! Each worker keeps its own connections (no locks, no cross-thread wakeups): for an HTTP/1.1
//! upstream a pool of keep-alive connections, one request at a time on each; for an HTTP/2
//! upstream one multiplexed connection that every request of the worker shares, so under load
//! many requests travel in one write and their answers in one read. A request that could not
//! be written on a pooled connection (the upstream closed it while idle, or is going away) is
//! sent on a new connection; once sent, a request is sent again only when the upstream refused
//! its HTTP/2 stream unprocessed (a GOAWAY below its id, or REFUSED_STREAM: RFC 9113 section
//! 8.7) and its body was read whole, never a streamed one.

use std::{
    cell::RefCell,
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::{Stream, stream::LocalBoxStream};
use hyper::{
    Request, Response, Uri,
    body::{Bytes, Frame, Incoming, SizeHint},
    client::conn::{http1, http2},
    http::uri::Scheme,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::routing::{Router, Upstream};

/// Idle HTTP/1.1 connections kept per upstream and worker.
const MAX_IDLE: usize = 64;

/// Why a request got no answer from its upstream.
#[derive(Debug)]
pub enum Failure {
    /// No connection could be made.
    Connect(io::Error),
    /// The connection failed or the upstream broke the protocol.
    Protocol(hyper::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Protocol(e) => write!(f, "{e}"),
        }
    }
}

/// A request body on its way upstream: none, already read, or streamed from the client.
pub enum UpBody {
    Empty,
    Full(Option<Bytes>),
    Stream {
        chunks: LocalBoxStream<'static, Result<Bytes, io::Error>>,
        /// The declared length, when there is one.
        length: Option<u64>,
    },
}

impl hyper::body::Body for UpBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Stream { chunks, .. } => Pin::new(chunks)
                .poll_next(cx)
                .map(|c| c.map(|c| c.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Full(bytes) => bytes.is_none(),
            Self::Stream { length, .. } => *length == Some(0),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Stream {
                length: Some(n), ..
            } => SizeHint::with_exact(*n),
            Self::Stream { .. } => SizeHint::default(),
        }
    }
}

/// Runs hyper's connection tasks on the worker's own thread (request bodies read from the
/// client are not `Send`).
#[derive(Clone, Copy)]
struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

/// One worker's connections to every upstream.
pub struct Client {
    pools: Vec<Pool>,
}

struct Pool {
    upstream: Arc<Upstream>,
    idle: RefCell<Vec<http1::SendRequest<UpBody>>>,
    /// The HTTP/2 connection the worker's requests share, numbered so that a request dropping
    /// the one that failed it never drops a newer one another request has opened since.
    shared: RefCell<Option<(u64, http2::SendRequest<UpBody>)>>,
    opened: std::cell::Cell<u64>,
}

impl Client {
    pub fn new(router: &Router) -> Self {
        Self {
            pools: router
                .upstreams()
                .iter()
                .map(|u| Pool {
                    upstream: u.clone(),
                    idle: RefCell::new(Vec::new()),
                    shared: RefCell::new(None),
                    opened: std::cell::Cell::new(0),
                })
                .collect(),
        }
    }

    /// Sends `req` to `upstream` and returns its answer's head (the body follows as it comes).
    /// `req`'s URI is the path and query; the scheme and authority are the upstream's.
    pub async fn send(
        &self,
        upstream: &Upstream,
        mut req: Request<UpBody>,
    ) -> Result<Response<Incoming>, Failure> {
        let pool = &self.pools[upstream.index];
        if upstream.http2 {
            // HTTP/2 carries the scheme and authority in the request; hyper takes them from
            // the URI.
            let mut uri = std::mem::take(req.uri_mut()).into_parts();
            uri.scheme = Some(Scheme::HTTP);
            uri.authority = Some(upstream.base.authority.clone());
            *req.uri_mut() = Uri::from_parts(uri)
                .map_err(|e| Failure::Connect(io::Error::other(format!("upstream URI: {e}"))))?;
            pool.send_h2(req).await
        } else {
            req.headers_mut()
                .insert(hyper::header::HOST, upstream.base.host.clone());
            pool.send_h1(req).await
        }
    }
}

impl Pool {
    async fn connect(&self) -> Result<TokioIo<TcpStream>, Failure> {
        let tcp = TcpStream::connect(self.upstream.base.address.as_str())
            .await
            .map_err(Failure::Connect)?;
        tcp.set_nodelay(true).map_err(Failure::Connect)?;
        Ok(TokioIo::new(tcp))
    }

    async fn send_h1(&self, req: Request<UpBody>) -> Result<Response<Incoming>, Failure> {
        let pooled = {
            let mut idle = self.idle.borrow_mut();
            idle.retain(|c| !c.is_closed());
            idle.iter()
                .rposition(http1::SendRequest::is_ready)
                .map(|i| idle.swap_remove(i))
        };
        let req = match pooled {
            Some(mut conn) => match conn.try_send_request(req).await {
                Ok(res) => return Ok(self.keep(conn, res)),
                Err(mut e) => match e.take_message() {
                    Some(req) => req,
                    None => return Err(Failure::Protocol(e.into_error())),
                },
            },
            None => req,
        };
        let (mut conn, connection) = http1::handshake(self.connect().await?)
            .await
            .map_err(Failure::Protocol)?;
        tokio::task::spawn_local(connection);
        conn.ready().await.map_err(Failure::Protocol)?;
        let res = conn.send_request(req).await.map_err(Failure::Protocol)?;
        Ok(self.keep(conn, res))
    }

    /// Keeps an HTTP/1.1 connection for later requests; it takes one again once the answer's
    /// body has been read.
    fn keep(
        &self,
        conn: http1::SendRequest<UpBody>,
        res: Response<Incoming>,
    ) -> Response<Incoming> {
        let mut idle = self.idle.borrow_mut();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        res
    }

    async fn send_h2(&self, req: Request<UpBody>) -> Result<Response<Incoming>, Failure> {
        let again = replayable(&req);
        let mut used = 0;
        let err = match self.send_h2_once(req, &mut used).await {
            Err(Failure::Protocol(e)) => e,
            other => return other,
        };
        let (Some(refusal), Some(req)) = (refused_unprocessed(&err), again) else {
            return Err(Failure::Protocol(err));
        };
        crate::metrics::upstream_replayed(&self.upstream.name);
        if refusal == Refusal::GoAway {
            // That connection is going away: this request and the next ones open a new one.
            let mut shared = self.shared.borrow_mut();
            if shared.as_ref().is_some_and(|(n, _)| *n == used) {
                shared.take();
            }
        }
        // A refused stream alone says nothing against its connection: sent again on it.
        self.send_h2_once(req, &mut used).await
    }

    /// Sends `req` on the shared connection, or on a new one (then shared) when there is
    /// none or it could not take the request; `used` is set to the connection's number.
    async fn send_h2_once(
        &self,
        req: Request<UpBody>,
        used: &mut u64,
    ) -> Result<Response<Incoming>, Failure> {
        let shared = self
            .shared
            .borrow()
            .as_ref()
            .filter(|(_, c)| !c.is_closed())
            .cloned();
        let req = match shared {
            // A connection that cannot take a stream any more sent nothing of this request
            // and hands it back: a new connection takes it.
            Some((n, mut conn)) => {
                *used = n;
                match conn.try_send_request(req).await {
                    Ok(res) => return Ok(res),
                    Err(mut e) => match e.take_message() {
                        Some(req) => req,
                        None => return Err(Failure::Protocol(e.into_error())),
                    },
                }
            }
            None => req,
        };
        let mut builder = http2::Builder::new(LocalExec);
        builder.timer(TokioTimer::new());
        let (mut conn, connection) = builder
            .handshake(self.connect().await?)
            .await
            .map_err(Failure::Protocol)?;
        tokio::task::spawn_local(connection);
        let n = self.opened.get() + 1;
        self.opened.set(n);
        *used = n;
        *self.shared.borrow_mut() = Some((n, conn.clone()));
        conn.ready().await.map_err(Failure::Protocol)?;
        conn.send_request(req).await.map_err(Failure::Protocol)
    }
}

/// A copy of `req` to send again, when its body was read whole (a streamed body is consumed
/// by the first attempt).
fn replayable(req: &Request<UpBody>) -> Option<Request<UpBody>> {
    let body = match req.body() {
        UpBody::Empty => UpBody::Empty,
        UpBody::Full(bytes) => UpBody::Full(bytes.clone()),
        UpBody::Stream { .. } => return None,
    };
    let mut copy = Request::new(body);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// How an upstream refused a stream it never processed.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// A GOAWAY without error whose last stream is below it: the connection is closing.
    GoAway,
    /// A REFUSED_STREAM reset of this stream alone.
    Stream,
}

/// Whether the upstream refused the request's HTTP/2 stream before processing any of it. RFC
/// 9113 section 8.7 makes both kinds safe to send again, whatever the method.
fn refused_unprocessed(err: &hyper::Error) -> Option<Refusal> {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            let reason = h2.reason();
            return match () {
                _ if !h2.is_remote() => None,
                _ if h2.is_go_away() && reason == Some(h2::Reason::NO_ERROR) => {
                    Some(Refusal::GoAway)
                }
                _ if h2.is_reset() && reason == Some(h2::Reason::REFUSED_STREAM) => {
                    Some(Refusal::Stream)
                }
                _ => None,
            };
        }
        source = cause.source();
    }
    None
}
