//! Activity tracking for idle and total timeouts.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// When a client connection started and last moved a byte.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    /// Starts now.
    pub fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Records that a byte moved now.
    pub fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Resolves when the connection has been idle for `idle` or alive for
    /// `total`.
    pub async fn expired(&self, idle: Duration, total: Duration) {
        loop {
            let age = self.start.elapsed();
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let idle_for = age.saturating_sub(last);
            if age >= total || idle_for >= idle {
                return;
            }
            let wait = (idle - idle_for).min(total - age);
            tokio::time::sleep(wait + Duration::from_millis(5)).await;
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

/// A stream that records activity on every byte moved.
pub struct Tracked<T> {
    inner: T,
    act: Arc<Activity>,
}

impl<T> Tracked<T> {
    /// Wraps a stream.
    pub fn new(inner: T, act: Arc<Activity>) -> Tracked<T> {
        Tracked { inner, act }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.act.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.act.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.act.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A stream that first yields bytes already read from it (by the lean
/// path, which hands a connection to the full path at a message boundary).
pub struct Rewind<T> {
    pre: Vec<u8>,
    pos: usize,
    inner: T,
}

impl<T> Rewind<T> {
    /// `pre` is read before anything from `inner`.
    pub fn new(pre: Vec<u8>, inner: T) -> Rewind<T> {
        Rewind { pre, pos: 0, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.pre.len() {
            let n = (this.pre.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.pre[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.pre.len() {
                this.pre = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Follows HTTP/1.1 request framing on the bytes a client sends, to see what
/// the server parser hides: a head carrying both `Content-Length` and
/// `Transfer-Encoding` (hyper drops the length and closes after the
/// response; the policy is to refuse such a request outright).
#[derive(Debug)]
pub struct FrameWatch {
    state: FrameState,
    head: Vec<u8>,
    max_head: usize,
    /// Set when a head with both framing headers was seen.
    pub ambiguous: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug)]
enum FrameState {
    Head,
    Body(u64),
    ChunkSize(Vec<u8>),
    ChunkData(u64),
    ChunkDataEnd(u8),
    Trailers(Vec<u8>),
    /// CONNECT, upgrades, or anything unparsable: stop watching.
    Off,
}

impl FrameWatch {
    /// A watcher that gives up on heads larger than `max_head`.
    pub fn new(max_head: usize) -> FrameWatch {
        FrameWatch {
            state: FrameState::Head,
            head: Vec::new(),
            max_head,
            ambiguous: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// Feeds bytes read from the client.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                FrameState::Off => return,
                FrameState::Head => {
                    // Every way a head can end (`\r\n\r\n`, the bare-LF
                    // forms httparse and hyper also accept, or a lone
                    // leading blank line) ends on a `\n`, so the bytes are
                    // taken a line at a time instead of one by one.
                    let line_end = memchr::memchr(b'\n', data).map_or(data.len(), |i| i + 1);
                    let (line, rest) = data.split_at(line_end);
                    data = rest;
                    if self.head.len() + line.len() > self.max_head {
                        self.state = FrameState::Off;
                        return;
                    }
                    self.head.extend_from_slice(line);
                    if self.head == b"\r\n" || self.head == b"\n" {
                        // Tolerated leading blank line between messages.
                        self.head.clear();
                    } else if self.head.ends_with(b"\n\n") || self.head.ends_with(b"\n\r\n") {
                        self.end_head();
                    }
                }
                FrameState::Body(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                    if *n == 0 {
                        self.state = FrameState::Head;
                    }
                }
                FrameState::ChunkSize(line) => {
                    let b = data[0];
                    data = &data[1..];
                    line.push(b);
                    if line.len() > 1024 {
                        self.state = FrameState::Off;
                    } else if line.ends_with(b"\n") {
                        let end = line.len() - if line.ends_with(b"\r\n") { 2 } else { 1 };
                        let text = String::from_utf8_lossy(&line[..end]).to_string();
                        let hex = text.split(';').next().unwrap_or("").trim();
                        match u64::from_str_radix(hex, 16) {
                            Ok(0) => self.state = FrameState::Trailers(Vec::new()),
                            Ok(n) => self.state = FrameState::ChunkData(n),
                            Err(_) => self.state = FrameState::Off,
                        }
                    }
                }
                FrameState::ChunkData(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                    if *n == 0 {
                        self.state = FrameState::ChunkDataEnd(2);
                    }
                }
                FrameState::ChunkDataEnd(left) => {
                    // CRLF, or a bare LF, after the chunk's data.
                    let b = data[0];
                    data = &data[1..];
                    *left -= 1;
                    if b == b'\n' || *left == 0 {
                        self.state = FrameState::ChunkSize(Vec::new());
                    }
                }
                FrameState::Trailers(line) => {
                    let b = data[0];
                    data = &data[1..];
                    line.push(b);
                    if line.as_slice() == b"\r\n" || line.as_slice() == b"\n" {
                        self.state = FrameState::Head;
                    } else if line.ends_with(b"\n") {
                        line.clear();
                    } else if line.len() > 8192 {
                        self.state = FrameState::Off;
                    }
                }
            }
        }
    }

    fn end_head(&mut self) {
        let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; 128];
        let mut req = httparse::Request::new(&mut []);
        let parsed = req.parse_with_uninit_headers(&self.head, &mut headers);
        let next = match parsed {
            Ok(httparse::Status::Complete(_)) => {
                let mut cl: Option<u64> = None;
                let mut te = false;
                let mut upgrade = req.method == Some("CONNECT");
                for h in req.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        cl = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .or(Some(0));
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        te = true;
                    } else if h.name.eq_ignore_ascii_case("upgrade") {
                        upgrade = true;
                    }
                }
                if te && cl.is_some() {
                    self.ambiguous.store(true, Ordering::SeqCst);
                }
                if upgrade {
                    FrameState::Off
                } else if te {
                    FrameState::ChunkSize(Vec::new())
                } else {
                    match cl {
                        Some(0) | None => FrameState::Head,
                        Some(n) => FrameState::Body(n),
                    }
                }
            }
            _ => FrameState::Off,
        };
        self.head.clear();
        self.state = next;
    }
}

/// A stream whose reads are fed to a [`FrameWatch`].
pub struct Watched<T> {
    inner: T,
    watch: FrameWatch,
}

impl<T> Watched<T> {
    /// Wraps a stream.
    pub fn new(inner: T, watch: FrameWatch) -> Watched<T> {
        Watched { inner, watch }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.watch.feed(&buf.filled()[before..]);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_cl_and_te_across_pipelined_requests() {
        let mut w = FrameWatch::new(65536);
        w.feed(b"POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
        w.feed(b"POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        assert!(!w.ambiguous.load(Ordering::SeqCst));
        w.feed(
            b"GET http://a/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert!(w.ambiguous.load(Ordering::SeqCst));
    }

    #[test]
    fn bare_lf_heads_are_watched_too() {
        // Found by the framewatch fuzz target's httparse differential:
        // httparse (and so hyper) accepts bare-LF line endings.
        for head in [
            &b"POST http://a/ HTTP/1.1\nHost: a\nContent-Length: 5\nTransfer-Encoding: chunked\n\n"
                [..],
            &b"\nPOST http://a/ HTTP/1.1\r\nContent-Length: 5\nTransfer-Encoding: chunked\r\n\n"[..],
        ] {
            let mut w = FrameWatch::new(65536);
            w.feed(head);
            assert!(w.ambiguous.load(Ordering::SeqCst));
        }
        let mut w = FrameWatch::new(65536);
        w.feed(b"POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n");
        w.feed(b"GET / HTTP/1.1\nContent-Length: 1\nTransfer-Encoding: chunked\n\n");
        assert!(
            w.ambiguous.load(Ordering::SeqCst),
            "the pipelined request was watched"
        );
    }

    #[test]
    fn leading_crlf_and_split_heads() {
        let head =
            b"\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        for split in 0..head.len() {
            let mut w = FrameWatch::new(65536);
            w.feed(&head[..split]);
            w.feed(&head[split..]);
            assert!(w.ambiguous.load(Ordering::SeqCst), "split at {split}");
        }
    }

    #[test]
    fn gives_up_on_oversized_heads() {
        let mut w = FrameWatch::new(40);
        w.feed(b"GET / HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        w.feed(b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(w.state, FrameState::Off));
    }
}
