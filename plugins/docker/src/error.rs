//! The plugin's error type and its mapping onto the SDK's [`PluginError`].

use bot_bottle_sdk::{ErrorKind, PluginError};

/// Everything that can go wrong in the Docker backend.
///
/// Messages name the step, resource or file involved and never carry a
/// credential value.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The Docker engine could not be reached or refused to talk.
    #[error("cannot reach the Docker engine: {0}")]
    Unavailable(String),
    /// An Engine API call failed during a named step.
    #[error("{step}: {message}")]
    Engine {
        /// What the backend was doing, e.g. `creating network bb-x-int`.
        step: String,
        /// What the engine said.
        message: String,
    },
    /// The launch request or a plugin setting is invalid.
    #[error("{0}")]
    Config(String),
    /// A credential slot the policy needs is missing.
    #[error("{0}")]
    Credential(String),
    /// The bottle or resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A host file operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done, naming the path.
        action: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The operation was interrupted (the bottle was removed underneath it).
    #[error("{0}")]
    Cancelled(String),
}

impl DockerError {
    /// An engine failure during `step`.
    pub fn engine(step: impl Into<String>, err: bollard::errors::Error) -> Self {
        let step = step.into();
        if is_unavailable(&err) {
            return DockerError::Unavailable(format!("{step}: {}", short(&err)));
        }
        DockerError::Engine {
            step,
            message: short(&err),
        }
    }

    /// A host I/O failure while doing `action`.
    pub fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        DockerError::Io {
            action: action.into(),
            source,
        }
    }

    /// Prefixes the message with the launch step that failed.
    pub fn in_step(self, step: &str) -> Self {
        match self {
            DockerError::Engine { step: s, message } => DockerError::Engine {
                step: format!("launch step `{step}` failed while {s}"),
                message,
            },
            DockerError::Config(m) => DockerError::Config(format!("launch step `{step}`: {m}")),
            DockerError::Io { action, source } => DockerError::Io {
                action: format!("launch step `{step}`: {action}"),
                source,
            },
            other => other,
        }
    }
}

/// Whether a bollard error means the engine is not there at all.
fn is_unavailable(err: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        err,
        E::SocketNotFoundError(_) | E::HyperLegacyError { .. } | E::IOError { .. }
    )
}

/// The daemon's message without bollard's wrapping.
fn short(err: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    match err {
        E::DockerResponseServerError {
            status_code,
            message,
        } => format!("engine answered {status_code}: {}", message.trim()),
        other => other.to_string(),
    }
}

/// Whether the engine said the object does not exist (HTTP 404).
pub fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl From<DockerError> for PluginError {
    fn from(e: DockerError) -> Self {
        let message = e.to_string();
        match e {
            DockerError::Unavailable(_) => PluginError::new(ErrorKind::EngineUnavailable, message)
                .with_hint(
                    "start the Docker daemon (e.g. `sudo systemctl start docker` or \
                     `dockerd &`) and check that DOCKER_HOST, if set, points at it",
                ),
            DockerError::Engine { .. } => PluginError::new(ErrorKind::Engine, message),
            DockerError::Config(_) => PluginError::new(ErrorKind::InvalidConfig, message),
            DockerError::Credential(_) => PluginError::new(ErrorKind::Credential, message),
            DockerError::NotFound(_) => PluginError::new(ErrorKind::NotFound, message),
            DockerError::Io { .. } => PluginError::new(ErrorKind::Io, message),
            DockerError::Cancelled(_) => PluginError::new(ErrorKind::Cancelled, message),
        }
    }
}

/// Shorthand.
pub type Result<T, E = DockerError> = std::result::Result<T, E>;
