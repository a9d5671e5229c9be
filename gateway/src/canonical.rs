//! One spelling per path. The services behind the gateway (actix) decode percent-escapes before
//! they route, so `/api/v1/auth/%6Cogin` reaches the login handler; the gateway must route,
//! decide public paths and pick rate-limit classes on the same path or an attacker chooses the
//! cheaper class by spelling. Before anything else sees the request, its path is normalized as
//! RFC 3986 §6.2.2 says: escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded,
//! the remaining escapes get upper-case hex. That is also the path sent upstream. An escape
//! the services would decode into something else (`%20`, `%C3%A9`) cannot spell any route of
//! ours, all of which are unreserved characters and `/`.

use std::borrow::Cow;

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::uri::{PathAndQuery, Uri},
    middleware::Next,
};

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `path` with escaped unreserved characters decoded and other escapes in upper case.
pub fn canonical_path(path: &str) -> Cow<'_, str> {
    let bytes = path.as_bytes();
    if !bytes.contains(&b'%') {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        match escape {
            Some((hi, lo)) if unreserved(hi << 4 | lo) => out.push((hi << 4 | lo) as char),
            Some(_) => out.push_str(&path[i..i + 3].to_ascii_uppercase()),
            None => {
                // Not an escape (a lone `%`): kept as sent; `bytes[i]` starts a char here.
                let c = path[i..].chars().next().unwrap_or('%');
                out.push(c);
                i += c.len_utf8();
                continue;
            }
        }
        i += 3;
    }
    if out == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(out)
    }
}

/// Middleware: rewrites the request's path to its canonical spelling before routing.
pub async fn canonicalize(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let uri = req.uri();
    if let Cow::Owned(path) = canonical_path(uri.path()) {
        let pq = match uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = uri.clone().into_parts();
        // Decoding only removes escapes of characters a path may hold, so both parse.
        if let Ok(pq) = PathAndQuery::try_from(pq) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                req.match_info_mut().get_mut().update(&uri);
                req.head_mut().uri = uri;
            }
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::canonical_path;

    #[test]
    fn escaped_unreserved_characters_are_decoded_and_the_rest_kept() {
        assert_eq!(canonical_path("/api/v1/auth/%6Cogin"), "/api/v1/auth/login");
        assert_eq!(
            canonical_path("/api/v1/auth/%6c%6F%67%69%6e"),
            "/api/v1/auth/login"
        );
        assert_eq!(canonical_path("/a%2fb%2Fc"), "/a%2Fb%2Fc");
        assert_eq!(canonical_path("/a%20b%7e"), "/a%20b~");
        assert_eq!(canonical_path("/plain"), "/plain");
        assert_eq!(canonical_path("/100%"), "/100%");
        assert_eq!(canonical_path("/%zz%4"), "/%zz%4");
        assert_eq!(canonical_path("/%é"), "/%é");
    }
}
