//! Driving the `smolvm` engine CLI.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bot_bottle_sdk::{ErrorKind, PluginError};
use serde::Deserialize;

/// Version of the `smolmachines` wheel `scripts/install-smolvm.sh` installs.
pub const PINNED_VERSION: &str = "1.32.2";

/// Where the engine is and how to call it.
#[derive(Clone, Debug)]
pub struct Engine {
    /// The smolvm binary (`smol/smol-vmm` from the wheel).
    pub binary: PathBuf,
    /// Directory with `libkrun.so` and `libkrunfw.so.5` (`SMOLVM_LIB_DIR`).
    pub lib_dir: Option<PathBuf>,
    /// `--state-dir`: keep the engine's machines and database there.
    pub state_dir: Option<PathBuf>,
}

/// A failure the engine reported with `--error-format json`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("smolvm {action} failed ({code}): {message}")]
pub struct EngineError {
    /// What we asked for, e.g. `machine create`.
    pub action: String,
    /// smolvm's stable code (`NOT_FOUND`, `CONFLICT`, `KVM_UNAVAILABLE`, ...),
    /// or `SPAWN` when the binary could not be run.
    pub code: String,
    /// smolvm's message.
    pub message: String,
}

impl EngineError {
    /// Whether the engine said the machine does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code == "NOT_FOUND"
    }
}

impl From<EngineError> for PluginError {
    fn from(e: EngineError) -> Self {
        let kind = if e.code == "SPAWN" {
            ErrorKind::EngineUnavailable
        } else if e.is_not_found() {
            ErrorKind::NotFound
        } else {
            ErrorKind::Engine
        };
        let hint = if e.code == "SPAWN" {
            Some(
                "run scripts/install-smolvm.sh and set SMOLVM and SMOLVM_LIB_DIR to the paths it prints"
                    .to_string(),
            )
        } else if e.message.contains("KvmOpen") || e.code == "KVM_UNAVAILABLE" {
            Some(kvm_hint().to_string())
        } else {
            None
        };
        PluginError {
            kind,
            message: e.to_string(),
            hint,
        }
    }
}

/// How to make `/dev/kvm` usable by smolvm's unprivileged VM process.
pub fn kvm_hint() -> &'static str {
    "smolvm drops root for the VM process (a per-VM uid), so a root-only /dev/kvm fails with \
     KvmOpen(Error(13)); make it usable: `chmod 666 /dev/kvm` (lasts until reboot), or a udev \
     rule `KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0666\"` in /etc/udev/rules.d/65-kvm.rules"
}

#[derive(Deserialize)]
struct JsonError {
    error: JsonErrorBody,
}

#[derive(Deserialize)]
struct JsonErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl Engine {
    /// A command for `args`, with the engine's global options and library
    /// path set, and none of the variables that would change its meaning.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--error-format").arg("json");
        if let Some(dir) = &self.state_dir {
            cmd.arg("--state-dir").arg(dir);
        }
        cmd.args(args);
        if let Some(lib) = &self.lib_dir {
            cmd.env("SMOLVM_LIB_DIR", lib);
        }
        // The interceptor token is passed to `machine start` only; a stray
        // SMOLVM_MACHINE_NAME would redirect commands to another machine.
        cmd.env_remove("SMOLVM_INTERCEPTOR_TOKEN")
            .env_remove("SMOLVM_MACHINE_NAME")
            .env("SMOLMACHINES_NO_DOWNLOAD", "1");
        cmd
    }

    /// Runs `cmd` to completion and maps a failure to an [`EngineError`].
    pub fn output(&self, action: &str, mut cmd: Command) -> Result<Output, EngineError> {
        cmd.stdin(Stdio::null());
        let out = cmd.output().map_err(|e| EngineError {
            action: action.into(),
            code: "SPAWN".into(),
            message: format!("cannot run {}: {e}", self.binary.display()),
        })?;
        if out.status.success() {
            return Ok(out);
        }
        Err(parse_failure(action, &out))
    }

    /// Runs `args` and returns stdout.
    pub fn run<I, S>(&self, action: &str, args: I) -> Result<String, EngineError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.output(action, self.command(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `machine ls --json`.
    pub fn list(&self) -> Result<Vec<MachineInfo>, EngineError> {
        let text = self.run("machine ls", ["machine", "ls", "--json"])?;
        serde_json::from_str(text.trim()).map_err(|e| EngineError {
            action: "machine ls".into(),
            code: "PARSE".into(),
            message: format!("unexpected output: {e}"),
        })
    }

    /// The machine called `name`, if it exists.
    pub fn find(&self, name: &str) -> Result<Option<MachineInfo>, EngineError> {
        Ok(self.list()?.into_iter().find(|m| m.name == name))
    }

    /// `machine delete --force`; a machine that is already gone is success.
    pub fn delete(&self, name: &str) -> Result<(), EngineError> {
        match self.run(
            "machine delete",
            ["machine", "delete", "--name", name, "--force"],
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `machine stop`; a machine that is gone or not running is success.
    pub fn stop(&self, name: &str) -> Result<(), EngineError> {
        match self.find(name)? {
            Some(m) if m.state == "running" => self
                .run(
                    "machine stop",
                    ["machine", "stop", "--name", name, "--timeout", "10"],
                )
                .map(|_| ()),
            _ => Ok(()),
        }
    }

    /// `--version`, to prove the binary runs.
    pub fn version(&self) -> Result<String, EngineError> {
        let text = self.run("--version", ["--version"])?;
        Ok(text.trim().to_string())
    }
}

fn parse_failure(action: &str, out: &Output) -> EngineError {
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines().rev() {
        if let Ok(j) = serde_json::from_str::<JsonError>(line.trim()) {
            return EngineError {
                action: action.into(),
                code: j.error.code,
                message: j.error.message,
            };
        }
    }
    let tail: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("note: no packed assets"))
        .collect();
    EngineError {
        action: action.into(),
        code: format!("EXIT_{}", out.status.code().unwrap_or(-1)),
        message: tail.join(" ").chars().take(2000).collect(),
    }
}

/// One machine from `machine ls --json` (the fields this backend reads).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MachineInfo {
    /// Machine name.
    pub name: String,
    /// `created`, `running`, `stopped`, `failed`, ...
    #[serde(default)]
    pub state: String,
    /// Labels given at create.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The allow list, as stored.
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
    /// Whether the machine has a network.
    #[serde(default)]
    pub network: bool,
    /// Creation time (seconds since the epoch).
    #[serde(default)]
    pub created_at: u64,
}

/// Finds the engine: `SMOLVM`, else `smolvm` on `PATH`, else the install
/// script's cache. Returns the path even when nothing is there, so errors
/// can name where it looked.
pub fn locate_engine() -> PathBuf {
    if let Some(p) = std::env::var_os("SMOLVM").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let cand = dir.join("smolvm");
            if cand.is_file() {
                return cand;
            }
        }
    }
    install_cache_dir().join("smol").join("smol-vmm")
}

/// The directory `scripts/install-smolvm.sh` installs the pinned engine into.
pub fn install_cache_dir() -> PathBuf {
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    let base = std::env::var_os("BOT_BOTTLE_SMOLVM_HOME")
        .map(PathBuf::from)
        .or_else(|| root.then(|| PathBuf::from("/var/cache/bot-bottle/smolvm")))
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(|c| PathBuf::from(c).join("bot-bottle/smolvm"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bot-bottle/smolvm"))
        })
        .unwrap_or_else(|| PathBuf::from("/nonexistent"));
    base.join(PINNED_VERSION)
}

/// `SMOLVM_LIB_DIR`, else the engine's own directory when the libraries are
/// beside it (the wheel's layout).
pub fn locate_lib_dir(engine: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SMOLVM_LIB_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let dir = engine.parent()?;
    dir.join("libkrun.so").is_file().then(|| dir.to_path_buf())
}
