//! Forwarding a request to its upstream: bodies streamed both ways (never buffered whole,
//! except the small credential bodies the rate limiter reads), hop-by-hop headers dropped,
//! X-Forwarded-* and the request id set, per-route timeout.

use std::{cell::Cell, io, net::IpAddr, rc::Rc};

use actix_web::{
    HttpRequest, HttpResponse,
    body::SizedStream,
    http::{
        StatusCode,
        header::{self, HeaderName, HeaderValue},
    },
    web,
};
use futures::StreamExt;
use http_body_util::BodyExt;

use agora_shared::{AppError, tokens::REVOCATION_CHECKED};

use crate::{
    routing::Route,
    upstream::{Client, Failure, UpBody},
};

/// Headers that belong to one connection, never forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub fn hop_by_hop(name: &HeaderName, connection: Option<&str>) -> bool {
    let n = name.as_str();
    HOP_BY_HOP.contains(&n)
        || connection.is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case(n)))
}

/// What the gateway adds to every forwarded request.
pub struct Forwarded<'a> {
    /// The TCP peer (appended to a trusted proxy's X-Forwarded-For chain).
    pub peer: IpAddr,
    pub client_ip: IpAddr,
    /// X-Forwarded-For as received, when the peer is a trusted proxy.
    pub prior_forwarded_for: Option<&'a str>,
    /// Whether the peer is a trusted proxy, whose X-Forwarded-Proto/-Host (or Forwarded) are
    /// believed; anyone else's are replaced.
    pub trusted_peer: bool,
    pub request_id: &'a str,
    pub traceparent: &'a str,
    /// The gateway's vouch that the caller's access token was found unrevoked just now
    /// (`x-agora-revocation-checked`); a client's own such header is never passed on.
    pub revocation_vouch: Option<&'a str>,
}

/// The request body: already read (credential routes) or still streaming.
pub enum Body {
    Read(web::Bytes),
    Stream(web::Payload),
}

/// Copies end-to-end request headers and adds the forwarding ones, as the upstream leg
/// (hyper) takes them.
pub fn upstream_headers(req: &HttpRequest, fwd: &Forwarded<'_>) -> hyper::HeaderMap {
    let connection = req
        .headers()
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok());
    let mut out = hyper::HeaderMap::with_capacity(req.headers().len() + 5);
    for (name, value) in req.headers() {
        let skip = hop_by_hop(name, connection)
            || name == header::HOST
            || name.as_str().starts_with("x-forwarded-")
            || name == "forwarded"
            || name == "x-request-id"
            || name == "traceparent"
            || name == REVOCATION_CHECKED;
        if skip {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(name.as_str().as_bytes()),
            hyper::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(n, v);
        }
    }
    let xff = match fwd.prior_forwarded_for {
        Some(prior) if !prior.trim().is_empty() => format!("{prior}, {}", fwd.peer),
        _ => fwd.client_ip.to_string(),
    };
    let info;
    let (proto, host) = if fwd.trusted_peer {
        info = req.connection_info();
        (info.scheme(), info.host())
    } else {
        // The gateway itself serves plain HTTP; TLS is terminated by a trusted proxy in front.
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .unwrap_or_default();
        ("http", host)
    };
    for (name, value) in [
        ("x-forwarded-for", xff.as_str()),
        ("x-forwarded-proto", proto),
        ("x-forwarded-host", host),
        ("x-request-id", fwd.request_id),
        ("traceparent", fwd.traceparent),
    ] {
        if let Ok(v) = hyper::header::HeaderValue::from_str(value) {
            out.insert(hyper::header::HeaderName::from_static(name), v);
        }
    }
    if let Some(vouch) = fwd.revocation_vouch
        && let Ok(v) = hyper::header::HeaderValue::from_str(vouch)
    {
        out.insert(
            hyper::header::HeaderName::from_static(REVOCATION_CHECKED),
            v,
        );
    }
    out
}

/// Sends the request upstream and streams the answer back.
pub async fn forward(
    client: &Client,
    req: &HttpRequest,
    route: &Route,
    headers: hyper::HeaderMap,
    body: Body,
) -> Result<HttpResponse, AppError> {
    let path = route.upstream_path(req.uri().path_and_query().map_or("/", |p| p.as_str()));
    let overflow = Rc::new(Cell::new(false));
    // A request without Content-Length or Transfer-Encoding has no body: send none, rather
    // than an empty chunked one.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let body = match body {
        Body::Read(bytes) => UpBody::Full(Some(bytes)),
        Body::Stream(_) if declared.unwrap_or(0) == 0 && !chunked => UpBody::Empty,
        Body::Stream(payload) => {
            let limit = route.max_body_bytes;
            let flag = overflow.clone();
            let mut seen = 0usize;
            let counted = payload.map(move |chunk| {
                let chunk = chunk.map_err(|e| io::Error::other(e.to_string()))?;
                seen += chunk.len();
                if seen > limit {
                    flag.set(true);
                    return Err(io::Error::other("request body too large"));
                }
                Ok(chunk)
            });
            UpBody::Stream {
                chunks: Box::pin(counted),
                length: declared,
            }
        }
    };
    let mut up = hyper::Request::new(body);
    *up.method_mut() = hyper::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| AppError::BadRequest("invalid method".into()))?;
    *up.uri_mut() = path
        .parse()
        .map_err(|_| AppError::BadRequest("invalid request target".into()))?;
    *up.headers_mut() = headers;
    let upstream = &route.upstream;
    let res = match tokio::time::timeout(upstream.timeout, client.send(upstream, up)).await {
        Ok(Ok(res)) => res,
        Ok(Err(failure)) => return Err(upstream_error(route, Some(failure), overflow.get())),
        Err(_) => return Err(upstream_error(route, None, overflow.get())),
    };
    let (parts, incoming) = res.into_parts();
    let status = StatusCode::from_u16(parts.status.as_u16()).map_err(|_| {
        AppError::BadGateway(format!("the {} service failed to answer", upstream.name))
    })?;
    let connection = parts
        .headers
        .get(hyper::header::CONNECTION)
        .and_then(|v| v.to_str().ok());
    let mut out = HttpResponse::build(status);
    let mut length = None;
    for (name, value) in &parts.headers {
        if name == hyper::header::CONTENT_LENGTH {
            length = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
            continue;
        }
        let Ok(name) = HeaderName::from_bytes(name.as_str().as_bytes()) else {
            continue;
        };
        if hop_by_hop(&name, connection) {
            continue;
        }
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            out.append_header((name, value));
        }
    }
    let chunks = incoming.into_data_stream();
    Ok(match length {
        Some(len) => out.body(SizedStream::new(len, chunks)),
        None => out.streaming(chunks),
    })
}

/// The problem for a request its upstream did not answer (`None`: in time).
fn upstream_error(route: &Route, failure: Option<Failure>, overflow: bool) -> AppError {
    let service = route.service();
    if overflow {
        return AppError::PayloadTooLarge(format!(
            "request body exceeds {} bytes",
            route.max_body_bytes
        ));
    }
    let kind = match &failure {
        None => "timeout",
        Some(Failure::Connect(_)) => "connect",
        Some(Failure::Protocol(_)) => "protocol",
    };
    crate::metrics::upstream_error(service, kind);
    match failure {
        None => {
            tracing::warn!(service, "upstream did not answer in time");
            AppError::GatewayTimeout(format!("the {service} service did not answer in time"))
        }
        Some(failure) => {
            tracing::warn!(service, error = %failure, "upstream request failed");
            match failure {
                Failure::Connect(_) => {
                    AppError::BadGateway(format!("the {service} service is unavailable"))
                }
                Failure::Protocol(_) => {
                    AppError::BadGateway(format!("the {service} service failed to answer"))
                }
            }
        }
    }
}
