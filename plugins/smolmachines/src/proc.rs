//! Detached helper processes (egress proxy, relay) and their pid files.

use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Spawns `cmd` in its own session so it outlives the CLI and a Ctrl-C to
/// the CLI's process group; stdout and stderr go to `log`.
pub fn spawn_detached(mut cmd: Command, log: &Path) -> io::Result<u32> {
    let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: setsid is async-signal-safe and touches no Rust state.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let pid = child.id();
    // The child is reaped by init once we drop it; a zombie would make
    // `alive` lie while this process lives, so reap it in the background.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(pid)
}

/// Whether `pid` runs and its command line contains `marker` (guards against
/// a recycled pid).
pub fn alive_with(pid: u32, marker: &str) -> bool {
    if pid == 0 {
        return false;
    }
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // A zombie has exited; field 3 (after the parenthesised name) is the state.
    if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r.trim_start()) {
        if rest.starts_with('Z') {
            return false;
        }
    }
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).contains(marker),
        Err(_) => false,
    }
}

/// Stops `pid` (TERM, then KILL after 3 s) if it is still the process we
/// started.
pub fn kill(pid: u32, marker: &str) {
    if !alive_with(pid, marker) {
        return;
    }
    // SAFETY: plain syscall on a pid we verified.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if !alive_with(pid, marker) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

/// Waits until `path` exists, the process dies, or `timeout` passes.
pub fn wait_for_file(path: &Path, pid: u32, marker: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if path.exists() {
            return Ok(());
        }
        if !alive_with(pid, marker) {
            return Err("exited before it was ready".into());
        }
        if Instant::now() >= deadline {
            return Err(format!("not ready after {} s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback port free at the time of the call.
pub fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// 32 random bytes from the kernel.
pub fn random_token() -> io::Result<[u8; 32]> {
    let mut t = [0u8; 32];
    io::Read::read_exact(&mut fs::File::open("/dev/urandom")?, &mut t)?;
    Ok(t)
}

/// Exclusive, non-blocking lock on `path` held while the file stays open.
pub fn try_lock(path: &Path) -> io::Result<Option<fs::File>> {
    use std::os::unix::io::AsRawFd;
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(Some(f))
    } else {
        Ok(None)
    }
}
