//! HTTP/1.1 heads and body framing for the lean plain-HTTP path.
//!
//! Pure functions (no I/O) so they can be fuzzed: [`plan_request`] decides
//! whether a client's request head may take the lean path and, if so, writes
//! the head sent upstream; [`plan_response`] does the same for the upstream's
//! response head; [`Chunked`] decodes a chunked body and re-encodes it.
//!
//! The lean path forwards only requests the full (hyper) path would forward
//! unchanged in meaning. Everything else — a refusal, an unusual shape, a
//! WebSocket upgrade, `CONNECT`, the magic host — is handed to the full path,
//! which then answers exactly as it always has.

use http::Method;

use crate::policy::Policy;
use crate::target::{parse_authority, Scheme, Target};

/// Headers a head may carry (hyper's limit too).
pub const MAX_HEADERS: usize = 100;

/// Largest upstream response head (hyper's client buffer limit).
pub const MAX_RESPONSE_HEAD: usize = 8192 + 4096 * 100;

/// How a message body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the sender closes (responses only).
    Close,
}

/// A request the lean path forwards.
#[derive(Debug)]
pub struct Forward {
    /// Bytes of the client's head (the body, if any, follows).
    pub consumed: usize,
    /// The one parsed target.
    pub target: Target,
    /// The request method.
    pub method: Method,
    /// The URI path (no query), for the log line.
    pub path: String,
    /// The request body's framing.
    pub body: Framing,
    /// The client asked to close after this exchange.
    pub close: bool,
    /// Whether `Authorization` was set from the route's credential.
    pub injected: bool,
    /// The head to send upstream.
    pub head: Vec<u8>,
}

/// What to do with the bytes read from a client so far.
#[derive(Debug)]
pub enum Plan {
    /// The head is not complete yet (and not over the size limit).
    Partial,
    /// Not a lean request: the full path must handle it from these bytes.
    HandOff,
    /// Forward it.
    Forward(Box<Forward>),
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Hop-by-hop and protocol-switching headers: never forwarded as received,
/// on either path.
pub const HOP_HEADERS: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// Whether `name` (any case) is in [`HOP_HEADERS`].
pub fn is_hop(name: &str) -> bool {
    HOP_HEADERS.iter().any(|h| eq(h, name))
}

/// A `Content-Length` value: digits only, as hyper reads it.
fn content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn tokens(v: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(v)
        .unwrap_or("\u{0}")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Judges a client's request head at the start of `buf`.
///
/// `Forward` only for an HTTP/1.1 absolute-form `http://` request that the
/// full path would forward: a route covers its target, `Host` (at most one)
/// names that target, no dot segments, the route's `matches` pass, framing
/// by at most one `Content-Length` or exactly `Transfer-Encoding: chunked`
/// (never both), no `Upgrade`/`Expect`, and `Connection` naming only
/// `keep-alive`/`close`. The upstream head carries the target's `Host`, the
/// client's other end-to-end headers as received, and the route's
/// credential in place of the client's `Authorization`.
pub fn plan_request(buf: &[u8], max_head: usize, policy: &Policy) -> Plan {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= max_head => n,
        Ok(httparse::Status::Partial) if buf.len() <= max_head => return Plan::Partial,
        _ => return Plan::HandOff,
    };
    if req.version != Some(1) {
        return Plan::HandOff;
    }
    let (Some(m), Some(raw_target)) = (req.method, req.path) else {
        return Plan::HandOff;
    };
    let Ok(method) = Method::from_bytes(m.as_bytes()) else {
        return Plan::HandOff;
    };
    if method == Method::CONNECT || !raw_target.starts_with("http://") {
        return Plan::HandOff;
    }
    let Ok(uri) = raw_target.parse::<http::Uri>() else {
        return Plan::HandOff;
    };
    let target = match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(a)) => match parse_authority(a.as_str(), Some(80)) {
            Some((host, port)) => Target {
                scheme: Scheme::Http,
                host,
                port,
            },
            None => return Plan::HandOff,
        },
        _ => return Plan::HandOff,
    };
    if target.host == crate::MAGIC_HOST {
        return Plan::HandOff;
    }
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    if !path_and_query.starts_with('/') || crate::proxy::has_dot_segment(uri.path()) {
        return Plan::HandOff;
    }

    let mut host: Option<&[u8]> = None;
    let mut cl: Option<u64> = None;
    let mut chunked = false;
    let mut close = false;
    for h in req.headers.iter() {
        let n = h.name;
        if eq(n, "host") {
            if host.is_some() {
                return Plan::HandOff;
            }
            host = Some(h.value);
        } else if eq(n, "content-length") {
            if cl.is_some() {
                return Plan::HandOff;
            }
            match content_length(h.value) {
                Some(v) => cl = Some(v),
                None => return Plan::HandOff,
            }
        } else if eq(n, "transfer-encoding") {
            if chunked || !std::str::from_utf8(h.value).is_ok_and(|v| eq(v.trim(), "chunked")) {
                return Plan::HandOff;
            }
            chunked = true;
        } else if eq(n, "connection") {
            for t in tokens(h.value) {
                if eq(t, "close") {
                    close = true;
                } else if !eq(t, "keep-alive") {
                    return Plan::HandOff;
                }
            }
        } else if eq(n, "upgrade") || eq(n, "expect") {
            return Plan::HandOff;
        }
    }
    if chunked && cl.is_some() {
        return Plan::HandOff;
    }
    let host_header = target.host_header();
    if let Some(v) = host {
        let agrees = v == host_header.as_bytes()
            || std::str::from_utf8(v).is_ok_and(|s| {
                parse_authority(s, Some(80))
                    .is_some_and(|(h, p)| h == target.host && p == target.port)
            });
        if !agrees {
            return Plan::HandOff;
        }
    }
    let Some(route) = policy.route_for(&target) else {
        return Plan::HandOff;
    };
    let allowed = if route.needs_headers() {
        let mut map = http::HeaderMap::with_capacity(req.headers.len());
        for h in req.headers.iter() {
            let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(h.name.as_bytes()),
                http::HeaderValue::from_bytes(h.value),
            ) else {
                return Plan::HandOff;
            };
            map.append(n, v);
        }
        route.allows(&method, uri.path(), &map)
    } else {
        route.allows(&method, uri.path(), &http::HeaderMap::new())
    };
    if !allowed {
        return Plan::HandOff;
    }

    let auth = route.auth_header();
    let mut head = Vec::with_capacity(consumed + 64);
    head.extend_from_slice(m.as_bytes());
    head.push(b' ');
    head.extend_from_slice(path_and_query.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    head.extend_from_slice(host_header.as_bytes());
    head.extend_from_slice(b"\r\n");
    for h in req.headers.iter() {
        if eq(h.name, "host") || is_hop(h.name) || (auth.is_some() && eq(h.name, "authorization")) {
            continue;
        }
        head.extend_from_slice(h.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(h.value);
        head.extend_from_slice(b"\r\n");
    }
    if let Some(v) = auth {
        head.extend_from_slice(b"authorization: ");
        head.extend_from_slice(v.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if chunked {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    head.extend_from_slice(b"\r\n");
    Plan::Forward(Box::new(Forward {
        consumed,
        path: uri.path().to_owned(),
        target,
        method,
        body: match (chunked, cl) {
            (true, _) => Framing::Chunked,
            (false, Some(n)) if n > 0 => Framing::Length(n),
            _ => Framing::None,
        },
        close,
        injected: auth.is_some(),
        head,
    }))
}

/// An upstream response head, ready for the client.
#[derive(Debug)]
pub struct Response {
    /// Bytes of the upstream's head.
    pub consumed: usize,
    /// Status code.
    pub status: u16,
    /// The body's framing.
    pub body: Framing,
    /// The upstream connection may carry another request afterwards.
    pub reusable: bool,
    /// The head to send the client.
    pub head: Vec<u8>,
}

/// What the bytes read from an upstream so far hold.
#[derive(Debug)]
pub enum RespPlan {
    /// The head is not complete yet.
    Partial,
    /// An informational (1xx, not 101) response of this many bytes: skip it.
    Informational(usize),
    /// A response to relay.
    Head(Box<Response>),
    /// Unusable: answer the client 502 with this reason.
    Bad(&'static str),
}

/// Judges an upstream's response head at the start of `buf`. `head_request`:
/// the request was `HEAD` (no body follows whatever the headers say);
/// `client_close`: the client connection closes after this response.
/// Hop-by-hop headers and those `Connection` names are dropped; the framing
/// header is written by the proxy.
pub fn plan_response(buf: &[u8], head_request: bool, client_close: bool) -> RespPlan {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let consumed = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_RESPONSE_HEAD => {
            return RespPlan::Partial
        }
        Ok(httparse::Status::Partial) => return RespPlan::Bad("upstream response head too large"),
        Err(_) => return RespPlan::Bad("upstream sent an invalid response head"),
    };
    let (Some(status), Some(version)) = (resp.code, resp.version) else {
        return RespPlan::Bad("upstream sent an invalid response head");
    };
    if !(100..=999).contains(&status) {
        return RespPlan::Bad("upstream sent an invalid response head");
    }
    if status == 101 {
        return RespPlan::Bad("upstream switched protocols unasked");
    }
    if status < 200 {
        return RespPlan::Informational(consumed);
    }
    let mut cl: Option<u64> = None;
    let mut te: Option<bool> = None;
    let mut reusable = version == 1;
    let mut named: Vec<&str> = Vec::new();
    for h in resp.headers.iter() {
        if eq(h.name, "content-length") {
            match (content_length(h.value), cl) {
                (Some(v), None) => cl = Some(v),
                (Some(v), Some(c)) if v == c => {}
                _ => return RespPlan::Bad("upstream sent an invalid Content-Length"),
            }
        } else if eq(h.name, "transfer-encoding") {
            // The last coding decides; anything but chunked last is read
            // until close.
            let last_chunked = tokens(h.value).last().is_some_and(|t| eq(t, "chunked"));
            te = Some(last_chunked);
        } else if eq(h.name, "connection") {
            for t in tokens(h.value) {
                if eq(t, "close") {
                    reusable = false;
                }
                named.push(t);
            }
        }
    }
    let no_body = head_request || status == 204 || status == 304;
    let body = if no_body {
        Framing::None
    } else {
        match (te, cl) {
            (Some(true), None) => Framing::Chunked,
            (Some(true), Some(_)) => {
                // RFC 9112 6.3: chunked wins; the length is dropped and the
                // connection not reused.
                reusable = false;
                Framing::Chunked
            }
            (Some(false), _) => Framing::Close,
            (None, Some(0)) => Framing::None,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::Close,
        }
    };
    if body == Framing::Close {
        reusable = false;
    }
    let close = client_close || body == Framing::Close;
    let mut head = Vec::with_capacity(consumed + 48);
    head.extend_from_slice(b"HTTP/1.1 ");
    let mut code = [0u8; 3];
    code[0] = b'0' + (status / 100) as u8;
    code[1] = b'0' + (status / 10 % 10) as u8;
    code[2] = b'0' + (status % 10) as u8;
    head.extend_from_slice(&code);
    head.push(b' ');
    head.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for h in resp.headers.iter() {
        let framing = eq(h.name, "content-length") && body == Framing::Chunked;
        if is_hop(h.name) || framing || named.iter().any(|t| eq(t, h.name)) {
            continue;
        }
        head.extend_from_slice(h.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(h.value);
        head.extend_from_slice(b"\r\n");
    }
    if body == Framing::Chunked {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if close {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    RespPlan::Head(Box::new(Response {
        consumed,
        status,
        body,
        reusable,
        head,
    }))
}

/// Why a chunked body was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A size line that is not hex digits (with an optional extension) and CRLF.
    #[error("malformed chunk size line")]
    Size,
    /// Chunk data not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    DataEnd,
    /// A size line or trailer section over the limits.
    #[error("chunk framing too long")]
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CState {
    /// In a size line: value so far, digits seen, in the extension.
    Size {
        val: u64,
        digits: u8,
        ext: bool,
        len: u16,
    },
    /// Expecting the LF of a size line (the CR was seen).
    SizeLf {
        val: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// In the trailer section: bytes in the current line, total bytes.
    Trailer {
        line: u16,
        total: u16,
        cr: bool,
    },
    Done,
}

/// Decodes a chunked body incrementally and re-encodes it with the proxy's
/// own chunk boundaries: the receiver sees only framing the proxy wrote
/// (CRLF line ends, no extensions, no trailers), so a lenient or odd
/// spelling from the sender cannot reach it. Bare LF is refused.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: CState,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked::new()
    }
}

const MAX_SIZE_LINE: u16 = 4096;
const MAX_TRAILERS: u16 = 8192;

impl Chunked {
    /// A decoder at the start of a body.
    pub fn new() -> Chunked {
        Chunked {
            state: CState::Size {
                val: 0,
                digits: 0,
                ext: false,
                len: 0,
            },
        }
    }

    /// Whether the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == CState::Done
    }

    /// Consumes bytes from `input` and appends the re-encoded body to `out`
    /// (ending with `0\r\n\r\n` once done). Returns how many bytes were
    /// consumed: all of `input`, or fewer once the body is done.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match &mut self.state {
                CState::Done => break,
                CState::Size {
                    val,
                    digits,
                    ext,
                    len,
                } => {
                    *len += 1;
                    if *len > MAX_SIZE_LINE {
                        return Err(ChunkError::TooLong);
                    }
                    if b == b'\r' {
                        if *digits == 0 {
                            return Err(ChunkError::Size);
                        }
                        self.state = CState::SizeLf { val: *val };
                    } else if *ext {
                        if b == b'\n' {
                            return Err(ChunkError::Size);
                        }
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        if *digits == 0 {
                            return Err(ChunkError::Size);
                        }
                        *ext = true;
                    } else {
                        let d = (b as char).to_digit(16).ok_or(ChunkError::Size)?;
                        if *digits >= 15 {
                            return Err(ChunkError::Size);
                        }
                        *val = *val * 16 + u64::from(d);
                        *digits += 1;
                    }
                    i += 1;
                }
                CState::SizeLf { val } => {
                    if b != b'\n' {
                        return Err(ChunkError::Size);
                    }
                    self.state = if *val == 0 {
                        CState::Trailer {
                            line: 0,
                            total: 0,
                            cr: false,
                        }
                    } else {
                        CState::Data(*val)
                    };
                    i += 1;
                }
                CState::Data(left) => {
                    let take = (*left).min((input.len() - i) as u64) as usize;
                    push_hex(out, take);
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&input[i..i + take]);
                    out.extend_from_slice(b"\r\n");
                    *left -= take as u64;
                    i += take;
                    if *left == 0 {
                        self.state = CState::DataCr;
                    }
                }
                CState::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::DataEnd);
                    }
                    self.state = CState::DataLf;
                    i += 1;
                }
                CState::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::DataEnd);
                    }
                    self.state = CState::Size {
                        val: 0,
                        digits: 0,
                        ext: false,
                        len: 0,
                    };
                    i += 1;
                }
                CState::Trailer { line, total, cr } => {
                    *total += 1;
                    if *total > MAX_TRAILERS {
                        return Err(ChunkError::TooLong);
                    }
                    if *cr {
                        if b != b'\n' {
                            return Err(ChunkError::Size);
                        }
                        if *line == 0 {
                            out.extend_from_slice(b"0\r\n\r\n");
                            self.state = CState::Done;
                        } else {
                            *line = 0;
                            *cr = false;
                        }
                    } else if b == b'\r' {
                        *cr = true;
                    } else if b == b'\n' {
                        return Err(ChunkError::Size);
                    } else {
                        *line += 1;
                    }
                    i += 1;
                }
            }
        }
        Ok(i)
    }
}

fn push_hex(out: &mut Vec<u8>, n: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = HEX[v & 15];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(matches: &str) -> Policy {
        let raw: bot_bottle_sdk::EgressPolicy = serde_json::from_str(&format!(
            r#"{{"version":1,"routes":[
                {{"host":"a.test","auth":{{"scheme":"Bearer","token_env":"T"}}{matches}}},
                {{"host":"b.test","port":8080}}]}}"#
        ))
        .unwrap();
        Policy::compile(raw, |_| Some("sekrit".into())).unwrap()
    }

    fn fwd(p: &Policy, req: &[u8]) -> Option<Box<Forward>> {
        match plan_request(req, 65536, p) {
            Plan::Forward(f) => Some(f),
            _ => None,
        }
    }

    #[test]
    fn forwards_with_target_host_and_injected_credential() {
        let p = policy("");
        let f = fwd(
            &p,
            b"GET http://A.test/x?q=1 HTTP/1.1\r\nHost: a.test\r\nAuthorization: mine\r\nProxy-Authorization: p\r\nKeep-Alive: 5\r\nAccept: */*\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&f.head).unwrap(),
            "GET /x?q=1 HTTP/1.1\r\nhost: a.test\r\nAccept: */*\r\nauthorization: Bearer sekrit\r\n\r\n"
        );
        assert!(f.injected);
        assert_eq!(f.body, Framing::None);
        let f = fwd(&p, b"POST http://b.test:8080 HTTP/1.1\r\nTransfer-Encoding: chunked\r\nAuthorization: mine\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!(
            std::str::from_utf8(&f.head).unwrap(),
            "POST / HTTP/1.1\r\nhost: b.test:8080\r\nAuthorization: mine\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert!(f.close && !f.injected);
        assert_eq!(f.body, Framing::Chunked);
    }

    #[test]
    fn hands_off_everything_the_full_path_decides() {
        let p = policy(r#","matches":[{"paths":[{"type":"prefix","value":"/ok"}]}]"#);
        for req in [
            &b"GET http://a.test/ok HTTP/1.1\r\nHost: evil.test\r\n\r\n"[..],
            b"GET http://a.test/ok HTTP/1.1\r\nHost: a.test\r\nHost: a.test\r\n\r\n",
            b"GET http://a.test/no HTTP/1.1\r\n\r\n",
            b"GET http://a.test/ok/../x HTTP/1.1\r\n\r\n",
            b"GET http://c.test/ok HTTP/1.1\r\n\r\n",
            b"GET http://b.test/ HTTP/1.1\r\n\r\n",
            b"POST http://a.test/ok HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST http://a.test/ok HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST http://a.test/ok HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST http://a.test/ok HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"GET http://a.test/ok HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
            b"GET http://a.test/ok HTTP/1.1\r\nConnection: x-secret\r\n\r\n",
            b"GET http://a.test/ok HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET http://a.test/ok HTTP/1.0\r\n\r\n",
            b"GET /ok HTTP/1.1\r\nHost: a.test\r\n\r\n",
            b"CONNECT a.test:443 HTTP/1.1\r\n\r\n",
            b"GET https://a.test/ok HTTP/1.1\r\n\r\n",
            b"GET http://_egress.local/allowlist HTTP/1.1\r\n\r\n",
            b"GET http://u@a.test/ok HTTP/1.1\r\n\r\n",
            b"GET http://a.test:80x/ok HTTP/1.1\r\n\r\n",
            b"GET http://a.test/ok HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            assert!(
                matches!(plan_request(req, 65536, &p), Plan::HandOff),
                "{}",
                String::from_utf8_lossy(req)
            );
        }
        assert!(matches!(
            plan_request(b"GET http://a.test/ok HTTP/1.1\r\nX: y", 65536, &p),
            Plan::Partial
        ));
        assert!(matches!(
            plan_request(b"GET http://a.test/ok HTTP/1.1\r\nX: y", 16, &p),
            Plan::HandOff
        ));
        assert!(fwd(
            &p,
            b"GET http://a.test:80/ok HTTP/1.1\r\nHost: A.TEST:80\r\n\r\n"
        )
        .is_some());
    }

    #[test]
    fn response_framing() {
        let RespPlan::Head(r) = plan_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, x-h\r\nX-H: 1\r\nKeep-Alive: t\r\n\r\nok",
            false,
            false,
        ) else {
            panic!()
        };
        assert_eq!(
            std::str::from_utf8(&r.head).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
        );
        assert_eq!(
            (r.body, r.reusable, r.consumed),
            (Framing::Length(2), true, 90)
        );
        let RespPlan::Head(r) = plan_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            true,
        ) else {
            panic!()
        };
        assert_eq!(
            std::str::from_utf8(&r.head).unwrap(),
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        assert!(!r.reusable);
        let RespPlan::Head(r) = plan_response(b"HTTP/1.0 200 OK\r\n\r\n", false, false) else {
            panic!()
        };
        assert_eq!((r.body, r.reusable), (Framing::Close, false));
        let RespPlan::Head(r) = plan_response(
            b"HTTP/1.1 204 No\r\nContent-Length: 9\r\n\r\n",
            false,
            false,
        ) else {
            panic!()
        };
        assert_eq!(r.body, Framing::None);
        assert!(matches!(
            plan_response(b"HTTP/1.1 101 S\r\n\r\n", false, false),
            RespPlan::Bad(_)
        ));
        assert!(matches!(
            plan_response(b"HTTP/1.1 103 E\r\n\r\n", false, false),
            RespPlan::Informational(18)
        ));
        assert!(matches!(
            plan_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false,
                false
            ),
            RespPlan::Bad(_)
        ));
    }

    #[test]
    fn chunked_reencodes_and_refuses_tricks() {
        let mut c = Chunked::new();
        let mut out = Vec::new();
        let body = b"3;ext=1\r\nabc\r\n1\r\nd\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let n = c.decode(body, &mut out).unwrap();
        assert_eq!(&body[n..], b"NEXT");
        assert!(c.is_done());
        assert_eq!(out, b"3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n");
        for bad in [
            &b"3\nabc\r\n"[..],
            b"3\r\nabcX",
            b"x\r\n",
            b"\r\n",
            b"-1\r\n",
            b"fffffffffffffffff\r\n",
            b"0\r\nT: x\n",
        ] {
            let mut c = Chunked::new();
            assert!(c.decode(bad, &mut Vec::new()).is_err(), "{bad:?}");
        }
        fn data(mut enc: &[u8]) -> Vec<u8> {
            let mut d = Vec::new();
            loop {
                let nl = enc.iter().position(|&b| b == b'\n').unwrap();
                let n = usize::from_str_radix(std::str::from_utf8(&enc[..nl - 1]).unwrap(), 16)
                    .unwrap();
                if n == 0 {
                    return d;
                }
                d.extend_from_slice(&enc[nl + 1..nl + 1 + n]);
                enc = &enc[nl + 3 + n..];
            }
        }
        // Split anywhere, the output carries the same data.
        for split in 0..=n {
            let mut c = Chunked::new();
            let mut out2 = Vec::new();
            let a = c.decode(&body[..split], &mut out2).unwrap();
            assert_eq!(a, split);
            assert_eq!(c.decode(&body[split..], &mut out2).unwrap(), n - split);
            let mut d = Chunked::new();
            let mut again = Vec::new();
            d.decode(&out2, &mut again).unwrap();
            assert_eq!(again, out2, "split {split}");
            assert_eq!(data(&out2), b"abcd", "split {split}");
        }
    }
}
