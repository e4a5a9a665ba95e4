//! The one parsed destination every decision is made on.

use std::fmt;
use std::net::IpAddr;

/// The scheme spoken to the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// 80 or 443.
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

/// Where a request goes: the single source of truth for the policy decision,
/// the credential, name resolution and the address check, upstream SNI and
/// certificate verification, and the forwarded `Host`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// Scheme to the upstream.
    pub scheme: Scheme,
    /// Lower-case host name without a trailing dot, or a canonical IP literal
    /// (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Target {
    /// `host[:port]` as written in a `Host` header (port omitted when default).
    pub fn host_header(&self) -> String {
        let mut s = String::with_capacity(self.host.len() + 8);
        self.push_host(&mut s);
        if self.port != self.scheme.default_port() {
            s.push(':');
            push_port(&mut s, self.port);
        }
        s
    }

    /// `host:port` with IPv6 bracketed.
    pub fn authority(&self) -> String {
        let mut s = String::with_capacity(self.host.len() + 8);
        self.push_host(&mut s);
        s.push(':');
        push_port(&mut s, self.port);
        s
    }

    fn push_host(&self, s: &mut String) {
        if self.host.contains(':') {
            s.push('[');
            s.push_str(&self.host);
            s.push(']');
        } else {
            s.push_str(&self.host);
        }
    }

    /// The host as an IP address, if it is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority())
    }
}

/// Appends a port in decimal (without the formatting machinery: this runs
/// on every request).
fn push_port(s: &mut String, port: u16) {
    let mut digits = [0u8; 5];
    let mut n = port;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        s.push(char::from(d));
    }
}

/// Normalises a host: lower case, no trailing dot, IP literals canonical
/// (brackets removed). `None` when it is not a plausible DNS name or IP.
pub fn normalize_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let unbracketed = raw
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(raw);
    match unbracketed.parse::<IpAddr>() {
        // The IPv4 parser takes only the canonical dotted-decimal form (no
        // leading zeros, four parts), so the text is already canonical.
        Ok(IpAddr::V4(_)) => return Some(unbracketed.to_owned()),
        Ok(ip) => return Some(ip.to_string()),
        Err(_) => {}
    }
    if raw.starts_with('[') {
        return None;
    }
    let h = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if h.is_empty() || h.len() > 253 {
        return None;
    }
    let ok = h.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    // A name made only of digits and dots that did not parse as an IP
    // (`127.1`, `0x7f.1`) is refused: resolvers read such forms as addresses.
    let numeric_like = h
        .split('.')
        .next_back()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()) || l.starts_with("0x"));
    (ok && !numeric_like).then_some(h)
}

/// Splits `host[:port]` (IPv6 in brackets) into a normalised host and port.
/// `default_port` applies when there is no port; `None` for a missing port
/// means the port is required.
pub fn parse_authority(raw: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    if raw.is_empty() || raw.contains('@') {
        return None;
    }
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &raw[..end + 2];
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (host, port)
    } else {
        match raw.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (raw, None),
        }
    };
    let port = match port {
        Some(p) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u16 = p.parse().ok()?;
            if n == 0 {
                return None;
            }
            n
        }
        None => default_port?,
    };
    Some((normalize_host(host)?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_hosts() {
        assert_eq!(
            normalize_host("API.Example.COM.").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(normalize_host("[::1]").as_deref(), Some("::1"));
        assert_eq!(normalize_host("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(normalize_host("127.1"), None);
        assert_eq!(normalize_host("010.0.0.1"), None);
        assert_eq!(normalize_host("[10.0.0.1]").as_deref(), Some("10.0.0.1"));
        assert_eq!(
            normalize_host("[::FFFF:1.2.3.4]").as_deref(),
            Some("::ffff:1.2.3.4")
        );
        assert_eq!(normalize_host("a b"), None);
        assert_eq!(normalize_host(""), None);
    }

    #[test]
    fn formats_authorities() {
        for (host, port, scheme, authority, host_header) in [
            ("a.com", 443, Scheme::Https, "a.com:443", "a.com"),
            ("a.com", 8, Scheme::Http, "a.com:8", "a.com:8"),
            ("::1", 65535, Scheme::Https, "[::1]:65535", "[::1]:65535"),
            ("1.2.3.4", 80, Scheme::Http, "1.2.3.4:80", "1.2.3.4"),
            (
                "1.2.3.4",
                10000,
                Scheme::Http,
                "1.2.3.4:10000",
                "1.2.3.4:10000",
            ),
        ] {
            let t = Target {
                scheme,
                host: host.into(),
                port,
            };
            assert_eq!(t.authority(), authority);
            assert_eq!(t.host_header(), host_header);
            // What the proxy writes parses back to the same target.
            assert_eq!(
                parse_authority(&t.host_header(), Some(scheme.default_port())),
                Some((host.to_owned(), port))
            );
        }
    }

    #[test]
    fn parses_authorities() {
        assert_eq!(
            parse_authority("a.com:443", None),
            Some(("a.com".into(), 443))
        );
        assert_eq!(parse_authority("a.com", None), None);
        assert_eq!(
            parse_authority("a.com", Some(80)),
            Some(("a.com".into(), 80))
        );
        assert_eq!(
            parse_authority("[::1]:8443", None),
            Some(("::1".into(), 8443))
        );
        assert_eq!(parse_authority("user@a.com:443", None), None);
        assert_eq!(parse_authority("a.com:0", None), None);
        assert_eq!(parse_authority("a.com:+1", None), None);
    }
}
