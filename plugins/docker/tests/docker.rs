//! Engine tests: the Docker backend driven through the SDK `Backend` trait
//! against the real Docker engine, with the real `bot-bottle-egress`, the
//! static test agent and the test upstream in locally built `FROM scratch`
//! images. Nothing is pulled and no traffic leaves the machine: the upstream
//! is a container on a test network, posing as `api.demo.test`.
//!
//! Without a Docker engine every test prints a SKIP line and passes, except
//! under `CI=true`, where it fails.
//!
//! Run: `cargo test -p bot-bottle-docker --test docker -- --test-threads=4`

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
};
use bollard::Docker;
use bot_bottle_docker::DockerBackend;
use bot_bottle_sdk::prelude::*;
use futures_util::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

const API_HOST: &str = "api.demo.test";
const OTHER_HOST: &str = "other.demo.test";

/// Shared fixtures: built once per test binary.
struct Env {
    rt: tokio::runtime::Runtime,
    docker: Docker,
    backend: DockerBackend,
    egress_bin: PathBuf,
    agent_ctx: PathBuf,
    upstream_cert: String,
    upstream_ip: String,
    network: String,
    upstream: String,
    state_root: tempfile::TempDir,
}

/// Removes the fixture containers and networks (label `bbtest`) of this
/// process, or of earlier runs whose process is gone.
fn cleanup_fixtures(only_dead: bool) {
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        return;
    };
    rt.block_on(async {
        let Ok(docker) = Docker::connect_with_local_defaults() else {
            return;
        };
        let Ok(docker) = docker.negotiate_version().await else {
            return;
        };
        let filters = HashMap::from([("label".to_string(), vec!["bbtest".to_string()])]);
        let mine = std::process::id().to_string();
        let wanted = |labels: Option<&HashMap<String, String>>| {
            let pid = labels
                .and_then(|l| l.get("bbtest"))
                .cloned()
                .unwrap_or_default();
            if only_dead {
                pid != mine && !Path::new(&format!("/proc/{pid}")).exists()
            } else {
                pid == mine
            }
        };
        let containers = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .unwrap_or_default();
        for c in containers.iter().filter(|c| wanted(c.labels.as_ref())) {
            let _ = docker
                .remove_container(
                    c.id.as_deref().unwrap_or(""),
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await;
        }
        let nets = docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .unwrap_or_default();
        for n in nets.iter().filter(|n| wanted(n.labels.as_ref())) {
            let _ = docker.remove_network(n.name.as_deref().unwrap_or("")).await;
        }
    });
}

extern "C" fn cleanup_at_exit() {
    cleanup_fixtures(false);
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Builds a static release binary (no-op when up to date) and returns it.
fn static_bin(args: &[&str], name: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .current_dir(repo_root())
        .args(["build", "--release", "--target", "x86_64-unknown-linux-gnu"])
        .args(args)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", target_dir())
        .status()
        .expect("running cargo");
    assert!(status.success(), "building static {name} failed");
    target_dir()
        .join("x86_64-unknown-linux-gnu/release")
        .join(name)
}

/// `Some(reason)` when the engine is not usable: tests skip (or fail in CI).
fn engine_missing() -> Option<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let d = Docker::connect_with_local_defaults().map_err(|e| e.to_string())?;
        d.ping().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    })
    .err()
}

fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Option<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        if let Some(why) = engine_missing() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("Docker engine unavailable under CI=true: {why}");
            }
            bot_bottle_test_support::skip(format!(
                "docker engine tests: no usable Docker engine ({why})"
            ));
            return None;
        }
        Some(setup())
    })
    .as_ref()
}

fn setup() -> Env {
    cleanup_fixtures(true);
    // SAFETY: registers a plain extern "C" function.
    unsafe {
        libc::atexit(cleanup_at_exit);
    }
    let egress_bin = static_bin(&["-p", "bot-bottle-egress"], "bot-bottle-egress");
    let agent_bin = static_bin(&["-p", "bot-bottle-test-agent"], "bot-bottle-test-agent");
    let upstream_bin = static_bin(
        &["-p", "bot-bottle-test-upstream"],
        "bot-bottle-test-upstream",
    );
    let state_root = tempfile::tempdir().unwrap();
    let agent_ctx = state_root.path().join("agent-ctx");
    std::fs::create_dir_all(&agent_ctx).unwrap();
    std::fs::copy(&agent_bin, agent_ctx.join("agent")).unwrap();
    let up_ctx = state_root.path().join("upstream-ctx");
    std::fs::create_dir_all(&up_ctx).unwrap();
    std::fs::copy(&upstream_bin, up_ctx.join("upstream")).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let docker = Docker::connect_with_local_defaults().unwrap();
    let docker = rt.block_on(docker.negotiate_version()).unwrap();
    let tag = std::process::id();
    let network = format!("bbtest-egress-{tag}");
    let upstream = format!("bbtest-upstream-{tag}");
    let (cert, ip) = rt.block_on(async {
        let image = bot_bottle_docker::images::ensure_dockerfile_image(
            &docker,
            "FROM scratch\nCOPY upstream /upstream\nUSER 65534:65534\nENTRYPOINT [\"/upstream\"]\n",
            Some(&up_ctx),
        )
        .await
        .unwrap();
        docker
            .create_network(NetworkCreateRequest {
                name: network.clone(),
                labels: Some(HashMap::from([("bbtest".into(), tag.to_string())])),
                ..Default::default()
            })
            .await
            .unwrap();
        docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(upstream.clone()),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(image),
                    cmd: Some(vec![
                        "--http".into(),
                        "0.0.0.0:8080".into(),
                        "--https".into(),
                        "0.0.0.0:8443".into(),
                        "--tls-name".into(),
                        API_HOST.into(),
                        "--tls-name".into(),
                        OTHER_HOST.into(),
                    ]),
                    env: Some(vec![format!("EXPECTED_TOKEN_SHA256={}", sha(TOKEN))]),
                    labels: Some(HashMap::from([("bbtest".into(), tag.to_string())])),
                    host_config: Some(HostConfig {
                        network_mode: Some(network.clone()),
                        ..Default::default()
                    }),
                    networking_config: Some(NetworkingConfig {
                        endpoints_config: Some(HashMap::from([(
                            network.clone(),
                            EndpointSettings {
                                aliases: Some(vec![API_HOST.into(), OTHER_HOST.into()]),
                                ..Default::default()
                            },
                        )])),
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        docker.start_container(&upstream, None).await.unwrap();
        // The certificate is the first line the upstream prints.
        let mut cert = String::new();
        for _ in 0..100 {
            let logs = container_logs(&docker, &upstream).await;
            if let Some(line) = logs.lines().find(|l| l.contains("\"event\":\"cert\"")) {
                let v: Value = serde_json::from_str(line).unwrap();
                cert = v["pem"].as_str().unwrap().to_string();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(!cert.is_empty(), "upstream printed no certificate");
        let info = docker.inspect_container(&upstream, None).await.unwrap();
        let ip = info.network_settings.unwrap().networks.unwrap()[&network]
            .ip_address
            .clone()
            .unwrap();
        (cert, ip)
    });
    // The plugin reads its settings from the process environment; set before
    // the backend first talks to the engine.
    std::env::set_var("BOT_BOTTLE_DOCKER_EGRESS_NETWORK", &network);
    let backend = DockerBackend::new().unwrap();
    Env {
        rt,
        docker,
        backend,
        egress_bin,
        agent_ctx,
        upstream_cert: cert,
        upstream_ip: ip,
        network,
        upstream,
        state_root,
    }
}

/// The real credential, which only the sidecar may hold.
const TOKEN: &str = "sk-real-4f9c2a7e1b3d5f60c8e2a4b6d8f01234";
/// What the agent holds instead.
const PLACEHOLDER: &str = "placeholder-token";

fn sha(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn container_logs(docker: &Docker, name: &str) -> String {
    let opts = bollard::query_parameters::LogsOptions {
        stdout: true,
        stderr: true,
        tail: "all".into(),
        ..Default::default()
    };
    let mut s = docker.logs(name, Some(opts));
    let mut out = String::new();
    while let Some(Ok(c)) = s.next().await {
        out.push_str(&c.to_string());
    }
    out
}

fn unique_id(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{prefix}-{}-{n}", std::process::id())
}

fn request(env: &Env, id: &str, command: &[&str]) -> LaunchRequest {
    let state_dir = env.state_root.path().join(id);
    std::fs::create_dir_all(&state_dir).unwrap();
    let route = EgressRoute {
        host: API_HOST.into(),
        port: None,
        auth: Some(SlotAuth {
            scheme: AuthScheme::Bearer,
            token_env: "EGRESS_TOKEN_0".into(),
        }),
        matches: vec![],
        allow_private: true,
        origin: RouteOrigin::Manifest,
    };
    let route_tls = EgressRoute {
        port: Some(8443),
        ..route.clone()
    };
    let route_http = EgressRoute {
        port: Some(8080),
        ..route
    };
    let mut egress_env = SecretMap::new();
    egress_env.insert("EGRESS_TOKEN_0", Secret::new(TOKEN));
    LaunchRequest {
        bottle: BottleIdentity {
            id: id.into(),
            agent: "probe".into(),
            label: "probe".into(),
            bottles: vec!["test".into()],
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        },
        image: ImageSpec::Dockerfile {
            dockerfile: "FROM scratch\nCOPY agent /agent\n".into(),
            context: Some(env.agent_ctx.clone()),
        },
        command: command.iter().map(|s| s.to_string()).collect(),
        user: "1000:1000".into(),
        workdir: "/workspace".into(),
        workspace: None,
        mounts: vec![],
        env: BTreeMap::from([
            ("DEMO_API_TOKEN".into(), PLACEHOLDER.into()),
            (
                "DEMO_URL".into(),
                format!("https://{API_HOST}:8443/v1/whoami"),
            ),
            (
                "DEMO_BLOCKED_URL".into(),
                format!("https://{OTHER_HOST}:8443/v1/whoami"),
            ),
        ]),
        files: vec![ProvisionedFile::new(
            "/home/agent/.config/demo/auth.json",
            format!("{{\"token\":\"{PLACEHOLDER}\"}}").into_bytes(),
        )
        .with_mode(0o600)],
        egress: EgressPolicy {
            version: 1,
            log: 2,
            routes: vec![route_tls, route_http],
            extra_roots_pem: vec![env.upstream_cert.clone()],
            resolve_overrides: BTreeMap::new(),
        },
        egress_env,
        tty: false,
        state_dir,
        egress_binary: Some(env.egress_bin.clone()),
    }
}

/// Runs the test agent inside the bottle's agent container (as its user,
/// with its environment) and parses its JSON answer.
fn probe(env: &Env, id: &str, args: &[&str]) -> Value {
    let container = format!("bb-{id}-agent");
    env.rt.block_on(async {
        let mut cmd = vec!["/agent".to_string()];
        cmd.extend(args.iter().map(|s| s.to_string()));
        let exec = env
            .docker
            .create_exec(
                &container,
                bollard::exec::CreateExecOptions::<String> {
                    cmd: Some(cmd),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut out = String::new();
        if let bollard::exec::StartExecResults::Attached { mut output, .. } =
            env.docker.start_exec(&exec.id, None).await.unwrap()
        {
            while let Some(Ok(chunk)) = output.next().await {
                if let bollard::container::LogOutput::StdOut { message } = chunk {
                    out.push_str(&String::from_utf8_lossy(&message));
                }
            }
        }
        serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("agent printed no JSON: {out}"))
    })
}

/// Our labelled resources for `id` still in the engine.
fn leftovers(env: &Env, id: &str) -> Vec<String> {
    env.rt.block_on(async {
        let filters =
            HashMap::from([("label".to_string(), vec![format!("bot-bottle.bottle={id}")])]);
        let mut out = Vec::new();
        for c in env
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .unwrap()
        {
            out.push(format!("container {:?}", c.names));
        }
        for n in env
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters.clone()),
            }))
            .await
            .unwrap()
        {
            out.push(format!("network {:?}", n.name));
        }
        let vols = env
            .docker
            .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .unwrap();
        for v in vols.volumes.unwrap_or_default() {
            out.push(format!("volume {}", v.name));
        }
        out
    })
}

macro_rules! need_env {
    () => {
        match env() {
            Some(e) => e,
            None => return,
        }
    };
}

#[test]
fn bottle_injects_the_real_token_and_refuses_everything_else() {
    let env = need_env!();
    let id = unique_id("iso");
    let summary = env
        .backend
        .launch(request(env, &id, &["/agent", "sleep", "600"]))
        .unwrap();
    assert_eq!(summary.state, BottleState::Running, "{summary:?}");

    // Allowed route over HTTPS: intercepted, token injected.
    let auth = format!("Authorization: Bearer {PLACEHOLDER}");
    let r = probe(
        env,
        &id,
        &[
            "get",
            &format!("https://{API_HOST}:8443/v1/whoami"),
            "-H",
            &auth,
        ],
    );
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(
        r["json"]["authorization_sha256"],
        sha(TOKEN),
        "upstream did not see the real token: {r}"
    );
    assert_eq!(r["json"]["token_valid"], true, "{r}");
    assert!(!r.to_string().contains(TOKEN));

    // Allowed route over plain HTTP.
    let r = probe(
        env,
        &id,
        &[
            "get",
            &format!("http://{API_HOST}:8080/v1/whoami"),
            "-H",
            &auth,
        ],
    );
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["json"]["token_valid"], true, "{r}");

    // A host with no route: refused by the proxy, with its reason.
    let r = probe(
        env,
        &id,
        &["get", &format!("https://{OTHER_HOST}:8443/"), "-H", &auth],
    );
    assert_ne!(r["status"], 200, "{r}");
    assert_ne!(r["status"], 0, "expected the proxy's refusal, got {r}");
    let r = probe(env, &id, &["get", &format!("http://{OTHER_HOST}:8080/")]);
    assert!(
        r["status"] == 403 || r["status"] == 407 || r["status"] == 502,
        "{r}"
    );

    // No direct path to the upstream container.
    for port in ["8443", "8080"] {
        let r = probe(
            env,
            &id,
            &["connect", &format!("{}:{port}", env.upstream_ip)],
        );
        assert_eq!(r["connected"], false, "{r}");
    }
    // Without the proxy, nothing.
    let r = probe(
        env,
        &id,
        &[
            "get",
            &format!("http://{}:8080/", env.upstream_ip),
            "--no-proxy",
        ],
    );
    assert_eq!(r["status"], 0, "{r}");

    // DNS is no way out: the stub and Docker's embedded resolver both refuse.
    for args in [
        vec!["resolve", "exfil-test.example.com"],
        vec!["resolve", API_HOST],
        vec![
            "resolve",
            "exfil-test.example.com",
            "--server",
            "127.0.0.11:53",
        ],
        vec!["resolve", API_HOST, "--server", "127.0.0.11:53"],
    ] {
        let r = probe(env, &id, &args);
        assert_eq!(r["resolved"], false, "{args:?}: {r}");
    }

    // The token is nowhere in the agent: env, files, /proc, engine metadata.
    let r = probe(env, &id, &["env"]);
    let agent_env = r["env"].as_object().unwrap();
    assert!(!r.to_string().contains(TOKEN));
    assert!(
        agent_env["HTTPS_PROXY"].as_str().unwrap().contains(":3128"),
        "{r}"
    );
    assert_eq!(agent_env["SSL_CERT_FILE"], "/etc/bot-bottle/ca-bundle.pem");
    let fragment = &TOKEN[8..];
    let r = probe(env, &id, &["scan", fragment]);
    assert_eq!(r["found"], false, "token found in the agent: {r}");
    assert!(r["processes_scanned"].as_u64().unwrap() >= 1, "{r}");
    let inspect = env
        .rt
        .block_on(
            env.docker
                .inspect_container(&format!("bb-{id}-agent"), None),
        )
        .unwrap();
    let text = serde_json::to_string(&inspect).unwrap();
    assert!(
        !text.contains(TOKEN) && !text.contains(fragment),
        "token in docker inspect of the agent"
    );

    // Hardening.
    let hc = inspect.host_config.unwrap();
    assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
    assert!(hc
        .security_opt
        .unwrap()
        .iter()
        .any(|s| s.starts_with("no-new-privileges")));
    assert!(hc.pids_limit.unwrap_or(0) > 0 && hc.memory.unwrap_or(0) > 0);
    assert_eq!(inspect.config.unwrap().user.as_deref(), Some("1000:1000"));
    let nets = inspect.network_settings.unwrap().networks.unwrap();
    assert_eq!(
        nets.keys().collect::<Vec<_>>(),
        vec![&format!("bb-{id}-int")]
    );

    // Provisioned file: placed, owned by the agent user (readable at 0600).
    let r = probe(env, &id, &["cat", "/home/agent/.config/demo/auth.json"]);
    assert!(
        r["contents"].as_str().unwrap_or("").contains(PLACEHOLDER),
        "{r}"
    );
    let r = probe(
        env,
        &id,
        &["cat", "/usr/local/share/ca-certificates/bot-bottle-ca.crt"],
    );
    assert!(
        r["contents"]
            .as_str()
            .unwrap_or("")
            .contains("BEGIN CERTIFICATE"),
        "{r}"
    );

    // The egress log is on the host and names the decisions, not the token.
    let log = std::fs::read_to_string(summary.egress_log.clone().unwrap()).unwrap();
    assert!(log.contains(API_HOST) && log.contains(OTHER_HOST), "{log}");
    assert!(!log.contains(TOKEN));
    let mut out = Vec::new();
    env.backend
        .logs(
            &id,
            &LogsRequest {
                egress: true,
                follow: false,
            },
            &mut out,
        )
        .unwrap();
    assert!(String::from_utf8_lossy(&out).contains(OTHER_HOST));

    // The proxy and its DNS stub answer only on the internal network: a
    // container on the egress network (shared here) cannot use them, and so
    // cannot borrow the bottle's credentials.
    let sidecar = env
        .rt
        .block_on(
            env.docker
                .inspect_container(&format!("bb-{id}-egress"), None),
        )
        .unwrap();
    let egress_side_ip = sidecar.network_settings.unwrap().networks.unwrap()[&env.network]
        .ip_address
        .clone()
        .unwrap();
    let r = run_on_network(
        env,
        &inspect_image(env, &id),
        &env.network,
        &["connect", &format!("{egress_side_ip}:3128")],
    );
    assert_eq!(
        r["connected"], false,
        "proxy reachable from the egress side: {r}"
    );
    let r = probe(env, &id, &["connect", &summary.details["proxy"]]);
    assert_eq!(
        r["connected"], true,
        "proxy not reachable from the agent: {r}"
    );

    env.backend.remove(&id).unwrap();
    assert_eq!(leftovers(env, &id), Vec::<String>::new());
    env.backend.remove(&id).unwrap(); // idempotent
}

/// The image of bottle `id`'s agent container.
fn inspect_image(env: &Env, id: &str) -> String {
    env.rt
        .block_on(
            env.docker
                .inspect_container(&format!("bb-{id}-agent"), None),
        )
        .unwrap()
        .config
        .unwrap()
        .image
        .unwrap()
}

/// Runs the test agent in a throwaway container on `network` (outside any
/// bottle) and parses its JSON answer.
fn run_on_network(env: &Env, image: &str, network: &str, args: &[&str]) -> Value {
    let name = unique_id("bbtest-outsider");
    env.rt.block_on(async {
        let mut cmd = vec!["/agent".to_string()];
        cmd.extend(args.iter().map(|s| s.to_string()));
        env.docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(image.to_string()),
                    entrypoint: Some(vec![]),
                    cmd: Some(cmd),
                    labels: Some(HashMap::from([(
                        "bbtest".into(),
                        std::process::id().to_string(),
                    )])),
                    host_config: Some(HostConfig {
                        network_mode: Some(network.to_string()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        env.docker.start_container(&name, None).await.unwrap();
        let _ = env
            .docker
            .wait_container(
                &name,
                None::<bollard::query_parameters::WaitContainerOptions>,
            )
            .next()
            .await;
        let out = container_logs(&env.docker, &name).await;
        let _ = env
            .docker
            .remove_container(
                &name,
                Some(bollard::query_parameters::RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("agent printed no JSON: {out}"))
    })
}

#[test]
fn headless_demo_streams_output_and_returns_the_exit_code() {
    let env = need_env!();
    let id = unique_id("demo");
    env.backend
        .launch(request(env, &id, &["/agent", "demo"]))
        .unwrap();
    let code = env.backend.wait(&id).unwrap();
    let mut out = Vec::new();
    env.backend
        .logs(&id, &LogsRequest::default(), &mut out)
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "demo failed: {out}");
    assert!(out.contains("\"ok\":true"), "{out}");
    assert!(!out.contains(TOKEN));
    // attach after exit replays the output and returns the same code.
    assert_eq!(env.backend.attach(&id, false).unwrap(), 0);
    let listed = env.backend.list().unwrap();
    let me = listed.iter().find(|b| b.id == id).expect("listed");
    assert_eq!(me.state, BottleState::Exited);
    env.backend.remove(&id).unwrap();
    assert!(leftovers(env, &id).is_empty());

    // A failing agent's exit code comes back too.
    let id = unique_id("fail");
    env.backend
        .launch(request(env, &id, &["/agent", "no-such-subcommand"]))
        .unwrap();
    assert_eq!(env.backend.attach(&id, false).unwrap(), 2);
    env.backend.remove(&id).unwrap();

    // The image's ENTRYPOINT still runs, with the command as its arguments
    // (the gate that waits for the bottle execs it).
    let id = unique_id("entry");
    let mut req = request(env, &id, &["env"]);
    req.image = ImageSpec::Dockerfile {
        dockerfile: "FROM scratch\nCOPY agent /agent\nENTRYPOINT [\"/agent\"]\n".into(),
        context: Some(env.agent_ctx.clone()),
    };
    env.backend.launch(req).unwrap();
    assert_eq!(env.backend.wait(&id).unwrap(), 0);
    let mut out = Vec::new();
    env.backend
        .logs(&id, &LogsRequest::default(), &mut out)
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.contains(&format!("\"BOT_BOTTLE_ID\":\"{id}\"")),
        "{out}"
    );
    env.backend.remove(&id).unwrap();

    // A command that does not exist: the agent's status says so, and why.
    let id = unique_id("nocmd");
    env.backend
        .launch(request(env, &id, &["/no/such/program", "x"]))
        .unwrap();
    assert_eq!(env.backend.wait(&id).unwrap(), 127);
    let mut out = Vec::new();
    env.backend
        .logs(&id, &LogsRequest::default(), &mut out)
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("cannot run `/no/such/program`"), "{out}");
    env.backend.remove(&id).unwrap();
    assert!(leftovers(env, &id).is_empty());
}

#[test]
fn a_failed_launch_leaves_nothing_behind_and_names_the_step() {
    let env = need_env!();
    let id = unique_id("broken");
    let mut req = request(env, &id, &["/agent", "sleep", "5"]);
    req.image = ImageSpec::Image {
        reference: "bot-bottle-no-such-image:never".into(),
    };
    let err = env.backend.launch(req).unwrap_err();
    assert!(err.message.contains("bot-bottle-no-such-image"), "{err:?}");
    assert!(leftovers(env, &id).is_empty(), "{:?}", leftovers(env, &id));

    // A missing credential is refused before anything is created.
    let id = unique_id("nocred");
    let mut req = request(env, &id, &["/agent", "sleep", "5"]);
    req.egress_env = SecretMap::new();
    let err = env.backend.launch(req).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Credential);
    assert!(err.message.contains("EGRESS_TOKEN_0"), "{err:?}");
    assert!(!err.message.contains(TOKEN));

    // A credential smuggled into the agent env is refused.
    let id = unique_id("leak");
    let mut req = request(env, &id, &["/agent", "sleep", "5"]);
    req.env.insert("OOPS".into(), TOKEN.into());
    let err = env.backend.launch(req).unwrap_err();
    assert!(
        err.message.contains("OOPS") && !err.message.contains(TOKEN),
        "{err:?}"
    );
    assert!(leftovers(env, &id).is_empty());
}

#[test]
fn gc_reaps_orphans_and_spares_live_bottles_and_foreign_resources() {
    let env = need_env!();
    let live = unique_id("live");
    env.backend
        .launch(request(env, &live, &["/agent", "sleep", "600"]))
        .unwrap();

    // A half-created bottle whose CLI is dead: a network and a created
    // container with our labels and a dead owner.
    let orphan = unique_id("orphan");
    let me = bot_bottle_docker::naming::owner_token();
    let mut parts: Vec<&str> = me.split('/').collect();
    parts[2] = "4194303";
    let dead = parts.join("/");
    let labels = HashMap::from([
        ("bot-bottle.managed".to_string(), "true".to_string()),
        ("bot-bottle.backend".into(), "docker".into()),
        ("bot-bottle.bottle".into(), orphan.clone()),
        ("bot-bottle.role".into(), "agent".into()),
        ("bot-bottle.owner".into(), dead),
    ]);
    let foreign = format!("bbtest-foreign-{}", std::process::id());
    env.rt.block_on(async {
        env.docker
            .create_network(NetworkCreateRequest {
                name: format!("bb-{orphan}-int"),
                internal: Some(true),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        let image = bot_bottle_docker::images::ensure_dockerfile_image(
            &env.docker,
            "FROM scratch\nCOPY agent /agent\n",
            Some(&env.agent_ctx),
        )
        .await
        .unwrap();
        env.docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(format!("bb-{orphan}-agent")),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(image.clone()),
                    cmd: Some(vec!["/agent".into(), "sleep".into(), "600".into()]),
                    labels: Some(labels.clone()),
                    host_config: Some(HostConfig {
                        network_mode: Some("none".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // A foreign container that merely looks like ours by name.
        env.docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(foreign.clone()),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(image),
                    cmd: Some(vec!["/agent".into(), "sleep".into(), "600".into()]),
                    labels: Some(HashMap::from([(
                        "bbtest".into(),
                        std::process::id().to_string(),
                    )])),
                    host_config: Some(HostConfig {
                        network_mode: Some("none".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    });
    let listed = env.backend.list().unwrap();
    let o = listed
        .iter()
        .find(|b| b.id == orphan)
        .expect("orphan listed");
    assert_eq!(o.state, BottleState::Broken);

    let dry = env.backend.gc(&GcRequest { dry_run: true }).unwrap();
    assert!(dry.removed.iter().any(|r| r.contains(&orphan)), "{dry:?}");
    assert!(
        !leftovers(env, &orphan).is_empty(),
        "dry run removed something"
    );

    let report = env.backend.gc(&GcRequest::default()).unwrap();
    assert!(
        report.removed.iter().any(|r| r.contains(&orphan)),
        "{report:?}"
    );
    assert!(report.kept.iter().any(|k| k.contains(&live)), "{report:?}");
    assert!(!report.removed.iter().any(|r| r.contains(&live)));
    assert!(leftovers(env, &orphan).is_empty());
    // The live bottle still works; the foreign container is untouched.
    let r = probe(env, &live, &["get", &format!("https://{API_HOST}:8443/")]);
    assert_eq!(r["status"], 200, "{r}");
    let foreign_still_there = env
        .rt
        .block_on(env.docker.inspect_container(&foreign, None))
        .is_ok();
    env.rt
        .block_on(env.docker.remove_container(
            &foreign,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        ))
        .ok();
    assert!(foreign_still_there, "gc removed a foreign container");
    env.backend.remove(&live).unwrap();
    assert!(leftovers(env, &live).is_empty());
}

#[test]
fn ten_concurrent_bottles_all_work_are_listed_and_share_nothing() {
    let env = need_env!();
    let ids: Vec<String> = (0..10).map(|_| unique_id("many")).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let req = request(env, id, &["/agent", "sleep", "600"]);
                s.spawn(move || env.backend.launch(req))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
    let listed = env.backend.list().unwrap();
    for id in &ids {
        let b = listed
            .iter()
            .find(|b| &b.id == id)
            .unwrap_or_else(|| panic!("{id} not listed"));
        assert_eq!(b.state, BottleState::Running);
        assert_eq!(b.backend, "docker");
        let r = probe(
            env,
            id,
            &[
                "get",
                &format!("https://{API_HOST}:8443/"),
                "-H",
                "Authorization: Bearer x",
            ],
        );
        assert_eq!(r["json"]["token_valid"], true, "{id}: {r}");
    }
    // No container, network or volume belongs to two bottles.
    let mut seen = std::collections::BTreeMap::new();
    for id in &ids {
        let owned = leftovers(env, id);
        assert!(!owned.is_empty(), "{id} has no resources");
        for r in owned {
            if let Some(other) = seen.insert(r.clone(), id.clone()) {
                panic!("{r} is shared by {other} and {id}");
            }
        }
    }
    std::thread::scope(|s| {
        for id in &ids {
            s.spawn(move || env.backend.remove(id).unwrap());
        }
    });
    let listed = env.backend.list().unwrap();
    for id in &ids {
        assert!(!listed.iter().any(|b| &b.id == id));
        assert!(leftovers(env, id).is_empty());
    }
}

#[test]
fn doctor_reports_the_engine_and_runtime() {
    let env = need_env!();
    let report = env.backend.doctor().unwrap();
    assert!(report.ready(), "{report:?}");
    let engine = report
        .checks
        .iter()
        .find(|c| c.name == "docker engine")
        .unwrap();
    assert!(engine.detail.contains("API"), "{engine:?}");
    assert!(report.checks.iter().any(|c| c.name == "runtime"));
    assert!(report
        .checks
        .iter()
        .any(|c| c.name == "egress network" && c.detail.contains(&env.network)));
    assert!(!env.upstream.is_empty());
}

/// Runs last by name order under `--test-threads=1`; with parallel threads the
/// fixture containers are removed by the cleanup script in the README.
#[test]
fn zz_remove_unknown_bottle_is_ok() {
    let env = need_env!();
    env.backend.remove("never-existed-0").unwrap();
    let err = env.backend.stop("never-existed-0").unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}
