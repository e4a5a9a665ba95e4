//! Errors that cross the plugin boundary.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stable, numeric classification of a [`PluginError`].
///
/// Codes below 1000 are reserved for the SDK; a plugin may use any code from
/// [`ErrorKind::PLUGIN_SPECIFIC_START`] upwards for its own kinds through
/// [`ErrorKind::Other`]. Codes are part of the ABI and never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u32", from = "u32")]
pub enum ErrorKind {
    /// The operation is not implemented by this plugin (code 1).
    Unsupported,
    /// The request or the plugin's configuration is invalid (code 2).
    InvalidConfig,
    /// The named bottle, image or resource does not exist (code 3).
    NotFound,
    /// The engine the backend drives is missing or not reachable (code 4).
    EngineUnavailable,
    /// A transient failure; the same call may succeed later (code 5).
    TryAgain,
    /// Plugin code panicked; the SDK caught it at the boundary (code 6).
    Panicked,
    /// The host and the plugin do not agree on the ABI (code 7).
    Incompatible,
    /// A credential was missing or unusable (code 8).
    Credential,
    /// An I/O failure in the plugin (code 9).
    Io,
    /// The engine reported a failure (code 10).
    Engine,
    /// The operation was cancelled (for example by Ctrl-C) (code 11).
    Cancelled,
    /// An internal error that fits no other kind (code 12).
    Internal,
    /// A plugin-specific kind, `>= 1000`, or a reserved code this SDK
    /// version does not know yet.
    Other(u32),
}

impl ErrorKind {
    /// First code a plugin may use for its own kinds.
    pub const PLUGIN_SPECIFIC_START: u32 = 1000;

    /// The stable numeric code of this kind.
    pub fn code(self) -> u32 {
        match self {
            ErrorKind::Unsupported => 1,
            ErrorKind::InvalidConfig => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::EngineUnavailable => 4,
            ErrorKind::TryAgain => 5,
            ErrorKind::Panicked => 6,
            ErrorKind::Incompatible => 7,
            ErrorKind::Credential => 8,
            ErrorKind::Io => 9,
            ErrorKind::Engine => 10,
            ErrorKind::Cancelled => 11,
            ErrorKind::Internal => 12,
            ErrorKind::Other(code) => code,
        }
    }

    /// The kind for a numeric code; unknown codes map to [`ErrorKind::Other`].
    pub fn from_code(code: u32) -> Self {
        match code {
            1 => ErrorKind::Unsupported,
            2 => ErrorKind::InvalidConfig,
            3 => ErrorKind::NotFound,
            4 => ErrorKind::EngineUnavailable,
            5 => ErrorKind::TryAgain,
            6 => ErrorKind::Panicked,
            7 => ErrorKind::Incompatible,
            8 => ErrorKind::Credential,
            9 => ErrorKind::Io,
            10 => ErrorKind::Engine,
            11 => ErrorKind::Cancelled,
            12 => ErrorKind::Internal,
            other => ErrorKind::Other(other),
        }
    }

    /// A short, kebab-case name for messages and JSON output.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidConfig => "invalid-config",
            ErrorKind::NotFound => "not-found",
            ErrorKind::EngineUnavailable => "engine-unavailable",
            ErrorKind::TryAgain => "try-again",
            ErrorKind::Panicked => "panicked",
            ErrorKind::Incompatible => "incompatible",
            ErrorKind::Credential => "credential",
            ErrorKind::Io => "io",
            ErrorKind::Engine => "engine",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal",
            ErrorKind::Other(_) => "plugin-specific",
        }
    }
}

impl From<ErrorKind> for u32 {
    fn from(kind: ErrorKind) -> u32 {
        kind.code()
    }
}

impl From<u32> for ErrorKind {
    fn from(code: u32) -> Self {
        ErrorKind::from_code(code)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Other(code) => write!(f, "plugin-specific ({code})"),
            kind => f.write_str(kind.name()),
        }
    }
}

/// The error every plugin call returns.
///
/// Messages must never contain a secret value: name the variable, route or
/// file instead. The host prints `message` and, when present, `hint`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    /// Stable classification.
    pub kind: ErrorKind,
    /// What went wrong, in one sentence.
    pub message: String,
    /// What the user can do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl PluginError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint telling the user what to do.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// [`ErrorKind::Unsupported`] for the named operation.
    pub fn unsupported(operation: &str) -> Self {
        PluginError::new(
            ErrorKind::Unsupported,
            format!("`{operation}` is not supported by this plugin"),
        )
    }

    /// [`ErrorKind::InvalidConfig`].
    pub fn invalid_config(message: impl Into<String>) -> Self {
        PluginError::new(ErrorKind::InvalidConfig, message)
    }

    /// [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        PluginError::new(ErrorKind::NotFound, message)
    }

    /// [`ErrorKind::EngineUnavailable`].
    pub fn engine_unavailable(message: impl Into<String>) -> Self {
        PluginError::new(ErrorKind::EngineUnavailable, message)
    }

    /// [`ErrorKind::Engine`].
    pub fn engine(message: impl Into<String>) -> Self {
        PluginError::new(ErrorKind::Engine, message)
    }

    /// [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        PluginError::new(ErrorKind::Internal, message)
    }

    /// [`ErrorKind::Io`] with the action that failed, e.g. `"writing /x/y"`.
    pub fn io(action: impl fmt::Display, err: std::io::Error) -> Self {
        PluginError::new(ErrorKind::Io, format!("{action}: {err}"))
    }
}

/// Shorthand for results of plugin calls.
pub type PluginResult<T> = Result<T, PluginError>;
