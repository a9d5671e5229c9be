//! WebSocket pass-through: the client's upgrade is accepted only once the upstream accepted its
//! own, then frames are relayed both ways until either side closes, the connection idles past
//! `gateway.websocket.idle_timeout_secs` or outlives `max_lifetime_secs`. Open connections are
//! bounded per caller and in all, so that no one holds the gateway's sockets.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{HttpRequest, HttpResponse, web};
use awc::ws::{CloseCode, CloseReason, Frame, Message};
use futures::{SinkExt, StreamExt};

use agora_shared::AppError;

use crate::{config::WebSocketLimits, routing::Route};

/// The open relayed connections of this gateway process, per caller.
#[derive(Default)]
pub struct Connections {
    open: Mutex<HashMap<String, u32>>,
}

/// One open connection; dropping it (when the relay ends) frees its place.
pub struct Slot {
    connections: Arc<Connections>,
    caller: String,
}

/// Whom an open connection counts against: the user (whichever of their API keys or sessions
/// they use), or the client's address, an IPv6 client by its /64 (one host's usual share).
pub fn connection_key(caller: Option<&agora_shared::http::Caller>, ip: std::net::IpAddr) -> String {
    match (caller, ip) {
        (Some(c), _) => format!("user:{}", c.user_id),
        (None, std::net::IpAddr::V6(v6)) => {
            let net = u128::from(v6) & !((1u128 << 64) - 1);
            format!("ip:{}/64", std::net::Ipv6Addr::from(net))
        }
        (None, v4) => format!("ip:{v4}"),
    }
}

impl Connections {
    /// A place for one more connection of `caller`, or the problem that says why not.
    pub fn open(
        self: &Arc<Self>,
        caller: String,
        limits: &WebSocketLimits,
    ) -> Result<Slot, AppError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let total: u32 = open.values().sum();
        if total >= limits.max_connections {
            return Err(AppError::Unavailable(format!(
                "the gateway holds its most WebSockets ({}); retry later",
                limits.max_connections
            )));
        }
        // Anonymous callers are counted by address (see `connection_key`).
        let (limit, whom) = match caller.starts_with("ip:") {
            true => (limits.max_per_address, "client address"),
            false => (limits.max_per_caller, "user"),
        };
        let mine = open.entry(caller.clone()).or_default();
        if *mine >= limit {
            return Err(AppError::TooManyRequests {
                detail: format!("at most {limit} open WebSockets per {whom}; close one first"),
                retry_after_secs: 5,
            });
        }
        *mine += 1;
        Ok(Slot {
            connections: self.clone(),
            caller,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

/// Whether the request asks for a WebSocket upgrade.
pub fn is_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Relays the upgrade in `req` to `route`'s service, holding `slot` while it is open.
pub async fn relay(
    client: &awc::Client,
    req: &HttpRequest,
    payload: web::Payload,
    route: &Route,
    headers: hyper::HeaderMap,
    (slot, limits): (Slot, WebSocketLimits),
) -> Result<HttpResponse, AppError> {
    // The client's handshake first: a request that only claims an upgrade costs no upstream
    // connection. Nothing is sent to the client until the upstream accepted too.
    let (response, mut session, mut from_client) = actix_ws::handle(req, payload)
        .map_err(|e| AppError::BadRequest(format!("websocket handshake: {e}")))?;
    let url = route.upstream_url(req.uri().path_and_query().map_or("/", |p| p.as_str()));
    let url = url
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let mut upstream = client.ws(url);
    for (name, value) in &headers {
        if !name.as_str().starts_with("sec-websocket-") {
            upstream = upstream.set_header(name.as_str(), value.as_bytes());
        }
    }
    if let Some(protocols) = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
    {
        upstream = upstream.protocols(protocols.split(',').map(str::trim));
    }
    let (_, framed) = upstream.connect().await.map_err(|err| {
        crate::metrics::upstream_error(route.service(), "websocket");
        tracing::warn!(service = route.service(), error = %err, "websocket upstream failed");
        AppError::BadGateway(format!(
            "the {} service refused the websocket",
            route.service()
        ))
    })?;
    let (mut to_upstream, mut from_upstream) = framed.split();
    let idle = Duration::from_secs(limits.idle_timeout_secs);
    let lifetime = tokio::time::sleep(Duration::from_secs(limits.max_lifetime_secs));
    actix_web::rt::spawn(async move {
        let _slot = slot;
        tokio::pin!(lifetime);
        let ended = |why: &str| CloseReason {
            code: CloseCode::Away,
            description: Some(why.to_owned()),
        };
        let closing = loop {
            let quiet = tokio::time::sleep(idle);
            tokio::select! {
                _ = &mut lifetime => break Some(ended("connection lifetime reached; reconnect")),
                _ = quiet => break Some(ended("idle timeout")),
                msg = from_client.next() => {
                    let Some(Ok(msg)) = msg else { break None };
                    let closing = matches!(msg, Message::Close(_));
                    match tokio::time::timeout(idle, to_upstream.send(msg)).await {
                        Ok(Ok(())) if !closing => {}
                        Ok(_) => break None,
                        Err(_) => break Some(ended("the service stopped reading")),
                    }
                }
                frame = from_upstream.next() => {
                    let Some(Ok(frame)) = frame else { break None };
                    // A client that stops reading blocks the send: bounded like silence.
                    let send = async {
                        match frame {
                            Frame::Text(b) => session.text(String::from_utf8_lossy(&b).into_owned()).await,
                            Frame::Binary(b) => session.binary(b).await,
                            Frame::Ping(b) => session.ping(&b).await,
                            Frame::Pong(b) => session.pong(&b).await,
                            Frame::Continuation(item) => session.continuation(item).await,
                            Frame::Close(reason) => {
                                let _ = session.clone().close(reason).await;
                                Err(actix_ws::Closed)
                            }
                        }
                    };
                    match tokio::time::timeout(idle, send).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break None,
                        Err(_) => break Some(ended("the client stopped reading")),
                    }
                }
            }
        };
        // Closing is bounded too: a peer that reads nothing is dropped, not waited for.
        let grace = Duration::from_secs(1);
        if let Some(reason) = &closing {
            let close = to_upstream.send(Message::Close(Some(reason.clone())));
            let _ = tokio::time::timeout(grace, close).await;
        }
        let _ = tokio::time::timeout(grace, to_upstream.close()).await;
        let _ = tokio::time::timeout(grace, session.close(closing)).await;
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_connections_count_per_address_and_ipv6_per_64() {
        let key = |ip: &str| connection_key(None, ip.parse().unwrap());
        assert_eq!(key("203.0.113.7"), "ip:203.0.113.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "ip:2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff:1:2:3"), key("2001:db8:1:2::9"));
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
    }
}
