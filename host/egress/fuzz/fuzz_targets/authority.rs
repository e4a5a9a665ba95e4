//! `normalize_host` and `parse_authority` on arbitrary text (a CONNECT
//! authority, a `Host` header, an absolute URI's authority, a TLS SNI).
//!
//! Besides never panicking, every name the parsers accept must be a fixed
//! point: the normalised host normalises to itself, and the authority the
//! proxy writes from a parsed target (`Target::authority`,
//! `Target::host_header`) parses back to the same host and port. A host
//! that changed on a second pass could match a route on one pass and be
//! resolved or sent as something else on the next.
#![no_main]

use bot_bottle_egress::target::{normalize_host, parse_authority, Scheme, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };

    if let Some(h) = normalize_host(text) {
        check_host(&h, text);
    }

    let default_port = match selector % 4 {
        0 => None,
        1 => Some(80),
        2 => Some(443),
        _ => Some(u16::from_le_bytes([selector, selector ^ 0x5a]).max(1)),
    };
    let Some((host, port)) = parse_authority(text, default_port) else {
        return;
    };
    assert_ne!(port, 0, "port 0 accepted from {text:?}");
    if default_port.is_none() {
        assert!(text.contains(':'), "no port in {text:?} but one was parsed");
    }
    check_host(&host, text);

    for scheme in [Scheme::Http, Scheme::Https] {
        let t = Target {
            scheme,
            host: host.clone(),
            port,
        };
        assert_eq!(
            parse_authority(&t.authority(), None),
            Some((host.clone(), port)),
            "authority {:?} (from {text:?}) does not parse back",
            t.authority()
        );
        assert_eq!(
            parse_authority(&t.host_header(), Some(scheme.default_port())),
            Some((host.clone(), port)),
            "Host header {:?} (from {text:?}) does not parse back",
            t.host_header()
        );
        // Display goes to logs and error messages.
        let _ = t.to_string();
    }
});

fn check_host(h: &str, from: &str) {
    assert_eq!(
        normalize_host(h).as_deref(),
        Some(h),
        "normalised host {h:?} (from {from:?}) is not a fixed point"
    );
    assert!(!h.is_empty(), "empty host from {from:?}");
    assert!(!h.ends_with('.'), "trailing dot kept in {h:?}");
    assert!(
        !h.bytes().any(|b| b.is_ascii_uppercase()),
        "upper case kept in {h:?}"
    );
    assert!(
        !h.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'@' || b == b'/'),
        "host {h:?} (from {from:?}) holds a separator"
    );
}
