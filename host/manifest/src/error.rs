//! The one error type of this crate.

use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while discovering or loading manifests.
///
/// The `Display` text is meant to be shown to the user as is: it names the
/// file, the dotted key path (`egress.routes[1].auth.scheme`), what is wrong
/// and what is allowed. It never contains an `env` value or a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The frontmatter is missing, unterminated or not valid YAML.
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        /// The manifest file.
        path: PathBuf,
        /// 1-based line in the file.
        line: usize,
        /// What is wrong.
        message: String,
    },

    /// A key is unknown, removed, unsupported, or has a bad value.
    #[error("{}{}: {key}: {message}", path.display(), LineSuffix(*line))]
    Invalid {
        /// The manifest file.
        path: PathBuf,
        /// 1-based line in the file, when known.
        line: Option<usize>,
        /// Dotted key path, e.g. `egress.routes[1].auth.scheme`; `(frontmatter)`
        /// for the document itself.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },

    /// A bottle's `extends` chain loops back on itself.
    #[error("{}{}: extends: cycle in bottle inheritance: {}", path.display(), LineSuffix(*line), chain.join(" -> "))]
    ExtendsCycle {
        /// The file whose `extends` closes the cycle.
        path: PathBuf,
        /// Line of its `extends` key.
        line: Option<usize>,
        /// The bottle names along the cycle, first and last equal.
        chain: Vec<String>,
    },

    /// No agent of that name exists.
    #[error("agent `{name}` not found; available agents: {}", NameList(available))]
    UnknownAgent {
        /// The requested name.
        name: String,
        /// Every agent name the index knows.
        available: Vec<String>,
    },

    /// A bottle asked for on the command line does not exist.
    #[error("bottle `{name}` not found in {}; available bottles: {}", dir.display(), NameList(available))]
    UnknownBottle {
        /// The requested name.
        name: String,
        /// The bottles directory that was searched.
        dir: PathBuf,
        /// Every bottle name the index knows.
        available: Vec<String>,
    },

    /// The agent names no bottle and none was given.
    #[error("agent `{agent}` ({}) names no bottle: pass --bottle NAME, or add `bottle: NAME` to its frontmatter", path.display())]
    NoBottle {
        /// The agent's name.
        agent: String,
        /// The agent's file.
        path: PathBuf,
    },

    /// An empty list of bottles was given to merge.
    #[error("no bottle given: pass --bottle NAME")]
    NoBottleGiven,

    /// An old single-file JSON manifest was found where no `.bot-bottle/`
    /// directory exists.
    #[error(
        "{}: the single-file JSON manifest is no longer read; move each agent to {}/agents/<name>.md and each bottle to ~/.bot-bottle/bottles/<name>.md (Markdown with YAML frontmatter; see the README section \"Manifests\"), then delete this file",
        path.display(),
        expected_dir.display()
    )]
    StaleJsonManifest {
        /// The stale file.
        path: PathBuf,
        /// The directory that should exist instead.
        expected_dir: PathBuf,
    },
}

impl ManifestError {
    /// The manifest file the error is about, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ManifestError::Io { path, .. }
            | ManifestError::Syntax { path, .. }
            | ManifestError::Invalid { path, .. }
            | ManifestError::ExtendsCycle { path, .. }
            | ManifestError::NoBottle { path, .. }
            | ManifestError::StaleJsonManifest { path, .. } => Some(path),
            ManifestError::UnknownAgent { .. }
            | ManifestError::UnknownBottle { .. }
            | ManifestError::NoBottleGiven => None,
        }
    }

    /// The dotted key path the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ManifestError::Invalid { key, .. } => Some(key),
            ManifestError::ExtendsCycle { .. } => Some("extends"),
            _ => None,
        }
    }
}

struct LineSuffix(Option<usize>);

impl fmt::Display for LineSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, ":{line}"),
            None => Ok(()),
        }
    }
}

pub(crate) struct NameList<'a>(pub &'a [String]);

impl fmt::Display for NameList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(none)");
        }
        f.write_str(&self.0.join(", "))
    }
}
