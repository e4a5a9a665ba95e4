//! Times the full lifecycle of bottles whose agent exits at once, through
//! the `Backend` trait: launch (networks, sidecar, agent), first agent
//! output, exit, remove. Used by `bench/docker/run.sh`.
//!
//! ```text
//! cargo run --release -p bot-bottle-docker --example lifecycle -- \
//!     EGRESS_BINARY AGENT_IMAGE RUNS
//! ```
//!
//! The agent image must contain `/agent` (the test agent); it runs
//! `/agent env` and exits.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bot_bottle_docker::DockerBackend;
use bot_bottle_sdk::prelude::*;

/// Records when the first byte arrives.
struct FirstByte(Arc<Mutex<Option<Instant>>>);

impl Write for FirstByte {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !buf.is_empty() {
            let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
            t.get_or_insert_with(Instant::now);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 3 {
        eprintln!("usage: lifecycle EGRESS_BINARY AGENT_IMAGE RUNS");
        std::process::exit(2);
    }
    let egress = PathBuf::from(&args[0]);
    let image = args[1].clone();
    let runs: usize = args[2].parse().unwrap_or(5);
    let backend = DockerBackend::new().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let state = tempfile::tempdir().expect("temp dir");
    let mut totals = Vec::new();
    let mut firsts = Vec::new();
    // One warm-up run builds the sidecar image and fills caches.
    for i in 0..=runs {
        let id = format!("bench-{}-{i}", std::process::id());
        let state_dir = state.path().join(&id);
        std::fs::create_dir_all(&state_dir).expect("state dir");
        let req = LaunchRequest {
            bottle: BottleIdentity {
                id: id.clone(),
                agent: "bench".into(),
                label: "bench".into(),
                bottles: vec![],
                created_at: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            },
            image: ImageSpec::Image {
                reference: image.clone(),
            },
            command: vec!["/agent".into(), "env".into()],
            user: "1000:1000".into(),
            workdir: "/".into(),
            workspace: None,
            mounts: vec![],
            env: BTreeMap::new(),
            files: vec![],
            egress: EgressPolicy::default(),
            egress_env: SecretMap::new(),
            tty: false,
            state_dir,
            egress_binary: Some(egress.clone()),
        };
        let t0 = Instant::now();
        if let Err(e) = backend.launch(req) {
            eprintln!("launch failed: {e}");
            std::process::exit(1);
        }
        let first = Arc::new(Mutex::new(None));
        let mut w = FirstByte(first.clone());
        let follow = LogsRequest {
            egress: false,
            follow: true,
        };
        let _ = backend.logs(&id, &follow, &mut w);
        let code = backend.wait(&id).unwrap_or(-1);
        backend.remove(&id).expect("remove");
        let total = t0.elapsed();
        let first = first
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|t| t - t0)
            .unwrap_or(Duration::ZERO);
        if i > 0 {
            totals.push(total.as_secs_f64());
            firsts.push(first.as_secs_f64());
        }
        eprintln!(
            "run {i}{}: exit {code}, first output {:.3}s, full lifecycle {:.3}s",
            if i == 0 { " (warm-up)" } else { "" },
            first.as_secs_f64(),
            total.as_secs_f64()
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "plugin median: lifecycle {:.3}s, first output {:.3}s",
        median(&mut totals),
        median(&mut firsts)
    );
}
