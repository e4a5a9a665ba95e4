//! Tar archives of provisioned files, uploaded into the agent container
//! through the Engine API (never bind-mounted from host secret locations).

use std::collections::BTreeSet;

use bot_bottle_sdk::ProvisionedFile;

use crate::error::{DockerError, Result};

/// Numeric owner of uploaded files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
}

/// A tar archive (to extract at `/`) holding `files` owned by `owner`.
///
/// Missing parent directories three levels deep or more (for example
/// `/home/node/.claude`) are created owned by `owner` so the agent can write
/// next to its files; shallower ones (`/home/node`, `/etc`) are left to the
/// image.
pub fn archive(files: &[ProvisionedFile], owner: Owner) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs = BTreeSet::new();
    for f in files {
        let path = check_path(&f.path)?;
        let parts: Vec<&str> = path.split('/').collect();
        for depth in 3..parts.len() {
            dirs.insert(parts[..depth].join("/"));
        }
    }
    for dir in &dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(owner.uid);
        h.set_gid(owner.gid);
        h.set_size(0);
        h.set_mtime(0);
        tar.append_data(&mut h, format!("{dir}/"), std::io::empty())
            .map_err(|e| DockerError::io(format!("packing directory {dir}"), e))?;
    }
    for f in files {
        let path = check_path(&f.path)?;
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(f.mode & 0o7777);
        h.set_uid(owner.uid);
        h.set_gid(owner.gid);
        h.set_size(f.contents.len() as u64);
        h.set_mtime(0);
        tar.append_data(&mut h, &path, f.contents.as_slice())
            .map_err(|e| DockerError::io(format!("packing provisioned file {}", f.path), e))?;
    }
    tar.into_inner()
        .map_err(|e| DockerError::io("packing provisioned files", e))
}

/// The path relative to `/`, refusing relative paths and `..`.
fn check_path(path: &str) -> Result<String> {
    let rel = path.strip_prefix('/').ok_or_else(|| {
        DockerError::Config(format!(
            "provisioned file `{path}` must have an absolute sandbox path"
        ))
    })?;
    if rel.is_empty()
        || rel
            .split('/')
            .any(|p| p == ".." || p == "." || p.is_empty())
    {
        return Err(DockerError::Config(format!(
            "provisioned file `{path}` has an empty, `.` or `..` component"
        )));
    }
    Ok(rel.to_string())
}

/// Reads the first regular file out of a tar archive (what the archive
/// download endpoint returns for one path).
pub fn first_file(tar_bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        if entry.header().entry_type().is_file() {
            let mut out = Vec::new();
            entry.read_to_end(&mut out).ok()?;
            return Some(out);
        }
    }
    None
}

/// Looks up `name` in an `/etc/passwd` (or `/etc/group`) text: field 3.
pub fn lookup_id(db: &str, name: &str) -> Option<u64> {
    db.lines().find_map(|line| {
        let mut f = line.split(':');
        let n = f.next()?;
        if n != name {
            return None;
        }
        f.next()?;
        f.next()?.parse().ok()
    })
}

/// The primary group (field 4) of user `name` in an `/etc/passwd` text.
pub fn primary_gid(passwd: &str, name: &str) -> Option<u64> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.first() == Some(&name)).then(|| f.get(3)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_has_owned_files_and_deep_parent_dirs() {
        let files = vec![
            ProvisionedFile::new("/home/node/.claude/settings.json", b"{}".to_vec())
                .with_mode(0o600),
            ProvisionedFile::new("/etc/x.conf", b"x".to_vec()),
        ];
        let bytes = archive(
            &files,
            Owner {
                uid: 1000,
                gid: 1001,
            },
        )
        .unwrap();
        let mut a = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!(h.uid().unwrap(), 1000);
            assert_eq!(h.gid().unwrap(), 1001);
            seen.push((
                e.path().unwrap().to_string_lossy().into_owned(),
                h.mode().unwrap(),
            ));
        }
        assert!(
            seen.contains(&("home/node/.claude/".into(), 0o755)),
            "{seen:?}"
        );
        assert!(seen.contains(&("home/node/.claude/settings.json".into(), 0o600)));
        assert!(seen.contains(&("etc/x.conf".into(), 0o644)));
        assert!(!seen.iter().any(
            |(p, _)| p.trim_end_matches('/') == "home/node" || p.trim_end_matches('/') == "etc"
        ));
    }

    #[test]
    fn bad_paths_are_refused_with_the_path() {
        for p in ["relative/x", "/a/../b", "/"] {
            let err = archive(
                &[ProvisionedFile::new(p, Vec::new())],
                Owner { uid: 0, gid: 0 },
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(p), "{err}");
        }
    }

    #[test]
    fn passwd_lookup() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1001::/home/node:/bin/sh\n";
        assert_eq!(lookup_id(passwd, "node"), Some(1000));
        assert_eq!(primary_gid(passwd, "node"), Some(1001));
        assert_eq!(lookup_id(passwd, "nobody"), None);
    }
}
