//! The lean plain-HTTP path's parsing and framing (`bot_bottle_egress::h1`).
//!
//! The first byte picks what the rest is fed to:
//! - request heads (`plan_request` with a fixed policy): a head the lean
//!   path forwards must be one the full path would forward too (one target,
//!   covered by a route, `Host` agreeing, no dot segments), and the head it
//!   writes upstream must parse back to exactly one `Host` naming the target,
//!   no hop-by-hop header, never both framing headers, and on an injecting
//!   route exactly one `Authorization`, the route's. Any strict prefix of a
//!   forwarded head must still be `Partial` (how bytes were split into reads
//!   must not change a verdict).
//! - response heads (`plan_response`): what the client receives parses, has
//!   at most one framing header and no hop-by-hop header but ours.
//! - chunked bodies (`Chunked`): the verdict, the bytes consumed and the data
//!   carried do not depend on how the input was split, and the re-encoded
//!   output decodes back to the same data.
#![no_main]

use std::sync::OnceLock;

use bot_bottle_egress::h1::{is_hop, plan_request, plan_response, Chunked, Plan, RespPlan};
use bot_bottle_egress::policy::Policy;
use bot_bottle_egress::target::{parse_authority, Scheme, Target};
use libfuzzer_sys::fuzz_target;

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let raw: bot_bottle_sdk::EgressPolicy = serde_json::from_str(
            r#"{"version":1,"routes":[
                {"host":"a.test","auth":{"scheme":"Bearer","token_env":"T"}},
                {"host":"b.test","port":8080},
                {"host":"c.test","matches":[{"paths":[{"type":"prefix","value":"/v1/"}],
                  "headers":[{"name":"x-k","value":"1"}]}]},
                {"host":"1.2.3.4"}]}"#,
        )
        .unwrap();
        Policy::compile(raw, |_| Some("sekrit".into())).unwrap()
    })
}

fn requests(data: &[u8]) {
    let max = 512;
    let Plan::Forward(f) = plan_request(data, max, policy()) else {
        return;
    };
    assert!(f.consumed <= data.len() && f.consumed <= max);
    for cut in [0, f.consumed / 3, f.consumed / 2, f.consumed - 1] {
        if cut > 0 {
            assert!(
                matches!(plan_request(&data[..cut], max, policy()), Plan::Partial),
                "prefix {cut} of a forwarded head was not Partial"
            );
        }
    }
    // What the full path would read: the request line's URI and Host.
    let mut hs = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut hs);
    assert!(matches!(req.parse(data), Ok(httparse::Status::Complete(n)) if n == f.consumed));
    let uri: http::Uri = req.path.unwrap().parse().unwrap();
    assert_eq!(uri.scheme_str(), Some("http"));
    let (h, p) = parse_authority(uri.authority().unwrap().as_str(), Some(80)).unwrap();
    let t = Target {
        scheme: Scheme::Http,
        host: h,
        port: p,
    };
    assert_eq!(t, f.target);
    let route = policy().route_for(&t).expect("forwarded without a route");
    let hosts: Vec<&httparse::Header> = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .collect();
    assert!(hosts.len() <= 1);
    if let Some(h) = hosts.first() {
        let s = std::str::from_utf8(h.value).unwrap();
        assert_eq!(parse_authority(s, Some(80)), Some((t.host.clone(), t.port)));
    }
    assert!(!uri.path().split('/').any(|s| s == "." || s == ".."));

    // What goes upstream.
    let mut hs = [httparse::EMPTY_HEADER; 110];
    let mut out = httparse::Request::new(&mut hs);
    assert!(matches!(out.parse(&f.head), Ok(httparse::Status::Complete(n)) if n == f.head.len()));
    let count = |name: &str| {
        out.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    assert_eq!(count("host"), 1);
    let host = out
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .unwrap();
    assert_eq!(host.value, t.host_header().as_bytes());
    assert!(count("content-length") == 0 || count("transfer-encoding") == 0);
    for h in out.headers.iter() {
        if h.name == "transfer-encoding" {
            assert_eq!(h.value, b"chunked");
            continue;
        }
        assert!(!is_hop(h.name), "{} forwarded", h.name);
    }
    if route.auth_header().is_some() {
        assert_eq!(count("authorization"), 1);
        let a = out
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("authorization"))
            .unwrap();
        assert_eq!(a.value, b"Bearer sekrit");
    } else {
        assert!(!f.head.windows(6).any(|w| w == b"sekrit"));
    }
}

fn responses(head_req: bool, close: bool, data: &[u8]) {
    let RespPlan::Head(r) = plan_response(data, head_req, close) else {
        return;
    };
    let mut hs = [httparse::EMPTY_HEADER; 110];
    let mut out = httparse::Response::new(&mut hs);
    assert!(matches!(out.parse(&r.head), Ok(httparse::Status::Complete(n)) if n == r.head.len()));
    let count = |name: &str| {
        out.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    assert!(count("content-length") == 0 || count("transfer-encoding") == 0);
    for h in out.headers.iter() {
        if h.name == "transfer-encoding" || h.name == "connection" {
            continue;
        }
        assert!(!is_hop(h.name), "{} relayed", h.name);
    }
}

fn data_of(enc: &[u8]) -> (Result<usize, ()>, Vec<u8>, bool) {
    let mut c = Chunked::new();
    let mut out = Vec::new();
    let r = c.decode(enc, &mut out).map_err(|_| ());
    // Re-decode our own encoding to get the plain data.
    let mut d = Chunked::new();
    let mut again = Vec::new();
    d.decode(&out, &mut again).expect("own encoding decodes");
    assert_eq!(again, out, "re-encoding is stable");
    (r, plain(&out), c.is_done())
}

/// The data carried by an encoding the proxy wrote.
fn plain(mut enc: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    while let Some(nl) = enc.iter().position(|&b| b == b'\n') {
        let n = usize::from_str_radix(std::str::from_utf8(&enc[..nl - 1]).unwrap(), 16).unwrap();
        if n == 0 {
            break;
        }
        d.extend_from_slice(&enc[nl + 1..nl + 1 + n]);
        enc = &enc[nl + 3 + n..];
    }
    d
}

fn chunked(seed: u8, data: &[u8]) {
    let (whole, whole_data, whole_done) = data_of(data);
    let mut c = Chunked::new();
    let mut out = Vec::new();
    let mut consumed = 0;
    let mut err = false;
    let mut rest = data;
    let mut s = seed as usize;
    while !rest.is_empty() {
        let n = (s % 5 + 1).min(rest.len());
        s = s.wrapping_mul(31).wrapping_add(7);
        match c.decode(&rest[..n], &mut out) {
            Ok(k) => {
                consumed += k;
                if k < n {
                    break;
                }
            }
            Err(_) => {
                err = true;
                break;
            }
        }
        rest = &rest[n..];
    }
    assert_eq!(whole.is_err(), err, "split changed the verdict");
    if let Ok(n) = whole {
        assert_eq!(n, consumed, "split changed the bytes consumed");
        assert_eq!(whole_done, c.is_done());
        assert_eq!(plain(&out), whole_data, "split changed the data");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 4 {
        0 | 1 => requests(rest),
        2 => responses(sel & 0x10 != 0, sel & 0x20 != 0, rest),
        _ => chunked(sel, rest),
    }
});
