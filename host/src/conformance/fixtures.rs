//! The suite's own test hosts, made with the `docker` CLI: a network, the
//! "api" upstream (the allowed routes) and the "other" upstream (a host with
//! no route, plus raw TCP/UDP listeners and a DNS resolver). Every
//! destination an escape attempt aims at is one of these containers.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ConformanceError;

/// Names the api upstream answers to (all routed, see [`super::routes`]).
pub const API_HOST: &str = "api.conf.test";
/// Routed without a credential: where the redirect check lands.
pub const OPEN_HOST: &str = "open.conf.test";
/// Routed without `allow_private`: the proxy must refuse its private address.
pub const PRIVATE_HOST: &str = "private.conf.test";
/// No route: the "other" container, which must never see a request.
pub const BLOCKED_HOST: &str = "blocked.conf.test";

/// Ports the fixtures listen on.
pub const HTTP_PORT: u16 = 8080;
/// HTTPS port of both upstreams.
pub const HTTPS_PORT: u16 = 8443;
/// Raw TCP listener on the other host.
pub const TCP_PORT: u16 = 9000;
/// UDP echo on the other host.
pub const UDP_PORT: u16 = 9001;

/// What was created, for the checks and for teardown.
#[derive(Debug, Default)]
pub struct Fixtures {
    /// The test network the sidecar's egress side joins.
    pub network: String,
    /// Container names.
    pub api: String,
    /// The host with no route.
    pub other: String,
    /// The api upstream's self-signed certificate (a trust root for the proxy).
    pub api_cert: String,
    /// IPv4 of the api container.
    pub api_ip: String,
    /// IPv4 of the other container.
    pub other_ip: String,
    /// IPv6 of the other container, when the network has IPv6.
    pub other_ip6: Option<String>,
    /// Why there is no IPv6, when there is none.
    pub ipv6_skip: Option<String>,
}

fn docker(args: &[&str]) -> Result<String, ConformanceError> {
    let out = Command::new("docker").args(args).output().map_err(|e| {
        ConformanceError::Fixture(format!(
            "running `docker {}`: {e} (the suite needs the docker CLI for its test hosts)",
            args.first().unwrap_or(&"")
        ))
    })?;
    if !out.status.success() {
        return Err(ConformanceError::Fixture(format!(
            "`docker {}` failed: {}",
            args.iter().take(3).copied().collect::<Vec<_>>().join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether a Docker engine answers, with the reason when not.
pub fn engine_ready() -> Result<(), String> {
    docker(&["version", "--format", "{{.Server.Version}}"])
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `docker inspect` of every container carrying all `labels`, as text.
pub fn inspect_by_label(labels: &[&str]) -> Result<(Vec<String>, String), ConformanceError> {
    let mut args = vec!["ps".to_string(), "-aq".to_string()];
    for l in labels {
        args.push("--filter".into());
        args.push(format!("label={l}"));
    }
    let ids = docker(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let ids: Vec<String> = ids.lines().map(str::to_string).collect();
    if ids.is_empty() {
        return Ok((ids, String::new()));
    }
    let mut args = vec!["inspect"];
    args.extend(ids.iter().map(String::as_str));
    let text = docker(&args)?;
    Ok((ids, text))
}

/// All output of a container.
pub fn logs(container: &str) -> String {
    Command::new("docker")
        .args(["logs", container])
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s
        })
        .unwrap_or_default()
}

/// Builds `FROM scratch` images of the static binaries (cached by content).
fn image(name: &str, binary: &Path, work: &Path) -> Result<String, ConformanceError> {
    let ctx = work.join(format!("{name}-ctx"));
    std::fs::create_dir_all(&ctx).map_err(|e| io(&ctx, e))?;
    let dst = ctx.join("bin");
    std::fs::copy(binary, &dst).map_err(|e| io(binary, e))?;
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY bin /bin/probe\nENTRYPOINT [\"/bin/probe\"]\n",
    )
    .map_err(|e| io(&ctx, e))?;
    let tag = format!("bot-bottle-conformance-{name}:latest");
    docker(&["build", "-q", "-t", &tag, &ctx.display().to_string()])?;
    Ok(tag)
}

fn io(path: &Path, e: std::io::Error) -> ConformanceError {
    ConformanceError::Fixture(format!("{}: {e}", path.display()))
}

/// Creates the network and both upstreams. On error, what was created is
/// already recorded in `teardown` for removal.
pub fn create(
    upstream_bin: &Path,
    token_sha256: &str,
    work: &Path,
    teardown: &super::Teardown,
) -> Result<Fixtures, ConformanceError> {
    let tag = format!("bbconf-{}", std::process::id());
    let label = format!("bot-bottle-conformance={}", std::process::id());
    let image = image("upstream", upstream_bin, work)?;
    let mut f = Fixtures {
        network: tag.clone(),
        api: format!("{tag}-api"),
        other: format!("{tag}-other"),
        ..Fixtures::default()
    };
    // IPv6 needs a subnet on a user-defined network; Debian's 20.10 allows
    // that without daemon configuration, other setups may refuse.
    let v6_subnet = format!("fd00:b0b:{:x}::/64", std::process::id() & 0xffff);
    let created_v6 = docker(&[
        "network", "create", "--label", &label, "--ipv6", "--subnet", &v6_subnet, &f.network,
    ]);
    teardown.add_network(&f.network);
    if let Err(e) = created_v6 {
        f.ipv6_skip = Some(format!("the engine refused an IPv6 test network ({e})"));
        docker(&["network", "create", "--label", &label, &f.network])?;
    }
    let sha_env = format!("EXPECTED_TOKEN_SHA256={token_sha256}");
    let net = format!("--network={}", f.network);
    let http = format!("0.0.0.0:{HTTP_PORT}");
    let https = format!("0.0.0.0:{HTTPS_PORT}");
    teardown.add_container(&f.api);
    docker(&[
        "run",
        "-d",
        "--name",
        &f.api,
        "--label",
        &label,
        &net,
        "--network-alias",
        API_HOST,
        "--network-alias",
        OPEN_HOST,
        "--network-alias",
        PRIVATE_HOST,
        "--user",
        "65534:65534",
        "-e",
        &sha_env,
        &image,
        "--name",
        "api",
        "--http",
        &http,
        "--https",
        &https,
        "--tls-name",
        API_HOST,
        "--tls-name",
        OPEN_HOST,
        "--tls-name",
        PRIVATE_HOST,
    ])?;
    let tcp6 = format!("[::]:{TCP_PORT}");
    let tcp4 = format!("0.0.0.0:{TCP_PORT}");
    let udp6 = format!("[::]:{UDP_PORT}");
    let udp4 = format!("0.0.0.0:{UDP_PORT}");
    teardown.add_container(&f.other);
    // Root inside its own scratch container, only to bind port 53.
    docker(&[
        "run",
        "-d",
        "--name",
        &f.other,
        "--label",
        &label,
        &net,
        "--network-alias",
        BLOCKED_HOST,
        "--user",
        "0:0",
        "-e",
        &sha_env,
        &image,
        "--name",
        "other",
        "--http",
        &http,
        "--https",
        &https,
        "--tls-name",
        BLOCKED_HOST,
        "--tcp",
        &tcp6,
        "--tcp",
        &tcp4,
        "--udp",
        &udp6,
        "--udp",
        &udp4,
        "--dns",
        "[::]:53",
        "--dns",
        "0.0.0.0:53",
    ])?;
    let fmt = format!(
        "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
        f.network
    );
    let fmt6 = format!(
        "{{{{(index .NetworkSettings.Networks \"{}\").GlobalIPv6Address}}}}",
        f.network
    );
    f.api_ip = docker(&["inspect", "-f", &fmt, &f.api])?;
    f.other_ip = docker(&["inspect", "-f", &fmt, &f.other])?;
    if f.ipv6_skip.is_none() {
        let v6 = docker(&["inspect", "-f", &fmt6, &f.other])?;
        if v6.is_empty() {
            f.ipv6_skip = Some("the test network has no IPv6 address for the test host".into());
        } else {
            f.other_ip6 = Some(v6);
        }
    }
    // The certificate is the first line the upstream prints.
    for _ in 0..100 {
        let text = logs(&f.api);
        if let Some(line) = text.lines().find(|l| l.contains("\"event\":\"cert\"")) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            f.api_cert = v["pem"].as_str().unwrap_or_default().to_string();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if f.api_cert.is_empty() {
        return Err(ConformanceError::Fixture(format!(
            "the test upstream {} printed no certificate: {}",
            f.api,
            logs(&f.api).lines().take(5).collect::<Vec<_>>().join(" | ")
        )));
    }
    Ok(f)
}

/// Removes containers and networks (errors ignored: best effort, idempotent).
pub fn remove(containers: &[String], networks: &[String]) {
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(containers.iter().map(String::as_str));
        let _ = Command::new("docker").args(&args).output();
    }
    for n in networks {
        let _ = Command::new("docker").args(["network", "rm", n]).output();
    }
}

/// A rootfs directory holding only the probe agent, for backends that boot
/// an unpacked root filesystem instead of building a Dockerfile.
pub fn rootfs(agent_bin: &Path, work: &Path) -> Result<PathBuf, ConformanceError> {
    let root = work.join("agent-rootfs");
    for d in ["etc", "tmp", "home/agent"] {
        std::fs::create_dir_all(root.join(d)).map_err(|e| io(&root, e))?;
    }
    std::fs::copy(agent_bin, root.join("agent")).map_err(|e| io(agent_bin, e))?;
    Ok(root)
}
