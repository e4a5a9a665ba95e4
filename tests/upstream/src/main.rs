//! `bot-bottle-test-upstream`: poses as an API host for tests and the demo.
//!
//! ```text
//! bot-bottle-test-upstream [--http ADDR:PORT] [--https ADDR:PORT] [--tls-name NAME]...
//!                          [--cert-out FILE] [--name NAME]
//!                          [--tcp ADDR:PORT]... [--udp ADDR:PORT]... [--dns ADDR:PORT]...
//! ```
//!
//! Every request is answered `200` with a JSON report of what arrived: the
//! method, path, Host, and the `Authorization` header as its scheme and the
//! SHA-256 of its credential (never the value itself, so neither the agent
//! nor a log ever sees it). When `EXPECTED_TOKEN_SHA256` is set, the report
//! says whether the credential matched. For HTTPS it generates a self-signed
//! certificate for the `--tls-name`s at start-up and prints it as the first
//! stdout line, `{"event":"cert","pem":...}` (and to `--cert-out`).
//!
//! `GET /redirect?to=URL` answers `302` with `Location: URL`, so a test can
//! check that a credential does not follow a redirect to another host.
//!
//! The conformance suite also uses it as the targets of escape attempts:
//! `--tcp` accepts connections and writes `bb-tcp-hello`, `--udp` echoes
//! datagrams, `--dns` answers every query with `192.0.2.1` (TEST-NET, never
//! routed); each logs `{"event":"tcp"|"udp"|"dns",...}` on stdout, so what
//! reached it is on record even when no answer could get back. These
//! listeners are optional: one that cannot bind (e.g. `[::]` without IPv6)
//! logs a warning and the rest run. `--name` is reported as `server`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut http = Vec::new();
    let mut https = Vec::new();
    let mut names = Vec::new();
    let mut cert_out = None;
    let mut name = String::from("upstream");
    let mut raw_tcp = Vec::new();
    let mut raw_udp = Vec::new();
    let mut dns = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).cloned();
        match (args[i].as_str(), val) {
            ("--http", Some(v)) => http.push(v),
            ("--https", Some(v)) => https.push(v),
            ("--tls-name", Some(v)) => names.push(v),
            ("--cert-out", Some(v)) => cert_out = Some(v),
            ("--name", Some(v)) => name = v,
            ("--tcp", Some(v)) => raw_tcp.push(v),
            ("--udp", Some(v)) => raw_udp.push(v),
            ("--dns", Some(v)) => dns.push(v),
            (other, _) => {
                eprintln!("bot-bottle-test-upstream: unknown or incomplete argument `{other}`");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let _ = SERVER_NAME.set(name);
    if http.is_empty()
        && https.is_empty()
        && raw_tcp.is_empty()
        && raw_udp.is_empty()
        && dns.is_empty()
    {
        http.push("0.0.0.0:80".into());
    }
    if names.is_empty() {
        names.push("api.demo.test".into());
    }
    let tls = if https.is_empty() {
        None
    } else {
        Some(tls_config(&names, cert_out.as_deref()))
    };
    let mut threads = Vec::new();
    for addr in http {
        threads.push(listen(addr, None));
    }
    for addr in https {
        threads.push(listen(addr, tls.clone()));
    }
    threads.extend(raw_tcp.into_iter().filter_map(listen_raw_tcp));
    threads.extend(raw_udp.into_iter().filter_map(|a| listen_udp(a, false)));
    threads.extend(dns.into_iter().filter_map(|a| listen_udp(a, true)));
    println!("{}", json!({ "event": "listening" }));
    for t in threads {
        let _ = t.join();
    }
}

static SERVER_NAME: OnceLock<String> = OnceLock::new();

fn server_name() -> &'static str {
    SERVER_NAME.get().map(String::as_str).unwrap_or("upstream")
}

fn listen_raw_tcp(addr: String) -> Option<std::thread::JoinHandle<()>> {
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            println!(
                "{}",
                json!({ "event": "warning", "listener": addr, "error": e.to_string() })
            );
            return None;
        }
    };
    Some(std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            println!(
                "{}",
                json!({ "event": "tcp", "listener": addr, "peer": peer })
            );
            let _ = stream.write_all(b"bb-tcp-hello\n");
        }
    }))
}

/// UDP echo, or (`dns`) a resolver that answers every A query with
/// 192.0.2.1.
fn listen_udp(addr: String, dns: bool) -> Option<std::thread::JoinHandle<()>> {
    let sock = match UdpSocket::bind(&addr) {
        Ok(s) => s,
        Err(e) => {
            println!(
                "{}",
                json!({ "event": "warning", "listener": addr, "error": e.to_string() })
            );
            return None;
        }
    };
    Some(std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let data = &buf[..n];
            if dns {
                println!(
                    "{}",
                    json!({ "event": "dns", "listener": addr, "peer": peer.to_string() })
                );
                if let Some(answer) = dns_answer(data) {
                    let _ = sock.send_to(&answer, peer);
                }
            } else {
                println!(
                    "{}",
                    json!({ "event": "udp", "listener": addr, "peer": peer.to_string(),
                            "data": String::from_utf8_lossy(data) })
                );
                let _ = sock.send_to(data, peer);
            }
        }
    }))
}

fn dns_answer(q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    let mut pos = 12;
    while pos < q.len() && q[pos] != 0 {
        pos += q[pos] as usize + 1;
    }
    let end = pos + 5;
    if end > q.len() {
        return None;
    }
    let mut a = q[..end].to_vec();
    a[2] = 0x81;
    a[3] = 0x80;
    a[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
    a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    Some(a)
}

fn tls_config(names: &[String], cert_out: Option<&str>) -> Arc<rustls::ServerConfig> {
    let ck = rcgen::generate_simple_self_signed(names.to_vec()).unwrap_or_else(|e| {
        eprintln!("bot-bottle-test-upstream: generating a certificate: {e}");
        std::process::exit(1)
    });
    let pem = ck.cert.pem();
    println!("{}", json!({ "event": "cert", "names": names, "pem": pem }));
    if let Some(path) = cert_out {
        if let Err(e) = std::fs::write(path, &pem) {
            eprintln!("bot-bottle-test-upstream: writing {path}: {e}");
        }
    }
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_no_client_auth()
                .with_single_cert(vec![ck.cert.der().clone()], key)
        })
        .unwrap_or_else(|e| {
            eprintln!("bot-bottle-test-upstream: TLS setup: {e}");
            std::process::exit(1)
        });
    Arc::new(config)
}

fn listen(addr: String, tls: Option<Arc<rustls::ServerConfig>>) -> std::thread::JoinHandle<()> {
    let listener = TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("bot-bottle-test-upstream: binding {addr}: {e}");
        std::process::exit(1)
    });
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tls = tls.clone();
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let peer = stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                match tls {
                    Some(cfg) => {
                        let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                            return;
                        };
                        let mut s = rustls::StreamOwned::new(conn, stream);
                        serve(&mut s, true, &peer);
                        s.conn.send_close_notify();
                        let _ = s.flush();
                    }
                    None => {
                        let mut s = stream;
                        serve(&mut s, false, &peer);
                    }
                }
            });
        }
    })
}

fn serve<S: Read + Write>(s: &mut S, tls: bool, peer: &str) {
    let mut reader = BufReader::new(&mut *s);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut host = String::new();
    let mut auth: Option<String> = None;
    let mut content_length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            let value = value.trim().to_string();
            match name.trim().to_ascii_lowercase().as_str() {
                "host" => host = value,
                "authorization" => auth = Some(value),
                "content-length" => content_length = value.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; content_length.min(1 << 20)];
    let _ = reader.read_exact(&mut body);
    let (scheme, digest) = match &auth {
        Some(a) => {
            let (scheme, cred) = a.split_once(' ').unwrap_or(("", a.as_str()));
            (
                Some(scheme.to_string()),
                Some(hex(&Sha256::digest(cred.as_bytes()))),
            )
        }
        None => (None, None),
    };
    let expected = std::env::var("EXPECTED_TOKEN_SHA256").ok();
    let token_valid = match (&expected, &digest) {
        (Some(e), Some(d)) => Some(e.eq_ignore_ascii_case(d)),
        (Some(_), None) => Some(false),
        _ => None,
    };
    if let Some(to) = path.strip_prefix("/redirect?to=") {
        println!(
            "{}",
            json!({ "event": "redirect", "peer": peer, "to": to, "token_valid": token_valid })
        );
        let resp = format!(
            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let _ = s.write_all(resp.as_bytes());
        let _ = s.flush();
        return;
    }
    let report = json!({
        "upstream": "bot-bottle-test-upstream",
        "server": server_name(),
        "method": method,
        "path": path,
        "host": host,
        "tls": tls,
        "authorization_scheme": scheme,
        "authorization_sha256": digest,
        "token_valid": token_valid,
    });
    println!(
        "{}",
        json!({ "event": "request", "peer": peer, "report": report })
    );
    let body = report.to_string();
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes());
    let _ = s.flush();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
