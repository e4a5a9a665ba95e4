//! Installing third-party plugins, and a plugin author's path from
//! `plugin new` to a bottle: install/list/inspect/remove, a tampered
//! library, name clashes, a library that crashes while loading, the scaffold
//! and the example provider plugin.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::common::{dry_run_lib, fixture_plugins, target_dir, text, workspace_root, Home};

fn plugin_dir(home: &Home) -> PathBuf {
    home.path().join(".local/share/bot-bottle/plugins")
}

fn run(home: &Home, args: &[&str]) -> Output {
    home.cmd().args(args).output().unwrap()
}

fn install(home: &Home, lib: &Path, force: bool) -> Output {
    let mut c = home.cmd();
    c.args(["plugin", "install"]);
    if force {
        c.arg("--force");
    }
    c.arg(lib).output().unwrap()
}

fn list_json(home: &Home, plugin_path: Option<&std::ffi::OsStr>) -> Vec<serde_json::Value> {
    let mut c = home.cmd();
    if let Some(p) = plugin_path {
        c.env("BOT_BOTTLE_PLUGIN_PATH", p);
    }
    let out = c.args(["plugin", "list", "--json"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn named<'a>(list: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    list.iter().filter(|c| c["name"] == name).collect()
}

/// An agent on the `command` provider, so a dry run needs no image build.
fn with_agent(home: &Home) {
    home.bottle(
        "b",
        "image: x\nagent_provider: {template: command, settings: {command: [x]}}",
    )
    .agent("a", "bottle: b", "");
}

fn cargo_build(manifest_dir: &Path, test: bool) -> Output {
    let target = target_dir().join("scaffold");
    let mut c = Command::new(env!("CARGO"));
    c.env("CARGO_TARGET_DIR", &target)
        .current_dir(manifest_dir)
        .arg(if test { "test" } else { "build" })
        .arg("--quiet");
    c.output().unwrap()
}

fn built(lib: &str) -> PathBuf {
    target_dir().join("scaffold/debug").join(lib)
}

#[test]
fn install_list_inspect_and_remove_the_dry_run_plugin() {
    let home = Home::new();
    with_agent(&home);
    let out = install(&home, &dry_run_lib(), false);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("native code") && stderr.contains("your user's rights"),
        "{stderr}"
    );
    assert!(stdout.contains("installed plugin `dry-run`"), "{stdout}");

    let dir = plugin_dir(&home).join("dry-run");
    let lib = dir.join("libdry_run_backend.so");
    assert_eq!(
        std::fs::read(&lib).unwrap(),
        std::fs::read(dry_run_lib()).unwrap()
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("plugin.json")).unwrap()).unwrap();
    assert_eq!(manifest["name"], "dry-run");
    assert_eq!(manifest["sdk_version"], "1.0.0");
    assert_eq!(manifest["backends"], serde_json::json!(["dry-run"]));
    assert_eq!(manifest["file"], "libdry_run_backend.so");
    assert_eq!(manifest["sha256"].as_str().unwrap().len(), 64);
    assert!(manifest["installed_at"].as_u64().unwrap() > 0);

    // Listed from its manifest, beside the bundled plugins.
    let list = list_json(&home, None);
    let entry = named(&list, "dry-run");
    assert_eq!(entry.len(), 1, "{list:?}");
    assert_eq!(entry[0]["status"], "installed");
    assert_eq!(entry[0]["origin"], "user");
    assert_eq!(entry[0]["sha256"], manifest["sha256"]);
    assert_eq!(named(&list, "docker")[0]["status"], "loaded");

    let out = run(&home, &["plugin", "inspect", "dry-run"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for want in [
        "status:       installed",
        "backends:     dry-run",
        "capabilities: no-engine",
        manifest["sha256"].as_str().unwrap(),
        "bot-bottle-sdk 1.0.0",
    ] {
        assert!(stdout.contains(want), "{want} missing: {stdout}");
    }

    // Usable like a built-in backend.
    let out = run(&home, &["start", "a", "--backend", "dry-run", "--dry-run"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("backend:  dry-run"), "{stdout}");

    let out = run(&home, &["plugin", "remove", "dry-run"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(!dir.exists());
    assert!(named(&list_json(&home, None), "dry-run").is_empty());
    let out = run(&home, &["plugin", "remove", "dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("no installed plugin named `dry-run`"));
    let out = run(&home, &["plugin", "remove", "docker"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out)
        .1
        .contains("built into bot-bottle and cannot be removed"));
    // Leftovers of the staging area would show up here.
    assert_eq!(std::fs::read_dir(plugin_dir(&home)).unwrap().count(), 0);
}

#[test]
fn a_library_changed_after_install_is_refused_with_how_to_reinstall() {
    let home = Home::new();
    with_agent(&home);
    assert!(install(&home, &dry_run_lib(), false).status.success());
    let lib = plugin_dir(&home).join("dry-run/libdry_run_backend.so");
    // One byte, same size: only the hash tells.
    let mut bytes = std::fs::read(&lib).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&lib, &bytes).unwrap();

    let reinstall = format!(
        "bot-bottle plugin install --force {}",
        dry_run_lib().display()
    );
    let list = list_json(&home, None);
    let entry = named(&list, "dry-run");
    assert_eq!(entry[0]["status"], "tampered", "{list:?}");
    assert!(
        entry[0]["reason"].as_str().unwrap().contains(&reinstall),
        "{list:?}"
    );

    let out = run(&home, &["start", "a", "--backend", "dry-run", "--dry-run"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("changed since it was installed") && stderr.contains(&reinstall),
        "{stderr}"
    );

    // The advertised fix works.
    assert!(install(&home, &dry_run_lib(), true).status.success());
    let out = run(&home, &["start", "a", "--backend", "dry-run", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out).1);
}

#[test]
fn two_plugins_with_one_name_are_refused_naming_both_files() {
    let home = Home::new();
    with_agent(&home);
    assert!(install(&home, &dry_run_lib(), false).status.success());
    let installed = plugin_dir(&home).join("dry-run/libdry_run_backend.so");

    // Same name again without --force.
    let out = install(&home, &dry_run_lib(), false);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("plugin `dry-run` is already installed") && stderr.contains("--force"),
        "{stderr}"
    );

    // A second library with the same plugin name on the plugin path.
    let copy = home.path().join("libanother_dry_run.so");
    std::fs::copy(dry_run_lib(), &copy).unwrap();
    let list = list_json(&home, Some(copy.as_os_str()));
    let both = named(&list, "dry-run");
    assert_eq!(both.len(), 2, "{list:?}");
    for c in &both {
        assert_eq!(c["status"], "conflict");
        let reason = c["reason"].as_str().unwrap();
        assert!(
            reason.contains(&installed.display().to_string())
                && reason.contains(&copy.display().to_string()),
            "{reason}"
        );
    }
    let out = home
        .cmd()
        .env("BOT_BOTTLE_PLUGIN_PATH", &copy)
        .args(["start", "a", "--backend", "dry-run", "--dry-run"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("two plugins are named `dry-run`")
            && stderr.contains(&installed.display().to_string())
            && stderr.contains(&copy.display().to_string()),
        "{stderr}"
    );
    // Installing over a name that is on the plugin path is refused too.
    let out = home
        .cmd()
        .env("BOT_BOTTLE_PLUGIN_PATH", &copy)
        .args(["plugin", "install", "--force"])
        .arg(dry_run_lib())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("BOT_BOTTLE_PLUGIN_PATH"),
        "{}",
        text(&out).1
    );

    // The name of a built-in backend cannot be taken.
    let docker = fixture_plugins().join("libbot_bottle_docker.so");
    let out = install(&home, &docker, true);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("backend `docker` is built into bot-bottle"),
        "{stderr}"
    );
}

fn crash_lib() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = cargo_build(&workspace_root().join("tests/fixtures/crash-plugin"), false);
        assert!(out.status.success(), "{}", text(&out).1);
        built("libfixture_crash.so")
    })
}

#[test]
fn a_library_that_crashes_while_loading_is_reported_and_not_installed() {
    let home = Home::new();
    let out = install(&home, crash_lib(), false);
    let (stdout, stderr) = text(&out);
    // An ordinary failure of a living process, not death by signal.
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("the library crashed while loading (signal 6, SIGABRT)")
            && stderr.contains("libfixture_crash.so"),
        "{stderr}"
    );
    let dir = plugin_dir(&home);
    assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().next().is_none());

    // Not a library at all: refused by the probe, also cleanly.
    let junk = home.path().join("libjunk.so");
    std::fs::write(&junk, b"not a library").unwrap();
    let out = install(&home, &junk, false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("not a bot-bottle plugin"),
        "{}",
        text(&out).1
    );
}

#[test]
fn plugin_new_builds_installs_and_runs_a_dry_run() {
    let home = Home::new();
    with_agent(&home);
    let tmp = tempfile::tempdir().unwrap();
    let krate = tmp.path().join("foo");
    let out = run(
        &home,
        &["plugin", "new", "foo", "--dir", krate.to_str().unwrap()],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("bot-bottle plugin install"), "{stdout}");
    // A source build of bot-bottle points the crate at its own SDK.
    let cargo_toml = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
    let sdk = std::fs::canonicalize(workspace_root().join("sdk")).unwrap();
    assert!(
        cargo_toml.contains(&format!("path = \"{}\"", sdk.display())),
        "{cargo_toml}"
    );
    let lib_rs = std::fs::read_to_string(krate.join("src/lib.rs")).unwrap();
    assert!(!lib_rs.contains("todo!"));

    // It compiles and its tests pass as generated.
    let out = cargo_build(&krate, true);
    assert!(out.status.success(), "cargo test: {}", text(&out).1);
    let out = cargo_build(&krate, false);
    assert!(out.status.success(), "cargo build: {}", text(&out).1);

    let out = install(&home, &built("libfoo_plugin.so"), true);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = run(&home, &["start", "a", "--backend", "foo", "--dry-run"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("backend:  foo"), "{stdout}");

    // A provider scaffold compiles too; a used directory is refused.
    let bar = tmp.path().join("bar");
    let out = run(
        &home,
        &[
            "plugin",
            "new",
            "bar",
            "--kind",
            "provider",
            "--dir",
            bar.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let out = cargo_build(&bar, true);
    assert!(out.status.success(), "cargo test: {}", text(&out).1);
    let out = run(
        &home,
        &["plugin", "new", "baz", "--dir", bar.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("not empty"));
}

#[test]
fn the_example_provider_plugin_plans_an_injected_openai_route() {
    let home = Home::new();
    let out = cargo_build(&workspace_root().join("examples/provider-plugin"), false);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = install(&home, &built("libaider_provider.so"), true);
    assert!(out.status.success(), "{}", text(&out).1);

    home.bottle(
        "b",
        "agent_provider: {template: aider, auth_token: MY_OPENAI_KEY, settings: {model: gpt-4o}}",
    )
    .agent("pair", "bottle: b", "Prefer small commits.");
    let out = home
        .cmd()
        .env("MY_OPENAI_KEY", "sk-real-secret-value")
        .args([
            "start",
            "pair",
            "--backend",
            "docker",
            "--dry-run",
            "--json",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains("sk-real-secret-value"));
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let routes = plan.to_string();
    assert!(routes.contains("api.openai.com"), "{stdout}");
    assert!(routes.contains("MY_OPENAI_KEY"), "{stdout}");
    // The agent holds a (hidden) placeholder; the model setting reaches the command.
    assert!(routes.contains("OPENAI_API_KEY"), "{stdout}");
    assert!(routes.contains("gpt-4o"), "{stdout}");
}
