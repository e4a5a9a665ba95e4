//! Command-line interface definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Run an AI coding agent in a bottle: it sees the workspace, holds no real
/// credential, and reaches only the routes its manifest allows.
#[derive(Debug, Parser)]
#[command(name = "bot-bottle", version, propagate_version = true)]
pub struct Cli {
    /// Show debug output and full diagnostics.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start an agent in a new bottle.
    Start(StartArgs),
    /// Show an agent: its bottle, env names, skills and prompt.
    Info {
        /// Agent name.
        agent: String,
    },
    /// List agents, or with `active` the running bottles on every backend.
    List {
        /// `active`: list bottles instead of agents.
        #[arg(value_parser = ["active"])]
        what: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a bottle and remove its resources.
    Stop {
        /// Bottle id (see `bot-bottle list active`).
        id: String,
    },
    /// Show a bottle's agent output, or its egress decisions.
    Logs {
        /// Bottle id.
        id: String,
        /// Show the egress proxy's decision log.
        #[arg(long)]
        egress: bool,
        /// Keep following.
        #[arg(short, long)]
        follow: bool,
    },
    /// Remove what crashed or killed CLIs left behind, on every backend.
    Cleanup {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// Check that the backends' engines are ready.
    Doctor {
        /// Check only this backend.
        #[arg(long)]
        backend: Option<String>,
    },
    /// Manage plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Run the sandbox-escape and lifecycle suite against a backend: real
    /// bottles, a planted canary credential, a probe agent trying every escape.
    Conformance {
        /// Backend to test (default: $BOT_BOTTLE_BACKEND, then `docker`).
        #[arg(long)]
        backend: Option<String>,
        /// Print the results as a JSON array.
        #[arg(long)]
        json: bool,
    },
}

/// `bot-bottle start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Agent name (a file in ~/.bot-bottle/agents/ or ./.bot-bottle/agents/).
    pub agent: String,
    /// Bottle to use instead of the agent's `bottle:`; repeat to merge several in order.
    #[arg(long = "bottle", value_name = "NAME")]
    pub bottles: Vec<String>,
    /// Backend (default: $BOT_BOTTLE_BACKEND, then `docker`).
    #[arg(long)]
    pub backend: Option<String>,
    /// Resolve and print the plan; create nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the plan as JSON (secret values redacted).
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// No terminal, no questions: run the agent on --prompt and stream its output.
    #[arg(long, requires = "prompt")]
    pub headless: bool,
    /// The task for a headless run.
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Label for the bottle id (default: the agent name).
    #[arg(long)]
    pub label: Option<String>,
    /// Host directory to mount as the workspace (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Start without a workspace mount.
    #[arg(long, conflicts_with = "workspace")]
    pub no_workspace: bool,
}

/// `bot-bottle plugin ...`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List every plugin library found, loaded or not.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Install a plugin library into the user plugin directory.
    Install {
        /// The library (`.so`) to install.
        path: PathBuf,
        /// Replace an installed plugin of the same name.
        #[arg(long)]
        force: bool,
    },
    /// Show what is known about a plugin, without loading installed ones.
    Inspect {
        /// Plugin name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an installed plugin.
    Remove {
        /// Plugin name.
        name: String,
    },
    /// Create a new plugin crate that builds as generated.
    New {
        /// Plugin name: a lower-case letter, then up to 31 of a-z, 0-9 and `-`.
        name: String,
        /// Directory for the crate (default: ./NAME); must be empty or absent.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Depend on the SDK at this path (default: this bot-bottle's source
        /// tree when it was built from one, else the published crate).
        #[arg(long, value_name = "PATH")]
        sdk_path: Option<PathBuf>,
        /// What the plugin provides.
        #[arg(long, value_enum, default_value_t)]
        kind: crate::scaffold::PluginKind,
    },
    /// Internal: load a library in this (child) process and print its manifest.
    #[command(name = "__probe", hide = true)]
    Probe {
        /// The library.
        path: PathBuf,
    },
}
