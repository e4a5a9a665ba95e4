//! `launch`: networks, egress sidecar and agent container, with everything
//! torn down when a step fails.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HealthConfig, HostConfig, Ipam,
    IpamConfig, Mount as DockerMount, MountType, NetworkConnectRequest, NetworkCreateRequest,
    NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, UploadToContainerOptions,
};
use bollard::Docker;
use bot_bottle_sdk::{ImageSpec, LaunchRequest, Mount};
use futures_util::TryStreamExt;

use crate::error::{is_not_found, DockerError, Result};
use crate::files::{self, Owner};
use crate::images;
use crate::naming::{self, Names, ROLE_AGENT, ROLE_EGRESS};
use crate::settings::Settings;
use crate::subnet::{self, Block};

/// Port the proxy listens on inside the bottle.
pub const PROXY_PORT: u16 = 3128;
/// The proxy's CA certificate in the agent container.
pub const CA_CERT_PATH: &str = "/usr/local/share/ca-certificates/bot-bottle-ca.crt";
/// The image's trust roots plus the proxy's CA, in the agent container.
pub const CA_BUNDLE_PATH: &str = "/etc/bot-bottle/ca-bundle.pem";
/// The egress binary in the agent container, run as the gate.
pub const GATE_PATH: &str = "/usr/local/libexec/bot-bottle/gate";
/// The last provisioned file; its presence opens the gate.
pub const GATE_MARKER: &str = "/etc/bot-bottle/provisioned";
/// Where the sidecar sees its state directory.
const SIDECAR_STATE: &str = "/state";
/// How long the sidecar may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Prints step timings to stderr when `BOT_BOTTLE_DOCKER_TRACE=1`.
pub fn trace(start: Instant, what: &str) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var("BOT_BOTTLE_DOCKER_TRACE").as_deref() == Ok("1")) {
        eprintln!(
            "[docker {:>6.1} ms] {what}",
            start.elapsed().as_secs_f64() * 1000.0
        );
    }
}

/// What a successful launch reports.
pub struct Launched {
    /// Sidecar address on the internal network.
    pub proxy_ip: String,
    /// Agent image used.
    pub image: String,
    /// Runtime (`runc`, `runsc`, ...).
    pub runtime: String,
    /// Host path of the egress decision log.
    pub egress_log: PathBuf,
}

/// The host directory shared with the sidecar.
pub fn egress_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("egress")
}

/// Checks a request before anything is created.
pub fn validate(req: &LaunchRequest) -> Result<PathBuf> {
    if !naming::valid_id(&req.bottle.id) {
        return Err(DockerError::Config(format!(
            "bottle id `{}` is not usable: allowed are lower-case letters, digits and '-', at most 48",
            req.bottle.id
        )));
    }
    if req.command.is_empty() {
        return Err(DockerError::Config("the agent command is empty".into()));
    }
    if !req.workdir.starts_with('/') {
        return Err(DockerError::Config(format!(
            "workdir `{}` must be an absolute sandbox path",
            req.workdir
        )));
    }
    let binary = req.egress_binary.clone().ok_or_else(|| {
        DockerError::Config(
            "no egress binary in the launch request; the docker backend runs \
             bot-bottle-egress in a FROM scratch sidecar and needs its static binary"
                .into(),
        )
    })?;
    for slot in req.egress.token_slots() {
        if !req.egress_env.contains(slot) {
            return Err(DockerError::Credential(format!(
                "the egress policy injects `{slot}` but the resolved egress environment has no value for it"
            )));
        }
    }
    // Defence in depth: a resolved credential must never reach the agent,
    // whatever a provider put in its env or files.
    for (slot, value) in req.egress_env.iter() {
        if value.expose().len() < 4 {
            continue;
        }
        if let Some((name, _)) = req.env.iter().find(|(_, v)| v.contains(value.expose())) {
            return Err(DockerError::Config(format!(
                "agent environment variable `{name}` contains the value of egress slot `{slot}`; \
                 credentials go to the egress proxy only"
            )));
        }
        let needle = value.expose().as_bytes();
        if let Some(f) = req
            .files
            .iter()
            .find(|f| f.contents.windows(needle.len()).any(|w| w == needle))
        {
            return Err(DockerError::Config(format!(
                "provisioned file `{}` contains the value of egress slot `{slot}`; \
                 credentials go to the egress proxy only",
                f.path
            )));
        }
    }
    for m in req.workspace.iter().chain(req.mounts.iter()) {
        check_mount(m)?;
    }
    if !req.state_dir.is_absolute() {
        return Err(DockerError::Config(format!(
            "state directory {} must be absolute",
            req.state_dir.display()
        )));
    }
    Ok(binary)
}

fn check_mount(m: &Mount) -> Result<()> {
    if !m.source.is_absolute() || !m.target.starts_with('/') {
        return Err(DockerError::Config(format!(
            "mount {} -> {} needs absolute host and sandbox paths",
            m.source.display(),
            m.target
        )));
    }
    let src = std::fs::canonicalize(&m.source).unwrap_or_else(|_| m.source.clone());
    let s = src.to_string_lossy();
    if s.ends_with("docker.sock") || s == "/var/run" || s == "/run" || s == "/" {
        return Err(DockerError::Config(format!(
            "mount source {} would expose the Docker socket or the host root to the agent; refused",
            m.source.display()
        )));
    }
    if m.target == "/etc/resolv.conf" {
        return Err(DockerError::Config(
            "mount target /etc/resolv.conf is reserved: the agent resolves names only through the bottle's DNS stub".into(),
        ));
    }
    Ok(())
}

fn bind(source: &Path, target: &str, read_only: bool) -> DockerMount {
    DockerMount {
        typ: Some(MountType::BIND),
        source: Some(source.to_string_lossy().into_owned()),
        target: Some(target.to_string()),
        read_only: Some(read_only),
        ..Default::default()
    }
}

/// Runs every launch step; the caller removes the bottle when this fails.
///
/// The two container starts dominate a launch, so they overlap: the internal
/// network has a subnet we chose, the sidecar's address is known up front,
/// and the agent container is created and started while the sidecar comes
/// up. The agent's command still runs only once the bottle is ready: its
/// first process is the egress binary's `gate`, which waits for the last
/// provisioned file (uploaded once the sidecar has written its CA) and for
/// the proxy to answer from the agent's network, then execs the command.
pub async fn launch(
    docker: &Docker,
    settings: &Settings,
    req: &LaunchRequest,
    binary: &Path,
) -> Result<Launched> {
    let t0 = Instant::now();
    let names = Names::new(&req.bottle.id);
    let state = req.state_dir.to_string_lossy().into_owned();
    let labels = |role: &str| naming::bottle_labels(&req.bottle, role, &state);

    // Images (cached after the first run), networks and host-side state,
    // all at once.
    let egress_image = images::ensure_egress_image(docker, binary);
    let agent_image = resolve_agent_image(docker, &req.image);
    let internal = async {
        create_internal_network(docker, settings, &names.internal, &req.bottle.id, labels)
            .await
            .map_err(|e| e.in_step("create internal network"))
    };
    let egress = async {
        match &settings.egress_network {
            Some(shared) => Ok(shared.clone()),
            None => create_network(
                docker,
                &names.egress_net,
                false,
                labels("network-egress"),
                None,
            )
            .await
            .map(|_| names.egress_net.clone())
            .map_err(|e| {
                DockerError::engine(format!("creating network {}", names.egress_net), e)
                    .in_step("create egress network")
            }),
        }
    };
    let setup = async {
        // The sidecar's state directory, shared with the host for the policy,
        // the CA certificate, the decision log and the ready marker.
        let edir = egress_dir(&req.state_dir);
        std::fs::create_dir_all(&edir)
            .map_err(|e| DockerError::io(format!("creating {}", edir.display()), e))?;
        let policy = serde_json::to_vec_pretty(&req.egress)
            .map_err(|e| DockerError::Config(format!("serializing the egress policy: {e}")))?;
        let policy_path = edir.join("policy.json");
        std::fs::write(&policy_path, policy)
            .map_err(|e| DockerError::io(format!("writing {}", policy_path.display()), e))?;
        let _ = std::fs::remove_file(edir.join("ready"));
        let _ = std::fs::remove_file(edir.join("ca.crt"));
        let sidecar_user = sidecar_user(&edir)?;
        Ok::<_, DockerError>((edir, sidecar_user))
    };
    // `join!`, not `try_join!`: a failure must not cancel a create request
    // already sent to the engine, or the resource would appear after the
    // cleanup looked for it.
    let (egress_image, agent_image, internal, egress, setup) =
        futures_util::join!(egress_image, agent_image, internal, egress, setup);
    let (egress_image, agent_image, block, egress_net, (edir, sidecar_user)) =
        (egress_image?, agent_image?, internal?, egress?, setup?);
    trace(t0, "images + networks");
    let agent_user = effective_user(req, settings, &agent_image.user);
    check_user(&agent_user, settings)?;
    let proxy_ip = block.sidecar().to_string();

    // DNS: the agent's resolv.conf names only the sidecar's stub, which
    // forwards nothing; Docker's embedded resolver (still reachable at
    // 127.0.0.11) is told to forward to the stub too, never to the host's.
    let resolv = req.state_dir.join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {proxy_ip}\noptions ndots:0 attempts:1 timeout:2\n"),
    )
    .map_err(|e| DockerError::io(format!("writing {}", resolv.display()), e))?;

    let sidecar = sidecar_body(
        req,
        &egress_image,
        sidecar_user,
        &egress_net,
        &proxy_ip,
        &edir,
        labels,
    );
    let agent = agent_body(
        req,
        settings,
        &agent_image,
        &agent_user,
        &block,
        binary,
        &resolv,
        &names,
        labels(ROLE_AGENT),
    );
    let sidecar_up = async {
        create_container(docker, &names.egress, sidecar)
            .await
            .map_err(|e| e.in_step("create egress sidecar"))?;
        connect(docker, &names.egress, &names.internal, &proxy_ip)
            .await
            .map_err(|e| e.in_step("wire egress sidecar"))?;
        docker
            .start_container(&names.egress, None)
            .await
            .map_err(|e| {
                DockerError::engine(format!("starting {}", names.egress), e)
                    .in_step("start egress sidecar")
            })?;
        trace(t0, "sidecar started");
        wait_ready(docker, &names.egress, &edir).await?;
        trace(t0, "sidecar ready");
        Ok::<_, DockerError>(())
    };
    let agent_up = async {
        create_container(docker, &names.agent, agent)
            .await
            .map_err(|e| e.in_step("create agent container"))?;
        // The image's trust roots, read before anything can change them.
        let bundle = download_file(docker, &names.agent, "/etc/ssl/certs/ca-certificates.crt")
            .await
            .unwrap_or_default();
        if !req.files.is_empty() {
            let owner = resolve_owner(docker, &names.agent, &agent_user)
                .await
                .map_err(|e| e.in_step("provision files"))?;
            upload(docker, &names.agent, files::archive(&req.files, owner)?)
                .await
                .map_err(|e| e.in_step("provision files"))?;
        }
        trace(t0, "agent created, files uploaded");
        docker
            .start_container(&names.agent, None)
            .await
            .map_err(|e| {
                DockerError::engine(format!("starting {}", names.agent), e).in_step("start agent")
            })?;
        trace(t0, "agent started (gated)");
        Ok::<_, DockerError>(bundle)
    };
    let (sidecar_up, agent_up) = futures_util::join!(sidecar_up, agent_up);
    sidecar_up?;
    let mut bundle = agent_up?;

    // An interactive agent reads its terminal size when it starts: give it
    // the user's before the gate opens, not after the attach.
    if req.tty {
        crate::attach::resize(docker, &names.agent, 1).await;
    }
    // The CA exists once the sidecar is up; it goes in last, with the marker
    // that opens the gate.
    let ca = std::fs::read(edir.join("ca.crt"))
        .map_err(|e| {
            DockerError::io(
                format!(
                    "reading the proxy's CA certificate {}/ca.crt",
                    edir.display()
                ),
                e,
            )
        })
        .map_err(|e| e.in_step("provision files"))?;
    if !bundle.is_empty() && !bundle.ends_with(b"\n") {
        bundle.push(b'\n');
    }
    bundle.extend_from_slice(&ca);
    let system = vec![
        bot_bottle_sdk::ProvisionedFile::new(CA_CERT_PATH, ca),
        bot_bottle_sdk::ProvisionedFile::new(CA_BUNDLE_PATH, bundle),
        bot_bottle_sdk::ProvisionedFile::new(GATE_MARKER, Vec::new()),
    ];
    upload(
        docker,
        &names.agent,
        files::archive(&system, Owner { uid: 0, gid: 0 })?,
    )
    .await
    .map_err(|e| e.in_step("provision files"))?;
    trace(t0, "gate opened");
    Ok(Launched {
        proxy_ip,
        image: agent_image.tag,
        runtime: settings.runtime.clone().unwrap_or_else(|| "runc".into()),
        egress_log: edir.join("egress.log"),
    })
}

fn sidecar_body(
    req: &LaunchRequest,
    egress_image: &str,
    user: String,
    egress_net: &str,
    proxy_ip: &str,
    edir: &Path,
    labels: impl Fn(&str) -> HashMap<String, String>,
) -> ContainerCreateBody {
    let mut env: Vec<String> = Vec::new();
    for (name, value) in req.egress_env.iter() {
        // The only place a credential value leaves this process: the
        // sidecar's environment, as the egress proxy expects.
        env.push(format!("{name}={}", value.expose()));
    }
    ContainerCreateBody {
        image: Some(egress_image.to_string()),
        user: Some(user),
        cmd: Some(vec![
            "run".into(),
            "--policy".into(),
            format!("{SIDECAR_STATE}/policy.json"),
            // Only the internal network's address: nothing on the egress
            // side (a shared network, another container) can use the proxy
            // or its credentials.
            "--listen".into(),
            format!("{proxy_ip}:{PROXY_PORT}"),
            "--ca-cert-out".into(),
            format!("{SIDECAR_STATE}/ca.crt"),
            "--dns-listen".into(),
            format!("{proxy_ip}:53"),
            "--log-file".into(),
            format!("{SIDECAR_STATE}/egress.log"),
            "--ready-file".into(),
            format!("{SIDECAR_STATE}/ready"),
        ]),
        env: Some(env),
        labels: Some(labels(ROLE_EGRESS)),
        healthcheck: Some(HealthConfig {
            test: Some(vec![
                "CMD".into(),
                images::EGRESS_PATH.into(),
                "probe".into(),
                format!("{proxy_ip}:{PROXY_PORT}"),
            ]),
            interval: Some(10_000_000_000),
            timeout: Some(3_000_000_000),
            retries: Some(3),
            ..Default::default()
        }),
        host_config: Some(HostConfig {
            network_mode: Some(egress_net.to_string()),
            mounts: Some(vec![bind(edir, SIDECAR_STATE, false)]),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            readonly_rootfs: Some(true),
            pids_limit: Some(256),
            memory: Some(256 * 1024 * 1024),
            // Port 53 without CAP_NET_BIND_SERVICE.
            sysctls: Some(HashMap::from([(
                "net.ipv4.ip_unprivileged_port_start".to_string(),
                "0".to_string(),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn connect(docker: &Docker, container: &str, network: &str, ip: &str) -> Result<()> {
    docker
        .connect_network(
            network,
            NetworkConnectRequest {
                container: container.to_string(),
                endpoint_config: Some(fixed_endpoint(ip)),
            },
        )
        .await
        .map_err(|e| DockerError::engine(format!("connecting {container} to {network}"), e))
}

fn fixed_endpoint(ip: &str) -> EndpointSettings {
    EndpointSettings {
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: Some(ip.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates the internal network on a free block of the subnet pool.
async fn create_internal_network(
    docker: &Docker,
    settings: &Settings,
    name: &str,
    bottle: &str,
    labels: impl Fn(&str) -> HashMap<String, String>,
) -> Result<Block> {
    const ATTEMPTS: u32 = 16;
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        let block = settings.subnet_pool.pick(bottle, attempt);
        match create_network(docker, name, true, labels("network-internal"), Some(&block)).await {
            Ok(()) => return Ok(block),
            Err(e) if subnet::is_overlap(&e) => last = Some(e.to_string()),
            Err(e) => return Err(DockerError::engine(format!("creating network {name}"), e)),
        }
    }
    Err(DockerError::Engine {
        step: format!("creating network {name}"),
        message: format!(
            "no free /29 in the subnet pool after {ATTEMPTS} tries ({}); set \
             BOT_BOTTLE_DOCKER_SUBNET_POOL to a larger or less used IPv4 range",
            last.unwrap_or_default()
        ),
    })
}

/// The agent user: the request's, else the image's default when it is not
/// root, else the settings' fallback (`1000:1000`).
fn effective_user(req: &LaunchRequest, settings: &Settings, image_user: &str) -> String {
    if !req.user.is_empty() {
        req.user.clone()
    } else if !image_user.is_empty() && !is_root(image_user) {
        image_user.to_string()
    } else {
        settings.default_user.clone()
    }
}

fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or("");
    name == "0" || name == "root"
}

#[allow(clippy::too_many_arguments)]
fn agent_body(
    req: &LaunchRequest,
    settings: &Settings,
    image: &AgentImage,
    user: &str,
    block: &Block,
    gate: &Path,
    resolv: &Path,
    names: &Names,
    labels: HashMap<String, String>,
) -> ContainerCreateBody {
    let proxy_ip = block.sidecar().to_string();
    let proxy = format!("http://{proxy_ip}:{PROXY_PORT}");
    let mut env: BTreeMap<String, String> = req.env.clone();
    env.extend(bot_bottle_sdk::egress::agent_proxy_env(
        &proxy,
        CA_BUNDLE_PATH,
        CA_CERT_PATH,
    ));
    env.insert("BOT_BOTTLE_PROXY".into(), proxy.clone());
    env.insert("BOT_BOTTLE_ID".into(), req.bottle.id.clone());

    let mut mounts = vec![
        bind(resolv, "/etc/resolv.conf", true),
        bind(gate, GATE_PATH, true),
    ];
    if let Some(ws) = &req.workspace {
        mounts.push(bind(&ws.source, &ws.target, ws.read_only));
    }
    for m in &req.mounts {
        mounts.push(bind(&m.source, &m.target, m.read_only));
    }
    // The gate runs first and execs the image's entrypoint with the command,
    // as Docker would have.
    let mut entrypoint = vec![
        GATE_PATH.to_string(),
        "gate".into(),
        "--proxy".into(),
        format!("{proxy_ip}:{PROXY_PORT}"),
        "--marker".into(),
        GATE_MARKER.into(),
        "--".into(),
    ];
    entrypoint.extend(image.entrypoint.iter().cloned());
    ContainerCreateBody {
        image: Some(image.tag.clone()),
        entrypoint: Some(entrypoint),
        cmd: Some(req.command.clone()),
        user: Some(user.to_string()),
        working_dir: Some(req.workdir.clone()),
        env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
        tty: Some(req.tty),
        open_stdin: Some(req.tty),
        stdin_once: Some(false),
        attach_stdin: Some(req.tty),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        labels: Some(labels),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                names.internal.clone(),
                fixed_endpoint(&block.agent().to_string()),
            )])),
        }),
        host_config: Some(HostConfig {
            network_mode: Some(names.internal.clone()),
            dns: Some(vec![proxy_ip]),
            mounts: Some(mounts),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: if settings.cap_add.is_empty() {
                None
            } else {
                Some(settings.cap_add.clone())
            },
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            pids_limit: Some(settings.pids_limit),
            memory: Some(settings.memory_bytes),
            init: Some(true),
            runtime: settings.runtime.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The agent image as the launch needs it.
struct AgentImage {
    tag: String,
    /// The image's configured user (may be empty).
    user: String,
    /// The image's entrypoint, run after the gate.
    entrypoint: Vec<String>,
}

/// The agent image's tag, default user and entrypoint.
async fn resolve_agent_image(docker: &Docker, spec: &ImageSpec) -> Result<AgentImage> {
    let tag = match spec {
        ImageSpec::Image { reference } => reference.clone(),
        ImageSpec::Dockerfile {
            dockerfile,
            context,
        } => images::ensure_dockerfile_image(docker, dockerfile, context.as_deref())
            .await
            .map_err(|e| e.in_step("agent image"))?,
    };
    match docker.inspect_image(&tag).await {
        Ok(info) => {
            let config = info.config.unwrap_or_default();
            Ok(AgentImage {
                tag,
                user: config.user.unwrap_or_default(),
                entrypoint: config.entrypoint.unwrap_or_default(),
            })
        }
        Err(e) if is_not_found(&e) => Err(DockerError::NotFound(format!(
            "agent image `{tag}` is not present in the Docker engine (bot-bottle never pulls \
             implicitly: build it, or `docker pull {tag}` yourself)"
        ))),
        Err(e) => {
            Err(DockerError::engine(format!("inspecting image {tag}"), e).in_step("agent image"))
        }
    }
}

async fn create_network(
    docker: &Docker,
    name: &str,
    internal: bool,
    labels: HashMap<String, String>,
    block: Option<&Block>,
) -> std::result::Result<(), bollard::errors::Error> {
    let mut options = HashMap::new();
    if internal {
        // No address on the host side of the bridge: an internal network
        // would otherwise let the agent reach services listening on the
        // host through the gateway address.
        options.insert(
            "com.docker.network.bridge.inhibit_ipv4".to_string(),
            "true".to_string(),
        );
    }
    docker
        .create_network(NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            internal: Some(internal),
            labels: Some(labels),
            options: Some(options),
            ipam: block.map(|b| Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(b.cidr()),
                    gateway: Some(b.gateway().to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

async fn create_container(docker: &Docker, name: &str, body: ContainerCreateBody) -> Result<()> {
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.to_string()),
                ..Default::default()
            }),
            body,
        )
        .await
        .map(|_| ())
        .map_err(|e| DockerError::engine(format!("creating container {name}"), e))
}

/// The sidecar's user: the caller's uid (so the state directory stays theirs),
/// or `65534` when the caller is root, after handing it the egress directory.
fn sidecar_user(edir: &Path) -> Result<String> {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if uid != 0 {
        return Ok(format!("{uid}:{gid}"));
    }
    std::os::unix::fs::chown(edir, Some(65534), Some(65534)).map_err(|e| {
        DockerError::io(format!("handing {} to the sidecar user", edir.display()), e)
    })?;
    Ok("65534:65534".into())
}

/// Waits until the proxy has written its ready marker (it writes it once it
/// answers), failing early with its log when the sidecar exits.
async fn wait_ready(docker: &Docker, container: &str, edir: &Path) -> Result<()> {
    let start = Instant::now();
    let marker = edir.join("ready");
    let mut checks = 0u32;
    loop {
        if marker.exists() && edir.join("ca.crt").exists() {
            return Ok(());
        }
        checks += 1;
        // The engine is asked only every ~100 ms; the file check is cheap.
        if checks.is_multiple_of(20) || start.elapsed() > READY_TIMEOUT {
            let info = docker
                .inspect_container(container, None)
                .await
                .map_err(|e| DockerError::engine(format!("inspecting {container}"), e))?;
            let running = info.state.as_ref().and_then(|s| s.running).unwrap_or(false);
            if !running || start.elapsed() > READY_TIMEOUT {
                let logs = tail_logs(docker, container).await;
                let why = if running {
                    format!("it did not answer within {}s", READY_TIMEOUT.as_secs())
                } else {
                    format!(
                        "it exited with code {}",
                        info.state.and_then(|s| s.exit_code).unwrap_or(-1)
                    )
                };
                return Err(DockerError::Engine {
                    step: "launch step `wait for egress sidecar` failed".into(),
                    message: format!("{why}; its output:\n{logs}"),
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The last lines a container printed, for error messages.
pub async fn tail_logs(docker: &Docker, container: &str) -> String {
    let opts = bollard::query_parameters::LogsOptions {
        stdout: true,
        stderr: true,
        tail: "20".into(),
        ..Default::default()
    };
    let chunks: Vec<_> = docker
        .logs(container, Some(opts))
        .try_collect()
        .await
        .unwrap_or_default();
    chunks.iter().map(|c| c.to_string()).collect::<String>()
}

async fn download_file(docker: &Docker, container: &str, path: &str) -> Option<Vec<u8>> {
    let opts = DownloadFromContainerOptions {
        path: path.to_string(),
    };
    let chunks: Vec<bytes::Bytes> = docker
        .download_from_container(container, Some(opts))
        .try_collect()
        .await
        .ok()?;
    files::first_file(&chunks.concat())
}

async fn upload(docker: &Docker, container: &str, tar: Vec<u8>) -> Result<()> {
    docker
        .upload_to_container(
            container,
            Some(UploadToContainerOptions {
                path: "/".into(),
                ..Default::default()
            }),
            bollard::body_full(tar.into()),
        )
        .await
        .map_err(|e| DockerError::engine(format!("uploading files into {container}"), e))
}

/// Numeric owner for `user` (`uid[:gid]` or names looked up in the image).
async fn resolve_owner(docker: &Docker, container: &str, user: &str) -> Result<Owner> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let numeric_u = u.parse::<u64>().ok();
    let numeric_g = g.and_then(|g| g.parse::<u64>().ok());
    if let (Some(uid), Some(gid)) = (numeric_u, numeric_g) {
        return Ok(Owner { uid, gid });
    }
    let passwd = download_file(docker, container, "/etc/passwd")
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let uid = numeric_u
        .or_else(|| files::lookup_id(&passwd, u))
        .ok_or_else(|| {
            DockerError::Config(format!(
                "agent user `{u}` is not in the image's /etc/passwd; use a numeric uid:gid"
            ))
        })?;
    let gid = match g {
        Some(g) => match numeric_g {
            Some(gid) => gid,
            None => {
                let group = download_file(docker, container, "/etc/group")
                    .await
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                files::lookup_id(&group, g).ok_or_else(|| {
                    DockerError::Config(format!(
                        "agent group `{g}` is not in the image's /etc/group"
                    ))
                })?
            }
        },
        None => files::primary_gid(&passwd, u).unwrap_or(uid),
    };
    Ok(Owner { uid, gid })
}

/// Refuses a root agent user.
fn check_user(user: &str, settings: &Settings) -> Result<()> {
    if is_root(user) && !settings.allow_root {
        return Err(DockerError::Config(format!(
            "agent user `{user}` is root; bottles run agents as a non-root user \
             (set a user such as `1000:1000`, or BOT_BOTTLE_DOCKER_ALLOW_ROOT=1 to override)"
        )));
    }
    Ok(())
}
