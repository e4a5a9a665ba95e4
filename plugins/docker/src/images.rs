//! Images: the `FROM scratch` egress sidecar image and agent images built
//! from Dockerfile text, both cached by content hash, built with the classic
//! (BuildKit-free) builder through the Engine API.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};

use bollard::query_parameters::BuildImageOptions;
use bollard::Docker;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::error::{is_not_found, DockerError, Result};
use crate::naming::L_IMAGE;

/// Where the egress binary lives in the sidecar image.
pub const EGRESS_PATH: &str = "/bot-bottle-egress";

const STATIC_HINT: &str = "build it statically: RUSTFLAGS=\"-C target-feature=+crt-static\" \
     cargo build --release -p bot-bottle-egress --target x86_64-unknown-linux-gnu";

/// Checks that `path` is a statically linked ELF executable (no `PT_INTERP`
/// program header), as a `FROM scratch` image needs.
pub fn check_static_elf(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| DockerError::io(format!("reading egress binary {}", path.display()), e))?;
    let bad = |why: &str| {
        DockerError::Config(format!(
            "egress binary {} {why}; the sidecar image is FROM scratch, so {STATIC_HINT}",
            path.display()
        ))
    };
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(bad("is not an ELF executable"));
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(bad("is not a 64-bit little-endian ELF file"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap_or([0; 8])) as usize;
    let phentsize = u16_at(0x36);
    let phnum = u16_at(0x38);
    if phentsize < 4 {
        return Err(bad("has a malformed ELF header"));
    }
    for i in 0..phnum {
        let off = phoff.saturating_add(i.saturating_mul(phentsize));
        let Some(p_type) = bytes.get(off..off + 4) else {
            return Err(bad("has a truncated program header table"));
        };
        const PT_INTERP: u32 = 3;
        if u32::from_le_bytes([p_type[0], p_type[1], p_type[2], p_type[3]]) == PT_INTERP {
            return Err(bad("is dynamically linked (it has an ELF interpreter)"));
        }
    }
    Ok(bytes)
}

fn hex16(digest: &[u8]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// One build at a time per tag in this process, so concurrent launches of
/// the same image wait for one build instead of racing five.
fn tag_lock(tag: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    map.entry(tag.to_string()).or_default().clone()
}

async fn image_exists(docker: &Docker, tag: &str) -> Result<bool> {
    match docker.inspect_image(tag).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(DockerError::engine(format!("inspecting image {tag}"), e)),
    }
}

/// The sidecar image for an egress binary, built on first use.
pub async fn ensure_egress_image(docker: &Docker, binary: &Path) -> Result<String> {
    let bytes = check_static_elf(binary)?;
    let tag = format!("bot-bottle-egress:{}", hex16(&Sha256::digest(&bytes)));
    let lock = tag_lock(&tag);
    let _guard = lock.lock().await;
    if image_exists(docker, &tag).await? {
        return Ok(tag);
    }
    let dockerfile = format!(
        "FROM scratch\nCOPY bot-bottle-egress {EGRESS_PATH}\nUSER 65534:65534\n\
         LABEL {L_IMAGE}=egress bot-bottle.managed=true\nENTRYPOINT [\"{EGRESS_PATH}\"]\n"
    );
    let mut tar = tar::Builder::new(Vec::new());
    append_bytes(&mut tar, "Dockerfile", dockerfile.as_bytes(), 0o644)?;
    append_bytes(&mut tar, "bot-bottle-egress", &bytes, 0o755)?;
    let body = tar
        .into_inner()
        .map_err(|e| DockerError::io("packing the egress image context", e))?;
    build(docker, &tag, "Dockerfile", body, "egress proxy image").await?;
    Ok(tag)
}

/// An agent image from Dockerfile text and an optional context directory.
pub async fn ensure_dockerfile_image(
    docker: &Docker,
    dockerfile: &str,
    context: Option<&Path>,
) -> Result<String> {
    const DOCKERFILE_NAME: &str = ".bot-bottle.Dockerfile";
    let mut files = Vec::new();
    if let Some(dir) = context {
        walk(dir, dir, &mut files)?;
        files.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let mut hash = Sha256::new();
    hash.update(dockerfile.as_bytes());
    let mut tar = tar::Builder::new(Vec::new());
    for (rel, path, mode) in &files {
        if rel == DOCKERFILE_NAME {
            continue;
        }
        let contents = std::fs::read(path).map_err(|e| {
            DockerError::io(format!("reading build context file {}", path.display()), e)
        })?;
        hash.update(rel.as_bytes());
        hash.update([0]);
        hash.update(mode.to_le_bytes());
        hash.update((contents.len() as u64).to_le_bytes());
        hash.update(&contents);
        append_bytes(&mut tar, rel, &contents, *mode)?;
    }
    append_bytes(&mut tar, DOCKERFILE_NAME, dockerfile.as_bytes(), 0o644)?;
    let tag = format!("bot-bottle-agent:{}", hex16(&hash.finalize()));
    let lock = tag_lock(&tag);
    let _guard = lock.lock().await;
    if image_exists(docker, &tag).await? {
        return Ok(tag);
    }
    let body = tar
        .into_inner()
        .map_err(|e| DockerError::io("packing the agent build context", e))?;
    build(docker, &tag, DOCKERFILE_NAME, body, "agent image").await?;
    Ok(tag)
}

/// Regular files under `dir` as (relative path, absolute path, mode).
/// Symlinks and special files are skipped: the classic builder would copy a
/// symlink's target from the host, which a context must not reach outside.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf, u32)>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let entries = std::fs::read_dir(dir)
        .map_err(|e| DockerError::io(format!("reading build context {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry
            .map_err(|e| DockerError::io(format!("reading build context {}", dir.display()), e))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| DockerError::io(format!("reading {}", path.display()), e))?;
        if meta.is_dir() {
            if entry.file_name() == ".git" {
                continue;
            }
            walk(root, &path, out)?;
        } else if meta.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            out.push((rel, path, meta.permissions().mode() & 0o7777));
        }
    }
    Ok(())
}

/// Appends a regular file with fixed metadata (so the tar is reproducible).
pub fn append_bytes(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    contents: &[u8],
    mode: u32,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(contents.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, contents)
        .map_err(|e| DockerError::io(format!("packing {path}"), e))
}

/// Runs one classic build and shows its progress: a bar on a terminal, one
/// line per step otherwise.
async fn build(
    docker: &Docker,
    tag: &str,
    dockerfile: &str,
    body: Vec<u8>,
    what: &str,
) -> Result<()> {
    let options = BuildImageOptions {
        dockerfile: dockerfile.to_string(),
        t: Some(tag.to_string()),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let mut progress = Progress::new(what, tag);
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(body.into())));
    let mut last_lines: Vec<String> = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| DockerError::engine(format!("building {what} {tag}"), e))?;
        if let Some(detail) = info.error_detail {
            progress.finish(false);
            let msg = detail.message.unwrap_or_default();
            return Err(DockerError::Engine {
                step: format!("building {what} {tag}"),
                message: format!("{}\n{}", msg.trim(), last_lines.join("\n")),
            });
        }
        if let Some(text) = info.stream {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                progress.line(line);
                last_lines.push(line.to_string());
                if last_lines.len() > 10 {
                    last_lines.remove(0);
                }
            }
        }
    }
    progress.finish(true);
    Ok(())
}

/// A minimal progress bar driven by the builder's `Step N/M` lines.
struct Progress {
    what: String,
    tag: String,
    tty: bool,
    done: usize,
    total: usize,
}

impl Progress {
    fn new(what: &str, tag: &str) -> Self {
        let tty = std::io::stderr().is_terminal();
        bot_bottle_sdk::log::info(&format!("building {what} {tag}"));
        Progress {
            what: what.into(),
            tag: tag.into(),
            tty,
            done: 0,
            total: 0,
        }
    }

    fn line(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix("Step ") {
            let nm = rest.split_whitespace().next().unwrap_or("");
            if let Some((n, m)) = nm.split_once('/') {
                self.done = n.parse().unwrap_or(self.done);
                self.total = m.parse().unwrap_or(self.total);
            }
            if self.tty {
                self.draw(line);
            } else {
                bot_bottle_sdk::log::info(&format!("  {}", line.trim()));
            }
        } else {
            bot_bottle_sdk::log::debug(line);
        }
    }

    fn draw(&self, line: &str) {
        const WIDTH: usize = 30;
        let filled = (WIDTH * self.done.saturating_sub(1))
            .checked_div(self.total)
            .unwrap_or(0)
            .min(WIDTH);
        let step: String = line.chars().take(50).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{} [{}{}] {}/{} {}",
            self.what,
            "#".repeat(filled),
            " ".repeat(WIDTH - filled),
            self.done,
            self.total,
            step
        );
        let _ = err.flush();
    }

    fn finish(&mut self, ok: bool) {
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "\r\x1b[2K{} [{}] {} {}",
                self.what,
                "#".repeat(30),
                self.tag,
                if ok { "built" } else { "FAILED" }
            );
        } else if ok {
            bot_bottle_sdk::log::info(&format!("built {} {}", self.what, self.tag));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_binary_is_refused_with_the_build_command() {
        // The test binary itself is dynamically linked.
        let me = std::env::current_exe().unwrap();
        let err = check_static_elf(&me).unwrap_err().to_string();
        assert!(err.contains("dynamically linked"), "{err}");
        assert!(err.contains("+crt-static"), "{err}");
    }

    #[test]
    fn a_non_elf_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"#!/bin/sh\necho hi\n").unwrap();
        let err = check_static_elf(&f).unwrap_err().to_string();
        assert!(err.contains("not an ELF"), "{err}");
        let err = check_static_elf(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }
}
