//! The client's address: the TCP peer, or — only when the peer is a trusted proxy — the
//! nearest untrusted hop in X-Forwarded-For.

use std::net::IpAddr;

use ipnet::IpNet;

/// Parses `10.0.0.0/8` or a bare address (a single-host network).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is not an IP address or CIDR network"))
}

/// Resolves client addresses given the trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct ClientIp {
    trusted: Vec<IpNet>,
}

impl ClientIp {
    pub fn new(trusted: &[String]) -> Result<Self, String> {
        Ok(Self {
            trusted: trusted
                .iter()
                .map(|s| parse_net(s))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.is_trusted(ip)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// The client address for a request from `peer` carrying `forwarded_for`.
    pub fn resolve(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let hops = forwarded_for.unwrap_or_default().split(',').rev();
        for hop in hops {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if self.is_trusted(ip) => continue,
                Ok(ip) => return ip,
                Err(_) => break,
            }
        }
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let ips = ClientIp::new(&["10.0.0.0/8".into(), "192.168.1.1".into()]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            ips.resolve(ip("203.0.113.9"), Some("1.2.3.4")),
            ip("203.0.113.9")
        );
        assert_eq!(
            ips.resolve(ip("10.1.1.1"), Some("1.2.3.4, 10.2.2.2")),
            ip("1.2.3.4")
        );
        assert_eq!(
            ips.resolve(ip("192.168.1.1"), Some("5.6.7.8")),
            ip("5.6.7.8")
        );
        assert_eq!(ips.resolve(ip("10.1.1.1"), Some("garbage")), ip("10.1.1.1"));
        assert_eq!(ips.resolve(ip("10.1.1.1"), None), ip("10.1.1.1"));
        assert!(parse_net("nope").is_err());
    }
}
