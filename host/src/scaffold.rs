//! `bot-bottle plugin new`: a plugin crate that compiles as generated.
//!
//! The crate is its own Cargo workspace (an empty `[workspace]` table), so it
//! builds wherever it is created. It depends on the SDK by path when this
//! bot-bottle runs from a source build (or with `--sdk-path`), else on the
//! published `bot-bottle-sdk` with a version requirement this bot-bottle can
//! load.

use std::io::Write;
use std::path::{Path, PathBuf};

use bot_bottle_sdk::plugin::is_valid_name;
use bot_bottle_sdk::SDK_VERSION;

use crate::plugins::BUILTIN_BACKENDS;
use crate::provider::BUILTIN_PROVIDERS;

/// What the new plugin provides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PluginKind {
    /// A backend: an engine bottles run on.
    #[default]
    Backend,
    /// An agent provider: what an agent needs in a bottle.
    Provider,
}

/// Why `plugin new` failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name breaks the rule or is taken by bot-bottle.
    #[error("invalid plugin name `{0}`: names match ^[a-z][a-z0-9-]{{0,31}}$ (a lower-case letter, then lower-case letters, digits and '-', at most 32 in all)")]
    InvalidName(String),
    /// A name of a built-in backend or provider.
    #[error(
        "`{0}` is the name of a backend or agent provider built into bot-bottle; choose another"
    )]
    Reserved(String),
    /// The target directory has files in it.
    #[error("{} already exists and is not empty; choose another --dir", .0.display())]
    NotEmpty(PathBuf),
    /// `--sdk-path` does not hold the SDK.
    #[error("--sdk-path {}: no bot-bottle-sdk crate there (expected its Cargo.toml with name = \"bot-bottle-sdk\")", .0.display())]
    NoSdk(PathBuf),
    /// Writing failed.
    #[error("{action}: {error}")]
    Io {
        /// What was being written.
        action: String,
        /// The error.
        error: std::io::Error,
    },
}

/// Where the generated crate gets the SDK from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SdkSource {
    /// A local checkout of the SDK crate.
    Path(PathBuf),
    /// The published crate.
    Registry,
}

/// What was created.
#[derive(Debug)]
pub struct Scaffolded {
    /// The crate directory.
    pub dir: PathBuf,
    /// The library's file name once built, e.g. `libfoo_plugin.so`.
    pub library: String,
    /// Where the SDK comes from.
    pub sdk: SdkSource,
}

fn is_sdk_dir(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| {
        t.lines()
            .any(|l| l.replace(' ', "") == "name=\"bot-bottle-sdk\"")
    })
}

/// The SDK of the source tree this bot-bottle was built from, if it is
/// still there: beside the executable's cargo target directory
/// (`target/debug/../../sdk`), else where the host crate was compiled.
pub fn source_sdk_dir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        // target/debug/bot-bottle and target/<triple>/debug/bot-bottle
        for up in dir.ancestors().skip(2).take(2) {
            candidates.push(up.join("sdk"));
        }
    }
    if let Some(root) = Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
        candidates.push(root.join("sdk"));
    }
    candidates
        .into_iter()
        .find(|d| is_sdk_dir(d))
        .map(|d| std::fs::canonicalize(&d).unwrap_or(d))
}

/// `foo-bar` → `FooBar`.
fn camel(name: &str) -> String {
    name.split('-')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A TOML basic string (JSON string escapes are valid TOML).
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The version requirement on the published SDK: the newest patch of this
/// bot-bottle's SDK minor, since a plugin built with a newer minor is refused.
fn sdk_requirement() -> String {
    let mut parts = SDK_VERSION.split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    format!("~{major}.{minor}")
}

/// The generated `Cargo.toml`.
pub fn cargo_toml(name: &str, sdk: &SdkSource) -> String {
    let dependency = match sdk {
        SdkSource::Path(p) => format!(
            "# From a local bot-bottle source tree; once you use the published crate,\n\
             # replace this with: bot-bottle-sdk = \"{}\"\n\
             bot-bottle-sdk = {{ path = {}, version = \"{}\" }}",
            sdk_requirement(),
            toml_string(&p.display().to_string()),
            sdk_requirement()
        ),
        SdkSource::Registry => format!(
            "# `~{0}`: bot-bottle built with bot-bottle-sdk {0}.x loads plugins built with\n\
             # {0}.x or older; raise it only when you need a newer SDK's features.\n\
             bot-bottle-sdk = \"{1}\"",
            sdk_requirement().trim_start_matches('~'),
            sdk_requirement()
        ),
    };
    format!(
        r#"[package]
name = "{name}-plugin"
version = "0.1.0"
edition = "2021"
publish = false
description = "The `{name}` plugin for bot-bottle"

# Its own workspace, so it builds wherever it lives.
[workspace]

[lib]
# A shared library bot-bottle loads. The name must not start with
# `bot_bottle_`: that prefix is reserved for the plugins bundled with it.
name = "{lib}"
crate-type = ["cdylib"]

[dependencies]
{dependency}
"#,
        lib = lib_name(name),
    )
}

fn lib_name(name: &str) -> String {
    let base = name.replace('-', "_");
    // `libbot_bottle_*` beside the executable means "bundled".
    if base.starts_with("bot_bottle") {
        format!("plugin_{base}")
    } else {
        format!("{base}_plugin")
    }
}

fn library_file(name: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        lib_name(name),
        std::env::consts::DLL_SUFFIX
    )
}

/// The generated `src/lib.rs`.
pub fn lib_rs(name: &str, kind: PluginKind) -> String {
    let ty = camel(name);
    let template = match kind {
        PluginKind::Backend => BACKEND_TEMPLATE,
        PluginKind::Provider => PROVIDER_TEMPLATE,
    };
    template.replace("__NAME__", name).replace("__TYPE__", &ty)
}

const BACKEND_TEMPLATE: &str = r#"//! `__NAME__`: a bot-bottle backend plugin.
//!
//! Every operation that would create something returns `Unsupported` until
//! you implement it; read the backend contract in the SDK's README (what
//! `launch`, `remove` and `gc` must guarantee) before you do.

use std::io::Write;

use bot_bottle_sdk::prelude::*;

/// The backend.
pub struct __TYPE__;

impl Backend for __TYPE__ {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: "__NAME__".into(),
            description: "describe your engine here".into(),
            isolation: "none".into(),
        }
    }

    fn doctor(&self) -> PluginResult<DoctorReport> {
        Ok(DoctorReport {
            checks: vec![DoctorCheck {
                name: "engine".into(),
                ok: false,
                detail: "not implemented yet".into(),
                hint: Some("implement Backend::doctor in src/lib.rs".into()),
            }],
        })
    }

    fn launch(&self, _request: LaunchRequest) -> PluginResult<BottleSummary> {
        Err(PluginError::unsupported("launch"))
    }

    fn attach(&self, _id: &str, _tty: bool) -> PluginResult<i32> {
        Err(PluginError::unsupported("attach"))
    }

    fn wait(&self, _id: &str) -> PluginResult<i32> {
        Err(PluginError::unsupported("wait"))
    }

    fn stop(&self, _id: &str) -> PluginResult<()> {
        Err(PluginError::unsupported("stop"))
    }

    fn remove(&self, _id: &str) -> PluginResult<()> {
        // Must be idempotent: removing what is already gone succeeds. This
        // backend creates nothing yet, so there is nothing to remove.
        Ok(())
    }

    fn list(&self) -> PluginResult<Vec<BottleSummary>> {
        // Nothing is ever created yet, so there is nothing to list.
        Ok(Vec::new())
    }

    fn logs(&self, _id: &str, _request: &LogsRequest, _out: &mut dyn Write) -> PluginResult<()> {
        Err(PluginError::unsupported("logs"))
    }

    fn gc(&self, _request: &GcRequest) -> PluginResult<GcReport> {
        // Nothing is ever created yet, so nothing can be left behind.
        Ok(GcReport::default())
    }
}

/// The plugin library.
pub struct __TYPE__Plugin;

impl Plugin for __TYPE__Plugin {
    fn manifest() -> PluginManifest {
        PluginManifest {
            name: "__NAME__".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
            backends: vec!["__NAME__".into()],
            ..Default::default()
        }
    }

    fn open_backend(name: &str) -> PluginResult<Box<dyn Backend>> {
        match name {
            "__NAME__" => Ok(Box::new(__TYPE__)),
            other => Err(PluginError::not_found(format!(
                "this plugin provides backend `__NAME__`, not `{other}`"
            ))),
        }
    }
}

bot_bottle_sdk::export_plugin!(__TYPE__Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_names_the_backend() {
        let m = __TYPE__Plugin::manifest();
        assert_eq!(m.backends, vec!["__NAME__".to_string()]);
        assert!(bot_bottle_sdk::plugin::is_valid_name(&m.name));
        assert_eq!(__TYPE__.info().name, "__NAME__");
    }

    #[test]
    fn remove_and_gc_succeed_when_there_is_nothing() {
        assert!(__TYPE__.remove("no-such-bottle").is_ok());
        assert!(__TYPE__.remove("no-such-bottle").is_ok());
        assert!(__TYPE__.gc(&GcRequest { dry_run: false }).unwrap().removed.is_empty());
    }

    #[test]
    fn unimplemented_operations_say_so() {
        let err = __TYPE__.stop("x").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unsupported);
    }
}
"#;

const PROVIDER_TEMPLATE: &str = r#"//! `__NAME__`: a bot-bottle agent provider plugin.
//!
//! Use it in a bottle with `agent_provider: {template: __NAME__}`. Providers
//! run in the host: return resolved credentials only in
//! `AgentProvisionPlan::provisioned_env`, never in `env` or `files`.

use bot_bottle_sdk::prelude::*;

/// The agent provider.
pub struct __TYPE__;

impl AgentProvider for __TYPE__ {
    fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: "__NAME__".into(),
            description: "describe your agent here".into(),
            dockerfile: None,
            command: vec!["sh".into()],
            headless_command: Vec::new(),
            user: String::new(),
            home: String::new(),
        }
    }

    fn provision(&self, _request: &ProvisionRequest) -> PluginResult<AgentProvisionPlan> {
        Err(PluginError::unsupported("provision")
            .with_hint("implement AgentProvider::provision in src/lib.rs"))
    }
}

/// The plugin library.
pub struct __TYPE__Plugin;

impl Plugin for __TYPE__Plugin {
    fn manifest() -> PluginManifest {
        PluginManifest {
            name: "__NAME__".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
            providers: vec!["__NAME__".into()],
            ..Default::default()
        }
    }

    fn open_provider(name: &str) -> PluginResult<Box<dyn AgentProvider>> {
        match name {
            "__NAME__" => Ok(Box::new(__TYPE__)),
            other => Err(PluginError::not_found(format!(
                "this plugin provides agent provider `__NAME__`, not `{other}`"
            ))),
        }
    }
}

bot_bottle_sdk::export_plugin!(__TYPE__Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_names_the_provider() {
        let m = __TYPE__Plugin::manifest();
        assert_eq!(m.providers, vec!["__NAME__".to_string()]);
        assert_eq!(__TYPE__.info().name, "__NAME__");
    }

    #[test]
    fn unimplemented_operations_say_so() {
        let err = __TYPE__.provision(&ProvisionRequest::default()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unsupported);
    }
}
"#;

/// Creates the crate. `dir` defaults to `./<name>`; it must not exist or be
/// empty.
pub fn scaffold(
    name: &str,
    dir: Option<&Path>,
    sdk_path: Option<&Path>,
    kind: PluginKind,
    cwd: &Path,
) -> Result<Scaffolded, ScaffoldError> {
    if !is_valid_name(name) {
        return Err(ScaffoldError::InvalidName(name.into()));
    }
    if BUILTIN_BACKENDS.contains(&name) || BUILTIN_PROVIDERS.contains(&name) {
        return Err(ScaffoldError::Reserved(name.into()));
    }
    let sdk = match sdk_path {
        Some(p) => {
            let p = cwd.join(p);
            if !is_sdk_dir(&p) {
                return Err(ScaffoldError::NoSdk(p));
            }
            SdkSource::Path(std::fs::canonicalize(&p).unwrap_or(p))
        }
        None => source_sdk_dir().map_or(SdkSource::Registry, SdkSource::Path),
    };
    let dir = cwd.join(dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf));
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(ScaffoldError::NotEmpty(dir));
    }
    let write = |rel: &str, text: String| {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| ScaffoldError::Io {
                action: format!("creating {}", parent.display()),
                error,
            })?;
        }
        std::fs::write(&path, text).map_err(|error| ScaffoldError::Io {
            action: format!("writing {}", path.display()),
            error,
        })
    };
    write("Cargo.toml", cargo_toml(name, &sdk))?;
    write("src/lib.rs", lib_rs(name, kind))?;
    write(".gitignore", "/target\n".into())?;
    Ok(Scaffolded {
        dir: std::fs::canonicalize(&dir).unwrap_or(dir),
        library: library_file(name),
        sdk,
    })
}

/// `bot-bottle plugin new`.
pub fn new_command(
    name: &str,
    dir: Option<&Path>,
    sdk_path: Option<&Path>,
    kind: PluginKind,
    cwd: &Path,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let s = scaffold(name, dir, sdk_path, kind, cwd)?;
    let what = match kind {
        PluginKind::Backend => "backend",
        PluginKind::Provider => "agent provider",
    };
    writeln!(out, "created {what} plugin `{name}` in {}", s.dir.display())?;
    match &s.sdk {
        SdkSource::Path(p) => writeln!(out, "  bot-bottle-sdk from {}", p.display())?,
        SdkSource::Registry => {
            writeln!(out, "  bot-bottle-sdk {} from crates.io", sdk_requirement())?
        }
    }
    writeln!(out, "next:")?;
    writeln!(out, "  cd {} && cargo test && cargo build", s.dir.display())?;
    writeln!(
        out,
        "  bot-bottle plugin install target/debug/{}   (under $CARGO_TARGET_DIR if you set it)",
        s.library
    )?;
    match kind {
        PluginKind::Backend => {
            writeln!(out, "  bot-bottle start <agent> --backend {name} --dry-run")?
        }
        PluginKind::Provider => writeln!(
            out,
            "  use `agent_provider: {{template: {name}}}` in a bottle, then bot-bottle start <agent> --dry-run"
        )?,
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_rust_identifiers() {
        assert_eq!(camel("foo"), "Foo");
        assert_eq!(camel("my-engine-2"), "MyEngine2");
        assert_eq!(lib_name("my-engine"), "my_engine_plugin");
        assert_eq!(lib_name("bot-bottle-x"), "plugin_bot_bottle_x");
    }

    #[test]
    fn cargo_toml_uses_a_path_or_a_loadable_version() {
        let by_path = cargo_toml("foo", &SdkSource::Path("/src/bot \"bottle\"/sdk".into()));
        assert!(
            by_path.contains(r#"path = "/src/bot \"bottle\"/sdk""#),
            "{by_path}"
        );
        assert!(by_path.contains("[workspace]"));
        assert!(by_path.contains("crate-type = [\"cdylib\"]"));
        let by_version = cargo_toml("foo", &SdkSource::Registry);
        assert!(by_version.contains(&format!("bot-bottle-sdk = \"{}\"", sdk_requirement())));
        assert!(!by_version.contains("path ="));
    }

    #[test]
    fn the_generated_code_has_no_todo() {
        for kind in [PluginKind::Backend, PluginKind::Provider] {
            let code = lib_rs("foo-bar", kind);
            assert!(!code.contains("todo!") && !code.contains("unimplemented!"));
            assert!(!code.contains("__NAME__") && !code.contains("__TYPE__"));
            assert!(code.contains("pub struct FooBarPlugin;"));
        }
    }

    #[test]
    fn refuses_bad_names_and_non_empty_directories() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            scaffold("Foo", None, None, PluginKind::Backend, tmp.path()),
            Err(ScaffoldError::InvalidName(_))
        ));
        assert!(matches!(
            scaffold("docker", None, None, PluginKind::Backend, tmp.path()),
            Err(ScaffoldError::Reserved(_))
        ));
        std::fs::write(tmp.path().join("x"), "").unwrap();
        assert!(matches!(
            scaffold(
                "foo",
                Some(Path::new(".")),
                None,
                PluginKind::Backend,
                tmp.path()
            ),
            Err(ScaffoldError::NotEmpty(_))
        ));
    }
}
