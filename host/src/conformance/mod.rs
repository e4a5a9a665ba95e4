//! `bot-bottle conformance`: the sandbox-escape and lifecycle suite.
//!
//! It starts a real bottle on the chosen backend with a known route table,
//! a planted canary as the injected credential and the static probe agent
//! (`bot-bottle-test-agent`) as the agent. The agent runs every escape
//! attempt from inside (`batch`, one JSON line per probe); the suite reads
//! its output through [`Backend::logs`], so the same suite runs on any
//! backend. Every destination is a container the suite starts itself
//! ([`fixtures`]); nothing is sent anywhere else. See `README.md` beside
//! this file for the list of checks.

mod checks;
pub mod fixtures;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bot_bottle_sdk::{
    AuthScheme, Backend, BottleIdentity, EgressPolicy, EgressRoute, ErrorKind, GcRequest,
    ImageSpec, LaunchRequest, LogsRequest, ProvisionedFile, RouteOrigin, Secret, SecretMap,
    SlotAuth,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::plugins::{Registry, SearchPath};

use fixtures::{Fixtures, API_HOST, HTTPS_PORT, HTTP_PORT, OPEN_HOST, PRIVATE_HOST};

/// Why the suite could not run at all (as opposed to a failed check).
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// A probe binary is missing.
    #[error("{0}")]
    MissingBinary(String),
    /// Creating the suite's own test hosts failed.
    #[error("setting up the suite's test hosts: {0}")]
    Fixture(String),
    /// The backend could not be opened.
    #[error("opening backend `{name}`: {message}")]
    Backend {
        /// Backend name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// A local file operation failed.
    #[error("{0}")]
    Io(String),
}

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    /// The guarantee held.
    Pass,
    /// The guarantee did not hold (or could not be shown to).
    Fail,
    /// Not run on this backend or machine; `observed` says why.
    Skip,
}

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// Stable check name, e.g. `egress.no-route.http`.
    pub check: String,
    /// PASS, FAIL or SKIP.
    pub result: Outcome,
    /// What was attempted.
    pub tried: String,
    /// What happened (or why it was skipped).
    pub observed: String,
}

/// Everything the suite created, removed on every exit path (also from the
/// signal handler, so it is shared and idempotent).
#[derive(Default)]
pub struct Teardown {
    inner: Mutex<TeardownItems>,
    // Held for a whole teardown, so the main thread's final teardown waits
    // for one a signal started (which then exits the process).
    busy: Mutex<()>,
}

#[derive(Default)]
struct TeardownItems {
    backend: Option<Arc<dyn Backend>>,
    bottles: Vec<String>,
    containers: Vec<String>,
    networks: Vec<String>,
    dirs: Vec<PathBuf>,
}

impl Teardown {
    fn lock(&self) -> std::sync::MutexGuard<'_, TeardownItems> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Records a fixture container.
    pub fn add_container(&self, name: &str) {
        self.lock().containers.push(name.to_string());
    }
    /// Records a fixture network.
    pub fn add_network(&self, name: &str) {
        self.lock().networks.push(name.to_string());
    }
    fn add_dir(&self, dir: &Path) {
        self.lock().dirs.push(dir.to_path_buf());
    }
    fn set_backend(&self, backend: Arc<dyn Backend>) {
        self.lock().backend = Some(backend);
    }
    fn add_bottle(&self, id: &str) {
        self.lock().bottles.push(id.to_string());
    }
    fn forget_bottle(&self, id: &str) {
        self.lock().bottles.retain(|b| b != id);
    }
    /// Removes everything recorded so far.
    pub fn run(&self) {
        let _busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let items = std::mem::take(&mut *self.lock());
        if let Some(backend) = &items.backend {
            for id in &items.bottles {
                let _ = backend.remove(id);
            }
        }
        fixtures::remove(&items.containers, &items.networks);
        for d in &items.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Options of `bot-bottle conformance`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--backend`; else `BOT_BOTTLE_BACKEND`, else `docker`.
    pub backend: Option<String>,
    /// `--json`.
    pub json: bool,
}

/// Runs the suite, prints the report, and returns the exit code: 0 when no
/// check failed, 1 when one did.
pub fn command(home: &Path, opts: &Options) -> anyhow::Result<i32> {
    let name = opts
        .backend
        .clone()
        .or_else(|| {
            std::env::var("BOT_BOTTLE_BACKEND")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| crate::app::DEFAULT_BACKEND.to_string());
    let teardown = Arc::new(Teardown::default());
    teardown_on_signal(teardown.clone());
    let human = !opts.json;
    let result = run_suite(home, &name, &teardown, human);
    teardown.run();
    let results = result?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    let failed = results.iter().filter(|r| r.result == Outcome::Fail).count();
    let passed = results.iter().filter(|r| r.result == Outcome::Pass).count();
    let skipped = results.len() - failed - passed;
    eprintln!(
        "conformance on `{name}`: {passed} passed, {failed} failed, {skipped} skipped; everything the suite created is removed"
    );
    Ok(if failed == 0 { 0 } else { 1 })
}

fn teardown_on_signal(teardown: Arc<Teardown>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("\nsignal {sig}: removing everything the conformance suite created");
            teardown.run();
            std::process::exit(128 + sig);
        }
    });
}

/// Collects results and prints each line as it is decided.
pub struct Report {
    results: Vec<CheckResult>,
    human: bool,
}

impl Report {
    fn add(
        &mut self,
        check: &str,
        result: Outcome,
        tried: impl Into<String>,
        observed: impl Into<String>,
    ) {
        let r = CheckResult {
            check: check.to_string(),
            result,
            tried: tried.into(),
            observed: observed.into(),
        };
        if self.human {
            let word = match r.result {
                Outcome::Pass => "PASS",
                Outcome::Fail => "FAIL",
                Outcome::Skip => "SKIP",
            };
            println!(
                "{word} {:<40} tried: {}; observed: {}",
                r.check, r.tried, r.observed
            );
        }
        self.results.push(r);
    }
    fn pass(&mut self, check: &str, tried: impl Into<String>, observed: impl Into<String>) {
        self.add(check, Outcome::Pass, tried, observed)
    }
    fn fail(&mut self, check: &str, tried: impl Into<String>, observed: impl Into<String>) {
        self.add(check, Outcome::Fail, tried, observed)
    }
    fn skip(&mut self, check: &str, tried: impl Into<String>, why: impl Into<String>) {
        self.add(check, Outcome::Skip, tried, why)
    }
    fn check(
        &mut self,
        check: &str,
        ok: bool,
        tried: impl Into<String>,
        observed: impl Into<String>,
    ) {
        let outcome = if ok { Outcome::Pass } else { Outcome::Fail };
        self.add(check, outcome, tried, observed)
    }
}

/// The probe binaries, found as the README says.
struct Binaries {
    agent: PathBuf,
    upstream: PathBuf,
}

const BUILD_HINT: &str = "build them with: RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --target x86_64-unknown-linux-gnu -p bot-bottle-test-agent -p bot-bottle-test-upstream -p bot-bottle-egress (or point BOT_BOTTLE_PROBE_AGENT / BOT_BOTTLE_TEST_UPSTREAM at them)";

fn find_binary(var: &str, name: &str) -> Result<PathBuf, ConformanceError> {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(ConformanceError::MissingBinary(format!(
                "{var}={} is not a file; {BUILD_HINT}",
                p.display()
            )))
        };
    }
    let mut tried = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        // target/<profile>/bot-bottle (or target/<profile>/deps/ for tests)
        let mut up = vec![dir.clone()];
        if let Some(p) = dir.parent() {
            up.push(p.to_path_buf());
        }
        for d in up {
            if let (Some(profile), Some(target)) = (d.file_name(), d.parent()) {
                tried.push(
                    target
                        .join("x86_64-unknown-linux-gnu")
                        .join(profile)
                        .join(name),
                );
                tried.push(target.join("x86_64-unknown-linux-gnu/release").join(name));
            }
        }
        tried.push(dir.join(name));
    }
    tried.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        ConformanceError::MissingBinary(format!(
            "the static probe binary `{name}` was not found ({var} is unset, and it is not in the target directory beside bot-bottle); {BUILD_HINT}"
        ))
    })
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if getrandom::fill(&mut buf).is_err() {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        buf = Sha256::digest(format!("{t}-{}", std::process::id()).as_bytes())[..bytes].to_vec();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the agent's files are, inside the bottle.
pub const PROBE_DIR: &str = "/home/agent/.config/conformance";
/// What the agent holds in place of the credential.
pub const PLACEHOLDER: &str = "placeholder-not-the-real-token";
/// The exit code the probe batch ends with, which `wait` must return.
pub const PROBE_EXIT: i32 = 3;

/// The route table the bottle gets.
pub fn routes() -> Vec<EgressRoute> {
    let auth = Some(SlotAuth {
        scheme: AuthScheme::Bearer,
        token_env: "EGRESS_TOKEN_0".into(),
    });
    let route = |host: &str, port: u16, auth: Option<SlotAuth>, allow_private: bool| EgressRoute {
        host: host.into(),
        port: Some(port),
        auth,
        matches: vec![],
        allow_private,
        origin: RouteOrigin::Manifest,
    };
    vec![
        route(API_HOST, HTTPS_PORT, auth.clone(), true),
        route(API_HOST, HTTP_PORT, auth, true),
        route(OPEN_HOST, HTTP_PORT, None, true),
        route(OPEN_HOST, HTTPS_PORT, None, true),
        // Routed, but the name resolves to a private address the route does
        // not allow: the proxy must refuse.
        route(PRIVATE_HOST, HTTP_PORT, None, false),
    ]
}

fn plugin_capabilities(registry: &Registry, backend: &str) -> Vec<String> {
    registry
        .candidates
        .iter()
        .find(|c| c.usable() && c.backends.iter().any(|b| b == backend))
        .map(|c| c.capabilities.clone())
        .unwrap_or_default()
}

fn run_suite(
    home: &Path,
    backend_name: &str,
    teardown: &Arc<Teardown>,
    human: bool,
) -> Result<Vec<CheckResult>, ConformanceError> {
    let mut report = Report {
        results: Vec::new(),
        human,
    };
    let registry = Registry::discover(&SearchPath::from_env(home));
    let caps = plugin_capabilities(&registry, backend_name);
    let no_engine = caps.iter().any(|c| c == "no-engine");
    let is_docker = backend_name == "docker";

    let work = std::env::temp_dir().join(format!(
        "bot-bottle-conformance-{}-{}",
        std::process::id(),
        random_hex(4)
    ));
    std::fs::create_dir_all(&work)
        .map_err(|e| ConformanceError::Io(format!("creating {}: {e}", work.display())))?;
    teardown.add_dir(&work);

    let canary = format!("bbconf-canary-{}", random_hex(16));
    // The escape part needs the probe binaries and the test hosts; a
    // backend that runs no sandbox gets only the lifecycle checks.
    let mut escape_skip: Option<String> = None;
    let mut fx: Option<Fixtures> = None;
    let mut bins: Option<Binaries> = None;
    if no_engine {
        escape_skip = Some(format!(
            "backend `{backend_name}` runs no sandbox (plugin capability `no-engine`)"
        ));
    } else {
        let b = Binaries {
            agent: find_binary("BOT_BOTTLE_PROBE_AGENT", "bot-bottle-test-agent")?,
            upstream: find_binary("BOT_BOTTLE_TEST_UPSTREAM", "bot-bottle-test-upstream")?,
        };
        if crate::app::egress_binary().is_none() {
            return Err(ConformanceError::MissingBinary(format!(
                "the static `bot-bottle-egress` was not found (BOT_BOTTLE_EGRESS_BIN is unset and it is not beside bot-bottle); {BUILD_HINT}"
            )));
        }
        match fixtures::engine_ready() {
            Ok(()) => {
                let f = fixtures::create(&b.upstream, &sha256_hex(&canary), &work, teardown)?;
                if is_docker {
                    // The plugin reads its settings from the process
                    // environment; it must be set before the backend opens.
                    std::env::set_var("BOT_BOTTLE_DOCKER_EGRESS_NETWORK", &f.network);
                }
                fx = Some(f);
            }
            Err(e) => {
                escape_skip = Some(format!(
                    "the suite's test hosts need a Docker engine, and none answers ({e})"
                ))
            }
        }
        bins = Some(b);
    }

    let backend: Arc<dyn Backend> = Arc::from(registry.open_backend(backend_name).map_err(
        |e| ConformanceError::Backend {
            name: backend_name.to_string(),
            message: e.to_string(),
        },
    )?);
    teardown.set_backend(backend.clone());

    // Lifecycle: removing what does not exist succeeds.
    let unknown = format!("conformance-absent-{}", random_hex(4));
    match backend.remove(&unknown) {
        Ok(()) => report.pass(
            "lifecycle.remove-unknown",
            format!("remove `{unknown}`, which never existed"),
            "succeeded",
        ),
        Err(e) => report.fail(
            "lifecycle.remove-unknown",
            format!("remove `{unknown}`, which never existed"),
            format!("error: {e}"),
        ),
    }

    let id = crate::state::new_bottle_id("conformance");
    // A real state directory, as `start` makes, so plugins that find a
    // bottle's state by id (and `bot-bottle list active`) see this one.
    let meta = crate::state::Metadata {
        id: id.clone(),
        agent: "conformance-probe".into(),
        bottles: vec!["conformance".into()],
        backend: backend_name.to_string(),
        label: "conformance".into(),
        cwd: std::env::current_dir().unwrap_or_else(|_| work.clone()),
        created_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let state_dir = crate::state::create(home, &meta)
        .map_err(|e| ConformanceError::Io(format!("creating the state directory of {id}: {e}")))?;
    teardown.add_dir(&state_dir);

    let probes = checks::probes(fx.as_ref(), &canary);
    let batch = serde_json::json!({ "exit_code": PROBE_EXIT, "probes": probes });
    let image = match (&bins, is_docker) {
        (Some(b), true) => {
            let ctx = work.join("agent-ctx");
            std::fs::create_dir_all(&ctx)
                .and_then(|_| std::fs::copy(&b.agent, ctx.join("agent")).map(|_| ()))
                .map_err(|e| ConformanceError::Io(format!("agent image context: {e}")))?;
            ImageSpec::Dockerfile {
                dockerfile: "FROM scratch\nCOPY agent /agent\n".into(),
                context: Some(ctx),
            }
        }
        (Some(b), false) => ImageSpec::Image {
            reference: fixtures::rootfs(&b.agent, &work)?.display().to_string(),
        },
        (None, _) => ImageSpec::Image {
            reference: "bot-bottle-conformance-agent".into(),
        },
    };
    let mut policy = EgressPolicy {
        log: 2,
        routes: routes(),
        ..EgressPolicy::default()
    };
    if let Some(f) = &fx {
        policy.extra_roots_pem = vec![f.api_cert.clone()];
        if !is_docker {
            // Outside Docker's network the proxy cannot use Docker's DNS for
            // the test names; pin them to the containers.
            for h in [API_HOST, OPEN_HOST, PRIVATE_HOST] {
                policy.resolve_overrides.insert(h.into(), f.api_ip.clone());
            }
            policy
                .resolve_overrides
                .insert(fixtures::BLOCKED_HOST.into(), f.other_ip.clone());
        }
    }
    let mut egress_env = SecretMap::new();
    egress_env.insert("EGRESS_TOKEN_0", Secret::new(canary.clone()));
    let request = LaunchRequest {
        bottle: BottleIdentity {
            id: id.clone(),
            agent: "conformance-probe".into(),
            label: "conformance".into(),
            bottles: vec!["conformance".into()],
            created_at: meta.created_at,
        },
        image,
        command: vec![
            "/agent".into(),
            "batch".into(),
            format!("{PROBE_DIR}/probes.json"),
        ],
        user: "1000:1000".into(),
        workdir: "/home/agent".into(),
        workspace: None,
        mounts: vec![],
        env: BTreeMap::from([("CONFORMANCE_API_TOKEN".into(), PLACEHOLDER.into())]),
        files: vec![
            ProvisionedFile::new(
                format!("{PROBE_DIR}/auth.json"),
                format!("{{\"token\":\"{PLACEHOLDER}\"}}").into_bytes(),
            )
            .with_mode(0o600),
            ProvisionedFile::new(
                format!("{PROBE_DIR}/probes.json"),
                batch.to_string().into_bytes(),
            ),
        ],
        egress: policy,
        egress_env,
        tty: false,
        state_dir,
        egress_binary: crate::app::egress_binary(),
    };

    teardown.add_bottle(&id);
    let launched = backend.launch(request);
    let summary = match launched {
        Ok(s) => s,
        Err(e) => {
            let msg = redact(&e.to_string(), &canary);
            // A backend whose own doctor says its engine is not ready here
            // (e.g. smolmachines without a usable /dev/kvm) cannot run the
            // suite on this machine: SKIP with its reason, not FAIL.
            let not_ready: Vec<String> = match backend.doctor() {
                Ok(r) => r
                    .checks
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect(),
                Err(e) => vec![format!("doctor failed: {e}")],
            };
            let skippable = matches!(
                e.kind,
                ErrorKind::EngineUnavailable | ErrorKind::Unsupported
            ) || !not_ready.is_empty();
            let why = if not_ready.is_empty() {
                format!("launch failed: {msg}")
            } else {
                format!(
                    "the backend's doctor reports it is not ready on this machine ({}); launch failed: {msg}",
                    not_ready.join("; ")
                )
            };
            report.add(
                "lifecycle.launch",
                if skippable {
                    Outcome::Skip
                } else {
                    Outcome::Fail
                },
                "launch a bottle running the probe agent",
                why.clone(),
            );
            let _ = backend.remove(&id);
            teardown.forget_bottle(&id);
            let reason = format!("no bottle: {why}");
            checks::skip_all_after_launch(&mut report, &reason);
            return Ok(report.results);
        }
    };
    report.pass(
        "lifecycle.launch",
        "launch a bottle running the probe agent",
        format!("bottle {} is {:?}", summary.id, summary.state),
    );

    // While it is live: list shows it, and a gc dry run spares it.
    match backend.list() {
        Ok(list) if list.iter().any(|b| b.id == id) => report.pass(
            "lifecycle.list-shows-bottle",
            "list after launch",
            format!("{id} listed"),
        ),
        Ok(list) if no_engine => report.skip(
            "lifecycle.list-shows-bottle",
            "list after launch",
            format!(
                "backend runs no sandbox; list returned {} bottle(s)",
                list.len()
            ),
        ),
        Ok(list) => report.fail(
            "lifecycle.list-shows-bottle",
            "list after launch",
            format!("{id} missing from {} listed bottle(s)", list.len()),
        ),
        Err(e) => report.fail(
            "lifecycle.list-shows-bottle",
            "list after launch",
            format!("error: {e}"),
        ),
    }
    match backend.gc(&GcRequest { dry_run: true }) {
        Ok(r) if r.removed.iter().any(|x| x.contains(&id)) => report.fail(
            "lifecycle.gc-spares-live",
            "gc --dry-run while the bottle is live",
            format!("would remove the live bottle: {}", r.removed.join("; ")),
        ),
        Ok(r) => report.pass(
            "lifecycle.gc-spares-live",
            "gc --dry-run while the bottle is live",
            format!(
                "live bottle untouched ({} other item(s) would be reaped)",
                r.removed.len()
            ),
        ),
        Err(e) => report.fail(
            "lifecycle.gc-spares-live",
            "gc --dry-run while the bottle is live",
            format!("error: {e}"),
        ),
    }

    // Host-side: what the engine shows of the agent, while it exists.
    let inspect = if is_docker && !no_engine {
        // The agent's container only: the sidecar holds the credential by design.
        Some(fixtures::inspect_by_label(&[
            &format!("bot-bottle.bottle={id}"),
            "bot-bottle.role=agent",
        ]))
    } else {
        None
    };

    let code = wait_with_timeout(backend.clone(), &id, Duration::from_secs(240));
    let wait_tried = format!("wait for the probe, which exits {PROBE_EXIT}");
    match &code {
        Ok(c) if *c == PROBE_EXIT => report.pass(
            "lifecycle.wait-exit-code",
            wait_tried,
            format!("wait returned {c}"),
        ),
        // The dry-run example returns 0 without running anything.
        Ok(c) if no_engine => report.skip(
            "lifecycle.wait-exit-code",
            wait_tried,
            format!("wait returned {c}; the backend runs no sandbox, so nothing ran"),
        ),
        Ok(c) => report.fail(
            "lifecycle.wait-exit-code",
            wait_tried,
            format!("wait returned {c}"),
        ),
        Err(e) => report.fail("lifecycle.wait-exit-code", wait_tried, redact(e, &canary)),
    }

    let mut agent_out = Vec::new();
    let logs_ok = backend.logs(&id, &LogsRequest::default(), &mut agent_out);
    match &logs_ok {
        Ok(()) => report.pass(
            "lifecycle.logs",
            "logs of the agent",
            format!("{} bytes", agent_out.len()),
        ),
        Err(e) => report.fail("lifecycle.logs", "logs of the agent", format!("error: {e}")),
    }
    let mut egress_out = Vec::new();
    let egress_logs = backend.logs(
        &id,
        &LogsRequest {
            egress: true,
            follow: false,
        },
        &mut egress_out,
    );

    let agent_text = String::from_utf8_lossy(&agent_out).into_owned();
    let ctx = checks::Context {
        fx: fx.as_ref(),
        canary: &canary,
        results: checks::parse_batch(&agent_text),
        agent_text: &agent_text,
        egress_log: egress_logs.map(|_| String::from_utf8_lossy(&egress_out).into_owned()),
        inspect,
        backend: backend_name,
    };
    match &escape_skip {
        Some(why) => checks::skip_escapes(&mut report, why),
        None => checks::evaluate(&mut report, &ctx),
    }

    // Teardown contract.
    match backend.remove(&id) {
        Ok(()) => report.pass("lifecycle.remove", format!("remove {id}"), "succeeded"),
        Err(e) => report.fail(
            "lifecycle.remove",
            format!("remove {id}"),
            format!("error: {e}"),
        ),
    }
    teardown.forget_bottle(&id);
    match backend.list() {
        Ok(list) if list.iter().any(|b| b.id == id) => report.fail(
            "lifecycle.list-after-remove",
            "list after remove",
            format!("{id} is still listed"),
        ),
        Ok(_) => report.pass(
            "lifecycle.list-after-remove",
            "list after remove",
            format!("{id} gone"),
        ),
        Err(e) => report.fail(
            "lifecycle.list-after-remove",
            "list after remove",
            format!("error: {e}"),
        ),
    }
    if is_docker {
        match fixtures::inspect_by_label(&[&format!("bot-bottle.bottle={id}")]) {
            Ok((ids, _)) => report.check(
                "lifecycle.nothing-left",
                ids.is_empty(),
                "docker ps -a for the bottle's labels after remove",
                if ids.is_empty() {
                    "no container left".to_string()
                } else {
                    format!("left behind: {}", ids.join(", "))
                },
            ),
            Err(e) => report.fail(
                "lifecycle.nothing-left",
                "docker ps -a after remove",
                e.to_string(),
            ),
        }
    }
    match backend.remove(&id) {
        Ok(()) => report.pass(
            "lifecycle.remove-again",
            format!("remove {id} a second time"),
            "succeeded",
        ),
        Err(e) => report.fail(
            "lifecycle.remove-again",
            format!("remove {id} a second time"),
            format!("error: {e}"),
        ),
    }
    Ok(report.results)
}

fn redact(text: &str, canary: &str) -> String {
    text.replace(canary, "<canary>")
}

/// `wait` on a thread, so a backend that never returns fails the check
/// instead of hanging the suite.
fn wait_with_timeout(backend: Arc<dyn Backend>, id: &str, limit: Duration) -> Result<i32, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let id = id.to_string();
    std::thread::spawn(move || {
        let _ = tx.send(backend.wait(&id).map_err(|e| format!("error: {e}")));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| Err(format!("wait did not return within {}s", limit.as_secs())))
}
