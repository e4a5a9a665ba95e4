//! Tests against the real smolvm engine (installed by scripts/install-smolvm.sh).
//!
//! Guests do not boot on the machines this is developed on (nested,
//! paravirtual KVM), so everything up to the boot runs against the real
//! engine, and the booted path reports `SKIP:` with the reason where no VM
//! boots.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bot_bottle_sdk::prelude::*;
use bot_bottle_smolmachines::backend::{
    guest_env, wait_until, Config, SmolBackend, GUEST_PROXY_ADDR,
};
use bot_bottle_smolmachines::engine::{install_cache_dir, Engine};
use bot_bottle_smolmachines::relay;

const TOKEN: &str = "sk-test-9f8e7d6c5b4a-never-in-the-guest";

/// The installed engine, or `None` after printing why (a failure on CI).
fn installed_engine() -> Option<(PathBuf, PathBuf)> {
    let bin = std::env::var_os("SMOLVM")
        .map(PathBuf::from)
        .unwrap_or_else(|| install_cache_dir().join("smol/smol-vmm"));
    let lib = std::env::var_os("SMOLVM_LIB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin.parent().unwrap().to_path_buf());
    if bin.is_file() && lib.join("libkrun.so").is_file() {
        return Some((bin, lib));
    }
    let why = format!(
        "smolvm engine not installed ({} / {}); run scripts/install-smolvm.sh",
        bin.display(),
        lib.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}");
    }
    bot_bottle_test_support::skip(&why);
    None
}

struct Env {
    dir: PathBuf,
    backend: SmolBackend,
    egress: PathBuf,
}

impl Env {
    fn new(name: &str) -> Option<Env> {
        let (bin, lib) = installed_engine()?;
        let dir = std::env::temp_dir().join(format!("bb-smol-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("rootfs/bin")).unwrap();
        std::fs::create_dir_all(dir.join("ws")).unwrap();
        let egress = real_egress();
        let cfg = Config {
            engine: Engine {
                binary: bin,
                lib_dir: Some(lib),
                state_dir: Some(dir.join("engine")),
            },
            index_dir: dir.join("index"),
            relay: Some(PathBuf::from(env!("CARGO_BIN_EXE_bot-bottle-smolvm-relay"))),
            kvm_device: PathBuf::from("/dev/kvm"),
        };
        Some(Env {
            backend: SmolBackend::new(cfg),
            dir,
            egress,
        })
    }

    fn request(&self, id: &str, tty: bool) -> LaunchRequest {
        let state_dir = self.dir.join("state").join(id);
        std::fs::create_dir_all(&state_dir).unwrap();
        let mut egress_env = SecretMap::new();
        egress_env.insert("EGRESS_TOKEN_0", Secret::new(TOKEN));
        LaunchRequest {
            bottle: BottleIdentity {
                id: id.into(),
                agent: "codex".into(),
                label: "test".into(),
                ..Default::default()
            },
            image: ImageSpec::Image {
                reference: format!("{}/", self.dir.join("rootfs").display()),
            },
            command: vec!["/bin/busybox".into(), "echo".into(), "hello".into()],
            user: "1000".into(),
            workdir: "/workspace".into(),
            workspace: Some(Mount {
                source: self.dir.join("ws"),
                target: "/workspace".into(),
                read_only: false,
            }),
            mounts: vec![],
            env: BTreeMap::from([("OPENAI_API_KEY".to_string(), "placeholder".to_string())]),
            files: vec![ProvisionedFile::new(
                "/home/agent/.codex/auth.json",
                b"{\"dummy\":true}".to_vec(),
            )
            .with_mode(0o600)],
            egress: EgressPolicy::default(),
            egress_env,
            tty,
            state_dir,
            egress_binary: Some(self.egress.clone()),
        }
    }

    fn smolvm(&self, args: &[&str]) -> String {
        let e = &self.backend.config().engine;
        let out = e.command(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn machine_names(&self) -> Vec<String> {
        self.backend
            .config()
            .engine
            .list()
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.backend.gc(&GcRequest::default());
        for m in self.backend.config().engine.list().unwrap_or_default() {
            let _ = self.backend.config().engine.delete(&m.name);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The real `bot-bottle-egress`, built from the workspace if it is not
/// there yet (the test binary lives in `<target>/debug/deps/`).
fn real_egress() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let debug = exe.parent().unwrap().parent().unwrap().to_path_buf();
            let bin = debug.join("bot-bottle-egress");
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "bot-bottle-egress"])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                .status()
                .expect("running cargo");
            assert!(
                status.success() && bin.is_file(),
                "building bot-bottle-egress failed"
            );
            bin
        })
        .clone()
}

fn read_proc(pid: u32, what: &str) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/{what}")).unwrap_or_default()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every byte under `dir`, file by file.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .map(|b| contains(&b, needle))
                .unwrap_or(false)
            {
                hits.push(p);
            }
        }
    }
    hits
}

mod engine_boundary {
    use super::*;

    /// The machine is created with exactly the network restriction, mounts
    /// and env; the token is only in the proxy's environment.
    #[test]
    fn create_restricts_network_mounts_env_and_keeps_token_out() {
        let Some(env) = Env::new("create") else {
            return;
        };
        let req = env.request("create-a1", false);
        let p = env.backend.prepare(&req).expect("prepare");
        let r = &p.record;

        let ls: serde_json::Value =
            serde_json::from_str(&env.smolvm(&["machine", "ls", "--json"])).unwrap();
        let m = ls
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == r.machine.as_str())
            .expect("machine listed");
        assert_eq!(m["network"], true);
        assert_eq!(
            m["allowed_cidrs"],
            serde_json::json!(["10.254.254.254/32"]),
            "allow list admits only the proxy address"
        );
        assert_eq!(m["labels"]["bot-bottle.id"], "create-a1");
        let verbose = env.smolvm(&["machine", "ls", "-v"]);
        assert!(
            verbose.contains(&format!("{} -> /workspace", env.dir.join("ws").display())),
            "{verbose}"
        );
        assert!(verbose.contains("-> /opt/bot-bottle"), "{verbose}");
        for want in [
            "HTTPS_PROXY=http://10.254.254.254:3128",
            "OPENAI_API_KEY=placeholder",
            "SSL_CERT_FILE=/etc/bot-bottle/ca-bundle.pem",
            "NODE_EXTRA_CA_CERTS=/opt/bot-bottle/ca.pem",
            "CODEX_CA_CERTIFICATE=",
            "REQUESTS_CA_BUNDLE=",
        ] {
            assert!(verbose.contains(want), "missing {want} in {verbose}");
        }

        // The token: nowhere in the engine's state (database, WAL, logs),
        // the guest share, the guest env, or any argv; only in the proxy env.
        assert_eq!(
            files_containing(&env.dir.join("engine"), TOKEN),
            Vec::<PathBuf>::new()
        );
        assert_eq!(
            files_containing(&req.state_dir, TOKEN),
            Vec::<PathBuf>::new()
        );
        assert!(!guest_env(&req).values().any(|v| v.contains(TOKEN)));
        assert!(!verbose.contains(TOKEN) && !ls.to_string().contains(TOKEN));
        assert!(
            contains(&read_proc(r.proxy_pid, "environ"), TOKEN),
            "proxy has its slot"
        );
        assert!(!contains(&read_proc(r.proxy_pid, "cmdline"), TOKEN));
        assert!(!contains(&read_proc(r.relay_pid, "environ"), TOKEN));
        assert!(!contains(&read_proc(r.relay_pid, "cmdline"), TOKEN));
        // The proxy gets nothing else of the host environment.
        assert!(!contains(&read_proc(r.proxy_pid, "environ"), "PATH="));
        let script = std::fs::read_to_string(req.state_dir.join("guest/provision.sh")).unwrap();
        assert!(
            script.contains("'/home/agent/.codex/auth.json'") && script.contains("chmod 600"),
            "{script}"
        );

        // Listing across invocations: a second backend on the same index.
        let other = SmolBackend::new(env.backend.config().clone());
        let listed = other.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, "create-a1");
        assert_eq!(listed[0].state, BottleState::Creating);

        other.remove("create-a1").unwrap();
        assert!(!env.machine_names().contains(&r.machine));
        assert!(
            wait_until(Duration::from_secs(5), || read_proc(r.proxy_pid, "cmdline")
                .is_empty()
                || !contains(
                    &read_proc(r.proxy_pid, "cmdline"),
                    "bot-bottle-egress"
                )),
            "proxy stopped"
        );
        assert!(other.list().unwrap().is_empty());
        other.remove("create-a1").expect("remove is idempotent");
    }

    /// A failing start removes everything and names the step.
    #[test]
    fn launch_failure_names_step_and_leaves_nothing() {
        let Some(env) = Env::new("fail") else { return };
        let req = env.request("fail-b2", false);
        match env.backend.launch(req.clone()) {
            Ok(_) => {
                bot_bottle_test_support::skip(
                    "the VM booted here; the failure path is covered where it does not",
                );
                env.backend.remove("fail-b2").unwrap();
            }
            Err(e) => {
                assert!(e.message.contains("step `machine start`"), "{}", e.message);
                assert!(!e.message.contains(TOKEN));
                assert!(env.machine_names().is_empty(), "machine removed");
                assert!(env.backend.list().unwrap().is_empty());
            }
        }
        // A Dockerfile image is refused before anything is created.
        let mut bad = env.request("fail-b3", false);
        bad.image = ImageSpec::Dockerfile {
            dockerfile: "FROM scratch".into(),
            context: None,
        };
        let e = env.backend.launch(bad).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        // A token smuggled into the agent env is refused.
        let mut leak = env.request("fail-b4", false);
        leak.env.insert("X".into(), format!("Bearer {TOKEN}"));
        let e = env.backend.launch(leak).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Credential);
        assert!(!e.message.contains(TOKEN));
    }

    /// Names never collide: two bottles side by side.
    #[test]
    fn concurrent_bottles_get_distinct_machines_and_ports() {
        let Some(env) = Env::new("two") else { return };
        let a = env.backend.prepare(&env.request("two-c1", false)).unwrap();
        let b = env.backend.prepare(&env.request("two-c2", true)).unwrap();
        assert_ne!(a.record.machine, b.record.machine);
        assert_ne!(a.record.proxy_addr, b.record.proxy_addr);
        assert_ne!(a.record.relay_addr, b.record.relay_addr);
        assert_eq!(env.backend.list().unwrap().len(), 2);
        let dup = env
            .backend
            .prepare(&env.request("two-c1", false))
            .unwrap_err();
        assert!(dup.message.contains("already exists"), "{}", dup.message);
        env.backend.remove("two-c1").unwrap();
        env.backend.remove("two-c2").unwrap();
        assert!(env.machine_names().is_empty());
    }

    /// gc reaps what a killed CLI left, never a launch in progress or a
    /// foreign machine.
    #[test]
    fn gc_reaps_leftovers_only() {
        let Some(env) = Env::new("gc") else { return };
        let left = env.backend.prepare(&env.request("gc-d1", false)).unwrap();
        let busy = env.backend.prepare(&env.request("gc-d2", false)).unwrap();
        let _lock = bot_bottle_smolmachines::proc::try_lock(
            &env.backend.config().index_dir.join("gc-d2.lock"),
        )
        .unwrap()
        .unwrap();
        env.smolvm(&[
            "machine",
            "create",
            "--name",
            "foreign-vm",
            "--image",
            &format!("{}/", env.dir.join("rootfs").display()),
        ]);
        assert!(env.machine_names().contains(&"foreign-vm".to_string()));

        let dry = env.backend.gc(&GcRequest { dry_run: true }).unwrap();
        assert_eq!(dry.removed.len(), 1, "{dry:?}");
        assert!(env.machine_names().contains(&left.record.machine));

        let rep = env.backend.gc(&GcRequest::default()).unwrap();
        assert_eq!(rep.removed.len(), 1, "{rep:?}");
        assert!(rep.removed[0].contains("gc-d1"));
        assert!(rep.kept.iter().any(|k| k.contains("gc-d2")));
        let names = env.machine_names();
        assert!(!names.contains(&left.record.machine));
        assert!(names.contains(&busy.record.machine));
        assert!(
            names.contains(&"foreign-vm".to_string()),
            "foreign machine untouched"
        );
        assert!(wait_until(Duration::from_secs(5), || !contains(
            &read_proc(left.record.proxy_pid, "cmdline"),
            "bot-bottle-egress"
        )));
        assert!(contains(
            &read_proc(busy.record.proxy_pid, "cmdline"),
            "bot-bottle-egress"
        ));
        drop(_lock);
        env.backend.remove("gc-d2").unwrap();
    }

    /// Clear errors when the engine, its libraries or KVM are missing.
    #[test]
    fn doctor_and_errors_name_what_is_missing() {
        let Some(env) = Env::new("doctor") else {
            return;
        };
        let mut cfg = env.backend.config().clone();
        cfg.engine.binary = PathBuf::from("/nonexistent/smolvm");
        cfg.engine.lib_dir = Some(PathBuf::from("/nonexistent/lib"));
        cfg.kvm_device = PathBuf::from("/nonexistent/kvm");
        let b = SmolBackend::new(cfg);
        let rep = b.doctor().unwrap();
        assert!(!rep.ready());
        for c in &rep.checks[..3] {
            assert!(!c.ok, "{c:?}");
            assert!(c.hint.is_some(), "{c:?}");
        }
        assert!(rep.checks[0].detail.contains("/nonexistent/smolvm"));
        assert!(rep.checks[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("install-smolvm.sh"));
        let e = b.list().unwrap_err();
        assert_eq!(e.kind, ErrorKind::EngineUnavailable);
        assert!(e.hint.unwrap().contains("install-smolvm.sh"));

        let real = env.backend.doctor().unwrap();
        assert!(real.checks[0].ok && real.checks[1].ok, "{real:?}");
        use std::os::unix::fs::PermissionsExt;
        if let Ok(md) = std::fs::metadata("/dev/kvm") {
            let world = md.permissions().mode() & 0o006 == 0o006;
            assert_eq!(real.checks[2].ok, world, "{real:?}");
            if !world {
                assert!(real.checks[2]
                    .hint
                    .as_deref()
                    .unwrap()
                    .contains("chmod 666 /dev/kvm"));
            }
        }
    }
}

mod interceptor {
    use super::*;

    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn verdict(relay: &str, token: &[u8; 32], dest: &str) -> (u8, TcpStream) {
        let mut s = TcpStream::connect(relay).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&relay::preamble(token, dest.parse().unwrap()))
            .unwrap();
        let mut v = [9u8; 1];
        s.read_exact(&mut v).unwrap();
        (v[0], s)
    }

    /// The relay passes only the proxy address, to the proxy; everything
    /// else is refused, and a wrong token gets nothing.
    #[test]
    fn relay_admits_only_the_proxy_address() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let up_addr = upstream.local_addr().unwrap();
        std::thread::spawn(move || {
            for c in upstream.incoming().flatten() {
                let mut c = c;
                let mut b = [0u8; 4];
                if c.read_exact(&mut b).is_ok() {
                    let _ = c.write_all(b"pong");
                }
            }
        });
        let port = bot_bottle_smolmachines::proc::free_port().unwrap();
        let listen = format!("127.0.0.1:{port}");
        let token = [0x5au8; 32];
        let dir = std::env::temp_dir().join(format!("bb-relay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ready = dir.join("ready");
        let child = Command::new(env!("CARGO_BIN_EXE_bot-bottle-smolvm-relay"))
            .args([
                "--listen",
                &listen,
                "--upstream",
                &up_addr.to_string(),
                "--allow",
                GUEST_PROXY_ADDR,
            ])
            .arg("--ready-file")
            .arg(&ready)
            .arg("--log-file")
            .arg(dir.join("log"))
            .env_clear()
            .env("SMOLVM_INTERCEPTOR_TOKEN", relay::token_hex(&token))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let child = KillOnDrop(child);
        assert!(wait_until(Duration::from_secs(5), || ready.exists()));

        let (v, mut s) = verdict(&listen, &token, GUEST_PROXY_ADDR);
        assert_eq!(v, 0);
        s.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"pong");

        let (v, _) = verdict(&listen, &token, "127.0.0.1:22");
        assert_eq!(v, 111, "direct connection refused");
        let mut s = TcpStream::connect(&listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&relay::preamble(
            &[1u8; 32],
            GUEST_PROXY_ADDR.parse().unwrap(),
        ))
        .unwrap();
        let mut v = Vec::new();
        let _ = s.read_to_end(&mut v);
        assert!(v.is_empty(), "wrong token gets no verdict");
        let logged = || {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            log.contains("\"deny\"") && log.contains("127.0.0.1:22")
        };
        assert!(
            wait_until(Duration::from_secs(5), logged),
            "the refusal is logged"
        );

        // Without a token it refuses to start.
        let out = Command::new(env!("CARGO_BIN_EXE_bot-bottle-smolvm-relay"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:1",
                "--allow",
                GUEST_PROXY_ADDR,
            ])
            .env_clear()
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("SMOLVM_INTERCEPTOR_TOKEN"));
        drop(child);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

mod booted {
    use super::*;

    /// Where a VM boots: the agent reaches its proxy, a direct connection
    /// fails. Elsewhere: `SKIP:` with the reason.
    #[test]
    fn agent_reaches_only_the_proxy_when_a_vm_boots() {
        let Some(env) = Env::new("boot") else { return };
        // A static busybox makes the guest; without one the launch still
        // tells whether a VM boots here, which decides the skip.
        let busybox = Path::new("/bin/busybox");
        let have_guest = busybox.is_file();
        if have_guest {
            std::fs::copy(busybox, env.dir.join("rootfs/bin/busybox")).unwrap();
            std::os::unix::fs::symlink("busybox", env.dir.join("rootfs/bin/sh")).unwrap();
        }
        let mut req = env.request("boot-e1", false);
        req.user = String::new();
        req.files.clear();
        req.command = vec![
            "/bin/busybox".into(),
            "sh".into(),
            "-c".into(),
            "busybox wget -q -O - http://10.254.254.254:3128/ && ! busybox wget -q -T 5 -O - http://127.0.0.1:1/".into(),
        ];
        match env.backend.launch(req) {
            Err(e) => bot_bottle_test_support::skip(format!("the guest did not boot on this machine ({}); the booted path needs a host whose KVM can run libkrun guests", e.message)),
            Ok(_) if !have_guest => {
                env.backend.remove("boot-e1").unwrap();
                panic!("a VM boots here but /bin/busybox (apt-get install busybox-static) is missing, so the booted path cannot run");
            }
            Ok(_) => {
                let code = env.backend.wait("boot-e1").unwrap();
                assert_eq!(code, 0, "agent reached the proxy and nothing else");
                env.backend.remove("boot-e1").unwrap();
            }
        }
    }
}
