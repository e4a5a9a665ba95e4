//! `bot-bottle plugin install | list | inspect | remove`.
//!
//! An installed plugin lives in its own directory of the user plugin
//! directory, named after the plugin:
//!
//! ```text
//! ~/.local/share/bot-bottle/plugins/
//!   dry-run/
//!     libdry_run_backend.so   the library, copied
//!     plugin.json             name, versions, capabilities, sha256, file, source
//! ```
//!
//! `install` copies the library into a hidden staging directory first and
//! inspects *that copy* in a child process (`bot-bottle plugin __probe`), so
//! what was inspected is exactly what gets installed, and a library that
//! crashes while loading takes down only the child. `list` and `inspect`
//! describe installed plugins from their `plugin.json` without loading them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bot_bottle_sdk::host::LoadError;
use bot_bottle_sdk::plugin::is_valid_name;
use bot_bottle_sdk::PluginManifest;
use serde::{Deserialize, Serialize};

use crate::plugins::{
    user_plugin_dir, Candidate, FileStamp, InstalledManifest, Origin, Registry, SearchPath,
    BUILTIN_BACKENDS, MANIFEST_FILE,
};
use crate::provider::BUILTIN_PROVIDERS;

/// The hidden subcommand of `bot-bottle plugin` that inspects a library in a
/// child process.
pub const PROBE_SUBCOMMAND: &str = "__probe";

/// Prefix of the probe's report line; a library's constructor may print too.
const PROBE_MARKER: &str = "bot-bottle-probe: ";

/// How long a library may take to load before the probe is killed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Printed by `install`: the user should know what they are trusting.
pub const TRUST_NOTE: &str = "note: a plugin is native code: it runs inside bot-bottle with your \
user's rights and can read, change or send anything you can. Install plugins only from authors you trust.";

/// Why a plugin command failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The file to install could not be read.
    #[error("cannot read {}: {error}", .path.display())]
    Source {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// The library killed the probe process.
    #[error(
        "{} cannot be installed: the library crashed while loading (signal {signal}{}){}",
        .path.display(),
        signal_name(*.signal).map(|n| format!(", {n}")).unwrap_or_default(),
        fmt_output(.output)
    )]
    Crashed {
        /// The library.
        path: PathBuf,
        /// The signal number.
        signal: i32,
        /// The last lines the probe printed on stderr.
        output: String,
    },
    /// The library did not finish loading.
    #[error("{} cannot be installed: loading it did not finish within {} s", .path.display(), .timeout.as_secs())]
    Hung {
        /// The library.
        path: PathBuf,
        /// The limit.
        timeout: Duration,
    },
    /// Not a plugin, or its initialisation failed.
    #[error("{} cannot be installed: {reason}", .path.display())]
    NotAPlugin {
        /// The library.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Built against an SDK this bot-bottle cannot load.
    #[error(
        "plugin {} is incompatible: it was built with bot-bottle-sdk {plugin_sdk}, this bot-bottle uses bot-bottle-sdk {host_sdk}\n  fix: {fix}",
        .path.display()
    )]
    Incompatible {
        /// The library.
        path: PathBuf,
        /// The plugin's SDK version.
        plugin_sdk: String,
        /// This host's SDK version.
        host_sdk: String,
        /// What to do.
        fix: String,
    },
    /// A plugin, backend or provider name breaks the naming rule.
    #[error(
        "{} cannot be installed: invalid {what} name `{name}` (allowed: ^[a-z][a-z0-9-]{{0,31}}$: a lower-case letter, then lower-case letters, digits and '-', at most 32 in all)",
        .path.display()
    )]
    InvalidName {
        /// `plugin`, `backend` or `agent provider`.
        what: &'static str,
        /// The name.
        name: String,
        /// The library.
        path: PathBuf,
    },
    /// A name of a built-in backend or provider.
    #[error(
        "{} cannot be installed: {what} `{name}` is built into bot-bottle and a plugin cannot take its name; rename it in the plugin's manifest",
        .path.display()
    )]
    Reserved {
        /// What the name is for.
        what: &'static str,
        /// The name.
        name: String,
        /// The library.
        path: PathBuf,
    },
    /// The plugin name is installed already.
    #[error(
        "plugin `{name}` is already installed ({}); to replace it, run `bot-bottle plugin install --force {}`",
        .existing.display(),
        .path.display()
    )]
    AlreadyInstalled {
        /// The name.
        name: String,
        /// The installed library.
        existing: PathBuf,
        /// The library being installed.
        path: PathBuf,
    },
    /// Another plugin already has the name, backend or provider.
    #[error("{} cannot be installed: {what} is already provided by {} {fix}", .path.display(), .other.display())]
    Taken {
        /// What is taken, e.g. ``backend `x` ``.
        what: String,
        /// The library that has it.
        other: PathBuf,
        /// `(where that one was found); what to do`.
        fix: String,
        /// The library being installed.
        path: PathBuf,
    },
    /// `inspect`/`remove` of a name nothing has.
    #[error("{0}")]
    NotFound(String),
    /// A file operation failed.
    #[error("{action}: {error}")]
    Io {
        /// What was being done, naming the file.
        action: String,
        /// The error.
        error: std::io::Error,
    },
    /// The probe process could not run or answered nonsense.
    #[error("inspecting {} failed: {reason}", .path.display())]
    Probe {
        /// The library.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn io_err(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> InstallError {
    let action = action.into();
    move |error| InstallError::Io { action, error }
}

fn fmt_output(output: &str) -> String {
    if output.trim().is_empty() {
        "; it was not installed".into()
    } else {
        format!("; it was not installed. It printed:\n{}", output.trim_end())
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        _ => return None,
    })
}

/// What the probe child reports.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
enum ProbeReport {
    Ok {
        manifest: PluginManifest,
    },
    NotAPlugin {
        reason: String,
    },
    Incompatible {
        plugin_sdk: String,
        host_sdk: String,
        fix: String,
    },
}

/// The child side of the probe: loads `path` with the SDK loader and prints
/// one report line. Returns the exit code.
pub fn probe_child(path: &Path) -> i32 {
    let report = match bot_bottle_sdk::host::load(path) {
        Ok(plugin) => ProbeReport::Ok {
            manifest: plugin.manifest().clone(),
        },
        Err(LoadError::Incompatible {
            plugin_sdk,
            host_sdk,
            fix,
            ..
        }) => ProbeReport::Incompatible {
            plugin_sdk,
            host_sdk,
            fix,
        },
        Err(e) => ProbeReport::NotAPlugin { reason: e.reason() },
    };
    match serde_json::to_string(&report) {
        Ok(line) => {
            println!("{PROBE_MARKER}{line}");
            0
        }
        Err(e) => {
            eprintln!("encoding the probe report: {e}");
            2
        }
    }
}

fn read_capped(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = from.by_ref().take(1 << 20).read_to_end(&mut buf);
        // Keep draining so a chatty library cannot block on a full pipe.
        let _ = std::io::copy(&mut from, &mut std::io::sink());
        buf
    })
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads `path` in a child process (this executable, `plugin __probe`) and
/// returns its manifest; a crash or hang of the library is an error here,
/// not the end of this process.
pub fn probe(path: &Path) -> Result<PluginManifest, InstallError> {
    let probe_err = |reason: String| InstallError::Probe {
        path: path.to_path_buf(),
        reason,
    };
    let exe = std::env::current_exe().map_err(|e| probe_err(format!("finding bot-bottle: {e}")))?;
    let mut child = Command::new(exe)
        .args(["plugin", PROBE_SUBCOMMAND])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| probe_err(format!("starting the probe process: {e}")))?;
    let stdout = read_capped(child.stdout.take().expect("piped"));
    let stderr = read_capped(child.stderr.take().expect("piped"));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > PROBE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(InstallError::Hung {
                    path: path.to_path_buf(),
                    timeout: PROBE_TIMEOUT,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(probe_err(format!("waiting for the probe process: {e}"))),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return Err(InstallError::Crashed {
                path: path.to_path_buf(),
                signal,
                output: tail(&stderr, 5),
            });
        }
    }
    let text = String::from_utf8_lossy(&stdout);
    let Some(line) = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(PROBE_MARKER))
    else {
        return Err(probe_err(format!(
            "the probe process exited with {status} without a report{}",
            fmt_output(&tail(&stderr, 5))
                .strip_prefix("; it was not installed")
                .unwrap_or_default()
        )));
    };
    match serde_json::from_str::<ProbeReport>(line) {
        Ok(ProbeReport::Ok { manifest }) => Ok(manifest),
        Ok(ProbeReport::NotAPlugin { reason }) => Err(InstallError::NotAPlugin {
            path: path.to_path_buf(),
            reason,
        }),
        Ok(ProbeReport::Incompatible {
            plugin_sdk,
            host_sdk,
            fix,
        }) => Err(InstallError::Incompatible {
            path: path.to_path_buf(),
            plugin_sdk,
            host_sdk,
            fix,
        }),
        Err(e) => Err(probe_err(format!("unreadable probe report: {e}"))),
    }
}

/// Checks the names a plugin declares against the naming rules.
pub fn check_names(m: &PluginManifest, path: &Path) -> Result<(), InstallError> {
    let invalid = |what, name: &str| InstallError::InvalidName {
        what,
        name: name.to_string(),
        path: path.to_path_buf(),
    };
    let reserved = |what, name: &str| InstallError::Reserved {
        what,
        name: name.to_string(),
        path: path.to_path_buf(),
    };
    if !is_valid_name(&m.name) {
        return Err(invalid("plugin", &m.name));
    }
    if BUILTIN_BACKENDS.contains(&m.name.as_str()) {
        return Err(reserved("backend", &m.name));
    }
    if BUILTIN_PROVIDERS.contains(&m.name.as_str()) {
        return Err(reserved("agent provider", &m.name));
    }
    for b in &m.backends {
        if !is_valid_name(b) {
            return Err(invalid("backend", b));
        }
        if BUILTIN_BACKENDS.contains(&b.as_str()) {
            return Err(reserved("backend", b));
        }
    }
    for p in &m.providers {
        if !is_valid_name(p) {
            return Err(invalid("agent provider", p));
        }
        if BUILTIN_PROVIDERS.contains(&p.as_str()) {
            return Err(reserved("agent provider", p));
        }
    }
    Ok(())
}

fn origin_text(origin: Origin) -> &'static str {
    match origin {
        Origin::Bundled => "built into bot-bottle",
        Origin::User => "installed",
        Origin::Path => "on BOT_BOTTLE_PLUGIN_PATH",
    }
}

/// Refuses a plugin whose name, backends or providers another plugin on the
/// search path already has (the plugin being replaced excepted).
fn check_clashes(
    m: &PluginManifest,
    path: &Path,
    registry: &Registry,
    replacing: Option<&Path>,
) -> Result<(), InstallError> {
    let others = registry.candidates.iter().filter(|c| {
        (c.usable() || c.status == "conflict") && !replacing.is_some_and(|r| c.path.starts_with(r))
    });
    for c in others {
        let fix = match c.origin {
            Origin::Bundled => "rename it in the plugin's manifest".to_string(),
            Origin::User => format!(
                "remove that plugin first with `bot-bottle plugin remove {}`",
                c.name.as_deref().unwrap_or("?")
            ),
            Origin::Path => "remove it from BOT_BOTTLE_PLUGIN_PATH first".to_string(),
        };
        let taken = |what: &str, name: &str| InstallError::Taken {
            what: format!("{what} `{name}`"),
            other: c.path.clone(),
            fix: format!("({}); {fix}", origin_text(c.origin)),
            path: path.to_path_buf(),
        };
        if c.name.as_deref() == Some(m.name.as_str()) {
            if c.origin == Origin::User && c.manifest.is_some() {
                return Err(InstallError::AlreadyInstalled {
                    name: m.name.clone(),
                    existing: c.path.clone(),
                    path: path.to_path_buf(),
                });
            }
            return Err(taken("plugin name", &m.name));
        }
        if let Some(b) = m.backends.iter().find(|b| c.backends.contains(b)) {
            return Err(taken("backend", b));
        }
        if let Some(p) = m.providers.iter().find(|p| c.providers.contains(p)) {
            return Err(taken("agent provider", p));
        }
    }
    Ok(())
}

/// Removes a directory when dropped, unless disarmed.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// Installs the library at `source` into the user plugin directory and
/// returns its manifest. With `force`, an installed plugin of the same name
/// is replaced.
pub fn install(home: &Path, source: &Path, force: bool) -> Result<InstalledManifest, InstallError> {
    let source = std::fs::canonicalize(source).map_err(|error| InstallError::Source {
        path: source.to_path_buf(),
        error,
    })?;
    let file_name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .ok_or_else(|| InstallError::NotAPlugin {
            path: source.clone(),
            reason: "not a library file name".into(),
        })?;
    let search = SearchPath::from_env(home);
    let user_dir = search.user.clone().unwrap_or_else(|| user_plugin_dir(home));
    std::fs::create_dir_all(&user_dir)
        .map_err(io_err(format!("creating {}", user_dir.display())))?;

    // Stage a copy and inspect the copy: that is the file that gets installed.
    let staging = user_dir.join(format!(".staging-{}", unique_suffix()));
    std::fs::create_dir(&staging).map_err(io_err(format!("creating {}", staging.display())))?;
    let mut cleanup = Cleanup(Some(staging.clone()));
    let staged = staging.join(&file_name);
    std::fs::copy(&source, &staged).map_err(|error| InstallError::Source {
        path: source.clone(),
        error,
    })?;
    let manifest = probe(&staged).map_err(|e| relabel(e, &staged, &source))?;
    check_names(&manifest, &source)?;

    let target = user_dir.join(&manifest.name);
    let registry = Registry::survey(&search);
    let replacing = (force && target.exists()).then_some(target.as_path());
    check_clashes(&manifest, &source, &registry, replacing)?;
    if target.exists() && !force {
        // A directory without a readable manifest is not in the registry.
        return Err(InstallError::AlreadyInstalled {
            name: manifest.name.clone(),
            existing: target,
            path: source,
        });
    }

    let sha256 = crate::plugins::sha256_file(&staged)
        .map_err(io_err(format!("reading {}", staged.display())))?;
    let mut installed = InstalledManifest {
        format: 1,
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        sdk_version: manifest.sdk_version.clone(),
        description: manifest.description.clone(),
        backends: manifest.backends.clone(),
        providers: manifest.providers.clone(),
        capabilities: manifest.capabilities.clone(),
        file: file_name.clone(),
        sha256,
        installed_at: crate::state::now(),
        source: Some(source.clone()),
        verified: None,
    };
    installed.write(&staging).map_err(io_err(format!(
        "writing {}",
        staging.join(MANIFEST_FILE).display()
    )))?;

    // Swap directories so a concurrent `start` sees the old plugin or the
    // new one, never half of each.
    let old = user_dir.join(format!(".old-{}", unique_suffix()));
    let had_old = target.exists();
    if had_old {
        std::fs::rename(&target, &old)
            .map_err(io_err(format!("moving {} aside", target.display())))?;
    }
    if let Err(error) = std::fs::rename(&staging, &target) {
        if had_old {
            let _ = std::fs::rename(&old, &target);
        }
        return Err(InstallError::Io {
            action: format!("moving the plugin into {}", target.display()),
            error,
        });
    }
    cleanup.0 = None;
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    // Record the stamp of the file in its final place, so the first load
    // does not hash it again.
    if let Ok(meta) = std::fs::metadata(target.join(&file_name)) {
        installed.verified = FileStamp::of(&meta);
        let _ = installed.write(&target);
    }
    Ok(installed)
}

/// Errors about the staged copy are reported against the file the user named.
fn relabel(e: InstallError, staged: &Path, source: &Path) -> InstallError {
    let fix = |p: PathBuf| if p == staged { source.to_path_buf() } else { p };
    match e {
        InstallError::Crashed {
            path,
            signal,
            output,
        } => InstallError::Crashed {
            path: fix(path),
            signal,
            output,
        },
        InstallError::Hung { path, timeout } => InstallError::Hung {
            path: fix(path),
            timeout,
        },
        InstallError::NotAPlugin { path, reason } => InstallError::NotAPlugin {
            path: fix(path),
            reason,
        },
        InstallError::Incompatible {
            path,
            plugin_sdk,
            host_sdk,
            fix: f,
        } => InstallError::Incompatible {
            path: fix(path),
            plugin_sdk,
            host_sdk,
            fix: f,
        },
        InstallError::Probe { path, reason } => InstallError::Probe {
            path: fix(path),
            reason,
        },
        other => other,
    }
}

/// `bot-bottle plugin install`: installs and reports. Returns the exit code.
pub fn install_command(
    home: &Path,
    source: &Path,
    force: bool,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    eprintln!("{TRUST_NOTE}");
    let m = install(home, source, force)?;
    let dir = user_plugin_dir(home).join(&m.name);
    writeln!(
        out,
        "installed plugin `{}` {} (bot-bottle-sdk {}){}",
        m.name,
        m.version,
        m.sdk_version,
        provides(&m.backends, &m.providers)
            .map(|p| format!(": {p}"))
            .unwrap_or_default()
    )?;
    writeln!(out, "  file:   {}", dir.join(&m.file).display())?;
    writeln!(out, "  sha256: {}", m.sha256)?;
    if let Some(b) = m.backends.first() {
        writeln!(out, "use it with `bot-bottle start <agent> --backend {b}`")?;
    } else if let Some(p) = m.providers.first() {
        writeln!(
            out,
            "use it with `agent_provider: {{template: {p}}}` in a bottle"
        )?;
    }
    Ok(0)
}

fn provides(backends: &[String], providers: &[String]) -> Option<String> {
    let what: Vec<String> = backends
        .iter()
        .map(|b| format!("backend {b}"))
        .chain(providers.iter().map(|p| format!("provider {p}")))
        .collect();
    (!what.is_empty()).then(|| what.join(", "))
}

/// `bot-bottle plugin list`: every candidate, installed ones from their
/// manifests.
pub fn list_command(
    home: &Path,
    json: bool,
    verbose: bool,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let registry = Registry::survey(&SearchPath::from_env(home));
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&registry.candidates)?
        )?;
        return Ok(0);
    }
    for c in &registry.candidates {
        writeln!(
            out,
            "{:<10} {:<14} {:<8} sdk {:<8} {}  {}",
            c.status,
            c.name.as_deref().unwrap_or("-"),
            c.version.as_deref().unwrap_or("-"),
            c.sdk_version.as_deref().unwrap_or("?"),
            provides(&c.backends, &c.providers).unwrap_or_default(),
            c.path.display()
        )?;
        if let Some(r) = &c.reason {
            writeln!(out, "           {r}")?;
        }
        if verbose {
            if let Some(d) = &c.detail {
                writeln!(out, "{d}")?;
            }
        }
    }
    Ok(0)
}

/// `bot-bottle plugin inspect NAME`: everything known about the plugins
/// named `name` (several when they clash), without loading installed ones.
pub fn inspect_command(
    home: &Path,
    name: &str,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let registry = Registry::survey(&SearchPath::from_env(home));
    let mut found: Vec<&Candidate> = registry
        .candidates
        .iter()
        .filter(|c| c.name.as_deref() == Some(name))
        .collect();
    if found.is_empty() {
        // An installed directory whose manifest is unreadable has no name.
        let dir = user_plugin_dir(home).join(name);
        found = registry
            .candidates
            .iter()
            .filter(|c| is_valid_name(name) && c.path == dir)
            .collect();
    }
    if found.is_empty() {
        return Err(InstallError::NotFound(format!(
            "no plugin named `{name}` (see `bot-bottle plugin list`)"
        ))
        .into());
    }
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&found)?)?;
        return Ok(0);
    }
    for (i, c) in found.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(", ")
            }
        };
        writeln!(
            out,
            "plugin:       {} {}",
            name,
            c.version.as_deref().unwrap_or("?")
        )?;
        writeln!(out, "status:       {}", c.status)?;
        writeln!(out, "origin:       {}", origin_text(c.origin))?;
        if let Some(d) = &c.description {
            writeln!(out, "description:  {d}")?;
        }
        writeln!(
            out,
            "sdk:          bot-bottle-sdk {}",
            c.sdk_version.as_deref().unwrap_or("?")
        )?;
        writeln!(out, "backends:     {}", list(&c.backends))?;
        writeln!(out, "providers:    {}", list(&c.providers))?;
        writeln!(out, "capabilities: {}", list(&c.capabilities))?;
        writeln!(out, "file:         {}", c.path.display())?;
        if let Some(m) = &c.manifest {
            writeln!(out, "manifest:     {}", m.display())?;
        }
        if let Some(s) = &c.sha256 {
            writeln!(out, "sha256:       {s}")?;
        }
        if let Some(t) = c.installed_at {
            writeln!(out, "installed:    {}", utc(t))?;
        }
        if let Some(s) = &c.source {
            writeln!(out, "source:       {}", s.display())?;
        }
        if let Some(r) = &c.reason {
            writeln!(out, "reason:       {r}")?;
        }
    }
    Ok(0)
}

/// `bot-bottle plugin remove NAME`. Bundled plugins and
/// `BOT_BOTTLE_PLUGIN_PATH` entries are not ours to delete.
pub fn remove_command(home: &Path, name: &str, out: &mut dyn Write) -> anyhow::Result<i32> {
    if !is_valid_name(name) {
        return Err(InstallError::NotFound(format!(
            "no installed plugin named `{name}`: plugin names match ^[a-z][a-z0-9-]{{0,31}}$"
        ))
        .into());
    }
    let user_dir = user_plugin_dir(home);
    let dir = user_dir.join(name);
    if dir.is_dir() {
        // Move it out of sight first: a concurrent `start` never sees half a plugin.
        let trash = user_dir.join(format!(".removed-{}", unique_suffix()));
        std::fs::rename(&dir, &trash).map_err(io_err(format!("removing {}", dir.display())))?;
        std::fs::remove_dir_all(&trash).map_err(io_err(format!("removing {}", trash.display())))?;
        writeln!(out, "removed plugin `{name}` ({})", dir.display())?;
        return Ok(0);
    }
    let registry = Registry::survey(&SearchPath::from_env(home));
    let Some(c) = registry
        .candidates
        .iter()
        .find(|c| c.name.as_deref() == Some(name))
    else {
        return Err(InstallError::NotFound(format!(
            "no installed plugin named `{name}` (see `bot-bottle plugin list`)"
        ))
        .into());
    };
    match c.origin {
        Origin::Bundled => Err(InstallError::NotFound(format!(
            "plugin `{name}` ({}) is built into bot-bottle and cannot be removed",
            c.path.display()
        ))
        .into()),
        Origin::Path => Err(InstallError::NotFound(format!(
            "plugin `{name}` comes from BOT_BOTTLE_PLUGIN_PATH ({}); remove it from there",
            c.path.display()
        ))
        .into()),
        Origin::User => {
            // A bare library dropped into the plugin directory by hand.
            std::fs::remove_file(&c.path)
                .map_err(io_err(format!("removing {}", c.path.display())))?;
            writeln!(out, "removed plugin `{name}` ({})", c.path.display())?;
            Ok(0)
        }
    }
}

/// `seconds` since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rem = seconds % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bot_bottle_sdk::SDK_VERSION;

    fn manifest(name: &str, backends: &[&str], providers: &[&str]) -> PluginManifest {
        PluginManifest {
            name: name.into(),
            version: "0.1.0".into(),
            sdk_version: SDK_VERSION.into(),
            backends: backends.iter().map(|s| s.to_string()).collect(),
            providers: providers.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn names_follow_the_pattern_and_cannot_take_built_in_names() {
        let p = Path::new("/x/libp.so");
        assert!(check_names(&manifest("ok-1", &["ok-1"], &["agent"]), p).is_ok());
        for bad in ["", "Foo", "1abc", "a_b", "a.b", &"a".repeat(33)] {
            let e = check_names(&manifest(bad, &[], &[]), p)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("invalid plugin name") && e.contains("^[a-z]"),
                "{e}"
            );
        }
        let e = check_names(&manifest("ok", &["Bad"], &[]), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid backend name `Bad`"), "{e}");
        for (m, what) in [
            (manifest("docker", &[], &[]), "backend `docker`"),
            (
                manifest("ok", &["smolmachines"], &[]),
                "backend `smolmachines`",
            ),
            (manifest("codex", &[], &[]), "agent provider `codex`"),
            (manifest("ok", &[], &["claude"]), "agent provider `claude`"),
        ] {
            let e = check_names(&m, p).unwrap_err().to_string();
            assert!(
                e.contains(what) && e.contains("built into bot-bottle"),
                "{e}"
            );
        }
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_767_225_599), "2025-12-31 23:59:59 UTC");
    }

    #[test]
    fn crash_messages_name_the_signal() {
        let e = InstallError::Crashed {
            path: "/x/libc.so".into(),
            signal: 11,
            output: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "/x/libc.so cannot be installed: the library crashed while loading (signal 11, SIGSEGV); it was not installed"
        );
    }
}
