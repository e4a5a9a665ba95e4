//! bot-bottle-smolmachines: the bottle as a libkrun microVM, driven through
//! the `smolvm` engine CLI.
//!
//! Per bottle this backend runs, on the host:
//! * the egress proxy (`bot-bottle-egress run`) on `127.0.0.1:<port>`, with
//!   the resolved egress environment in its process environment only;
//! * a relay (`bot-bottle-smolvm-relay`) that is the machine's smolvm
//!   *egress interceptor*: the engine hands it every TCP connection the
//!   guest opens, and it passes only connections to the proxy address the
//!   agent was given, refusing the rest;
//! * one smolvm machine whose allow list admits only that proxy address.
//!
//! See `README.md` for the reasoning and what has been verified.

#![warn(missing_docs)]

pub mod backend;
pub mod engine;
pub mod proc;
pub mod relay;

use bot_bottle_sdk::prelude::*;

pub use backend::{Config, SmolBackend};

/// Name of the backend (`--backend smolmachines`).
pub const BACKEND_NAME: &str = "smolmachines";

/// The plugin library.
pub struct SmolPlugin;

impl Plugin for SmolPlugin {
    fn manifest() -> PluginManifest {
        PluginManifest {
            name: "smolmachines".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "libkrun microVMs through the smolvm engine".into(),
            backends: vec![BACKEND_NAME.into()],
            capabilities: vec!["tty".into(), "gc".into()],
            ..Default::default()
        }
    }

    fn open_backend(name: &str) -> PluginResult<Box<dyn Backend>> {
        if name == BACKEND_NAME {
            Ok(Box::new(SmolBackend::new(Config::from_env())))
        } else {
            Err(PluginError::not_found(format!(
                "no backend named `{name}` (this plugin provides `{BACKEND_NAME}`)"
            )))
        }
    }
}

bot_bottle_sdk::export_plugin!(SmolPlugin);
