//! Loading plugin libraries (host side).
//!
//! The host calls [`load`] for each candidate library. A library that is not
//! a plugin, was built against an incompatible SDK, or fails to initialise is
//! reported as a [`LoadError`]; it never stops other plugins from loading.

mod elf;

use std::fmt;
use std::path::{Path, PathBuf};

use std::sync::OnceLock;

use abi_stable::abi_stability::abi_checking::check_layout_compatibility;
use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::std_types::RStr;
use abi_stable::StableAbi;

use crate::ffi::LogFn;
use crate::log::Level;

use crate::ffi::{PluginMod_Ref, RemoteBackend, RemoteProvider};
use crate::plugin::PluginManifest;
use crate::{PluginError, SDK_VERSION};

type Handler = Box<dyn Fn(&str, Level, &str) + Send + Sync>;

static LOG_HANDLER: OnceLock<Handler> = OnceLock::new();

/// Sets the function that receives plugin log messages (first call wins).
/// Without one, messages at `Info` and above go to stderr.
pub fn set_log_handler(handler: impl Fn(&str, Level, &str) + Send + Sync + 'static) {
    let _ = LOG_HANDLER.set(Box::new(handler));
}

extern "C" fn forward_log(level: u8, message: RStr<'_>) {
    // Never unwind into the plugin.
    let _ = std::panic::catch_unwind(|| {
        let level = Level::from_u8(level);
        match LOG_HANDLER.get() {
            Some(h) => h("plugin", level, message.as_str()),
            None if level <= Level::Info => eprintln!("{}", message.as_str()),
            None => {}
        }
    });
}

/// A plugin library that passed the version and layout checks.
pub struct LoadedPlugin {
    path: PathBuf,
    manifest: PluginManifest,
    module: PluginMod_Ref,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("path", &self.path)
            .field("manifest", &self.manifest)
            .finish()
    }
}

impl LoadedPlugin {
    /// Where the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    /// Opens one of the plugin's backends.
    pub fn open_backend(&self, name: &str) -> Result<RemoteBackend, PluginError> {
        self.module.backend(name)
    }

    /// Opens one of the plugin's agent providers.
    pub fn open_provider(&self, name: &str) -> Result<RemoteProvider, PluginError> {
        self.module.provider(name)
    }
}

/// Why a library could not be loaded.
#[derive(Debug, Clone)]
pub enum LoadError {
    /// The file could not be opened as a shared library, or is not a
    /// bot-bottle plugin.
    NotAPlugin {
        /// The library.
        path: PathBuf,
        /// What the loader said.
        reason: String,
    },
    /// Built against an SDK this host cannot use.
    Incompatible {
        /// The library.
        path: PathBuf,
        /// The SDK version the plugin was built with.
        plugin_sdk: String,
        /// This host's SDK version.
        host_sdk: String,
        /// What to do about it.
        fix: String,
        /// abi_stable's full layout report, for `--verbose`.
        detail: String,
    },
    /// The plugin's initialisation failed or panicked.
    Init {
        /// The library.
        path: PathBuf,
        /// The error.
        reason: String,
    },
}

impl LoadError {
    /// The library this error is about.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::NotAPlugin { path, .. }
            | LoadError::Incompatible { path, .. }
            | LoadError::Init { path, .. } => path,
        }
    }

    /// The long report (layout dump) behind a short message, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            LoadError::Incompatible { detail, .. } if !detail.is_empty() => Some(detail),
            _ => None,
        }
    }

    /// A one-line reason, without the path.
    pub fn reason(&self) -> String {
        match self {
            LoadError::NotAPlugin { reason, .. } => format!("not a bot-bottle plugin: {reason}"),
            LoadError::Incompatible {
                plugin_sdk,
                host_sdk,
                fix,
                ..
            } => format!(
                "built with bot-bottle-sdk {plugin_sdk}, this bot-bottle uses bot-bottle-sdk {host_sdk}; {fix}"
            ),
            LoadError::Init { reason, .. } => format!("failed to initialise: {reason}"),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Incompatible {
                path,
                plugin_sdk,
                host_sdk,
                fix,
                ..
            } => write!(
                f,
                "plugin {} is incompatible: it was built with bot-bottle-sdk {plugin_sdk}, \
                 this bot-bottle uses bot-bottle-sdk {host_sdk}\n  fix: {fix}",
                path.display()
            ),
            other => write!(f, "plugin {}: {}", other.path().display(), other.reason()),
        }
    }
}

impl std::error::Error for LoadError {}

fn parse_version(v: &str) -> Option<(u64, u64)> {
    let mut parts = v.split(['.', '-', '+']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether this host loads a plugin built with SDK `plugin_sdk`: the same
/// major and a minor no newer than the host's. `Err` holds the fix to tell
/// the user. Layout is checked separately, when the library is loaded.
pub fn check_sdk_version(plugin_sdk: &str) -> Result<(), String> {
    let host = parse_version(SDK_VERSION).expect("the SDK's own version parses");
    let Some(plugin) = parse_version(plugin_sdk) else {
        return Err(format!(
            "the plugin reports an unreadable SDK version `{plugin_sdk}`"
        ));
    };
    if plugin.0 == host.0 && plugin.1 <= host.1 {
        Ok(())
    } else if plugin > host {
        Err(format!(
            "upgrade bot-bottle to one built with bot-bottle-sdk {}.{} or newer, or use a plugin built for {}.x",
            plugin.0, plugin.1, host.0
        ))
    } else {
        Err(format!(
            "rebuild the plugin against bot-bottle-sdk {}.{} (any {}.x up to {}.{} loads)",
            host.0, host.1, host.0, host.0, host.1
        ))
    }
}

/// Loads a plugin library, checks its SDK version and layout, and reads its
/// manifest.
///
/// A host built with SDK `1.x` loads plugins built with SDK `1.y` for any
/// `y <= x`: the root module and vtables are prefix types, so fields a newer
/// SDK appended are simply absent from an older plugin. abi_stable's own
/// version check would refuse that direction, so the host checks the major
/// version itself and lets the layout checker judge the rest.
pub fn load(path: &Path) -> Result<LoadedPlugin, LoadError> {
    elf::check(path).map_err(|reason| LoadError::NotAPlugin {
        path: path.to_path_buf(),
        reason,
    })?;
    let header = lib_header_from_path(path).map_err(|e| LoadError::NotAPlugin {
        path: path.to_path_buf(),
        reason: short_library_error(&e),
    })?;
    let plugin_sdk = header.version_strings().version.to_string();
    let incompatible = |fix: String, detail: String| LoadError::Incompatible {
        path: path.to_path_buf(),
        plugin_sdk: plugin_sdk.clone(),
        host_sdk: SDK_VERSION.to_string(),
        fix,
        detail,
    };
    check_sdk_version(&plugin_sdk).map_err(|fix| incompatible(fix, String::new()))?;
    let layout_fix = || {
        "rebuild the plugin against this bot-bottle's bot-bottle-sdk (its layout does not match)"
            .to_string()
    };
    if let Err(e) = header.ensure_layout::<PluginMod_Ref>() {
        // abi_stable accepts a library whose prefix types have *more* fields
        // than the host expects (a newer plugin), not fewer. A plugin from
        // an older minor has fewer: accept it when its whole layout is a
        // prefix of ours, i.e. when ours checks as an implementation of its.
        let prefix_ok = header.layout().is_some_and(|plugin_layout| {
            check_layout_compatibility(plugin_layout, <PluginMod_Ref as StableAbi>::LAYOUT).is_ok()
        });
        if !prefix_ok {
            return Err(incompatible(layout_fix(), e.to_string()));
        }
    }
    // SAFETY: the layout was checked just above.
    let module: PluginMod_Ref =
        unsafe { header.unchecked_layout::<PluginMod_Ref>() }.map_err(|e| LoadError::Init {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let manifest = module.read_manifest().map_err(|e| LoadError::Init {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    module.install_log_sink(LogFn { log: forward_log });
    if !crate::plugin::is_valid_name(&manifest.name) {
        return Err(LoadError::Init {
            path: path.to_path_buf(),
            reason: format!(
                "invalid plugin name `{}` (allowed: lower-case letters, digits and '-', starting with a letter, at most 32)",
                manifest.name
            ),
        });
    }
    Ok(LoadedPlugin {
        path: path.to_path_buf(),
        manifest,
        module,
    })
}

fn short_library_error(e: &LibraryError) -> String {
    let text = e.to_string();
    // abi_stable's messages can run to many lines; the first is the useful one.
    text.lines().next().unwrap_or("").trim().to_string()
}
