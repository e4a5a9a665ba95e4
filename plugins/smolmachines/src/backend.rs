//! The [`Backend`] implementation.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bot_bottle_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::engine::{self, Engine};
use crate::proc;
use crate::relay;

/// The address the agent is told its proxy is at. It exists nowhere: the
/// allow list admits only it, and the egress interceptor (the relay) turns a
/// connection to it into one to the bottle's proxy on the host's loopback.
pub const GUEST_PROXY_ADDR: &str = "10.254.254.254:3128";
/// Read-only mount with the proxy CA, provisioned files and the install script.
pub const GUEST_SHARE: &str = "/opt/bot-bottle";
/// Where the install script writes the CA bundle (system roots + proxy CA).
pub const GUEST_CA_BUNDLE: &str = "/etc/bot-bottle/ca-bundle.pem";
/// The proxy CA alone.
pub const GUEST_CA_CERT: &str = "/opt/bot-bottle/ca.pem";
const GUEST_STATUS: &str = "/opt/bot-bottle-status";
const LABEL_BACKEND: &str = "bot-bottle.backend";
const LABEL_ID: &str = "bot-bottle.id";
const LABEL_INDEX: &str = "bot-bottle.index";
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Where things are; [`Config::from_env`] reads the usual variables.
#[derive(Clone, Debug)]
pub struct Config {
    /// The engine.
    pub engine: Engine,
    /// This backend's own index of bottles (one JSON record per bottle).
    pub index_dir: PathBuf,
    /// The relay binary; `None` looks beside the egress binary and this
    /// process's executable.
    pub relay: Option<PathBuf>,
    /// The KVM device to check.
    pub kvm_device: PathBuf,
}

impl Config {
    /// `SMOLVM`, `SMOLVM_LIB_DIR`, `BOT_BOTTLE_SMOLVM_STATE_DIR` (the engine's
    /// `--state-dir`), `BOT_BOTTLE_SMOLVM_INDEX`, `BOT_BOTTLE_SMOLVM_RELAY`.
    /// None of these is a secret.
    pub fn from_env() -> Self {
        let binary = engine::locate_engine();
        let lib_dir = engine::locate_lib_dir(&binary);
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let index_dir = var("BOT_BOTTLE_SMOLVM_INDEX").unwrap_or_else(|| {
            var("XDG_STATE_HOME")
                .or_else(|| var("HOME").map(|h| h.join(".local/state")))
                .unwrap_or_else(std::env::temp_dir)
                .join("bot-bottle/smolmachines")
        });
        Config {
            engine: Engine {
                binary,
                lib_dir,
                state_dir: var("BOT_BOTTLE_SMOLVM_STATE_DIR"),
            },
            index_dir,
            relay: var("BOT_BOTTLE_SMOLVM_RELAY"),
            kvm_device: PathBuf::from("/dev/kvm"),
        }
    }
}

/// What this backend remembers about a bottle, across CLI invocations.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Record {
    /// Bottle id.
    pub id: String,
    /// smolvm machine name.
    pub machine: String,
    /// Host state directory of the bottle.
    pub state_dir: PathBuf,
    /// Agent name.
    pub agent: String,
    /// Label.
    pub label: String,
    /// Creation time.
    pub created_at: u64,
    /// Egress proxy pid (0 = not started).
    pub proxy_pid: u32,
    /// Relay pid (0 = not started).
    pub relay_pid: u32,
    /// Proxy listen address on the host.
    pub proxy_addr: String,
    /// Relay listen address on the host.
    pub relay_addr: String,
    /// Interactive bottle (agent runs through `machine exec -it`).
    pub tty: bool,
    /// The agent command (for interactive attach).
    pub command: Vec<String>,
    /// Agent workdir.
    pub workdir: String,
    /// Agent user.
    pub user: String,
}

/// The smolmachines backend.
pub struct SmolBackend {
    cfg: Config,
}

/// What [`SmolBackend::prepare`] built: everything up to `machine start`.
#[derive(Debug)]
pub struct Prepared {
    /// The record written to the index.
    pub record: Record,
    token: [u8; relay::TOKEN_LEN],
}

fn step_err(step: &str, e: impl Into<PluginError>) -> PluginError {
    let mut e: PluginError = e.into();
    e.message = format!("launch failed at step `{step}`: {}", e.message);
    e
}

fn io_err(action: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> PluginError {
    move |e| PluginError::io(action, e)
}

/// Quotes `s` for a POSIX shell.
fn shq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl SmolBackend {
    /// A backend with `cfg`.
    pub fn new(cfg: Config) -> Self {
        SmolBackend { cfg }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The machine name for a bottle id.
    pub fn machine_name(id: &str) -> String {
        format!("bb-{id}")
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.cfg.index_dir.join(format!("{id}.json"))
    }

    fn lock_path(&self, id: &str) -> PathBuf {
        self.cfg.index_dir.join(format!("{id}.lock"))
    }

    fn index_label(&self) -> String {
        self.cfg.index_dir.display().to_string()
    }

    fn save(&self, r: &Record) -> PluginResult<()> {
        let path = self.record_path(&r.id);
        let tmp = path.with_extension("json.tmp");
        let text =
            serde_json::to_vec_pretty(r).map_err(|e| PluginError::internal(e.to_string()))?;
        fs::write(&tmp, text).map_err(io_err(format!("writing {}", tmp.display())))?;
        fs::rename(&tmp, &path).map_err(io_err(format!("writing {}", path.display())))
    }

    fn load(&self, id: &str) -> PluginResult<Option<Record>> {
        validate_id(id)?;
        match fs::read(self.record_path(id)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                PluginError::internal(format!(
                    "bottle record {} is unreadable: {e}",
                    self.record_path(id).display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PluginError::io(
                format!("reading {}", self.record_path(id).display()),
                e,
            )),
        }
    }

    fn records(&self) -> PluginResult<Vec<Record>> {
        let mut out = Vec::new();
        let Ok(dir) = fs::read_dir(&self.cfg.index_dir) else {
            return Ok(out);
        };
        for ent in dir.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json") {
                if let Ok(Some(r)) = self.load(id) {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn relay_binary(&self, egress: &Path) -> PluginResult<PathBuf> {
        const NAME: &str = "bot-bottle-smolvm-relay";
        let mut tried = Vec::new();
        let mut cands: Vec<PathBuf> = self.cfg.relay.iter().cloned().collect();
        if let Some(d) = egress.parent() {
            cands.push(d.join(NAME));
        }
        if let Ok(exe) = std::env::current_exe() {
            if let Some(d) = exe.parent() {
                cands.push(d.join(NAME));
            }
        }
        for c in cands {
            if c.is_file() {
                return Ok(c);
            }
            tried.push(c.display().to_string());
        }
        Err(PluginError::engine_unavailable(format!(
            "the {NAME} binary was not found (looked at: {})",
            tried.join(", ")
        ))
        .with_hint("install it beside bot-bottle-egress, or set BOT_BOTTLE_SMOLVM_RELAY"))
    }

    /// Everything before `machine start`: the proxy and relay running, the
    /// machine created with its allow list, mounts, env and provisioning.
    /// On failure everything it made is removed again.
    pub fn prepare(&self, req: &LaunchRequest) -> PluginResult<Prepared> {
        validate_id(&req.bottle.id)?;
        let image = match &req.image {
            ImageSpec::Image { reference } => reference.clone(),
            ImageSpec::Dockerfile { .. } => {
                return Err(PluginError::invalid_config(
                    "the smolmachines backend boots images, it does not build them: image must be a reference (a registry name, a `docker save` archive or an unpacked rootfs directory), not a Dockerfile",
                ))
            }
        };
        if req.command.is_empty() {
            return Err(PluginError::invalid_config("the agent command is empty"));
        }
        // The resolved egress values must never reach the guest: refuse a
        // request whose agent env carries one, whatever its name.
        for (name, value) in &req.env {
            if req
                .egress_env
                .iter()
                .any(|(_, s)| !s.is_empty() && value.contains(s.expose()))
            {
                return Err(PluginError::new(
                    ErrorKind::Credential,
                    format!("agent variable `{name}` contains a resolved egress token; tokens go to the egress proxy only"),
                ));
            }
        }
        let egress = req.egress_binary.clone().ok_or_else(|| {
            PluginError::invalid_config(
                "the launch request names no egress proxy binary (egress_binary)",
            )
        })?;
        if !egress.is_file() {
            return Err(PluginError::engine_unavailable(format!(
                "egress proxy binary {} does not exist",
                egress.display()
            )));
        }
        let relay_bin = self.relay_binary(&egress)?;
        fs::create_dir_all(&self.cfg.index_dir)
            .map_err(io_err(format!("creating {}", self.cfg.index_dir.display())))?;
        let lock = proc::try_lock(&self.lock_path(&req.bottle.id))
            .map_err(io_err("locking the bottle record"))?
            .ok_or_else(|| {
                PluginError::new(
                    ErrorKind::TryAgain,
                    format!(
                        "bottle `{}` is being launched by another process",
                        req.bottle.id
                    ),
                )
            })?;
        if self.record_path(&req.bottle.id).exists() {
            return Err(PluginError::invalid_config(format!(
                "a bottle with id `{}` already exists on this backend",
                req.bottle.id
            )));
        }
        let mut record = Record {
            id: req.bottle.id.clone(),
            machine: Self::machine_name(&req.bottle.id),
            state_dir: req.state_dir.clone(),
            agent: req.bottle.agent.clone(),
            label: req.bottle.label.clone(),
            created_at: if req.bottle.created_at > 0 {
                req.bottle.created_at
            } else {
                now()
            },
            tty: req.tty,
            command: req.command.clone(),
            workdir: req.workdir.clone(),
            user: req.user.clone(),
            ..Default::default()
        };
        self.save(&record)?;
        let result = self.prepare_inner(req, &image, &egress, &relay_bin, &mut record);
        let out = match result {
            Ok(token) => Ok(Prepared { record, token }),
            Err(e) => {
                self.teardown(&record);
                Err(e)
            }
        };
        drop(lock);
        out
    }

    fn prepare_inner(
        &self,
        req: &LaunchRequest,
        image: &str,
        egress: &Path,
        relay_bin: &Path,
        record: &mut Record,
    ) -> PluginResult<[u8; relay::TOKEN_LEN]> {
        let sd = &req.state_dir;
        let share = sd.join("guest");
        let status = sd.join("status");
        for d in [&share, &share.join("files"), &status] {
            fs::create_dir_all(d).map_err(|e| {
                step_err(
                    "state",
                    PluginError::io(format!("creating {}", d.display()), e),
                )
            })?;
        }
        // --- egress proxy ---
        let policy = sd.join("egress-policy.json");
        let text = serde_json::to_vec_pretty(&req.egress)
            .map_err(|e| PluginError::internal(e.to_string()))?;
        fs::write(&policy, text).map_err(|e| {
            step_err(
                "egress policy",
                PluginError::io(format!("writing {}", policy.display()), e),
            )
        })?;
        let proxy_port = proc::free_port().map_err(|e| {
            step_err(
                "egress proxy",
                PluginError::io("choosing a loopback port", e),
            )
        })?;
        let proxy_addr = format!("127.0.0.1:{proxy_port}");
        let ca = share.join("ca.pem");
        let ready = sd.join("egress.ready");
        let _ = fs::remove_file(&ready);
        let mut cmd = Command::new(egress);
        cmd.arg("run")
            .arg("--policy")
            .arg(&policy)
            .arg("--listen")
            .arg(&proxy_addr)
            .arg("--ca-cert-out")
            .arg(&ca)
            .arg("--log-file")
            .arg(sd.join("egress.log"))
            .arg("--ready-file")
            .arg(&ready);
        // The proxy gets the resolved slots and nothing of the host's env.
        cmd.env_clear();
        for (name, value) in req.egress_env.iter() {
            cmd.env(name, value.expose());
        }
        let marker = policy.display().to_string();
        record.proxy_pid = proc::spawn_detached(cmd, &sd.join("egress.stderr")).map_err(|e| {
            step_err(
                "egress proxy",
                PluginError::io(format!("starting {}", egress.display()), e),
            )
        })?;
        record.proxy_addr = proxy_addr.clone();
        self.save(record)?;
        proc::wait_for_file(&ready, record.proxy_pid, &marker, READY_TIMEOUT).map_err(|why| {
            step_err(
                "egress proxy",
                PluginError::engine(format!(
                    "egress proxy {why}; see {}",
                    sd.join("egress.stderr").display()
                )),
            )
        })?;
        if !ca.is_file() {
            return Err(step_err(
                "egress proxy",
                PluginError::engine(format!(
                    "egress proxy did not write its CA certificate to {}",
                    ca.display()
                )),
            ));
        }
        // --- relay (the engine's egress interceptor) ---
        let token = proc::random_token()
            .map_err(|e| step_err("relay", PluginError::io("reading /dev/urandom", e)))?;
        let relay_port = proc::free_port()
            .map_err(|e| step_err("relay", PluginError::io("choosing a loopback port", e)))?;
        let relay_addr = format!("127.0.0.1:{relay_port}");
        let relay_ready = sd.join("relay.ready");
        let _ = fs::remove_file(&relay_ready);
        let mut cmd = Command::new(relay_bin);
        cmd.arg("--listen")
            .arg(&relay_addr)
            .arg("--upstream")
            .arg(&proxy_addr)
            .arg("--allow")
            .arg(GUEST_PROXY_ADDR)
            .arg("--ready-file")
            .arg(&relay_ready)
            .arg("--log-file")
            .arg(sd.join("relay.log"))
            .env_clear()
            .env("SMOLVM_INTERCEPTOR_TOKEN", relay::token_hex(&token));
        record.relay_pid = proc::spawn_detached(cmd, &sd.join("relay.stderr")).map_err(|e| {
            step_err(
                "relay",
                PluginError::io(format!("starting {}", relay_bin.display()), e),
            )
        })?;
        record.relay_addr = relay_addr.clone();
        self.save(record)?;
        proc::wait_for_file(
            &relay_ready,
            record.relay_pid,
            &relay_ready.display().to_string(),
            READY_TIMEOUT,
        )
        .map_err(|why| {
            step_err(
                "relay",
                PluginError::engine(format!(
                    "relay {why}; see {}",
                    sd.join("relay.stderr").display()
                )),
            )
        })?;
        // --- provisioning ---
        let script = provision_script(req, &share).map_err(|e| step_err("provisioning", e))?;
        let script_path = share.join("provision.sh");
        fs::write(&script_path, script).map_err(|e| {
            step_err(
                "provisioning",
                PluginError::io(format!("writing {}", script_path.display()), e),
            )
        })?;
        // --- machine create ---
        let args = self.create_args(req, image, record, &share, &status);
        self.cfg
            .engine
            .run("machine create", &args)
            .map_err(|e| step_err("machine create", e))?;
        Ok(token)
    }

    /// The `machine create` arguments for `req` (public for inspection).
    pub fn create_args(
        &self,
        req: &LaunchRequest,
        image: &str,
        record: &Record,
        share: &Path,
        status: &Path,
    ) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "machine".into(),
            "create".into(),
            "--name".into(),
            record.machine.clone(),
        ];
        a.extend(["--image".into(), image.into()]);
        // virtio-net is the backend that enforces the allow list; TSI would
        // silently ignore it, so it is named explicitly.
        a.extend(["--net-backend".into(), "virtio-net".into()]);
        let vip: SocketAddr = GUEST_PROXY_ADDR.parse().expect("constant");
        a.extend(["--allow-cidr".into(), format!("{}/32", vip.ip())]);
        a.extend(["--stop-on-exit".into()]);
        for (k, v) in [
            (LABEL_BACKEND, crate::BACKEND_NAME.to_string()),
            (LABEL_ID, req.bottle.id.clone()),
            (LABEL_INDEX, self.index_label()),
        ] {
            a.extend(["--label".into(), format!("{k}={v}")]);
        }
        if let Some(ws) = &req.workspace {
            a.extend([
                "-v".into(),
                mount_spec(&ws.source, &ws.target, ws.read_only),
            ]);
        }
        for m in &req.mounts {
            a.extend(["-v".into(), mount_spec(&m.source, &m.target, m.read_only)]);
        }
        a.extend(["-v".into(), mount_spec(share, GUEST_SHARE, true)]);
        a.extend(["-v".into(), mount_spec(status, GUEST_STATUS, false)]);
        for (k, v) in guest_env(req) {
            a.extend(["-e".into(), format!("{k}={v}")]);
        }
        if !req.workdir.is_empty() {
            a.extend(["-w".into(), req.workdir.clone()]);
        }
        if !req.user.is_empty() {
            a.extend(["-u".into(), req.user.clone()]);
        }
        a.extend([
            "--init".into(),
            format!("/bin/sh {GUEST_SHARE}/provision.sh"),
        ]);
        a.push("--".into());
        if req.tty {
            // Interactive: the machine idles and `attach` runs the agent with
            // `machine exec -it`.
            a.extend([
                "/bin/sh".into(),
                "-c".into(),
                "while :; do sleep 3600; done".into(),
            ]);
        } else {
            a.extend([
                "/bin/sh".into(),
                "-c".into(),
                format!("\"$@\"; rc=$?; echo $rc > {GUEST_STATUS}/exit_code; exit $rc"),
                "agent".into(),
            ]);
            a.extend(req.command.iter().cloned());
        }
        a
    }

    fn start(&self, p: &Prepared) -> PluginResult<()> {
        let mut cmd = self.cfg.engine.command([
            "machine",
            "start",
            "--name",
            &p.record.machine,
            "--egress-interceptor",
            &p.record.relay_addr,
        ]);
        // The token goes to the engine through its environment only.
        cmd.env("SMOLVM_INTERCEPTOR_TOKEN", relay::token_hex(&p.token));
        self.cfg
            .engine
            .output("machine start", cmd)
            .map(|_| ())
            .map_err(|e| step_err("machine start", e))
    }

    /// Removes the machine, stops the helpers and forgets the bottle.
    fn teardown(&self, r: &Record) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.cfg.engine.delete(&r.machine) {
            problems.push(e.to_string());
        }
        proc::kill(
            r.relay_pid,
            &r.state_dir.join("relay.ready").display().to_string(),
        );
        proc::kill(
            r.proxy_pid,
            &r.state_dir.join("egress-policy.json").display().to_string(),
        );
        if problems.is_empty() {
            let _ = fs::remove_file(self.record_path(&r.id));
            let _ = fs::remove_file(self.lock_path(&r.id));
        }
        problems
    }

    fn summary(&self, r: &Record, machine: Option<&engine::MachineInfo>) -> BottleSummary {
        let proxy_up = proc::alive_with(
            r.proxy_pid,
            &r.state_dir.join("egress-policy.json").display().to_string(),
        );
        let state = match machine.map(|m| m.state.as_str()) {
            Some("running") if proxy_up => BottleState::Running,
            Some("running") => BottleState::Broken,
            Some("created") | Some("starting") => BottleState::Creating,
            Some("stopped") | Some("exited") => BottleState::Exited,
            Some(_) => BottleState::Broken,
            None => BottleState::Broken,
        };
        let mut details = BTreeMap::new();
        details.insert("machine".into(), r.machine.clone());
        details.insert("proxy".into(), r.proxy_addr.clone());
        details.insert("interceptor".into(), r.relay_addr.clone());
        if let Some(m) = machine {
            details.insert("engine_state".into(), m.state.clone());
        }
        BottleSummary {
            id: r.id.clone(),
            backend: crate::BACKEND_NAME.into(),
            agent: r.agent.clone(),
            label: r.label.clone(),
            state,
            created_at: r.created_at,
            egress_log: Some(r.state_dir.join("egress.log")),
            details,
        }
    }

    fn require(&self, id: &str) -> PluginResult<Record> {
        self.load(id)?
            .ok_or_else(|| PluginError::not_found(format!("no smolmachines bottle `{id}`")))
    }

    fn exit_code(&self, r: &Record) -> PluginResult<i32> {
        let p = r.state_dir.join("status").join("exit_code");
        let text = fs::read_to_string(&p).map_err(|e| {
            PluginError::engine(format!(
                "the agent's exit code is unknown ({}: {e}); the machine stopped without the agent finishing",
                p.display()
            ))
        })?;
        text.trim()
            .parse()
            .map_err(|_| PluginError::engine(format!("{} does not hold an exit code", p.display())))
    }
}

fn validate_id(id: &str) -> PluginResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 48
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(PluginError::invalid_config(format!(
            "invalid bottle id `{id}` (allowed: a-z, 0-9 and '-', at most 48 characters)"
        )))
    }
}

fn mount_spec(source: &Path, target: &str, ro: bool) -> String {
    let mut s = format!("{}:{}", source.display(), target);
    if ro {
        s.push_str(":ro");
    }
    s
}

/// The agent's environment in the guest: the request's placeholders plus the
/// proxy and CA settings. Never an egress token.
pub fn guest_env(req: &LaunchRequest) -> BTreeMap<String, String> {
    let mut env = req.env.clone();
    env.extend(bot_bottle_sdk::egress::agent_proxy_env(
        &format!("http://{GUEST_PROXY_ADDR}"),
        GUEST_CA_BUNDLE,
        GUEST_CA_CERT,
    ));
    env
}

/// The script `--init` runs as root on the first boot: places the
/// provisioned files and builds the CA bundle.
fn provision_script(req: &LaunchRequest, share: &Path) -> PluginResult<String> {
    let mut s = String::from("#!/bin/sh\n# Written by bot-bottle-smolmachines; run once as root by smolvm --init.\nset -eu\n");
    s.push_str("mkdir -p /etc/bot-bottle\n");
    s.push_str("for b in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do\n  if [ -f \"$b\" ]; then cat \"$b\" > /etc/bot-bottle/ca-bundle.pem; break; fi\ndone\n");
    s.push_str(&format!("cat {GUEST_CA_CERT} >> /etc/bot-bottle/ca-bundle.pem\nchmod 0644 /etc/bot-bottle/ca-bundle.pem\n"));
    for (i, f) in req.files.iter().enumerate() {
        if !f.path.starts_with('/') || f.path.split('/').any(|c| c == "..") {
            return Err(PluginError::invalid_config(format!(
                "provisioned file path `{}` must be absolute and must not contain `..`",
                f.path
            )));
        }
        let src = share.join("files").join(i.to_string());
        fs::write(&src, &f.contents)
            .map_err(|e| PluginError::io(format!("writing {}", src.display()), e))?;
        let dst = shq(&f.path);
        let parent = Path::new(&f.path)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/".into());
        s.push_str(&format!("mkdir -p {}\n", shq(&parent)));
        s.push_str(&format!(
            "cp {GUEST_SHARE}/files/{i} {dst}\nchmod {:o} {dst}\n",
            f.mode & 0o7777
        ));
        if !req.user.is_empty() {
            s.push_str(&format!(
                "chown {} {dst} {}\n",
                shq(&req.user),
                shq(&parent)
            ));
        }
    }
    Ok(s)
}

impl Backend for SmolBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: crate::BACKEND_NAME.into(),
            description: "libkrun microVM through the smolvm engine; egress only through the bottle's proxy (allow list + egress interceptor)".into(),
            isolation: "microvm".into(),
        }
    }

    fn doctor(&self) -> PluginResult<DoctorReport> {
        let mut checks = Vec::new();
        let e = &self.cfg.engine;
        let install_hint =
            "run scripts/install-smolvm.sh and export the SMOLVM and SMOLVM_LIB_DIR it prints";
        let found = e.binary.is_file();
        checks.push(DoctorCheck {
            name: "smolvm engine".into(),
            ok: found && e.version().is_ok(),
            detail: if !found {
                format!(
                    "{} does not exist (set SMOLVM to the smolvm binary)",
                    e.binary.display()
                )
            } else {
                match e.version() {
                    Ok(v) => format!("{} ({v})", e.binary.display()),
                    Err(err) => format!("{} does not run: {err}", e.binary.display()),
                }
            },
            hint: Some(install_hint.into()).filter(|_| !(found && e.version().is_ok())),
        });
        let libs_ok = e
            .lib_dir
            .as_ref()
            .is_some_and(|d| d.join("libkrun.so").is_file() && d.join("libkrunfw.so.5").is_file());
        checks.push(DoctorCheck {
            name: "libkrun libraries".into(),
            ok: libs_ok,
            detail: match &e.lib_dir {
                Some(d) if libs_ok => format!("{} has libkrun.so and libkrunfw.so.5", d.display()),
                Some(d) => format!("{} lacks libkrun.so or libkrunfw.so.5", d.display()),
                None => {
                    "SMOLVM_LIB_DIR is not set and the libraries are not beside the engine".into()
                }
            },
            hint: Some(install_hint.into()).filter(|_| !libs_ok),
        });
        let kvm = &self.cfg.kvm_device;
        let (present, usable, detail) = match fs::metadata(kvm) {
            Err(err) => (false, false, format!("{}: {err}", kvm.display())),
            Ok(md) => {
                use std::os::unix::fs::PermissionsExt;
                let mode = md.permissions().mode() & 0o777;
                let world = mode & 0o006 == 0o006;
                (
                    true,
                    world,
                    format!(
                        "{} mode {mode:o}{}",
                        kvm.display(),
                        if world {
                            ""
                        } else {
                            " (not usable by smolvm's unprivileged VM process)"
                        }
                    ),
                )
            }
        };
        checks.push(DoctorCheck {
            name: "/dev/kvm".into(),
            ok: present && usable,
            detail,
            hint: if !present {
                Some("load the KVM module (modprobe kvm_intel or kvm_amd) or run on a host with hardware virtualisation".into())
            } else if !usable {
                Some(engine::kvm_hint().into())
            } else {
                None
            },
        });
        let relay = self.relay_binary(Path::new("/nonexistent/bot-bottle-egress"));
        checks.push(DoctorCheck {
            name: "egress interceptor relay".into(),
            ok: relay.is_ok(),
            detail: match &relay {
                Ok(p) => p.display().to_string(),
                Err(err) => err.message.clone(),
            },
            hint: relay.err().and_then(|e| e.hint),
        });
        Ok(DoctorReport { checks })
    }

    fn launch(&self, request: LaunchRequest) -> PluginResult<BottleSummary> {
        let prepared = self.prepare(&request)?;
        if let Err(e) = self.start(&prepared) {
            self.teardown(&prepared.record);
            return Err(e);
        }
        let m = self
            .cfg
            .engine
            .find(&prepared.record.machine)
            .ok()
            .flatten();
        Ok(self.summary(&prepared.record, m.as_ref()))
    }

    fn attach(&self, id: &str, tty: bool) -> PluginResult<i32> {
        let r = self.require(id)?;
        if r.tty {
            let mut args: Vec<String> = vec![
                "machine".into(),
                "exec".into(),
                "--name".into(),
                r.machine.clone(),
            ];
            if tty {
                args.extend(["-i".into(), "-t".into()]);
            }
            if !r.workdir.is_empty() {
                args.extend(["-w".into(), r.workdir.clone()]);
            }
            args.push("--".into());
            args.extend(r.command.iter().cloned());
            let mut cmd = self.cfg.engine.command(&args);
            cmd.stdin(if tty { Stdio::inherit() } else { Stdio::null() });
            let status = cmd.status().map_err(|e| {
                PluginError::engine_unavailable(format!(
                    "running {}: {e}",
                    self.cfg.engine.binary.display()
                ))
            })?;
            return Ok(status.code().unwrap_or(128));
        }
        let mut follow = self
            .cfg
            .engine
            .command(["machine", "logs", "--name", &r.machine, "-f"]);
        follow.stdin(Stdio::null());
        let child = follow.spawn().ok();
        let code = self.wait(id);
        if let Some(mut c) = child {
            let _ = c.kill();
            let _ = c.wait();
        }
        code
    }

    fn wait(&self, id: &str) -> PluginResult<i32> {
        let r = self.require(id)?;
        loop {
            match self.cfg.engine.find(&r.machine)? {
                Some(m) if m.state == "running" || m.state == "starting" => {
                    std::thread::sleep(Duration::from_millis(500))
                }
                Some(_) => return self.exit_code(&r),
                None => {
                    return Err(PluginError::not_found(format!(
                        "machine {} of bottle `{id}` is gone",
                        r.machine
                    )))
                }
            }
        }
    }

    fn stop(&self, id: &str) -> PluginResult<()> {
        let r = self.require(id)?;
        self.cfg.engine.stop(&r.machine)?;
        proc::kill(
            r.relay_pid,
            &r.state_dir.join("relay.ready").display().to_string(),
        );
        proc::kill(
            r.proxy_pid,
            &r.state_dir.join("egress-policy.json").display().to_string(),
        );
        Ok(())
    }

    fn remove(&self, id: &str) -> PluginResult<()> {
        validate_id(id)?;
        let r = match self.load(id)? {
            Some(r) => r,
            None => {
                // Also reap a machine whose record is gone (a crash between
                // create and record write cannot happen, but a deleted index can).
                let name = Self::machine_name(id);
                if let Some(m) = self.cfg.engine.find(&name)? {
                    if m.labels.get(LABEL_INDEX) == Some(&self.index_label()) {
                        self.cfg.engine.delete(&name)?;
                    }
                }
                return Ok(());
            }
        };
        let problems = self.teardown(&r);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PluginError::engine(format!(
                "removing bottle `{id}`: {}",
                problems.join("; ")
            )))
        }
    }

    fn list(&self) -> PluginResult<Vec<BottleSummary>> {
        let machines = self.cfg.engine.list()?;
        let by_name: BTreeMap<&str, &engine::MachineInfo> =
            machines.iter().map(|m| (m.name.as_str(), m)).collect();
        let records = self.records()?;
        let mut out: Vec<BottleSummary> = records
            .iter()
            .map(|r| self.summary(r, by_name.get(r.machine.as_str()).copied()))
            .collect();
        // Machines of this index without a record: shown as broken so gc is discoverable.
        for m in &machines {
            if m.labels.get(LABEL_INDEX) == Some(&self.index_label())
                && !records.iter().any(|r| r.machine == m.name)
            {
                let id = m.labels.get(LABEL_ID).cloned().unwrap_or_default();
                out.push(BottleSummary {
                    id,
                    backend: crate::BACKEND_NAME.into(),
                    state: BottleState::Broken,
                    created_at: m.created_at,
                    details: BTreeMap::from([("machine".to_string(), m.name.clone())]),
                    ..Default::default()
                });
            }
        }
        Ok(out)
    }

    fn logs(&self, id: &str, request: &LogsRequest, out: &mut dyn Write) -> PluginResult<()> {
        let r = self.require(id)?;
        if request.egress {
            for f in ["egress.log", "relay.log"] {
                let p = r.state_dir.join(f);
                if let Ok(bytes) = fs::read(&p) {
                    out.write_all(&bytes).map_err(io_err("writing logs"))?;
                }
            }
            return Ok(());
        }
        let mut args = vec!["machine", "logs", "--name", r.machine.as_str()];
        if request.follow {
            args.push("-f");
        }
        let mut cmd = self.cfg.engine.command(&args);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| {
            PluginError::engine_unavailable(format!(
                "running {}: {e}",
                self.cfg.engine.binary.display()
            ))
        })?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut buf = [0u8; 8192];
        loop {
            let n = stdout
                .read(&mut buf)
                .map_err(io_err("reading machine logs"))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(io_err("writing logs"))?;
        }
        let status = child.wait().map_err(io_err("waiting for machine logs"))?;
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return Err(PluginError::engine(format!(
                "smolvm machine logs failed: {}",
                err.trim()
            )));
        }
        Ok(())
    }

    fn gc(&self, request: &GcRequest) -> PluginResult<GcReport> {
        let mut report = GcReport::default();
        let machines = self.cfg.engine.list()?;
        let records = self.records()?;
        for r in &records {
            // A launch in progress holds the lock: never touch it.
            let lock = match proc::try_lock(&self.lock_path(&r.id)) {
                Ok(Some(l)) => l,
                _ => {
                    report.kept.push(format!("{} (launching)", r.id));
                    continue;
                }
            };
            let m = machines.iter().find(|m| m.name == r.machine);
            if m.is_some_and(|m| m.state == "running") {
                report.kept.push(format!("{} (running)", r.id));
                continue;
            }
            let what = format!(
                "bottle {} (machine {}: {}, proxy pid {}, relay pid {})",
                r.id,
                r.machine,
                m.map(|m| m.state.as_str()).unwrap_or("absent"),
                r.proxy_pid,
                r.relay_pid
            );
            if !request.dry_run {
                drop(lock);
                let problems = self.teardown(r);
                if !problems.is_empty() {
                    report.kept.push(format!("{what}: {}", problems.join("; ")));
                    continue;
                }
            }
            report.removed.push(what);
        }
        for m in &machines {
            let ours = m.labels.get(LABEL_INDEX) == Some(&self.index_label())
                && m.labels.get(LABEL_BACKEND).map(String::as_str) == Some(crate::BACKEND_NAME);
            if !ours || records.iter().any(|r| r.machine == m.name) {
                continue;
            }
            if m.state == "running" {
                report
                    .kept
                    .push(format!("machine {} (running, no record)", m.name));
                continue;
            }
            if !request.dry_run {
                self.cfg.engine.delete(&m.name)?;
            }
            report
                .removed
                .push(format!("machine {} (no record)", m.name));
        }
        Ok(report)
    }
}

/// Waits up to `timeout` for `cond`.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}
