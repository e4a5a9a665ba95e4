//! Resource names, labels and the owner token that tells `gc` whether the
//! CLI that created a bottle is still alive.

use std::collections::HashMap;

use bot_bottle_sdk::BottleIdentity;

/// Every resource we create carries this label with value `true`.
pub const L_MANAGED: &str = "bot-bottle.managed";
/// Backend name (`docker`).
pub const L_BACKEND: &str = "bot-bottle.backend";
/// The bottle id.
pub const L_BOTTLE: &str = "bot-bottle.bottle";
/// Agent name.
pub const L_AGENT: &str = "bot-bottle.agent";
/// Human label.
pub const L_LABEL: &str = "bot-bottle.label";
/// Seconds since the epoch.
pub const L_CREATED: &str = "bot-bottle.created-at";
/// The plugin version that created the resource.
pub const L_VERSION: &str = "bot-bottle.version";
/// `agent`, `egress`, `network-internal` or `network-egress`.
pub const L_ROLE: &str = "bot-bottle.role";
/// The owning process, see [`owner_token`].
pub const L_OWNER: &str = "bot-bottle.owner";
/// The host state directory of the bottle.
pub const L_STATE_DIR: &str = "bot-bottle.state-dir";
/// Images: `agent` or `egress`.
pub const L_IMAGE: &str = "bot-bottle.image";

/// Role of the agent container.
pub const ROLE_AGENT: &str = "agent";
/// Role of the egress sidecar.
pub const ROLE_EGRESS: &str = "egress";

/// This backend's name.
pub const BACKEND: &str = "docker";

/// Whether `id` is a usable bottle id: `[a-z0-9-]`, 1..=48 characters, not
/// starting with `-`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 48
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Names of one bottle's resources. The id is unique per bottle, so names
/// never collide across concurrent bottles.
#[derive(Clone, Debug)]
pub struct Names {
    /// Agent container.
    pub agent: String,
    /// Egress sidecar container.
    pub egress: String,
    /// Internal network (agent + sidecar).
    pub internal: String,
    /// Per-bottle egress network (sidecar + the outside).
    pub egress_net: String,
}

impl Names {
    /// Names for bottle `id`.
    pub fn new(id: &str) -> Self {
        Names {
            agent: format!("bb-{id}-agent"),
            egress: format!("bb-{id}-egress"),
            internal: format!("bb-{id}-int"),
            egress_net: format!("bb-{id}-egr"),
        }
    }
}

/// The labels every resource of a bottle carries.
pub fn bottle_labels(
    bottle: &BottleIdentity,
    role: &str,
    state_dir: &str,
) -> HashMap<String, String> {
    let label = if bottle.label.is_empty() {
        bottle.agent.clone()
    } else {
        bottle.label.clone()
    };
    HashMap::from([
        (L_MANAGED.into(), "true".into()),
        (L_BACKEND.into(), BACKEND.into()),
        (L_BOTTLE.into(), bottle.id.clone()),
        (L_AGENT.into(), bottle.agent.clone()),
        (L_LABEL.into(), label),
        (L_CREATED.into(), bottle.created_at.to_string()),
        (L_VERSION.into(), env!("CARGO_PKG_VERSION").into()),
        (L_ROLE.into(), role.into()),
        (L_OWNER.into(), owner_token()),
        (L_STATE_DIR.into(), state_dir.into()),
    ])
}

/// `<hostname>/<boot id>/<pid>/<process start time>` of this process: enough
/// to tell later, on the same machine, whether it still runs (a recycled pid
/// has another start time; a reboot changes the boot id).
pub fn owner_token() -> String {
    let pid = std::process::id();
    format!(
        "{}/{}/{}/{}",
        hostname(),
        boot_id(),
        pid,
        start_time(pid).unwrap_or(0)
    )
}

/// Whether the process named by an owner token is alive. `None` when the
/// token was made on another machine and cannot be checked from here.
pub fn owner_alive(token: &str) -> Option<bool> {
    let mut parts = token.split('/');
    let (Some(host), Some(boot), Some(pid), Some(start)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        // An unreadable token was not written by us; treat it as dead so a
        // bottle with a damaged label can still be reaped.
        return Some(false);
    };
    if host != hostname() {
        return None;
    }
    if boot != boot_id() {
        return Some(false);
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return Some(false);
    };
    let start: u64 = start.parse().unwrap_or(0);
    Some(start_time(pid) == Some(start))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks after boot).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it are
    // counted from the closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(valid_id("demo-1a2b3c"));
        assert!(!valid_id(""));
        assert!(!valid_id("Demo"));
        assert!(!valid_id("-x"));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(&"a".repeat(49)));
    }

    #[test]
    fn own_token_is_alive_and_a_dead_pid_is_not() {
        let me = owner_token();
        assert_eq!(owner_alive(&me), Some(true));
        let mut parts: Vec<&str> = me.split('/').collect();
        parts[2] = "4194303";
        assert_eq!(owner_alive(&parts.join("/")), Some(false));
        assert_eq!(owner_alive("garbage"), Some(false));
        parts[0] = "some-other-host";
        assert_eq!(owner_alive(&parts.join("/")), None);
    }
}
