//! The SDK's compatibility promise, proved with real libraries built from
//! modified copies of the SDK:
//!
//! * a plugin built with SDK 1.0 loads in a host built with SDK 1.1, whose
//!   vtable has an extra method and whose documents have an extra field;
//! * a plugin whose root module layout differs is refused with a short
//!   message naming the plugin, both versions and the fix.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::{dry_run_lib, target_dir, text, workspace_root, Home};

const MARKER: &str = "// bot-bottle-sdk 1.0.0 ends here; later minor releases append below.";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn edit(path: &Path, edits: &[(&str, &str)]) {
    let mut s = std::fs::read_to_string(path).unwrap();
    for (from, to) in edits {
        assert!(
            s.contains(from),
            "{} no longer contains {from:?}",
            path.display()
        );
        s = s.replacen(from, to, 1);
    }
    std::fs::write(path, s).unwrap();
}

/// Copies the SDK to `dir/name`, standalone (outside the workspace).
fn sdk_copy(dir: &Path, name: &str, version: &str) -> PathBuf {
    let to = dir.join(name);
    let _ = std::fs::remove_dir_all(&to);
    copy_dir(&workspace_root().join("sdk/src"), &to.join("src"));
    let manifest = format!(
        r#"[package]
name = "bot-bottle-sdk"
version = "{version}"
edition = "2021"

[workspace]

[features]
host = []

[dependencies]
abi_stable = "0.11.3"
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"
thiserror = "2"
zeroize = "1"
base64 = "0.22"
"#
    );
    std::fs::write(to.join("Cargo.toml"), manifest).unwrap();
    to
}

/// The dry-run example plugin, built against the SDK at `sdk`.
fn plugin_against(dir: &Path, name: &str, sdk: &Path) -> PathBuf {
    let to = dir.join(name);
    let _ = std::fs::remove_dir_all(&to);
    copy_dir(
        &workspace_root().join("examples/dry-run-backend/src"),
        &to.join("src"),
    );
    std::fs::write(
        to.join("Cargo.toml"),
        format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"

[workspace]

[lib]
name = "dry_run_backend"
crate-type = ["cdylib"]

[dependencies]
bot-bottle-sdk = {{ path = "{}" }}
serde_json = "1"
"#,
            sdk.display()
        ),
    )
    .unwrap();
    to
}

fn cargo_build(krate: &Path, target: &Path) {
    let out = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--manifest-path"])
        .arg(krate.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building {}: {}",
        krate.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Compat {
    /// A host built with SDK 1.1 (extra vtable method, extra document field).
    host_next: PathBuf,
    /// A plugin whose root module has a different layout, claiming SDK 1.0.0.
    broken_plugin: PathBuf,
}

fn compat() -> &'static Compat {
    static BUILT: OnceLock<Compat> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = target_dir().join("compat");
        let target = dir.join("target");

        // SDK 1.1: a minor release that appends a backend method and a
        // launch-request field, the way the versioning rules allow.
        let next = sdk_copy(&dir, "sdk-next", "1.1.0");
        edit(
            &next.join("src/ffi.rs"),
            &[
                (
                    MARKER,
                    "pub describe: Option<unsafe extern \"C\" fn(*const ErasedObject) -> Json>,",
                ),
                ("            gc: backend_gc,\n", "            gc: backend_gc,\n            describe: Some(backend_info),\n"),
                (
                    "impl Backend for RemoteBackend {",
                    "impl RemoteBackend {\n    /// New in 1.1.\n    pub fn describe(&self) -> PluginResult<String> {\n        match self.obj.vtable.describe().flatten() {\n            Some(f) => decode(\"describe\", unsafe { f(self.obj.this as *const ErasedObject) }).map(|v: serde_json::Value| v.to_string()),\n            None => Err(PluginError::unsupported(\"describe\").with_hint(\"the plugin was built with an older bot-bottle-sdk\")),\n        }\n    }\n}\n\nimpl Backend for RemoteBackend {",
                ),
            ],
        );
        edit(
            &next.join("src/backend.rs"),
            &[(
                "    pub egress_binary: Option<PathBuf>,\n}",
                "    pub egress_binary: Option<PathBuf>,\n    /// New in 1.1.\n    #[serde(default)]\n    pub labels: BTreeMap<String, String>,\n}",
            )],
        );
        let host = dir.join("host-next");
        let _ = std::fs::remove_dir_all(&host);
        std::fs::create_dir_all(host.join("src")).unwrap();
        std::fs::write(
            host.join("Cargo.toml"),
            format!(
                "[package]\nname = \"host-next\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n\n[dependencies]\nbot-bottle-sdk = {{ path = \"{}\", features = [\"host\"] }}\nserde_json = \"1\"\n",
                next.display()
            ),
        )
        .unwrap();
        std::fs::write(host.join("src/main.rs"), HOST_NEXT_MAIN).unwrap();
        cargo_build(&host, &target);

        // A "1.0.0" SDK whose root module grew a field inside the prefix:
        // an ABI break the layout check must catch.
        let broken = sdk_copy(&dir, "sdk-broken", "1.0.0");
        edit(
            &broken.join("src/ffi.rs"),
            &[
                ("pub struct PluginMod {\n", "pub struct PluginMod {\n    pub reserved: u64,\n"),
                ("WithMetadata::new(PluginMod {\n", "WithMetadata::new(PluginMod {\n            reserved: 0,\n"),
            ],
        );
        let plugin = plugin_against(&dir, "broken-plugin", &broken);
        cargo_build(&plugin, &target);
        let broken_plugin = dir.join("libbroken_dry_run.so");
        std::fs::copy(target.join("debug/libdry_run_backend.so"), &broken_plugin).unwrap();
        Compat {
            host_next: target.join("debug/host-next"),
            broken_plugin,
        }
    })
}

const HOST_NEXT_MAIN: &str = r#"
use bot_bottle_sdk::prelude::*;

fn main() {
    let path = std::env::args().nth(1).unwrap();
    let state = std::env::args().nth(2).unwrap();
    let plugin = bot_bottle_sdk::host::load(std::path::Path::new(&path)).unwrap_or_else(|e| {
        println!("{}", serde_json::json!({"loaded": false, "error": e.to_string()}));
        std::process::exit(0)
    });
    let backend = plugin.open_backend("dry-run").unwrap();
    let describe = match backend.describe() {
        Ok(v) => v,
        Err(e) => format!("{}: {}", e.kind, e.message),
    };
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("team".to_string(), "infra".to_string());
    let request = LaunchRequest {
        bottle: BottleIdentity { id: "compat-1".into(), agent: "a".into(), ..Default::default() },
        image: ImageSpec::Image { reference: "x".into() },
        command: vec!["true".into()],
        user: String::new(),
        workdir: "/workspace".into(),
        workspace: None,
        mounts: vec![],
        env: Default::default(),
        files: vec![],
        egress: EgressPolicy::default(),
        egress_env: SecretMap::new(),
        tty: false,
        state_dir: state.into(),
        egress_binary: None,
        labels,
    };
    let launched = backend.launch(request).map(|s| s.id).map_err(|e| e.to_string());
    println!("{}", serde_json::json!({
        "loaded": true,
        "sdk_version": plugin.manifest().sdk_version,
        "info": backend.info().name,
        "describe": describe,
        "launch": format!("{launched:?}"),
    }));
}
"#;

#[test]
fn a_plugin_built_with_an_older_sdk_minor_loads_in_a_newer_host() {
    let compat = compat();
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(&compat.host_next)
        .arg(dry_run_lib())
        .arg(state.path())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["loaded"], true, "{stdout}");
    assert_eq!(v["sdk_version"], "1.0.0");
    assert_eq!(v["info"], "dry-run");
    // The method 1.1 added is absent from the 1.0 plugin: a clean error.
    assert!(
        v["describe"].as_str().unwrap().starts_with("unsupported"),
        "{stdout}"
    );
    // The 1.0 plugin reads a 1.1 launch request (extra field ignored).
    assert_eq!(v["launch"], "Ok(\"compat-1\")");
    assert!(state.path().join("launch-request.json").is_file());
}

#[test]
fn a_plugin_with_an_incompatible_layout_is_refused_with_a_short_message() {
    let compat = compat();
    let home = Home::new();
    let out = home
        .cmd()
        .env("BOT_BOTTLE_PLUGIN_PATH", &compat.broken_plugin)
        .args(["plugin", "list"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let line = stdout
        .lines()
        .skip_while(|l| !l.contains("libbroken_dry_run.so"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(line.starts_with("refused"), "{stdout}");
    assert!(
        line.contains("bot-bottle-sdk 1.0.0") && line.contains("rebuild the plugin"),
        "{line}"
    );
    // Short without --verbose; the layout report only with it.
    assert!(line.lines().count() <= 3);
    assert!(
        !stdout.contains("field"),
        "layout dump without --verbose: {stdout}"
    );
    let verbose = home
        .cmd()
        .env("BOT_BOTTLE_PLUGIN_PATH", &compat.broken_plugin)
        .args(["plugin", "list", "--verbose"])
        .output()
        .unwrap();
    assert!(text(&verbose).0.len() > stdout.len());
}
