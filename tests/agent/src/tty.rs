//! `tty`: an interactive agent for terminal tests. It reports whether its
//! stdin is a terminal and the terminal's size, echoes each line it reads,
//! reports every resize (SIGWINCH), and on Ctrl-C (SIGINT from its
//! terminal) says so and exits 42. A line `quit` exits 7.
//!
//! Each report is one JSON line ending in `\r\n`, as raw terminals expect.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Value};

static WINCH: AtomicBool = AtomicBool::new(false);
static INT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    WINCH.store(true, Ordering::SeqCst);
}

extern "C" fn on_int(_: libc::c_int) {
    INT.store(true, Ordering::SeqCst);
}

fn size() -> (u16, u16) {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            (ws.ws_col, ws.ws_row)
        } else {
            (0, 0)
        }
    }
}

fn say(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{v}\r\n");
    let _ = out.flush();
}

/// Runs until Ctrl-C (42), `quit` (7) or end of input (0).
pub fn run() -> i32 {
    // SAFETY: installs async-signal-safe handlers that only store a flag.
    unsafe {
        libc::signal(libc::SIGWINCH, on_winch as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_int as *const () as libc::sighandler_t);
    }
    // SAFETY: isatty on a descriptor number.
    let tty = unsafe { libc::isatty(0) } == 1;
    let (cols, rows) = size();
    say(json!({ "tty": tty, "cols": cols, "rows": rows }));
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        if INT.swap(false, Ordering::SeqCst) {
            say(json!({ "signal": "INT" }));
            return 42;
        }
        if WINCH.swap(false, Ordering::SeqCst) {
            let (cols, rows) = size();
            say(json!({ "resized": [cols, rows] }));
        }
        let mut pfd = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; EINTR (a signal) just loops.
        if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
            continue;
        }
        // SAFETY: reads into a buffer we own.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return 0;
        }
        for &b in &buf[..n as usize] {
            if b == b'\n' || b == b'\r' {
                let text = String::from_utf8_lossy(&line).into_owned();
                line.clear();
                if text == "quit" {
                    say(json!({ "quit": true }));
                    return 7;
                }
                if !text.is_empty() {
                    say(json!({ "line": text }));
                }
            } else {
                line.push(b);
            }
        }
    }
}
