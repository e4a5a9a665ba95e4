//! End-to-end tests of the `bot-bottle` binary: manifests on disk, real
//! plugin libraries, the real CLI.

mod common;
mod conformance;
mod docker;
mod dry_run;
mod install;
mod plugin_abi;
mod plugins;
