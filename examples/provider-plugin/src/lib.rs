//! `aider`: an agent provider for [Aider](https://aider.chat), the
//! terminal pair-programming tool.
//!
//! ```yaml
//! agent_provider:
//!   template: aider
//!   auth_token: OPENAI_API_KEY      # a host variable; the agent never sees it
//!   settings:
//!     model: gpt-4o                 # optional, passed as --model
//! ```
//!
//! The agent gets a placeholder `OPENAI_API_KEY`; the provider declares the
//! `api.openai.com` route with `auth_token` as its credential, so the egress
//! proxy replaces the placeholder with the real key on the way out.
//!
//! It is also the smallest complete example of an agent-provider plugin
//! built only against `bot-bottle-sdk`.

use bot_bottle_sdk::prelude::*;

/// The provider.
pub struct Aider;

/// What the agent sees instead of the real key.
pub const PLACEHOLDER_KEY: &str = "sk-bot-bottle-placeholder-injected-by-egress";

/// The OpenAI API host the key is injected for.
pub const OPENAI_HOST: &str = "api.openai.com";

const HOME: &str = "/home/aider";

const DOCKERFILE: &str = r#"FROM python:3.12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir aider-chat
RUN useradd --create-home --home-dir /home/aider --shell /bin/bash aider
USER aider
WORKDIR /workspace
"#;

/// Settings keys this provider understands.
const SETTINGS: &[&str] = &["model"];

fn invalid(request: &ProvisionRequest, key: &str, what: &str) -> PluginError {
    PluginError::invalid_config(format!(
        "agent `{}`: agent_provider.{key} {what}",
        request.agent
    ))
}

impl AgentProvider for Aider {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: "aider".into(),
            description: "Aider (aider-chat), with the OpenAI key injected by the egress proxy"
                .into(),
            dockerfile: Some(DOCKERFILE.into()),
            command: vec!["aider".into()],
            headless_command: vec!["aider".into(), "--yes-always".into(), "--message".into()],
            user: "aider".into(),
            home: HOME.into(),
        }
    }

    fn provision(&self, request: &ProvisionRequest) -> PluginResult<AgentProvisionPlan> {
        let options = &request.options;
        if options.forward_host_credentials {
            return Err(invalid(
                request,
                "forward_host_credentials",
                "is not supported by `aider`; use `auth_token: HOST_VAR` (a host variable holding an OpenAI API key)",
            ));
        }
        if let Some(key) = options
            .settings
            .keys()
            .find(|k| !SETTINGS.contains(&k.as_str()))
        {
            return Err(invalid(
                request,
                &format!("settings.{key}"),
                &format!("is unknown; allowed: {}", SETTINGS.join(", ")),
            ));
        }
        let model = match options.settings.get("model") {
            None => None,
            Some(serde_json::Value::String(m)) if !m.is_empty() => Some(m.clone()),
            Some(_) => {
                return Err(invalid(
                    request,
                    "settings.model",
                    "must be a non-empty string",
                ))
            }
        };

        let mut plan = AgentProvisionPlan::default();
        // Aider checks PyPI for updates and sends analytics; neither is on
        // an allowed route, so turn them off instead of logging refusals.
        plan.env.insert("AIDER_CHECK_UPDATE".into(), "false".into());
        plan.env
            .insert("AIDER_ANALYTICS_DISABLE".into(), "true".into());
        plan.env.insert("AIDER_GITIGNORE".into(), "false".into());
        if let Some(var) = &options.auth_token {
            plan.env
                .insert("OPENAI_API_KEY".into(), PLACEHOLDER_KEY.into());
            plan.hidden_env_names.push("OPENAI_API_KEY".into());
            plan.routes.push(RouteSpec {
                host: OPENAI_HOST.into(),
                port: None,
                auth: Some(DeclaredAuth {
                    scheme: AuthScheme::Bearer,
                    token_ref: var.clone(),
                }),
                matches: Vec::new(),
                allow_private: false,
                origin: RouteOrigin::Provider("aider".into()),
            });
        }

        let mut command = match &request.headless_prompt {
            Some(_) => self.info().headless_command,
            None => self.info().command,
        };
        // The prompt goes last, after any flags.
        let prompt = if command.last().is_some_and(|c| c == "--message") {
            command.pop()
        } else {
            None
        };
        if let Some(m) = model {
            command.extend(["--model".into(), m]);
        }
        if let Some(system) = request
            .system_prompt
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            let path = format!("{HOME}/.bot-bottle/CONVENTIONS.md");
            plan.files.push(ProvisionedFile::new(
                path.clone(),
                system.as_bytes().to_vec(),
            ));
            command.extend(["--read".into(), path]);
        }
        if let (Some(flag), Some(text)) = (prompt, &request.headless_prompt) {
            command.extend([flag, text.clone()]);
        }
        plan.command = Some(command);
        Ok(plan)
    }
}

/// The plugin library.
pub struct AiderPlugin;

impl Plugin for AiderPlugin {
    fn manifest() -> PluginManifest {
        PluginManifest {
            name: "aider".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "agent provider for Aider (aider-chat)".into(),
            providers: vec!["aider".into()],
            ..Default::default()
        }
    }

    fn open_provider(name: &str) -> PluginResult<Box<dyn AgentProvider>> {
        match name {
            "aider" => Ok(Box::new(Aider)),
            other => Err(PluginError::not_found(format!(
                "this plugin provides agent provider `aider`, not `{other}`"
            ))),
        }
    }
}

bot_bottle_sdk::export_plugin!(AiderPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn request(auth_token: Option<&str>, settings: serde_json::Value) -> ProvisionRequest {
        ProvisionRequest {
            agent: "pair".into(),
            options: ProviderOptions {
                template: "aider".into(),
                auth_token: auth_token.map(Into::into),
                settings: settings.as_object().cloned().unwrap_or_default(),
                ..Default::default()
            },
            system_prompt: Some("Prefer small commits.".into()),
            ..Default::default()
        }
    }

    #[test]
    fn auth_token_adds_an_injected_openai_route_and_only_a_placeholder() {
        let plan = Aider
            .provision(&request(Some("MY_OPENAI_KEY"), serde_json::json!({})))
            .unwrap();
        assert_eq!(plan.routes.len(), 1);
        let route = &plan.routes[0];
        assert_eq!(route.host, OPENAI_HOST);
        let auth = route.auth.as_ref().unwrap();
        assert_eq!(auth.token_ref, "MY_OPENAI_KEY");
        assert_eq!(auth.scheme, AuthScheme::Bearer);
        assert_eq!(plan.env["OPENAI_API_KEY"], PLACEHOLDER_KEY);
        // A provider never resolves the manifest's token itself.
        assert!(plan.provisioned_env.is_empty());
    }

    #[test]
    fn without_auth_token_there_is_no_route_and_no_key() {
        let plan = Aider
            .provision(&request(None, serde_json::json!({})))
            .unwrap();
        assert!(plan.routes.is_empty());
        assert!(!plan.env.contains_key("OPENAI_API_KEY"));
    }

    #[test]
    fn the_command_carries_model_conventions_and_prompt_last() {
        let mut r = request(Some("K"), serde_json::json!({"model": "gpt-4o"}));
        r.headless_prompt = Some("fix the tests".into());
        let plan = Aider.provision(&r).unwrap();
        let command = plan.command.unwrap();
        assert_eq!(command.first().map(String::as_str), Some("aider"));
        assert!(command.windows(2).any(|w| w == ["--model", "gpt-4o"]));
        assert_eq!(
            &command[command.len() - 2..],
            ["--message", "fix the tests"]
        );
        assert_eq!(plan.files.len(), 1);
        assert!(command.contains(&plan.files[0].path));
    }

    #[test]
    fn unknown_settings_and_host_credentials_are_refused_by_name() {
        let e = Aider
            .provision(&request(None, serde_json::json!({"modle": "x"})))
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        assert!(e.message.contains("settings.modle") && e.message.contains("model"));
        let mut r = request(None, serde_json::json!({}));
        r.options.forward_host_credentials = true;
        let e = Aider.provision(&r).unwrap_err();
        assert!(e.message.contains("forward_host_credentials"));
    }
}
