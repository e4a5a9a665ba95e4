//! Prepare: from a loaded manifest to a [`LaunchPlan`].
//!
//! Nothing here reads a secret except through the provider (which puts what
//! it resolved in `provisioned_env`); token values are resolved later, once,
//! by [`crate::resolve`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bot_bottle_sdk::{
    AgentProvider, AgentProvisionPlan, EgressPlan, EgressRoute, ImageSpec, Mount, PluginError,
    ProviderOptions, ProvisionRequest, ProvisionedFile, RouteSpec, SlotAuth,
};
use serde::Serialize;

/// How one `env` entry of a bottle gets its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "from", content = "value")]
pub enum EnvSource {
    /// A literal value.
    Literal(String),
    /// Copied from this host variable at launch.
    HostVar(String),
    /// Asked for on the terminal at launch, with this prompt.
    Prompt(Option<String>),
}

/// What [`prepare`] needs, taken from the manifest and the command line.
#[derive(Clone, Debug, Default)]
pub struct PlanInput {
    /// Agent name.
    pub agent: String,
    /// Bottles merged for this launch.
    pub bottles: Vec<String>,
    /// The agent file's body.
    pub system_prompt: Option<String>,
    /// Skills to copy from `~/.claude/skills/`.
    pub skills: Vec<String>,
    /// `agent_provider` options.
    pub provider: ProviderOptions,
    /// `agent_provider.dockerfile`, absolute.
    pub dockerfile: Option<PathBuf>,
    /// `image`: a prebuilt image.
    pub image: Option<String>,
    /// The bottle's `env`.
    pub env: BTreeMap<String, EnvSource>,
    /// The bottle's egress routes.
    pub routes: Vec<RouteSpec>,
    /// `egress.log`.
    pub egress_log: u8,
    /// `mounts`.
    pub mounts: Vec<Mount>,
    /// Host directory mounted as the workspace.
    pub workspace: Option<PathBuf>,
    /// `--prompt` of a headless run.
    pub headless_prompt: Option<String>,
}

/// Protections the earlier implementation applied that this version does not
/// enforce yet. Shown in the preflight and in `--dry-run` so nobody assumes
/// them.
pub const INACTIVE_PROTECTIONS: &[&str] = &[
    "outbound DLP (token-pattern and known-secret scanning of request bodies)",
    "inbound prompt-injection detection on responses",
    "supervise plane (operator approval of blocked requests)",
    "git-gate (gitleaks-scanned pushes through a gate)",
];

/// Where the agent's workspace is mounted.
pub const WORKDIR: &str = "/workspace";

/// The prepared launch: everything but secret values.
#[derive(Clone, Debug, Serialize)]
pub struct LaunchPlan {
    /// Agent name.
    pub agent: String,
    /// Bottles merged for this launch.
    pub bottles: Vec<String>,
    /// Provider name.
    pub provider: String,
    /// What the provider contributes (its `provisioned_env` is serialized by
    /// name only, see [`LaunchPlan::redacted_json`]).
    pub agent_provision: AgentProvisionPlan,
    /// Routes and token slots.
    pub egress_plan: EgressPlan,
    /// `egress.log`.
    pub egress_log: u8,
    /// The agent image.
    pub image: ImageSpec,
    /// The agent command.
    pub command: Vec<String>,
    /// The agent user.
    pub user: String,
    /// Agent working directory.
    pub workdir: String,
    /// Workspace mount.
    pub workspace: Option<Mount>,
    /// Extra mounts.
    pub mounts: Vec<Mount>,
    /// The bottle's `env` (values resolved at launch).
    pub env: BTreeMap<String, EnvSource>,
    /// Files placed in the sandbox (provider files and skills).
    pub files: Vec<ProvisionedFile>,
    /// Manifest routes dropped because a provider owns their host.
    pub shadowed_routes: Vec<String>,
}

/// A plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The provider refused.
    #[error("agent provider `{provider}`: {error}{}", .error.hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Provider {
        /// Provider name.
        provider: String,
        /// Its error.
        error: PluginError,
    },
    /// A skill is missing on the host.
    #[error("skill `{name}` (agent `{agent}`) not found: expected a directory at {}", .path.display())]
    MissingSkill {
        /// Agent name.
        agent: String,
        /// Skill name.
        name: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("reading {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// No image could be determined.
    #[error(
        "no image for provider `{0}`: set `image:` or `agent_provider.dockerfile` in the bottle"
    )]
    NoImage(String),
    /// No command could be determined.
    #[error("no command for provider `{0}`: set agent_provider.settings.command")]
    NoCommand(String),
}

/// The host facts prepare may use.
#[derive(Clone, Debug, Default)]
pub struct HostContext {
    /// The user's home directory.
    pub home: PathBuf,
    /// Provider-relevant host variables (see
    /// [`crate::provider::PROVIDER_HOST_VARS`]).
    pub provider_vars: BTreeMap<String, String>,
}

/// Builds the launch plan.
pub fn prepare(
    input: &PlanInput,
    provider: &dyn AgentProvider,
    host: &HostContext,
) -> Result<LaunchPlan, PlanError> {
    let info = provider.info();
    let provider_name = input.provider.template.clone();
    let request = ProvisionRequest {
        agent: input.agent.clone(),
        options: input.provider.clone(),
        system_prompt: input.system_prompt.clone(),
        host_home: host.home.clone(),
        host_vars: host.provider_vars.clone(),
        headless_prompt: input.headless_prompt.clone(),
    };
    let mut provision = provider
        .provision(&request)
        .map_err(|error| PlanError::Provider {
            provider: provider_name.clone(),
            error,
        })?;
    let (egress_plan, shadowed_routes) = plan_egress(&provision.routes, &input.routes);

    let image = if let Some(reference) = &input.image {
        ImageSpec::Image {
            reference: reference.clone(),
        }
    } else if let Some(path) = &input.dockerfile {
        let dockerfile = std::fs::read_to_string(path).map_err(|source| PlanError::Io {
            path: path.clone(),
            source,
        })?;
        ImageSpec::Dockerfile {
            dockerfile,
            context: path.parent().map(Path::to_path_buf),
        }
    } else if let Some(dockerfile) = &info.dockerfile {
        ImageSpec::Dockerfile {
            dockerfile: dockerfile.clone(),
            context: None,
        }
    } else {
        return Err(PlanError::NoImage(provider_name));
    };

    let command = provision
        .command
        .clone()
        .unwrap_or_else(|| info.command.clone());
    if command.is_empty() {
        return Err(PlanError::NoCommand(provider_name));
    }
    let user = provision.user.clone().unwrap_or_else(|| info.user.clone());
    let home = if info.home.is_empty() {
        "/home/agent".to_string()
    } else {
        info.home.clone()
    };

    let mut files = std::mem::take(&mut provision.files);
    for skill in &input.skills {
        let dir = host.home.join(".claude/skills").join(skill);
        if !dir.is_dir() {
            return Err(PlanError::MissingSkill {
                agent: input.agent.clone(),
                name: skill.clone(),
                path: dir,
            });
        }
        collect_files(&dir, &format!("{home}/.claude/skills/{skill}"), &mut files)?;
    }
    provision.files = Vec::new();

    Ok(LaunchPlan {
        agent: input.agent.clone(),
        bottles: input.bottles.clone(),
        provider: provider_name,
        agent_provision: provision,
        egress_plan,
        egress_log: input.egress_log,
        image,
        command,
        user,
        workdir: WORKDIR.to_string(),
        workspace: input.workspace.as_ref().map(|p| Mount {
            source: p.clone(),
            target: WORKDIR.to_string(),
            read_only: false,
        }),
        mounts: input.mounts.clone(),
        env: input.env.clone(),
        files,
        shadowed_routes,
    })
}

fn collect_files(
    dir: &Path,
    target: &str,
    out: &mut Vec<ProvisionedFile>,
) -> Result<(), PlanError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PlanError::Io { path, source }
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let file_type = entry.file_type().map_err(io(&path))?;
        if file_type.is_dir() {
            collect_files(&path, &format!("{target}/{name}"), out)?;
        } else if file_type.is_file() {
            let contents = std::fs::read(&path).map_err(io(&path))?;
            out.push(ProvisionedFile::new(format!("{target}/{name}"), contents));
        }
    }
    Ok(())
}

/// Merges provider and manifest routes and assigns token slots.
///
/// A provider route owns its host outright; a manifest route for the same
/// host is dropped (and reported). Each distinct token ref gets one
/// `EGRESS_TOKEN_<N>` slot, numbered in order of first use.
pub fn plan_egress(provider: &[RouteSpec], manifest: &[RouteSpec]) -> (EgressPlan, Vec<String>) {
    let owned: Vec<&str> = provider.iter().map(|r| r.host.as_str()).collect();
    let mut shadowed = Vec::new();
    let mut specs: Vec<&RouteSpec> = provider.iter().collect();
    for route in manifest {
        if owned.contains(&route.host.as_str()) {
            shadowed.push(route.host.clone());
        } else {
            specs.push(route);
        }
    }
    let mut slots: Vec<String> = Vec::new();
    let mut plan = EgressPlan::default();
    for spec in specs {
        let auth = spec.auth.as_ref().map(|a| {
            let n = match slots.iter().position(|r| r == &a.token_ref) {
                Some(n) => n,
                None => {
                    slots.push(a.token_ref.clone());
                    slots.len() - 1
                }
            };
            let slot = bot_bottle_sdk::egress::token_slot_name(n);
            plan.token_env_map.insert(slot.clone(), a.token_ref.clone());
            SlotAuth {
                scheme: a.scheme,
                token_env: slot,
            }
        });
        plan.routes.push(EgressRoute {
            host: spec.host.clone(),
            port: spec.port,
            auth,
            matches: spec.matches.clone(),
            allow_private: spec.allow_private,
            origin: spec.origin.clone(),
        });
    }
    (plan, shadowed)
}

impl LaunchPlan {
    /// The plan as JSON for `--dry-run --json`: every secret value is
    /// `"<redacted>"`, provisioned values and token slots are shown by name.
    pub fn redacted_json(&self, backend: &str, token_slots: &[&str]) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("a plan serializes");
        let provisioned: serde_json::Map<String, serde_json::Value> = self
            .agent_provision
            .provisioned_env
            .names()
            .map(|n| (n.to_string(), "<redacted>".into()))
            .collect();
        v["agent_provision"]["provisioned_env"] = provisioned.into();
        // File contents may be dummy auth files; show paths and sizes only.
        v["files"] = self
            .files
            .iter()
            .map(|f| serde_json::json!({"path": f.path, "bytes": f.contents.len(), "mode": format!("{:o}", f.mode)}))
            .collect();
        v["agent_provision"]["files"] = serde_json::Value::Array(Vec::new());
        let hidden = &self.agent_provision.hidden_env_names;
        if let Some(env) = v["agent_provision"]["env"].as_object_mut() {
            for (k, val) in env.iter_mut() {
                if hidden.contains(k) {
                    *val = "<redacted>".into();
                }
            }
        }
        v["token_values"] = token_slots
            .iter()
            .map(|s| (s.to_string(), serde_json::Value::from("<redacted>")))
            .collect::<serde_json::Map<_, _>>()
            .into();
        v["backend"] = backend.into();
        v["inactive_protections"] = INACTIVE_PROTECTIONS.to_vec().into();
        if matches!(self.image, ImageSpec::Dockerfile { .. }) {
            v["image"]["dockerfile"] = "<dockerfile text>".into();
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bot_bottle_sdk::{AuthScheme, DeclaredAuth, RouteOrigin};

    fn route(host: &str, token_ref: Option<&str>, origin: RouteOrigin) -> RouteSpec {
        RouteSpec {
            host: host.into(),
            port: None,
            auth: token_ref.map(|r| DeclaredAuth {
                scheme: AuthScheme::Bearer,
                token_ref: r.into(),
            }),
            matches: vec![],
            allow_private: false,
            origin,
        }
    }

    #[test]
    fn provider_routes_own_their_host_and_slots_are_shared_per_ref() {
        let provider = vec![route(
            "api.openai.com",
            Some("CODEX_HOST_CREDENTIAL"),
            RouteOrigin::Provider("codex".into()),
        )];
        let manifest = vec![
            route("api.openai.com", Some("OPENAI_KEY"), RouteOrigin::Manifest),
            route("git.example.com", Some("GITEA"), RouteOrigin::Manifest),
            route("api.example.com", Some("GITEA"), RouteOrigin::Manifest),
            route("pypi.org", None, RouteOrigin::Manifest),
        ];
        let (plan, shadowed) = plan_egress(&provider, &manifest);
        assert_eq!(shadowed, vec!["api.openai.com"]);
        let hosts: Vec<_> = plan.routes.iter().map(|r| r.host.as_str()).collect();
        assert_eq!(
            hosts,
            [
                "api.openai.com",
                "git.example.com",
                "api.example.com",
                "pypi.org"
            ]
        );
        assert_eq!(plan.token_env_map.len(), 2);
        assert_eq!(
            plan.token_env_map["EGRESS_TOKEN_0"],
            "CODEX_HOST_CREDENTIAL"
        );
        assert_eq!(plan.token_env_map["EGRESS_TOKEN_1"], "GITEA");
        assert_eq!(
            plan.routes[2].auth.as_ref().unwrap().token_env,
            "EGRESS_TOKEN_1"
        );
        assert!(plan.routes[3].auth.is_none());
    }
}
