//! Reads bot-bottle manifests: Markdown files with YAML frontmatter.
//!
//! Layout (the file name without `.md` is the name, `^[a-z][a-z0-9-]*$`):
//!
//! - `$HOME/.bot-bottle/bottles/<name>.md`: bottles (policy: env, egress
//!   routes, provider, mounts). Read from `$HOME` only; a
//!   `$CWD/.bot-bottle/bottles/` directory is ignored with a warning so a
//!   cloned repository cannot widen its own policy.
//! - `$HOME/.bot-bottle/agents/<name>.md` and `$CWD/.bot-bottle/agents/<name>.md`:
//!   agents (bottle, skills, git identity; the body is the system prompt).
//!
//! [`ManifestIndex::discover`] only lists names; files are parsed by
//! [`ManifestIndex::load`] / [`ManifestIndex::load_agent`] /
//! [`ManifestIndex::resolve_bottles`]. Every failure is a [`ManifestError`]
//! whose message names the file, the key and what is allowed.
//!
//! ```no_run
//! # fn main() -> Result<(), bot_bottle_manifest::ManifestError> {
//! use std::path::Path;
//! let index = bot_bottle_manifest::ManifestIndex::discover(Path::new("/home/me"), Path::new("."))?;
//! for w in index.warnings() {
//!     eprintln!("warning: {w}");
//! }
//! let manifest = index.load("dev", &[])?;
//! println!("{} routes", manifest.bottle.egress.routes.len());
//! # Ok(()) }
//! ```

mod error;
mod index;
mod model;
mod route;
mod schema;
mod yaml;

use std::path::Path;

pub use error::ManifestError;
pub use index::ManifestIndex;
pub use model::{
    Agent, AgentOrigin, AgentProvider, Bottle, BottleFile, Egress, EgressDecl, EnvValue, GitUser,
    Manifest, Mount, DEFAULT_TEMPLATE,
};
pub use route::{HTTP_METHODS, ROUTE_KEYS};
pub use schema::{is_env_name, is_manifest_name, AGENT_KEYS, BOTTLE_KEYS};

/// Parses a bottle file's text without touching the file system; `path` is
/// used in error messages, as the bottle's name (its stem) and as the base
/// of a relative `agent_provider.dockerfile`. `~/` paths stay unexpanded.
pub fn parse_bottle_str(path: &Path, text: &str) -> Result<BottleFile, ManifestError> {
    schema::bottle(path, text)
}

/// Parses an agent file's text without touching the file system; `path` is
/// used in error messages and as the agent's name (its stem).
pub fn parse_agent_str(path: &Path, text: &str) -> Result<Agent, ManifestError> {
    schema::agent(path, text)
}
