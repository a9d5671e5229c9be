//! WebSocket pass-through: the client's upgrade is accepted only once the upstream accepted its
//! own, then frames are relayed both ways until either side closes.

use actix_web::{HttpRequest, HttpResponse, web};
use awc::ws::{Frame, Message};
use futures::{SinkExt, StreamExt};

use agora_shared::AppError;

use crate::routing::Route;

/// Whether the request asks for a WebSocket upgrade.
pub fn is_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

pub async fn relay(
    client: &awc::Client,
    req: &HttpRequest,
    payload: web::Payload,
    route: &Route,
    headers: hyper::HeaderMap,
) -> Result<HttpResponse, AppError> {
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
    let (response, mut session, mut from_client) = actix_ws::handle(req, payload)
        .map_err(|e| AppError::BadRequest(format!("websocket handshake: {e}")))?;
    let (mut to_upstream, mut from_upstream) = framed.split();
    actix_web::rt::spawn(async move {
        loop {
            tokio::select! {
                msg = from_client.next() => {
                    let Some(Ok(msg)) = msg else { break };
                    let closing = matches!(msg, Message::Close(_));
                    if to_upstream.send(msg).await.is_err() || closing {
                        break;
                    }
                }
                frame = from_upstream.next() => {
                    let Some(Ok(frame)) = frame else { break };
                    let sent = match frame {
                        Frame::Text(b) => session.text(String::from_utf8_lossy(&b).into_owned()).await,
                        Frame::Binary(b) => session.binary(b).await,
                        Frame::Ping(b) => session.ping(&b).await,
                        Frame::Pong(b) => session.pong(&b).await,
                        Frame::Continuation(item) => session.continuation(item).await,
                        Frame::Close(reason) => {
                            let _ = session.close(reason).await;
                            return;
                        }
                    };
                    if sent.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_upstream.close().await;
        let _ = session.close(None).await;
    });
    Ok(response)
}
