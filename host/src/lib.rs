//! The `bot-bottle` host: manifests to plans, credential resolution, plugin
//! loading, and the commands of the `bot-bottle` CLI.

pub mod app;
pub mod cli;
pub mod conformance;
pub mod install;
pub mod plan;
pub mod plugins;
pub mod provider;
pub mod resolve;
pub mod scaffold;
pub mod signals;
pub mod state;
