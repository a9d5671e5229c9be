//! Path-prefix routing to upstream services, longest prefix first, on whole path segments.

use std::{sync::Arc, time::Duration};

use agora_shared::config::ConfigError;

use crate::config::GatewayConfig;

/// Where a matched request goes, and what it may send.
#[derive(Debug, Clone)]
pub struct Route {
    pub upstream: Arc<Upstream>,
    /// The configured prefix that matched (a bounded metrics label).
    pub prefix: Arc<str>,
    /// Largest request body on this path.
    pub max_body_bytes: usize,
    /// Whether the path takes uploads (upload rate class, upload body limit).
    pub upload: bool,
}

impl Route {
    /// The service's name.
    pub fn service(&self) -> &str {
        &self.upstream.name
    }

    /// The path and query sent upstream for `path_and_query` (without the mount prefix when
    /// the service is mounted with `strip_prefix`).
    pub fn upstream_path<'a>(&self, path_and_query: &'a str) -> std::borrow::Cow<'a, str> {
        let rest = if self.upstream.strip_prefix {
            path_and_query
                .strip_prefix(self.prefix.trim_end_matches('/'))
                .unwrap_or(path_and_query)
        } else {
            path_and_query
        };
        if rest.is_empty() || rest.starts_with('?') {
            format!("/{rest}").into()
        } else {
            rest.into()
        }
    }

    /// The upstream URL for `path_and_query`.
    pub fn upstream_url(&self, path_and_query: &str) -> String {
        format!(
            "{}{}",
            self.upstream.url,
            self.upstream_path(path_and_query)
        )
    }
}

/// A service behind the gateway, as the proxy reaches it.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    /// Its position in [`Router::upstreams`] (the per-worker connection pools follow it).
    pub index: usize,
    /// Base URL without trailing slash.
    pub url: String,
    /// Where it is reached.
    pub base: Base,
    /// Speak HTTP/2 (prior knowledge, cleartext) instead of HTTP/1.1.
    pub http2: bool,
    pub timeout: Duration,
    max_body_bytes: Option<usize>,
    strip_prefix: bool,
}

/// An upstream's base URL, parsed once: what goes in its requests and where to connect.
#[derive(Debug, Clone)]
pub struct Base {
    /// The URL's authority (HTTP/2 requests carry it in `:authority`).
    pub authority: hyper::http::uri::Authority,
    /// The same as a Host header (HTTP/1.1).
    pub host: hyper::header::HeaderValue,
    /// `host:port` to connect to (port 80 when the URL names none).
    pub address: String,
}

impl Base {
    /// Parses `http://host[:port][/]`; the error says what is wrong.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("must be an http:// URL (TLS to services belongs to the mesh or a sidecar)")?;
        let authority: hyper::http::uri::Authority = rest
            .trim_end_matches('/')
            .parse()
            .map_err(|_| format!("`{url}` is not http://host[:port]"))?;
        let host = hyper::header::HeaderValue::from_str(authority.as_str())
            .map_err(|_| format!("`{url}` is not http://host[:port]"))?;
        let address = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        Ok(Self {
            authority,
            host,
            address,
        })
    }
}

/// The routing table.
#[derive(Debug, Clone, Default)]
pub struct Router {
    entries: Vec<(Arc<str>, Arc<Upstream>)>,
    upstreams: Vec<Arc<Upstream>>,
    upload_prefixes: Vec<String>,
    max_body_bytes: usize,
    upload_max_body_bytes: usize,
}

/// Whether `path` is `prefix` or below it (`/api/v1/teams` matches `/api/v1/teams/x`, not
/// `/api/v1/teamsx`).
pub fn under(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl Router {
    /// The table for a validated configuration (an unusable service URL is an error naming it).
    pub fn new(config: &GatewayConfig) -> Result<Self, ConfigError> {
        let mut entries = Vec::new();
        let mut upstreams = Vec::new();
        for (name, svc) in &config.services {
            let base = Base::parse(&svc.url)
                .map_err(|e| ConfigError::new(format!("gateway.services.{name}.url"), e))?;
            let upstream = Arc::new(Upstream {
                name: name.clone(),
                index: upstreams.len(),
                url: svc.url.trim_end_matches('/').to_owned(),
                base,
                http2: svc.http2,
                timeout: Duration::from_secs(svc.timeout_secs),
                max_body_bytes: svc.max_body_bytes,
                strip_prefix: svc.strip_prefix,
            });
            upstreams.push(upstream.clone());
            for prefix in &svc.prefixes {
                let prefix = prefix.trim_end_matches('/');
                let prefix = if prefix.is_empty() { "/" } else { prefix };
                entries.push((Arc::<str>::from(prefix), upstream.clone()));
            }
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
        Ok(Self {
            entries,
            upstreams,
            upload_prefixes: config.upload_prefixes.clone(),
            max_body_bytes: config.max_body_bytes,
            upload_max_body_bytes: config.upload_max_body_bytes,
        })
    }

    /// Every configured service, in the order of their `index`.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    pub fn find(&self, path: &str) -> Option<Route> {
        let (prefix, upstream) = self.entries.iter().find(|(p, _)| under(p, path))?;
        let upload = self.upload_prefixes.iter().any(|u| under(u, path));
        let default_max = if upload {
            self.upload_max_body_bytes
        } else {
            self.max_body_bytes
        };
        Some(Route {
            upstream: upstream.clone(),
            prefix: prefix.clone(),
            max_body_bytes: upstream.max_body_bytes.unwrap_or(default_max),
            upload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamConfig;

    #[test]
    fn longest_prefix_on_segments() {
        let mut cfg = GatewayConfig::default();
        cfg.services.insert(
            "media".into(),
            UpstreamConfig {
                url: "http://m/".into(),
                prefixes: vec!["/api/v1/teams/media".into()],
                ..Default::default()
            },
        );
        cfg.upload_prefixes = vec!["/api/v1/teams/media/upload".into()];
        let r = Router::new(&cfg).unwrap();
        assert_eq!(r.find("/api/v1/teams").unwrap().service(), "auth");
        assert_eq!(r.find("/api/v1/teams/1").unwrap().service(), "auth");
        let media = r.find("/api/v1/teams/media/x").unwrap();
        assert_eq!(media.service(), "media");
        assert!(!media.upload);
        assert_eq!(media.max_body_bytes, 1024 * 1024);
        let upload = r.find("/api/v1/teams/media/upload/1").unwrap();
        assert!(upload.upload);
        assert_eq!(upload.max_body_bytes, 100 * 1024 * 1024);
        assert_eq!(media.upstream.url, "http://m");
        assert_eq!(media.upstream.base.address, "m:80");
        assert_eq!(media.upstream.base.host, "m");
        assert!(r.find("/api/v1/teamsx").is_none());
        assert!(r.find("/nope").is_none());
        assert_eq!(r.find("/.well-known/jwks.json").unwrap().service(), "auth");
        assert_eq!(
            r.find("/api/v1/teams")
                .unwrap()
                .upstream_url("/api/v1/teams?x=1"),
            "http://127.0.0.1:8081/api/v1/teams?x=1"
        );
    }

    #[test]
    fn upstream_urls_are_plain_http_bases() {
        let b = Base::parse("http://auth.internal:8081/").unwrap();
        assert_eq!(b.address, "auth.internal:8081");
        assert_eq!(b.host, "auth.internal:8081");
        assert_eq!(Base::parse("http://auth").unwrap().address, "auth:80");
        assert!(
            Base::parse("https://auth:8081")
                .unwrap_err()
                .contains("http://")
        );
        assert!(
            Base::parse("http://auth:8081/base").is_err(),
            "a base path would be dropped"
        );
        assert!(Base::parse("http://").is_err());
        let mut cfg = GatewayConfig::default();
        cfg.services.get_mut("tickets").unwrap().url = "https://tickets:8082".into();
        let err = Router::new(&cfg).unwrap_err();
        assert_eq!(err.key, "gateway.services.tickets.url");
    }

    #[test]
    fn strip_prefix_mounts_a_service() {
        let mut cfg = GatewayConfig::default();
        cfg.services.insert(
            "probe".into(),
            UpstreamConfig {
                url: "http://p".into(),
                prefixes: vec!["/probe/auth".into()],
                strip_prefix: true,
                ..Default::default()
            },
        );
        let r = Router::new(&cfg).unwrap();
        let route = r.find("/probe/auth/health/live").unwrap();
        assert_eq!(
            route.upstream_url("/probe/auth/health/live"),
            "http://p/health/live"
        );
        assert_eq!(route.upstream_url("/probe/auth?x"), "http://p/?x");
    }
}
