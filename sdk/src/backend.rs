//! Backends: the engines a bottle runs on (Docker, smolmachines, ...).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::egress::EgressPolicy;
use crate::error::PluginResult;
use crate::provider::ProvisionedFile;
use crate::secret::SecretMap;

/// Describes a backend.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// Name used with `--backend` and `BOT_BOTTLE_BACKEND`.
    pub name: String,
    /// One line for `bot-bottle plugin list`.
    #[serde(default)]
    pub description: String,
    /// The isolation boundary, e.g. `"container"` or `"microvm"`.
    #[serde(default)]
    pub isolation: String,
}

/// One readiness check reported by [`Backend::doctor`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorCheck {
    /// What was checked, e.g. `"docker engine"`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found (version, path, error).
    #[serde(default)]
    pub detail: String,
    /// How to fix it, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The result of [`Backend::doctor`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// Individual checks, in the order they ran.
    pub checks: Vec<DoctorCheck>,
}

impl DoctorReport {
    /// Whether every check passed.
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// Identity of one bottle, unique across backends and invocations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BottleIdentity {
    /// Unique id: `<label>-<random>`, `[a-z0-9-]`, at most 48 characters.
    pub id: String,
    /// Agent name.
    pub agent: String,
    /// Human label (defaults to the agent name).
    #[serde(default)]
    pub label: String,
    /// Names of the bottles merged for this launch.
    #[serde(default)]
    pub bottles: Vec<String>,
    /// Creation time, seconds since the Unix epoch.
    #[serde(default)]
    pub created_at: u64,
}

/// Where the agent's image comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ImageSpec {
    /// A prebuilt image reference.
    Image {
        /// Reference, e.g. `bot-bottle/test-agent:latest`.
        reference: String,
    },
    /// Build from a Dockerfile.
    Dockerfile {
        /// Dockerfile text.
        dockerfile: String,
        /// Build context directory on the host, if the Dockerfile needs one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<PathBuf>,
    },
}

/// A host directory made visible in the sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute host path.
    pub source: PathBuf,
    /// Absolute sandbox path.
    pub target: String,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// Everything a backend needs to start one bottle.
///
/// The host has already resolved every credential: [`LaunchRequest::egress_env`]
/// holds the values for the policy's `EGRESS_TOKEN_<N>` slots. A backend gives
/// them to the egress proxy and to nothing else, and never reads the host
/// environment or credential files itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LaunchRequest {
    /// Who this bottle is.
    pub bottle: BottleIdentity,
    /// The agent image.
    pub image: ImageSpec,
    /// Command to run in the sandbox (the agent).
    pub command: Vec<String>,
    /// User to run the agent as; empty means the image's default.
    #[serde(default)]
    pub user: String,
    /// Working directory of the agent in the sandbox.
    pub workdir: String,
    /// The workspace, mounted read-write at `workdir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Mount>,
    /// Extra mounts.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Agent environment: placeholders and settings only. The backend adds
    /// the proxy and CA variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Files to place in the sandbox, owned by the agent user.
    #[serde(default)]
    pub files: Vec<ProvisionedFile>,
    /// What the egress proxy enforces.
    pub egress: EgressPolicy,
    /// The resolved egress environment: slot name → value. Crosses the plugin
    /// boundary outside the serialized request.
    #[serde(skip)]
    pub egress_env: SecretMap,
    /// Attach a terminal (interactive) rather than stream output (headless).
    #[serde(default)]
    pub tty: bool,
    /// Host directory for this bottle's state and logs (created by the host).
    pub state_dir: PathBuf,
    /// The static `bot-bottle-egress` binary the host ships.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_binary: Option<PathBuf>,
}

/// The lifecycle state of a bottle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BottleState {
    /// Being created.
    Creating,
    /// The agent is running.
    Running,
    /// The agent exited; resources may remain until `remove`.
    Exited,
    /// Partly there (a crashed CLI); `gc` reaps it.
    Broken,
    /// Not known.
    #[default]
    Unknown,
}

/// A bottle as a backend reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BottleSummary {
    /// Bottle id.
    pub id: String,
    /// Backend name.
    pub backend: String,
    /// Agent name.
    #[serde(default)]
    pub agent: String,
    /// Human label.
    #[serde(default)]
    pub label: String,
    /// Current state.
    #[serde(default)]
    pub state: BottleState,
    /// Creation time, seconds since the Unix epoch.
    #[serde(default)]
    pub created_at: u64,
    /// Where the egress decision log is, if on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_log: Option<PathBuf>,
    /// Backend-specific facts (container ids, networks, runtime).
    #[serde(default)]
    pub details: BTreeMap<String, String>,
}

/// What [`Backend::logs`] should write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsRequest {
    /// The egress proxy's decision log instead of the agent's output.
    #[serde(default)]
    pub egress: bool,
    /// Keep streaming until the bottle stops.
    #[serde(default)]
    pub follow: bool,
}

/// What [`Backend::gc`] should do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcRequest {
    /// Report what would be removed, remove nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What [`Backend::gc`] found and removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Resources removed (or that would be, on a dry run), one line each.
    #[serde(default)]
    pub removed: Vec<String>,
    /// Live bottles left alone.
    #[serde(default)]
    pub kept: Vec<String>,
}

/// A sandbox engine.
///
/// # Contract
///
/// * **Isolation.** The agent reaches nothing but the bottle's egress proxy.
///   The resolved egress environment goes to the proxy only: never into the
///   agent's environment, files, command line or engine metadata.
/// * **Nothing left behind.** `launch` either returns a running bottle or
///   removes everything it created before returning the error. `remove` is
///   idempotent: removing a bottle that is already gone succeeds (like CNI's
///   DEL). `gc` removes what a crashed CLI left behind and never touches a
///   live bottle or anything not created by bot-bottle.
/// * **Concurrency.** The host may call any method from several threads at
///   once for different bottles; `list` and `gc` may run while other bottles
///   launch.
/// * **Synchronous.** Calls block until done; a backend that needs an async
///   runtime owns it.
pub trait Backend: Send + Sync + 'static {
    /// Name and description.
    fn info(&self) -> BackendInfo;

    /// Whether the engine is ready, with a hint for each failed check.
    fn doctor(&self) -> PluginResult<DoctorReport>;

    /// Creates the egress proxy and the agent sandbox, and starts both.
    fn launch(&self, request: LaunchRequest) -> PluginResult<BottleSummary>;

    /// Connects the calling process's terminal (or, without `tty`, its
    /// stdout and stderr) to the agent and returns the agent's exit code.
    fn attach(&self, id: &str, tty: bool) -> PluginResult<i32>;

    /// Waits for the agent to exit and returns its exit code.
    fn wait(&self, id: &str) -> PluginResult<i32>;

    /// Stops the agent and the proxy, keeping their resources.
    fn stop(&self, id: &str) -> PluginResult<()>;

    /// Removes every resource of the bottle. Idempotent.
    fn remove(&self, id: &str) -> PluginResult<()>;

    /// Every bottle of this backend, across CLI invocations.
    fn list(&self) -> PluginResult<Vec<BottleSummary>>;

    /// Writes the agent's output (or the egress log) to `out`.
    fn logs(&self, id: &str, request: &LogsRequest, out: &mut dyn Write) -> PluginResult<()>;

    /// Reaps resources a crashed CLI left behind.
    fn gc(&self, request: &GcRequest) -> PluginResult<GcReport>;
}
