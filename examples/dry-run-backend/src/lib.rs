//! `dry-run`: a backend that starts nothing.
//!
//! `bot-bottle start <agent> --backend dry-run` writes the complete launch
//! request a real backend would receive to
//! `<state dir>/launch-request.json`, with every credential value replaced
//! by `<redacted>` and file contents by their size, so you can debug a
//! manifest (routes, token slots, env, files, image) without an engine.
//!
//! It is also the smallest complete example of a backend plugin built only
//! against `bot-bottle-sdk`.

use std::io::Write;
use std::path::{Path, PathBuf};

use bot_bottle_sdk::prelude::*;
use serde_json::{json, Value};

/// The backend.
pub struct DryRun;

/// File name of the record written into the bottle's state directory.
pub const RECORD: &str = "launch-request.json";

/// The launch request as JSON with secrets and file contents redacted.
pub fn redacted_record(request: &LaunchRequest) -> Value {
    let mut v = serde_json::to_value(request).unwrap_or(Value::Null);
    // `egress_env` is not serialized by the SDK at all; record the slot
    // names so the user can see which values the proxy would get.
    let slots: serde_json::Map<String, Value> = request
        .egress_env
        .names()
        .map(|n| (n.to_string(), json!("<redacted>")))
        .collect();
    v["egress_env"] = Value::Object(slots);
    v["files"] = request
        .files
        .iter()
        .map(
            |f| json!({"path": f.path, "bytes": f.contents.len(), "mode": format!("{:o}", f.mode)}),
        )
        .collect();
    v
}

fn state_dir_of(id: &str) -> Option<PathBuf> {
    // The host keeps each bottle's state in ~/.bot-bottle/state/<id>/.
    if id.contains('/') || id.contains("..") {
        return None;
    }
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".bot-bottle/state").join(id))
}

impl Backend for DryRun {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: "dry-run".into(),
            description: "records the launch request (secrets redacted); starts nothing".into(),
            isolation: "none".into(),
        }
    }

    fn doctor(&self) -> PluginResult<DoctorReport> {
        Ok(DoctorReport {
            checks: vec![DoctorCheck {
                name: "engine".into(),
                ok: true,
                detail: "none needed".into(),
                hint: None,
            }],
        })
    }

    fn launch(&self, request: LaunchRequest) -> PluginResult<BottleSummary> {
        let path = request.state_dir.join(RECORD);
        let text = serde_json::to_vec_pretty(&redacted_record(&request))
            .map_err(|e| PluginError::internal(format!("encoding the record: {e}")))?;
        std::fs::write(&path, text)
            .map_err(|e| PluginError::io(format_args!("writing {}", path.display()), e))?;
        bot_bottle_sdk::log::info(&format!(
            "dry-run: recorded the launch request of {} in {}",
            request.bottle.id,
            path.display()
        ));
        let mut details = std::collections::BTreeMap::new();
        details.insert("record".into(), path.display().to_string());
        Ok(BottleSummary {
            id: request.bottle.id.clone(),
            backend: "dry-run".into(),
            agent: request.bottle.agent.clone(),
            label: request.bottle.label.clone(),
            state: BottleState::Exited,
            created_at: request.bottle.created_at,
            egress_log: None,
            details,
        })
    }

    fn attach(&self, _id: &str, _tty: bool) -> PluginResult<i32> {
        Ok(0)
    }

    fn wait(&self, _id: &str) -> PluginResult<i32> {
        Ok(0)
    }

    fn stop(&self, _id: &str) -> PluginResult<()> {
        Ok(())
    }

    fn remove(&self, _id: &str) -> PluginResult<()> {
        // Nothing was created; the record stays for the user to read.
        Ok(())
    }

    fn list(&self) -> PluginResult<Vec<BottleSummary>> {
        Ok(Vec::new())
    }

    fn logs(&self, id: &str, _request: &LogsRequest, out: &mut dyn Write) -> PluginResult<()> {
        let path = state_dir_of(id)
            .map(|d| d.join(RECORD))
            .filter(|p| p.is_file())
            .ok_or_else(|| PluginError::not_found(format!("no dry-run record for `{id}`")))?;
        let text = std::fs::read(&path)
            .map_err(|e| PluginError::io(format_args!("reading {}", path.display()), e))?;
        out.write_all(&text)
            .map_err(|e| PluginError::io("writing the record", e))
    }

    fn gc(&self, _request: &GcRequest) -> PluginResult<GcReport> {
        Ok(GcReport::default())
    }
}

/// The plugin library.
pub struct DryRunPlugin;

impl Plugin for DryRunPlugin {
    fn manifest() -> PluginManifest {
        PluginManifest {
            name: "dry-run".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "records launch requests for debugging manifests".into(),
            backends: vec!["dry-run".into()],
            capabilities: vec!["no-engine".into()],
            ..Default::default()
        }
    }

    fn open_backend(name: &str) -> PluginResult<Box<dyn Backend>> {
        match name {
            "dry-run" => Ok(Box::new(DryRun)),
            other => Err(PluginError::not_found(format!(
                "this plugin provides backend `dry-run`, not `{other}`"
            ))),
        }
    }
}

bot_bottle_sdk::export_plugin!(DryRunPlugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_never_holds_a_secret_value() {
        let dir = std::env::temp_dir().join(format!("dry-run-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut egress_env = SecretMap::new();
        egress_env.insert("EGRESS_TOKEN_0", Secret::new("sk-very-secret"));
        let request = LaunchRequest {
            bottle: BottleIdentity {
                id: "t-1".into(),
                agent: "a".into(),
                ..Default::default()
            },
            image: ImageSpec::Image {
                reference: "x".into(),
            },
            command: vec!["true".into()],
            user: String::new(),
            workdir: "/workspace".into(),
            workspace: None,
            mounts: vec![],
            env: Default::default(),
            files: vec![ProvisionedFile::new("/home/a/f", b"contents".to_vec())],
            egress: EgressPolicy::default(),
            egress_env,
            tty: false,
            state_dir: dir.clone(),
            egress_binary: None,
        };
        DryRun.launch(request).unwrap();
        let text = std::fs::read_to_string(dir.join(RECORD)).unwrap();
        assert!(text.contains("EGRESS_TOKEN_0"));
        assert!(!text.contains("sk-very-secret"));
        assert!(!text.contains("contents"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
