//! Outbound HTTP destinations: the entries of `capabilities.outbound_http`.
//!
//! An entry is `scheme://host[:port]`: the scheme is `http` or `https`; the host is a
//! name (`api.example.com`), a subdomain wildcard (`*.example.com`, which does not
//! match `example.com` itself), an IPv4 literal, a bracketed IPv6 literal, or a CIDR
//! range of either (`10.0.0.0/8`, `[fd00::/8]`); the port is a number or `*`, and
//! defaults to the scheme's (80, 443). Entries carry no path. Hosts compare
//! case-insensitively and without a trailing dot.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The scheme of an outbound entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The port used when none is written.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The host part of an outbound entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// An exact DNS name, lowercase, without a trailing dot.
    Name(String),
    /// `*.suffix`: any name strictly below `suffix`.
    Subdomains(String),
    /// An IP range; a single address is a range of full length.
    Ip {
        /// The network address.
        addr: IpAddr,
        /// The prefix length.
        prefix: u8,
    },
}

/// The port part of an outbound entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortPattern {
    /// Exactly this port.
    Port(u16),
    /// Any port.
    Any,
}

/// One parsed entry of `outbound_http`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutboundPattern {
    /// The scheme.
    pub scheme: Scheme,
    /// The host or range.
    pub host: HostPattern,
    /// The port.
    pub port: PortPattern,
    /// The entry as the author wrote it (for messages).
    pub original: String,
}

/// Normalizes a DNS name for comparison: lowercase, no trailing dot.
pub fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Parses `addr` or `addr/prefix` for IPv4 or (unbracketed) IPv6.
fn parse_ip_range(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => {
            let p: u8 = p.parse().ok()?;
            if p > max {
                return None;
            }
            p
        }
        None => max,
    };
    // An IPv4-mapped entry (`::ffff:10.0.0.1`) means its IPv4 address: requests are
    // matched in canonical form, so as IPv6 it could never match.
    if let IpAddr::V6(v6) = addr {
        if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96) {
            return Some((mask(IpAddr::V4(v4), prefix - 96), prefix - 96));
        }
    }
    Some((mask(addr, prefix), prefix))
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

impl FromStr for OutboundPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let hint = "write `scheme://host[:port]`, like `https://api.example.com`, `https://*.example.com`, `http://127.0.0.1:8080` or `http://10.0.0.0/8:*`";
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("invalid outbound destination `{s}`: {hint}"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => {
                return Err(format!(
                    "invalid outbound destination `{s}`: scheme `{other}` is not supported (use `http` or `https`)"
                ))
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['?', '#', '@']) {
            return Err(format!(
                "invalid outbound destination `{s}`: no user, query or fragment; {hint}"
            ));
        }
        // Split host and port. IPv6 is bracketed: `[::1]:8080`, `[fd00::/8]:*`.
        let (host_str, port_str) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, after) = inner.split_once(']').ok_or_else(|| {
                format!("invalid outbound destination `{s}`: unclosed `[` in IPv6 address")
            })?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("invalid outbound destination `{s}`: {hint}"))?,
                ),
            };
            (h, port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port_str {
            None => PortPattern::Port(scheme.default_port()),
            Some("*") => PortPattern::Any,
            Some(p) => PortPattern::Port(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(
                || format!("invalid outbound destination `{s}`: port `{p}` is not a number from 1 to 65535 or `*`"),
            )?),
        };
        let host = if let Some((addr, prefix)) = parse_ip_range(host_str) {
            HostPattern::Ip { addr, prefix }
        } else if host_str.contains('/') {
            return Err(format!(
                "invalid outbound destination `{s}`: entries have no path; an IP range is written `10.0.0.0/8`; {hint}"
            ));
        } else if let Some(suffix) = host_str.strip_prefix("*.") {
            let suffix = normalize_host(suffix);
            if !valid_dns_name(&suffix) || !suffix.contains('.') && suffix.len() < 2 {
                return Err(format!(
                    "invalid outbound destination `{s}`: `{host_str}` is not a valid wildcard"
                ));
            }
            HostPattern::Subdomains(suffix)
        } else {
            let name = normalize_host(host_str);
            if host_str.contains('*') {
                return Err(format!(
                    "invalid outbound destination `{s}`: `*` is allowed only as a whole first label (`*.example.com`)"
                ));
            }
            if !valid_dns_name(&name) {
                return Err(format!(
                    "invalid outbound destination `{s}`: `{host_str}` is not a valid host name"
                ));
            }
            HostPattern::Name(name)
        };
        Ok(OutboundPattern {
            scheme,
            host,
            port,
            original: s.to_owned(),
        })
    }
}

impl fmt::Display for OutboundPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl Serialize for OutboundPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OutboundPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for OutboundPattern {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OutboundPattern".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "`scheme://host[:port]`: `https://api.example.com`, `https://*.example.com`, `http://127.0.0.1:8080`, `http://10.0.0.0/8:*`. No path.",
            "pattern": "^(?i)https?://",
        })
    }
}

/// A destination the guest asked for, as the host sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// A DNS name (normalized by the matcher).
    Name(&'a str),
    /// An IP literal.
    Ip(IpAddr),
}

impl OutboundPattern {
    /// Whether this entry allows `scheme://host:port`. A name entry never matches an IP
    /// literal and an IP entry never matches a name.
    pub fn matches(&self, scheme: Scheme, host: &Host<'_>, port: u16) -> bool {
        if self.scheme != scheme {
            return false;
        }
        if let PortPattern::Port(p) = self.port {
            if p != port {
                return false;
            }
        }
        match (&self.host, host) {
            (HostPattern::Name(n), Host::Name(h)) => *n == normalize_host(h),
            (HostPattern::Subdomains(suffix), Host::Name(h)) => {
                let h = normalize_host(h);
                h.strip_suffix(suffix.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
            }
            (HostPattern::Ip { .. }, Host::Ip(ip)) => self.contains_ip(*ip),
            _ => false,
        }
    }

    /// Whether this entry is an IP range that contains `ip` (any scheme and port).
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        match self.host {
            HostPattern::Ip { addr, prefix } => {
                addr.is_ipv4() == ip.is_ipv4() && mask(ip, prefix) == addr
            }
            _ => false,
        }
    }
}

/// Maps IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) to plain IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Whether an address is in a range that outbound HTTP refuses unless it is listed
/// explicitly: loopback, private (RFC 1918, ULA), link-local, CGNAT, unspecified,
/// multicast, broadcast, documentation and cloud metadata addresses, and the IPv6
/// forms that carry an IPv4 address (NAT64, 6to4, IPv4-compatible, IPv4-mapped).
pub fn is_special_address(ip: IpAddr) -> bool {
    match canonical_ip(ip) {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 CGNAT
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 IETF
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(a) => {
            let seg = a.segments();
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local (incl. fd00:ec2::254)
                || (seg[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x0064 && seg[1] == 0xff9b) // NAT64: 64:ff9b::/96 and 64:ff9b:1::/48
                || (seg[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated, still routed)
                || seg[0] == 0x2002 // 2002::/16 6to4: an IPv4 address inside
                || seg[..6] == [0; 6] // ::/96 IPv4-compatible: ::10.0.0.1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> OutboundPattern {
        s.parse().unwrap()
    }

    #[test]
    fn parse_forms() {
        assert_eq!(p("https://api.example.com").port, PortPattern::Port(443));
        assert_eq!(p("http://example.com").port, PortPattern::Port(80));
        assert_eq!(p("http://example.com:*").port, PortPattern::Any);
        assert_eq!(
            p("HTTPS://API.Example.COM.").host,
            HostPattern::Name("api.example.com".into())
        );
        assert_eq!(
            p("http://[::1]:8080").host,
            HostPattern::Ip {
                addr: "::1".parse().unwrap(),
                prefix: 128
            }
        );
        assert_eq!(
            p("http://10.1.2.3/8:*").host,
            HostPattern::Ip {
                addr: "10.0.0.0".parse().unwrap(),
                prefix: 8
            }
        );
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://ex*ample.com",
            "https://example.com:0",
            "https://example.com:99999",
            "https://user@example.com",
            "https://[::1",
            "http://10.0.0.0/33",
        ] {
            assert!(bad.parse::<OutboundPattern>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn matching() {
        let name = Host::Name;
        assert!(p("https://api.example.com").matches(
            Scheme::Https,
            &name("API.example.com."),
            443
        ));
        assert!(!p("https://api.example.com").matches(Scheme::Http, &name("api.example.com"), 443));
        assert!(!p("https://api.example.com").matches(
            Scheme::Https,
            &name("api.example.com"),
            8443
        ));
        assert!(p("https://api.example.com:*").matches(
            Scheme::Https,
            &name("api.example.com"),
            8443
        ));
        let w = p("https://*.example.com");
        assert!(w.matches(Scheme::Https, &name("a.example.com"), 443));
        assert!(w.matches(Scheme::Https, &name("a.b.example.com"), 443));
        assert!(!w.matches(Scheme::Https, &name("example.com"), 443));
        assert!(!w.matches(Scheme::Https, &name("badexample.com"), 443));
        // A name entry never grants an IP literal.
        assert!(!p("http://localhost:80").matches(
            Scheme::Http,
            &Host::Ip("127.0.0.1".parse().unwrap()),
            80
        ));
        let r = p("http://10.0.0.0/8:*");
        assert!(r.matches(Scheme::Http, &Host::Ip("10.9.8.7".parse().unwrap()), 1234));
        assert!(!r.matches(Scheme::Http, &Host::Ip("11.0.0.1".parse().unwrap()), 80));
        assert!(p("http://127.0.0.1:*").contains_ip("::ffff:127.0.0.1".parse().unwrap()));
        // An IPv4-mapped entry is its IPv4 address (requests are matched canonically).
        let mapped = p("http://[::ffff:10.0.0.1]");
        assert!(mapped.matches(Scheme::Http, &Host::Ip("10.0.0.1".parse().unwrap()), 80));
        assert!(mapped.contains_ip("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!mapped.contains_ip("10.0.0.2".parse().unwrap()));
        assert!(p("http://[::ffff:10.0.0.0/104]:*").contains_ip("10.200.0.1".parse().unwrap()));
    }

    #[test]
    fn special_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.1.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:a00:1::1",
            "::10.0.0.1",
            "fec0::1",
        ] {
            assert!(is_special_address(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "140.82.112.3", "2606:4700::1111"] {
            assert!(!is_special_address(a.parse().unwrap()), "{a}");
        }
    }
}
