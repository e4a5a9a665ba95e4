//! `bot-bottle-egress`: the one way out of a bottle.
//!
//! A deny-by-default HTTP(S) forward proxy. It reads a policy file of routes
//! (no secret values: routes name `EGRESS_TOKEN_<N>` slots), takes the slot
//! values from its environment, intercepts HTTPS to routed hosts with a
//! per-bottle CA, injects credentials, and logs every decision as one JSON
//! line. Every decision is made on one parsed target (host, port): the
//! policy, the credential, name resolution and the address check, upstream
//! SNI and certificate verification and the forwarded `Host`; a request whose
//! names disagree is refused.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub mod addr;
pub mod dns;
mod error;
pub mod gate;
pub mod h1;
pub mod io;
mod lean;
pub mod log;
mod mem;
pub mod net;
pub mod policy;
pub mod proxy;
pub mod target;
pub mod tls;

pub use error::EgressError;
pub use proxy::Limits;

/// The proxy's own introspection host.
pub const MAGIC_HOST: &str = "_egress.local";

/// Where the CA comes from.
#[derive(Clone, Debug)]
pub enum CaSource {
    /// Generate a fresh one in memory; its key is never written anywhere.
    Generate,
    /// PEM files.
    Files {
        /// Certificate PEM.
        cert: PathBuf,
        /// Private key PEM.
        key: PathBuf,
    },
}

/// Everything `bot-bottle-egress run` takes.
#[derive(Clone, Debug)]
pub struct Config {
    /// The policy file (JSON of `bot_bottle_sdk::EgressPolicy`).
    pub policy: PathBuf,
    /// Proxy listen address.
    pub listen: SocketAddr,
    /// The CA.
    pub ca: CaSource,
    /// Write the CA certificate (public) here once listening.
    pub ca_cert_out: Option<PathBuf>,
    /// Optional NXDOMAIN DNS stub address (UDP and TCP).
    pub dns_listen: Option<SocketAddr>,
    /// JSON-lines log file; stderr when absent.
    pub log_file: Option<PathBuf>,
    /// Written (with the bound address) once the listener is up.
    pub ready_file: Option<PathBuf>,
    /// Resource limits.
    pub limits: Limits,
}

/// A bound, not yet serving proxy.
pub struct Proxy {
    listener: tokio::net::TcpListener,
    shared: Arc<proxy::Shared>,
    ca_pem: String,
}

impl Proxy {
    /// Loads the policy (slots from `env`), prepares the CA and binds.
    pub async fn bind(
        config: &Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Proxy, EgressError> {
        let policy = Arc::new(policy::Policy::load(&config.policy, env)?);
        let out: Box<dyn std::io::Write + Send> = match &config.log_file {
            Some(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| EgressError::File {
                        what: "cannot open log file",
                        path: p.clone(),
                        source,
                    })?,
            ),
            None => Box::new(std::io::stderr()),
        };
        let logger = Arc::new(log::Logger::new(policy.log, out));
        if !policy.resolve_overrides.is_empty() {
            let hosts: Vec<&String> = policy.resolve_overrides.keys().collect();
            let msg = format!(
                "resolve_overrides is set for {hosts:?}: these names bypass DNS. This is for tests only and must never come from a manifest"
            );
            if logger.enabled(log::Kind::Warn) {
                logger.write(log::Kind::Warn, serde_json::json!({ "reason": msg }));
            } else {
                eprintln!("bot-bottle-egress: warning: {msg}");
            }
        }
        let ca = match &config.ca {
            CaSource::Generate => tls::CertAuthority::generate()?,
            CaSource::Files { cert, key } => {
                let read = |p: &PathBuf, what| {
                    std::fs::read_to_string(p).map_err(|source| EgressError::File {
                        what,
                        path: p.clone(),
                        source,
                    })
                };
                let c = read(cert, "cannot read CA certificate")?;
                let k = zeroize::Zeroizing::new(read(key, "cannot read CA key")?);
                tls::CertAuthority::from_pem(&c, &k)?
            }
        };
        let ca_pem = ca.cert_pem().to_owned();
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| EgressError::Listen {
                addr: config.listen.to_string(),
                source,
            })?;
        if let Some(d) = config.dns_listen {
            dns::spawn(d, logger.clone()).await?;
        }
        let shared = Arc::new(proxy::Shared::new(
            policy,
            ca,
            logger,
            config.limits.clone(),
        )?);
        Ok(Proxy {
            listener,
            shared,
            ca_pem,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, EgressError> {
        self.listener
            .local_addr()
            .map_err(|source| EgressError::Listen {
                addr: "bound socket".into(),
                source,
            })
    }

    /// The CA certificate (public) in PEM.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Serves until the task is dropped.
    pub async fn serve(self) {
        let addr = self.listener.local_addr().ok();
        self.shared.log().write(
            log::Kind::Info,
            serde_json::json!({"reason": "listening", "listen": addr.map(|a| a.to_string())}),
        );
        proxy::serve(self.listener, self.shared).await
    }
}

/// `bot-bottle-egress run`: bind, announce, serve until SIGTERM/SIGINT.
pub async fn run(config: Config) -> Result<(), EgressError> {
    let proxy = Proxy::bind(&config, |k| std::env::var(k).ok()).await?;
    let addr = proxy.local_addr()?;
    if let Some(p) = &config.ca_cert_out {
        std::fs::write(p, proxy.ca_cert_pem()).map_err(|source| EgressError::File {
            what: "cannot write CA certificate to",
            path: p.clone(),
            source,
        })?;
    }
    if let Some(p) = &config.ready_file {
        std::fs::write(p, format!("{addr}\n")).map_err(|source| EgressError::File {
            what: "cannot write ready file",
            path: p.clone(),
            source,
        })?;
    }
    let serve = tokio::spawn(proxy.serve());
    shutdown_signal().await;
    serve.abort();
    Ok(())
}

async fn shutdown_signal() {
    // As PID 1 in a container the default SIGTERM action is ignored, so
    // both signals are handled explicitly.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `bot-bottle-egress probe` and the gate's readiness check: does a proxy at
/// `addr` answer `GET http://_egress.local/allowlist` with 200 within
/// `within`? Blocking on purpose: both callers run before (or without) any
/// runtime.
pub fn probe(addr: &str, within: Duration) -> bool {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let deadline = std::time::Instant::now() + within;
    // A zero socket timeout means "none"; never hand one over.
    let left = || {
        deadline
            .saturating_duration_since(std::time::Instant::now())
            .max(Duration::from_millis(1))
    };
    let attempt = || -> std::io::Result<bool> {
        let sa = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut s = std::net::TcpStream::connect_timeout(&sa, left())?;
        s.set_write_timeout(Some(left()))?;
        s.write_all(
            b"GET http://_egress.local/allowlist HTTP/1.1\r\nHost: _egress.local\r\nConnection: close\r\n\r\n",
        )?;
        s.set_read_timeout(Some(left()))?;
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf)?;
        Ok(&buf == b"HTTP/1.1 200")
    };
    attempt().unwrap_or(false)
}
