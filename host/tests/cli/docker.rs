//! The CLI with the real Docker plugin and engine: teardown after a normal
//! exit, after Ctrl-C, and after `kill -9` of the CLI followed by `cleanup`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{text, workspace_root, Home};

const IMAGE: &str = "bot-bottle-cli-test-agent:latest";

fn static_build(package: &str) {
    let status = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "x86_64-unknown-linux-gnu",
            "-p",
            package,
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()
        .expect("running cargo");
    assert!(status.success(), "static build of {package} failed");
}

/// The static egress binary and the test agent image, built once.
fn fixtures() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        crate::common::fixture_plugins();
        static_build("bot-bottle-egress");
        static_build("bot-bottle-test-agent");
        let release = crate::common::target_dir().join("x86_64-unknown-linux-gnu/release");
        let ctx = tempfile::tempdir().unwrap();
        std::fs::copy(
            release.join("bot-bottle-test-agent"),
            ctx.path().join("agent"),
        )
        .unwrap();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM scratch\nCOPY agent /agent\nUSER 1000:1000\n",
        )
        .unwrap();
        let out = Command::new("docker")
            .args(["build", "-q", "-t", IMAGE])
            .arg(ctx.path())
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        release.join("bot-bottle-egress")
    })
}

fn home_with_sleeper(seconds: u32) -> Home {
    let home = Home::new();
    home.bottle(
        "sleepy",
        &format!(
            "image: {IMAGE}\nagent_provider:\n  template: command\n  settings: {{command: [/agent, sleep, \"{seconds}\"], user: \"1000:1000\"}}"
        ),
    )
    .agent("sleeper", "bottle: sleepy", "");
    home
}

fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id())
}

/// Docker objects carrying bot-bottle's label for this bottle label.
fn leftovers(label: &str) -> Vec<String> {
    let filter = format!("label=bot-bottle.label={label}");
    let mut found = Vec::new();
    for args in [
        vec!["ps", "-aq", "--filter", &filter],
        vec!["network", "ls", "-q", "--filter", &filter],
        vec!["volume", "ls", "-q", "--filter", &filter],
    ] {
        let out = Command::new("docker").args(&args).output().unwrap();
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(|s| format!("{} {s}", args[0])),
        );
    }
    found
}

/// Returns once the launch of `label` has created its first resource.
fn wait_created(label: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while leftovers(label).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the launch never created anything"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_running(label: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let filter = format!("label=bot-bottle.label={label}");
    while Instant::now() < deadline {
        let out = Command::new("docker")
            .args([
                "ps",
                "-q",
                "--filter",
                &filter,
                "--filter",
                "label=bot-bottle.role=agent",
            ])
            .output()
            .unwrap();
        if !out.stdout.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the agent of {label} never ran");
}

fn start(home: &Home, label: &str, egress: &PathBuf) -> Command {
    let mut cmd = home.cmd();
    cmd.env("BOT_BOTTLE_EGRESS_BIN", egress).args([
        "start",
        "sleeper",
        "--backend",
        "docker",
        "--headless",
        "--prompt",
        "p",
        "--label",
        label,
    ]);
    cmd
}

#[test]
fn a_finished_session_leaves_nothing_behind() {
    let Some(_engine) = crate::common::shared_engine() else {
        return;
    };
    let egress = fixtures();
    let home = home_with_sleeper(1);
    let label = unique("done");
    let out = start(&home, &label, egress).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("\"slept\"") || stdout.contains("sleep"),
        "{stdout}"
    );
    assert_eq!(leftovers(&label), Vec::<String>::new());
}

#[test]
fn ctrl_c_tears_the_bottle_down_during_the_session_and_during_start() {
    let Some(_engine) = crate::common::shared_engine() else {
        return;
    };
    let egress = fixtures();
    let home = home_with_sleeper(120);

    // During the session: the launch has reported the egress log.
    let label = unique("int");
    let mut child = start(&home, &label, egress)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.starts_with("egress log:") {
                    break;
                }
            }
            _ => panic!("the CLI ended before the bottle ran:\n{seen}"),
        }
    }
    // List sees it from another invocation while it runs.
    let out = home
        .cmd()
        .args(["list", "active", "--json"])
        .output()
        .unwrap();
    assert!(text(&out).0.contains(&label), "{}", text(&out).0);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(leftovers(&label), Vec::<String>::new());

    // During the start: as soon as the launch has created something. The CLI
    // lets the launch return, then removes all of it.
    let label = unique("intstart");
    let mut child = start(&home, &label, egress)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_created(&label);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(leftovers(&label), Vec::<String>::new());
}

#[test]
fn kill_9_then_cleanup_leaves_nothing_and_spares_live_bottles() {
    let Some(_engine) = crate::common::shared_engine() else {
        return;
    };
    let egress = fixtures();
    let home = home_with_sleeper(120);
    let killed = unique("k9");
    let live = unique("live");
    let mut victim = start(&home, &killed, egress)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut survivor = start(&home, &live, egress)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_running(&killed);
    wait_running(&live);
    victim.kill().unwrap(); // SIGKILL: no chance to clean up
    victim.wait().unwrap();
    assert!(
        !leftovers(&killed).is_empty(),
        "the bottle should outlive a killed CLI"
    );
    let out = home.cmd().args(["cleanup", "--yes"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(leftovers(&killed), Vec::<String>::new(), "{stdout}");
    assert!(
        !leftovers(&live).is_empty(),
        "cleanup touched a live bottle: {stdout}"
    );
    Command::new("kill")
        .args(["-TERM", &survivor.id().to_string()])
        .status()
        .unwrap();
    survivor.wait().unwrap();
    assert_eq!(leftovers(&live), Vec::<String>::new());
}

#[test]
fn kill_9_during_start_then_cleanup_leaves_nothing() {
    let Some(_engine) = crate::common::shared_engine() else {
        return;
    };
    let egress = fixtures();
    let home = home_with_sleeper(120);
    let label = unique("k9start");
    let mut victim = start(&home, &label, egress)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill the CLI as soon as the launch has created its first resource,
    // before the bottle is complete.
    wait_created(&label);
    victim.kill().unwrap();
    victim.wait().unwrap();
    // Whatever the engine was doing when the CLI died has landed.
    std::thread::sleep(Duration::from_secs(2));
    let out = home.cmd().args(["cleanup", "--yes"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(leftovers(&label), Vec::<String>::new(), "{stdout}");
}

/// The engine restarted under a running bottle: the CLI stops with a clear
/// error that names the engine and says how to clean up, prints no secret,
/// and `cleanup` afterwards leaves nothing. The test stops and restarts
/// dockerd, so it runs only where the suite owns the engine (`CI=true`, or
/// `BOT_BOTTLE_TEST_RESTART_ENGINE=1`) and reports SKIP elsewhere.
#[test]
fn an_engine_restart_under_a_bottle_is_reported_and_cleaned_up() {
    if crate::common::docker_missing().is_some() {
        return;
    }
    let owned = std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("BOT_BOTTLE_TEST_RESTART_ENGINE").as_deref() == Ok("1");
    if !owned {
        bot_bottle_test_support::skip(
            "restarting the Docker engine is only done under CI=true or BOT_BOTTLE_TEST_RESTART_ENGINE=1",
        );
        return;
    }
    let egress = fixtures();
    let _engine = crate::common::engine_lock()
        .write()
        .unwrap_or_else(|e| e.into_inner());
    let home = Home::new();
    home.bottle(
        "sleepy",
        &format!(
            "image: {IMAGE}\nagent_provider:\n  template: command\n  settings: {{command: [/agent, sleep, \"120\"], user: \"1000:1000\"}}\negress:\n  routes:\n    - host: api.example.test\n      auth: {{scheme: Bearer, token_ref: RESTART_TOKEN}}"
        ),
    )
    .agent("sleeper", "bottle: sleepy", "");
    let label = unique("restart");
    let secret = "sk-restart-secret-4f1e2d";
    let mut cli = start(&home, &label, egress)
        .env("RESTART_TOKEN", secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The launch is complete (the CLI names the egress log) before the
    // engine goes: this is a running bottle, not a launch in progress.
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stderr_pipe = cli.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr_pipe).lines() {
            let line = line.unwrap_or_default();
            all.push_str(&line);
            all.push('\n');
            let _ = lines_tx.send(line);
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) if line.starts_with("egress log:") => break,
            Ok(_) => {}
            Err(e) => panic!("the launch of {label} never completed: {e}"),
        }
    }
    wait_running(&label);

    let pid = String::from_utf8(
        Command::new("pgrep")
            .args(["-x", "dockerd"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let pid = pid
        .split_whitespace()
        .next()
        .expect("a dockerd process")
        .to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "dockerd did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    let restarted = Command::new(workspace_root().join("scripts/ensure-docker.sh"))
        .status()
        .unwrap();
    assert!(restarted.success(), "the engine did not come back");

    let deadline = Instant::now() + Duration::from_secs(60);
    while cli.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the CLI hung after the engine went away"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = cli.wait_with_output().unwrap();
    let stderr = reader.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("Docker engine"), "{stderr}");
    assert!(
        stderr.contains("run `bot-bottle cleanup` once the docker engine is back")
            || stderr.contains("the bottle's resources were removed"),
        "{stderr}"
    );
    assert!(!stdout.contains(secret) && !stderr.contains(secret));

    let out = home.cmd().args(["cleanup", "--yes"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(leftovers(&label), Vec::<String>::new(), "{stdout}");
}

/// A pseudo-terminal pair for driving the CLI as a user's terminal would.
struct Pty {
    master: std::fs::File,
    slave: std::fs::File,
}

impl Pty {
    fn open(cols: u16, rows: u16) -> Pty {
        use std::os::fd::FromRawFd;
        let (mut m, mut s) = (0, 0);
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty fills two descriptors we then own.
        let rc =
            unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: fresh descriptors from openpty.
        unsafe {
            Pty {
                master: std::fs::File::from_raw_fd(m),
                slave: std::fs::File::from_raw_fd(s),
            }
        }
    }

    /// Makes the terminal `cmd`'s stdin, stdout, stderr and controlling tty.
    fn give_to(&self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        cmd.stdin(self.slave.try_clone().unwrap())
            .stdout(self.slave.try_clone().unwrap())
            .stderr(self.slave.try_clone().unwrap());
        // SAFETY: setsid and TIOCSCTTY are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    fn resize(&self, cols: u16, rows: u16) {
        use std::os::fd::AsRawFd;
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ on our master; the kernel signals the
        // terminal's foreground process group (the CLI).
        assert_eq!(
            unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
            0
        );
    }

    /// Whether the terminal is back in cooked mode with echo.
    fn cooked(&self) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: tcgetattr into a struct we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            libc::tcgetattr(self.slave.as_raw_fd(), &mut t) == 0
                && t.c_lflag & libc::ICANON != 0
                && t.c_lflag & libc::ECHO != 0
        }
    }
}

/// Everything the terminal shows, collected by a reader thread.
fn screen(master: &std::fs::File) -> std::sync::Arc<std::sync::Mutex<String>> {
    use std::io::Read;
    let shown = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut m = master.try_clone().unwrap();
    let sink = shown.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = m.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    shown
}

fn expect_on(shown: &std::sync::Mutex<String>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if shown.lock().unwrap().contains(what) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "the terminal never showed {what}; it shows:\n{}",
        shown.lock().unwrap()
    );
}

/// `start` on a real terminal: the agent gets a tty of the user's size,
/// keystrokes reach it, a resize reaches it, Ctrl-C is delivered to the
/// agent (not to the CLI) and its exit code comes back; the terminal is
/// restored and nothing is left behind.
#[test]
fn an_interactive_session_on_a_terminal() {
    use std::io::Write;
    let Some(_engine) = crate::common::shared_engine() else {
        return;
    };
    let egress = fixtures();
    let home = Home::new();
    home.bottle(
        "talky",
        &format!(
            "image: {IMAGE}\nagent_provider:\n  template: command\n  settings: {{command: [/agent, tty], user: \"1000:1000\"}}"
        ),
    )
    .agent("talker", "bottle: talky", "");
    let label = unique("tty");
    let pty = Pty::open(100, 30);
    let mut cmd = home.cmd();
    cmd.env("BOT_BOTTLE_EGRESS_BIN", egress).args([
        "start",
        "talker",
        "--backend",
        "docker",
        "--yes",
        "--label",
        &label,
    ]);
    pty.give_to(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let shown = screen(&pty.master);
    let mut keys = pty.master.try_clone().unwrap();

    expect_on(&shown, r#"{"cols":100,"rows":30,"tty":true}"#);
    keys.write_all(b"hello bottle\r").unwrap();
    expect_on(&shown, r#"{"line":"hello bottle"}"#);
    pty.resize(120, 40);
    expect_on(&shown, r#"{"resized":[120,40]}"#);
    keys.write_all(b"\x03").unwrap();
    expect_on(&shown, r#"{"signal":"INT"}"#);
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(42),
        "the agent's exit code did not come back:\n{}",
        shown.lock().unwrap()
    );
    assert!(pty.cooked(), "the terminal was left in raw mode");
    assert_eq!(leftovers(&label), Vec::<String>::new());
}
