//! `start --dry-run --json`: the launch plan, credentials resolved in the
//! host, secrets redacted everywhere.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::common::{dry_run_lib, text, Home};

const REAL_ACCESS_SIG: &str = "REAL-ACCESS-SIGNATURE-5f2b9c";

fn codex_login(home: &Home) -> String {
    let enc = |v: &str| URL_SAFE_NO_PAD.encode(v);
    let access = format!(
        "{}.{}.{REAL_ACCESS_SIG}",
        enc(r#"{"alg":"RS256"}"#),
        enc(r#"{"exp":4102444800}"#)
    );
    std::fs::create_dir_all(home.path().join(".codex")).unwrap();
    let doc = serde_json::json!({
        "OPENAI_API_KEY": null,
        "tokens": {"id_token": access, "access_token": access, "refresh_token": "REAL-REFRESH-77", "account_id": "acct-1"}
    });
    std::fs::write(home.path().join(".codex/auth.json"), doc.to_string()).unwrap();
    access
}

fn codex_home(forward: bool) -> Home {
    let home = Home::new();
    home.bottle(
        "codex",
        &format!(
            "agent_provider:\n  template: codex\n  forward_host_credentials: {forward}\negress:\n  routes:\n    - host: git.example.com\n      auth: {{scheme: token, token_ref: GITEA_TOKEN}}"
        ),
    )
    .agent("coder", "bottle: codex", "You write code.");
    home
}

#[test]
fn codex_forwarding_is_planned_with_the_token_redacted_everywhere() {
    let home = codex_home(true);
    let access = codex_login(&home);
    let before = home.all_file_text();
    let out = home
        .cmd()
        .env("GITEA_TOKEN", "gitea-secret-value-123")
        .args([
            "start",
            "coder",
            "--dry-run",
            "--json",
            "--backend",
            "dry-run",
        ])
        .env("BOT_BOTTLE_PLUGIN_PATH", dry_run_lib())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let map = &plan["egress_plan"]["token_env_map"];
    assert_eq!(map["EGRESS_TOKEN_0"], "CODEX_HOST_CREDENTIAL");
    assert_eq!(map["EGRESS_TOKEN_1"], "GITEA_TOKEN");
    assert_eq!(
        plan["agent_provision"]["provisioned_env"]["CODEX_HOST_CREDENTIAL"],
        "<redacted>"
    );
    assert_eq!(plan["token_values"]["EGRESS_TOKEN_0"], "<redacted>");
    for secret in [
        access.as_str(),
        REAL_ACCESS_SIG,
        "REAL-REFRESH-77",
        "gitea-secret-value-123",
    ] {
        assert!(!stdout.contains(secret), "{secret} in stdout");
        assert!(!stderr.contains(secret), "{secret} in stderr");
    }
    // A dry run writes nothing.
    assert_eq!(home.all_file_text(), before);
    assert!(!home.path().join(".bot-bottle/state").exists());
}

#[test]
fn without_forwarding_provisioned_env_is_empty() {
    let home = codex_home(false);
    codex_login(&home);
    let out = home
        .cmd()
        .env("GITEA_TOKEN", "x-token")
        .env("BOT_BOTTLE_PLUGIN_PATH", dry_run_lib())
        .args([
            "start",
            "coder",
            "--dry-run",
            "--json",
            "--backend",
            "dry-run",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        plan["agent_provision"]["provisioned_env"],
        serde_json::json!({})
    );
    assert_eq!(
        plan["egress_plan"]["token_env_map"],
        serde_json::json!({"EGRESS_TOKEN_0": "GITEA_TOKEN"})
    );
}

#[test]
fn a_missing_token_names_the_ref_and_route_and_exits_1() {
    let home = codex_home(false);
    let out = home
        .cmd()
        .env("BOT_BOTTLE_PLUGIN_PATH", dry_run_lib())
        .args(["start", "coder", "--dry-run", "--backend", "dry-run"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("GITEA_TOKEN") && stderr.contains("git.example.com"),
        "{stderr}"
    );
}

#[test]
fn an_expired_codex_login_stops_the_launch() {
    let home = codex_home(true);
    let enc = |v: &str| URL_SAFE_NO_PAD.encode(v);
    let access = format!(
        "{}.{}.SIG-EXPIRED-SECRET",
        enc("{}"),
        enc(r#"{"exp":1000}"#)
    );
    std::fs::create_dir_all(home.path().join(".codex")).unwrap();
    std::fs::write(
        home.path().join(".codex/auth.json"),
        serde_json::json!({"tokens": {"access_token": access}}).to_string(),
    )
    .unwrap();
    let out = home
        .cmd()
        .env("GITEA_TOKEN", "t")
        .env("BOT_BOTTLE_PLUGIN_PATH", dry_run_lib())
        .args(["start", "coder", "--dry-run", "--backend", "dry-run"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("expired") && stderr.contains("codex login"),
        "{stderr}"
    );
    assert!(!stderr.contains("SIG-EXPIRED-SECRET"));
}

#[test]
fn a_real_launch_on_the_dry_run_backend_records_the_request_without_secrets() {
    let home = Home::new();
    home.bottle(
        "api",
        "image: example/agent:1\nagent_provider:\n  template: command\n  settings: {command: [/agent, run]}\negress:\n  routes:\n    - host: api.example.com\n      auth: {scheme: Bearer, token_ref: API_TOKEN}",
    )
    .agent("bot", "bottle: api", "");
    let out = home
        .cmd()
        .env("API_TOKEN", "sk-live-abcdef123456")
        .env("BOT_BOTTLE_PLUGIN_PATH", dry_run_lib())
        .args([
            "start",
            "bot",
            "--backend",
            "dry-run",
            "--headless",
            "--prompt",
            "go",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let record = home.all_file_text();
    assert!(record.contains("EGRESS_TOKEN_0"), "no record written");
    assert!(record.contains("\"BOT_BOTTLE_PROMPT\": \"go\""));
    for s in [&stdout, &stderr, &record] {
        assert!(!s.contains("sk-live-abcdef123456"));
    }
}

#[test]
fn usage_errors_exit_2_and_unknown_agents_exit_1() {
    let home = Home::new();
    let out = home.cmd().args(["start"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = home
        .cmd()
        .args(["start", "nobody", "--dry-run"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("nobody"), "{stderr}");
}

#[test]
fn cwd_bottles_are_ignored_with_a_warning() {
    let home = Home::new();
    home.bottle("safe", "egress:\n  routes:\n    - host: pypi.org")
        .agent("bot", "bottle: safe", "");
    let cwd_bottles = home.path().join("work/.bot-bottle/bottles");
    std::fs::create_dir_all(&cwd_bottles).unwrap();
    std::fs::write(
        cwd_bottles.join("safe.md"),
        "---\negress:\n  routes:\n    - host: evil.example\n---\n",
    )
    .unwrap();
    let out = home
        .cmd()
        .env("BOT_BOTTLE_PLUGIN_PATH", dry_run_lib())
        .args([
            "start",
            "bot",
            "--dry-run",
            "--json",
            "--backend",
            "dry-run",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning"), "{stderr}");
    assert!(stdout.contains("pypi.org") && !stdout.contains("evil.example"));
}
