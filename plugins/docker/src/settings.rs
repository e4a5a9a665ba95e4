//! Plugin settings, read from the plugin's process environment.
//!
//! These are engine settings, never credentials: the plugin reads no secret
//! from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `BOT_BOTTLE_DOCKER_EGRESS_NETWORK` | existing network the sidecar's egress side joins instead of a fresh per-bottle one | unset |
//! | `BOT_BOTTLE_DOCKER_SUBNET_POOL` | IPv4 range the internal networks' /29 blocks come from | `198.18.0.0/15` |
//! | `BOT_BOTTLE_DOCKER_RUNTIME` | OCI runtime for the agent; `auto` picks `runsc` when the daemon has it | `auto` |
//! | `BOT_BOTTLE_DOCKER_MEMORY` | agent memory limit, bytes or with `k`/`m`/`g` | `4g` |
//! | `BOT_BOTTLE_DOCKER_PIDS` | agent pids limit | `1024` |
//! | `BOT_BOTTLE_DOCKER_CAP_ADD` | comma-separated capabilities the agent image needs | none |
//! | `BOT_BOTTLE_DOCKER_DEFAULT_USER` | agent user when neither request nor image names a non-root one | `1000:1000` |
//! | `BOT_BOTTLE_DOCKER_ALLOW_ROOT` | `1` lets the agent run as root | unset |

use crate::error::{DockerError, Result};
use crate::subnet::{self, Pool};

/// Effective plugin settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Shared egress network, see the module docs.
    pub egress_network: Option<String>,
    /// Where internal-network subnets come from.
    pub subnet_pool: Pool,
    /// Runtime for the agent container, `None` for the daemon's default.
    pub runtime: Option<String>,
    /// Agent memory limit in bytes.
    pub memory_bytes: i64,
    /// Agent pids limit.
    pub pids_limit: i64,
    /// Capabilities added back after dropping all.
    pub cap_add: Vec<String>,
    /// Fallback agent user.
    pub default_user: String,
    /// Whether a root agent is allowed.
    pub allow_root: bool,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Parses `4g`, `512m`, `1048576`.
pub fn parse_size(text: &str) -> Option<i64> {
    let t = text.trim().to_ascii_lowercase();
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1i64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        _ => (t.as_str(), 1),
    };
    num.parse::<i64>()
        .ok()?
        .checked_mul(mult)
        .filter(|v| *v > 0)
}

impl Settings {
    /// Reads the settings; `runtimes` are the daemon's runtimes (for `auto`).
    pub fn load(runtimes: &[String]) -> Result<Settings> {
        let memory_bytes = match var("BOT_BOTTLE_DOCKER_MEMORY") {
            Some(v) => parse_size(&v).ok_or_else(|| {
                DockerError::Config(format!(
                    "BOT_BOTTLE_DOCKER_MEMORY=`{v}` is not a size (e.g. 4g, 512m)"
                ))
            })?,
            None => 4 << 30,
        };
        let pids_limit = match var("BOT_BOTTLE_DOCKER_PIDS") {
            Some(v) => v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                DockerError::Config(format!(
                    "BOT_BOTTLE_DOCKER_PIDS=`{v}` is not a positive number"
                ))
            })?,
            None => 1024,
        };
        let runtime = match var("BOT_BOTTLE_DOCKER_RUNTIME").as_deref() {
            None | Some("auto") => runtimes
                .iter()
                .any(|r| r == "runsc")
                .then(|| "runsc".to_string()),
            Some(r) => {
                if !runtimes.iter().any(|x| x == r) {
                    return Err(DockerError::Config(format!(
                        "BOT_BOTTLE_DOCKER_RUNTIME=`{r}` is not a runtime of this daemon (it has: {})",
                        runtimes.join(", ")
                    )));
                }
                Some(r.to_string())
            }
        };
        Ok(Settings {
            egress_network: var("BOT_BOTTLE_DOCKER_EGRESS_NETWORK"),
            subnet_pool: Pool::parse(
                &var("BOT_BOTTLE_DOCKER_SUBNET_POOL")
                    .unwrap_or_else(|| subnet::DEFAULT_POOL.into()),
            )?,
            runtime,
            memory_bytes,
            pids_limit,
            cap_add: var("BOT_BOTTLE_DOCKER_CAP_ADD")
                .map(|v| {
                    v.split(',')
                        .map(|c| c.trim().to_uppercase())
                        .filter(|c| !c.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            default_user: var("BOT_BOTTLE_DOCKER_DEFAULT_USER")
                .unwrap_or_else(|| "1000:1000".into()),
            allow_root: var("BOT_BOTTLE_DOCKER_ALLOW_ROOT").as_deref() == Some("1"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4g"), Some(4 << 30));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("-1"), None);
    }
}
