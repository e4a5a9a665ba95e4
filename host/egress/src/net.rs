//! Name resolution, the address check and upstream connections.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hickory_resolver::TokioAsyncResolver;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::addr::is_non_public;
use crate::policy::Policy;
use crate::target::{parse_authority, Scheme, Target};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an upstream connection was not made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The name did not resolve.
    #[error("cannot resolve `{host}`: {reason}")]
    Resolve {
        /// Host.
        host: String,
        /// Resolver message.
        reason: String,
    },
    /// Every address is non-public and the route does not allow that.
    #[error("`{host}` resolves to {addr}, a loopback/private/link-local/CGNAT address; the route does not set allow_private")]
    PrivateAddress {
        /// Host.
        host: String,
        /// The refused address.
        addr: IpAddr,
    },
    /// TCP connect failed.
    #[error("cannot connect to `{host}` ({addr}): {source}")]
    Connect {
        /// Host.
        host: String,
        /// Address tried last.
        addr: SocketAddr,
        /// Error.
        source: io::Error,
    },
    /// TLS to the upstream failed (including certificate verification).
    #[error("TLS to `{host}` failed: {source}")]
    Tls {
        /// Host.
        host: String,
        /// Error.
        source: io::Error,
    },
    /// The URI given to the connector is not one the proxy built.
    #[error("internal: bad upstream uri")]
    BadUri,
}

/// Resolves names: policy overrides (tests only), IP literals, then DNS
/// through a pure-Rust resolver reading /etc/resolv.conf.
pub struct Resolver {
    policy: Arc<Policy>,
    dns: OnceCell<Result<TokioAsyncResolver, String>>,
}

impl Resolver {
    /// A resolver for a policy.
    pub fn new(policy: Arc<Policy>) -> Resolver {
        Resolver {
            policy,
            dns: OnceCell::new(),
        }
    }

    /// Addresses for a host.
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ConnectError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        if let Some(ip) = self.policy.resolve_overrides.get(host) {
            return Ok(vec![*ip]);
        }
        let dns = self
            .dns
            .get_or_init(|| async {
                TokioAsyncResolver::tokio_from_system_conf().map_err(|e| e.to_string())
            })
            .await;
        let dns = dns.as_ref().map_err(|e| ConnectError::Resolve {
            host: host.to_owned(),
            reason: format!("no resolver configuration (/etc/resolv.conf): {e}"),
        })?;
        // A trailing dot stops search-domain expansion: the name is exactly
        // the one the policy judged.
        let lookup =
            dns.lookup_ip(format!("{host}."))
                .await
                .map_err(|e| ConnectError::Resolve {
                    host: host.to_owned(),
                    reason: e.to_string(),
                })?;
        let ips: Vec<IpAddr> = lookup.iter().collect();
        if ips.is_empty() {
            return Err(ConnectError::Resolve {
                host: host.to_owned(),
                reason: "no addresses".into(),
            });
        }
        Ok(ips)
    }

    /// Resolves and applies the address check: the addresses it may dial.
    pub async fn permitted(
        &self,
        host: &str,
        port: u16,
        scheme: Scheme,
    ) -> Result<Vec<IpAddr>, ConnectError> {
        let ips = self.resolve(host).await?;
        if self.policy.allow_private(host, port, scheme) {
            return Ok(ips);
        }
        // All-or-nothing: a name that mixes public and private answers is
        // treated as hostile (rebinding) rather than filtered.
        if let Some(bad) = ips.iter().find(|ip| is_non_public(**ip)) {
            return Err(ConnectError::PrivateAddress {
                host: host.to_owned(),
                addr: *bad,
            });
        }
        Ok(ips)
    }
}

/// A connection to an upstream, plain or TLS.
pub enum Upstream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Upstream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_flush(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Upstream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Upstream::Plain(s) => s.is_write_vectored(),
            Upstream::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The connector the pooled client dials with. The URI it gets is built by
/// the proxy from the request's [`Target`], so the
/// name it resolves, checks, sends as SNI and verifies is that target's host.
#[derive(Clone)]
pub struct Connector {
    resolver: Arc<Resolver>,
    tls: TlsConnector,
}

impl Connector {
    /// A connector over a resolver and an upstream TLS config.
    pub fn new(resolver: Arc<Resolver>, tls: Arc<ClientConfig>) -> Connector {
        Connector {
            resolver,
            tls: TlsConnector::from(tls),
        }
    }

    async fn connect(self, uri: Uri) -> Result<TokioIo<Upstream>, ConnectError> {
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => return Err(ConnectError::BadUri),
        };
        let auth = uri.authority().ok_or(ConnectError::BadUri)?;
        let (host, port) = parse_authority(auth.as_str(), Some(scheme.default_port()))
            .ok_or(ConnectError::BadUri)?;
        let tcp = self.tcp(&host, port, scheme).await?;
        match scheme {
            Scheme::Http => Ok(TokioIo::new(Upstream::Plain(tcp))),
            Scheme::Https => {
                let name = ServerName::try_from(host.clone()).map_err(|_| ConnectError::BadUri)?;
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, self.tls.connect(name, tcp))
                    .await
                    .map_err(|_| ConnectError::Tls {
                        host: host.clone(),
                        source: io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"),
                    })?
                    .map_err(|source| ConnectError::Tls { host, source })?;
                Ok(TokioIo::new(Upstream::Tls(Box::new(tls))))
            }
        }
    }

    /// A plain TCP connection to a target (the lean plain-HTTP path): the
    /// same resolution, address check and `TCP_NODELAY` as every upstream.
    pub async fn connect_plain(&self, target: &Target) -> Result<TcpStream, ConnectError> {
        self.tcp(&target.host, target.port, target.scheme).await
    }

    async fn tcp(&self, host: &str, port: u16, scheme: Scheme) -> Result<TcpStream, ConnectError> {
        let ips = self.resolver.permitted(host, port, scheme).await?;
        let mut last_err = None;
        let mut stream = None;
        for ip in ips {
            let addr = SocketAddr::new(ip, port);
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    stream = Some(s);
                    break;
                }
                Ok(Err(e)) => last_err = Some((addr, e)),
                Err(_) => {
                    last_err = Some((
                        addr,
                        io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
                    ))
                }
            }
        }
        let tcp = match stream {
            Some(s) => s,
            None => {
                let (addr, source) = last_err.ok_or(ConnectError::BadUri)?;
                return Err(ConnectError::Connect {
                    host: host.to_owned(),
                    addr,
                    source,
                });
            }
        };
        // Small request/response exchanges must not wait on Nagle.
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Upstream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}
