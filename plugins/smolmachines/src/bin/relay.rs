//! `bot-bottle-smolvm-relay`: the per-bottle egress interceptor for the
//! smolmachines backend (see `relay.rs` in the library).
//!
//! ```text
//! bot-bottle-smolvm-relay --listen 127.0.0.1:P --upstream 127.0.0.1:Q \
//!     --allow ADDR:PORT [--ready-file F] [--log-file F]
//! ```
//! The engine's launch token comes from `SMOLVM_INTERCEPTOR_TOKEN` (64 hex
//! digits), never from the command line.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::Mutex;

use bot_bottle_smolmachines::relay::{parse_token, serve, RelayConfig};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bot-bottle-smolvm-relay: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut listen = None;
    let mut upstream = None;
    let mut allow = None;
    let mut ready = None;
    let mut log_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--listen" => listen = Some(val("--listen")?),
            "--upstream" => upstream = Some(val("--upstream")?),
            "--allow" => allow = Some(val("--allow")?),
            "--ready-file" => ready = Some(val("--ready-file")?),
            "--log-file" => log_file = Some(val("--log-file")?),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let addr = |v: Option<String>, name: &str| -> Result<SocketAddr, String> {
        let v = v.ok_or_else(|| format!("{name} is required"))?;
        v.parse()
            .map_err(|_| format!("{name} `{v}` is not an IP:PORT address"))
    };
    let listen = addr(listen, "--listen")?;
    if !listen.ip().is_loopback() {
        return Err(format!("--listen {listen} must be a loopback address"));
    }
    let cfg = RelayConfig {
        upstream: addr(upstream, "--upstream")?,
        allowed: addr(allow, "--allow")?,
        token: std::env::var("SMOLVM_INTERCEPTOR_TOKEN")
            .ok()
            .as_deref()
            .and_then(parse_token)
            .ok_or("SMOLVM_INTERCEPTOR_TOKEN must hold 64 hex digits, not all zero")?,
    };
    let listener = TcpListener::bind(listen).map_err(|e| format!("binding {listen}: {e}"))?;
    if let Some(path) = ready {
        std::fs::write(&path, listen.to_string()).map_err(|e| format!("writing {path}: {e}"))?;
    }
    let sink: Mutex<Box<dyn Write + Send>> = Mutex::new(match log_file {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map_err(|e| format!("opening {p}: {e}"))?,
        ),
        None => Box::new(std::io::stderr()),
    });
    serve(listener, cfg, move |line| {
        if let Ok(mut w) = sink.lock() {
            let _ = writeln!(w, "{line}");
        }
    });
    Ok(())
}
