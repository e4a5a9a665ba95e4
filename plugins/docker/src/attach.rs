//! Connecting the caller's terminal (raw mode, resize, Ctrl-C delivered as a
//! byte to the agent's tty) or its stdout/stderr (headless) to the agent.

use std::io::Write;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bollard::container::LogOutput;
use bollard::query_parameters::{AttachContainerOptions, ResizeContainerTTYOptions};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::error::{is_not_found, DockerError, Result};
use crate::lifecycle;
use crate::naming::Names;

/// Restores the terminal when dropped, on every path out of `attach`.
struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: plain termios calls on a descriptor we checked is a tty.
        unsafe {
            if libc::isatty(fd) != 1 {
                return None;
            }
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(fd, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `enter`.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
        }
    }
}

pub(crate) fn terminal_size(fd: RawFd) -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ fills a winsize struct.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
            Some((ws.ws_col, ws.ws_row))
        } else {
            None
        }
    }
}

/// Gives the container's tty the size of the terminal on `fd`, if it is one.
pub(crate) async fn resize(docker: &Docker, container: &str, fd: RawFd) {
    if let Some((w, h)) = terminal_size(fd) {
        let _ = docker
            .resize_container_tty(
                container,
                ResizeContainerTTYOptions {
                    w: w as i32,
                    h: h as i32,
                },
            )
            .await;
    }
}

/// Attaches and returns the agent's exit code once it exits.
pub async fn attach(docker: &Docker, id: &str, tty: bool) -> Result<i32> {
    let name = Names::new(id).agent;
    let info = docker.inspect_container(&name, None).await.map_err(|e| {
        if is_not_found(&e) {
            DockerError::NotFound(format!("no docker bottle `{id}`"))
        } else {
            DockerError::engine(format!("inspecting {name}"), e)
        }
    })?;
    let container_tty = info.config.as_ref().and_then(|c| c.tty).unwrap_or(false);
    let running = info.state.as_ref().and_then(|s| s.running).unwrap_or(false);
    if !running {
        // Attaching to a stopped container would wait for it to start again;
        // replay its output instead.
        let mut out = StdWriter;
        lifecycle::logs(
            docker,
            id,
            &bot_bottle_sdk::LogsRequest::default(),
            &mut out,
        )
        .await?;
        return lifecycle::exit_code(docker, id).await;
    }
    let interactive = tty && container_tty;
    let results = docker
        .attach_container(
            &name,
            Some(AttachContainerOptions {
                stdin: interactive,
                stdout: true,
                stderr: true,
                stream: true,
                // Replays what the agent printed before we attached, so a
                // headless run loses no output.
                logs: true,
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| DockerError::engine(format!("attaching to {name}"), e))?;
    let mut output = results.output;
    let mut input = results.input;

    let stop = Arc::new(AtomicBool::new(false));
    let _raw = if interactive { RawMode::enter(0) } else { None };
    let mut tasks = Vec::new();
    if interactive {
        resize(docker, &name, 1).await;
        // Resize on SIGWINCH.
        if let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        {
            let docker = docker.clone();
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                while winch.recv().await.is_some() {
                    resize(&docker, &name, 1).await;
                }
            }));
        }
        // Stdin is read on a plain thread that polls, so it stops reading
        // (and swallows no keystroke) once the agent has exited.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        let stop_reader = stop.clone();
        std::thread::spawn(move || stdin_pump(tx, stop_reader));
        tasks.push(tokio::spawn(async move {
            while let Some(buf) = rx.recv().await {
                if input.write_all(&buf).await.is_err() || input.flush().await.is_err() {
                    break;
                }
            }
        }));
    }

    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    // The engine ends the stream when the agent exits; waiting alongside
    // covers an agent that exited just before the attach took hold.
    let exited = lifecycle::wait(docker, id);
    tokio::pin!(exited);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, output.next())
                    .await
                    .ok()
                    .flatten(),
                None => output.next().await,
            }
        };
        let item = tokio::select! {
            item = next => item,
            _ = &mut exited, if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + std::time::Duration::from_millis(500));
                continue;
            }
        };
        let Some(Ok(item)) = item else { break };
        let res = match item {
            LogOutput::StdErr { message } => {
                stderr.write_all(&message).and_then(|_| stderr.flush())
            }
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                stdout.write_all(&message).and_then(|_| stdout.flush())
            }
            LogOutput::StdIn { .. } => Ok(()),
        };
        if res.is_err() {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.abort();
    }
    lifecycle::wait(docker, id).await.map_err(|e| match e {
        DockerError::NotFound(_) => {
            DockerError::Cancelled(format!("bottle `{id}` was removed while attached"))
        }
        other => other,
    })
}

/// The process's stdout as a `Write` for [`lifecycle::logs`].
struct StdWriter;

impl Write for StdWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

fn stdin_pump(tx: tokio::sync::mpsc::Sender<Vec<u8>>, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 100) };
        if ready <= 0 {
            continue;
        }
        // SAFETY: reads into a buffer we own.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return;
        }
        if tx.blocking_send(buf[..n as usize].to_vec()).is_err() {
            return;
        }
    }
}
