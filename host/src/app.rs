//! The commands, on top of the library.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use bot_bottle_manifest::{EnvValue, Manifest, ManifestIndex};
use bot_bottle_sdk::{
    Backend, BottleIdentity, EgressPolicy, GcRequest, LaunchRequest, LogsRequest, PluginError,
    ProviderOptions, SecretMap,
};

use crate::cli::{Cli, Command, PluginCommand, StartArgs};
use crate::plan::{self, EnvSource, HostContext, LaunchPlan, PlanInput};
use crate::plugins::{Registry, SearchPath};
use crate::provider::provider_host_vars;
use crate::resolve::{effective_env, egress_resolve_token_values};
use crate::state;

/// The default backend when neither `--backend` nor `BOT_BOTTLE_BACKEND` is set.
pub const DEFAULT_BACKEND: &str = "docker";

/// Process-wide facts every command uses.
pub struct Context {
    /// The user's home.
    pub home: PathBuf,
    /// The working directory.
    pub cwd: PathBuf,
    /// `--verbose`.
    pub verbose: bool,
}

impl Context {
    /// From the process environment.
    pub fn from_env(verbose: bool) -> Result<Context> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("HOME is not set"))?;
        let cwd = std::env::current_dir().context("reading the current directory")?;
        Ok(Context { home, cwd, verbose })
    }

    fn registry(&self) -> Registry {
        let registry = Registry::discover(&SearchPath::from_env(&self.home));
        if self.verbose {
            for c in registry.candidates.iter().filter(|c| c.status != "loaded") {
                eprintln!(
                    "plugin {} {}: {}",
                    c.path.display(),
                    c.status,
                    c.reason.as_deref().unwrap_or("")
                );
                if let Some(d) = &c.detail {
                    eprintln!("{d}");
                }
            }
        }
        registry
    }
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    let verbose = cli.verbose;
    bot_bottle_sdk::host::set_log_handler(move |_, level, msg| {
        if verbose || level <= bot_bottle_sdk::log::Level::Info {
            eprintln!("{msg}");
        }
    });
    let ctx = Context::from_env(verbose)?;
    match cli.command {
        Command::Start(args) => start(&ctx, args),
        Command::Info { agent } => info(&ctx, &agent).map(|_| 0),
        Command::List { what, json } => match what.as_deref() {
            Some("active") => list_active(&ctx, json).map(|_| 0),
            _ => list_agents(&ctx, json).map(|_| 0),
        },
        Command::Stop { id } => stop(&ctx, &id).map(|_| 0),
        Command::Logs { id, egress, follow } => logs(&ctx, &id, egress, follow).map(|_| 0),
        Command::Cleanup { yes } => cleanup(&ctx, yes).map(|_| 0),
        Command::Doctor { backend } => doctor(&ctx, backend.as_deref()),
        Command::Plugin(command) => plugin(&ctx, command),
        Command::Conformance { backend, json } => {
            crate::conformance::command(&ctx.home, &crate::conformance::Options { backend, json })
        }
    }
}

fn load_index(ctx: &Context) -> Result<ManifestIndex> {
    let index = ManifestIndex::discover(&ctx.home, &ctx.cwd)?;
    for warning in index.warnings() {
        eprintln!("warning: {warning}");
    }
    Ok(index)
}

/// The plan input for a loaded manifest.
pub fn plan_input(
    manifest: &Manifest,
    workspace: Option<PathBuf>,
    headless_prompt: Option<String>,
) -> PlanInput {
    let bottle = &manifest.bottle;
    let provider = &bottle.agent_provider;
    let mut env: BTreeMap<String, EnvSource> = bottle
        .env
        .iter()
        .map(|(k, v)| {
            let source = match v {
                EnvValue::Literal(s) => EnvSource::Literal(s.clone()),
                EnvValue::HostVar(n) => EnvSource::HostVar(n.clone()),
                EnvValue::Prompt(p) => EnvSource::Prompt(p.clone()),
            };
            (k.clone(), source)
        })
        .collect();
    if let Some(name) = &bottle.git_user.name {
        for k in ["GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"] {
            env.entry(k.into())
                .or_insert_with(|| EnvSource::Literal(name.clone()));
        }
    }
    if let Some(email) = &bottle.git_user.email {
        for k in ["GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"] {
            env.entry(k.into())
                .or_insert_with(|| EnvSource::Literal(email.clone()));
        }
    }
    PlanInput {
        agent: manifest.agent.name.clone(),
        bottles: manifest.bottle_names.clone(),
        system_prompt: Some(manifest.agent.system_prompt.clone()).filter(|p| !p.is_empty()),
        skills: manifest.agent.skills.clone(),
        provider: ProviderOptions {
            template: provider.template.clone(),
            forward_host_credentials: provider.forward_host_credentials,
            auth_token: provider.auth_token.clone(),
            settings: provider.settings.clone(),
        },
        dockerfile: provider.dockerfile.clone(),
        image: bottle.image.clone(),
        env,
        routes: bottle.egress.routes.clone(),
        egress_log: bottle.egress.log,
        mounts: bottle
            .mounts
            .iter()
            .map(|m| bot_bottle_sdk::Mount {
                source: m.source.clone(),
                target: m.target.clone(),
                read_only: m.read_only,
            })
            .collect(),
        workspace,
        headless_prompt,
    }
}

fn host_env_snapshot() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

fn choose_backend(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| {
            std::env::var("BOT_BOTTLE_BACKEND")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_BACKEND.to_string())
}

/// Where the egress proxy binary is: `BOT_BOTTLE_EGRESS_BIN`, else a static
/// build in the cargo target tree, else beside the executable.
pub fn egress_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BOT_BOTTLE_EGRESS_BIN").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let mut candidates = Vec::new();
    // target/<profile>/bot-bottle → target/x86_64-unknown-linux-gnu/<profile>/
    if let (Some(profile), Some(target)) = (dir.file_name(), dir.parent()) {
        candidates.push(
            target
                .join("x86_64-unknown-linux-gnu")
                .join(profile)
                .join("bot-bottle-egress"),
        );
        candidates.push(
            target
                .join("x86_64-unknown-linux-gnu/release")
                .join("bot-bottle-egress"),
        );
    }
    candidates.push(dir.join("bot-bottle-egress"));
    candidates.into_iter().find(|p| p.is_file())
}

fn start(ctx: &Context, args: StartArgs) -> Result<i32> {
    let index = load_index(ctx)?;
    let manifest = index.load(&args.agent, &args.bottles)?;
    let workspace = if args.no_workspace {
        None
    } else {
        let dir = args.workspace.clone().unwrap_or_else(|| ctx.cwd.clone());
        Some(std::fs::canonicalize(&dir).with_context(|| format!("workspace {}", dir.display()))?)
    };
    let input = plan_input(&manifest, workspace, args.prompt.clone());
    let registry = ctx.registry();
    let provider = registry.open_provider(&input.provider.template)?;
    let host_env = host_env_snapshot();
    let host = HostContext {
        home: ctx.home.clone(),
        provider_vars: provider_host_vars(&host_env),
    };
    let plan = plan::prepare(&input, provider.as_ref(), &host)?;
    for host in &plan.shadowed_routes {
        eprintln!(
            "warning: the manifest route for {host} is ignored: the `{}` provider owns that host",
            plan.provider
        );
    }

    // Resolve once, in the host, for every backend.
    let env = effective_env(
        |name| host_env.get(name).cloned(),
        &plan.agent_provision.provisioned_env,
    );
    let token_values = egress_resolve_token_values(&plan.egress_plan, &env)?;
    let backend_name = choose_backend(args.backend.as_deref());
    let backend: Arc<dyn Backend> = Arc::from(registry.open_backend(&backend_name)?);
    let slots: Vec<&str> = token_values.names().collect();

    if args.dry_run {
        if args.json {
            let v = plan.redacted_json(&backend_name, &slots);
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            print_preflight(&mut std::io::stdout(), &plan, &backend_name)?;
            println!("dry run: nothing was created");
        }
        return Ok(0);
    }

    print_preflight(&mut std::io::stderr(), &plan, &backend_name)?;
    let interactive = !args.headless && std::io::stdin().is_terminal();
    if interactive && !args.yes && !confirm("Launch this bottle?")? {
        eprintln!("not launched");
        return Ok(1);
    }
    let agent_env = resolve_agent_env(&plan, &host_env, interactive)?;

    let label = args.label.clone().unwrap_or_else(|| plan.agent.clone());
    let id = state::new_bottle_id(&label);
    let meta = state::Metadata {
        id: id.clone(),
        agent: plan.agent.clone(),
        bottles: plan.bottles.clone(),
        backend: backend_name.clone(),
        label: label.clone(),
        cwd: ctx.cwd.clone(),
        created_at: state::now(),
    };
    let state_dir = state::create(&ctx.home, &meta)
        .with_context(|| format!("creating the state directory for {id}"))?;
    let secrets = token_values.clone();
    let request = launch_request(
        &plan,
        &meta,
        state_dir.clone(),
        agent_env,
        token_values,
        interactive,
    );
    eprintln!("starting bottle {id} on {backend_name}");
    // Ctrl-C (without a TTY), SIGTERM and SIGHUP tear the bottle down, also
    // during the launch; with a TTY in raw mode Ctrl-C goes to the agent.
    let launching = Arc::new(std::sync::Mutex::new(()));
    let launch_guard = launching.lock().unwrap_or_else(|p| p.into_inner());
    crate::signals::teardown_on_signal(backend.clone(), id.clone(), launching.clone());
    let summary = match backend.launch(request) {
        Ok(summary) => summary,
        Err(e) => {
            drop(launch_guard);
            crate::signals::yield_to_teardown();
            // The backend contract says a failed launch leaves nothing
            // behind; remove is idempotent, so make sure of it. When the
            // engine itself went away, that removal fails too, and the user
            // must learn that something may be left and how to remove it.
            let removed = backend.remove(&id);
            let _ = std::fs::remove_dir_all(&state_dir);
            let hint = e
                .hint
                .as_ref()
                .map(|h| format!("\n  hint: {h}"))
                .unwrap_or_default();
            let aftermath = removal_outcome(removed, &backend_name);
            bail!(
                "{}",
                redact(
                    &format!("launching on `{backend_name}` failed: {e}{hint}{aftermath}"),
                    &secrets
                )
            );
        }
    };
    drop(launch_guard);
    crate::signals::yield_to_teardown();
    if let Some(log) = &summary.egress_log {
        eprintln!("egress log: {}", log.display());
    }

    let attached = backend.attach(&id, interactive);
    crate::signals::yield_to_teardown();
    let code = match attached {
        Ok(code) => code,
        Err(e) => {
            let aftermath = removal_outcome(backend.remove(&id), &backend_name);
            bail!(
                "{}",
                redact(&format!("attaching to {id}: {e}{aftermath}"), &secrets)
            );
        }
    };
    backend.remove(&id).map_err(|e| {
        anyhow!(
            "{}",
            redact(
                &format!("removing {id}: {e}\n  run `bot-bottle cleanup` to remove what is left"),
                &secrets
            )
        )
    })?;
    eprintln!("bottle {id} finished (agent exit code {code}); its resources are removed");
    Ok(code)
}

/// What the user must know after removing a bottle whose session failed:
/// that nothing is left, or what to run once the engine answers again.
fn removal_outcome(removed: Result<(), PluginError>, backend_name: &str) -> String {
    match removed {
        Ok(()) => "\n  the bottle's resources were removed".to_string(),
        Err(r) => format!(
            "\n  removing the bottle failed too ({r});\n  \
             run `bot-bottle cleanup` once the {backend_name} engine is back"
        ),
    }
}

/// Replaces every resolved secret value in a plugin's message. Plugins must
/// never put a value in an error, but the host does not take their word for it.
pub fn redact(message: &str, secrets: &SecretMap) -> String {
    let mut out = message.to_string();
    for (_, value) in secrets.iter() {
        if value.expose().len() >= 4 {
            out = out.replace(value.expose(), "<redacted>");
        }
    }
    out
}

fn launch_request(
    plan: &LaunchPlan,
    meta: &state::Metadata,
    state_dir: PathBuf,
    agent_env: BTreeMap<String, String>,
    token_values: SecretMap,
    tty: bool,
) -> LaunchRequest {
    let mut env = plan.agent_provision.env.clone();
    env.extend(agent_env);
    LaunchRequest {
        bottle: BottleIdentity {
            id: meta.id.clone(),
            agent: meta.agent.clone(),
            label: meta.label.clone(),
            bottles: meta.bottles.clone(),
            created_at: meta.created_at,
        },
        image: plan.image.clone(),
        command: plan.command.clone(),
        user: plan.user.clone(),
        workdir: plan.workdir.clone(),
        workspace: plan.workspace.clone(),
        mounts: plan.mounts.clone(),
        env,
        files: plan.files.clone(),
        egress: EgressPolicy::from_plan(&plan.egress_plan, plan.egress_log),
        egress_env: token_values,
        tty,
        state_dir,
        egress_binary: egress_binary(),
    }
}

/// Values for the bottle's `env`: literals, host variables, and answers to
/// prompts (asked on the terminal, never echoed).
fn resolve_agent_env(
    plan: &LaunchPlan,
    host_env: &BTreeMap<String, String>,
    interactive: bool,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, source) in &plan.env {
        let value = match source {
            EnvSource::Literal(v) => v.clone(),
            EnvSource::HostVar(var) => host_env.get(var).cloned().ok_or_else(|| {
                anyhow!("env.{name} copies host variable `{var}`, which is not set")
            })?,
            EnvSource::Prompt(text) => {
                if !interactive {
                    bail!("env.{name} asks for a value on the terminal, but this launch has none (headless or no TTY)");
                }
                let prompt = text.clone().unwrap_or_else(|| format!("Value for {name}"));
                rpassword::prompt_password(format!("{prompt}: "))
                    .with_context(|| format!("reading env.{name} from the terminal"))?
            }
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

fn confirm(question: &str) -> Result<bool> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// Human summary of what a launch will do.
pub fn print_preflight(out: &mut dyn Write, plan: &LaunchPlan, backend: &str) -> Result<()> {
    writeln!(out, "agent:    {} (provider {})", plan.agent, plan.provider)?;
    writeln!(out, "bottles:  {}", plan.bottles.join(", "))?;
    writeln!(out, "backend:  {backend}")?;
    match &plan.image {
        bot_bottle_sdk::ImageSpec::Image { reference } => writeln!(out, "image:    {reference}")?,
        bot_bottle_sdk::ImageSpec::Dockerfile { context, .. } => writeln!(
            out,
            "image:    built from a Dockerfile{}",
            context
                .as_ref()
                .map(|c| format!(" in {}", c.display()))
                .unwrap_or_else(|| format!(" (provider {})", plan.provider))
        )?,
    }
    if let Some(ws) = &plan.workspace {
        writeln!(out, "workspace: {} -> {}", ws.source.display(), ws.target)?;
    }
    writeln!(out, "egress routes (everything else is refused):")?;
    if plan.egress_plan.routes.is_empty() {
        writeln!(out, "  (none: the agent has no network at all)")?;
    }
    for r in &plan.egress_plan.routes {
        let auth = match &r.auth {
            Some(a) => format!(
                " auth {} from {} ({})",
                a.scheme.header_prefix(),
                plan.egress_plan.token_env_map[&a.token_env],
                a.token_env
            ),
            None => String::new(),
        };
        let port = r.port.map(|p| format!(":{p}")).unwrap_or_default();
        let matches = if r.matches.is_empty() {
            String::new()
        } else {
            format!(" ({} match rule(s))", r.matches.len())
        };
        let origin = match &r.origin {
            bot_bottle_sdk::RouteOrigin::Provider(p) => format!(" [provider {p}]"),
            bot_bottle_sdk::RouteOrigin::Manifest => String::new(),
        };
        writeln!(out, "  {}{port}{auth}{matches}{origin}", r.host)?;
    }
    if !plan.env.is_empty() {
        let names: Vec<&str> = plan.env.keys().map(String::as_str).collect();
        writeln!(out, "env:      {}", names.join(", "))?;
    }
    writeln!(
        out,
        "not active in this version (the earlier bot-bottle had them):"
    )?;
    for p in plan::INACTIVE_PROTECTIONS {
        writeln!(out, "  - {p}")?;
    }
    Ok(())
}

fn info(ctx: &Context, agent: &str) -> Result<()> {
    let index = load_index(ctx)?;
    let manifest = index.load(agent, &[])?;
    println!("agent:   {}", manifest.agent.name);
    println!("file:    {}", manifest.agent.path.display());
    println!("bottles: {}", manifest.bottle_names.join(", "));
    println!("provider: {}", manifest.bottle.agent_provider.template);
    let env: Vec<&str> = manifest.bottle.env.keys().map(String::as_str).collect();
    println!("env:     {}", env.join(", "));
    println!("skills:  {}", manifest.agent.skills.join(", "));
    println!(
        "routes:  {}",
        manifest
            .bottle
            .egress
            .routes
            .iter()
            .map(|r| r.host.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !manifest.agent.system_prompt.is_empty() {
        println!("prompt:\n{}", manifest.agent.system_prompt);
    }
    Ok(())
}

fn list_agents(ctx: &Context, json: bool) -> Result<()> {
    let index = load_index(ctx)?;
    let names: Vec<String> = index
        .agent_names()
        .into_iter()
        .map(|s| s.to_string())
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&names)?);
    } else {
        for n in names {
            println!("{n}");
        }
    }
    Ok(())
}

fn list_active(ctx: &Context, json: bool) -> Result<()> {
    let registry = ctx.registry();
    let mut all = Vec::new();
    for name in registry.backend_names() {
        match registry
            .open_backend(name)
            .map_err(anyhow::Error::from)
            .and_then(|b| b.list().map_err(|e| anyhow!("{e}")))
        {
            Ok(list) => all.extend(list),
            Err(e) => eprintln!("warning: backend {name}: {e}"),
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for b in all {
            println!("{}\t{}\t{}\t{:?}", b.backend, b.id, b.agent, b.state);
        }
    }
    Ok(())
}

/// Finds which backend holds bottle `id`: its metadata, else every backend's list.
fn backend_for(ctx: &Context, registry: &Registry, id: &str) -> Result<Box<dyn Backend>> {
    if let Some(meta) = state::read(&ctx.home, id) {
        return Ok(registry.open_backend(&meta.backend)?);
    }
    for name in registry.backend_names() {
        if let Ok(b) = registry.open_backend(name) {
            if b.list()
                .map(|l| l.iter().any(|s| s.id == id))
                .unwrap_or(false)
            {
                return Ok(b);
            }
        }
    }
    bail!("no bottle `{id}` on any backend (see `bot-bottle list active`)")
}

fn stop(ctx: &Context, id: &str) -> Result<()> {
    let registry = ctx.registry();
    let backend = backend_for(ctx, &registry, id)?;
    backend
        .stop(id)
        .map_err(|e| anyhow!("stopping {id}: {e}"))?;
    backend
        .remove(id)
        .map_err(|e| anyhow!("removing {id}: {e}"))?;
    eprintln!("stopped and removed {id}");
    Ok(())
}

fn logs(ctx: &Context, id: &str, egress: bool, follow: bool) -> Result<()> {
    let registry = ctx.registry();
    let backend = backend_for(ctx, &registry, id)?;
    let mut out = std::io::stdout().lock();
    backend
        .logs(id, &LogsRequest { egress, follow }, &mut out)
        .map_err(|e| anyhow!("logs of {id}: {e}"))
}

fn cleanup(ctx: &Context, yes: bool) -> Result<()> {
    let registry = ctx.registry();
    let mut plans = Vec::new();
    for name in registry.backend_names() {
        let backend = match registry.open_backend(name) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("warning: {e}");
                continue;
            }
        };
        match backend.gc(&GcRequest { dry_run: true }) {
            Ok(report) => plans.push((name.to_string(), backend, report)),
            Err(e) => eprintln!("warning: backend {name}: {e}"),
        }
    }
    let total: usize = plans.iter().map(|(_, _, r)| r.removed.len()).sum();
    if total == 0 {
        println!("nothing to clean up");
        return Ok(());
    }
    for (name, _, report) in &plans {
        for item in &report.removed {
            println!("{name}: remove {item}");
        }
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("cleanup needs confirmation: run it on a terminal or pass --yes");
        }
        if !confirm("Remove these?")? {
            return Ok(());
        }
    }
    for (name, backend, _) in plans {
        let report = backend
            .gc(&GcRequest { dry_run: false })
            .map_err(|e| anyhow!("cleanup on {name}: {e}"))?;
        for item in report.removed {
            println!("{name}: removed {item}");
        }
    }
    Ok(())
}

fn doctor(ctx: &Context, only: Option<&str>) -> Result<i32> {
    let registry = ctx.registry();
    let mut ready = true;
    for c in registry.candidates.iter().filter(|c| c.status != "loaded") {
        println!(
            "plugin {} {}: {}",
            c.path.display(),
            c.status,
            c.reason.as_deref().unwrap_or("")
        );
    }
    for name in registry.backend_names() {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        println!("{name}:");
        match registry
            .open_backend(name)
            .map_err(anyhow::Error::from)
            .and_then(|b| b.doctor().map_err(|e| anyhow!("{e}")))
        {
            Ok(report) => {
                for c in &report.checks {
                    println!(
                        "  [{}] {}: {}",
                        if c.ok { "ok" } else { "FAIL" },
                        c.name,
                        c.detail
                    );
                    if let (false, Some(h)) = (c.ok, &c.hint) {
                        println!("        hint: {h}");
                    }
                }
                ready &= report.ready();
            }
            Err(e) => {
                println!("  [FAIL] {e}");
                ready = false;
            }
        }
    }
    Ok(if ready { 0 } else { 1 })
}

fn plugin(ctx: &Context, command: PluginCommand) -> Result<i32> {
    let out = &mut std::io::stdout().lock();
    match command {
        PluginCommand::List { json } => {
            crate::install::list_command(&ctx.home, json, ctx.verbose, out)
        }
        PluginCommand::Install { path, force } => {
            crate::install::install_command(&ctx.home, &ctx.cwd.join(path), force, out)
        }
        PluginCommand::Inspect { name, json } => {
            crate::install::inspect_command(&ctx.home, &name, json, out)
        }
        PluginCommand::Remove { name } => crate::install::remove_command(&ctx.home, &name, out),
        PluginCommand::New {
            name,
            dir,
            sdk_path,
            kind,
        } => crate::scaffold::new_command(
            &name,
            dir.as_deref(),
            sdk_path.as_deref(),
            kind,
            &ctx.cwd,
            out,
        ),
        PluginCommand::Probe { path } => Ok(crate::install::probe_child(&path)),
    }
}
