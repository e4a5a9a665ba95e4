//! # bot-bottle-docker
//!
//! The Docker backend: each bottle is an internal network, an egress sidecar
//! (`bot-bottle-egress` in a `FROM scratch` image) and a hardened agent
//! container that can reach only the sidecar. It talks to the Docker Engine
//! API directly (bollard) and owns a small tokio runtime; calls at the plugin
//! boundary are synchronous.
//!
//! Settings come from the plugin's process environment; see
//! [`settings`] and `plugins/docker/README.md`.

#![warn(missing_docs)]

pub mod attach;
pub mod error;
pub mod files;
pub mod images;
pub mod launch;
pub mod lifecycle;
pub mod naming;
pub mod settings;
pub mod subnet;

use std::io::Write;
use std::time::Duration;

use bollard::Docker;
use bot_bottle_sdk::prelude::*;
use tokio::sync::OnceCell;

use crate::error::DockerError;
use crate::settings::Settings;

/// The plugin library.
pub struct DockerPlugin;

impl Plugin for DockerPlugin {
    fn manifest() -> PluginManifest {
        PluginManifest {
            name: "docker".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Bottles on a Docker engine (Engine API, egress sidecar, hardened agent)"
                .into(),
            backends: vec![naming::BACKEND.into()],
            capabilities: vec!["tty".into(), "gc".into(), "logs".into()],
            ..Default::default()
        }
    }

    fn open_backend(name: &str) -> PluginResult<Box<dyn Backend>> {
        if name != naming::BACKEND {
            return Err(PluginError::not_found(format!(
                "no backend named `{name}` (this plugin provides `docker`)"
            )));
        }
        Ok(Box::new(DockerBackend::new()?))
    }
}

bot_bottle_sdk::export_plugin!(DockerPlugin);

/// The connected engine and the settings derived from it.
struct Engine {
    docker: Docker,
    settings: Settings,
    api_version: String,
    server_version: String,
}

/// The Docker backend.
pub struct DockerBackend {
    rt: tokio::runtime::Runtime,
    engine: OnceCell<Engine>,
}

impl DockerBackend {
    /// A backend with its own runtime; the engine is contacted on first use.
    pub fn new() -> PluginResult<DockerBackend> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bot-bottle-docker")
            .enable_all()
            .build()
            .map_err(|e| PluginError::io("starting the docker backend's runtime", e))?;
        Ok(DockerBackend {
            rt,
            engine: OnceCell::new(),
        })
    }

    async fn engine(&self) -> Result<&Engine, DockerError> {
        self.engine
            .get_or_try_init(|| async {
                let docker = Docker::connect_with_local_defaults()
                    .map_err(|e| DockerError::Unavailable(e.to_string()))?
                    .with_timeout(Duration::from_secs(600));
                // Debian's 20.10 engine speaks API 1.41; bollard defaults to a
                // newer one and must step down.
                let docker =
                    tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
                        .await
                        .map_err(|_| {
                            DockerError::Unavailable("the engine did not answer within 10s".into())
                        })?
                        .map_err(|e| DockerError::engine("negotiating the API version", e))?;
                let info = docker
                    .info()
                    .await
                    .map_err(|e| DockerError::engine("reading engine info", e))?;
                let runtimes: Vec<String> = info
                    .runtimes
                    .map(|r| r.into_keys().collect())
                    .unwrap_or_default();
                let settings = Settings::load(&runtimes)?;
                let api_version = docker.client_version().to_string();
                Ok(Engine {
                    docker,
                    settings,
                    api_version,
                    server_version: info.server_version.unwrap_or_default(),
                })
            })
            .await
    }

    fn block<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, DockerError>>,
    ) -> PluginResult<T> {
        self.rt.block_on(f).map_err(PluginError::from)
    }
}

impl Backend for DockerBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: naming::BACKEND.into(),
            description: "Docker engine: internal network, egress sidecar, hardened container"
                .into(),
            isolation: "container".into(),
        }
    }

    fn doctor(&self) -> PluginResult<DoctorReport> {
        let mut checks = Vec::new();
        match self.rt.block_on(self.engine()) {
            Ok(engine) => {
                checks.push(DoctorCheck {
                    name: "docker engine".into(),
                    ok: true,
                    detail: format!(
                        "server {} (API {} negotiated)",
                        engine.server_version, engine.api_version
                    ),
                    hint: None,
                });
                checks.push(DoctorCheck {
                    name: "runtime".into(),
                    ok: true,
                    detail: match &engine.settings.runtime {
                        Some(r) if r == "runsc" => "gVisor (runsc)".into(),
                        Some(r) => r.clone(),
                        None => "runc (gVisor `runsc` not installed in the daemon)".into(),
                    },
                    hint: None,
                });
                if let Some(net) = &engine.settings.egress_network {
                    let ok = self
                        .rt
                        .block_on(engine.docker.inspect_network(net, None))
                        .is_ok();
                    checks.push(DoctorCheck {
                        name: "egress network".into(),
                        ok,
                        detail: format!("BOT_BOTTLE_DOCKER_EGRESS_NETWORK={net}"),
                        hint: (!ok).then(|| format!("create it: docker network create {net}")),
                    });
                }
            }
            Err(e) => checks.push(DoctorCheck {
                name: "docker engine".into(),
                ok: false,
                detail: e.to_string(),
                hint: PluginError::from(e).hint,
            }),
        }
        Ok(DoctorReport { checks })
    }

    fn launch(&self, request: LaunchRequest) -> PluginResult<BottleSummary> {
        let binary = launch::validate(&request).map_err(PluginError::from)?;
        self.block(async {
            let engine = self.engine().await?;
            let id = request.bottle.id.clone();
            // A bottle id is fresh per launch; a leftover with the same id
            // makes the container create fail with a name conflict, and the
            // cleanup below then removes only what is labelled with this id.
            match launch::launch(&engine.docker, &engine.settings, &request, &binary).await {
                Ok(done) => {
                    let b = &request.bottle;
                    let names = naming::Names::new(&id);
                    let mut details = std::collections::BTreeMap::new();
                    details.insert("agent_container".into(), names.agent);
                    details.insert("egress_container".into(), names.egress);
                    details.insert(
                        "proxy".into(),
                        format!("{}:{}", done.proxy_ip, launch::PROXY_PORT),
                    );
                    details.insert("image".into(), done.image);
                    details.insert("runtime".into(), done.runtime);
                    Ok(BottleSummary {
                        id: id.clone(),
                        backend: naming::BACKEND.into(),
                        agent: b.agent.clone(),
                        label: if b.label.is_empty() {
                            b.agent.clone()
                        } else {
                            b.label.clone()
                        },
                        state: BottleState::Running,
                        created_at: b.created_at,
                        egress_log: Some(done.egress_log),
                        details,
                    })
                }
                Err(e) => {
                    if let Err(cleanup) = lifecycle::remove(&engine.docker, &id).await {
                        bot_bottle_sdk::log::error(&format!(
                            "cleaning up after a failed launch of `{id}`: {cleanup}"
                        ));
                    }
                    Err(e)
                }
            }
        })
    }

    fn attach(&self, id: &str, tty: bool) -> PluginResult<i32> {
        self.block(async { attach::attach(&self.engine().await?.docker, id, tty).await })
    }

    fn wait(&self, id: &str) -> PluginResult<i32> {
        self.block(async { lifecycle::wait(&self.engine().await?.docker, id).await })
    }

    fn stop(&self, id: &str) -> PluginResult<()> {
        self.block(async { lifecycle::stop(&self.engine().await?.docker, id).await })
    }

    fn remove(&self, id: &str) -> PluginResult<()> {
        self.block(async {
            lifecycle::remove(&self.engine().await?.docker, id)
                .await
                .map(|_| ())
        })
    }

    fn list(&self) -> PluginResult<Vec<BottleSummary>> {
        self.block(async {
            let found = lifecycle::find(&self.engine().await?.docker, None).await?;
            Ok(found
                .iter()
                .map(|(id, f)| lifecycle::summarize(id, f))
                .collect())
        })
    }

    fn logs(&self, id: &str, request: &LogsRequest, out: &mut dyn Write) -> PluginResult<()> {
        self.block(async { lifecycle::logs(&self.engine().await?.docker, id, request, out).await })
    }

    fn gc(&self, request: &GcRequest) -> PluginResult<GcReport> {
        self.block(async { lifecycle::gc(&self.engine().await?.docker, request).await })
    }
}
