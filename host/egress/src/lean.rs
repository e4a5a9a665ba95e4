//! The lean plain-HTTP path: absolute-form `http://` requests forwarded with
//! [`crate::h1`] heads and byte-level body passthrough, one upstream
//! keep-alive connection per client connection, all on the connection's
//! own task.
//!
//! It forwards only what [`h1::plan_request`] accepts: requests the full
//! (hyper) path would forward as well. The first request it does not accept
//! — a refusal, `CONNECT`, a WebSocket upgrade, the magic host, an unusual
//! shape — hands the connection, with every byte read so far, to the full
//! path at that message boundary; the full path then answers exactly as it
//! always has.

use std::time::Instant;

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::h1::{self, Chunked, Framing, Plan, RespPlan};
use crate::net::ConnectError;
use crate::proxy::{ConnCtx, Seen};
use crate::target::Target;

/// How a lean connection ended.
pub(crate) enum Outcome {
    /// The connection is done (closed, failed or timed out).
    Closed,
    /// The full path takes over; the buffer holds the unprocessed bytes.
    HandOff,
}

/// Free space kept for each read.
const READ_SPACE: usize = 8 * 1024;

struct Upstream {
    target: Target,
    tcp: TcpStream,
    buf: Vec<u8>,
}

/// Serves requests on `client` until one is not for the lean path
/// (`HandOff`, with its bytes left in `buf`) or the connection ends.
pub(crate) async fn serve(ctx: &ConnCtx, client: &mut TcpStream, buf: &mut Vec<u8>) -> Outcome {
    let mut up: Option<Upstream> = None;
    loop {
        let fwd = match read_head(ctx, client, buf).await {
            Some(Plan::Forward(f)) => f,
            Some(_) => return Outcome::HandOff,
            None => return Outcome::Closed,
        };
        if !exchange(ctx, client, buf, &mut up, *fwd).await {
            return Outcome::Closed;
        }
    }
}

async fn read_some<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < READ_SPACE / 2 {
        buf.reserve(READ_SPACE);
    }
    r.read_buf(buf).await
}

/// Reads until `buf` starts with a complete head (or one that is not for
/// the lean path). `None`: the client closed, failed, or took longer than
/// the header timeout once the head had begun.
async fn read_head(ctx: &ConnCtx, client: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Plan> {
    let limits = &ctx.shared.limits;
    let max = limits.max_header_bytes.max(8192);
    let mut deadline = None;
    loop {
        if !buf.is_empty() {
            match h1::plan_request(buf, max, &ctx.shared.policy) {
                Plan::Partial => {}
                p => return Some(p),
            }
        }
        let n = if buf.is_empty() {
            // Between requests: the idle timeout (outside) applies.
            read_some(client, buf).await
        } else {
            let d = *deadline
                .get_or_insert_with(|| tokio::time::Instant::now() + limits.header_timeout);
            match tokio::time::timeout_at(d, read_some(client, buf)).await {
                Ok(r) => r,
                Err(_) => return None,
            }
        };
        match n {
            Ok(0) | Err(_) => return None,
            Ok(_) => ctx.act.touch(),
        }
    }
}

/// Whether an idle upstream connection is still usable: nothing to read
/// (no close, no stray bytes). tokio answers from cached readiness when it
/// can, so this rarely costs a system call.
fn fresh(tcp: &TcpStream) -> bool {
    matches!(tcp.try_read(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// The body still to move from the client.
enum BodyLeft {
    Length(u64),
    Chunked(Chunked),
    Done,
}

impl BodyLeft {
    /// Moves what `buf` holds of the body to `out`.
    fn take(&mut self, buf: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<(), h1::ChunkError> {
        match self {
            BodyLeft::Length(n) => {
                let k = (*n).min(buf.len() as u64) as usize;
                out.extend_from_slice(&buf[..k]);
                buf.drain(..k);
                *n -= k as u64;
                if *n == 0 {
                    *self = BodyLeft::Done;
                }
            }
            BodyLeft::Chunked(c) => {
                let used = c.decode(buf, out)?;
                buf.drain(..used);
                if c.is_done() {
                    *self = BodyLeft::Done;
                }
            }
            BodyLeft::Done => {}
        }
        Ok(())
    }
}

/// How relaying a response ended.
enum Relay {
    /// Relayed whole; whether the upstream connection may be reused and
    /// whether the client connection must close.
    Done { reusable: bool, close: bool },
    /// The reused upstream connection closed before answering: retry on a
    /// new one (only for requests without a body).
    Retry,
    /// Nothing sent to the client yet: answer 502 with this reason.
    Refuse(String),
    /// Failed after the response began: close the client connection.
    Broken,
}

/// One request and its response. `false`: close the client connection.
async fn exchange(
    ctx: &ConnCtx,
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    up: &mut Option<Upstream>,
    fwd: h1::Forward,
) -> bool {
    let log = &ctx.shared.log;
    let seen = Seen {
        method: fwd.method.clone(),
        path: if log.enabled(crate::log::Kind::Deny) {
            fwd.path.clone()
        } else {
            String::new()
        },
        started: log.enabled(crate::log::Kind::Allow).then(Instant::now),
    };
    buf.drain(..fwd.consumed);
    let mut body = match fwd.body {
        Framing::Length(n) => BodyLeft::Length(n),
        Framing::Chunked => BodyLeft::Chunked(Chunked::new()),
        _ => BodyLeft::Done,
    };
    let mut out = Vec::new();
    if body.take(buf, &mut out).is_err() {
        return false;
    }
    let has_body = fwd.body != Framing::None;
    let head_request = fwd.method == http::Method::HEAD;

    if up
        .as_ref()
        .is_some_and(|u| u.target != fwd.target || !u.buf.is_empty() || !fresh(&u.tcp))
    {
        *up = None;
    }
    for attempt in 0..2 {
        let reused = up.is_some();
        if up.is_none() {
            match ctx.shared.connector.connect_plain(&fwd.target).await {
                Ok(tcp) => {
                    *up = Some(Upstream {
                        target: fwd.target.clone(),
                        tcp,
                        buf: Vec::new(),
                    })
                }
                Err(e) => {
                    let status = match e {
                        ConnectError::PrivateAddress { .. } => StatusCode::FORBIDDEN,
                        _ => StatusCode::BAD_GATEWAY,
                    };
                    return refuse(
                        ctx,
                        client,
                        &seen,
                        &fwd.target,
                        status,
                        &e.to_string(),
                        has_body,
                    )
                    .await;
                }
            }
        }
        let Some(u) = up.as_mut() else { return false };
        // The classic keep-alive race: the upstream closed the idle
        // connection as the request went out. Sent again only when it has
        // no body and its method is idempotent, as browsers do.
        let retryable = reused && !has_body && attempt == 0 && fwd.method.is_idempotent();
        // One write for the head and whatever of the body has come.
        let sent = if out.is_empty() {
            u.tcp.write_all(&fwd.head).await
        } else {
            let mut first = Vec::with_capacity(fwd.head.len() + out.len());
            first.extend_from_slice(&fwd.head);
            first.extend_from_slice(&out);
            u.tcp.write_all(&first).await
        };
        if sent.is_err() {
            *up = None;
            if retryable {
                continue;
            }
            let reason = format!("upstream {} failed: cannot send the request", fwd.target);
            return refuse(
                ctx,
                client,
                &seen,
                &fwd.target,
                StatusCode::BAD_GATEWAY,
                &reason,
                true,
            )
            .await;
        }
        ctx.act.touch();

        let (mut urd, mut uwr) = u.tcp.split();
        let (mut crd, mut cwr) = client.split();
        let ubuf = &mut u.buf;
        let ctx_ref = ctx;
        let seen_ref = &seen;
        let target = &fwd.target;
        let relay = relay(
            ctx_ref,
            &mut urd,
            ubuf,
            &mut cwr,
            seen_ref,
            target,
            fwd.injected,
            head_request,
            fwd.close,
            retryable,
        );
        let (result, body_done) = if matches!(body, BodyLeft::Done) {
            (relay.await, true)
        } else {
            let pump = pump_body(ctx_ref, &mut crd, buf, &mut uwr, &mut body);
            tokio::pin!(relay, pump);
            let mut body_ok = None;
            loop {
                tokio::select! {
                    biased;
                    r = &mut relay => break (r, body_ok == Some(true)),
                    b = &mut pump, if body_ok.is_none() => {
                        body_ok = Some(b);
                        if !b {
                            break (Relay::Broken, false);
                        }
                    }
                }
            }
        };
        return match result {
            Relay::Done { reusable, close } => {
                if !(reusable && body_done) {
                    *up = None;
                }
                !close && body_done && !fwd.close
            }
            Relay::Retry => {
                *up = None;
                continue;
            }
            Relay::Refuse(reason) => {
                *up = None;
                refuse(
                    ctx,
                    client,
                    &seen,
                    &fwd.target,
                    StatusCode::BAD_GATEWAY,
                    &reason,
                    !body_done,
                )
                .await
            }
            Relay::Broken => {
                *up = None;
                false
            }
        };
    }
    false
}

/// Moves the rest of a request body from the client to the upstream.
async fn pump_body<R, W>(
    ctx: &ConnCtx,
    crd: &mut R,
    buf: &mut Vec<u8>,
    uwr: &mut W,
    body: &mut BodyLeft,
) -> bool
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    while !matches!(body, BodyLeft::Done) {
        match read_some(crd, buf).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => ctx.act.touch(),
        }
        out.clear();
        if body.take(buf, &mut out).is_err() {
            return false;
        }
        if !out.is_empty() && uwr.write_all(&out).await.is_err() {
            return false;
        }
    }
    true
}

/// Reads the upstream's response and relays it to the client as it comes.
#[allow(clippy::too_many_arguments)]
async fn relay<R, W>(
    ctx: &ConnCtx,
    urd: &mut R,
    ubuf: &mut Vec<u8>,
    cwr: &mut W,
    seen: &Seen,
    target: &Target,
    injected: bool,
    head_request: bool,
    client_close: bool,
    retryable: bool,
) -> Relay
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut got_any = false;
    let resp = loop {
        if !ubuf.is_empty() {
            got_any = true;
            match h1::plan_response(ubuf, head_request, client_close) {
                RespPlan::Partial => {}
                RespPlan::Informational(n) => {
                    ubuf.drain(..n);
                    continue;
                }
                RespPlan::Bad(reason) => return Relay::Refuse(reason.to_owned()),
                RespPlan::Head(r) => break r,
            }
        }
        match read_some(urd, ubuf).await {
            Ok(0) | Err(_) if retryable && !got_any => return Relay::Retry,
            Ok(0) | Err(_) => {
                return Relay::Refuse(format!(
                    "upstream {target} failed: connection closed before the response was complete"
                ))
            }
            Ok(_) => {}
        }
    };
    ctx.allowed(
        seen,
        target,
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::OK),
        injected,
        "",
    );
    ubuf.drain(..resp.consumed);
    let mut head = resp.head;
    let mut close = client_close || resp.body == Framing::Close;
    let mut reusable = resp.reusable;
    let ok = match resp.body {
        Framing::None => cwr.write_all(&head).await.is_ok(),
        Framing::Length(mut n) => {
            let k = n.min(ubuf.len() as u64) as usize;
            head.extend_from_slice(&ubuf[..k]);
            ubuf.drain(..k);
            n -= k as u64;
            let mut ok = cwr.write_all(&head).await.is_ok();
            while ok && n > 0 {
                match read_some(urd, ubuf).await {
                    Ok(0) | Err(_) => ok = false,
                    Ok(_) => {
                        let k = n.min(ubuf.len() as u64) as usize;
                        ok = cwr.write_all(&ubuf[..k]).await.is_ok();
                        ubuf.drain(..k);
                        n -= k as u64;
                        ctx.act.touch();
                    }
                }
            }
            ok
        }
        Framing::Chunked => {
            let mut dec = Chunked::new();
            let mut ok = match dec.decode(ubuf, &mut head) {
                Ok(used) => {
                    ubuf.drain(..used);
                    cwr.write_all(&head).await.is_ok()
                }
                Err(_) => false,
            };
            let mut out = Vec::new();
            while ok && !dec.is_done() {
                match read_some(urd, ubuf).await {
                    Ok(0) | Err(_) => ok = false,
                    Ok(_) => {
                        out.clear();
                        match dec.decode(ubuf, &mut out) {
                            Ok(used) => {
                                ubuf.drain(..used);
                                ok = cwr.write_all(&out).await.is_ok();
                                ctx.act.touch();
                            }
                            Err(_) => ok = false,
                        }
                    }
                }
            }
            ok
        }
        Framing::Close => {
            head.extend_from_slice(ubuf);
            ubuf.clear();
            let mut ok = cwr.write_all(&head).await.is_ok();
            while ok {
                match read_some(urd, ubuf).await {
                    Ok(0) => break,
                    Err(_) => ok = false,
                    Ok(_) => {
                        ok = cwr.write_all(ubuf).await.is_ok();
                        ubuf.clear();
                        ctx.act.touch();
                    }
                }
            }
            close = true;
            ok
        }
    };
    if !ok {
        return Relay::Broken;
    }
    ctx.act.touch();
    if !ubuf.is_empty() {
        // Bytes after the response: not a connection to send more on.
        reusable = false;
    }
    if close {
        let _ = cwr.shutdown().await;
    }
    Relay::Done { reusable, close }
}

/// Logs a refusal and answers it as the full path does. `close`: the client
/// connection closes after it (a request body was not read).
async fn refuse(
    ctx: &ConnCtx,
    client: &mut TcpStream,
    seen: &Seen,
    target: &Target,
    status: StatusCode,
    reason: &str,
    close: bool,
) -> bool {
    ctx.log_refusal(seen, Some(target), status, reason);
    let close = close || status == StatusCode::BAD_REQUEST;
    let body = format!("bot-bottle egress: {reason}\n");
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\nx-bot-bottle-egress: refused\r\ncontent-length: {}\r\n{}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        if close { "connection: close\r\n" } else { "" },
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    let ok = client.write_all(&out).await.is_ok();
    ctx.act.touch();
    ok && !close
}
