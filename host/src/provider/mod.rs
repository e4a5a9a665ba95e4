//! Built-in agent providers.
//!
//! They implement the SDK's [`AgentProvider`] like any plugin provider, but
//! run in the host, which is trusted: the Codex provider is the one place that
//! reads the host's Codex login (`forward_host_credentials`).

mod claude;
mod codex;
mod command;

use std::collections::BTreeMap;

use bot_bottle_sdk::{AgentProvider, PluginError, ProvisionRequest};

pub use claude::ClaudeProvider;
pub use codex::{CodexProvider, CODEX_HOSTS, CODEX_HOST_CREDENTIAL_TOKEN_REF};
pub use command::CommandProvider;

/// Names of the built-in providers; a plugin cannot shadow them.
pub const BUILTIN_PROVIDERS: &[&str] = &["claude", "codex", "command"];

/// The built-in provider called `name`.
pub fn builtin(name: &str) -> Option<Box<dyn AgentProvider>> {
    match name {
        "claude" => Some(Box::new(ClaudeProvider)),
        "codex" => Some(Box::new(CodexProvider)),
        "command" => Some(Box::new(CommandProvider)),
        _ => None,
    }
}

/// Host variables a provider may look at. Only these are passed to
/// providers, never the whole environment.
pub const PROVIDER_HOST_VARS: &[&str] = &["CODEX_HOME"];

/// Picks [`PROVIDER_HOST_VARS`] out of an environment.
pub fn provider_host_vars(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    PROVIDER_HOST_VARS
        .iter()
        .filter_map(|k| env.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

fn reject_option(request: &ProvisionRequest, key: &str, why: &str) -> PluginError {
    PluginError::invalid_config(format!(
        "agent_provider.{key} is not supported by the `{}` provider: {why}",
        request.options.template
    ))
}

/// The system prompt file, when the agent has a prompt.
fn prompt_file(path: &str, request: &ProvisionRequest) -> Option<bot_bottle_sdk::ProvisionedFile> {
    request
        .system_prompt
        .as_ref()
        .filter(|p| !p.trim().is_empty())
        .map(|p| bot_bottle_sdk::ProvisionedFile::new(path, p.as_bytes().to_vec()))
}

/// A provider-owned route that injects `token_ref` as a Bearer token.
fn bearer_route(host: &str, token_ref: &str, provider: &str) -> bot_bottle_sdk::RouteSpec {
    bot_bottle_sdk::RouteSpec {
        host: host.into(),
        port: None,
        auth: Some(bot_bottle_sdk::DeclaredAuth {
            scheme: bot_bottle_sdk::AuthScheme::Bearer,
            token_ref: token_ref.into(),
        }),
        matches: Vec::new(),
        allow_private: false,
        origin: bot_bottle_sdk::RouteOrigin::Provider(provider.into()),
    }
}

/// The headless command with the prompt appended, for a headless launch.
fn headless_command(mut prefix: Vec<String>, request: &ProvisionRequest) -> Option<Vec<String>> {
    let prompt = request.headless_prompt.as_ref()?;
    prefix.push(prompt.clone());
    Some(prefix)
}
