//! The HTTP client for URLs that users supply (callbacks, feeds, webhooks): it reaches public
//! addresses only. A URL naming a private, loopback, link-local or otherwise non-public
//! address is refused before any request; a host name is resolved by the client itself and
//! connected to only at the public addresses it resolved to, so a name that resolves (or is
//! made to resolve, between a check and the request) to an internal address reaches nothing.
//! No redirects are followed and no proxy from the environment is used.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is an address of the public internet (not loopback, private, link-local,
/// shared, documentation, benchmarking, multicast, reserved or unspecified; IPv4 inside IPv6
/// judged as IPv4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                return is_public_v4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                // ::/96 (IPv4-compatible, deprecated)
                || (s[0..6] == [0, 0, 0, 0, 0, 0])
                // fc00::/7 unique local
                || (s[0] & 0xfe00) == 0xfc00
                // fe80::/10 link-local, fec0::/10 site-local
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                // 2001:db8::/32 documentation, 2001::/23 IETF special purpose (Teredo and
                // benchmarking among them)
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x2001 && s[1] < 0x0200)
                // 2002::/16 6to4 (wraps any IPv4 address)
                || s[0] == 0x2002
                // 100::/64 discard
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        // 0.0.0.0/8 "this network"
        || o[0] == 0
        // 100.64.0.0/10 shared address space (carrier-grade NAT)
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        // 192.0.0.0/24 IETF protocol assignments
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        // 198.18.0.0/15 benchmarking
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        // 240.0.0.0/4 reserved
        || o[0] >= 240)
}

/// Why a user's URL is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Checks a URL a user gave: `http` or `https`, a host, no credentials in it, and (when
/// `allow_private` is false) not an address outside the public internet. A host name is
/// checked again, at each request, by [`client`].
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, Refused> {
    let parsed = reqwest::Url::parse(url).map_err(|e| Refused(format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Refused("must be an http:// or https:// URL".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Refused("must not carry credentials".into()));
    }
    let host = parsed
        .host()
        .ok_or_else(|| Refused("must name a host".into()))?;
    if !allow_private {
        let ip = match host {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    return Err(Refused("must not name this machine".into()));
                }
                None
            }
        };
        if ip.is_some_and(|ip| !is_public(ip)) {
            return Err(Refused(
                "must not name a private, loopback or otherwise internal address".into(),
            ));
        }
    }
    Ok(parsed)
}

/// Resolves host names, keeping only public addresses (none: the request fails).
#[derive(Debug, Default)]
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| is_public(addr.ip()))
                .collect();
            if resolved.is_empty() {
                return Err(
                    Box::new(Refused(format!("{host} resolves to no public address")))
                        as Box<dyn std::error::Error + Send + Sync>,
                );
            }
            Ok(Box::new(resolved.into_iter()) as Addrs)
        })
    }
}

/// A client for users' URLs: public addresses only (unless `allow_private`, for embedded
/// mode and tests), no redirects, no proxy from the environment, `timeout` per request.
pub fn client(timeout: Duration, allow_private: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("agora/", env!("CARGO_PKG_VERSION")));
    match allow_private {
        true => builder.build(),
        false => builder.dns_resolver(Arc::new(PublicOnly)).build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public_however_spelt() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "2001:db8::1",
            "2002:7f00:1::",
            "ff02::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} counted as public");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} counted as internal");
        }
    }

    #[test]
    fn users_urls_are_checked_before_any_request() {
        for (url, why) in [
            ("ftp://example.com/", "http"),
            ("http://user:pw@example.com/", "credentials"),
            ("http://127.0.0.1:5432/", "internal"),
            ("http://[::1]/", "internal"),
            ("http://[::ffff:169.254.169.254]/", "internal"),
            ("http://2130706433/", "internal"),
            ("http://0x7f.1/", "internal"),
            ("http://localhost:8080/", "this machine"),
            ("http://api.LOCALHOST./", "this machine"),
            ("not a url", "URL"),
        ] {
            let refused = check_url(url, false).unwrap_err();
            assert!(refused.0.contains(why), "{url}: {refused}");
        }
        assert!(check_url("https://hooks.example.com/judge0", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/cb", true).is_ok());
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_this_machine_reaches_nothing() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let guarded = client(Duration::from_secs(2), false).unwrap();
        // localhost passes no URL check, but a name can resolve anywhere: the resolver keeps
        // public addresses only, so the request fails before connecting.
        let err = guarded
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(
            format!("{err:?}").contains("resolves to no public address"),
            "{err:?}"
        );
        let open = client(Duration::from_millis(500), true).unwrap();
        let reached = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = open.get(format!("http://localhost:{port}/")).send().await;
        });
        let accepted = tokio::time::timeout(Duration::from_secs(2), listener.accept());
        let (_, accepted) = tokio::join!(reached, accepted);
        assert!(
            accepted.is_ok(),
            "with private addresses allowed, the request connects"
        );
    }
}
