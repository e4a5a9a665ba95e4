//! `bot-bottle-egress gate`: the agent container's first process.
//!
//! A backend may start the agent container while the egress sidecar is still
//! coming up (the two container starts are the slowest part of a launch, and
//! they can overlap). The gate keeps the agent's command from running until
//! the bottle is ready: the host has provisioned the agent's files (signalled
//! by a marker file, the last entry of the upload) and the proxy answers from
//! the agent's own network. Then it replaces itself with the command, so the
//! agent keeps the gate's PID, TTY and signals.
//!
//! Blocking std code on purpose: it runs before anything else in the agent
//! container and must not leave threads behind when it `exec`s.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Exit status when the bottle did not become ready (as `docker run` uses 125
/// for its own failures, so it is not mistaken for the agent's status).
pub const NOT_READY: u8 = 125;
/// Exit status when the command cannot be executed (as a shell would).
pub const CANNOT_EXEC: u8 = 127;

/// What the gate waits for, and what it then runs.
#[derive(Debug, Clone)]
pub struct Gate {
    /// The proxy's address as the agent reaches it.
    pub proxy: String,
    /// A file whose presence means the host finished provisioning.
    pub marker: Option<std::path::PathBuf>,
    /// How long to wait before giving up.
    pub within: Duration,
    /// The agent's command (program and arguments).
    pub command: Vec<String>,
}

/// Waits for readiness, then `exec`s the command; returns only on failure,
/// with the exit status and the message to print.
pub fn run(gate: &Gate) -> (u8, String) {
    let Some((program, args)) = gate.command.split_first() else {
        return (CANNOT_EXEC, "no command to run after the gate".into());
    };
    let deadline = Instant::now() + gate.within;
    loop {
        let marked = gate.marker.as_deref().is_none_or(Path::exists);
        if marked && crate::probe(&gate.proxy, Duration::from_millis(500)) {
            break;
        }
        if Instant::now() >= deadline {
            let what = if marked {
                format!("the egress proxy at {} did not answer", gate.proxy)
            } else {
                "the host did not finish provisioning the agent's files".to_string()
            };
            return (
                NOT_READY,
                format!(
                    "{what} within {}s; the agent was not started",
                    gate.within.as_secs()
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = Command::new(program).args(args).exec();
    (CANNOT_EXEC, format!("cannot run `{program}`: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn a_listener_that_is_not_the_proxy_does_not_count() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 256];
            let _ = s.read(&mut b);
            let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n");
        });
        assert!(!crate::probe(&addr, Duration::from_millis(500)));
        t.join().unwrap();
    }

    #[test]
    fn gives_up_with_the_reason_when_the_marker_never_appears() {
        let dir = std::env::temp_dir().join(format!("bb-gate-{}", std::process::id()));
        let gate = Gate {
            proxy: "127.0.0.1:9".into(),
            marker: Some(dir.join("never")),
            within: Duration::from_millis(50),
            command: vec!["true".into()],
        };
        let (code, msg) = run(&gate);
        assert_eq!(code, NOT_READY);
        assert!(msg.contains("provisioning"), "{msg}");
    }

    #[test]
    fn an_empty_command_is_refused() {
        let gate = Gate {
            proxy: "127.0.0.1:9".into(),
            marker: None,
            within: Duration::from_millis(10),
            command: vec![],
        };
        assert_eq!(run(&gate).0, CANNOT_EXEC);
    }
}
