//! `extends` graphs: a few bottle files (and maybe an agent) generated from
//! the input are written to a scratch `$HOME`, discovered and resolved the
//! way a launch does (`ManifestIndex::discover` → `resolve_bottles` /
//! `load`). Cycles, self-reference, missing parents, diamonds, invalid
//! names and arbitrary YAML pasted into a file must give a result or a
//! `ManifestError`, never a panic or a hang.
//!
//! When every file was generated well-formed, the outcome is predicted
//! independently: resolution fails exactly when a bottle reachable from the
//! chosen ones is missing, has an invalid name in `extends`, or lies on a
//! cycle; and on success the environment is the union of the environments
//! of every reachable bottle (a child cannot remove a parent's variable).
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use bot_bottle_manifest::{ManifestError, ManifestIndex};
use libfuzzer_sys::fuzz_target;

/// Bottle names a file may have; `extends` may also name the two after it.
const NAMES: &[&str] = &["a", "b", "c", "d", "e", "f"];
/// A valid name with no file, and an invalid one.
const MISSING: &str = "ghost";
const INVALID: &str = "Not_A-Name";

#[derive(Arbitrary, Debug)]
struct Input {
    bottles: Vec<FBottle>,
    chosen: Vec<u8>,
    agent: Option<FAgent>,
}

#[derive(Arbitrary, Debug)]
struct FBottle {
    name: u8,
    extends: Vec<u8>,
    /// 0: flow list, 1: one scalar (first parent only), 2: block list,
    /// 3: key absent, 4: empty value.
    form: u8,
    env: Vec<(u8, u8)>,
    routes: Option<Vec<u8>>,
    /// Replaces the whole file when set.
    raw: Option<String>,
    /// Extra frontmatter lines when set.
    extra: Option<String>,
}

#[derive(Arbitrary, Debug)]
struct FAgent {
    bottle: Option<u8>,
    overrides: Vec<u8>,
    raw: Option<String>,
}

fn parent_name(i: u8) -> &'static str {
    match i as usize % (NAMES.len() + 2) {
        n if n < NAMES.len() => NAMES[n],
        n if n == NAMES.len() => MISSING,
        _ => INVALID,
    }
}

/// A bottle file as generated, for the oracle.
struct Generated {
    text: String,
    /// `None` when the file is not known to be well-formed.
    parents: Option<Vec<&'static str>>,
    env: BTreeSet<String>,
}

fn generate(b: &FBottle) -> Generated {
    if let Some(raw) = &b.raw {
        return Generated {
            text: raw.clone(),
            parents: None,
            env: BTreeSet::new(),
        };
    }
    let mut parents: Vec<&'static str> =
        b.extends.iter().take(4).map(|&i| parent_name(i)).collect();
    let mut yaml = String::new();
    match b.form % 5 {
        0 => yaml.push_str(&format!("extends: [{}]\n", parents.join(", "))),
        1 => {
            parents.truncate(1);
            match parents.first() {
                Some(p) => yaml.push_str(&format!("extends: {p}\n")),
                None => yaml.push_str("extends:\n"),
            }
        }
        2 => {
            yaml.push_str("extends:\n");
            for p in &parents {
                yaml.push_str(&format!("  - {p}\n"));
            }
        }
        3 => parents.clear(),
        _ => {
            parents.clear();
            yaml.push_str("extends: []\n");
        }
    }
    let mut env = BTreeSet::new();
    if !b.env.is_empty() {
        yaml.push_str("env:\n");
        let mut seen = BTreeSet::new();
        for &(k, v) in b.env.iter().take(4) {
            let key = format!("VAR_{}", k % 5);
            if !seen.insert(key.clone()) {
                continue;
            }
            let value = match v % 3 {
                0 => "plain".to_string(),
                1 => format!("\"${{HOST_{}}}\"", v % 7),
                _ => "\"?prompt\"".to_string(),
            };
            yaml.push_str(&format!("  {key}: {value}\n"));
            env.insert(key);
        }
    }
    if let Some(routes) = &b.routes {
        yaml.push_str("egress:\n  routes:\n");
        for r in routes.iter().take(3) {
            yaml.push_str(&format!("    - host: h{}.example.com\n", r % 4));
        }
    }
    let mut well_formed = true;
    if let Some(extra) = &b.extra {
        // Extra keys may be anything, including a second `extends`.
        well_formed = false;
        yaml.push_str(extra);
        if !extra.ends_with('\n') {
            yaml.push('\n');
        }
    }
    Generated {
        text: format!("---\n{yaml}---\nbody\n"),
        parents: well_formed.then_some(parents),
        env,
    }
}

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("bot-bottle-fuzz-extends-{}", std::process::id()))
    })
}

/// Predicts `resolve_bottles(chosen)` from the generated files: `Err(())`
/// for an expected error, `Ok(env names)` on success, `None` when a
/// reachable file is not known to be well-formed.
fn predict(
    files: &BTreeMap<&str, Generated>,
    chosen: &[&str],
) -> Option<Result<BTreeSet<String>, ()>> {
    if chosen.is_empty() {
        return Some(Err(()));
    }
    // Depth-first over the graph; `Err` as soon as anything fails.
    fn visit(
        files: &BTreeMap<&str, Generated>,
        name: &str,
        on_path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        env: &mut BTreeSet<String>,
        unknown: &mut bool,
    ) -> Result<(), ()> {
        if done.contains(name) {
            return Ok(());
        }
        if on_path.iter().any(|n| n == name) {
            return Err(());
        }
        let Some(file) = files.get(name) else {
            return Err(());
        };
        let Some(parents) = &file.parents else {
            *unknown = true;
            return Ok(());
        };
        if parents.contains(&INVALID) {
            return Err(());
        }
        on_path.push(name.to_string());
        for p in parents {
            visit(files, p, on_path, done, env, unknown)?;
        }
        on_path.pop();
        env.extend(file.env.iter().cloned());
        done.insert(name.to_string());
        Ok(())
    }
    let mut env = BTreeSet::new();
    let mut done = BTreeSet::new();
    let mut unknown = false;
    for name in chosen {
        if visit(
            files,
            name,
            &mut Vec::new(),
            &mut done,
            &mut env,
            &mut unknown,
        )
        .is_err()
        {
            // An error seen before any unknown file is certain only if the
            // DFS order matches; with unknown files anywhere, give up.
            return if unknown { None } else { Some(Err(())) };
        }
    }
    if unknown {
        None
    } else {
        Some(Ok(env))
    }
}

fuzz_target!(|input: Input| {
    let home = scratch();
    let _ = fs::remove_dir_all(home);
    let bottles_dir = home.join(".bot-bottle/bottles");
    let agents_dir = home.join(".bot-bottle/agents");
    fs::create_dir_all(&bottles_dir).expect("scratch dir");
    fs::create_dir_all(&agents_dir).expect("scratch dir");

    let mut files: BTreeMap<&str, Generated> = BTreeMap::new();
    for b in input.bottles.iter().take(8) {
        let name = NAMES[b.name as usize % NAMES.len()];
        files.insert(name, generate(b));
    }
    for (name, g) in &files {
        fs::write(bottles_dir.join(format!("{name}.md")), &g.text).expect("write bottle");
    }
    let chosen: Vec<&str> = input
        .chosen
        .iter()
        .take(3)
        .map(|&i| parent_name(i))
        .collect();

    let index = match ManifestIndex::discover(home, home) {
        Ok(i) => i,
        Err(e) => panic!("discover failed on a scratch home: {e}"),
    };
    let owned: Vec<String> = chosen.iter().map(|s| s.to_string()).collect();
    let result = index.resolve_bottles(&owned);
    if let Err(e) = &result {
        let _ = e.to_string();
    }
    match (predict(&files, &chosen), &result) {
        (None, _) => {}
        (Some(Err(())), Ok(_)) => panic!("resolved {chosen:?} although it should fail"),
        (Some(Ok(_)), Err(e)) => panic!("{chosen:?} should resolve, got: {e}"),
        (Some(Ok(env)), Ok(bottle)) => {
            let got: BTreeSet<String> = bottle.env.keys().cloned().collect();
            assert_eq!(
                got, env,
                "env of {chosen:?} is not the union of the chain's"
            );
        }
        (Some(Err(())), Err(e)) => {
            assert!(
                matches!(
                    e,
                    ManifestError::ExtendsCycle { .. }
                        | ManifestError::Invalid { .. }
                        | ManifestError::UnknownBottle { .. }
                        | ManifestError::NoBottleGiven
                ),
                "unexpected error kind: {e:?}"
            );
        }
    }

    if let Some(agent) = &input.agent {
        let text = match &agent.raw {
            Some(raw) => raw.clone(),
            None => match agent.bottle {
                Some(i) => format!("---\nbottle: {}\n---\nprompt\n", parent_name(i)),
                None => "---\n---\nprompt\n".to_string(),
            },
        };
        fs::write(agents_dir.join("me.md"), text).expect("write agent");
        let index = ManifestIndex::discover(home, home).expect("discover");
        let overrides: Vec<String> = agent
            .overrides
            .iter()
            .take(2)
            .map(|&i| parent_name(i).to_string())
            .collect();
        if let Err(e) = index.load("me", &overrides) {
            let _ = e.to_string();
        }
    }
});
