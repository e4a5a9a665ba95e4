//! The proxy server: accept, judge, intercept, forward.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST,
    TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::LazyConfigAcceptor;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::h1::is_hop;
use crate::io::{Activity, FrameWatch, Rewind, Tracked, Watched};
use crate::log::{Kind, Logger};
use crate::mem::Churn;
use crate::net::{ConnectError, Connector, Resolver};
use crate::policy::Policy;
use crate::target::{normalize_host, parse_authority, Scheme, Target};
use crate::tls::CertAuthority;
use crate::MAGIC_HOST;

/// Response body: an upstream's streamed body or a local one.
pub type Body = Either<Incoming, Full<Bytes>>;

/// Limits that keep a misbehaving client from exhausting the proxy.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request head (request line plus headers), bytes (at least 8192).
    pub max_header_bytes: usize,
    /// Time allowed to send a request head.
    pub header_timeout: Duration,
    /// A connection with no byte moved for this long is closed.
    pub idle_timeout: Duration,
    /// A connection is closed after this long, whatever it does.
    pub total_timeout: Duration,
    /// Concurrent client connections (over all workers); more are answered 503.
    pub max_connections: usize,
    /// Threads serving connections, each with its own single-threaded
    /// runtime: a connection, its upstream leg and its timers stay on one
    /// thread, so a request costs no cross-thread wake-up.
    pub workers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            total_timeout: Duration::from_secs(6 * 3600),
            max_connections: 4096,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// What every connection shares.
pub struct Shared {
    pub(crate) policy: Arc<Policy>,
    ca: Arc<CertAuthority>,
    tls: Arc<rustls::ClientConfig>,
    resolver: Arc<Resolver>,
    pub(crate) connector: Connector,
    client: Client<Connector, Incoming>,
    pub(crate) log: Arc<Logger>,
    pub(crate) limits: Limits,
    churn: Arc<Churn>,
}

impl Shared {
    /// Builds the shared state.
    pub fn new(
        policy: Arc<Policy>,
        ca: CertAuthority,
        log: Arc<Logger>,
        limits: Limits,
    ) -> Result<Shared, crate::EgressError> {
        let tls = crate::tls::client_config(&policy.extra_roots_pem)?;
        Ok(Shared::with(
            policy,
            Arc::new(ca),
            tls,
            log,
            limits,
            Arc::new(Churn::default()),
        ))
    }

    fn with(
        policy: Arc<Policy>,
        ca: Arc<CertAuthority>,
        tls: Arc<rustls::ClientConfig>,
        log: Arc<Logger>,
        limits: Limits,
        churn: Arc<Churn>,
    ) -> Shared {
        let resolver = Arc::new(Resolver::new(policy.clone()));
        let connector = Connector::new(resolver.clone(), tls.clone());
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .set_host(false)
            .build(connector.clone());
        Shared {
            policy,
            ca,
            tls,
            resolver,
            connector,
            client,
            log,
            limits,
            churn,
        }
    }

    /// The same policy, CA, logger and limits with a worker's own resolver
    /// and upstream connection pool (their tasks and sockets belong to the
    /// worker's runtime).
    fn for_worker(&self) -> Shared {
        Shared::with(
            self.policy.clone(),
            self.ca.clone(),
            self.tls.clone(),
            self.log.clone(),
            self.limits.clone(),
            self.churn.clone(),
        )
    }

    /// The logger.
    pub fn log(&self) -> &Logger {
        &self.log
    }
}

pub(crate) struct ConnCtx {
    pub(crate) shared: Arc<Shared>,
    peer: SocketAddr,
    pub(crate) act: Arc<Activity>,
    _slot: Slot,
}

/// A client connection's place under `max_connections`; dropped when the
/// connection and every task serving it are done.
struct Slot {
    _permit: OwnedSemaphorePermit,
    churn: Arc<Churn>,
    /// The serving worker's count of open connections.
    load: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.load.fetch_sub(1, Ordering::Relaxed);
        self.churn.closed();
    }
}

/// A connection handed to another worker thread.
type Handoff = (std::net::TcpStream, SocketAddr, Slot);

/// Starts a worker thread with its own single-threaded runtime; it serves
/// the connections sent to it until the sender is dropped.
fn spawn_worker(
    i: usize,
    shared: Arc<Shared>,
) -> std::io::Result<tokio::sync::mpsc::UnboundedSender<Handoff>> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Handoff>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("egress-worker-{i}"))
        .spawn(move || {
            rt.block_on(async move {
                while let Some((tcp, peer, slot)) = rx.recv().await {
                    match TcpStream::from_std(tcp) {
                        Ok(tcp) => {
                            tokio::spawn(serve_conn(tcp, peer, shared.clone(), slot));
                        }
                        Err(e) => shared.log.write(
                            Kind::Warn,
                            json!({"reason": format!("cannot register connection: {e}")}),
                        ),
                    }
                }
            });
            // Dropping the runtime here ends the worker's connections.
        })?;
    Ok(tx)
}

/// Accepts connections until the listener fails for good (or the future is
/// dropped, which also stops the worker threads). Each connection goes to
/// the worker (this runtime's thread is one) serving the fewest.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(shared.limits.max_connections));
    tokio::spawn(shared.churn.clone().trim_when_quiet());
    let local_load = Arc::new(AtomicUsize::new(0));
    let mut others = Vec::new();
    for i in 1..shared.limits.workers.max(1) {
        match spawn_worker(i, Arc::new(shared.for_worker())) {
            Ok(tx) => others.push((tx, Arc::new(AtomicUsize::new(0)))),
            Err(e) => {
                shared.log.write(
                    Kind::Warn,
                    json!({"reason": format!("cannot start worker thread: {e}")}),
                );
                break;
            }
        }
    }
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors or similar: back off instead of spinning.
                shared
                    .log
                    .write(Kind::Warn, json!({"reason": format!("accept failed: {e}")}));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let least = others
                    .iter()
                    .min_by_key(|(_, load)| load.load(Ordering::Relaxed))
                    .filter(|(_, load)| {
                        load.load(Ordering::Relaxed) < local_load.load(Ordering::Relaxed)
                    });
                let (load, worker) = match least {
                    Some((tx, load)) => (load.clone(), Some(tx)),
                    None => (local_load.clone(), None),
                };
                load.fetch_add(1, Ordering::Relaxed);
                let slot = Slot {
                    _permit: permit,
                    churn: shared.churn.clone(),
                    load,
                };
                let sent = match worker {
                    Some(tx) => match tcp.into_std() {
                        Ok(std) => tx.send((std, peer, slot)).is_ok(),
                        Err(_) => false,
                    },
                    None => {
                        tokio::spawn(serve_conn(tcp, peer, shared.clone(), slot));
                        true
                    }
                };
                if !sent {
                    shared.log.write(
                        Kind::Warn,
                        json!({"client": peer.to_string(), "reason": "a worker thread is gone; connection dropped"}),
                    );
                }
            }
            Err(_) => {
                shared.log.write(
                    Kind::Deny,
                    json!({"client": peer.to_string(), "status": 503,
                           "reason": format!("too many connections (max {})", shared.limits.max_connections)}),
                );
                tokio::spawn(overloaded(tcp));
            }
        }
    }
}

async fn overloaded(mut tcp: TcpStream) {
    let body = "bot-bottle egress: too many concurrent connections; retry later\n";
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = tcp.write_all(resp.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}

fn http1(limits: &Limits) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192) * 2)
        .max_header_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    b
}

async fn serve_conn(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>, slot: Slot) {
    // An idle client connection costs only this small task until its first
    // byte arrives: hyper's per-connection buffers (16 KiB) and state are
    // built after that, in a separate allocation. A client that sends
    // nothing is closed after the header (or idle) timeout, as before.
    let l = &shared.limits;
    let first_byte = l.header_timeout.min(l.idle_timeout).min(l.total_timeout);
    // `peek`, not `readable`: tokio assumes an accepted socket readable,
    // so only a read that finds a byte proves one has come.
    match tokio::time::timeout(first_byte, tcp.peek(&mut [0u8; 1])).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return,
    }
    Box::pin(serve_http(tcp, peer, shared, slot)).await
}

async fn serve_http(tcp: TcpStream, peer: SocketAddr, shared: Arc<Shared>, slot: Slot) {
    let act = Arc::new(Activity::new());
    let limits = shared.limits.clone();
    let ctx = Arc::new(ConnCtx {
        shared,
        peer,
        act: act.clone(),
        _slot: slot,
    });
    let work = async {
        // Plain-HTTP forwarding takes the lean path; the first request it
        // does not take moves the connection to hyper, bytes and all.
        let mut tcp = tcp;
        let mut buf = Vec::new();
        if let crate::lean::Outcome::HandOff = crate::lean::serve(&ctx, &mut tcp, &mut buf).await {
            serve_hyper(Rewind::new(buf, tcp), ctx.clone()).await
        }
    };
    tokio::select! {
        _ = work => {}
        _ = act.expired(limits.idle_timeout, limits.total_timeout) => {}
    }
}

async fn serve_hyper(tcp: Rewind<TcpStream>, ctx: Arc<ConnCtx>) {
    let limits = &ctx.shared.limits;
    let watch = FrameWatch::new(limits.max_header_bytes.max(8192));
    let ambiguous = watch.ambiguous.clone();
    let io = TokioIo::new(Watched::new(Tracked::new(tcp, ctx.act.clone()), watch));
    let svc_ctx = ctx.clone();
    let svc = service_fn(move |req| {
        let c = svc_ctx.clone();
        let a = ambiguous.clone();
        async move { Ok::<_, Infallible>(handle(req, c, None, a).await) }
    });
    let _ = http1(limits)
        .serve_connection(io, svc)
        .with_upgrades()
        .await;
}

/// Facts about a request for its log line; gathered only at the log
/// levels that write them.
pub(crate) struct Seen {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) started: Option<Instant>,
}

impl Seen {
    fn new<B>(req: &Request<B>, log: &Logger) -> Seen {
        Seen {
            method: req.method().clone(),
            path: if log.enabled(Kind::Deny) {
                req.uri().path().to_owned()
            } else {
                String::new()
            },
            started: log.enabled(Kind::Allow).then(Instant::now),
        }
    }
}

impl ConnCtx {
    fn refuse(
        &self,
        seen: &Seen,
        target: Option<&Target>,
        status: StatusCode,
        reason: &str,
    ) -> Response<Body> {
        self.log_refusal(seen, target, status, reason);
        let close = status == StatusCode::BAD_REQUEST;
        text_response(status, &format!("bot-bottle egress: {reason}\n"), close)
    }

    /// The log line of a refusal.
    pub(crate) fn log_refusal(
        &self,
        seen: &Seen,
        target: Option<&Target>,
        status: StatusCode,
        reason: &str,
    ) {
        self.shared.log.write(
            Kind::Deny,
            json!({
                "client": self.peer.to_string(),
                "method": seen.method.as_str(),
                "target": target.map(|t| t.to_string()),
                "path": seen.path,
                "status": status.as_u16(),
                "reason": reason,
            }),
        );
    }

    pub(crate) fn allowed(
        &self,
        seen: &Seen,
        target: &Target,
        status: StatusCode,
        injected: bool,
        note: &str,
    ) {
        if !self.shared.log.enabled(Kind::Allow) {
            return;
        }
        self.shared.log.write(
            Kind::Allow,
            json!({
                "client": self.peer.to_string(),
                "method": seen.method.as_str(),
                "target": target.to_string(),
                "path": seen.path,
                "status": status.as_u16(),
                "injected": injected,
                "note": note,
                "ms": seen.started.map(|t| t.elapsed().as_secs_f64() * 1000.0),
            }),
        );
    }
}

fn text_response(status: StatusCode, body: &str, close: bool) -> Response<Body> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(body.to_owned()))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert("x-bot-bottle-egress", HeaderValue::from_static("refused"));
    if close {
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

type BoxedResponse = std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send>>;

/// Boxed with an explicit `Send`: handle -> connect -> intercept -> handle
/// is a cycle of opaque futures the compiler cannot see through otherwise.
fn handle(
    req: Request<Incoming>,
    ctx: Arc<ConnCtx>,
    inner: Option<Arc<Target>>,
    ambiguous: Arc<AtomicBool>,
) -> BoxedResponse {
    Box::pin(handle_inner(req, ctx, inner, ambiguous))
}

async fn handle_inner(
    req: Request<Incoming>,
    ctx: Arc<ConnCtx>,
    inner: Option<Arc<Target>>,
    ambiguous: Arc<AtomicBool>,
) -> Response<Body> {
    let seen = Seen::new(&req, &ctx.shared.log);
    if ambiguous.load(Ordering::SeqCst) {
        let reason = "a request with both Content-Length and Transfer-Encoding is refused";
        return ctx.refuse(&seen, inner.as_deref(), StatusCode::BAD_REQUEST, reason);
    }
    if let Err(reason) = structural_check(req.headers()) {
        return ctx.refuse(&seen, inner.as_deref(), StatusCode::BAD_REQUEST, &reason);
    }
    let target = match inner {
        Some(t) => {
            // Inside an intercepted CONNECT: the tunnel's target is fixed;
            // an absolute URI or Host naming anything else is refused.
            if req.method() == Method::CONNECT {
                return ctx.refuse(
                    &seen,
                    Some(&t),
                    StatusCode::BAD_REQUEST,
                    "CONNECT inside a tunnel is not allowed",
                );
            }
            if let Some(auth) = req.uri().authority() {
                let same = req.uri().scheme_str() == Some("https")
                    && parse_authority(auth.as_str(), Some(443))
                        .is_some_and(|(h, p)| h == t.host && p == t.port);
                if !same {
                    let reason = format!(
                        "request URI `{}` does not name the tunnel's target {t}",
                        req.uri()
                    );
                    return ctx.refuse(&seen, Some(&t), StatusCode::FORBIDDEN, &reason);
                }
            }
            t
        }
        None => {
            if req.method() == Method::CONNECT {
                return connect(req, ctx, seen).await;
            }
            match absolute_target(req.uri()) {
                Ok(Some(t)) => Arc::new(t),
                Ok(None) => {
                    // Origin-form: only the proxy's own magic host answers.
                    let host = req.headers().get(HOST).and_then(|h| h.to_str().ok());
                    if host
                        .and_then(|h| parse_authority(h, Some(80)))
                        .map(|(h, _)| h)
                        .as_deref()
                        == Some(MAGIC_HOST)
                    {
                        return magic(&req, &ctx, &seen);
                    }
                    return ctx.refuse(
                        &seen,
                        None,
                        StatusCode::BAD_REQUEST,
                        "this is a proxy: send absolute-form requests (http://host/path) or CONNECT host:port",
                    );
                }
                Err(reason) => return ctx.refuse(&seen, None, StatusCode::BAD_REQUEST, &reason),
            }
        }
    };
    let host_header = target.host_header();
    if let Err(reason) = host_agrees(req.headers(), &target, &host_header) {
        return ctx.refuse(&seen, Some(&target), StatusCode::FORBIDDEN, &reason);
    }
    if target.host == MAGIC_HOST {
        return magic(&req, &ctx, &seen);
    }
    forward(req, &target, host_header, ctx, seen).await
}

/// Request shapes that let two parsers disagree about where a message ends.
fn structural_check(headers: &HeaderMap) -> Result<(), String> {
    if headers.contains_key(TRANSFER_ENCODING) && headers.contains_key(CONTENT_LENGTH) {
        return Err("a request with both Content-Length and Transfer-Encoding is refused".into());
    }
    if headers.get_all(HOST).iter().count() > 1 {
        return Err("more than one Host header".into());
    }
    Ok(())
}

fn absolute_target(uri: &Uri) -> Result<Option<Target>, String> {
    let Some(auth) = uri.authority() else {
        return Ok(None);
    };
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        other => {
            return Err(format!(
                "scheme `{}` is not proxied (only http and https)",
                other.unwrap_or("")
            ))
        }
    };
    let (host, port) = parse_authority(auth.as_str(), Some(scheme.default_port()))
        .ok_or_else(|| format!("`{auth}` is not a valid host[:port]"))?;
    Ok(Some(Target { scheme, host, port }))
}

/// The `Host` header, when present, must name the parsed target exactly.
/// `canonical` is `target.host_header()`: a header spelled exactly so names
/// the target without parsing (the usual case); any other spelling is parsed.
fn host_agrees(headers: &HeaderMap, target: &Target, canonical: &str) -> Result<(), String> {
    let Some(v) = headers.get(HOST) else {
        return Ok(());
    };
    if v.as_bytes() == canonical.as_bytes() {
        return Ok(());
    }
    let s = v
        .to_str()
        .map_err(|_| "Host header is not valid text".to_string())?;
    match parse_authority(s, Some(target.scheme.default_port())) {
        Some((h, p)) if h == target.host && p == target.port => Ok(()),
        _ => Err(format!(
            "Host header `{s}` does not name the request's target {target}; refused"
        )),
    }
}

fn magic(req: &Request<Incoming>, ctx: &ConnCtx, seen: &Seen) -> Response<Body> {
    if req.method() != Method::GET || req.uri().path() != "/allowlist" {
        let mut r = text_response(
            StatusCode::NOT_FOUND,
            "bot-bottle egress: _egress.local answers only GET /allowlist\n",
            false,
        );
        r.headers_mut().remove("x-bot-bottle-egress");
        return r;
    }
    let body = serde_json::to_vec_pretty(&ctx.shared.policy.allowlist_json()).unwrap_or_default();
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(body))));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let t = Target {
        scheme: Scheme::Http,
        host: MAGIC_HOST.into(),
        port: 80,
    };
    ctx.allowed(seen, &t, StatusCode::OK, false, "allowlist");
    r
}

async fn connect(req: Request<Incoming>, ctx: Arc<ConnCtx>, seen: Seen) -> Response<Body> {
    let Some(auth) = req.uri().authority().map(|a| a.as_str().to_owned()) else {
        return ctx.refuse(
            &seen,
            None,
            StatusCode::BAD_REQUEST,
            "CONNECT needs host:port",
        );
    };
    let Some((host, port)) = parse_authority(&auth, None) else {
        return ctx.refuse(
            &seen,
            None,
            StatusCode::BAD_REQUEST,
            &format!("CONNECT target `{auth}` is not a valid host:port"),
        );
    };
    let target = Target {
        scheme: Scheme::Https,
        host,
        port,
    };
    if let Err(reason) = host_agrees(req.headers(), &target, &target.host_header()) {
        return ctx.refuse(&seen, Some(&target), StatusCode::FORBIDDEN, &reason);
    }
    let policy = &ctx.shared.policy;
    if policy.route_for(&target).is_none() {
        return ctx.refuse(
            &seen,
            Some(&target),
            StatusCode::FORBIDDEN,
            &no_route_reason(policy, &target),
        );
    }
    // Refuse a private destination before the tunnel opens, so the client
    // sees a 403 rather than a TLS error. The connector checks again.
    if let Err(e) = ctx
        .shared
        .resolver
        .permitted(&target.host, target.port, target.scheme)
        .await
    {
        let status = match e {
            ConnectError::PrivateAddress { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_GATEWAY,
        };
        return ctx.refuse(&seen, Some(&target), status, &e.to_string());
    }
    ctx.allowed(&seen, &target, StatusCode::OK, false, "tunnel opened");
    let task_ctx = ctx.clone();
    tokio::spawn(async move {
        let limits = task_ctx.shared.limits.clone();
        let act = task_ctx.act.clone();
        tokio::select! {
            _ = intercept(req, Arc::new(target), task_ctx) => {}
            _ = act.expired(limits.idle_timeout, limits.total_timeout) => {}
        }
    });
    Response::new(Either::Right(Full::new(Bytes::new())))
}

fn no_route_reason(policy: &Policy, target: &Target) -> String {
    if policy.has_host(&target.host) {
        format!(
            "host `{}` has a route, but not for port {}; nothing was sent. Add a route with port = {} to the bottle's egress routes if the agent needs it",
            target.host, target.port, target.port
        )
    } else {
        format!(
            "host `{}` has no egress route; nothing was sent. Add a route with host = \"{}\" to the bottle's egress routes if the agent needs it",
            target.host, target.host
        )
    }
}

async fn intercept(req: Request<Incoming>, target: Arc<Target>, ctx: Arc<ConnCtx>) {
    let Ok(upgraded) = hyper::upgrade::on(req).await else {
        return;
    };
    let limits = ctx.shared.limits.clone();
    let acceptor =
        LazyConfigAcceptor::new(rustls::server::Acceptor::default(), TokioIo::new(upgraded));
    let start = match tokio::time::timeout(limits.header_timeout, acceptor).await {
        Ok(Ok(s)) => s,
        _ => {
            ctx.shared.log.write(
                Kind::Warn,
                json!({"client": ctx.peer.to_string(), "target": target.to_string(),
                       "reason": "no TLS ClientHello after CONNECT (only TLS is accepted inside a tunnel)"}),
            );
            return;
        }
    };
    if let Some(sni) = start.client_hello().server_name() {
        if normalize_host(sni).as_deref() != Some(target.host.as_str()) {
            ctx.shared.log.write(
                Kind::Deny,
                json!({"client": ctx.peer.to_string(), "method": "CONNECT", "target": target.to_string(),
                       "reason": format!("TLS SNI `{sni}` does not name the CONNECT target {target}; refused")}),
            );
            return;
        }
    }
    let config = match ctx.shared.ca.server_config(&target.host) {
        Ok(c) => c,
        Err(e) => {
            ctx.shared.log.write(
                Kind::Warn,
                json!({"target": target.to_string(), "reason": e.to_string()}),
            );
            return;
        }
    };
    let tls = match start.into_stream(config).await {
        Ok(t) => t,
        Err(e) => {
            ctx.shared.log.write(
                Kind::Warn,
                json!({"client": ctx.peer.to_string(), "target": target.to_string(),
                       "reason": format!("TLS handshake with client failed: {e}")}),
            );
            return;
        }
    };
    let watch = FrameWatch::new(limits.max_header_bytes.max(8192));
    let ambiguous = watch.ambiguous.clone();
    let svc_ctx = ctx.clone();
    let svc = service_fn(move |req| {
        let c = svc_ctx.clone();
        let t = target.clone();
        let a = ambiguous.clone();
        async move { Ok::<_, Infallible>(handle(req, c, Some(t), a).await) }
    });
    let _ = http1(&limits)
        .serve_connection(TokioIo::new(Watched::new(tls, watch)), svc)
        .with_upgrades()
        .await;
}

/// Removes the hop-by-hop headers and every header `Connection` names.
fn strip_hop(headers: &mut HeaderMap) {
    // Names are lower case in a HeaderMap; one pass decides, and a message
    // without any hop-by-hop header (no `Connection` either, so nothing it
    // could name) is left as it is.
    if !headers.keys().any(|n| is_hop(n.as_str())) {
        return;
    }
    let connection_tokens = || {
        headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
    };
    // Usually `Connection` names only hop-by-hop headers (`keep-alive`,
    // `upgrade`); then only the fixed set goes.
    let names_others = connection_tokens().any(|t| !is_hop(t));
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| {
            is_hop(n.as_str())
                || (names_others && connection_tokens().any(|t| t.eq_ignore_ascii_case(n.as_str())))
        })
        .cloned()
        .collect();
    for n in doomed {
        headers.remove(n);
    }
}

fn token_in(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Only WebSocket may switch protocols; `h2c` and anything else is dropped.
fn is_websocket(headers: &HeaderMap) -> bool {
    token_in(headers, CONNECTION, "upgrade") && token_in(headers, UPGRADE, "websocket")
}

/// Whether a path has a `.` or `..` segment, also spelled with `%2e`.
///
/// Segments end at `/`, and also at `\`, `%2f` and `%5c`: upstream servers
/// that decode those before normalising (many do) would otherwise let
/// `/api/v1/..%2fadmin` climb out of a `prefix: /api/v1/` match. An encoded
/// slash inside a segment name (`group%2Fproject`, as GitLab uses) stays
/// allowed.
pub fn has_dot_segment(path: &str) -> bool {
    enum Unit {
        Separator,
        Dot,
        Other,
    }
    let mut rest = path.as_bytes();
    // Dots in the current segment; None once it holds anything else.
    let mut dots = Some(0u8);
    loop {
        let (len, unit) = match rest {
            [] => (0, Unit::Separator),
            [b'/' | b'\\', ..] => (1, Unit::Separator),
            [b'%', b'2', l, ..] if l | 0x20 == b'f' => (3, Unit::Separator),
            [b'%', b'5', l, ..] if l | 0x20 == b'c' => (3, Unit::Separator),
            [b'%', b'2', l, ..] if l | 0x20 == b'e' => (3, Unit::Dot),
            [b'.', ..] => (1, Unit::Dot),
            _ => (1, Unit::Other),
        };
        match unit {
            Unit::Separator if matches!(dots, Some(1 | 2)) => return true,
            Unit::Separator => dots = Some(0),
            Unit::Dot => dots = dots.map(|n| n.saturating_add(1)),
            Unit::Other => dots = None,
        }
        if rest.is_empty() {
            return false;
        }
        rest = &rest[len..];
    }
}

/// Forwards an allowed request to `target`; `host_header` is
/// `target.host_header()`.
async fn forward(
    mut req: Request<Incoming>,
    target: &Target,
    host_header: String,
    ctx: Arc<ConnCtx>,
    seen: Seen,
) -> Response<Body> {
    let shared = ctx.shared.clone();
    let Some(route) = shared.policy.route_for(target) else {
        return ctx.refuse(
            &seen,
            Some(target),
            StatusCode::FORBIDDEN,
            &no_route_reason(&shared.policy, target),
        );
    };
    if has_dot_segment(req.uri().path()) {
        return ctx.refuse(
            &seen,
            Some(target),
            StatusCode::BAD_REQUEST,
            "path has `.` or `..` segments",
        );
    }
    if !route.allows(req.method(), req.uri().path(), req.headers()) {
        let reason = format!(
            "{} {} is not allowed by the `matches` of the route for `{}`; nothing was sent",
            req.method(),
            req.uri().path(),
            route.host
        );
        return ctx.refuse(&seen, Some(target), StatusCode::FORBIDDEN, &reason);
    }
    let ws = is_websocket(req.headers());
    let client_upgrade = ws.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    strip_hop(&mut headers);
    let host_value = match HeaderValue::try_from(host_header) {
        Ok(v) => v,
        Err(_) => return ctx.refuse(&seen, Some(target), StatusCode::BAD_REQUEST, "bad host"),
    };
    headers.insert(HOST, host_value);
    let injected = match route.auth_header() {
        Some(v) => {
            headers.insert(AUTHORIZATION, v.clone());
            true
        }
        None => false,
    };
    if ws {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    }
    // The upstream URI: the target's scheme and authority (what the
    // connector resolves, checks and verifies) and the client's path.
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(match target.scheme {
        Scheme::Http => http::uri::Scheme::HTTP,
        Scheme::Https => http::uri::Scheme::HTTPS,
    });
    uri.authority = http::uri::Authority::try_from(target.authority()).ok();
    uri.path_and_query = Some(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    let uri = match Uri::from_parts(uri) {
        Ok(u) if u.authority().is_some() => u,
        _ => {
            return ctx.refuse(
                &seen,
                Some(target),
                StatusCode::BAD_REQUEST,
                "request target is not a valid URI",
            )
        }
    };
    let mut out = Request::new(body);
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.version_mut() = Version::HTTP_11;
    *out.headers_mut() = headers;
    let mut resp = match shared.client.request(out).await {
        Ok(r) => r,
        Err(e) => {
            let ce = find_connect_error(&e);
            let (status, reason) = match ce {
                Some(c @ ConnectError::PrivateAddress { .. }) => {
                    (StatusCode::FORBIDDEN, c.to_string())
                }
                Some(c) => (StatusCode::BAD_GATEWAY, c.to_string()),
                None => (
                    StatusCode::BAD_GATEWAY,
                    format!("upstream {target} failed: {e}"),
                ),
            };
            return ctx.refuse(&seen, Some(target), status, &reason);
        }
    };
    let status = resp.status();
    if ws && status == StatusCode::SWITCHING_PROTOCOLS {
        let upstream = hyper::upgrade::on(&mut resp);
        if let Some(client) = client_upgrade {
            let splice_ctx = ctx.clone();
            tokio::spawn(async move {
                let limits = splice_ctx.shared.limits.clone();
                let (Ok(c), Ok(u)) = (client.await, upstream.await) else {
                    return;
                };
                let mut c = TokioIo::new(c);
                let mut u = TokioIo::new(u);
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut c, &mut u) => {}
                    _ = splice_ctx.act.expired(limits.idle_timeout, limits.total_timeout) => {}
                }
            });
        }
        let (mut p, _) = resp.into_parts();
        strip_hop(&mut p.headers);
        p.headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        p.headers
            .insert(UPGRADE, HeaderValue::from_static("websocket"));
        ctx.allowed(&seen, target, status, injected, "websocket");
        return Response::from_parts(p, Either::Right(Full::new(Bytes::new())));
    }
    strip_hop(resp.headers_mut());
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // An upstream that switches protocols we did not ask for.
        return ctx.refuse(
            &seen,
            Some(target),
            StatusCode::BAD_GATEWAY,
            "upstream switched protocols unasked",
        );
    }
    ctx.allowed(&seen, target, status, injected, "");
    resp.map(Either::Left)
}

fn find_connect_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a ConnectError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(c) = err.downcast_ref::<ConnectError>() {
            return Some(c);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_in_any_spelling() {
        for p in [
            "/a/../b",
            "/a/./b",
            "/..",
            "/a/%2e%2E/b",
            "/a/.%2e",
            "/%2E",
            "/a/%2e.",
            "/api/v1/..%2fadmin",
            "/api/v1/..%2Fadmin",
            "/api/v1/%2e%2e%2Fadmin",
            "/a/..%5cb",
            "/a\\..\\b",
            "/a/..\\b",
            "/a/.%5C",
        ] {
            assert!(has_dot_segment(p), "{p}");
        }
        for p in [
            "/",
            "/a/b",
            "/a/.../b",
            "/a/.b",
            "/%2e%2e%2e",
            "/a/%2",
            "/%2f",
            "//x",
            "/api/v4/projects/group%2Fproject",
            "/a/b.%2fc",
            "/a/%2e%2e%2e%2fb",
            "/a\\b",
            "/a/%5",
        ] {
            assert!(!has_dot_segment(p), "{p}");
        }
    }

    #[test]
    fn strips_hop_by_hop_and_connection_listed_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("X-Secret-Hop, keep-alive"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("http2-settings", HeaderValue::from_static("AAA"));
        h.insert(UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);

        let mut only_hop = HeaderMap::new();
        only_hop.insert(CONNECTION, HeaderValue::from_static("Keep-Alive, close"));
        only_hop.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        only_hop.insert("close", HeaderValue::from_static("x"));
        only_hop.insert("date", HeaderValue::from_static("today"));
        strip_hop(&mut only_hop);
        let left: Vec<&str> = only_hop.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["date"]);

        let mut plain = HeaderMap::new();
        plain.insert("accept", HeaderValue::from_static("*/*"));
        plain.insert(HOST, HeaderValue::from_static("a"));
        strip_hop(&mut plain);
        assert_eq!(plain.len(), 2);
    }
}
