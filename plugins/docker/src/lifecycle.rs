//! `list`, `stop`, `remove`, `gc`, `wait` and `logs`, all driven by labels so
//! they work across CLI invocations.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use bollard::models::{ContainerSummary, ContainerSummaryStateEnum, Network};
use bollard::query_parameters::{
    KillContainerOptions, ListContainersOptions, ListNetworksOptions, ListVolumesOptions,
    LogsOptions, RemoveContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use bot_bottle_sdk::{BottleState, BottleSummary, GcReport, GcRequest, LogsRequest};
use futures_util::StreamExt;

use crate::error::{is_not_found, DockerError, Result};
use crate::launch::trace;
use crate::naming::{self, Names, BACKEND, L_BACKEND, L_BOTTLE, L_MANAGED, L_ROLE};

/// Everything of one bottle the engine knows about.
#[derive(Default, Debug)]
pub struct Found {
    /// Containers, by role.
    pub containers: Vec<ContainerSummary>,
    /// Networks.
    pub networks: Vec<Network>,
    /// Volume names.
    pub volumes: Vec<String>,
}

fn label_filter(extra: Option<(&str, &str)>) -> HashMap<String, Vec<String>> {
    let mut labels = vec![
        format!("{L_MANAGED}=true"),
        format!("{L_BACKEND}={BACKEND}"),
    ];
    if let Some((k, v)) = extra {
        labels.push(format!("{k}={v}"));
    }
    HashMap::from([("label".to_string(), labels)])
}

/// Our resources, grouped by bottle id (all bottles, or just `only`).
pub async fn find(docker: &Docker, only: Option<&str>) -> Result<BTreeMap<String, Found>> {
    let filters = label_filter(only.map(|id| (L_BOTTLE, id)));
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        }))
        .await
        .map_err(|e| DockerError::engine("listing containers", e))?;
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(filters.clone()),
        }))
        .await
        .map_err(|e| DockerError::engine("listing networks", e))?;
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(|e| DockerError::engine("listing volumes", e))?;
    let mut out: BTreeMap<String, Found> = BTreeMap::new();
    for c in containers {
        if let Some(id) = c.labels.as_ref().and_then(|l| l.get(L_BOTTLE)).cloned() {
            out.entry(id).or_default().containers.push(c);
        }
    }
    for n in networks {
        if let Some(id) = n.labels.as_ref().and_then(|l| l.get(L_BOTTLE)).cloned() {
            out.entry(id).or_default().networks.push(n);
        }
    }
    for v in volumes.volumes.unwrap_or_default() {
        if let Some(id) = v.labels.get(L_BOTTLE).cloned() {
            out.entry(id).or_default().volumes.push(v.name);
        }
    }
    Ok(out)
}

fn labels_of(found: &Found) -> HashMap<String, String> {
    found
        .containers
        .iter()
        .filter_map(|c| c.labels.clone())
        .chain(found.networks.iter().filter_map(|n| n.labels.clone()))
        .next()
        .unwrap_or_default()
}

fn role<'a>(found: &'a Found, role: &str) -> Option<&'a ContainerSummary> {
    found.containers.iter().find(|c| {
        c.labels
            .as_ref()
            .and_then(|l| l.get(L_ROLE))
            .map(String::as_str)
            == Some(role)
    })
}

fn running(c: &ContainerSummary) -> bool {
    matches!(
        c.state,
        Some(ContainerSummaryStateEnum::RUNNING) | Some(ContainerSummaryStateEnum::RESTARTING)
    )
}

/// Whether the CLI that owns the bottle still runs (`None`: cannot tell).
fn owner_alive(labels: &HashMap<String, String>) -> Option<bool> {
    labels
        .get(naming::L_OWNER)
        .and_then(|t| naming::owner_alive(t))
}

/// A bottle as `list` reports it.
pub fn summarize(id: &str, found: &Found) -> BottleSummary {
    let labels = labels_of(found);
    let agent = role(found, naming::ROLE_AGENT);
    let egress = role(found, naming::ROLE_EGRESS);
    let owner = owner_alive(&labels);
    let state = match agent {
        Some(a) if running(a) && owner != Some(false) => BottleState::Running,
        Some(a) if matches!(a.state, Some(ContainerSummaryStateEnum::EXITED)) => {
            BottleState::Exited
        }
        None if owner != Some(false) => BottleState::Creating,
        _ => BottleState::Broken,
    };
    let mut details = BTreeMap::new();
    if let Some(a) = agent {
        details.insert(
            "agent_container".into(),
            a.names.clone().unwrap_or_default().join(","),
        );
        details.insert("image".into(), a.image.clone().unwrap_or_default());
        details.insert("agent_status".into(), a.status.clone().unwrap_or_default());
    }
    if let Some(e) = egress {
        details.insert(
            "egress_container".into(),
            e.names.clone().unwrap_or_default().join(","),
        );
        details.insert("egress_status".into(), e.status.clone().unwrap_or_default());
    }
    details.insert(
        "networks".into(),
        found
            .networks
            .iter()
            .filter_map(|n| n.name.clone())
            .collect::<Vec<_>>()
            .join(","),
    );
    if let Some(o) = labels.get(naming::L_OWNER) {
        details.insert("owner".into(), o.clone());
    }
    let egress_log = labels
        .get(naming::L_STATE_DIR)
        .map(|d| crate::launch::egress_dir(&PathBuf::from(d)).join("egress.log"));
    BottleSummary {
        id: id.to_string(),
        backend: BACKEND.into(),
        agent: labels.get(naming::L_AGENT).cloned().unwrap_or_default(),
        label: labels.get(naming::L_LABEL).cloned().unwrap_or_default(),
        state,
        created_at: labels
            .get(naming::L_CREATED)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        egress_log,
        details,
    }
}

/// Removes every resource of bottle `id`; what was removed, one line each.
///
/// Running containers are killed first; a stopped container no longer holds
/// a network endpoint, so the networks (whose removal is the slow part: the
/// engine rewrites its firewall rules) then go at the same time as the
/// containers instead of after them.
pub async fn remove(docker: &Docker, id: &str) -> Result<Vec<String>> {
    let t0 = std::time::Instant::now();
    let found = find(docker, Some(id)).await?.remove(id).unwrap_or_default();
    let kills = found
        .containers
        .iter()
        .filter(|c| running(c))
        .filter_map(|c| c.id.as_deref())
        .map(|cid| kill(docker, cid));
    for r in futures_util::future::join_all(kills).await {
        r?;
    }
    trace(t0, "remove: running containers killed");
    let (containers, networks) = futures_util::join!(
        remove_containers(docker, &found.containers),
        remove_networks(docker, &found.networks)
    );
    let mut removed = containers?;
    match networks {
        Ok(n) => removed.extend(n),
        // A container this lookup did not see (a launch racing the removal)
        // still holds an endpoint: take everything again, in order.
        Err(_) => {
            let again = find(docker, Some(id)).await?.remove(id).unwrap_or_default();
            removed.extend(remove_containers(docker, &again.containers).await?);
            removed.extend(remove_networks(docker, &again.networks).await?);
        }
    }
    trace(t0, "remove: containers and networks removed");
    for v in &found.volumes {
        match docker
            .remove_volume(v, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => removed.push(format!("volume {v}")),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(DockerError::engine(format!("removing volume {v}"), e)),
        }
    }
    Ok(removed)
}

/// SIGKILL, then wait until the engine has released the container.
async fn kill(docker: &Docker, cid: &str) -> Result<()> {
    match docker
        .kill_container(
            cid,
            Some(KillContainerOptions {
                signal: "KILL".into(),
            }),
        )
        .await
    {
        Ok(()) => {}
        // Gone, or already stopped (409: "is not running").
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => {}
        Err(e) => return Err(DockerError::engine(format!("killing container {cid}"), e)),
    }
    let mut wait = docker.wait_container(
        cid,
        Some(WaitContainerOptions {
            condition: "not-running".into(),
        }),
    );
    match wait.next().await {
        // A non-zero exit status arrives as an error; it is what a kill does.
        None | Some(Ok(_)) | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) => {
            Ok(())
        }
        Some(Err(e)) if is_not_found(&e) => Ok(()),
        Some(Err(e)) => Err(DockerError::engine(
            format!("waiting for container {cid}"),
            e,
        )),
    }
}

async fn remove_containers(
    docker: &Docker,
    containers: &[ContainerSummary],
) -> Result<Vec<String>> {
    let removals = containers
        .iter()
        .filter_map(|c| c.id.clone())
        .map(|cid| async move {
            match docker
                .remove_container(
                    &cid,
                    Some(RemoveContainerOptions {
                        force: true,
                        v: true,
                        ..Default::default()
                    }),
                )
                .await
            {
                Ok(()) => Ok(true),
                Err(e) if is_not_found(&e) => Ok(false),
                // Another remove of the same bottle got there first.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409, ..
                }) => Ok(false),
                Err(e) => Err(DockerError::engine(format!("removing container {cid}"), e)),
            }
        });
    let results = futures_util::future::join_all(removals).await;
    let mut removed = Vec::new();
    for (c, r) in containers.iter().zip(results) {
        if r? {
            removed.push(format!("container {}", name_of(c)));
        }
    }
    Ok(removed)
}

async fn remove_networks(docker: &Docker, networks: &[Network]) -> Result<Vec<String>> {
    let removals = networks
        .iter()
        .filter_map(|n| n.name.clone())
        .map(|name| async move {
            match docker.remove_network(&name).await {
                Ok(()) => Ok(Some(format!("network {name}"))),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(DockerError::engine(format!("removing network {name}"), e)),
            }
        });
    let mut removed = Vec::new();
    for r in futures_util::future::join_all(removals).await {
        removed.extend(r?);
    }
    Ok(removed)
}

fn name_of(c: &ContainerSummary) -> String {
    c.names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .or_else(|| c.id.clone())
        .unwrap_or_default()
}

/// Reaps bottles whose owning CLI is gone; keeps the rest.
pub async fn gc(docker: &Docker, request: &GcRequest) -> Result<GcReport> {
    let mut report = GcReport::default();
    for (id, found) in find(docker, None).await? {
        let labels = labels_of(&found);
        match owner_alive(&labels) {
            Some(false) => {
                if request.dry_run {
                    for c in &found.containers {
                        report.removed.push(format!("container {}", name_of(c)));
                    }
                    for n in &found.networks {
                        report
                            .removed
                            .push(format!("network {}", n.name.clone().unwrap_or_default()));
                    }
                    for v in &found.volumes {
                        report.removed.push(format!("volume {v}"));
                    }
                } else {
                    report.removed.extend(
                        remove(docker, &id)
                            .await?
                            .into_iter()
                            .map(|r| format!("{id}: {r}")),
                    );
                }
            }
            Some(true) => report.kept.push(format!("{id} (its CLI is still running)")),
            None => report
                .kept
                .push(format!("{id} (owned by a CLI on another machine)")),
        }
    }
    Ok(report)
}

/// Stops the agent, then the sidecar.
pub async fn stop(docker: &Docker, id: &str) -> Result<()> {
    let names = Names::new(id);
    let mut any = false;
    for (name, t) in [(&names.agent, 5), (&names.egress, 1)] {
        match docker
            .stop_container(
                name,
                Some(StopContainerOptions {
                    t: Some(t),
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => any = true,
            Err(e) if is_not_found(&e) => {}
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => any = true,
            Err(e) => return Err(DockerError::engine(format!("stopping {name}"), e)),
        }
    }
    if !any {
        return Err(DockerError::NotFound(format!("no docker bottle `{id}`")));
    }
    Ok(())
}

/// Waits for the agent to exit; its exit code.
pub async fn wait(docker: &Docker, id: &str) -> Result<i32> {
    let name = Names::new(id).agent;
    let mut stream = docker.wait_container(
        &name,
        Some(WaitContainerOptions {
            condition: "not-running".into(),
        }),
    );
    match stream.next().await {
        Some(Ok(r)) => Ok(r.status_code as i32),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code as i32),
        Some(Err(e)) if is_not_found(&e) => Err(DockerError::NotFound(format!(
            "no agent container for bottle `{id}` (removed?)"
        ))),
        Some(Err(e)) => Err(DockerError::engine(format!("waiting for {name}"), e)),
        None => exit_code(docker, id).await,
    }
}

/// The agent's recorded exit code.
pub async fn exit_code(docker: &Docker, id: &str) -> Result<i32> {
    let name = Names::new(id).agent;
    let info = docker.inspect_container(&name, None).await.map_err(|e| {
        if is_not_found(&e) {
            DockerError::Cancelled(format!("the agent container of bottle `{id}` was removed"))
        } else {
            DockerError::engine(format!("inspecting {name}"), e)
        }
    })?;
    Ok(info.state.and_then(|s| s.exit_code).unwrap_or(-1) as i32)
}

/// Writes the agent's output, or the egress decision log, to `out`.
pub async fn logs(docker: &Docker, id: &str, req: &LogsRequest, out: &mut dyn Write) -> Result<()> {
    let found = find(docker, Some(id))
        .await?
        .remove(id)
        .ok_or_else(|| DockerError::NotFound(format!("no docker bottle `{id}`")))?;
    if req.egress {
        let summary = summarize(id, &found);
        let path = summary.egress_log.ok_or_else(|| {
            DockerError::NotFound(format!("bottle `{id}` has no recorded state directory"))
        })?;
        return tail_file(docker, &Names::new(id).egress, &path, req.follow, out).await;
    }
    let name = Names::new(id).agent;
    let mut stream = docker.logs(
        &name,
        Some(LogsOptions {
            follow: req.follow,
            stdout: true,
            stderr: true,
            tail: "all".into(),
            ..Default::default()
        }),
    );
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                out.write_all(&c.into_bytes())
                    .and_then(|_| out.flush())
                    .map_err(|e| DockerError::io("writing logs", e))?;
            }
            Err(e) if is_not_found(&e) => {
                return Err(DockerError::NotFound(format!(
                    "bottle `{id}` has no agent container"
                )))
            }
            Err(e) => return Err(DockerError::engine(format!("reading logs of {name}"), e)),
        }
    }
    Ok(())
}

async fn tail_file(
    docker: &Docker,
    sidecar: &str,
    path: &std::path::Path,
    follow: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mut pos = 0usize;
    loop {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(DockerError::io(format!("reading {}", path.display()), e)),
        };
        if data.len() > pos {
            out.write_all(&data[pos..])
                .and_then(|_| out.flush())
                .map_err(|e| DockerError::io("writing logs", e))?;
            pos = data.len();
        }
        if !follow {
            return Ok(());
        }
        let alive = match docker.inspect_container(sidecar, None).await {
            Ok(i) => i.state.and_then(|s| s.running).unwrap_or(false),
            Err(_) => false,
        };
        if !alive {
            // One last read for lines written while it stopped.
            if let Ok(d) = std::fs::read(path) {
                if d.len() > pos {
                    let _ = out.write_all(&d[pos..]);
                }
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
