use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace's target directory (where the test binary lives).
pub fn target_dir() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_bot-bottle"));
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the workspace's example and fixture plugins once and returns the
/// directory holding them.
pub fn fixture_plugins() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "bot-bottle-dry-run",
                "-p",
                "bot-bottle-fixture-panicky",
                "-p",
                "bot-bottle-docker",
                "-p",
                "bot-bottle-smolmachines",
            ])
            .current_dir(workspace_root())
            .status()
            .expect("running cargo");
        assert!(status.success(), "building the fixture plugins failed");
        PathBuf::from(env!("CARGO_BIN_EXE_bot-bottle"))
            .parent()
            .unwrap()
            .to_path_buf()
    })
}

pub fn dry_run_lib() -> PathBuf {
    fixture_plugins().join("libdry_run_backend.so")
}

pub fn panicky_lib() -> PathBuf {
    fixture_plugins().join("libfixture_panicky.so")
}

/// A fresh HOME with manifests.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        for d in [".bot-bottle/bottles", ".bot-bottle/agents", "work"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Home { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn bottle(&self, name: &str, frontmatter: &str) -> &Home {
        std::fs::write(
            self.path().join(format!(".bot-bottle/bottles/{name}.md")),
            format!("---\n{frontmatter}\n---\nA bottle.\n"),
        )
        .unwrap();
        self
    }

    pub fn agent(&self, name: &str, frontmatter: &str, prompt: &str) -> &Home {
        std::fs::write(
            self.path().join(format!(".bot-bottle/agents/{name}.md")),
            format!("---\n{frontmatter}\n---\n{prompt}\n"),
        )
        .unwrap();
        self
    }

    /// `bot-bottle` with HOME here, cwd `HOME/work`, and a clean plugin path.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bot-bottle"));
        c.env_clear()
            .env("HOME", self.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("XDG_DATA_HOME", self.path().join(".local/share"))
            .current_dir(self.path().join("work"));
        c
    }

    /// Every file under HOME, as text where it is text.
    pub fn all_file_text(&self) -> String {
        fn walk(dir: &Path, out: &mut String) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if let Ok(bytes) = std::fs::read(&p) {
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        let mut out = String::new();
        walk(self.path(), &mut out);
        out
    }
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Why no Docker engine can be used, after printing `SKIP:`; panics instead
/// under `CI=true`, where the engine must be there.
pub fn docker_missing() -> Option<String> {
    let ok = Command::new("docker")
        .arg("info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return None;
    }
    let why = "no Docker engine answers `docker info` (run scripts/ensure-docker.sh)";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}");
    }
    bot_bottle_test_support::skip(why);
    Some(why.into())
}

/// Tests that use the Docker engine hold this for reading; the test that
/// restarts the engine holds it for writing, so it never pulls the engine
/// from under another test.
pub fn engine_lock() -> &'static std::sync::RwLock<()> {
    static LOCK: std::sync::RwLock<()> = std::sync::RwLock::new(());
    &LOCK
}

/// The engine for a test that uses it without restarting it: `None` (after
/// `SKIP:`, or a panic under `CI=true`) when there is none.
pub fn shared_engine() -> Option<std::sync::RwLockReadGuard<'static, ()>> {
    if docker_missing().is_some() {
        return None;
    }
    Some(engine_lock().read().unwrap_or_else(|e| e.into_inner()))
}
