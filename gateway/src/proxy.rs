//! Forwarding a request to its upstream: bodies streamed both ways (never buffered whole,
//! except the small credential bodies the rate limiter reads), hop-by-hop headers dropped,
//! X-Forwarded-* and the request id set, per-route timeout.

use std::{cell::Cell, net::IpAddr, rc::Rc};

use actix_web::{
    HttpRequest, HttpResponse,
    body::SizedStream,
    http::header::{self, HeaderMap, HeaderName},
    web,
};
use futures::StreamExt;

use agora_shared::AppError;

use crate::routing::Route;

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
    pub request_id: &'a str,
    pub traceparent: &'a str,
}

/// The request body: already read (credential routes) or still streaming.
pub enum Body {
    Read(web::Bytes),
    Stream(web::Payload),
}

/// Copies end-to-end request headers and adds the forwarding ones.
pub fn upstream_headers(req: &HttpRequest, fwd: &Forwarded<'_>) -> HeaderMap {
    let connection = req
        .headers()
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok());
    let mut out = HeaderMap::new();
    for (name, value) in req.headers() {
        let skip = hop_by_hop(name, connection)
            || name == header::HOST
            || name.as_str().starts_with("x-forwarded-")
            || name == "forwarded"
            || name == "x-request-id"
            || name == "traceparent";
        if !skip {
            out.append(name.clone(), value.clone());
        }
    }
    let xff = match fwd.prior_forwarded_for {
        Some(prior) if !prior.trim().is_empty() => format!("{prior}, {}", fwd.peer),
        _ => fwd.client_ip.to_string(),
    };
    let host = req.connection_info().host().to_owned();
    let proto = req.connection_info().scheme().to_owned();
    for (name, value) in [
        ("x-forwarded-for", xff),
        ("x-forwarded-proto", proto),
        ("x-forwarded-host", host),
        ("x-request-id", fwd.request_id.to_owned()),
        ("traceparent", fwd.traceparent.to_owned()),
    ] {
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            out.insert(HeaderName::from_static(name), v);
        }
    }
    out
}

/// Sends the request upstream and streams the answer back.
pub async fn forward(
    client: &awc::Client,
    req: &HttpRequest,
    route: &Route,
    headers: HeaderMap,
    body: Body,
) -> Result<HttpResponse, AppError> {
    let url = route.upstream_url(req.uri().path_and_query().map_or("/", |p| p.as_str()));
    let mut up = client
        .request(req.method().clone(), url)
        .timeout(route.timeout)
        .no_decompress();
    *up.headers_mut() = headers;
    let overflow = Rc::new(Cell::new(false));
    // A request without Content-Length or Transfer-Encoding has no body: send none, rather
    // than an empty chunked one.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let sent = match body {
        Body::Read(bytes) => up.send_body(bytes).await,
        Body::Stream(_) if declared.unwrap_or(0) == 0 && !chunked => up.send().await,
        Body::Stream(payload) => {
            let limit = route.max_body_bytes;
            let flag = overflow.clone();
            let mut seen = 0usize;
            let counted = payload.map(move |chunk| {
                let chunk = chunk?;
                seen += chunk.len();
                if seen > limit {
                    flag.set(true);
                    return Err(actix_web::error::PayloadError::Overflow);
                }
                Ok(chunk)
            });
            match declared {
                Some(len) => up.send_body(SizedStream::new(len, counted)).await,
                None => up.send_stream(counted).await,
            }
        }
    };
    let res = sent
        .map_err(|err| upstream_error(&route.service, err, overflow.get(), route.max_body_bytes))?;
    let connection = res
        .headers()
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut out = HttpResponse::build(res.status());
    let mut length = None;
    for (name, value) in res.headers() {
        if name == header::CONTENT_LENGTH {
            length = value.to_str().ok().and_then(|v| v.parse::<u64>().ok());
        } else if !hop_by_hop(name, connection.as_deref()) {
            out.append_header((name.clone(), value.clone()));
        }
    }
    Ok(match length {
        Some(len) => out.body(SizedStream::new(len, res)),
        None => out.streaming(res),
    })
}

fn upstream_error(
    service: &str,
    err: awc::error::SendRequestError,
    overflow: bool,
    limit: usize,
) -> AppError {
    use awc::error::SendRequestError as E;
    if overflow {
        return AppError::PayloadTooLarge(format!("request body exceeds {limit} bytes"));
    }
    let kind = match &err {
        E::Timeout => "timeout",
        E::Connect(_) => "connect",
        _ => "protocol",
    };
    crate::metrics::upstream_error(service, kind);
    tracing::warn!(service, error = %err, "upstream request failed");
    match err {
        E::Timeout => {
            AppError::GatewayTimeout(format!("the {service} service did not answer in time"))
        }
        E::Connect(_) => AppError::BadGateway(format!("the {service} service is unavailable")),
        _ => AppError::BadGateway(format!("the {service} service failed to answer")),
    }
}
