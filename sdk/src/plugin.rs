//! The plugin library: what it is called and what it provides.

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{PluginError, PluginResult};
use crate::provider::AgentProvider;

/// Describes a plugin library. Reported by `bot-bottle plugin list` and
/// written beside an installed library.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginManifest {
    /// Plugin name: `^[a-z][a-z0-9-]{0,31}$`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The SDK version the plugin was built with (filled in by the SDK).
    #[serde(default)]
    pub sdk_version: String,
    /// One line describing the plugin.
    #[serde(default)]
    pub description: String,
    /// Names of the backends it provides.
    #[serde(default)]
    pub backends: Vec<String>,
    /// Names of the agent providers it provides.
    #[serde(default)]
    pub providers: Vec<String>,
    /// Free-form capability tags, e.g. `"tty"`, `"gc"`.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// Implemented once per plugin library and exported with
/// [`export_plugin!`](crate::export_plugin).
///
/// ```
/// use bot_bottle_sdk::prelude::*;
///
/// struct MyPlugin;
///
/// impl Plugin for MyPlugin {
///     fn manifest() -> PluginManifest {
///         PluginManifest {
///             name: "my-plugin".into(),
///             version: "0.1.0".into(),
///             ..Default::default()
///         }
///     }
/// }
/// ```
pub trait Plugin: 'static {
    /// Name, version and what the library provides. `sdk_version` is filled
    /// in by the SDK.
    fn manifest() -> PluginManifest;

    /// Opens the backend called `name`; called once per process.
    fn open_backend(name: &str) -> PluginResult<Box<dyn Backend>> {
        Err(PluginError::not_found(format!("no backend named `{name}`")))
    }

    /// Opens the agent provider called `name`; called once per process.
    fn open_provider(name: &str) -> PluginResult<Box<dyn AgentProvider>> {
        Err(PluginError::not_found(format!(
            "no agent provider named `{name}`"
        )))
    }
}

/// Whether `name` is a valid plugin, backend or provider name:
/// `^[a-z][a-z0-9-]{0,31}$`.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 32
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}
