//! `bot-bottle-test-agent`: a small static agent for tests and the demo.
//!
//! Every subcommand prints one JSON object on stdout and exits 0 when the
//! operation itself ran (its outcome is in the JSON), 2 on bad usage.
//!
//! ```text
//! bot-bottle-test-agent demo                       allowed route, then a host with no route
//! bot-bottle-test-agent get URL [-H 'Name: value']... [--no-proxy]
//! bot-bottle-test-agent connect HOST:PORT          direct TCP, no proxy
//! bot-bottle-test-agent resolve NAME [--server IP:PORT]
//! bot-bottle-test-agent env
//! bot-bottle-test-agent cat FILE
//! bot-bottle-test-agent scan NEEDLE | --hex HEX     search files, /proc/*/environ and cmdline
//! bot-bottle-test-agent sleep SECONDS
//! bot-bottle-test-agent http [--direct ADDR] [--connect AUTHORITY] [--tls SNI] [--insecure]
//!                            [--target T] [--host H] [--method M] [-H 'N: v']... [--ws] [--follow]
//!                                                   one hand-made request, through the proxy by default
//! bot-bottle-test-agent udp HOST:PORT PAYLOAD        one datagram; waits for an echo
//! bot-bottle-test-agent sockets                     Unix sockets visible, and whether they accept
//! bot-bottle-test-agent batch FILE                  run the probes listed in FILE, one JSON line each
//! bot-bottle-test-agent exit CODE
//! bot-bottle-test-agent tty                         interactive: size, echo, resize, Ctrl-C (see tty.rs)
//! ```
//!
//! `batch` reads `{"exit_code": N, "probes": [{"id": "...", "args": [...]}]}`,
//! replaces `{proxy_host}` and `{proxy_port}` in the arguments with the
//! `HTTP_PROXY` address, prints `{"probe": id, "result": ...}` per probe and
//! `{"done": true}`, and exits with `exit_code`: the conformance suite runs
//! every escape attempt in one bottle this way, on any backend.
//!
//! HTTP goes through `HTTPS_PROXY`/`HTTP_PROXY` (absolute-form for http,
//! CONNECT for https) and trusts the roots in `SSL_CERT_FILE`, the way a real
//! agent CLI does inside a bottle.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

mod http;
mod tty;

const TIMEOUT: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (code, out) = run(&args);
    println!("{out}");
    std::process::exit(code);
}

fn usage(msg: &str) -> (i32, Value) {
    (2, json!({ "error": msg }))
}

fn run(args: &[String]) -> (i32, Value) {
    let Some(cmd) = args.first() else {
        return usage(
            "usage: bot-bottle-test-agent demo|get|connect|resolve|env|cat|scan|sleep|http|udp|sockets|batch|exit|tty ...",
        );
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "demo" => demo(),
        "get" => {
            let Some(url) = rest.first() else {
                return usage("usage: get URL [-H 'Name: value']... [--no-proxy]");
            };
            let mut headers = Vec::new();
            let mut use_proxy = true;
            let mut i = 1;
            while i < rest.len() {
                match rest[i].as_str() {
                    "-H" | "--header" if i + 1 < rest.len() => {
                        headers.push(rest[i + 1].clone());
                        i += 1;
                    }
                    "--no-proxy" => use_proxy = false,
                    other => return usage(&format!("unknown argument `{other}`")),
                }
                i += 1;
            }
            (0, get_json(url, &headers, use_proxy))
        }
        "connect" => match rest.first() {
            Some(target) => (0, connect(target)),
            None => usage("usage: connect HOST:PORT"),
        },
        "resolve" => {
            let Some(name) = rest.first() else {
                return usage("usage: resolve NAME [--server IP:PORT]");
            };
            let server = match rest.get(1).map(String::as_str) {
                Some("--server") => rest.get(2).cloned(),
                Some(other) => return usage(&format!("unknown argument `{other}`")),
                None => None,
            };
            (0, resolve(name, server))
        }
        "env" => {
            let env: serde_json::Map<String, Value> = std::env::vars()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            (0, json!({ "env": env }))
        }
        "cat" => match rest.first() {
            Some(path) => (
                0,
                match std::fs::read(path) {
                    Ok(b) => json!({ "path": path, "contents": String::from_utf8_lossy(&b) }),
                    Err(e) => json!({ "path": path, "error": e.to_string() }),
                },
            ),
            None => usage("usage: cat FILE"),
        },
        "scan" => match (rest.first().map(String::as_str), rest.get(1)) {
            // Hex keeps the needle itself out of argv and the batch file.
            (Some("--hex"), Some(hex)) => match unhex(hex) {
                Some(needle) if needle.len() >= 4 => (0, scan(&needle)),
                _ => usage("usage: scan --hex HEX (at least 4 bytes)"),
            },
            (Some(needle), None) if needle.len() >= 4 => (0, scan(needle.as_bytes())),
            _ => usage("usage: scan NEEDLE | --hex HEX (at least 4 bytes)"),
        },
        "http" => match http::parse(rest) {
            Ok(req) => (0, http::run(&req)),
            Err(e) => usage(&e),
        },
        "udp" => match (rest.first(), rest.get(1)) {
            (Some(target), Some(payload)) => (0, udp(target, payload)),
            _ => usage("usage: udp HOST:PORT PAYLOAD"),
        },
        "sockets" => (0, sockets()),
        "batch" => match rest.first() {
            Some(file) => batch(file),
            None => usage("usage: batch FILE"),
        },
        "exit" => match rest.first().and_then(|c| c.parse::<i32>().ok()) {
            Some(code) => (code, json!({ "exit": code })),
            None => usage("usage: exit CODE"),
        },
        "tty" => {
            let code = tty::run();
            std::process::exit(code);
        }
        "sleep" => {
            let secs: u64 = rest.first().and_then(|s| s.parse().ok()).unwrap_or(3600);
            std::thread::sleep(Duration::from_secs(secs));
            (0, json!({ "slept": secs }))
        }
        other => usage(&format!("unknown subcommand `{other}`")),
    }
}

/// The README demo: an allowed route with a placeholder credential, then a
/// host with no route.
fn demo() -> (i32, Value) {
    let allowed =
        std::env::var("DEMO_URL").unwrap_or_else(|_| "https://api.demo.test/v1/whoami".into());
    let blocked =
        std::env::var("DEMO_BLOCKED_URL").unwrap_or_else(|_| "https://blocked.demo.test/".into());
    let placeholder =
        std::env::var("DEMO_API_TOKEN").unwrap_or_else(|_| "placeholder-not-a-real-token".into());
    let auth = format!("Authorization: Bearer {placeholder}");
    let a = get_json(&allowed, std::slice::from_ref(&auth), true);
    let b = get_json(&blocked, &[auth], true);
    let ok = a["status"] == 200 && b["status"] != 200;
    eprintln!("demo agent: I hold only the placeholder credential `{placeholder}`.");
    eprintln!(
        "demo agent: GET {allowed} -> {} {}",
        a["status"],
        a["body"].as_str().unwrap_or_default().trim()
    );
    eprintln!(
        "demo agent: GET {blocked} -> {} {}",
        b["status"],
        b["body"]
            .as_str()
            .or(b["error"].as_str())
            .unwrap_or_default()
            .trim()
    );
    (
        if ok { 0 } else { 1 },
        json!({ "allowed": a, "blocked": b, "ok": ok }),
    )
}

fn connect(target: &str) -> Value {
    let addrs: Vec<SocketAddr> = match target.to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return json!({ "target": target, "connected": false, "error": e.to_string() }),
    };
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
            Ok(_) => {
                return json!({ "target": target, "connected": true, "addr": addr.to_string() })
            }
            Err(e) => last = e.to_string(),
        }
    }
    json!({ "target": target, "connected": false, "error": last })
}

/// A raw DNS A query, so no libc resolver (absent in a scratch image) is
/// involved: to `--server` or the first `nameserver` of /etc/resolv.conf.
fn resolve(name: &str, server: Option<String>) -> Value {
    let server = server.or_else(|| {
        std::fs::read_to_string("/etc/resolv.conf")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("nameserver")
                        .map(|s| format!("{}:53", s.trim()))
                })
            })
    });
    let Some(server) = server else {
        return json!({ "name": name, "resolved": false, "error": "no nameserver" });
    };
    let result = (|| -> Result<(u8, Vec<String>), String> {
        let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.trim_end_matches('.').split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        sock.send_to(&q, &server).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).map_err(|e| e.to_string())?;
        let resp = &buf[..n];
        if n < 12 {
            return Err("short answer".into());
        }
        let rcode = resp[3] & 0x0f;
        let ancount = u16::from_be_bytes([resp[6], resp[7]]);
        // Skip the question, then collect A records.
        let mut pos = 12;
        while pos < n && resp[pos] != 0 {
            pos += resp[pos] as usize + 1;
        }
        pos += 5;
        let mut addrs = Vec::new();
        for _ in 0..ancount {
            if pos + 12 > n {
                break;
            }
            pos += if resp[pos] & 0xc0 == 0xc0 {
                2
            } else {
                return Ok((rcode, addrs));
            };
            let typ = u16::from_be_bytes([resp[pos], resp[pos + 1]]);
            let len = u16::from_be_bytes([resp[pos + 8], resp[pos + 9]]) as usize;
            pos += 10;
            if typ == 1 && len == 4 && pos + 4 <= n {
                addrs.push(format!(
                    "{}.{}.{}.{}",
                    resp[pos],
                    resp[pos + 1],
                    resp[pos + 2],
                    resp[pos + 3]
                ));
            }
            pos += len;
        }
        Ok((rcode, addrs))
    })();
    match result {
        Ok((rcode, addrs)) => json!({
            "name": name, "server": server, "rcode": rcode,
            "resolved": !addrs.is_empty(), "addresses": addrs,
        }),
        Err(e) => json!({ "name": name, "server": server, "resolved": false, "error": e }),
    }
}

/// Where `needle` occurs: regular files (outside /proc and /sys), and every
/// process's environ and cmdline.
fn scan(needle: &[u8]) -> Value {
    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }
    fn walk(dir: &std::path::Path, needle: &[u8], hits: &mut Vec<String>, files: &mut usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                if p == std::path::Path::new("/proc")
                    || p == std::path::Path::new("/sys")
                    || p == std::path::Path::new("/dev")
                {
                    continue;
                }
                walk(&p, needle, hits, files);
            } else if meta.is_file() && meta.len() < 64 << 20 {
                *files += 1;
                if let Ok(b) = std::fs::read(&p) {
                    if contains(&b, needle) {
                        hits.push(p.display().to_string());
                    }
                }
            }
        }
    }
    let mut hits = Vec::new();
    let mut files = 0;
    walk(std::path::Path::new("/"), needle, &mut hits, &mut files);
    let mut procs = 0;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // Our own command line holds the needle.
            if !name.chars().all(|c| c.is_ascii_digit()) || name == std::process::id().to_string() {
                continue;
            }
            procs += 1;
            for f in ["environ", "cmdline"] {
                let p = format!("/proc/{name}/{f}");
                if let Ok(b) = std::fs::read(&p) {
                    if contains(&b, needle) {
                        hits.push(p);
                    }
                }
            }
        }
    }
    json!({ "found": !hits.is_empty(), "hits": hits, "files_scanned": files, "processes_scanned": procs })
}

struct Url {
    https: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Url, String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("unsupported URL `{url}`"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port in `{url}`"))?),
        None => (authority, if https { 443 } else { 80 }),
    };
    Ok(Url {
        https,
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

fn proxy_for(https: bool) -> Option<String> {
    let names: &[&str] = if https {
        &["HTTPS_PROXY", "https_proxy"]
    } else {
        &["HTTP_PROXY", "http_proxy"]
    };
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        .map(|p| {
            p.trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string()
        })
}

fn get_json(url: &str, headers: &[String], use_proxy: bool) -> Value {
    match get(url, headers, use_proxy) {
        Ok((status, body)) => {
            let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            json!({ "url": url, "status": status, "body": body, "json": parsed })
        }
        Err(e) => json!({ "url": url, "status": 0, "error": e }),
    }
}

fn tcp(addr: &str) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("resolving {addr}: {e}"))?
        .collect();
    let first = addrs
        .first()
        .ok_or_else(|| format!("no address for {addr}"))?;
    let s = TcpStream::connect_timeout(first, TIMEOUT)
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT)).ok();
    s.set_write_timeout(Some(TIMEOUT)).ok();
    Ok(s)
}

fn get(url: &str, headers: &[String], use_proxy: bool) -> Result<(u16, String), String> {
    let u = parse_url(url)?;
    let proxy = if use_proxy { proxy_for(u.https) } else { None };
    let authority = format!("{}:{}", u.host, u.port);
    let mut extra = String::new();
    for h in headers {
        extra.push_str(h);
        extra.push_str("\r\n");
    }
    let host_header = if (u.https && u.port == 443) || (!u.https && u.port == 80) {
        u.host.clone()
    } else {
        authority.clone()
    };
    if !u.https {
        let (mut s, target) = match &proxy {
            Some(p) => (tcp(p)?, url.to_string()),
            None => (tcp(&authority)?, u.path.clone()),
        };
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: {host_header}\r\n{extra}Connection: close\r\nUser-Agent: bot-bottle-test-agent\r\n\r\n"
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        return read_response(&mut s);
    }
    let mut s = match &proxy {
        Some(p) => {
            let mut s = tcp(p)?;
            let req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
            s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
            let head = read_head(&mut s)?;
            let status = status_of(&head)?;
            if status != 200 {
                // The proxy's refusal, with its reason in the body.
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
                return Ok((status, String::from_utf8_lossy(&rest).into_owned()));
            }
            s
        }
        None => tcp(&authority)?,
    };
    let config = tls_config()?;
    let name =
        rustls::pki_types::ServerName::try_from(u.host.clone()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, &mut s);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\n{extra}Connection: close\r\nUser-Agent: bot-bottle-test-agent\r\n\r\n",
        u.path
    );
    tls.write_all(req.as_bytes())
        .map_err(|e| format!("TLS: {e}"))?;
    read_response(&mut tls)
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let path =
        std::env::var("SSL_CERT_FILE").map_err(|_| "SSL_CERT_FILE is not set".to_string())?;
    let pem = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_head(s: &mut impl Read) -> Result<String, String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(format!("reading response: {e}")),
        }
        if head.len() > 65536 {
            return Err("response head too large".into());
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn status_of(head: &str) -> Result<u16, String> {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status in `{}`", head.lines().next().unwrap_or("")))
}

fn read_response(s: &mut impl Read) -> Result<(u16, String), String> {
    let head = read_head(s)?;
    let status = status_of(&head)?;
    let mut body = Vec::new();
    match s.read_to_end(&mut body) {
        Ok(_) => {}
        // Servers that close without TLS close_notify.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) if !body.is_empty() => eprintln!("warning: {e}"),
        Err(e) => return Err(format!("reading body: {e}")),
    }
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() & 1 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Sends one datagram and waits briefly for an echo. A datagram that leaves
/// the sandbox is an escape even when no answer comes back, so the suite
/// also asks the listener what it received.
fn udp(target: &str, payload: &str) -> Value {
    let result = (|| -> Result<Option<String>, String> {
        let addr: SocketAddr = target
            .to_socket_addrs()
            .map_err(|e| format!("resolving {target}: {e}"))?
            .next()
            .ok_or_else(|| format!("no address for {target}"))?;
        let bind = if addr.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let sock = UdpSocket::bind(bind).map_err(|e| format!("bind {bind}: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        sock.send_to(payload.as_bytes(), addr)
            .map_err(|e| format!("send: {e}"))?;
        let mut buf = [0u8; 1500];
        match sock.recv(&mut buf) {
            Ok(n) => Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned())),
            Err(_) => Ok(None),
        }
    })();
    match result {
        Ok(reply) => {
            json!({ "target": target, "sent": true, "replied": reply.is_some(), "reply": reply })
        }
        Err(e) => json!({ "target": target, "sent": false, "replied": false, "error": e }),
    }
}

/// Unix sockets anywhere in the filesystem (an engine API socket is the
/// classic escape), and whether each accepts a connection.
fn sockets() -> Value {
    use std::os::unix::fs::FileTypeExt;
    fn walk(dir: &std::path::Path, found: &mut Vec<String>, depth: usize) {
        if depth > 12 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p == std::path::Path::new("/proc") || p == std::path::Path::new("/sys") {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                walk(&p, found, depth + 1);
            } else if meta.file_type().is_socket() {
                found.push(p.display().to_string());
            }
        }
    }
    let mut found = Vec::new();
    walk(std::path::Path::new("/"), &mut found, 0);
    let known = [
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/run/containerd/containerd.sock",
        "/run/podman/podman.sock",
        "/var/run/crio/crio.sock",
    ];
    let known_present: Vec<&str> = known
        .iter()
        .copied()
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .collect();
    let connectable: Vec<String> = found
        .iter()
        .filter(|p| std::os::unix::net::UnixStream::connect(p).is_ok())
        .cloned()
        .collect();
    let tcp_engine: Vec<String> = ["127.0.0.1:2375", "127.0.0.1:2376"]
        .iter()
        .filter(|a| {
            a.parse::<SocketAddr>()
                .ok()
                .and_then(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok())
                .is_some()
        })
        .map(|a| a.to_string())
        .collect();
    json!({
        "sockets": found,
        "connectable": connectable,
        "engine_sockets": known_present,
        "engine_tcp": tcp_engine,
    })
}

fn proxy_parts() -> (String, String) {
    let p = proxy_for(false)
        .or_else(|| proxy_for(true))
        .unwrap_or_default();
    match p.rsplit_once(':') {
        Some((h, port)) => (h.trim_matches(['[', ']']).to_string(), port.to_string()),
        None => (p, String::new()),
    }
}

fn batch(file: &str) -> (i32, Value) {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return (2, json!({ "error": format!("reading {file}: {e}") })),
    };
    let spec: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return (2, json!({ "error": format!("parsing {file}: {e}") })),
    };
    let (proxy_host, proxy_port) = proxy_parts();
    let empty = Vec::new();
    for probe in spec["probes"].as_array().unwrap_or(&empty) {
        let id = probe["id"].as_str().unwrap_or("?");
        let args: Vec<String> = probe["args"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter_map(|a| a.as_str())
            .map(|a| {
                a.replace("{proxy_host}", &proxy_host)
                    .replace("{proxy_port}", &proxy_port)
            })
            .collect();
        let (_, result) = if args.first().map(String::as_str) == Some("batch") {
            usage("batch cannot nest")
        } else {
            run(&args)
        };
        println!("{}", json!({ "probe": id, "result": result }));
        let _ = std::io::stdout().flush();
    }
    let code = spec["exit_code"].as_i64().unwrap_or(0) as i32;
    (
        code,
        json!({ "done": true, "probes": spec["probes"].as_array().map(|a| a.len()) }),
    )
}
