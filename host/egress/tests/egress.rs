//! End-to-end tests of `bot-bottle-egress`: the real binary, real curl, a
//! Rust HTTP client (reqwest), real TLS both ways, loopback only. Real-looking
//! host names are pointed at a local TLS upstream by the policy's test-only
//! `resolve_overrides`; the upstream's certificate comes from a test CA the
//! policy trusts through `extra_roots_pem`.

mod harness {
    use std::collections::BTreeMap;
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use futures_util::{SinkExt, StreamExt};
    use http::{HeaderMap, Request, Response, StatusCode};
    use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
    use hyper::body::{Frame, Incoming};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    use tokio::net::TcpListener;
    use tokio_rustls::rustls;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::WebSocketStream;

    pub const GITHUB_TOKEN: &str = "ghs_REALsecretGITHUBvalue0123456789";
    pub const CHATGPT_TOKEN: &str = "eyJREALchatgptACCESStokenXYZ987654";
    pub const OPENAI_TOKEN: &str = "sk-REALopenaiKEYabcdef0123456789";
    pub const AGENT_FAKE: &str = "Bearer placeholder-from-the-agent";

    /// One request the upstream received.
    #[derive(Clone, Debug)]
    pub struct Seen {
        pub sni: Option<String>,
        pub method: String,
        pub path: String,
        pub headers: HeaderMap,
    }

    impl Seen {
        pub fn header(&self, name: &str) -> Option<String> {
            self.headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("<bin>").to_owned())
        }
    }

    /// A TLS (and a plain) HTTP/1.1 upstream on loopback that records what
    /// reaches it: `/redirect?to=URL` (302), `/sse` (three events 400 ms
    /// apart), WebSocket echo on upgrade, anything else 200 `ok`.
    pub struct Upstream {
        pub tls_port: u16,
        pub plain_port: u16,
        pub ca_pem: String,
        pub seen: Arc<Mutex<Vec<Seen>>>,
        pub accepts: Arc<AtomicUsize>,
    }

    impl Upstream {
        pub fn requests(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    pub async fn upstream(names: &[&str]) -> Upstream {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "egress test upstream CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        leaf.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
        let cfg = Arc::new(cfg);
        let tls_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepts = Arc::new(AtomicUsize::new(0));
        let up = Upstream {
            tls_port: tls_l.local_addr().unwrap().port(),
            plain_port: plain_l.local_addr().unwrap().port(),
            ca_pem: ca.pem(),
            seen: seen.clone(),
            accepts: accepts.clone(),
        };
        {
            let (seen, accepts) = (seen.clone(), accepts.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = tls_l.accept().await else {
                        continue;
                    };
                    accepts.fetch_add(1, Ordering::SeqCst);
                    let (cfg, seen) = (cfg.clone(), seen.clone());
                    tokio::spawn(async move {
                        let acc = tokio_rustls::LazyConfigAcceptor::new(
                            rustls::server::Acceptor::default(),
                            tcp,
                        );
                        let Ok(start) = acc.await else { return };
                        let sni = start.client_hello().server_name().map(str::to_owned);
                        let Ok(tls) = start.into_stream(cfg).await else {
                            return;
                        };
                        serve(TokioIo::new(tls), sni, seen).await;
                    });
                }
            });
        }
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = plain_l.accept().await else {
                    continue;
                };
                accepts.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(serve(TokioIo::new(tcp), None, seen));
            }
        });
        up
    }

    async fn serve<I>(io: I, sni: Option<String>, seen: Arc<Mutex<Vec<Seen>>>)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let svc = service_fn(move |req| answer(req, sni.clone(), seen.clone()));
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, svc)
            .with_upgrades()
            .await;
    }

    type B = BoxBody<Bytes, Infallible>;

    fn full(s: impl Into<Bytes>) -> B {
        Full::new(s.into()).boxed()
    }

    async fn answer(
        mut req: Request<Incoming>,
        sni: Option<String>,
        seen: Arc<Mutex<Vec<Seen>>>,
    ) -> Result<Response<B>, Infallible> {
        seen.lock().unwrap().push(Seen {
            sni,
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            headers: req.headers().clone(),
        });
        if let Some(key) = req.headers().get("sec-websocket-key") {
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(up) = on.await else { return };
                let mut ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
            return Ok(Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("upgrade", "websocket")
                .header("connection", "Upgrade")
                .header("sec-websocket-accept", accept)
                .body(full(""))
                .unwrap());
        }
        let path = req.uri().path().to_owned();
        if path == "/redirect" {
            let to = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("to="))
                .unwrap_or("/")
                .to_owned();
            return Ok(Response::builder()
                .status(StatusCode::FOUND)
                .header("location", to)
                .body(full(""))
                .unwrap());
        }
        if path == "/sse" {
            let events = futures_util::stream::unfold(0u32, |i| async move {
                if i == 3 {
                    return None;
                }
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                }
                Some((
                    Ok::<_, Infallible>(Frame::data(Bytes::from(format!("data: {i}\n\n")))),
                    i + 1,
                ))
            });
            return Ok(Response::builder()
                .header("content-type", "text/event-stream")
                .body(BodyExt::boxed(StreamBody::new(events)))
                .unwrap());
        }
        // Drain the body so keep-alive stays usable.
        let _ = req.into_body().collect().await;
        Ok(Response::new(full("ok")))
    }

    /// A running `bot-bottle-egress run` process.
    pub struct Egress {
        pub addr: SocketAddr,
        _dir: tempfile::TempDir,
        pub ca_path: PathBuf,
        pub log_path: PathBuf,
        child: Child,
    }

    impl Drop for Egress {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Egress {
        pub fn url(&self) -> String {
            format!("http://{}", self.addr)
        }

        pub fn log(&self) -> String {
            std::fs::read_to_string(&self.log_path).unwrap_or_default()
        }

        pub fn ca_pem(&self) -> String {
            std::fs::read_to_string(&self.ca_path).unwrap()
        }

        /// Every log line is JSON and none carries a secret value.
        pub fn assert_log_clean(&self) {
            let log = self.log();
            for line in log.lines() {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
                for s in [GITHUB_TOKEN, CHATGPT_TOKEN, OPENAI_TOKEN] {
                    assert!(!line.contains(s), "secret in log line: {line}");
                }
            }
        }
    }

    pub fn bin() -> &'static str {
        env!("CARGO_BIN_EXE_bot-bottle-egress")
    }

    /// The standard policy over an upstream.
    pub fn policy(up: &Upstream) -> serde_json::Value {
        let p = up.tls_port;
        let overrides: BTreeMap<&str, &str> = [
            "api.github.com",
            "chatgpt.com",
            "api.openai.com",
            "uploads.example.net",
            "private.example.net",
            "evil.example.org",
        ]
        .into_iter()
        .map(|h| (h, "127.0.0.1"))
        .collect();
        serde_json::json!({
            "version": 1,
            "log": 2,
            "routes": [
                {"host": "api.github.com", "port": p, "allow_private": true,
                 "auth": {"scheme": "token", "token_env": "EGRESS_TOKEN_0"}},
                {"host": "api.github.com", "port": up.plain_port, "allow_private": true,
                 "auth": {"scheme": "token", "token_env": "EGRESS_TOKEN_0"}},
                {"host": "chatgpt.com", "port": p, "allow_private": true,
                 "auth": {"scheme": "Bearer", "token_env": "EGRESS_TOKEN_1"}},
                {"host": "api.openai.com", "port": p, "allow_private": true,
                 "auth": {"scheme": "Bearer", "token_env": "EGRESS_TOKEN_2"},
                 "matches": [{"paths": [{"type": "prefix", "value": "/v1/"}], "methods": ["GET", "POST"]},
                             {"paths": [{"type": "regex", "value": "/health(z)?"}]}]},
                {"host": "uploads.example.net", "port": p, "allow_private": true},
                {"host": "uploads.example.net", "port": up.plain_port, "allow_private": true},
                {"host": "private.example.net", "port": p}
            ],
            "extra_roots_pem": [up.ca_pem],
            "resolve_overrides": overrides,
        })
    }

    pub fn slots() -> Vec<(&'static str, &'static str)> {
        vec![
            ("EGRESS_TOKEN_0", GITHUB_TOKEN),
            ("EGRESS_TOKEN_1", CHATGPT_TOKEN),
            ("EGRESS_TOKEN_2", OPENAI_TOKEN),
        ]
    }

    pub fn start(policy: &serde_json::Value, extra: &[&str]) -> Egress {
        start_with_env(policy, extra, &slots())
    }

    pub fn start_with_env(
        policy: &serde_json::Value,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Egress {
        let dir = tempfile::tempdir().unwrap();
        let pol = dir.path().join("policy.json");
        std::fs::write(&pol, serde_json::to_vec(policy).unwrap()).unwrap();
        let ready = dir.path().join("ready");
        let ca_path = dir.path().join("ca.pem");
        let log_path = dir.path().join("egress.log");
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .arg("--policy")
            .arg(&pol)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--ready-file")
            .arg(&ready)
            .arg("--ca-cert-out")
            .arg(&ca_path)
            .arg("--log-file")
            .arg(&log_path)
            .args(extra)
            .env_clear()
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(s) = std::fs::read_to_string(&ready) {
                if s.ends_with('\n') {
                    let addr = s.trim().parse().unwrap();
                    return Egress {
                        addr,
                        _dir: dir,
                        ca_path,
                        log_path,
                        child,
                    };
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                use std::io::Read;
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("egress exited early ({status}): {err}");
            }
            assert!(Instant::now() < deadline, "egress did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs real curl through the proxy; returns (status code, body, stderr).
    pub async fn curl(eg: &Egress, args: &[&str]) -> (u16, String, String) {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
            .arg("--proxy")
            .arg(eg.url())
            .arg("--cacert")
            .arg(&eg.ca_path)
            .args(args)
            .env_clear()
            .output()
            .await
            .expect("curl is installed");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", "0"));
        (
            code.trim().parse().unwrap_or(0),
            body.to_owned(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    /// A reqwest client that uses the proxy for everything and trusts its CA.
    pub fn client(eg: &Egress) -> reqwest::Client {
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(eg.url()).unwrap())
            .add_root_certificate(reqwest::Certificate::from_pem(eg.ca_pem().as_bytes()).unwrap())
            .tls_built_in_root_certs(false)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// Sends raw bytes to the proxy and returns what it answers until close
    /// or a short pause.
    pub async fn raw(eg: &Egress, bytes: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(eg.addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_millis(1500), s.read(&mut buf)).await {
                Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).to_string()
    }

    /// The Codex CLI's WebSocket handshake to `host`, carrying the agent's
    /// placeholder credential.
    pub fn codex_ws_request(host: &str) -> http::Request<()> {
        http::Request::builder()
            .uri(format!("wss://{host}/backend-api/codex/responses"))
            .header("host", host)
            .header("authorization", AGENT_FAKE)
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header(
                "sec-websocket-key",
                tokio_tungstenite::tungstenite::handshake::client::generate_key(),
            )
            .body(())
            .unwrap()
    }

    /// Opens a CONNECT tunnel and does TLS inside it with `sni`, trusting the
    /// proxy's CA. Returns the TLS stream or the handshake error.
    pub async fn tunnel(
        eg: &Egress,
        connect_to: &str,
        sni: &str,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(eg.addr).await.unwrap();
        s.write_all(
            format!("CONNECT {connect_to} HTTP/1.1\r\nHost: {connect_to}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut b).await.unwrap() == 0 {
                break;
            }
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("CONNECT refused: {head}"));
        }
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut eg.ca_pem().as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, s)
            .await
            .map_err(|e| e.to_string())
    }
}

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use harness::*;

mod injection {
    use super::*;

    #[tokio::test]
    async fn curl_https_gets_the_real_token_and_loses_its_own() {
        let up = upstream(&["api.github.com"]).await;
        let eg = start(&policy(&up), &[]);
        let url = format!("https://api.github.com:{}/repos/x", up.tls_port);
        let (code, body, err) = curl(
            &eg,
            &[
                &url,
                "-H",
                &format!("Authorization: {AGENT_FAKE}"),
                "--proxy-header",
                "Proxy-Authorization: Basic Zm9vOmJhcg==",
            ],
        )
        .await;
        assert_eq!(code, 200, "{body} {err}");
        assert_eq!(body, "ok");
        let seen = up.requests();
        assert_eq!(seen.len(), 1);
        let r = &seen[0];
        assert_eq!(
            r.header("authorization").as_deref(),
            Some(&*format!("token {GITHUB_TOKEN}"))
        );
        assert_eq!(r.headers.get_all("authorization").iter().count(), 1);
        assert!(r.header("proxy-authorization").is_none());
        assert_eq!(r.sni.as_deref(), Some("api.github.com"));
        assert_eq!(
            r.header("host").unwrap(),
            format!("api.github.com:{}", up.tls_port)
        );
        eg.assert_log_clean();
    }

    #[tokio::test]
    async fn reqwest_plain_http_is_injected_too() {
        let up = upstream(&["api.github.com"]).await;
        let eg = start(&policy(&up), &[]);
        let resp = client(&eg)
            .post(format!("http://api.github.com:{}/graphql", up.plain_port))
            .header("authorization", AGENT_FAKE)
            .body("{\"query\":1}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let r = &up.requests()[0];
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.header("authorization").unwrap(),
            format!("token {GITHUB_TOKEN}")
        );
        // keep-alive: a second request on the same client works as well
        let resp = client(&eg)
            .get(format!("https://api.github.com:{}/user", up.tls_port))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        eg.assert_log_clean();
    }

    #[tokio::test]
    async fn route_without_auth_passes_the_clients_own_header() {
        let up = upstream(&["uploads.example.net"]).await;
        let eg = start(&policy(&up), &[]);
        let url = format!("https://uploads.example.net:{}/f", up.tls_port);
        let (code, _, err) = curl(&eg, &[&url, "-H", "Authorization: Bearer agents-own"]).await;
        assert_eq!(code, 200, "{err}");
        assert_eq!(
            up.requests()[0].header("authorization").as_deref(),
            Some("Bearer agents-own")
        );
    }
}

mod refusal {
    use super::*;

    #[tokio::test]
    async fn host_without_route_is_refused_and_nothing_reaches_upstream() {
        let up = upstream(&["evil.example.org"]).await;
        let eg = start(&policy(&up), &[]);
        let (code, body, _) = curl(
            &eg,
            &[&format!("http://evil.example.org:{}/x", up.plain_port)],
        )
        .await;
        assert_eq!(code, 403);
        assert!(
            body.contains("evil.example.org") && body.contains("no egress route"),
            "{body}"
        );
        let (_, _, err) = curl(
            &eg,
            &[&format!("https://evil.example.org:{}/x", up.tls_port)],
        )
        .await;
        assert!(err.contains("403"), "{err}");
        // A route exists for api.github.com, but not on this port.
        let (code, body, _) = curl(&eg, &["http://api.github.com:1/x"]).await;
        assert_eq!(code, 403, "{body}");
        assert_eq!(
            up.accepts.load(Ordering::SeqCst),
            0,
            "upstream was contacted"
        );
        let log = eg.log();
        assert!(
            log.lines()
                .any(|l| l.contains("\"deny\"") && l.contains("evil.example.org")),
            "{log}"
        );
    }

    #[tokio::test]
    async fn private_destination_is_refused_unless_the_route_allows_it() {
        let up = upstream(&["private.example.net"]).await;
        let eg = start(&policy(&up), &[]);
        let (_, _, err) = curl(
            &eg,
            &[&format!("https://private.example.net:{}/", up.tls_port)],
        )
        .await;
        assert!(err.contains("403"), "{err}");
        let resp = client(&eg)
            .get(format!("https://private.example.net:{}/", up.tls_port))
            .send()
            .await;
        assert!(resp.is_err(), "CONNECT must be refused");
        let (code, _, _) = curl(&eg, &[&format!("http://127.0.0.1:{}/", up.plain_port)]).await;
        assert_eq!(code, 403, "a bare IP has no route");
        assert_eq!(up.accepts.load(Ordering::SeqCst), 0);
        assert!(eg.log().contains("loopback/private"), "{}", eg.log());
    }

    #[tokio::test]
    async fn matches_decide_which_requests_pass() {
        let up = upstream(&["api.openai.com"]).await;
        let eg = start(&policy(&up), &[]);
        let base = format!("https://api.openai.com:{}", up.tls_port);
        let c = client(&eg);
        assert_eq!(
            c.get(format!("{base}/v1/models"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            c.post(format!("{base}/v1/responses"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            c.get(format!("{base}/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            c.delete(format!("{base}/v1/models/x"))
                .send()
                .await
                .unwrap()
                .status(),
            403
        );
        assert_eq!(
            c.get(format!("{base}/v2/models"))
                .send()
                .await
                .unwrap()
                .status(),
            403
        );
        assert_eq!(
            c.get(format!("{base}/healthzz"))
                .send()
                .await
                .unwrap()
                .status(),
            403
        );
        // Climbing out of the `/v1/` prefix, however the separator is spelled
        // (servers that decode `%2f`/`%5c` before normalising would follow),
        // over HTTPS and over plain HTTP (the lean path hands these over).
        let plain = format!("http://api.github.com:{}", up.plain_port);
        for traversal in ["/v1/../admin", "/v1/..%2fadmin", "/v1/%2E%2e%5Cadmin"] {
            for origin in [&base, &plain] {
                let url = format!("{origin}{traversal}");
                let (code, _, _) = curl(&eg, &["--path-as-is", &url]).await;
                assert_eq!(code, 400, "{url}");
            }
        }
        let paths: Vec<String> = up.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/v1/models", "/v1/responses", "/healthz"]);
        eg.assert_log_clean();
    }

    #[tokio::test]
    async fn token_is_not_sent_after_a_redirect_to_another_host() {
        let up = upstream(&["api.github.com", "uploads.example.net"]).await;
        let eg = start(&policy(&up), &[]);
        let target = format!("https://uploads.example.net:{}/blob", up.tls_port);
        let url = format!(
            "https://api.github.com:{}/redirect?to={target}",
            up.tls_port
        );
        let (code, _, err) = curl(&eg, &["-L", &url]).await;
        assert_eq!(code, 200, "{err}");
        let resp = client(&eg).get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let seen = up.requests();
        assert_eq!(seen.len(), 4);
        for r in &seen {
            let auth = r.header("authorization");
            if r.path == "/redirect" {
                assert_eq!(auth.unwrap(), format!("token {GITHUB_TOKEN}"));
            } else {
                assert_eq!(r.sni.as_deref(), Some("uploads.example.net"));
                assert!(auth.is_none(), "token followed the redirect: {auth:?}");
            }
        }
    }
}

mod bypass {
    use super::*;

    #[tokio::test]
    async fn absolute_uri_and_host_header_must_agree() {
        let up = upstream(&["api.github.com"]).await;
        let eg = start(&policy(&up), &[]);
        let p = up.plain_port;
        // (1) URI names a host without a route, Host names an allowed one.
        let a = raw(
            &eg,
            format!(
                "GET http://evil.example.org:{p}/x HTTP/1.1\r\nHost: api.github.com:{p}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        assert!(a.starts_with("HTTP/1.1 403"), "{a}");
        // And the reverse.
        let a = raw(
            &eg,
            format!(
                "GET http://api.github.com:{p}/x HTTP/1.1\r\nHost: evil.example.org:{p}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        assert!(a.starts_with("HTTP/1.1 403"), "{a}");
        // Same host, other port in Host.
        let a = raw(
            &eg,
            format!("GET http://api.github.com:{p}/x HTTP/1.1\r\nHost: api.github.com\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert!(a.starts_with("HTTP/1.1 403"), "{a}");
        let a = raw(&eg, format!("GET http://api.github.com:{p}/x HTTP/1.1\r\nHost: api.github.com:{p}\r\nHost: evil.example.org\r\n\r\n").as_bytes()).await;
        assert!(a.starts_with("HTTP/1.1 400"), "{a}");
        assert_eq!(up.accepts.load(Ordering::SeqCst), 0);
        assert!(!eg.log().contains(GITHUB_TOKEN));
    }

    #[tokio::test]
    async fn connect_sni_and_host_must_agree() {
        let up = upstream(&["api.github.com", "uploads.example.net"]).await;
        let eg = start(&policy(&up), &[]);
        let p = up.tls_port;
        // (2) CONNECT to a host without a route: refused before any TLS.
        let r = tunnel(&eg, &format!("evil.example.org:{p}"), "api.github.com").await;
        assert!(r.unwrap_err().contains("403"));
        // CONNECT to an allowed host, SNI naming another (allowed) host.
        let r = tunnel(&eg, &format!("uploads.example.net:{p}"), "api.github.com").await;
        assert!(r.is_err(), "SNI mismatch must abort the handshake");
        // CONNECT line and its Host header disagree.
        let a = raw(
            &eg,
            format!("CONNECT api.github.com:{p} HTTP/1.1\r\nHost: evil.example.org:{p}\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert!(a.starts_with("HTTP/1.1 403"), "{a}");
        // Host header inside the tunnel names another host.
        let url = format!("https://api.github.com:{p}/x");
        let (code, _, _) = curl(
            &eg,
            &[&url, "-H", &format!("Host: uploads.example.net:{p}")],
        )
        .await;
        assert_eq!(code, 403);
        let (code, _, _) = curl(&eg, &[&url, "-H", "Host: api.github.com"]).await;
        assert_eq!(code, 403, "port must agree too");
        assert!(up.requests().is_empty(), "{:?}", up.requests());
    }

    #[tokio::test]
    async fn h2c_http2_settings_and_hop_by_hop_are_stripped() {
        let up = upstream(&["api.github.com"]).await;
        let eg = start(&policy(&up), &[]);
        let url = format!("http://api.github.com:{}/x", up.plain_port);
        let (code, _, err) = curl(
            &eg,
            &[
                &url,
                "-H",
                "Connection: Upgrade, HTTP2-Settings, X-Drop-Me",
                "-H",
                "Upgrade: h2c",
                "-H",
                "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
                "-H",
                "X-Drop-Me: 1",
                "-H",
                "Keep-Alive: timeout=5",
                "-H",
                "TE: trailers",
                "-H",
                "X-Keep: 1",
            ],
        )
        .await;
        assert_eq!(code, 200, "{err}");
        let r = &up.requests()[0];
        for h in [
            "upgrade",
            "http2-settings",
            "x-drop-me",
            "keep-alive",
            "te",
            "proxy-connection",
        ] {
            assert!(r.header(h).is_none(), "{h} was forwarded");
        }
        assert_eq!(r.header("x-keep").as_deref(), Some("1"));
    }

    #[tokio::test]
    async fn content_length_with_transfer_encoding_is_rejected() {
        let up = upstream(&["api.github.com"]).await;
        let eg = start(&policy(&up), &[]);
        let p = up.plain_port;
        let a = raw(&eg, format!("POST http://api.github.com:{p}/x HTTP/1.1\r\nHost: api.github.com:{p}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: api.github.com\r\n\r\n").as_bytes()).await;
        assert!(a.starts_with("HTTP/1.1 400"), "{a}");
        assert!(!a.contains("200 OK"), "{a}");
        assert!(up.requests().is_empty());
    }

    #[tokio::test]
    async fn leaf_certificate_names_exactly_one_host() {
        let up = upstream(&["api.github.com"]).await;
        let eg = start(&policy(&up), &[]);
        let tls = tunnel(
            &eg,
            &format!("api.github.com:{}", up.tls_port),
            "api.github.com",
        )
        .await
        .unwrap();
        let certs = tls.get_ref().1.peer_certificates().unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(certs[0].as_ref()).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 1);
        assert_eq!(
            format!("{}", san.value.general_names[0]),
            "DNSName(api.github.com)"
        );
        assert!(!cert.is_ca());
    }
}

mod streaming {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    #[tokio::test]
    async fn websocket_echo_with_injected_credential() {
        let up = upstream(&["chatgpt.com"]).await;
        let eg = start(&policy(&up), &[]);
        let host = format!("chatgpt.com:{}", up.tls_port);
        let tls = tunnel(&eg, &host, "chatgpt.com").await.unwrap();
        let (mut ws, resp) = tokio_tungstenite::client_async(codex_ws_request(&host), tls)
            .await
            .unwrap();
        assert_eq!(resp.status(), 101);
        ws.send(Message::text("hello through egress"))
            .await
            .unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), "hello through egress");
        let r = &up.requests()[0];
        assert_eq!(
            r.header("authorization").unwrap(),
            format!("Bearer {CHATGPT_TOKEN}")
        );
        assert_eq!(r.header("upgrade").as_deref(), Some("websocket"));
        eg.assert_log_clean();
    }

    #[tokio::test]
    async fn sse_arrives_incrementally() {
        let up = upstream(&["uploads.example.net"]).await;
        let eg = start(&policy(&up), &[]);
        let t0 = Instant::now();
        let resp = client(&eg)
            .get(format!("https://uploads.example.net:{}/sse", up.tls_port))
            .send()
            .await
            .unwrap();
        let mut stream = resp.bytes_stream();
        let mut arrivals = Vec::new();
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            if !chunk.is_empty() {
                arrivals.push(t0.elapsed());
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
        }
        assert_eq!(text, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
        assert!(arrivals.len() >= 3, "events were batched: {arrivals:?}");
        let first_to_last = arrivals[arrivals.len() - 1] - arrivals[0];
        assert!(
            first_to_last >= Duration::from_millis(600),
            "not streamed: {arrivals:?}"
        );
    }

    #[tokio::test]
    async fn sse_by_curl_shows_first_event_before_the_stream_ends() {
        let up = upstream(&["uploads.example.net"]).await;
        let eg = start(&policy(&up), &[]);
        let mut child = tokio::process::Command::new("curl")
            .args(["-sN", "--max-time", "10", "--proxy", &eg.url(), "--cacert"])
            .arg(&eg.ca_path)
            .arg(format!("https://uploads.example.net:{}/sse", up.tls_port))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let t0 = Instant::now();
        let mut buf = [0u8; 64];
        let n = tokio::io::AsyncReadExt::read(&mut out, &mut buf)
            .await
            .unwrap();
        let first = t0.elapsed();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("data: 0"));
        assert!(
            first < Duration::from_millis(700),
            "first event took {first:?}"
        );
        let _ = child.wait().await;
    }
}

mod limits {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn over_max_connections_answers_503_and_recovers() {
        let up = upstream(&["api.github.com"]).await;
        let eg = start(&policy(&up), &["--max-connections", "2"]);
        let a = tokio::net::TcpStream::connect(eg.addr).await.unwrap();
        let b = tokio::net::TcpStream::connect(eg.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let answer = raw(
            &eg,
            b"GET http://_egress.local/allowlist HTTP/1.1\r\nHost: _egress.local\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        drop((a, b));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (code, _, _) = curl(&eg, &["http://_egress.local/allowlist"]).await;
        assert_eq!(code, 200);
    }

    #[tokio::test]
    async fn oversized_header_is_refused() {
        let up = upstream(&["api.github.com"]).await;
        let eg = start(&policy(&up), &[]);
        let big = "a".repeat(80 * 1024);
        let a = raw(&eg, format!("GET http://api.github.com:{}/ HTTP/1.1\r\nHost: api.github.com:{}\r\nX-Big: {big}\r\n\r\n", up.plain_port, up.plain_port).as_bytes()).await;
        assert!(
            a.starts_with("HTTP/1.1 431") || a.is_empty(),
            "{}",
            &a[..a.len().min(200)]
        );
        assert!(up.requests().is_empty());
    }

    #[tokio::test]
    async fn idle_connection_is_closed() {
        let up = upstream(&["api.github.com"]).await;
        let eg = start(&policy(&up), &["--idle-timeout-secs", "1"]);
        let mut s = tokio::net::TcpStream::connect(eg.addr).await.unwrap();
        s.write_all(b"GET http://_egress.local/allowlist HTTP/1.1\r\nHost: _egress.local\r\n\r\n")
            .await
            .unwrap();
        let t0 = Instant::now();
        let mut buf = vec![0u8; 65536];
        let mut closed = false;
        while t0.elapsed() < Duration::from_secs(5) {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed = true;
                    break;
                }
                Ok(Ok(_)) => continue,
                Err(_) => break,
            }
        }
        assert!(closed, "idle keep-alive connection stayed open");
        assert!(t0.elapsed() < Duration::from_secs(3));
    }
}

mod total_limit {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    /// A connection that is never idle (a WebSocket exchanging a message
    /// every 200 ms) is still closed when the total limit is reached, so an
    /// agent cannot hold a proxy connection forever.
    #[tokio::test]
    async fn a_busy_connection_is_closed_at_the_total_timeout() {
        let up = upstream(&["chatgpt.com"]).await;
        let eg = start(
            &policy(&up),
            &["--idle-timeout-secs", "30", "--total-timeout-secs", "2"],
        );
        let host = format!("chatgpt.com:{}", up.tls_port);
        let t0 = Instant::now();
        let tls = tunnel(&eg, &host, "chatgpt.com").await.unwrap();
        let (mut ws, resp) = tokio_tungstenite::client_async(codex_ws_request(&host), tls)
            .await
            .unwrap();
        assert_eq!(resp.status(), 101);
        let mut echoed = 0;
        let closed_after = loop {
            assert!(
                t0.elapsed() < Duration::from_secs(8),
                "still open after {echoed} echoes"
            );
            if ws.send(Message::text("ping")).await.is_err() {
                break t0.elapsed();
            }
            match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
                Ok(Some(Ok(m))) if m.is_text() => echoed += 1,
                Ok(_) => break t0.elapsed(),
                Err(_) => panic!("no echo and no close within 3 s"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // It worked until the limit, and was cut there, not at once.
        assert!(echoed >= 3, "only {echoed} echoes before the close");
        assert!(
            closed_after >= Duration::from_millis(1800),
            "closed after {closed_after:?}"
        );
    }
}

mod cli {
    use super::*;

    #[tokio::test]
    async fn missing_slot_is_a_clear_error_without_values() {
        let up = upstream(&["api.github.com"]).await;
        let dir = tempfile::tempdir().unwrap();
        let pol = dir.path().join("p.json");
        std::fs::write(&pol, serde_json::to_vec(&policy(&up)).unwrap()).unwrap();
        let out = std::process::Command::new(bin())
            .args(["run", "--listen", "127.0.0.1:0", "--policy"])
            .arg(&pol)
            .env_clear()
            .env("EGRESS_TOKEN_0", GITHUB_TOKEN)
            .env("EGRESS_TOKEN_2", "")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("EGRESS_TOKEN_1") && err.contains("chatgpt.com"),
            "{err}"
        );
        assert!(!err.contains(GITHUB_TOKEN));
    }

    #[tokio::test]
    async fn bad_policy_names_the_file_and_route() {
        let dir = tempfile::tempdir().unwrap();
        let pol = dir.path().join("p.json");
        std::fs::write(&pol, r#"{"routes":[{"host":"a.com","matches":[{"paths":[{"type":"regex","value":"(("}]}]}]}"#).unwrap();
        let out = std::process::Command::new(bin())
            .args(["run", "--listen", "127.0.0.1:0", "--policy"])
            .arg(&pol)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("a.com") && err.contains("regex"), "{err}");
    }

    #[tokio::test]
    async fn probe_and_allowlist() {
        let up = upstream(&["api.github.com"]).await;
        let eg = start(&policy(&up), &[]);
        let ok = std::process::Command::new(bin())
            .args(["probe", &eg.addr.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let bad = std::process::Command::new(bin())
            .args(["probe", &format!("127.0.0.1:{port}")])
            .status()
            .unwrap();
        assert_eq!(bad.code(), Some(1));
        let (code, body, _) = curl(&eg, &["http://_egress.local/allowlist"]).await;
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let hosts: Vec<&str> = v["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["host"].as_str().unwrap())
            .collect();
        assert!(hosts.contains(&"api.github.com") && hosts.contains(&"chatgpt.com"));
        assert!(body.contains("/v1/"));
        for s in [GITHUB_TOKEN, CHATGPT_TOKEN, OPENAI_TOKEN, "EGRESS_TOKEN_"] {
            assert!(!body.contains(s), "allowlist leaks {s}");
        }
        assert!(
            eg.log().contains("resolve_overrides"),
            "override warning missing"
        );
    }

    #[tokio::test]
    async fn given_ca_is_used_and_written_out() {
        let up = upstream(&["api.github.com"]).await;
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "host-made bottle CA");
        let ca = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("ca.crt"), dir.path().join("ca.key"));
        std::fs::write(&c, ca.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let eg = start(
            &policy(&up),
            &[
                "--ca-cert",
                c.to_str().unwrap(),
                "--ca-key",
                k.to_str().unwrap(),
            ],
        );
        assert_eq!(eg.ca_pem(), ca.pem());
        let (code, _, err) =
            curl(&eg, &[&format!("https://api.github.com:{}/", up.tls_port)]).await;
        assert_eq!(code, 200, "{err}");
    }

    #[tokio::test]
    async fn dns_stub_answers_nxdomain() {
        let up = upstream(&["api.github.com"]).await;
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dns_port = sock.local_addr().unwrap().port();
        drop(sock);
        let dns = format!("127.0.0.1:{dns_port}");
        let _eg = start(&policy(&up), &["--dns-listen", &dns]);
        let c = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x03api\x06github\x03com\x00\x00\x01\x00\x01");
        c.send_to(&q, &dns).await.unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = tokio::time::timeout(Duration::from_secs(3), c.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..2], &[0xab, 0xcd]);
        assert_eq!(buf[3] & 0x0f, 3, "NXDOMAIN");
        assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), 0, "no answers");
        assert!(n >= 12);
    }
}

mod logging {
    use super::*;

    #[tokio::test]
    async fn no_secret_in_any_log_line_at_level_2() {
        let up = upstream(&["api.github.com", "chatgpt.com", "api.openai.com"]).await;
        let eg = start(&policy(&up), &[]);
        let c = client(&eg);
        for url in [
            format!("https://api.github.com:{}/a", up.tls_port),
            format!("http://api.github.com:{}/b", up.plain_port),
            format!("https://chatgpt.com:{}/c", up.tls_port),
            format!("https://api.openai.com:{}/v1/d", up.tls_port),
            format!("https://api.openai.com:{}/nope", up.tls_port),
        ] {
            let _ = c
                .get(&url)
                .header("authorization", AGENT_FAKE)
                .send()
                .await
                .unwrap();
        }
        let log = eg.log();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(
            lines.iter().filter(|l| l["event"] == "allow").count() >= 4,
            "{log}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l["event"] == "deny" && l["status"] == 403),
            "{log}"
        );
        assert!(lines.iter().any(|l| l["injected"] == true), "{log}");
        eg.assert_log_clean();
        assert!(!log.contains("placeholder-from-the-agent"));
    }
}

/// Plain-HTTP forwarding on one client connection: the lean path, its
/// upstream keep-alive connection, and the hand-over to the full path.
mod keepalive {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads one response (Content-Length or chunked framing) from `s`,
    /// leaving anything after it in `buf`. Returns the head and the body.
    async fn response(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> (String, Vec<u8>) {
        async fn fill(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) {
            let mut b = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
                .await
                .expect("response in time")
                .unwrap();
            assert!(
                n > 0,
                "connection closed early; have {:?}",
                String::from_utf8_lossy(buf)
            );
            buf.extend_from_slice(&b[..n]);
        }
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            fill(s, buf).await;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let lower = head.to_ascii_lowercase();
        let mut body = Vec::new();
        if let Some(cl) = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
        {
            let n: usize = cl.trim().parse().unwrap();
            while buf.len() < n {
                fill(s, buf).await;
            }
            body = buf.drain(..n).collect();
        } else if lower.contains("transfer-encoding: chunked") {
            loop {
                let line_end = loop {
                    if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    fill(s, buf).await;
                };
                let size =
                    usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16)
                        .unwrap();
                while buf.len() < line_end + 2 + size + 2 {
                    fill(s, buf).await;
                }
                body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
                buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
        }
        (head, body)
    }

    #[tokio::test]
    async fn pipelined_requests_switch_target_and_hand_over_on_one_connection() {
        let up = upstream(&["api.github.com"]).await;
        let eg = start(&policy(&up), &[]);
        let p = up.plain_port;
        let mut s = tokio::net::TcpStream::connect(eg.addr).await.unwrap();
        // Injected route, then a route without auth, then the first one
        // again, then a host without a route (the full path refuses it),
        // then an allowed one after the hand-over: all in one write.
        let reqs = format!(
            "GET http://api.github.com:{p}/a HTTP/1.1\r\nHost: api.github.com:{p}\r\nAuthorization: {AGENT_FAKE}\r\n\r\n\
             POST http://uploads.example.net:{p}/b HTTP/1.1\r\nAuthorization: Bearer own\r\nContent-Length: 5\r\n\r\nhello\
             GET http://api.github.com:{p}/c HTTP/1.1\r\n\r\n\
             GET http://evil.example.org:{p}/d HTTP/1.1\r\nAuthorization: Bearer x\r\n\r\n\
             GET http://uploads.example.net:{p}/e HTTP/1.1\r\n\r\n"
        );
        s.write_all(reqs.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let mut codes = Vec::new();
        for _ in 0..5 {
            let (head, body) = response(&mut s, &mut buf).await;
            codes.push(head[9..12].to_owned());
            if head.starts_with("HTTP/1.1 403") {
                let body = String::from_utf8_lossy(&body);
                assert!(
                    body.contains("`evil.example.org` has no egress route"),
                    "{body}"
                );
            } else {
                assert_eq!(body, b"ok", "{head}");
            }
        }
        assert_eq!(codes, ["200", "200", "200", "403", "200"]);
        let seen = up.requests();
        let paths: Vec<&str> = seen.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/a", "/b", "/c", "/e"],
            "nothing reached the upstream for /d"
        );
        let token = format!("token {GITHUB_TOKEN}");
        assert_eq!(seen[0].header("authorization").as_deref(), Some(&*token));
        assert_eq!(seen[0].headers.get_all("authorization").iter().count(), 1);
        assert_eq!(
            seen[1].header("authorization").as_deref(),
            Some("Bearer own")
        );
        assert_eq!(
            seen[1].header("host").unwrap(),
            format!("uploads.example.net:{p}")
        );
        assert_eq!(seen[2].header("authorization").as_deref(), Some(&*token));
        assert_eq!(
            seen[2].header("host").unwrap(),
            format!("api.github.com:{p}")
        );
        assert!(seen[3].header("authorization").is_none());
        eg.assert_log_clean();
        let log = eg.log();
        assert_eq!(log.matches("\"event\":\"allow\"").count(), 4, "{log}");
        assert_eq!(log.matches("\"event\":\"deny\"").count(), 1, "{log}");
    }

    #[tokio::test]
    async fn host_mismatch_after_a_lean_request_is_still_refused() {
        let up = upstream(&["api.github.com"]).await;
        let eg = start(&policy(&up), &[]);
        let p = up.plain_port;
        let mut s = tokio::net::TcpStream::connect(eg.addr).await.unwrap();
        let mut buf = Vec::new();
        s.write_all(format!("GET http://api.github.com:{p}/a HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (head, _) = response(&mut s, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        // The bypass from the issue, on a connection that already has an
        // upstream connection to the allowed host.
        s.write_all(
            format!(
                "GET http://evil.example.org:{p}/x HTTP/1.1\r\nHost: api.github.com:{p}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let (head, _) = response(&mut s, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        assert_eq!(up.requests().len(), 1);
    }

    /// A plain upstream that answers each request with `ok` and then closes
    /// without saying so (no `Connection: close`), as a server restarting or
    /// timing out an idle connection does. Returns its port and the number
    /// of requests it answered.
    async fn closing_upstream() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = n.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    continue;
                };
                let count = count.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&b[..n]),
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                    // Let the proxy see the response before the close, then close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                });
            }
        });
        (port, n)
    }

    use std::sync::Arc;

    #[tokio::test]
    async fn upstream_closing_between_requests_is_redialled() {
        let (port, answered) = closing_upstream().await;
        let pol = serde_json::json!({
            "version": 1, "log": 2,
            "routes": [{"host": "flaky.example.net", "port": port, "allow_private": true}],
            "resolve_overrides": {"flaky.example.net": "127.0.0.1"},
        });
        let eg = start(&pol, &[]);
        let mut s = tokio::net::TcpStream::connect(eg.addr).await.unwrap();
        let mut buf = Vec::new();
        for i in 0..4 {
            s.write_all(
                format!("GET http://flaky.example.net:{port}/{i} HTTP/1.1\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let (head, body) = response(&mut s, &mut buf).await;
            assert!(head.starts_with("HTTP/1.1 200"), "request {i}: {head}");
            assert_eq!(body, b"ok");
            // Sometimes before, sometimes after the upstream's close.
            tokio::time::sleep(Duration::from_millis(if i % 2 == 0 { 100 } else { 0 })).await;
        }
        assert_eq!(answered.load(Ordering::SeqCst), 4);
        eg.assert_log_clean();
    }

    /// A plain upstream answering by path: `/close` a body ended by closing
    /// the connection, `/head` (for HEAD) a length and no body, `/nocontent`
    /// 204, `/early` 413 at once without reading the request body, then
    /// closing; anything else `ok`.
    async fn shapes_upstream() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut b = [0u8; 4096];
                    loop {
                        let end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match s.read(&mut b).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&b[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end);
                        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                        let answer: &[u8] = match path.as_str() {
                            "/close" => b"HTTP/1.1 200 OK\r\n\r\nuntil-close",
                            "/head" => b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
                            "/nocontent" => b"HTTP/1.1 204 No Content\r\n\r\n",
                            "/early" => b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig",
                            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                        };
                        let _ = s.write_all(answer).await;
                        if path == "/close" || path == "/early" {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn response_shapes_close_head_204_and_early_answers() {
        let port = shapes_upstream().await;
        let pol = serde_json::json!({
            "version": 1, "log": 2,
            "routes": [{"host": "shapes.example.net", "port": port, "allow_private": true}],
            "resolve_overrides": {"shapes.example.net": "127.0.0.1"},
        });
        let eg = start(&pol, &[]);
        let base = format!("http://shapes.example.net:{port}");
        let mut s = tokio::net::TcpStream::connect(eg.addr).await.unwrap();
        let mut buf = Vec::new();
        // HEAD and 204: no body, the connection stays usable.
        s.write_all(format!("HEAD {base}/head HTTP/1.1\r\n\r\nGET {base}/nocontent HTTP/1.1\r\n\r\nGET {base}/x HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut heads = Vec::new();
        for _ in 0..2 {
            // No body follows these, whatever the headers say.
            let end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let mut b = [0u8; 4096];
                let n = s.read(&mut b).await.unwrap();
                assert!(n > 0);
                buf.extend_from_slice(&b[..n]);
            };
            heads.push(String::from_utf8_lossy(&buf[..end]).to_string());
            buf.drain(..end);
        }
        assert!(
            heads[0].starts_with("HTTP/1.1 200") && heads[0].contains("Content-Length: 10"),
            "{}",
            heads[0]
        );
        assert!(heads[1].starts_with("HTTP/1.1 204"), "{}", heads[1]);
        let (head, body) = response(&mut s, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"ok");

        // A body framed by the upstream's close: relayed whole, then the
        // client connection is closed too.
        s.write_all(format!("GET {base}/close HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut all = buf.clone();
        loop {
            let mut b = [0u8; 4096];
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
                .await
                .unwrap()
            {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&b[..n]),
            }
        }
        let all = String::from_utf8_lossy(&all).to_string();
        assert!(all.starts_with("HTTP/1.1 200"), "{all}");
        assert!(
            all.to_ascii_lowercase().contains("connection: close"),
            "{all}"
        );
        assert!(all.ends_with("\r\n\r\nuntil-close"), "{all}");

        // The upstream answers before reading a large body: the client gets
        // that answer, and the connection is closed after it.
        let mut s = tokio::net::TcpStream::connect(eg.addr).await.unwrap();
        s.write_all(
            format!("POST {base}/early HTTP/1.1\r\nContent-Length: 10000000\r\n\r\npartial")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        let (head, body) = response(&mut s, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 413"), "{head}");
        assert_eq!(body, b"big");
        let mut b = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "closed after the early answer");
        eg.assert_log_clean();
    }

    #[tokio::test]
    async fn chunked_request_body_arrives_whole_and_reframed() {
        // An upstream that echoes the body it decoded and the framing
        // headers it saw.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    use http_body_util::BodyExt;
                    let svc = hyper::service::service_fn(
                        |req: http::Request<hyper::body::Incoming>| async move {
                            let te = req
                                .headers()
                                .get("transfer-encoding")
                                .map(|v| v.to_str().unwrap().to_owned())
                                .unwrap_or_default();
                            let cl = req.headers().contains_key("content-length");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .header("x-te", te)
                                    .header("x-cl", cl.to_string())
                                    .body(http_body_util::Full::new(body))
                                    .unwrap(),
                            )
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        let pol = serde_json::json!({
            "version": 1, "log": 2,
            "routes": [{"host": "echo.example.net", "port": port, "allow_private": true}],
            "resolve_overrides": {"echo.example.net": "127.0.0.1"},
        });
        let eg = start(&pol, &[]);
        // curl streams stdin as chunked.
        let big: String = (0..20_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let mut child = tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "-D", "-", "--proxy"])
            .arg(eg.url())
            .args(["-H", "Transfer-Encoding: chunked", "--data-binary", "@-"])
            .arg(format!("http://echo.example.net:{port}/up"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = big.clone();
        tokio::spawn(async move {
            for part in data.as_bytes().chunks(7_000) {
                stdin.write_all(part).await.unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        });
        let out = child.wait_with_output().await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("x-te: chunked"), "{head}");
        assert!(lower.contains("x-cl: false"), "{head}");
        assert_eq!(body, big);

        // A chunked body with a bare-LF chunk line is not forwarded as is:
        // the connection is closed, and nothing of it reaches the upstream
        // in the client's spelling.
        let answer = raw(
            &eg,
            format!(
                "POST http://echo.example.net:{port}/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        assert!(!answer.contains("abc"), "{answer}");
    }

    #[tokio::test]
    async fn plain_sse_streams_and_websocket_upgrade_follows_a_lean_request() {
        let up = upstream(&["api.github.com"]).await;
        let eg = start(&policy(&up), &[]);
        let p = up.plain_port;
        let mut s = tokio::net::TcpStream::connect(eg.addr).await.unwrap();
        let mut buf = Vec::new();
        // SSE on the lean path: the first event arrives long before the
        // last one is sent (events are 400 ms apart).
        let t0 = Instant::now();
        s.write_all(format!("GET http://api.github.com:{p}/sse HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut b = [0u8; 4096];
        loop {
            let n = s.read(&mut b).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&b[..n]);
            if buf.windows(7).any(|w| w == b"data: 0") {
                break;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_millis(350),
            "{:?}",
            t0.elapsed()
        );
        while !buf.ends_with(b"0\r\n\r\n") {
            let n = s.read(&mut b).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&b[..n]);
        }
        assert!(t0.elapsed() >= Duration::from_millis(800));
        buf.clear();
        // Then a WebSocket upgrade on the same connection: handed to the
        // full path, credential injected on the handshake.
        let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
        s.write_all(
            format!(
                "GET http://api.github.com:{p}/ws HTTP/1.1\r\nHost: api.github.com:{p}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\nAuthorization: {AGENT_FAKE}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let (head, _) = response(&mut s, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            s,
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await;
        use futures_util::{SinkExt, StreamExt};
        ws.send(tokio_tungstenite::tungstenite::Message::text("hi"))
            .await
            .unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), "hi");
        let seen = up.requests();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[1].header("authorization").unwrap(),
            format!("token {GITHUB_TOKEN}")
        );
        eg.assert_log_clean();
    }
}
