//! Discovery of manifest files and loading of one agent with its bottles.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::ManifestError;
use crate::model::{Agent, AgentOrigin, Bottle, BottleFile, EgressDecl, Manifest, Mount};
use crate::schema::{self, is_manifest_name, MANIFEST_NAME_RULE};

/// Files larger than this are refused rather than read into memory.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Names of the single-file JSON manifests earlier versions read.
const STALE_JSON_NAMES: &[&str] = &[
    "bot-bottle.json",
    ".bot-bottle.json",
    "claude-bottle.json",
    ".claude-bottle.json",
];

/// Every agent and bottle name, found by listing directories only.
///
/// Files are parsed when an agent or bottle is loaded, so one broken file
/// never hides the others.
///
/// Agents in `$CWD/.bot-bottle/agents/` shadow home agents of the same name
/// (as a project's `.claude/agents/` shadows the user's in Claude Code); each
/// shadowing is reported in [`ManifestIndex::warnings`] and the origin is
/// kept in [`Manifest::agent_origin`] so the preflight can show it. Bottles
/// are read from `$HOME` only.
#[derive(Clone, Debug)]
pub struct ManifestIndex {
    home: PathBuf,
    bottles_dir: PathBuf,
    bottles: BTreeMap<String, PathBuf>,
    agents: BTreeMap<String, (PathBuf, AgentOrigin)>,
    warnings: Vec<String>,
}

/// Who asked for a bottle, for the "not found" error.
#[derive(Clone, Copy)]
enum Referrer<'a> {
    CommandLine,
    Agent(&'a Path),
    Extends(&'a Path, Option<usize>),
}

impl ManifestIndex {
    /// Lists bottles in `$HOME/.bot-bottle/bottles/` and agents in
    /// `$HOME/.bot-bottle/agents/` and `$CWD/.bot-bottle/agents/`.
    ///
    /// Fails when a directory cannot be read, or when an old JSON manifest
    /// sits in `$HOME` or `$CWD` without a `.bot-bottle/` directory beside
    /// it. Skipped files and an ignored `$CWD/.bot-bottle/bottles/` are
    /// reported in [`ManifestIndex::warnings`].
    pub fn discover(home: &Path, cwd: &Path) -> Result<ManifestIndex, ManifestError> {
        let home_root = home.join(".bot-bottle");
        let cwd_is_home = same_dir(home, cwd);
        check_stale_json(home, &home_root)?;
        if !cwd_is_home {
            check_stale_json(cwd, &cwd.join(".bot-bottle"))?;
        }
        let mut warnings = Vec::new();
        let bottles_dir = home_root.join("bottles");
        let bottles = list_dir(&bottles_dir, &mut warnings)?;
        let mut agents: BTreeMap<String, (PathBuf, AgentOrigin)> =
            list_dir(&home_root.join("agents"), &mut warnings)?
                .into_iter()
                .map(|(name, path)| (name, (path, AgentOrigin::Home)))
                .collect();
        if !cwd_is_home {
            let cwd_root = cwd.join(".bot-bottle");
            let cwd_bottles = cwd_root.join("bottles");
            if cwd_bottles.is_dir() {
                warnings.push(format!(
                    "{}: ignored: bottles are read only from {} so that a repository cannot widen its own policy",
                    cwd_bottles.display(),
                    bottles_dir.display()
                ));
            }
            for (name, path) in list_dir(&cwd_root.join("agents"), &mut warnings)? {
                if let Some((home_path, _)) = agents.get(&name) {
                    warnings.push(format!(
                        "agent `{name}`: {} shadows {}",
                        path.display(),
                        home_path.display()
                    ));
                }
                agents.insert(name, (path, AgentOrigin::Cwd));
            }
        }
        Ok(ManifestIndex {
            home: home.to_path_buf(),
            bottles_dir,
            bottles,
            agents,
            warnings,
        })
    }

    /// Problems that did not stop discovery, one user-facing line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Agent names, sorted.
    pub fn agent_names(&self) -> Vec<String> {
        self.agents.keys().cloned().collect()
    }

    /// Bottle names, sorted.
    pub fn bottle_names(&self) -> Vec<String> {
        self.bottles.keys().cloned().collect()
    }

    /// The file and origin of an agent.
    pub fn agent_path(&self, name: &str) -> Option<(&Path, AgentOrigin)> {
        self.agents.get(name).map(|(p, o)| (p.as_path(), *o))
    }

    /// The file of a bottle.
    pub fn bottle_path(&self, name: &str) -> Option<&Path> {
        self.bottles.get(name).map(PathBuf::as_path)
    }

    /// Parses one agent file.
    pub fn load_agent(&self, name: &str) -> Result<Agent, ManifestError> {
        let (path, _) = self
            .agents
            .get(name)
            .ok_or_else(|| ManifestError::UnknownAgent {
                name: name.to_string(),
                available: self.agent_names(),
            })?;
        schema::agent(path, &read(path)?)
    }

    /// Parses one bottle file as written, without resolving `extends`
    /// (`~/` paths expanded against `$HOME`).
    pub fn load_bottle_file(&self, name: &str) -> Result<BottleFile, ManifestError> {
        self.bottle_file(name, Referrer::CommandLine)
    }

    /// Resolves each bottle's `extends` chain and merges the bottles in
    /// order with the multi-parent rules: `env` later wins, `git-gate.user`
    /// per field, `egress.routes` concatenated (exact duplicates once),
    /// `mounts` concatenated (a later mount of the same target wins), and
    /// `agent_provider`, `egress.log`, `supervise`, `image` from the last
    /// bottle that sets them.
    pub fn resolve_bottles(&self, names: &[String]) -> Result<Bottle, ManifestError> {
        self.resolve_with(names, Referrer::CommandLine)
    }

    /// Loads an agent and its effective bottle: the bottles from
    /// `bottles_override` when non-empty, else the agent's `bottle:`. The
    /// agent's non-empty `git-gate.user` fields overlay the bottle's.
    pub fn load(
        &self,
        agent: &str,
        bottles_override: &[String],
    ) -> Result<Manifest, ManifestError> {
        let agent = self.load_agent(agent)?;
        let (_, agent_origin) = self.agents[&agent.name];
        let (bottle_names, referrer) = if !bottles_override.is_empty() {
            (bottles_override.to_vec(), Referrer::CommandLine)
        } else if let Some(b) = &agent.bottle {
            (vec![b.clone()], Referrer::Agent(&agent.path))
        } else {
            return Err(ManifestError::NoBottle {
                agent: agent.name.clone(),
                path: agent.path.clone(),
            });
        };
        let mut bottle = self.resolve_with(&bottle_names, referrer)?;
        bottle.git_user = bottle.git_user.overlay_non_empty(&agent.git_user);
        Ok(Manifest {
            agent,
            agent_origin,
            bottle,
            bottle_names,
        })
    }

    fn resolve_with(&self, names: &[String], referrer: Referrer) -> Result<Bottle, ManifestError> {
        if names.is_empty() {
            return Err(ManifestError::NoBottleGiven);
        }
        let mut cache = HashMap::new();
        let mut merged: Option<BottleFile> = None;
        for name in names {
            let layer = self.resolve_named(name, &mut Vec::new(), &mut cache, referrer)?;
            merged = Some(match merged {
                None => layer,
                Some(acc) => fold(acc, layer),
            });
        }
        Ok(Bottle::from_layer(merged.unwrap_or_default()))
    }

    fn missing(&self, name: &str, referrer: Referrer) -> ManifestError {
        let available = self.bottle_names();
        let message = |what: &str| {
            format!(
                "{what} `{name}` not found in {}; available bottles: {}",
                self.bottles_dir.display(),
                crate::error::NameList(&available)
            )
        };
        match referrer {
            Referrer::CommandLine => ManifestError::UnknownBottle {
                name: name.to_string(),
                dir: self.bottles_dir.clone(),
                available,
            },
            Referrer::Agent(path) => ManifestError::Invalid {
                path: path.to_path_buf(),
                line: None,
                key: "bottle".into(),
                message: message("bottle"),
            },
            Referrer::Extends(path, line) => ManifestError::Invalid {
                path: path.to_path_buf(),
                line,
                key: "extends".into(),
                message: message("parent bottle"),
            },
        }
    }

    fn bottle_file(&self, name: &str, referrer: Referrer) -> Result<BottleFile, ManifestError> {
        let path = self
            .bottles
            .get(name)
            .ok_or_else(|| self.missing(name, referrer))?;
        let mut file = schema::bottle(path, &read(path)?)?;
        if let Some(p) = file.agent_provider.as_mut() {
            p.dockerfile = p.dockerfile.take().map(|d| expand_home(&self.home, d));
        }
        if let Some(mounts) = file.mounts.as_mut() {
            for m in mounts {
                m.source = expand_home(&self.home, std::mem::take(&mut m.source));
            }
        }
        Ok(file)
    }

    /// Resolves one bottle's chain; `stack` holds the bottles being resolved
    /// (for cycles), `cache` the finished ones (a diamond is resolved once).
    fn resolve_named(
        &self,
        name: &str,
        stack: &mut Vec<String>,
        cache: &mut HashMap<String, BottleFile>,
        referrer: Referrer,
    ) -> Result<BottleFile, ManifestError> {
        if let Some(done) = cache.get(name) {
            return Ok(done.clone());
        }
        let file = self.bottle_file(name, referrer)?;
        stack.push(name.to_string());
        let mut parents: Option<BottleFile> = None;
        for parent in &file.extends {
            if parent == name {
                return Err(ManifestError::Invalid {
                    path: file.path.clone(),
                    line: file.extends_line,
                    key: "extends".into(),
                    message: format!("bottle `{name}` extends itself; name other bottles"),
                });
            }
            if let Some(pos) = stack.iter().position(|n| n == parent) {
                let mut chain = stack[pos..].to_vec();
                chain.push(parent.clone());
                return Err(ManifestError::ExtendsCycle {
                    path: file.path.clone(),
                    line: file.extends_line,
                    chain,
                });
            }
            let layer = self.resolve_named(
                parent,
                stack,
                cache,
                Referrer::Extends(&file.path, file.extends_line),
            )?;
            parents = Some(match parents {
                None => layer,
                Some(acc) => fold(acc, layer),
            });
        }
        stack.pop();
        let resolved = match parents {
            None => file,
            Some(parent) => apply_child(parent, file),
        };
        cache.insert(name.to_string(), resolved.clone());
        Ok(resolved)
    }
}

/// Merges two parents (or two chosen bottles), `b` after `a`.
fn fold(a: BottleFile, b: BottleFile) -> BottleFile {
    let egress = match (a.egress, b.egress) {
        (Some(x), Some(y)) => {
            let mut routes = x.routes;
            for r in y.routes {
                if !routes.contains(&r) {
                    routes.push(r);
                }
            }
            Some(EgressDecl {
                routes,
                log: y.log.or(x.log),
            })
        }
        (x, y) => y.or(x),
    };
    let mounts = match (a.mounts, b.mounts) {
        (Some(mut x), Some(y)) => {
            for m in y {
                x.retain(|old: &Mount| old.target != m.target);
                x.push(m);
            }
            Some(x)
        }
        (x, y) => y.or(x),
    };
    BottleFile {
        env: merge_env(a.env, b.env),
        git_user: match (a.git_user, b.git_user) {
            (Some(x), Some(y)) => Some(x.overlay(&y)),
            (x, y) => y.or(x),
        },
        agent_provider: b.agent_provider.or(a.agent_provider),
        egress,
        supervise: b.supervise.or(a.supervise),
        image: b.image.or(a.image),
        mounts,
        ..b
    }
}

/// A child over its (combined) parent: `env` and `git-gate.user` merge,
/// every other section the child declares replaces the parent's whole.
fn apply_child(parent: BottleFile, child: BottleFile) -> BottleFile {
    BottleFile {
        env: merge_env(parent.env, child.env),
        git_user: match (parent.git_user, child.git_user) {
            (Some(x), Some(y)) => Some(x.overlay(&y)),
            (x, y) => y.or(x),
        },
        agent_provider: child.agent_provider.or(parent.agent_provider),
        egress: child.egress.or(parent.egress),
        supervise: child.supervise.or(parent.supervise),
        image: child.image.or(parent.image),
        mounts: child.mounts.or(parent.mounts),
        ..child
    }
}

fn merge_env<T>(
    a: Option<BTreeMap<String, T>>,
    b: Option<BTreeMap<String, T>>,
) -> Option<BTreeMap<String, T>> {
    match (a, b) {
        (Some(mut x), Some(y)) => {
            x.extend(y);
            Some(x)
        }
        (x, y) => y.or(x),
    }
}

fn expand_home(home: &Path, p: PathBuf) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => home.join(rest),
        Err(_) => p,
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn check_stale_json(dir: &Path, new_root: &Path) -> Result<(), ManifestError> {
    if new_root.is_dir() {
        return Ok(());
    }
    for name in STALE_JSON_NAMES {
        let path = dir.join(name);
        if path.is_file() {
            return Err(ManifestError::StaleJsonManifest {
                path,
                expected_dir: new_root.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// `<name>.md` files of a directory; a missing directory is empty.
fn list_dir(
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, PathBuf>, ManifestError> {
    let io_err = |source| ManifestError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io_err(e)),
    };
    let mut out = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(io_err)?;
        let path = entry.path();
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            warnings.push(format!(
                "{}: skipped: the file name is not UTF-8",
                path.display()
            ));
            continue;
        };
        let Some(stem) = file_name.strip_suffix(".md") else {
            continue;
        };
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => continue,
            Err(e) => {
                warnings.push(format!("{}: skipped: {e}", path.display()));
                continue;
            }
        }
        if !is_manifest_name(stem) {
            warnings.push(format!(
                "{}: skipped: manifest names must match {MANIFEST_NAME_RULE} (then `.md`)",
                path.display()
            ));
            continue;
        }
        out.insert(stem.to_string(), path);
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, ManifestError> {
    let io_err = |source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(io_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ManifestError::Syntax {
            path: path.to_path_buf(),
            line: 1,
            message: format!("file is larger than {} KiB", MAX_FILE_BYTES / 1024),
        });
    }
    String::from_utf8(bytes).map_err(|_| ManifestError::Syntax {
        path: path.to_path_buf(),
        line: 1,
        message: "file is not UTF-8 text".into(),
    })
}
