//! Finding and loading backend and provider plugins.
//!
//! Search order (first wins for a name):
//! 1. the directory of the `bot-bottle` executable (`libbot_bottle_*` only):
//!    the plugins shipped with bot-bottle, so a fresh `cargo build` works;
//! 2. `$XDG_DATA_HOME/bot-bottle/plugins` (default
//!    `~/.local/share/bot-bottle/plugins`): plugins the user installed;
//! 3. each entry of `BOT_BOTTLE_PLUGIN_PATH` (`:`-separated files or dirs).
//!
//! A library that fails to load is recorded with its reason and never stops
//! the others from loading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bot_bottle_sdk::host::{load, LoadError, LoadedPlugin};
use bot_bottle_sdk::{AgentProvider, Backend, PluginError};
use serde::Serialize;

use crate::provider::BUILTIN_PROVIDERS;

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
    /// `loaded`, `refused`, `shadowed` or `conflict`.
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
    /// Why it is not usable.
    pub reason: Option<String>,
    /// Long diagnostic (layout report), shown with `--verbose`.
    #[serde(skip)]
    pub detail: Option<String>,
    #[serde(skip)]
    plugin: Option<Arc<LoadedPlugin>>,
}

/// Every plugin library found, and which names they provide.
#[derive(Default)]
pub struct Registry {
    /// All candidates, in search order.
    pub candidates: Vec<Candidate>,
    backends: BTreeMap<String, usize>,
    providers: BTreeMap<String, usize>,
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

impl Registry {
    /// Loads every library on `search`.
    pub fn discover(search: &SearchPath) -> Registry {
        let mut files: Vec<(PathBuf, Origin)> = Vec::new();
        if let Some(dir) = &search.bundled {
            files.extend(
                libraries_in(dir, true)
                    .into_iter()
                    .map(|p| (p, Origin::Bundled)),
            );
        }
        if let Some(dir) = &search.user {
            files.extend(
                libraries_in(dir, false)
                    .into_iter()
                    .map(|p| (p, Origin::User)),
            );
        }
        for entry in &search.extra {
            if entry.is_dir() {
                files.extend(
                    libraries_in(entry, false)
                        .into_iter()
                        .map(|p| (p, Origin::Path)),
                );
            } else {
                files.push((entry.clone(), Origin::Path));
            }
        }
        let mut registry = Registry::default();
        for (path, origin) in files {
            registry.add(path, origin);
        }
        registry
    }

    fn add(&mut self, path: PathBuf, origin: Origin) {
        let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if self
            .candidates
            .iter()
            .any(|c| std::fs::canonicalize(&c.path).unwrap_or_else(|_| c.path.clone()) == canonical)
        {
            return;
        }
        let mut candidate = Candidate {
            path: path.clone(),
            origin,
            status: "refused",
            name: None,
            version: None,
            sdk_version: None,
            backends: Vec::new(),
            providers: Vec::new(),
            reason: None,
            detail: None,
            plugin: None,
        };
        let plugin = match load(&path) {
            Ok(p) => p,
            Err(e) => {
                if let LoadError::Incompatible { plugin_sdk, .. } = &e {
                    candidate.sdk_version = Some(plugin_sdk.clone());
                }
                candidate.reason = Some(e.reason());
                candidate.detail = e.detail().map(str::to_string);
                self.candidates.push(candidate);
                return;
            }
        };
        let m = plugin.manifest().clone();
        candidate.name = Some(m.name.clone());
        candidate.version = Some(m.version.clone());
        candidate.sdk_version = Some(m.sdk_version.clone());
        candidate.backends = m.backends.clone();
        candidate.providers = m.providers.clone();
        let index = self.candidates.len();

        // Two libraries with one plugin name: neither is trusted to be the
        // one the user meant.
        if let Some(other) = self
            .candidates
            .iter_mut()
            .find(|c| c.status == "loaded" && c.name.as_deref() == Some(m.name.as_str()))
        {
            let reason = format!(
                "two plugins are named `{}`: {} and {}; remove one",
                m.name,
                other.path.display(),
                path.display()
            );
            other.status = "conflict";
            other.reason = Some(reason.clone());
            other.plugin = None;
            let name = m.name.clone();
            self.backends
                .retain(|_, i| self.candidates[*i].name.as_deref() != Some(name.as_str()));
            self.providers
                .retain(|_, i| self.candidates[*i].name.as_deref() != Some(name.as_str()));
            candidate.status = "conflict";
            candidate.reason = Some(reason);
            self.candidates.push(candidate);
            return;
        }
        for provider in &m.providers {
            if BUILTIN_PROVIDERS.contains(&provider.as_str()) {
                candidate.reason = Some(format!(
                    "provides agent provider `{provider}`, which is built into bot-bottle and cannot be replaced"
                ));
                self.candidates.push(candidate);
                return;
            }
        }
        for backend in &m.backends {
            if let Some(&owner) = self.backends.get(backend) {
                let owner = &self.candidates[owner];
                candidate.status = "shadowed";
                candidate.reason = Some(format!(
                    "backend `{backend}` is already provided by {} ({})",
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
        }
        for backend in &m.backends {
            self.backends.insert(backend.clone(), index);
        }
        for provider in &m.providers {
            self.providers.entry(provider.clone()).or_insert(index);
        }
        candidate.status = "loaded";
        candidate.plugin = Some(Arc::new(plugin));
        self.candidates.push(candidate);
    }

    /// Names of the usable backends.
    pub fn backend_names(&self) -> Vec<&str> {
        self.backends.keys().map(String::as_str).collect()
    }

    /// Opens backend `name`.
    pub fn open_backend(&self, name: &str) -> Result<Box<dyn Backend>, RegistryError> {
        let Some(&i) = self.backends.get(name) else {
            let refused: Vec<String> = self
                .candidates
                .iter()
                .filter(|c| c.status != "loaded" && c.backends.iter().any(|b| b == name))
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
        let plugin = self.candidates[i]
            .plugin
            .as_ref()
            .expect("loaded candidates hold a plugin");
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
        let plugin = self.candidates[i]
            .plugin
            .as_ref()
            .expect("loaded candidates hold a plugin");
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
