//! Integration tests for bot-bottle-manifest: real files in temporary
//! `$HOME` and `$CWD` directories.

use std::fs;
use std::path::{Path, PathBuf};

use bot_bottle_manifest::{AgentOrigin, EnvValue, ManifestError, ManifestIndex};
use bot_bottle_sdk::egress::{
    AuthScheme, DeclaredAuth, HeaderMatch, HeaderMatchType, PathMatch, PathMatchType, RouteOrigin,
};
use tempfile::TempDir;

/// A fake `$HOME` and `$CWD`.
struct Fx {
    home: TempDir,
    cwd: TempDir,
}

impl Fx {
    fn new() -> Fx {
        Fx {
            home: TempDir::new().unwrap(),
            cwd: TempDir::new().unwrap(),
        }
    }

    fn write(&self, path: PathBuf, text: &str) -> PathBuf {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    /// Writes `~/.bot-bottle/bottles/<name>.md` with `yaml` as frontmatter.
    fn bottle(&self, name: &str, yaml: &str) -> PathBuf {
        self.write(
            self.home
                .path()
                .join(format!(".bot-bottle/bottles/{name}.md")),
            &format!("---\n{yaml}---\nNotes nobody parses.\n"),
        )
    }

    fn agent(&self, name: &str, yaml: &str, body: &str) -> PathBuf {
        self.write(
            self.home
                .path()
                .join(format!(".bot-bottle/agents/{name}.md")),
            &format!("---\n{yaml}---\n{body}"),
        )
    }

    fn cwd_agent(&self, name: &str, yaml: &str, body: &str) -> PathBuf {
        self.write(
            self.cwd
                .path()
                .join(format!(".bot-bottle/agents/{name}.md")),
            &format!("---\n{yaml}---\n{body}"),
        )
    }

    fn index(&self) -> ManifestIndex {
        ManifestIndex::discover(self.home.path(), self.cwd.path()).unwrap()
    }

    /// Loads bottle `name` alone and returns the error text.
    fn bottle_err(&self, name: &str) -> String {
        self.index()
            .resolve_bottles(&[name.to_string()])
            .unwrap_err()
            .to_string()
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Asserts the message names the file, the key and every expected fragment.
#[track_caller]
fn assert_names(msg: &str, file: &Path, key: &str, fragments: &[&str]) {
    assert!(
        msg.contains(&file.display().to_string()),
        "no file in: {msg}"
    );
    assert!(msg.contains(key), "no key `{key}` in: {msg}");
    for f in fragments {
        assert!(msg.contains(f), "no `{f}` in: {msg}");
    }
}

mod keys {
    use super::*;

    #[test]
    fn every_bottle_key_parses() {
        let fx = Fx::new();
        fx.bottle(
            "full",
            r#"# a comment
env:
  LITERAL: plain value
  QUOTED: 'single # not a comment'
  COPIED: "${HOST_TOKEN}"
  ASKED: "?"
  ASKED_TEXT: "?Paste the API key"
agent_provider:
  template: codex
  dockerfile: docker/Dockerfile.agent
  auth_token: MY_TOKEN_VAR
  forward_host_credentials: true
  settings: {model: o4, reasoning: {effort: high}, retries: 3}
egress:
  log: 2
  routes:
    - host: API.Example.com
      port: 8443
      auth: {scheme: Bearer, token_ref: EXAMPLE_TOKEN}
      matches:
        - paths: [{type: prefix, value: /v1/}, {type: exact, value: /health}, {type: regex, value: "/items/[0-9]+"}]
          methods: [get, Post]
          headers:
            - {name: X-Kind, value: a}
            - {name: Accept, value: "application/.*", type: regex}
      allow_private: true
    - host: git.example.com
      auth:
        scheme: token
        token_ref: GITEA_TOKEN
supervise: false
git-gate:
  user: {name: Bot, email: bot@example.com}
image: registry.local/agent:1.2
mounts:
  - {source: ~/data, target: /data, read_only: true}
  - source: /srv/cache
    target: /cache
"#,
        );
        let b = fx.index().resolve_bottles(&names(&["full"])).unwrap();
        assert_eq!(b.env["LITERAL"], EnvValue::Literal("plain value".into()));
        assert_eq!(
            b.env["QUOTED"],
            EnvValue::Literal("single # not a comment".into())
        );
        assert_eq!(b.env["COPIED"], EnvValue::HostVar("HOST_TOKEN".into()));
        assert_eq!(b.env["ASKED"], EnvValue::Prompt(None));
        assert_eq!(
            b.env["ASKED_TEXT"],
            EnvValue::Prompt(Some("Paste the API key".into()))
        );

        let p = &b.agent_provider;
        assert_eq!(p.template, "codex");
        assert_eq!(
            p.dockerfile.as_deref(),
            Some(
                fx.home
                    .path()
                    .join(".bot-bottle/bottles/docker/Dockerfile.agent")
                    .as_path()
            )
        );
        assert!(p.dockerfile.as_ref().unwrap().is_absolute());
        assert_eq!(p.auth_token.as_deref(), Some("MY_TOKEN_VAR"));
        assert!(p.forward_host_credentials);
        assert_eq!(
            serde_json::Value::Object(p.settings.clone()),
            serde_json::json!({"model": "o4", "reasoning": {"effort": "high"}, "retries": 3})
        );

        assert_eq!(b.egress.log, 2);
        let r = &b.egress.routes[0];
        assert_eq!(r.host, "api.example.com");
        assert_eq!(r.port, Some(8443));
        assert_eq!(
            r.auth,
            Some(DeclaredAuth {
                scheme: AuthScheme::Bearer,
                token_ref: "EXAMPLE_TOKEN".into()
            })
        );
        assert!(r.allow_private);
        assert_eq!(r.origin, RouteOrigin::Manifest);
        let m = &r.matches[0];
        assert_eq!(
            m.paths,
            vec![
                PathMatch {
                    kind: PathMatchType::Prefix,
                    value: "/v1/".into()
                },
                PathMatch {
                    kind: PathMatchType::Exact,
                    value: "/health".into()
                },
                PathMatch {
                    kind: PathMatchType::Regex,
                    value: "/items/[0-9]+".into()
                },
            ]
        );
        assert_eq!(m.methods, vec!["GET", "POST"]);
        assert_eq!(
            m.headers,
            vec![
                HeaderMatch {
                    name: "X-Kind".into(),
                    value: "a".into(),
                    kind: HeaderMatchType::Exact
                },
                HeaderMatch {
                    name: "Accept".into(),
                    value: "application/.*".into(),
                    kind: HeaderMatchType::Regex
                },
            ]
        );
        let r2 = &b.egress.routes[1];
        assert_eq!(r2.auth.as_ref().unwrap().scheme, AuthScheme::Token);
        assert!(r2.matches.is_empty() && r2.port.is_none() && !r2.allow_private);

        assert!(!b.supervise);
        assert_eq!(b.git_user.name.as_deref(), Some("Bot"));
        assert_eq!(b.git_user.email.as_deref(), Some("bot@example.com"));
        assert_eq!(b.image.as_deref(), Some("registry.local/agent:1.2"));
        assert_eq!(b.mounts[0].source, fx.home.path().join("data"));
        assert_eq!(b.mounts[0].target, "/data");
        assert!(b.mounts[0].read_only);
        assert_eq!(b.mounts[1].source, PathBuf::from("/srv/cache"));
        assert!(!b.mounts[1].read_only);
    }

    #[test]
    fn empty_bottle_gets_defaults() {
        let fx = Fx::new();
        fx.bottle("empty", "");
        let b = fx.index().resolve_bottles(&names(&["empty"])).unwrap();
        assert_eq!(b.agent_provider.template, "claude");
        assert!(b.env.is_empty() && b.egress.routes.is_empty() && b.mounts.is_empty());
        assert_eq!(b.egress.log, 0);
        assert!(b.image.is_none() && b.git_user.name.is_none());
    }

    #[test]
    fn agent_keys_and_prompt() {
        let fx = Fx::new();
        fx.bottle(
            "base",
            "git-gate:\n  user: {name: Bottle Bot, email: bottle@example.com}\n",
        );
        fx.agent(
            "dev",
            "name: dev\ndescription: A helper\nmodel: opus\ncolor: blue\nmemory: user\ntools: [Read, Write]\nbottle: base\nskills:\n  - pdf\n  - review.v2\ngit-gate:\n  user:\n    email: agent@example.com\n",
            "\n\n  You are a careful developer.\n\nBe brief.\n\n",
        );
        let m = fx.index().load("dev", &[]).unwrap();
        assert_eq!(m.agent.name, "dev");
        assert_eq!(
            m.agent.system_prompt,
            "You are a careful developer.\n\nBe brief."
        );
        assert_eq!(m.agent.skills, names(&["pdf", "review.v2"]));
        assert_eq!(m.agent_origin, AgentOrigin::Home);
        assert_eq!(m.bottle_names, names(&["base"]));
        // The agent's email wins; the bottle's name fills the gap.
        assert_eq!(m.bottle.git_user.name.as_deref(), Some("Bottle Bot"));
        assert_eq!(
            m.bottle.git_user.email.as_deref(),
            Some("agent@example.com")
        );
    }

    #[test]
    fn empty_agent_git_field_does_not_clear_the_bottles() {
        let fx = Fx::new();
        fx.bottle("base", "git-gate: {user: {name: B, email: b@x}}\n");
        fx.agent(
            "dev",
            "bottle: base\ngit-gate: {user: {name: '', email: a@x}}\n",
            "",
        );
        let m = fx.index().load("dev", &[]).unwrap();
        assert_eq!(m.bottle.git_user.name.as_deref(), Some("B"));
        assert_eq!(m.bottle.git_user.email.as_deref(), Some("a@x"));
    }

    #[test]
    fn bottle_override_wins_over_agent_bottle() {
        let fx = Fx::new();
        fx.bottle("a", "env: {WHO: a}\n");
        fx.bottle("b", "env: {WHO: b}\n");
        fx.bottle("c", "env: {WHO: c, C: '1'}\n");
        fx.agent("dev", "bottle: a\n", "");
        let idx = fx.index();
        let m = idx.load("dev", &names(&["b", "c"])).unwrap();
        assert_eq!(m.bottle_names, names(&["b", "c"]));
        assert_eq!(m.bottle.env["WHO"], EnvValue::Literal("c".into()));
        assert_eq!(
            idx.load("dev", &[]).unwrap().bottle.env["WHO"],
            EnvValue::Literal("a".into())
        );
    }

    #[test]
    fn agent_without_bottle_needs_one() {
        let fx = Fx::new();
        let path = fx.agent("portable", "skills: []\n", "Prompt");
        fx.bottle("a", "");
        let idx = fx.index();
        let e = idx.load("portable", &[]).unwrap_err();
        assert!(matches!(e, ManifestError::NoBottle { .. }));
        assert_names(&e.to_string(), &path, "portable", &["--bottle"]);
        assert!(idx.load("portable", &names(&["a"])).is_ok());
        assert!(matches!(
            idx.resolve_bottles(&[]).unwrap_err(),
            ManifestError::NoBottleGiven
        ));
    }

    #[test]
    fn unknown_bottle_on_the_command_line_lists_names() {
        let fx = Fx::new();
        fx.bottle("alpha", "");
        fx.bottle("beta", "");
        fx.agent("dev", "", "");
        let e = fx
            .index()
            .load("dev", &names(&["gamma"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("gamma") && e.contains("alpha, beta"), "{e}");
    }

    #[test]
    fn agent_bottle_missing_names_agent_file() {
        let fx = Fx::new();
        fx.bottle("alpha", "");
        let path = fx.agent("dev", "bottle: nope\n", "");
        let e = fx.index().load("dev", &[]).unwrap_err().to_string();
        assert_names(&e, &path, "bottle", &["nope", "alpha"]);
    }

    #[test]
    fn unknown_agent_lists_names() {
        let fx = Fx::new();
        fx.agent("one", "", "");
        fx.cwd_agent("two", "", "");
        let e = fx.index().load_agent("three").unwrap_err().to_string();
        assert!(e.contains("three") && e.contains("one, two"), "{e}");
    }
}

mod errors {
    use super::*;

    /// Writes a one-key bottle and returns (file, error text).
    fn bad(yaml: &str) -> (PathBuf, String) {
        let fx = Fx::new();
        let path = fx.bottle("bad", yaml);
        let e = fx.bottle_err("bad");
        // Keep the temp dir alive only as long as needed: the error is text.
        (path, e)
    }

    #[test]
    fn unknown_bottle_key_lists_allowed_keys() {
        let (p, e) = bad("envs: {}\n");
        assert_names(
            &e,
            &p,
            "envs",
            &[
                "unknown key",
                "env, extends, agent_provider, git-gate, egress, supervise, image, mounts",
            ],
        );
        assert!(e.contains("bad.md:2"), "line number: {e}");
    }

    #[test]
    fn removed_keys_have_migration_hints() {
        for (key, hint) in [
            ("git", "git-gate"),
            ("runtime", "gVisor"),
            ("cred_proxy", "egress.routes"),
            ("tokens", "token_ref"),
            ("egress_proxy", "renamed `egress`"),
        ] {
            let (p, e) = bad(&format!("{key}: {{}}\n"));
            assert_names(&e, &p, key, &[hint]);
        }
    }

    #[test]
    fn supervise_true_is_not_supported_yet() {
        let (p, e) = bad("supervise: true\n");
        assert_names(&e, &p, "supervise", &["not supported yet", "false"]);
        let (p, e) = bad("supervise: maybe\n");
        assert_names(&e, &p, "supervise", &["true or false"]);
    }

    #[test]
    fn git_gate_repos_is_not_supported_yet() {
        let (p, e) = bad("git-gate:\n  repos: {app: {url: ssh://x}}\n");
        assert_names(&e, &p, "git-gate.repos", &["not supported yet"]);
        let (p, e) = bad("git-gate:\n  user: {nick: x}\n");
        assert_names(&e, &p, "git-gate.user.nick", &["name, email"]);
    }

    #[test]
    fn env_errors_name_the_variable_not_the_value() {
        let (p, e) = bad("env:\n  API_KEY: \"${sk-ant-api03-REALSECRET}\"\n");
        assert_names(
            &e,
            &p,
            "env.API_KEY",
            &["[A-Za-z_][A-Za-z0-9_]*", "?prompt"],
        );
        assert!(!e.contains("REALSECRET"), "{e}");
        let (p, e) = bad("env:\n  API_KEY: {nested: REALSECRET}\n");
        assert_names(&e, &p, "env.API_KEY", &["must be a string"]);
        assert!(!e.contains("REALSECRET"), "{e}");
        let (p, e) = bad("env:\n  BAD-NAME: x\n");
        assert_names(&e, &p, "env.BAD-NAME", &["[A-Za-z_][A-Za-z0-9_]*"]);
        let (p, e) = bad("env: [A, B]\n");
        assert_names(&e, &p, "env", &["map"]);
    }

    #[test]
    fn agent_provider_errors() {
        let (p, e) = bad("agent_provider: {template: ''}\n");
        assert_names(&e, &p, "agent_provider.template", &["must not be empty"]);
        let (p, e) = bad("agent_provider: {image: x}\n");
        assert_names(
            &e,
            &p,
            "agent_provider.image",
            &["template, dockerfile, auth_token, forward_host_credentials, settings"],
        );
        let (p, e) = bad("agent_provider: {auth_token: sk-ant-REALSECRET}\n");
        assert_names(&e, &p, "agent_provider.auth_token", &["host variable"]);
        assert!(!e.contains("REALSECRET"), "{e}");
        let (p, e) = bad("agent_provider: {forward_host_credentials: yes}\n");
        assert_names(
            &e,
            &p,
            "agent_provider.forward_host_credentials",
            &["true or false"],
        );
        let (p, e) = bad("agent_provider: {settings: [a]}\n");
        assert_names(&e, &p, "agent_provider.settings", &["map"]);
    }

    #[test]
    fn egress_errors() {
        let (p, e) = bad("egress: {log: 3}\n");
        assert_names(
            &e,
            &p,
            "egress.log",
            &["0 = off", "1 = blocks", "2 = every"],
        );
        let (p, e) = bad("egress: {log: high}\n");
        assert_names(&e, &p, "egress.log", &["integer"]);
        let (p, e) = bad("egress: {rules: []}\n");
        assert_names(&e, &p, "egress.rules", &["routes, log"]);
        let (p, e) = bad("egress: {routes: {host: x}}\n");
        assert_names(&e, &p, "egress.routes", &["must be a list"]);
    }

    fn route_err(route_yaml: &str) -> (PathBuf, String) {
        bad(&format!(
            "egress:\n  routes:\n    - host: ok.example.com\n    - {route_yaml}\n"
        ))
    }

    #[test]
    fn route_host_errors() {
        let (p, e) = route_err("{port: 443}");
        assert_names(&e, &p, "egress.routes[1].host", &["required"]);
        let (p, e) = route_err("{host: 'https://api.example.com'}");
        assert_names(&e, &p, "egress.routes[1].host", &["scheme"]);
        let (p, e) = route_err("{host: 'api.example.com/v1'}");
        assert_names(&e, &p, "egress.routes[1].host", &["path", "matches"]);
        let (p, e) = route_err("{host: 'api.example.com:8443'}");
        assert_names(&e, &p, "egress.routes[1].host", &["port", "`port:`"]);
        let (p, e) = route_err("{host: 'a.com b.com'}");
        assert_names(&e, &p, "egress.routes[1].host", &["one host per route"]);
        assert!(e.contains("bad.md:5"), "line of the value: {e}");
    }

    #[test]
    fn route_port_errors() {
        for port in ["0", "70000", "-1"] {
            let (p, e) = route_err(&format!("{{host: x.com, port: {port}}}"));
            assert_names(&e, &p, "egress.routes[1].port", &["1-65535"]);
        }
        let (p, e) = route_err("{host: x.com, port: '443'}");
        assert_names(&e, &p, "egress.routes[1].port", &["integer", "1-65535"]);
    }

    #[test]
    fn route_auth_errors() {
        let (p, e) = route_err("{host: x.com, auth: {scheme: Basic, token_ref: T}}");
        assert_names(&e, &p, "egress.routes[1].auth.scheme", &["Bearer, token"]);
        let (p, e) =
            route_err("{host: x.com, auth: {scheme: Bearer, token_ref: ghp_REALSECRET-1}}");
        assert_names(
            &e,
            &p,
            "egress.routes[1].auth.token_ref",
            &["host variable"],
        );
        assert!(!e.contains("REALSECRET"), "{e}");
        let (p, e) = route_err("{host: x.com, auth: {scheme: Bearer}}");
        assert_names(&e, &p, "egress.routes[1].auth.token_ref", &["required"]);
        let (p, e) = route_err("{host: x.com, auth: {scheme: Bearer, token_ref: T, header: X}}");
        assert_names(
            &e,
            &p,
            "egress.routes[1].auth.header",
            &["scheme, token_ref"],
        );
    }

    #[test]
    fn route_removed_and_unsupported_keys() {
        for (key, fragment) in [
            ("role: claude_code_oauth", "added automatically"),
            ("path_allowlist: [/api]", "matches"),
            ("pipelock: {tls_passthrough: true}", "removed"),
            ("dlp: {outbound_on_match: redact}", "not supported yet"),
            ("git: {fetch: true}", "not supported yet"),
        ] {
            let (p, e) = route_err(&format!("{{host: x.com, {key}}}"));
            let name = key.split(':').next().unwrap();
            assert_names(&e, &p, &format!("egress.routes[1].{name}"), &[fragment]);
        }
        let (p, e) = route_err("{host: x.com, hosts: [a]}");
        assert_names(
            &e,
            &p,
            "egress.routes[1].hosts",
            &["host, port, auth, matches, allow_private"],
        );
    }

    #[test]
    fn route_match_errors() {
        let (p, e) = route_err("{host: x.com, matches: [{methods: [GTE]}]}");
        assert_names(
            &e,
            &p,
            "egress.routes[1].matches[0].methods[0]",
            &["GTE", "GET, HEAD, POST"],
        );
        let (p, e) = route_err("{host: x.com, matches: [{paths: [{type: glob, value: /a}]}]}");
        assert_names(
            &e,
            &p,
            "egress.routes[1].matches[0].paths[0].type",
            &["exact, prefix, regex"],
        );
        let (p, e) = route_err("{host: x.com, matches: [{paths: [{type: regex, value: '/a(['}]}]}");
        assert_names(
            &e,
            &p,
            "egress.routes[1].matches[0].paths[0].value",
            &["regular expression"],
        );
        let (p, e) = route_err("{host: x.com, matches: [{paths: [{type: prefix, value: api}]}]}");
        assert_names(
            &e,
            &p,
            "egress.routes[1].matches[0].paths[0].value",
            &["start with `/`"],
        );
        let (p, e) =
            route_err("{host: x.com, matches: [{headers: [{name: X, value: '(', type: regex}]}]}");
        assert_names(
            &e,
            &p,
            "egress.routes[1].matches[0].headers[0].value",
            &["regular expression"],
        );
        let (p, e) =
            route_err("{host: x.com, matches: [{headers: [{name: X, value: a, type: glob}]}]}");
        assert_names(
            &e,
            &p,
            "egress.routes[1].matches[0].headers[0].type",
            &["exact, regex"],
        );
        let (p, e) = route_err("{host: x.com, matches: [{headers: [{name: 'X Y', value: a}]}]}");
        assert_names(
            &e,
            &p,
            "egress.routes[1].matches[0].headers[0].name",
            &["header name"],
        );
        let (p, e) = route_err("{host: x.com, matches: [{}]}");
        assert_names(
            &e,
            &p,
            "egress.routes[1].matches[0]",
            &["paths, methods, headers"],
        );
        let (p, e) = route_err("{host: x.com, matches: [{query: a}]}");
        assert_names(
            &e,
            &p,
            "egress.routes[1].matches[0].query",
            &["paths, methods, headers"],
        );
        let (p, e) = route_err("{host: x.com, allow_private: 1}");
        assert_names(&e, &p, "egress.routes[1].allow_private", &["true or false"]);
    }

    #[test]
    fn image_and_mount_errors() {
        let (p, e) = bad("image: ''\n");
        assert_names(&e, &p, "image", &["must not be empty"]);
        let (p, e) = bad("image: 'a b'\n");
        assert_names(&e, &p, "image", &["image reference"]);
        let (p, e) = bad("mounts: [{source: data, target: /data}]\n");
        assert_names(&e, &p, "mounts[0].source", &["absolute", "~/"]);
        let (p, e) = bad("mounts: [{source: /d, target: data}]\n");
        assert_names(&e, &p, "mounts[0].target", &["absolute"]);
        let (p, e) = bad("mounts: [{source: /d, target: /x/../etc}]\n");
        assert_names(&e, &p, "mounts[0].target", &["`..`"]);
        let (p, e) = bad("mounts: [{source: /d}]\n");
        assert_names(&e, &p, "mounts[0].target", &["required"]);
        let (p, e) = bad("mounts: [{source: /d, target: /t, mode: ro}]\n");
        assert_names(&e, &p, "mounts[0].mode", &["source, target, read_only"]);
        let (p, e) = bad("mounts: [{source: /d, target: /t}, {source: /e, target: /t}]\n");
        assert_names(&e, &p, "mounts[1].target", &["already"]);
    }

    #[test]
    fn yaml_and_frontmatter_errors() {
        let (p, e) = bad("env:\n  A: [unclosed\n");
        assert_names(&e, &p, "invalid YAML", &[]);
        let (p, e) = bad("- a\n- b\n");
        assert_names(&e, &p, "(frontmatter)", &["map"]);
        let (p, e) = bad("env: {A: 1}\nenv: {B: 2}\n");
        assert_names(&e, &p, "duplicate key `env`", &[]);
        let fx = Fx::new();
        let path = fx.write(
            fx.home.path().join(".bot-bottle/bottles/nofm.md"),
            "just text\n",
        );
        let e = fx.bottle_err("nofm");
        assert_names(&e, &path, "frontmatter", &["`---`"]);
    }

    #[test]
    fn agent_errors() {
        let fx = Fx::new();
        let p = fx.agent("a", "bottle: base\nenv: {A: b}\n", "");
        let e = fx.index().load_agent("a").unwrap_err().to_string();
        assert_names(
            &e,
            &p,
            "env",
            &[
                "unknown key",
                "bottle, skills, git-gate, name, description, model, color, memory, tools",
            ],
        );
        let p = fx.agent("b", "git-gate: {repos: {}}\n", "");
        let e = fx.index().load_agent("b").unwrap_err().to_string();
        assert_names(&e, &p, "git-gate.repos", &["not allowed in agent files"]);
        let p = fx.agent("c", "skills: [../etc]\n", "");
        let e = fx.index().load_agent("c").unwrap_err().to_string();
        assert_names(&e, &p, "skills[0]", &["skill name"]);
        let p = fx.agent("d", "bottle: Not_A_Name\n", "");
        let e = fx.index().load_agent("d").unwrap_err().to_string();
        assert_names(&e, &p, "bottle", &["^[a-z][a-z0-9-]*$"]);
        let p = fx.agent("e", "skills: pdf\n", "");
        let e = fx.index().load_agent("e").unwrap_err().to_string();
        assert_names(&e, &p, "skills", &["must be a list"]);
    }
}

mod extends {
    use super::*;

    fn load(fx: &Fx, name: &str) -> bot_bottle_manifest::Bottle {
        fx.index().resolve_bottles(&names(&[name])).unwrap()
    }

    fn hosts(b: &bot_bottle_manifest::Bottle) -> Vec<&str> {
        b.egress.routes.iter().map(|r| r.host.as_str()).collect()
    }

    #[test]
    fn env_is_a_union_and_the_child_wins() {
        let fx = Fx::new();
        fx.bottle("base", "env: {A: base, B: base}\n");
        fx.bottle("child", "extends: base\nenv: {B: child, C: child}\n");
        let b = load(&fx, "child");
        assert_eq!(b.env["A"], EnvValue::Literal("base".into()));
        assert_eq!(b.env["B"], EnvValue::Literal("child".into()));
        assert_eq!(b.env["C"], EnvValue::Literal("child".into()));
    }

    #[test]
    fn egress_is_inherited_or_replaced_whole() {
        let fx = Fx::new();
        fx.bottle(
            "base",
            "egress: {log: 1, routes: [{host: a.com}, {host: b.com}]}\n",
        );
        fx.bottle("inherit", "extends: base\nenv: {X: y}\n");
        fx.bottle(
            "replace",
            "extends: base\negress: {routes: [{host: c.com}]}\n",
        );
        fx.bottle("clear", "extends: base\negress: {}\n");
        let b = load(&fx, "inherit");
        assert_eq!(hosts(&b), ["a.com", "b.com"]);
        assert_eq!(b.egress.log, 1);
        let b = load(&fx, "replace");
        assert_eq!(hosts(&b), ["c.com"]);
        assert_eq!(b.egress.log, 0, "replaced whole, log included");
        assert!(load(&fx, "clear").egress.routes.is_empty());
    }

    #[test]
    fn provider_image_and_mounts_are_replaced_whole() {
        let fx = Fx::new();
        fx.bottle(
            "base",
            "agent_provider: {template: codex, forward_host_credentials: true}\nimage: base:1\nmounts: [{source: /a, target: /a}]\n",
        );
        fx.bottle(
            "child",
            "extends: base\nagent_provider: {auth_token: T}\nimage:\nmounts: []\n",
        );
        let b = load(&fx, "child");
        assert_eq!(b.agent_provider.template, "claude");
        assert!(!b.agent_provider.forward_host_credentials);
        assert!(b.image.is_none(), "explicitly empty clears");
        assert!(b.mounts.is_empty());
    }

    #[test]
    fn git_user_merges_per_field() {
        let fx = Fx::new();
        fx.bottle("base", "git-gate: {user: {name: Base, email: base@x}}\n");
        fx.bottle(
            "child",
            "extends: base\ngit-gate: {user: {email: child@x}}\n",
        );
        let b = load(&fx, "child");
        assert_eq!(b.git_user.name.as_deref(), Some("Base"));
        assert_eq!(b.git_user.email.as_deref(), Some("child@x"));
    }

    #[test]
    fn three_level_chain() {
        let fx = Fx::new();
        fx.bottle(
            "a",
            "env: {A: a, X: a}\negress: {routes: [{host: a.com}]}\n",
        );
        fx.bottle("b", "extends: a\nenv: {B: b, X: b}\n");
        fx.bottle("c", "extends: [b]\nenv: {C: c}\n");
        let b = load(&fx, "c");
        let keys: Vec<_> = b.env.keys().cloned().collect();
        assert_eq!(keys, names(&["A", "B", "C", "X"]));
        assert_eq!(b.env["X"], EnvValue::Literal("b".into()));
        assert_eq!(hosts(&b), ["a.com"]);
    }

    #[test]
    fn multiple_parents_concatenate_routes_and_take_the_last_single_values() {
        let fx = Fx::new();
        fx.bottle(
            "net",
            "egress: {log: 1, routes: [{host: a.com}]}\nagent_provider: {template: codex}\nenv: {K: net}\n",
        );
        fx.bottle(
            "more",
            "egress: {routes: [{host: b.com}, {host: a.com}]}\nenv: {K: more}\n",
        );
        fx.bottle("team", "extends: [net, more]\nenv: {T: team}\n");
        let b = load(&fx, "team");
        assert_eq!(
            hosts(&b),
            ["a.com", "b.com"],
            "concatenated, exact duplicates once"
        );
        assert_eq!(b.egress.log, 1, "`more` does not set log, so net's stays");
        assert_eq!(b.agent_provider.template, "codex", "`more` does not set it");
        assert_eq!(b.env["K"], EnvValue::Literal("more".into()));
        assert_eq!(b.env["T"], EnvValue::Literal("team".into()));

        // Choosing several bottles at launch merges them the same way.
        let b = fx
            .index()
            .resolve_bottles(&names(&["more", "net"]))
            .unwrap();
        assert_eq!(hosts(&b), ["b.com", "a.com"]);
        assert_eq!(b.env["K"], EnvValue::Literal("net".into()));
    }

    #[test]
    fn missing_parent_lists_available_bottles() {
        let fx = Fx::new();
        fx.bottle("base", "");
        let p = fx.bottle("child", "extends: [base, nothere]\n");
        let e = fx.bottle_err("child");
        assert_names(
            &e,
            &p,
            "extends",
            &["nothere", "available bottles: base, child"],
        );
        assert!(e.contains("child.md:2"), "{e}");
    }

    #[test]
    fn self_reference() {
        let fx = Fx::new();
        let p = fx.bottle("me", "extends: me\n");
        assert_names(&fx.bottle_err("me"), &p, "extends", &["extends itself"]);
    }

    #[test]
    fn two_node_cycle() {
        let fx = Fx::new();
        fx.bottle("a", "extends: b\n");
        let pb = fx.bottle("b", "extends: a\n");
        let e = fx.index().resolve_bottles(&names(&["a"])).unwrap_err();
        assert!(matches!(e, ManifestError::ExtendsCycle { .. }));
        assert_names(&e.to_string(), &pb, "extends", &["cycle", "a -> b -> a"]);
    }

    #[test]
    fn three_node_cycle() {
        let fx = Fx::new();
        fx.bottle("a", "extends: b\n");
        fx.bottle("b", "extends: [c]\n");
        let pc = fx.bottle("c", "extends: a\n");
        assert_names(&fx.bottle_err("a"), &pc, "extends", &["a -> b -> c -> a"]);
    }

    #[test]
    fn diamond_is_resolved_once() {
        let fx = Fx::new();
        fx.bottle(
            "root",
            "egress: {routes: [{host: root.com}]}\nenv: {R: root}\n",
        );
        fx.bottle(
            "left",
            "extends: root\negress: {routes: [{host: root.com}, {host: left.com}]}\n",
        );
        fx.bottle("right", "extends: root\nenv: {S: right}\n");
        fx.bottle("top", "extends: [left, right]\n");
        let b = load(&fx, "top");
        assert_eq!(hosts(&b), ["root.com", "left.com"]);
        assert_eq!(b.env["R"], EnvValue::Literal("root".into()));
        assert_eq!(b.env["S"], EnvValue::Literal("right".into()));
    }

    #[test]
    fn a_broken_parent_names_its_own_file() {
        let fx = Fx::new();
        let p = fx.bottle("base", "egress: {log: 9}\n");
        fx.bottle("child", "extends: base\n");
        assert_names(&fx.bottle_err("child"), &p, "egress.log", &[]);
    }

    #[test]
    fn bad_extends_values() {
        let fx = Fx::new();
        let p = fx.bottle("x", "extends: {a: b}\n");
        assert_names(
            &fx.bottle_err("x"),
            &p,
            "extends",
            &["list of bottle names"],
        );
        let p = fx.bottle("y", "extends: [Base]\n");
        assert_names(
            &fx.bottle_err("y"),
            &p,
            "extends[0]",
            &["^[a-z][a-z0-9-]*$"],
        );
    }
}

mod discovery {
    use super::*;

    #[test]
    fn cwd_bottles_are_ignored_with_a_warning() {
        let fx = Fx::new();
        fx.bottle("home", "");
        fx.write(
            fx.cwd.path().join(".bot-bottle/bottles/evil.md"),
            "---\negress: {routes: [{host: evil.com}]}\n---\n",
        );
        fx.cwd_agent("repo-agent", "bottle: evil\n", "");
        let idx = fx.index();
        assert_eq!(idx.bottle_names(), names(&["home"]));
        assert!(
            idx.warnings()
                .iter()
                .any(|w| w.contains(".bot-bottle/bottles") && w.contains("ignored")),
            "{:?}",
            idx.warnings()
        );
        let e = idx.load("repo-agent", &[]).unwrap_err().to_string();
        assert!(e.contains("evil") && e.contains("not found"), "{e}");
    }

    #[test]
    fn a_broken_agent_does_not_hide_the_others() {
        let fx = Fx::new();
        fx.bottle("base", "");
        let broken = fx.agent("broken", "bottle: [unclosed\n", "");
        fx.agent("good", "bottle: base\n", "ok");
        let idx = fx.index();
        assert_eq!(idx.agent_names(), names(&["broken", "good"]));
        assert_eq!(idx.load("good", &[]).unwrap().agent.system_prompt, "ok");
        let e = idx.load("broken", &[]).unwrap_err().to_string();
        assert!(e.contains(&broken.display().to_string()), "{e}");
    }

    #[test]
    fn file_names_are_validated() {
        let fx = Fx::new();
        fx.agent("ok-1", "", "");
        fx.write(
            fx.home.path().join(".bot-bottle/agents/Bad_Name.md"),
            "---\n---\n",
        );
        fx.write(
            fx.home.path().join(".bot-bottle/agents/1st.md"),
            "---\n---\n",
        );
        fx.write(fx.home.path().join(".bot-bottle/agents/notes.txt"), "x");
        fs::create_dir_all(fx.home.path().join(".bot-bottle/agents/dir.md")).unwrap();
        fx.write(
            fx.home.path().join(".bot-bottle/bottles/My Bottle.md"),
            "---\n---\n",
        );
        let idx = fx.index();
        assert_eq!(idx.agent_names(), names(&["ok-1"]));
        assert!(idx.bottle_names().is_empty());
        let w = idx.warnings().join("\n");
        for skipped in ["Bad_Name.md", "1st.md", "My Bottle.md"] {
            assert!(
                w.contains(skipped) && w.contains("^[a-z][a-z0-9-]*$"),
                "{w}"
            );
        }
        assert!(!w.contains("notes.txt") && !w.contains("dir.md"), "{w}");
    }

    #[test]
    fn cwd_agents_shadow_home_agents_with_a_warning() {
        let fx = Fx::new();
        fx.bottle("base", "");
        fx.agent("dev", "bottle: base\n", "home prompt");
        fx.agent("home-only", "bottle: base\n", "");
        fx.cwd_agent("dev", "bottle: base\n", "repo prompt");
        fx.cwd_agent("repo-only", "bottle: base\n", "");
        let idx = fx.index();
        assert_eq!(idx.agent_names(), names(&["dev", "home-only", "repo-only"]));
        let m = idx.load("dev", &[]).unwrap();
        assert_eq!(m.agent.system_prompt, "repo prompt");
        assert_eq!(m.agent_origin, AgentOrigin::Cwd);
        assert_eq!(idx.agent_path("home-only").unwrap().1, AgentOrigin::Home);
        assert!(
            idx.warnings()
                .iter()
                .any(|w| w.contains("`dev`") && w.contains("shadows")),
            "{:?}",
            idx.warnings()
        );
    }

    #[test]
    fn cwd_equal_to_home_reads_home_once_without_warnings() {
        let fx = Fx::new();
        fx.bottle("base", "");
        fx.agent("dev", "bottle: base\n", "");
        let idx = ManifestIndex::discover(fx.home.path(), fx.home.path()).unwrap();
        assert_eq!(idx.bottle_names(), names(&["base"]));
        assert_eq!(idx.agent_path("dev").unwrap().1, AgentOrigin::Home);
        assert!(idx.warnings().is_empty(), "{:?}", idx.warnings());
    }

    #[test]
    fn missing_directories_are_an_empty_index() {
        let fx = Fx::new();
        let idx = fx.index();
        assert!(idx.agent_names().is_empty() && idx.bottle_names().is_empty());
        assert!(idx.warnings().is_empty());
    }

    #[test]
    fn stale_json_manifest_points_to_the_migration() {
        for (in_home, name) in [(true, "bot-bottle.json"), (false, "claude-bottle.json")] {
            let fx = Fx::new();
            let dir = if in_home {
                fx.home.path()
            } else {
                fx.cwd.path()
            };
            let stale = fx.write(dir.join(name), "{}");
            let e = ManifestIndex::discover(fx.home.path(), fx.cwd.path()).unwrap_err();
            assert!(matches!(e, ManifestError::StaleJsonManifest { .. }));
            let msg = e.to_string();
            assert!(
                msg.contains(&stale.display().to_string())
                    && msg.contains("no longer read")
                    && msg.contains("README"),
                "{msg}"
            );
            // Once the new directory exists the old file is left alone.
            fs::create_dir_all(dir.join(".bot-bottle")).unwrap();
            assert!(ManifestIndex::discover(fx.home.path(), fx.cwd.path()).is_ok());
        }
    }

    #[test]
    fn parse_entry_points_need_no_files() {
        let b = bot_bottle_manifest::parse_bottle_str(
            Path::new("/virtual/web.md"),
            "---\nextends: [base]\nmounts: [{source: ~/x, target: /x}]\n---\n",
        )
        .unwrap();
        assert_eq!(b.name, "web");
        assert_eq!(b.extends, names(&["base"]));
        assert_eq!(b.mounts.unwrap()[0].source, PathBuf::from("~/x"));
        let a =
            bot_bottle_manifest::parse_agent_str(Path::new("/virtual/dev.md"), "---\n---\nHi\n")
                .unwrap();
        assert_eq!((a.name.as_str(), a.system_prompt.as_str()), ("dev", "Hi"));
    }

    #[test]
    fn hostile_inputs_are_errors_not_panics() {
        let inputs = [
            "",
            "---",
            "---\n",
            "---\n---",
            "---\n:\n---\n",
            "---\n- - - -\n---\n",
            "---\n? [a]\n: b\n---\n",
            "---\n!!binary x: y\n---\n",
            "---\n&a a: *a\n---\n",
            "---\nenv: !!map {A: [}\n---\n",
            "---\negress: {routes: [[], {}, ~, 1]}\n---\n",
            "---\n\t- x\n---\n",
            "---\n\"\\u\": x\n---\n",
            "---\nenv:\n  A: |\n    multi\n    line\n---\n",
        ];
        for text in inputs {
            let _ = bot_bottle_manifest::parse_bottle_str(Path::new("f.md"), text);
            let _ = bot_bottle_manifest::parse_agent_str(Path::new("f.md"), text);
        }
        let deep = format!("---\nenv: {}{}\n---\n", "{a: ".repeat(500), "}".repeat(500));
        assert!(bot_bottle_manifest::parse_bottle_str(Path::new("f.md"), &deep).is_err());
    }
}
