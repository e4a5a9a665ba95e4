//! Finding and loading backend and provider plugins.
//!
//! Search order (first wins for a name):
//! 1. the directory of the `bot-bottle` executable (`libbot_bottle_*` only):
//!    the plugins shipped with bot-bottle, so a fresh `cargo build` works;
//! 2. `$XDG_DATA_HOME/bot-bottle/plugins` (default
//!    `~/.local/share/bot-bottle/plugins`): plugins the user installed with
//!    `bot-bottle plugin install`, one directory per plugin holding the
//!    library and its [`InstalledManifest`] (`plugin.json`); a bare library
//!    dropped straight into the directory is loaded too, unchecked;
//! 3. each entry of `BOT_BOTTLE_PLUGIN_PATH` (`:`-separated files or dirs).
//!
//! A library that fails to load is recorded with its reason and never stops
//! the others from loading. An installed library is checked against the
//! sha256 in its manifest before it is loaded.
//!
//! Names: a plugin cannot take the name, a backend or a provider of a plugin
//! built into bot-bottle; two other plugins with one name are both refused
//! (neither is trusted to be the one the user meant); a backend or provider
//! name already taken by a plugin found earlier shadows the later one.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bot_bottle_sdk::host::{load, LoadError, LoadedPlugin};
use bot_bottle_sdk::{AgentProvider, Backend, PluginError, PluginManifest, SDK_VERSION};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::provider::BUILTIN_PROVIDERS;

/// Backends shipped with bot-bottle; no other plugin may take these names.
pub const BUILTIN_BACKENDS: &[&str] = &["docker", "smolmachines"];

/// The manifest file beside an installed library.
pub const MANIFEST_FILE: &str = "plugin.json";

/// Where a candidate library was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Shipped beside the executable.
    Bundled,
    /// In the user plugin directory.
    User,
    /// From `BOT_BOTTLE_PLUGIN_PATH`.
    Path,
}

/// What happened to one candidate library.
#[derive(Debug, Serialize)]
pub struct Candidate {
    /// The library file.
    pub path: PathBuf,
    /// Where it was found.
    pub origin: Origin,
    /// `loaded`; `installed` (verified from its manifest, not loaded: `plugin
    /// list` and `inspect`); `refused`, `tampered`, `shadowed` or `conflict`.
    pub status: &'static str,
    /// Plugin name, when it could be read.
    pub name: Option<String>,
    /// Plugin version.
    pub version: Option<String>,
    /// SDK version it was built with.
    pub sdk_version: Option<String>,
    /// Backends it provides.
    pub backends: Vec<String>,
    /// Providers it provides.
    pub providers: Vec<String>,
    /// One line describing the plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Capability tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// The `plugin.json` of an installed plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<PathBuf>,
    /// The sha256 recorded at install time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// When it was installed, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installed_at: Option<u64>,
    /// The file it was installed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// Why it is not usable.
    pub reason: Option<String>,
    /// Long diagnostic (layout report), shown with `--verbose`.
    #[serde(skip)]
    pub detail: Option<String>,
    #[serde(skip)]
    plugin: Option<Arc<LoadedPlugin>>,
}

impl Candidate {
    fn new(path: PathBuf, origin: Origin) -> Candidate {
        Candidate {
            path,
            origin,
            status: "refused",
            name: None,
            version: None,
            sdk_version: None,
            backends: Vec::new(),
            providers: Vec::new(),
            description: None,
            capabilities: Vec::new(),
            manifest: None,
            sha256: None,
            installed_at: None,
            source: None,
            reason: None,
            detail: None,
            plugin: None,
        }
    }

    fn describe(&mut self, m: &PluginManifest) {
        self.name = Some(m.name.clone());
        self.version = Some(m.version.clone());
        self.sdk_version = Some(m.sdk_version.clone());
        self.backends = m.backends.clone();
        self.providers = m.providers.clone();
        self.description = Some(m.description.clone()).filter(|d| !d.is_empty());
        self.capabilities = m.capabilities.clone();
    }

    /// Whether it provides its names (loaded, or verified and installed).
    pub fn usable(&self) -> bool {
        matches!(self.status, "loaded" | "installed")
    }
}

/// What `bot-bottle plugin install` writes beside an installed library.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledManifest {
    /// Format of this file; this version writes 1.
    #[serde(default = "format_v1")]
    pub format: u32,
    /// Plugin name (also the directory's name).
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// The SDK version it was built with.
    pub sdk_version: String,
    /// One line describing it.
    #[serde(default)]
    pub description: String,
    /// Backends it provides.
    #[serde(default)]
    pub backends: Vec<String>,
    /// Providers it provides.
    #[serde(default)]
    pub providers: Vec<String>,
    /// Capability tags.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// The library's file name, in the same directory.
    pub file: String,
    /// Hex sha256 of the library.
    pub sha256: String,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub installed_at: u64,
    /// The file it was installed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// The library's metadata when its hash last matched; while it is
    /// unchanged the file is not hashed again (a cache, not a proof).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<FileStamp>,
}

fn format_v1() -> u32 {
    1
}

impl InstalledManifest {
    /// The plugin manifest it records.
    pub fn plugin_manifest(&self) -> PluginManifest {
        PluginManifest {
            name: self.name.clone(),
            version: self.version.clone(),
            sdk_version: self.sdk_version.clone(),
            description: self.description.clone(),
            backends: self.backends.clone(),
            providers: self.providers.clone(),
            capabilities: self.capabilities.clone(),
        }
    }

    /// Reads `dir/plugin.json`.
    pub fn read(dir: &Path) -> Result<InstalledManifest, String> {
        let path = dir.join(MANIFEST_FILE);
        let text =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let m: InstalledManifest = serde_json::from_slice(&text)
            .map_err(|e| format!("{} is not a valid plugin manifest: {e}", path.display()))?;
        if m.file.is_empty() || m.file.contains(['/', '\\']) || m.file.starts_with('.') {
            return Err(format!(
                "{}: `file` must be a file name in the same directory, not `{}`",
                path.display(),
                m.file
            ));
        }
        Ok(m)
    }

    /// Writes `dir/plugin.json` atomically.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join(format!(".{MANIFEST_FILE}.{}.tmp", std::process::id()));
        let mut text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        text.push(b'\n');
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, dir.join(MANIFEST_FILE)).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// The command that re-installs this plugin.
    pub fn reinstall_command(&self) -> String {
        format!(
            "bot-bottle plugin install --force {}",
            self.source
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "<path-to-library>".into())
        )
    }
}

/// A file's identity and change times: while all are unchanged the contents
/// are taken to be unchanged. Any write updates the ctime, which user tools
/// cannot set back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    /// Size in bytes.
    pub len: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status-change time, nanoseconds since the epoch.
    pub ctime_ns: i128,
    /// Device and inode.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl FileStamp {
    /// The stamp of `meta`.
    #[cfg(unix)]
    pub fn of(meta: &std::fs::Metadata) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        Some(FileStamp {
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Without ctime there is no trustworthy stamp: always hash.
    #[cfg(not(unix))]
    pub fn of(_meta: &std::fs::Metadata) -> Option<FileStamp> {
        None
    }
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Checks an installed library against its manifest. `Ok(Some(stamp))`
/// means the file was hashed and matched, and the stamp should be recorded.
pub fn verify_installed(lib: &Path, m: &InstalledManifest) -> Result<Option<FileStamp>, String> {
    let meta = std::fs::metadata(lib).map_err(|e| {
        format!(
            "the installed library {} is missing ({e}); re-install it with `{}`",
            lib.display(),
            m.reinstall_command()
        )
    })?;
    let stamp = FileStamp::of(&meta);
    if stamp.is_some() && stamp == m.verified {
        return Ok(None);
    }
    let actual = sha256_file(lib).map_err(|e| format!("cannot read {}: {e}", lib.display()))?;
    if !actual.eq_ignore_ascii_case(&m.sha256) {
        return Err(format!(
            "the library changed since it was installed (sha256 {actual}, {MANIFEST_FILE} says {}); \
             if you rebuilt it on purpose, re-install it with `{}`, else remove it with `bot-bottle plugin remove {}`",
            m.sha256,
            m.reinstall_command(),
            m.name
        ));
    }
    Ok(stamp)
}

/// Whether a host with this SDK loads a plugin built with `plugin_sdk`
/// (same major, minor not newer); the reason with the fix when not.
pub fn sdk_compatibility(plugin_sdk: &str) -> Result<(), String> {
    bot_bottle_sdk::host::check_sdk_version(plugin_sdk).map_err(|fix| {
        format!(
            "built with bot-bottle-sdk {plugin_sdk}, this bot-bottle uses bot-bottle-sdk {SDK_VERSION}; {fix}"
        )
    })
}

/// Every plugin library found, and which names they provide.
#[derive(Default)]
pub struct Registry {
    /// All candidates, in search order.
    pub candidates: Vec<Candidate>,
    backends: BTreeMap<String, usize>,
    providers: BTreeMap<String, usize>,
    load_installed: bool,
}

/// The directories and files to search.
#[derive(Clone, Debug, Default)]
pub struct SearchPath {
    /// Bundled plugin directory (the executable's).
    pub bundled: Option<PathBuf>,
    /// User plugin directory.
    pub user: Option<PathBuf>,
    /// `BOT_BOTTLE_PLUGIN_PATH` entries.
    pub extra: Vec<PathBuf>,
}

impl SearchPath {
    /// The standard search path for this process.
    pub fn from_env(home: &Path) -> SearchPath {
        let bundled = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        SearchPath {
            bundled,
            user: Some(user_plugin_dir(home)),
            extra: std::env::var_os("BOT_BOTTLE_PLUGIN_PATH")
                .map(|v| {
                    std::env::split_paths(&v)
                        .filter(|p| !p.as_os_str().is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// `$XDG_DATA_HOME/bot-bottle/plugins`, default `~/.local/share/bot-bottle/plugins`.
pub fn user_plugin_dir(home: &Path) -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".local/share"))
        .join("bot-bottle/plugins")
}

fn is_library(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("so" | "dylib" | "dll")
    )
}

fn libraries_in(dir: &Path, bundled: bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_library(p))
        .filter(|p| {
            !bundled
                || p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libbot_bottle_"))
        })
        .collect();
    found.sort();
    found
}

/// Plugin directories in the user plugin dir (hidden ones are `plugin
/// install`'s staging area).
fn installed_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found
}

enum Found {
    Library(PathBuf, Origin),
    Installed(PathBuf),
}

impl Registry {
    /// Loads every library on `search`; installed ones after checking their
    /// sha256.
    pub fn discover(search: &SearchPath) -> Registry {
        Registry::build(search, true)
    }

    /// Like [`Registry::discover`], but installed plugins are described from
    /// their manifests (and their hash checked) without loading them: what
    /// `plugin list`, `inspect` and `install` need. Bundled and
    /// `BOT_BOTTLE_PLUGIN_PATH` libraries have no manifest and are loaded.
    pub fn survey(search: &SearchPath) -> Registry {
        Registry::build(search, false)
    }

    fn build(search: &SearchPath, load_installed: bool) -> Registry {
        let mut found: Vec<Found> = Vec::new();
        if let Some(dir) = &search.bundled {
            found.extend(
                libraries_in(dir, true)
                    .into_iter()
                    .map(|p| Found::Library(p, Origin::Bundled)),
            );
        }
        if let Some(dir) = &search.user {
            found.extend(installed_dirs(dir).into_iter().map(Found::Installed));
            found.extend(
                libraries_in(dir, false)
                    .into_iter()
                    .map(|p| Found::Library(p, Origin::User)),
            );
        }
        for entry in &search.extra {
            if entry.is_dir() {
                found.extend(
                    libraries_in(entry, false)
                        .into_iter()
                        .map(|p| Found::Library(p, Origin::Path)),
                );
            } else {
                found.push(Found::Library(entry.clone(), Origin::Path));
            }
        }
        let mut registry = Registry {
            load_installed,
            ..Registry::default()
        };
        for f in found {
            match f {
                Found::Library(path, origin) => registry.add_library(path, origin),
                Found::Installed(dir) => registry.add_installed(&dir),
            }
        }
        registry
    }

    fn seen(&self, path: &Path) -> bool {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.candidates
            .iter()
            .any(|c| std::fs::canonicalize(&c.path).unwrap_or_else(|_| c.path.clone()) == canonical)
    }

    fn add_library(&mut self, path: PathBuf, origin: Origin) {
        if self.seen(&path) {
            return;
        }
        let mut candidate = Candidate::new(path.clone(), origin);
        match load(&path) {
            Ok(plugin) => {
                candidate.describe(plugin.manifest());
                self.admit(candidate, Some(plugin));
            }
            Err(e) => {
                if let LoadError::Incompatible { plugin_sdk, .. } = &e {
                    candidate.sdk_version = Some(plugin_sdk.clone());
                }
                candidate.reason = Some(e.reason());
                candidate.detail = e.detail().map(str::to_string);
                self.candidates.push(candidate);
            }
        }
    }

    fn add_installed(&mut self, dir: &Path) {
        let manifest_path = dir.join(MANIFEST_FILE);
        let dir_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let m = match InstalledManifest::read(dir) {
            Ok(m) => m,
            Err(reason) => {
                let mut c = Candidate::new(dir.to_path_buf(), Origin::User);
                c.manifest = Some(manifest_path);
                c.reason = Some(format!(
                    "{reason}; remove it with `bot-bottle plugin remove {dir_name}` and install the plugin again"
                ));
                self.candidates.push(c);
                return;
            }
        };
        let lib = dir.join(&m.file);
        if self.seen(&lib) {
            return;
        }
        let mut c = Candidate::new(lib.clone(), Origin::User);
        c.describe(&m.plugin_manifest());
        c.manifest = Some(manifest_path);
        c.sha256 = Some(m.sha256.clone());
        c.installed_at = Some(m.installed_at);
        c.source = m.source.clone();
        if m.name != dir_name {
            c.reason = Some(format!(
                "{MANIFEST_FILE} names plugin `{}` but its directory is `{dir_name}`; re-install it with `{}`",
                m.name,
                m.reinstall_command()
            ));
            self.candidates.push(c);
            return;
        }
        if let Err(reason) = sdk_compatibility(&m.sdk_version) {
            c.reason = Some(reason);
            self.candidates.push(c);
            return;
        }
        match verify_installed(&lib, &m) {
            Ok(Some(stamp)) => {
                // Best effort: a read-only plugin dir only costs a re-hash.
                let mut updated = m.clone();
                updated.verified = Some(stamp);
                let _ = updated.write(dir);
            }
            Ok(None) => {}
            Err(reason) => {
                c.status = "tampered";
                c.reason = Some(reason);
                self.candidates.push(c);
                return;
            }
        }
        if !self.load_installed {
            c.status = "installed";
            self.admit(c, None);
            return;
        }
        match load(&lib) {
            Ok(plugin) if plugin.manifest().name == m.name => {
                c.describe(plugin.manifest());
                self.admit(c, Some(plugin));
            }
            Ok(plugin) => {
                c.reason = Some(format!(
                    "the library says it is plugin `{}`, {MANIFEST_FILE} says `{}`; re-install it with `{}`",
                    plugin.manifest().name,
                    m.name,
                    m.reinstall_command()
                ));
                self.candidates.push(c);
            }
            Err(e) => {
                c.reason = Some(e.reason());
                c.detail = e.detail().map(str::to_string);
                self.candidates.push(c);
            }
        }
    }

    /// Applies the naming rules to a described candidate and registers its
    /// backends and providers.
    fn admit(&mut self, mut candidate: Candidate, plugin: Option<LoadedPlugin>) {
        let name = candidate.name.clone().unwrap_or_default();
        let index = self.candidates.len();
        let bundled = candidate.origin == Origin::Bundled;

        if let Some(other) = self.candidates.iter().position(|c| {
            (c.usable() || c.status == "conflict") && c.name.as_deref() == Some(name.as_str())
        }) {
            if self.candidates[other].origin == Origin::Bundled {
                candidate.status = "shadowed";
                candidate.reason = Some(format!(
                    "plugin name `{name}` belongs to {}, built into bot-bottle; a plugin cannot replace it",
                    self.candidates[other].path.display()
                ));
                self.candidates.push(candidate);
                return;
            }
            // Two libraries with one plugin name: neither is trusted to be
            // the one the user meant.
            let reason = format!(
                "two plugins are named `{name}`: {} and {}; remove one",
                self.candidates[other].path.display(),
                candidate.path.display()
            );
            for c in self.candidates.iter_mut() {
                if c.usable() && c.name.as_deref() == Some(name.as_str()) {
                    c.status = "conflict";
                    c.reason = Some(reason.clone());
                    c.plugin = None;
                }
            }
            let candidates = &self.candidates;
            self.backends
                .retain(|_, i| candidates[*i].name.as_deref() != Some(name.as_str()));
            self.providers
                .retain(|_, i| candidates[*i].name.as_deref() != Some(name.as_str()));
            candidate.status = "conflict";
            candidate.reason = Some(reason);
            self.candidates.push(candidate);
            return;
        }
        let reserved = |what: &str, n: &str| {
            format!("provides {what} `{n}`, which is built into bot-bottle and cannot be replaced")
        };
        if let Some(p) = candidate
            .providers
            .iter()
            .find(|p| BUILTIN_PROVIDERS.contains(&p.as_str()))
        {
            candidate.status = "refused";
            candidate.reason = Some(reserved("agent provider", p));
            self.candidates.push(candidate);
            return;
        }
        if !bundled {
            if let Some(b) = candidate
                .backends
                .iter()
                .find(|b| BUILTIN_BACKENDS.contains(&b.as_str()) && !self.backends.contains_key(*b))
            {
                candidate.status = "refused";
                candidate.reason = Some(reserved("backend", b));
                self.candidates.push(candidate);
                return;
            }
        }
        let taken = candidate
            .backends
            .iter()
            .find_map(|b| self.backends.get(b).map(|&i| (format!("backend `{b}`"), i)))
            .or_else(|| {
                candidate.providers.iter().find_map(|p| {
                    self.providers
                        .get(p)
                        .map(|&i| (format!("agent provider `{p}`"), i))
                })
            });
        if let Some((what, owner)) = taken {
            let owner = &self.candidates[owner];
            candidate.status = "shadowed";
            candidate.reason = Some(format!(
                "{what} is already provided by {} ({})",
                owner.path.display(),
                if owner.origin == Origin::Bundled {
                    "built in; a plugin cannot replace it"
                } else {
                    "found earlier on the plugin path"
                }
            ));
            self.candidates.push(candidate);
            return;
        }
        for backend in &candidate.backends {
            self.backends.insert(backend.clone(), index);
        }
        for provider in &candidate.providers {
            self.providers.insert(provider.clone(), index);
        }
        if let Some(plugin) = plugin {
            candidate.status = "loaded";
            candidate.plugin = Some(Arc::new(plugin));
        }
        self.candidates.push(candidate);
    }

    /// Names of the usable backends.
    pub fn backend_names(&self) -> Vec<&str> {
        self.backends.keys().map(String::as_str).collect()
    }

    fn loaded(&self, i: usize, what: String) -> Result<&Arc<LoadedPlugin>, RegistryError> {
        let c = &self.candidates[i];
        c.plugin.as_ref().ok_or_else(|| RegistryError::NotLoaded {
            what,
            path: c.path.clone(),
        })
    }

    /// Opens backend `name`.
    pub fn open_backend(&self, name: &str) -> Result<Box<dyn Backend>, RegistryError> {
        let Some(&i) = self.backends.get(name) else {
            let refused: Vec<String> = self
                .candidates
                .iter()
                .filter(|c| !c.usable() && c.backends.iter().any(|b| b == name))
                .map(|c| {
                    format!(
                        "{}: {}",
                        c.path.display(),
                        c.reason.clone().unwrap_or_default()
                    )
                })
                .collect();
            return Err(RegistryError::UnknownBackend {
                name: name.to_string(),
                available: self.backend_names().join(", "),
                refused,
            });
        };
        let plugin = self.loaded(i, format!("backend `{name}`"))?;
        plugin
            .open_backend(name)
            .map(|b| Box::new(b) as Box<dyn Backend>)
            .map_err(|error| RegistryError::Open {
                what: format!("backend `{name}`"),
                path: plugin.path().to_path_buf(),
                error,
            })
    }

    /// Opens provider `name`: built-ins first, then plugins.
    pub fn open_provider(&self, name: &str) -> Result<Box<dyn AgentProvider>, RegistryError> {
        if let Some(p) = crate::provider::builtin(name) {
            return Ok(p);
        }
        let Some(&i) = self.providers.get(name) else {
            let mut available: Vec<&str> = BUILTIN_PROVIDERS.to_vec();
            available.extend(self.providers.keys().map(String::as_str));
            return Err(RegistryError::UnknownProvider {
                name: name.to_string(),
                available: available.join(", "),
            });
        };
        let plugin = self.loaded(i, format!("agent provider `{name}`"))?;
        plugin
            .open_provider(name)
            .map(|p| Box::new(p) as Box<dyn AgentProvider>)
            .map_err(|error| RegistryError::Open {
                what: format!("agent provider `{name}`"),
                path: plugin.path().to_path_buf(),
                error,
            })
    }
}

/// A backend or provider could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No loaded plugin provides the backend.
    #[error("unknown backend `{name}`; available: {available}{}", fmt_refused(.refused))]
    UnknownBackend {
        /// Requested name.
        name: String,
        /// Loaded backends.
        available: String,
        /// Plugins that would provide it but were refused.
        refused: Vec<String>,
    },
    /// No provider of that name.
    #[error("unknown agent provider `{name}` (agent_provider.template); available: {available}")]
    UnknownProvider {
        /// Requested name.
        name: String,
        /// Known providers.
        available: String,
    },
    /// The registry was built with [`Registry::survey`], which does not load
    /// installed plugins.
    #[error("{what} from {} is not loaded (internal: a surveyed registry)", .path.display())]
    NotLoaded {
        /// What was opened.
        what: String,
        /// The library.
        path: PathBuf,
    },
    /// The plugin failed to open it.
    #[error("{what} from {}: {error}", .path.display())]
    Open {
        /// What was opened.
        what: String,
        /// The library.
        path: PathBuf,
        /// The plugin's error.
        error: PluginError,
    },
}

fn fmt_refused(refused: &[String]) -> String {
    if refused.is_empty() {
        String::new()
    } else {
        format!("\n  refused: {}", refused.join("\n  refused: "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_compatibility_accepts_older_minors_and_names_the_fix() {
        assert!(sdk_compatibility(SDK_VERSION).is_ok());
        let newer = sdk_compatibility("1.99.0").unwrap_err();
        assert!(newer.contains("1.99.0") && newer.contains(SDK_VERSION));
        assert!(newer.contains("upgrade bot-bottle"), "{newer}");
        let older_major = sdk_compatibility("0.9.0").unwrap_err();
        assert!(older_major.contains("rebuild the plugin"), "{older_major}");
        assert!(sdk_compatibility("garbage").is_err());
    }

    #[test]
    fn a_manifest_file_cannot_point_outside_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let m = InstalledManifest {
            format: 1,
            name: "x".into(),
            version: "1".into(),
            sdk_version: SDK_VERSION.into(),
            description: String::new(),
            backends: vec![],
            providers: vec![],
            capabilities: vec![],
            file: "../../libevil.so".into(),
            sha256: String::new(),
            installed_at: 0,
            source: None,
            verified: None,
        };
        m.write(dir.path()).unwrap();
        let err = InstalledManifest::read(dir.path()).unwrap_err();
        assert!(err.contains("must be a file name"), "{err}");
    }

    #[test]
    fn the_stamp_cache_skips_hashing_only_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libx.so");
        std::fs::write(&lib, b"library bytes").unwrap();
        let mut m = InstalledManifest {
            format: 1,
            name: "x".into(),
            version: "1".into(),
            sdk_version: SDK_VERSION.into(),
            description: String::new(),
            backends: vec![],
            providers: vec![],
            capabilities: vec![],
            file: "libx.so".into(),
            sha256: sha256_file(&lib).unwrap(),
            installed_at: 0,
            source: Some("/src/libx.so".into()),
            verified: None,
        };
        let stamp = verify_installed(&lib, &m).unwrap();
        assert!(stamp.is_some(), "first check hashes");
        m.verified = stamp;
        assert_eq!(verify_installed(&lib, &m).unwrap(), None, "cached");
        // Same size, different contents.
        std::fs::write(&lib, b"LIBRARY bytes").unwrap();
        let err = verify_installed(&lib, &m).unwrap_err();
        assert!(
            err.contains("bot-bottle plugin install --force /src/libx.so"),
            "{err}"
        );
    }
}
