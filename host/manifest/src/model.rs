//! The typed manifest: what the host works with after loading.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bot_bottle_sdk::RouteSpec;

/// How one `env` entry of a bottle gets its value at launch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvValue {
    /// Used as written. Literals are not secret and may be written to disk.
    Literal(String),
    /// `"${NAME}"`: copied from the host variable `NAME` (holds the name only).
    HostVar(String),
    /// `"?"` or `"?text"`: asked for on the terminal at launch, with `text`
    /// as the prompt when given. The answer is a secret.
    Prompt(Option<String>),
}

impl EnvValue {
    /// Whether the value at launch must be treated as a secret (never
    /// written to disk, logs or argv).
    pub fn is_sensitive(&self) -> bool {
        !matches!(self, EnvValue::Literal(_))
    }
}

/// The `agent_provider` section of a bottle.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentProvider {
    /// Provider name, `claude` by default; `codex` is the other built-in.
    pub template: String,
    /// A custom agent-image Dockerfile, made absolute relative to the bottle
    /// file's directory.
    pub dockerfile: Option<PathBuf>,
    /// Name of the host variable holding the provider's API token (Claude).
    pub auth_token: Option<String>,
    /// Forward the host's own login to the egress proxy (Codex).
    pub forward_host_credentials: bool,
    /// Provider settings, passed through as JSON.
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl Default for AgentProvider {
    fn default() -> Self {
        AgentProvider {
            template: DEFAULT_TEMPLATE.to_string(),
            dockerfile: None,
            auth_token: None,
            forward_host_credentials: false,
            settings: serde_json::Map::new(),
        }
    }
}

/// The provider used when a bottle names none.
pub const DEFAULT_TEMPLATE: &str = "claude";

/// `git-gate.user`: the agent's git identity. Each field is set separately
/// so bottles and agents can overlay one another field by field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GitUser {
    /// `user.name`.
    pub name: Option<String>,
    /// `user.email`.
    pub email: Option<String>,
}

impl GitUser {
    /// `other`'s fields win where they are set (bottle inheritance).
    pub(crate) fn overlay(&self, other: &GitUser) -> GitUser {
        GitUser {
            name: other.name.clone().or_else(|| self.name.clone()),
            email: other.email.clone().or_else(|| self.email.clone()),
        }
    }

    /// `other`'s fields win where they are non-empty (an agent over its bottle).
    pub(crate) fn overlay_non_empty(&self, other: &GitUser) -> GitUser {
        let pick = |o: &Option<String>, s: &Option<String>| match o {
            Some(v) if !v.is_empty() => Some(v.clone()),
            _ => s.clone(),
        };
        GitUser {
            name: pick(&other.name, &self.name),
            email: pick(&other.email, &self.email),
        }
    }

    fn without_empty(self) -> GitUser {
        GitUser {
            name: self.name.filter(|s| !s.is_empty()),
            email: self.email.filter(|s| !s.is_empty()),
        }
    }
}

/// The effective `egress` section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Egress {
    /// Manifest routes, `origin = Manifest`, in declaration order.
    pub routes: Vec<RouteSpec>,
    /// 0 = off, 1 = blocks and warnings, 2 = every request.
    pub log: u8,
}

/// The `egress` section as one file declares it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EgressDecl {
    /// Routes in declaration order.
    pub routes: Vec<RouteSpec>,
    /// `log`, when the file sets it.
    pub log: Option<u8>,
}

/// A host path made visible in the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Absolute host path. `~/...` as written in [`BottleFile`]; expanded
    /// against `$HOME` in a [`Bottle`] loaded through the index.
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: String,
    /// Mount read-only (default false).
    pub read_only: bool,
}

/// One bottle file as written, before `extends` is resolved. `None` means
/// the key is absent (inherit); `Some` means declared, even when empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BottleFile {
    /// The file name without `.md`.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Parent bottles, in order.
    pub extends: Vec<String>,
    /// Line of the `extends` key.
    pub extends_line: Option<usize>,
    /// `env`.
    pub env: Option<BTreeMap<String, EnvValue>>,
    /// `agent_provider`.
    pub agent_provider: Option<AgentProvider>,
    /// `egress`.
    pub egress: Option<EgressDecl>,
    /// `supervise` (only `false` is accepted in this version).
    pub supervise: Option<bool>,
    /// `git-gate.user`.
    pub git_user: Option<GitUser>,
    /// `image`; `Some(None)` is an explicit empty value.
    pub image: Option<Option<String>>,
    /// `mounts`.
    pub mounts: Option<Vec<Mount>>,
}

/// An effective bottle: one file with its `extends` chain resolved, or
/// several chosen bottles merged in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bottle {
    /// Environment for the agent, by variable name.
    pub env: BTreeMap<String, EnvValue>,
    /// The agent provider and its options.
    pub agent_provider: AgentProvider,
    /// Egress routes and log level.
    pub egress: Egress,
    /// Always false in this version (`supervise: true` is refused).
    pub supervise: bool,
    /// The agent's git identity (the agent's own `git-gate.user` already
    /// overlaid when it came from [`crate::ManifestIndex::load`]).
    pub git_user: GitUser,
    /// A prebuilt image reference to run instead of building one.
    pub image: Option<String>,
    /// Extra host paths for the sandbox.
    pub mounts: Vec<Mount>,
}

impl Bottle {
    /// Applies defaults to a fully resolved layer.
    pub(crate) fn from_layer(layer: BottleFile) -> Bottle {
        let egress = layer.egress.unwrap_or_default();
        Bottle {
            env: layer.env.unwrap_or_default(),
            agent_provider: layer.agent_provider.unwrap_or_default(),
            egress: Egress {
                routes: egress.routes,
                log: egress.log.unwrap_or(0),
            },
            supervise: layer.supervise.unwrap_or(false),
            git_user: layer.git_user.unwrap_or_default().without_empty(),
            image: layer.image.flatten(),
            mounts: layer.mounts.unwrap_or_default(),
        }
    }
}

/// An agent file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    /// The file name without `.md`.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// The bottle it names, if any.
    pub bottle: Option<String>,
    /// Skill names (directories under `~/.claude/skills/`).
    pub skills: Vec<String>,
    /// Its `git-gate.user`, overlaid on the bottle's at load.
    pub git_user: GitUser,
    /// The Markdown body, whitespace-trimmed.
    pub system_prompt: String,
}

/// Where an agent file was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentOrigin {
    /// `$HOME/.bot-bottle/agents/`.
    Home,
    /// `$CWD/.bot-bottle/agents/` (shipped by the repository).
    Cwd,
}

/// One agent plus one effective bottle: what a launch needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The agent.
    pub agent: Agent,
    /// Where the agent file was found.
    pub agent_origin: AgentOrigin,
    /// The merged bottle, with the agent's `git-gate.user` overlaid.
    pub bottle: Bottle,
    /// The bottles merged, in order (from `--bottle` or the agent's `bottle:`).
    pub bottle_names: Vec<String>,
}
