//! `bot-bottle-egress`: see the library docs and host/egress/README.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bot_bottle_egress::{CaSource, Config, Limits};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bot-bottle-egress",
    version,
    about = "bot-bottle's deny-by-default egress proxy"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the proxy.
    Run(Box<RunArgs>),
    /// Exit 0 if a proxy answers GET http://_egress.local/allowlist at ADDR:PORT.
    Probe {
        /// ADDR:PORT of the proxy.
        addr: String,
    },
    /// Run COMMAND once the bottle is ready (the agent container's entrypoint).
    Gate {
        /// ADDR:PORT of the proxy, as the agent reaches it.
        #[arg(long)]
        proxy: String,
        /// Wait for this file too (the host's last provisioned file).
        #[arg(long)]
        marker: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        within: u64,
        /// The agent's command and arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Policy file (JSON of bot_bottle_sdk::EgressPolicy).
    #[arg(long)]
    policy: PathBuf,
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// CA certificate PEM (with --ca-key); a fresh CA is generated when absent.
    #[arg(long, requires = "ca_key")]
    ca_cert: Option<PathBuf>,
    /// CA private key PEM (with --ca-cert).
    #[arg(long, requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// Write the CA certificate (public) here once listening.
    #[arg(long)]
    ca_cert_out: Option<PathBuf>,
    /// UDP+TCP DNS stub that answers every query NXDOMAIN.
    #[arg(long)]
    dns_listen: Option<SocketAddr>,
    /// JSON-lines log file (default stderr).
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// Written with the bound address once the listener is up.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Maximum concurrent client connections; more are answered 503.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Close a client connection idle this many seconds.
    #[arg(long, default_value_t = Limits::default().idle_timeout.as_secs())]
    idle_timeout_secs: u64,
    /// Close any client connection after this many seconds.
    #[arg(long, default_value_t = Limits::default().total_timeout.as_secs())]
    total_timeout_secs: u64,
    /// Worker threads serving connections (default: the CPUs available).
    #[arg(long, default_value_t = Limits::default().workers)]
    workers: usize,
    /// Largest request head in bytes (at least 8192).
    #[arg(long, default_value_t = Limits::default().max_header_bytes)]
    max_header_bytes: usize,
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        // No runtime for the gate (it execs the agent's command) or the probe.
        Cmd::Gate {
            proxy,
            marker,
            within,
            command,
        } => {
            let gate = bot_bottle_egress::gate::Gate {
                proxy,
                marker,
                within: Duration::from_secs(within),
                command,
            };
            let (code, why) = bot_bottle_egress::gate::run(&gate);
            eprintln!("bot-bottle: {why}");
            ExitCode::from(code)
        }
        Cmd::Probe { addr } => {
            if bot_bottle_egress::probe(&addr, Duration::from_secs(3)) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Cmd::Run(a) => run(*a),
    }
}

fn run(a: RunArgs) -> ExitCode {
    // The proxy's other workers start their own single-threaded runtimes
    // (see `Limits::workers`); this one accepts and is a worker too.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bot-bottle-egress: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let ca = match (a.ca_cert, a.ca_key) {
        (Some(cert), Some(key)) => CaSource::Files { cert, key },
        _ => CaSource::Generate,
    };
    let config = Config {
        policy: a.policy,
        listen: a.listen,
        ca,
        ca_cert_out: a.ca_cert_out,
        dns_listen: a.dns_listen,
        log_file: a.log_file,
        ready_file: a.ready_file,
        limits: Limits {
            max_header_bytes: a.max_header_bytes.max(8192),
            idle_timeout: Duration::from_secs(a.idle_timeout_secs.max(1)),
            total_timeout: Duration::from_secs(a.total_timeout_secs.max(1)),
            max_connections: a.max_connections.max(1),
            workers: a.workers.max(1),
            ..Limits::default()
        },
    };
    match rt.block_on(bot_bottle_egress::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bot-bottle-egress: {e}");
            ExitCode::from(2)
        }
    }
}
