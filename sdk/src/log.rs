//! Logging from plugin code to the host's output.
//!
//! The host installs a sink when it opens a backend or provider; before that,
//! and in plugins used without a host (unit tests), messages go to stderr.
//! Never log a secret value.

use std::sync::OnceLock;

/// Severity of a log message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Failures.
    Error = 1,
    /// Something the user should know.
    Warn = 2,
    /// Progress.
    Info = 3,
    /// Detail for `--verbose`.
    Debug = 4,
}

impl Level {
    /// The level for a wire value; unknown values are `Debug`.
    pub fn from_u8(v: u8) -> Level {
        match v {
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            _ => Level::Debug,
        }
    }
}

pub(crate) type SinkFn = Box<dyn Fn(Level, &str) + Send + Sync>;

static SINK: OnceLock<SinkFn> = OnceLock::new();

pub(crate) fn install(sink: SinkFn) {
    // The first host sink wins; a library is loaded once per process.
    let _ = SINK.set(sink);
}

/// Sends `message` to the host at `level`.
pub fn log(level: Level, message: &str) {
    match SINK.get() {
        Some(sink) => sink(level, message),
        None => eprintln!("{level:?}: {message}"),
    }
}

/// Logs at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message)
}

/// Logs at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// Logs at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Logs at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message)
}
