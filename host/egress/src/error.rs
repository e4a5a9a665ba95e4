//! Errors the proxy reports at startup. None of them ever carries a secret value.

use std::path::PathBuf;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The policy file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    PolicyRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The policy file is not valid JSON of an `EgressPolicy`.
    #[error("policy file {path} is not a valid egress policy: {source}")]
    PolicyParse {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A route or setting in the policy is invalid.
    #[error("invalid egress policy: {0}")]
    Policy(String),
    /// A route needs a token slot that is unset or empty in the environment.
    #[error(
        "route for host `{host}` injects a credential from `{slot}`, but `{slot}` is unset or empty in the proxy's environment"
    )]
    MissingSlot {
        /// The slot variable name (`EGRESS_TOKEN_<N>`).
        slot: String,
        /// The route's host.
        host: String,
    },
    /// A slot value cannot be written into an HTTP header.
    #[error("the value of `{slot}` (route for host `{host}`) contains characters that are not allowed in an HTTP header")]
    BadSlotValue {
        /// The slot variable name.
        slot: String,
        /// The route's host.
        host: String,
    },
    /// The CA certificate or key could not be loaded or generated.
    #[error("certificate authority: {0}")]
    Ca(String),
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    File {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TLS configuration failed.
    #[error("tls: {0}")]
    Tls(String),
}
