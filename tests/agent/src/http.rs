//! `http`: one hand-made HTTP request, for the escape attempts a normal
//! client would never make (CONNECT to one host, SNI of another, `Host` of a
//! third; absolute-form URIs; WebSocket upgrades).

use std::io::{Read, Write};
use std::sync::Arc;

use serde_json::{json, Value};

/// What to send.
#[derive(Clone, Debug, Default)]
pub struct Req {
    direct: Option<String>,
    connect: Option<String>,
    tls: Option<String>,
    insecure: bool,
    target: String,
    host: Option<String>,
    method: String,
    headers: Vec<String>,
    ws: bool,
    follow: bool,
}

pub fn parse(args: &[String]) -> Result<Req, String> {
    let mut r = Req {
        target: "/".into(),
        method: "GET".into(),
        ..Req::default()
    };
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).cloned();
        let takes = |v: Option<String>| v.ok_or_else(|| format!("`{}` needs a value", args[i]));
        match args[i].as_str() {
            "--direct" => r.direct = Some(takes(val)?),
            "--connect" => r.connect = Some(takes(val)?),
            "--tls" => r.tls = Some(takes(val)?),
            "--target" => r.target = takes(val)?,
            "--host" => r.host = Some(takes(val)?),
            "--method" => r.method = takes(val)?,
            "-H" | "--header" => r.headers.push(takes(val)?),
            "--insecure" => {
                r.insecure = true;
                i += 1;
                continue;
            }
            "--ws" => {
                r.ws = true;
                i += 1;
                continue;
            }
            "--follow" => {
                r.follow = true;
                i += 1;
                continue;
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
        i += 2;
    }
    Ok(r)
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

fn fail(stage: &str, e: impl std::fmt::Display) -> Value {
    json!({ "stage": stage, "status": 0, "error": e.to_string(), "reached_upstream": false })
}

pub fn run(r: &Req) -> Value {
    let mut out = once(r);
    if r.follow {
        let status = out["status"].as_u64().unwrap_or(0);
        if (300..400).contains(&status) {
            if let Some(loc) = out["location"].as_str().map(str::to_string) {
                out["redirect"] = follow(&loc, r.insecure);
            }
        }
    }
    out
}

/// Follows a redirect the way a careful client does: a fresh request to the
/// new location, through the proxy, with no credential of its own.
fn follow(location: &str, insecure: bool) -> Value {
    let Ok(u) = crate::parse_url(location) else {
        return fail("redirect", format!("unsupported location `{location}`"));
    };
    let authority = format!("{}:{}", u.host, u.port);
    let next = if u.https {
        Req {
            connect: Some(authority.clone()),
            tls: Some(u.host.clone()),
            insecure,
            target: u.path.clone(),
            host: Some(authority),
            method: "GET".into(),
            ..Req::default()
        }
    } else {
        Req {
            target: location.to_string(),
            host: Some(authority),
            method: "GET".into(),
            ..Req::default()
        }
    };
    once(&next)
}

fn once(r: &Req) -> Value {
    let via_tls = r.connect.is_some() || r.tls.is_some();
    let addr = match r.direct.clone().or_else(|| crate::proxy_for(via_tls)) {
        Some(a) => a,
        None => {
            return fail(
                "setup",
                "no --direct address and no proxy in the environment",
            )
        }
    };
    let mut tcp = match crate::tcp(&addr) {
        Ok(s) => s,
        Err(e) => return fail("tcp", e),
    };
    if let Some(authority) = &r.connect {
        let req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
        if let Err(e) = tcp.write_all(req.as_bytes()) {
            return fail("connect", e);
        }
        let head = match crate::read_head(&mut tcp) {
            Ok(h) => h,
            Err(e) => return fail("connect", e),
        };
        let status = crate::status_of(&head).unwrap_or(0);
        if status != 200 {
            let mut rest = Vec::new();
            let _ = tcp.read_to_end(&mut rest);
            let body = String::from_utf8_lossy(&rest).into_owned();
            return json!({ "stage": "connect", "status": status, "body": body, "reached_upstream": false });
        }
    }
    let mut stream: Box<dyn Stream> = match &r.tls {
        Some(sni) => {
            let config = match client_config(r.insecure) {
                Ok(c) => c,
                Err(e) => return fail("tls", e),
            };
            let name = match rustls::pki_types::ServerName::try_from(sni.clone()) {
                Ok(n) => n,
                Err(e) => return fail("tls", e),
            };
            match rustls::ClientConnection::new(config, name) {
                Ok(conn) => Box::new(rustls::StreamOwned::new(conn, tcp)),
                Err(e) => return fail("tls", e),
            }
        }
        None => Box::new(tcp),
    };
    let mut req = format!("{} {} HTTP/1.1\r\n", r.method, r.target);
    if let Some(h) = &r.host {
        req.push_str(&format!("Host: {h}\r\n"));
    }
    for h in &r.headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if r.ws {
        req.push_str("Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
    } else {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("User-Agent: bot-bottle-test-agent\r\n\r\n");
    if let Err(e) = stream
        .write_all(req.as_bytes())
        .and_then(|_| stream.flush())
    {
        return fail(if r.tls.is_some() { "tls" } else { "request" }, e);
    }
    let head = match crate::read_head(&mut stream) {
        Ok(h) if h.is_empty() => return fail("response", "connection closed without a response"),
        Ok(h) => h,
        Err(e) => return fail("response", e),
    };
    let status = crate::status_of(&head).unwrap_or(0);
    let location = head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case("location")
            .then(|| v.trim().to_string())
    });
    let mut body = Vec::new();
    if status != 101 {
        let _ = stream.read_to_end(&mut body);
    }
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if chunked {
        body = crate::dechunk(&body);
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let reached = parsed["upstream"] == "bot-bottle-test-upstream";
    json!({
        "stage": "done",
        "status": status,
        "location": location,
        "body": body.chars().take(2000).collect::<String>(),
        "json": parsed,
        "reached_upstream": reached,
        "server": parsed["server"],
    })
}

fn client_config(insecure: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    if !insecure {
        return crate::tls_config();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts any certificate: the attacker's view, so a probe sees what the
/// proxy or upstream does after the handshake rather than a local refusal.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
