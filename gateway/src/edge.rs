//! The one handler every proxied request goes through: route, authenticate, rate-limit,
//! forward.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Instant,
};

use actix_web::{
    HttpMessage, HttpRequest, HttpResponse, ResponseError,
    http::header::{self, HeaderValue},
    web,
};
use futures::StreamExt;

use agora_shared::{
    AppError,
    http::{Caller, Credential, observe::RequestId},
    tokens::{REVOKED, Revocation, RevocationCheck},
};

use crate::{
    Gateway, metrics,
    proxy::{self, Body, Forwarded},
    ratelimit::{Class, Decision, Subject, checks, classify},
    upstream::Client,
    ws,
};

/// Credential bodies are small; this much is read to find the account being tried.
const CREDENTIAL_BODY_LIMIT: usize = 64 * 1024;

pub async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    gw: web::Data<Gateway>,
    client: web::Data<awc::Client>,
    upstreams: web::Data<Client>,
) -> Result<HttpResponse, AppError> {
    let started = Instant::now();
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > gw.config.max_header_bytes {
        return Err(AppError::HeadersTooLarge(format!(
            "request headers exceed {} bytes",
            gw.config.max_header_bytes
        )));
    }
    let path = req.path().to_owned();
    let route = gw
        .router
        .find(&path)
        .ok_or_else(|| AppError::NotFound(format!("no route for {path}")))?;

    let peer = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
    let xff = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let client_ip = gw.client_ip.resolve(peer, xff);
    let trusted_peer = gw.client_ip.trusts(peer);
    let prior_forwarded_for = trusted_peer.then_some(xff).flatten();

    // An access token's revocation is checked below, in the rate limits' round trip.
    let (caller, revocation) = match authenticate(&gw, &req, &path, client_ip).await {
        Err(AppError::Unauthorized(why)) => return failed_auth(&gw, client_ip, why).await,
        other => match other? {
            Some((caller, revocation)) => (Some(caller), revocation),
            None => (None, None),
        },
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > route.max_body_bytes) {
        return Err(AppError::PayloadTooLarge(format!(
            "request body exceeds {} bytes",
            route.max_body_bytes
        )));
    }

    let class = classify(req.method().as_str(), &path, route.upload);
    let (body, account) = if class == Class::Credential {
        let bytes = read_small(payload).await?;
        let account = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("email").and_then(|e| e.as_str()).map(str::to_owned));
        (Body::Read(bytes), account)
    } else {
        (Body::Stream(payload), None)
    };

    let subject = match &caller {
        Some(c) => Subject::Caller {
            id: match &c.credential {
                Credential::ApiKey { key_id, .. } => key_id,
                Credential::Jwt { .. } => &c.user_id,
            },
            plan: c.plan.as_deref(),
        },
        None => Subject::Anonymous { ip: client_ip },
    };
    let checks = checks(
        &gw.config.rate_limits,
        class,
        &path,
        client_ip,
        &subject,
        account.as_deref(),
    );
    let denylist = gw.auth.verifier.denylist().as_ref();
    let admission = gw
        .limits
        .admit(revocation.as_ref().map(|c| (denylist, c)), &checks)
        .await?;
    if admission.revoked {
        return failed_auth(&gw, client_ip, REVOKED.into()).await;
    }
    // Checked just now: the service behind need not ask again.
    let vouch = revocation
        .as_ref()
        .and_then(|c| gw.auth.verifier.vouch_for(&c.jti));
    let mut reported: Option<Decision> = None;
    for decision in admission.decisions {
        if !decision.allowed {
            metrics::rate_limited(class.as_str());
            let mut resp = AppError::TooManyRequests {
                detail: "rate limit exceeded; retry after the time in Retry-After".into(),
                retry_after_secs: decision.retry_after_secs,
            }
            .error_response();
            rate_limit_headers(&mut resp, &decision);
            return Ok(resp);
        }
        if reported.is_none_or(|r| decision.remaining < r.remaining) {
            reported = Some(decision);
        }
    }

    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let traceparent = agora_shared::telemetry::current_traceparent().unwrap_or_default();
    let headers = proxy::upstream_headers(
        &req,
        &Forwarded {
            peer,
            client_ip,
            prior_forwarded_for,
            trusted_peer,
            request_id: &request_id,
            traceparent: &traceparent,
            revocation_vouch: vouch.as_deref(),
        },
    );
    let result = match body {
        Body::Stream(payload) if ws::is_upgrade(&req) => {
            let limits = gw.config.websocket;
            match gw
                .websockets
                .open(ws::connection_key(caller.as_ref(), client_ip), &limits)
            {
                Ok(slot) => {
                    ws::relay(&client, &req, payload, &route, headers, (slot, limits)).await
                }
                Err(refused) => Err(refused),
            }
        }
        body => proxy::forward(&upstreams, &req, &route, headers, body).await,
    };
    let mut resp = result.unwrap_or_else(|err| err.error_response());
    if let Some(decision) = reported {
        rate_limit_headers(&mut resp, &decision);
    }
    metrics::proxied(
        route.service(),
        &route.prefix,
        resp.status(),
        started.elapsed().as_secs_f64(),
    );
    Ok(resp)
}

/// The verified caller, or `None` on public routes, with its access token's revocation check
/// still to make. Two different credentials are refused everywhere, so one cannot be smuggled
/// past the edge behind another.
async fn authenticate(
    gw: &Gateway,
    req: &HttpRequest,
    path: &str,
    client_ip: IpAddr,
) -> Result<Option<(Caller, Option<RevocationCheck>)>, AppError> {
    let value = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    };
    let authorization = value("authorization");
    let api_key = value("x-api-key");
    if gw.is_public(path) {
        let bearer = authorization
            .as_deref()
            .and_then(|a| a.split_once(' '))
            .map(|(_, t)| t.trim());
        if let (Some(a), Some(b)) = (bearer, api_key.as_deref())
            && a != b.trim()
        {
            return Err(AppError::Unauthorized(
                "two different credentials presented".into(),
            ));
        }
        return Ok(None);
    }
    if authorization.is_some() || api_key.is_some() {
        let blocked = gw
            .auth_blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&client_ip)
            .copied();
        if let Some(until) = blocked.filter(|until| *until > Instant::now()) {
            return Err(AppError::TooManyRequests {
                detail: "too many failed authentications from this address; retry later".into(),
                retry_after_secs: until
                    .saturating_duration_since(Instant::now())
                    .as_secs()
                    .max(1),
            });
        }
    }
    gw.auth
        .authenticate_with(
            authorization.as_deref(),
            api_key.as_deref(),
            Revocation::Defer,
        )
        .await
        .map(Some)
}

/// A credential failed verification: counted against the client IP's failed-auth budget (in
/// the rate-limit store, so shared by replicas with Redis); past it, the IP's credentials are
/// refused before they cost another verification until the budget refills.
async fn failed_auth(
    gw: &Gateway,
    client_ip: IpAddr,
    why: String,
) -> Result<HttpResponse, AppError> {
    let quota = gw.config.rate_limits.auth_failures;
    let decision = gw
        .limits
        .check(&format!("auth_failed:{client_ip}"), quota)
        .await?;
    if decision.allowed {
        return Err(AppError::Unauthorized(why));
    }
    metrics::rate_limited("auth_failures");
    let until = Instant::now() + std::time::Duration::from_secs(decision.retry_after_secs);
    gw.auth_blocked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .put(client_ip, until);
    Err(AppError::TooManyRequests {
        detail: "too many failed authentications from this address; retry later".into(),
        retry_after_secs: decision.retry_after_secs,
    })
}

async fn read_small(mut payload: web::Payload) -> Result<web::Bytes, AppError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("body: {e}")))?;
        if body.len() + chunk.len() > CREDENTIAL_BODY_LIMIT {
            return Err(AppError::PayloadTooLarge(format!(
                "request body exceeds {CREDENTIAL_BODY_LIMIT} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn rate_limit_headers(resp: &mut HttpResponse, d: &Decision) {
    let headers = resp.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", d.limit.to_string()),
        ("ratelimit-remaining", d.remaining.to_string()),
        ("ratelimit-reset", d.reset_secs.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(header::HeaderName::from_static(name), v);
        }
    }
}
