//! Per-bottle state on the host: `~/.bot-bottle/state/<id>/`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What is recorded about a bottle (never a secret).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Metadata {
    /// Bottle id.
    pub id: String,
    /// Agent name.
    pub agent: String,
    /// Bottles merged.
    pub bottles: Vec<String>,
    /// Backend name.
    pub backend: String,
    /// Label.
    pub label: String,
    /// Working directory at launch.
    pub cwd: PathBuf,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
}

/// `~/.bot-bottle/state`.
pub fn state_root(home: &Path) -> PathBuf {
    home.join(".bot-bottle/state")
}

/// A fresh, unique bottle id: `<label>-<8 hex>`.
pub fn new_bottle_id(label: &str) -> String {
    let mut clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    clean = clean.trim_matches('-').to_string();
    clean.truncate(30);
    if clean.is_empty() {
        clean = "bottle".into();
    }
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    format!(
        "{clean}-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Creates the state directory and writes `metadata.json`.
pub fn create(home: &Path, meta: &Metadata) -> std::io::Result<PathBuf> {
    let dir = state_root(home).join(&meta.id);
    std::fs::create_dir_all(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let text = serde_json::to_vec_pretty(meta).expect("metadata serializes");
    std::fs::write(dir.join("metadata.json"), text)?;
    Ok(dir)
}

/// Reads a bottle's metadata, if its state directory exists.
pub fn read(home: &Path, id: &str) -> Option<Metadata> {
    if id.contains('/') || id.contains("..") {
        return None;
    }
    let text = std::fs::read(state_root(home).join(id).join("metadata.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_clean_and_unique() {
        let a = super::new_bottle_id("My Agent!");
        let b = super::new_bottle_id("My Agent!");
        assert!(a.starts_with("my-agent-"), "{a}");
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }
}
