use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bot_bottle_sdk::{
    AgentProvider, AgentProvisionPlan, ErrorKind, PluginError, PluginResult, ProviderInfo,
    ProvisionRequest, ProvisionedFile, Secret,
};
use serde_json::{json, Map, Value};

use super::{bearer_route, headless_command, prompt_file, reject_option};

/// The token ref under which the host's Codex access token is provisioned.
/// Resolution treats it like any other ref; only this provider fills it.
pub const CODEX_HOST_CREDENTIAL_TOKEN_REF: &str = "CODEX_HOST_CREDENTIAL";

/// Hosts the Codex CLI talks to with its ChatGPT login.
pub const CODEX_HOSTS: &[&str] = &["api.openai.com", "chatgpt.com"];

const HOME: &str = "/home/node";
const PLACEHOLDER: &str = "bot-bottle-placeholder";

/// The OpenAI Codex CLI. With `forward_host_credentials: true` the host's
/// ChatGPT login is read at prepare time and goes only to the egress proxy;
/// the agent gets a look-alike `auth.json` with placeholder tokens.
pub struct CodexProvider;

impl AgentProvider for CodexProvider {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: "codex".into(),
            description: "OpenAI Codex CLI".into(),
            dockerfile: Some(include_str!("../../assets/Dockerfile.codex").into()),
            command: vec![
                "codex".into(),
                "--dangerously-bypass-approvals-and-sandbox".into(),
            ],
            headless_command: vec![
                "codex".into(),
                "exec".into(),
                "--dangerously-bypass-approvals-and-sandbox".into(),
            ],
            user: "node".into(),
            home: HOME.into(),
        }
    }

    fn provision(&self, request: &ProvisionRequest) -> PluginResult<AgentProvisionPlan> {
        if request.options.auth_token.is_some() {
            return Err(reject_option(
                request,
                "auth_token",
                "use `forward_host_credentials: true`, or an egress route with `auth` for api.openai.com",
            ));
        }
        let mut plan = AgentProvisionPlan::default();
        if request.options.forward_host_credentials {
            let path = auth_path(request);
            let login = HostLogin::read(&path)?;
            plan.files.push(
                ProvisionedFile::new(format!("{HOME}/.codex/auth.json"), login.dummy_auth_json())
                    .with_mode(0o600),
            );
            plan.provisioned_env
                .insert(CODEX_HOST_CREDENTIAL_TOKEN_REF, login.access_token);
            for host in CODEX_HOSTS {
                plan.routes
                    .push(bearer_route(host, CODEX_HOST_CREDENTIAL_TOKEN_REF, "codex"));
            }
        }
        if let Some(file) = prompt_file(&format!("{HOME}/.codex/AGENTS.md"), request) {
            plan.files.push(file);
        }
        plan.command = headless_command(self.info().headless_command, request);
        Ok(plan)
    }
}

fn auth_path(request: &ProvisionRequest) -> PathBuf {
    let codex_home = request
        .host_vars
        .get("CODEX_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| request.host_home.join(".codex"));
    codex_home.join("auth.json")
}

/// The parts of the host's `auth.json` the provider needs.
struct HostLogin {
    access_token: Secret,
    expires_at: u64,
    account_id: Option<String>,
    auth_mode: Option<Value>,
    last_refresh: Option<Value>,
    id_claims: Map<String, Value>,
}

fn credential_error(path: &std::path::Path, what: &str) -> PluginError {
    PluginError::new(
        ErrorKind::Credential,
        format!(
            "agent_provider.forward_host_credentials: the Codex login at {} {what}",
            path.display()
        ),
    )
    .with_hint(
        "run `codex login` on the host (ChatGPT sign-in), or set forward_host_credentials: false",
    )
}

fn jwt_claims(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

impl HostLogin {
    fn read(path: &std::path::Path) -> PluginResult<HostLogin> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(credential_error(path, "does not exist"))
            }
            Err(e) => return Err(credential_error(path, &format!("cannot be read ({e})"))),
        };
        // Parse as an untyped value: typed decoding errors quote the
        // offending value, which here would be a credential.
        let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&text) else {
            return Err(credential_error(path, "is not a JSON object"));
        };
        let tokens = match doc.get("tokens") {
            Some(Value::Object(t)) => t,
            _ => {
                let api_key =
                    matches!(doc.get("OPENAI_API_KEY"), Some(Value::String(s)) if !s.is_empty());
                return Err(credential_error(
                    path,
                    if api_key {
                        "is an API-key login, not a ChatGPT login"
                    } else {
                        "has no `tokens` (not signed in)"
                    },
                ));
            }
        };
        let access_token = match tokens.get("access_token") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(credential_error(path, "has no `tokens.access_token`")),
        };
        let claims = jwt_claims(&access_token)
            .ok_or_else(|| credential_error(path, "has an access token that is not a JWT"))?;
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| credential_error(path, "has an access token without `exp`"))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if expires_at <= now {
            return Err(credential_error(
                path,
                "has expired (bot-bottle does not refresh it; refresh it on the host and relaunch)",
            ));
        }
        let id_claims = tokens
            .get("id_token")
            .and_then(Value::as_str)
            .and_then(jwt_claims)
            .unwrap_or_default();
        Ok(HostLogin {
            access_token: Secret::new(access_token),
            expires_at,
            account_id: tokens
                .get("account_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            auth_mode: doc.get("auth_mode").cloned(),
            last_refresh: doc.get("last_refresh").cloned(),
            id_claims,
        })
    }

    /// An `auth.json` of the same shape, auth mode and account, whose tokens
    /// are placeholders that expire with the real token, so Codex neither
    /// refuses it nor tries to refresh it.
    fn dummy_auth_json(&self) -> Vec<u8> {
        let mut id_payload = Map::new();
        for key in ["email", "https://api.openai.com/auth"] {
            if let Some(v) = self.id_claims.get(key) {
                id_payload.insert(key.into(), v.clone());
            }
        }
        id_payload.insert("exp".into(), json!(self.expires_at));
        let access_payload = json!({ "exp": self.expires_at, "bot_bottle": "placeholder" });
        let mut tokens = Map::new();
        tokens.insert(
            "id_token".into(),
            json!(placeholder_jwt(&Value::Object(id_payload))),
        );
        tokens.insert(
            "access_token".into(),
            json!(placeholder_jwt(&access_payload)),
        );
        tokens.insert("refresh_token".into(), json!(PLACEHOLDER));
        if let Some(id) = &self.account_id {
            tokens.insert("account_id".into(), json!(id));
        }
        let mut doc = Map::new();
        doc.insert("OPENAI_API_KEY".into(), Value::Null);
        if let Some(mode) = &self.auth_mode {
            doc.insert("auth_mode".into(), mode.clone());
        }
        doc.insert("tokens".into(), Value::Object(tokens));
        if let Some(r) = &self.last_refresh {
            doc.insert("last_refresh".into(), r.clone());
        }
        serde_json::to_vec_pretty(&Value::Object(doc)).expect("a JSON map serializes")
    }
}

fn placeholder_jwt(payload: &Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT"});
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(PLACEHOLDER)
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bot_bottle_sdk::ProviderOptions;

    /// A host `auth.json` with a ChatGPT login whose access token expires at
    /// `exp`; returns (json, access_token).
    pub(crate) fn chatgpt_auth_json(exp: u64) -> (String, String) {
        let access = format!(
            "{}.{}.real-signature-abc123",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp},"sub":"user-1"}}"#))
        );
        let id = format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(
                r#"{"email":"dev@example.com","https://api.openai.com/auth":{"chatgpt_plan_type":"plus"}}"#
            )
        );
        let doc = json!({
            "OPENAI_API_KEY": null,
            "tokens": {"id_token": id, "access_token": access, "refresh_token": "real-refresh-xyz", "account_id": "acct-42"},
            "last_refresh": "2026-12-01T00:00:00Z"
        });
        (doc.to_string(), access)
    }

    fn request(dir: &std::path::Path, forward: bool) -> ProvisionRequest {
        ProvisionRequest {
            agent: "a".into(),
            options: ProviderOptions {
                template: "codex".into(),
                forward_host_credentials: forward,
                ..Default::default()
            },
            host_home: dir.to_path_buf(),
            ..Default::default()
        }
    }

    fn write_auth(dir: &std::path::Path, text: &str) {
        std::fs::create_dir_all(dir.join(".codex")).unwrap();
        std::fs::write(dir.join(".codex/auth.json"), text).unwrap();
    }

    const FAR_FUTURE: u64 = 4_102_444_800; // 2100-01-01

    #[test]
    fn forwarding_provisions_the_access_token_under_the_codex_ref() {
        let dir = tempfile::tempdir().unwrap();
        let (doc, access) = chatgpt_auth_json(FAR_FUTURE);
        write_auth(dir.path(), &doc);
        let plan = CodexProvider.provision(&request(dir.path(), true)).unwrap();
        assert_eq!(
            plan.provisioned_env
                .get(CODEX_HOST_CREDENTIAL_TOKEN_REF)
                .unwrap()
                .expose(),
            access
        );
        let hosts: Vec<_> = plan.routes.iter().map(|r| r.host.as_str()).collect();
        assert_eq!(hosts, CODEX_HOSTS);
        let dummy = &plan.files[0];
        assert_eq!(dummy.path, "/home/node/.codex/auth.json");
        let text = String::from_utf8(dummy.contents.clone()).unwrap();
        assert!(
            !text.contains(&access),
            "the real token leaked into the dummy"
        );
        assert!(!text.contains("real-refresh-xyz"));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["tokens"]["account_id"], "acct-42");
        let claims = jwt_claims(v["tokens"]["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(claims["exp"], FAR_FUTURE);
    }

    #[test]
    fn without_forwarding_nothing_is_provisioned() {
        let dir = tempfile::tempdir().unwrap();
        let (doc, _) = chatgpt_auth_json(FAR_FUTURE);
        write_auth(dir.path(), &doc);
        let plan = CodexProvider
            .provision(&request(dir.path(), false))
            .unwrap();
        assert!(plan.provisioned_env.is_empty());
        assert!(plan.routes.is_empty());
        assert!(plan.files.is_empty());
    }

    #[test]
    fn codex_home_is_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let (doc, _) = chatgpt_auth_json(FAR_FUTURE);
        std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        std::fs::write(dir.path().join("elsewhere/auth.json"), doc).unwrap();
        let mut req = request(&dir.path().join("nohome"), true);
        req.host_vars.insert(
            "CODEX_HOME".into(),
            dir.path().join("elsewhere").display().to_string(),
        );
        assert!(CodexProvider.provision(&req).is_ok());
    }

    #[test]
    fn bad_host_logins_stop_the_launch_without_echoing_values() {
        let cases: Vec<(String, &str)> = vec![
            (
                r#"{"OPENAI_API_KEY":"sk-secret-apikey","tokens":null}"#.into(),
                "API-key login",
            ),
            ("{not json sk-secret-apikey".into(), "not a JSON object"),
            (
                r#"{"tokens":{"access_token":"sk-secret-apikey"}}"#.into(),
                "not a JWT",
            ),
            (chatgpt_auth_json(1_000).0, "has expired"),
        ];
        for (doc, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            write_auth(dir.path(), &doc);
            let err = CodexProvider
                .provision(&request(dir.path(), true))
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::Credential);
            assert!(err.message.contains(expected), "{}", err.message);
            assert!(!err.message.contains("sk-secret"), "{}", err.message);
            assert!(err.hint.unwrap().contains("codex login"));
        }
        let dir = tempfile::tempdir().unwrap();
        let err = CodexProvider
            .provision(&request(dir.path(), true))
            .unwrap_err();
        assert!(err.message.contains("does not exist"));
    }
}
