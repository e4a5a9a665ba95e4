//! Agent providers: what an agent (Claude Code, Codex, ...) needs in a bottle.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::egress::RouteSpec;
use crate::error::PluginResult;
use crate::secret::SecretMap;

/// Describes an agent provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// Name used in `agent_provider.template`.
    pub name: String,
    /// One line for `bot-bottle plugin list`.
    #[serde(default)]
    pub description: String,
    /// Dockerfile text for the agent image, when the provider ships one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Command that starts the agent interactively.
    #[serde(default)]
    pub command: Vec<String>,
    /// Command prefix for a headless run; the prompt is appended.
    #[serde(default)]
    pub headless_command: Vec<String>,
    /// The user the agent runs as in the sandbox.
    #[serde(default)]
    pub user: String,
    /// The agent user's home directory in the sandbox.
    #[serde(default)]
    pub home: String,
}

/// The manifest's `agent_provider` block, as the provider sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderOptions {
    /// `template`: the provider's name.
    pub template: String,
    /// `forward_host_credentials`: use the host's own login (Codex).
    #[serde(default)]
    pub forward_host_credentials: bool,
    /// `auth_token`: name of a host variable holding an API token (Claude).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// `settings`: provider-specific, free-form.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// What the host asks a provider to provision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionRequest {
    /// Agent name (the agent file's name).
    pub agent: String,
    /// The bottle's `agent_provider` options.
    pub options: ProviderOptions,
    /// The agent's system prompt (the agent file's body), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// The host user's home directory, for provider files such as
    /// `~/.codex/auth.json`.
    pub host_home: PathBuf,
    /// Provider-relevant host variables the host chose to pass (for example
    /// `CODEX_HOME`). Never the whole host environment.
    #[serde(default)]
    pub host_vars: BTreeMap<String, String>,
    /// The prompt of a headless run (`--prompt`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headless_prompt: Option<String>,
}

/// A file to place in the sandbox before the agent starts.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionedFile {
    /// Absolute path in the sandbox.
    pub path: String,
    /// File contents.
    #[serde(with = "crate::bytes")]
    pub contents: Vec<u8>,
    /// Unix permission bits.
    #[serde(default = "default_mode")]
    pub mode: u32,
}

impl ProvisionedFile {
    /// A file with mode `0644`.
    pub fn new(path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        ProvisionedFile {
            path: path.into(),
            contents: contents.into(),
            mode: default_mode(),
        }
    }

    /// Sets the permission bits.
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
}

// Contents stay out of Debug: dummy auth files are placeholders, but a
// provider's own files might not be, and Debug output ends up in logs.
impl std::fmt::Debug for ProvisionedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisionedFile")
            .field("path", &self.path)
            .field("len", &self.contents.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

fn default_mode() -> u32 {
    0o644
}

/// What a provider contributes to a launch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentProvisionPlan {
    /// Files for the sandbox: dummy auth files, settings, the prompt.
    #[serde(default)]
    pub files: Vec<ProvisionedFile>,
    /// Agent environment: placeholders and switches, never real secrets.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Variables to hide from summaries (placeholders that look like tokens).
    #[serde(default)]
    pub hidden_env_names: Vec<String>,
    /// Host-side secrets resolved at prepare time for egress, keyed by token
    /// ref. They win over host variables of the same name.
    #[serde(skip)]
    pub provisioned_env: SecretMap,
    /// Routes the provider owns, for example `api.anthropic.com`.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Command for this launch, when it depends on the options; `None`
    /// means [`ProviderInfo::command`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// User for this launch; `None` means [`ProviderInfo::user`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// An agent provider.
///
/// Providers run in the host, which is trusted: a provider may read the host
/// files it needs (such as the Codex login) and returns the values it
/// resolved in [`AgentProvisionPlan::provisioned_env`], never in `env` or
/// `files`.
pub trait AgentProvider: Send + Sync + 'static {
    /// Name, image and command of this provider.
    fn info(&self) -> ProviderInfo;

    /// Files, environment, routes and resolved credentials for one launch.
    fn provision(&self, request: &ProvisionRequest) -> PluginResult<AgentProvisionPlan>;
}
