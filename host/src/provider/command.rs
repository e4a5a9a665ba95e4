use bot_bottle_sdk::{
    AgentProvider, AgentProvisionPlan, PluginError, PluginResult, ProviderInfo, ProvisionRequest,
};
use serde_json::Value;

use super::reject_option;

/// Any command: `agent_provider: {template: command, settings: {command:
/// [...], user: "1000:1000"}}` together with the bottle's `image:`. A
/// headless prompt reaches the command as `BOT_BOTTLE_PROMPT`.
pub struct CommandProvider;

impl AgentProvider for CommandProvider {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: "command".into(),
            description: "Any command in the bottle's image".into(),
            ..Default::default()
        }
    }

    fn provision(&self, request: &ProvisionRequest) -> PluginResult<AgentProvisionPlan> {
        let opts = &request.options;
        if opts.forward_host_credentials {
            return Err(reject_option(
                request,
                "forward_host_credentials",
                "declare an egress route with `auth` instead",
            ));
        }
        if opts.auth_token.is_some() {
            return Err(reject_option(
                request,
                "auth_token",
                "declare an egress route with `auth` instead",
            ));
        }
        for key in opts.settings.keys() {
            if !matches!(key.as_str(), "command" | "user") {
                return Err(PluginError::invalid_config(format!(
                    "agent_provider.settings.{key} is not a setting of the `command` provider; allowed: command, user"
                )));
            }
        }
        let command = match opts.settings.get("command") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>(),
            Some(Value::String(s)) if !s.is_empty() => Some(vec![s.clone()]),
            _ => None,
        }
        .ok_or_else(|| {
            PluginError::invalid_config(
                "agent_provider.settings.command is required by the `command` provider: a non-empty list of strings",
            )
        })?;
        let user = match opts.settings.get("user") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(PluginError::invalid_config(
                    "agent_provider.settings.user must be a string such as \"1000:1000\"",
                ))
            }
        };
        let mut plan = AgentProvisionPlan {
            command: Some(command),
            user,
            ..Default::default()
        };
        if let Some(prompt) = &request.headless_prompt {
            plan.env.insert("BOT_BOTTLE_PROMPT".into(), prompt.clone());
        }
        Ok(plan)
    }
}
