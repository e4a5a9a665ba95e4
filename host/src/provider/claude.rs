use bot_bottle_sdk::{
    AgentProvider, AgentProvisionPlan, PluginResult, ProviderInfo, ProvisionRequest,
};

use super::{bearer_route, headless_command, prompt_file, reject_option};

/// Claude Code. With `auth_token: HOST_VAR` the provider owns the
/// `api.anthropic.com` route and the proxy sends the host token as Bearer;
/// the agent holds only a placeholder.
pub struct ClaudeProvider;

/// The placeholder the agent sees instead of a real OAuth token.
pub const CLAUDE_PLACEHOLDER_TOKEN: &str = "bot-bottle-placeholder-injected-by-egress";

const HOME: &str = "/home/node";

impl AgentProvider for ClaudeProvider {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: "claude".into(),
            description: "Claude Code (Anthropic)".into(),
            dockerfile: Some(include_str!("../../assets/Dockerfile.claude").into()),
            command: vec!["claude".into(), "--dangerously-skip-permissions".into()],
            headless_command: vec![
                "claude".into(),
                "--dangerously-skip-permissions".into(),
                "-p".into(),
            ],
            user: "node".into(),
            home: HOME.into(),
        }
    }

    fn provision(&self, request: &ProvisionRequest) -> PluginResult<AgentProvisionPlan> {
        if request.options.forward_host_credentials {
            return Err(reject_option(
                request,
                "forward_host_credentials",
                "use `auth_token: HOST_VAR` to inject a token for api.anthropic.com",
            ));
        }
        let mut plan = AgentProvisionPlan::default();
        // Claude Code phones home for telemetry and updates; none of that is
        // on an allowed route, so turn it off instead of logging refusals.
        plan.env.insert(
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
            "1".into(),
        );
        plan.env.insert("DISABLE_AUTOUPDATER".into(), "1".into());
        if let Some(var) = &request.options.auth_token {
            plan.env.insert(
                "CLAUDE_CODE_OAUTH_TOKEN".into(),
                CLAUDE_PLACEHOLDER_TOKEN.into(),
            );
            plan.hidden_env_names.push("CLAUDE_CODE_OAUTH_TOKEN".into());
            plan.routes
                .push(bearer_route("api.anthropic.com", var, "claude"));
        }
        if let Some(file) = prompt_file(&format!("{HOME}/.claude/CLAUDE.md"), request) {
            plan.files.push(file);
        }
        plan.command = headless_command(self.info().headless_command, request);
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bot_bottle_sdk::ProviderOptions;

    fn request(auth_token: Option<&str>) -> ProvisionRequest {
        ProvisionRequest {
            agent: "a".into(),
            options: ProviderOptions {
                template: "claude".into(),
                auth_token: auth_token.map(Into::into),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn auth_token_adds_an_owned_route_and_a_placeholder() {
        let plan = ClaudeProvider.provision(&request(Some("MY_KEY"))).unwrap();
        assert_eq!(plan.routes.len(), 1);
        assert_eq!(plan.routes[0].host, "api.anthropic.com");
        assert_eq!(plan.routes[0].auth.as_ref().unwrap().token_ref, "MY_KEY");
        assert_eq!(
            plan.env["CLAUDE_CODE_OAUTH_TOKEN"],
            CLAUDE_PLACEHOLDER_TOKEN
        );
        assert!(plan.provisioned_env.is_empty());
    }

    #[test]
    fn without_auth_token_there_is_no_route() {
        let plan = ClaudeProvider.provision(&request(None)).unwrap();
        assert!(plan.routes.is_empty());
        assert!(!plan.env.contains_key("CLAUDE_CODE_OAUTH_TOKEN"));
    }
}
