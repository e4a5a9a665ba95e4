//! Plugin discovery: loaded, refused and panicking plugins.

use crate::common::{dry_run_lib, panicky_lib, text, Home};

#[test]
fn bundled_plugins_load_and_broken_libraries_do_not_stop_them() {
    let home = Home::new();
    let junk = home.path().join("libjunk.so");
    std::fs::write(&junk, b"this is not a shared library").unwrap();
    let truncated = home.path().join("libtruncated.so");
    let bytes = std::fs::read(dry_run_lib()).unwrap();
    std::fs::write(&truncated, &bytes[..1000]).unwrap();
    let path = std::env::join_paths([junk.clone(), truncated.clone(), dry_run_lib()]).unwrap();
    let out = home
        .cmd()
        .env("BOT_BOTTLE_PLUGIN_PATH", path)
        .args(["plugin", "list", "--json"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let status = |name: &str| {
        list.iter()
            .find(|c| c["path"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} not listed: {stdout}"))
            .clone()
    };
    for bundled in ["libbot_bottle_docker.so", "libbot_bottle_smolmachines.so"] {
        assert_eq!(status(bundled)["status"], "loaded", "{stdout}");
    }
    assert_eq!(status("libdry_run_backend.so")["status"], "loaded");
    for broken in ["libjunk.so", "libtruncated.so"] {
        let c = status(broken);
        assert_eq!(c["status"], "refused");
        assert!(c["reason"]
            .as_str()
            .unwrap()
            .contains("not a bot-bottle plugin"));
    }
}

#[test]
fn a_panicking_plugin_is_reported_and_the_host_lives_on() {
    let home = Home::new();
    let path = std::env::join_paths([panicky_lib(), dry_run_lib()]).unwrap();
    let out = home
        .cmd()
        .env("BOT_BOTTLE_PLUGIN_PATH", &path)
        .args(["doctor"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    // Exit 1 (not ready), not a signal: the process survived the panic.
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("plugin panicked in `doctor`: doctor exploded on purpose"),
        "{stdout}"
    );
    // The other plugin was still asked.
    assert!(
        stdout.contains("dry-run:") && stdout.contains("[ok] engine"),
        "{stdout}"
    );
    assert!(!stderr.contains("stack backtrace"), "{stderr}");

    home.bottle(
        "b",
        "image: x\nagent_provider: {template: command, settings: {command: [x]}}",
    )
    .agent("a", "bottle: b", "");
    let out = home
        .cmd()
        .env("BOT_BOTTLE_PLUGIN_PATH", &path)
        .args([
            "start",
            "a",
            "--backend",
            "panicky",
            "--headless",
            "--prompt",
            "p",
        ])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("launch exploded on purpose"), "{stderr}");
    // Its engine did not answer the removal either: the user is told so and
    // what to run, not that nothing is left.
    assert!(
        stderr.contains("removing the bottle failed too")
            && stderr.contains("run `bot-bottle cleanup` once the panicky engine is back"),
        "{stderr}"
    );
    assert!(!stderr.contains("were removed"), "{stderr}");
    // A failed launch leaves no state behind.
    let state = home.path().join(".bot-bottle/state");
    assert!(!state.exists() || std::fs::read_dir(&state).unwrap().next().is_none());
}

#[test]
fn an_unknown_backend_lists_the_available_ones() {
    let home = Home::new();
    home.bottle(
        "b",
        "image: x\nagent_provider: {template: command, settings: {command: [x]}}",
    )
    .agent("a", "bottle: b", "");
    let out = home
        .cmd()
        .args(["start", "a", "--backend", "nope", "--dry-run"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("unknown backend `nope`") && stderr.contains("docker"),
        "{stderr}"
    );
}
