//! Frontmatter tree → typed bottle and agent files, with every key checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::ManifestError;
use crate::model::{
    Agent, AgentProvider, BottleFile, EgressDecl, EnvValue, GitUser, Mount, DEFAULT_TEMPLATE,
};
use crate::route;
use crate::yaml::{self, bool_value, Kind, Node};

/// Allowed top-level keys of a bottle file.
pub const BOTTLE_KEYS: &[&str] = &[
    "env",
    "extends",
    "agent_provider",
    "git-gate",
    "egress",
    "supervise",
    "image",
    "mounts",
];

/// Allowed top-level keys of an agent file (the last six are Claude
/// subagent keys, accepted and ignored).
pub const AGENT_KEYS: &[&str] = &[
    "bottle",
    "skills",
    "git-gate",
    "name",
    "description",
    "model",
    "color",
    "memory",
    "tools",
];

const AGENT_IGNORED_KEYS: &[&str] = &["name", "description", "model", "color", "memory", "tools"];
const PROVIDER_KEYS: &[&str] = &[
    "template",
    "dockerfile",
    "auth_token",
    "forward_host_credentials",
    "settings",
];
const EGRESS_KEYS: &[&str] = &["routes", "log"];
const GIT_GATE_KEYS: &[&str] = &["user", "repos"];
const GIT_USER_KEYS: &[&str] = &["name", "email"];
const MOUNT_KEYS: &[&str] = &["source", "target", "read_only"];

pub(crate) type Entries = [(String, usize, Node)];

/// Where errors point: the file.
#[derive(Clone, Copy)]
pub(crate) struct Cx<'a> {
    pub path: &'a Path,
}

impl Cx<'_> {
    pub fn invalid(&self, line: usize, key: &str, message: impl Into<String>) -> ManifestError {
        ManifestError::Invalid {
            path: self.path.to_path_buf(),
            line: Some(line),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

pub(crate) fn quoted_list(items: &[&str]) -> String {
    items.join(", ")
}

/// Entries of a map; an empty value counts as an empty map.
pub(crate) fn map<'n>(cx: Cx, node: &'n Node, key: &str) -> Result<&'n Entries, ManifestError> {
    match &node.kind {
        Kind::Map(entries) => Ok(entries),
        Kind::Null => Ok(&[]),
        _ => Err(cx.invalid(
            node.line,
            key,
            format!("must be a map of keys, found {}", node.describe()),
        )),
    }
}

/// Items of a list; an empty value counts as an empty list.
pub(crate) fn seq<'n>(cx: Cx, node: &'n Node, key: &str) -> Result<&'n [Node], ManifestError> {
    match &node.kind {
        Kind::Seq(items) => Ok(items),
        Kind::Null => Ok(&[]),
        _ => Err(cx.invalid(
            node.line,
            key,
            format!("must be a list, found {}", node.describe()),
        )),
    }
}

/// A scalar's text. Plain numbers and booleans count as their text, since
/// the file writer meant the characters they typed. The value is never
/// echoed in the error.
pub(crate) fn string(cx: Cx, node: &Node, key: &str) -> Result<String, ManifestError> {
    match &node.kind {
        Kind::Str { text, .. } => Ok(text.clone()),
        _ => Err(cx.invalid(
            node.line,
            key,
            format!("must be a string, found {}", node.describe()),
        )),
    }
}

/// A non-empty string.
pub(crate) fn non_empty(cx: Cx, node: &Node, key: &str) -> Result<String, ManifestError> {
    let s = string(cx, node, key)?;
    if s.trim().is_empty() {
        return Err(cx.invalid(node.line, key, "must not be empty"));
    }
    Ok(s)
}

pub(crate) fn boolean(cx: Cx, node: &Node, key: &str) -> Result<bool, ManifestError> {
    match &node.kind {
        Kind::Str { text, plain: true } => bool_value(text),
        _ => None,
    }
    .ok_or_else(|| {
        cx.invalid(
            node.line,
            key,
            format!("must be true or false, found {}", node.describe()),
        )
    })
}

pub(crate) fn integer(cx: Cx, node: &Node, key: &str, allowed: &str) -> Result<i64, ManifestError> {
    match &node.kind {
        Kind::Str { text, plain: true } => text.parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        cx.invalid(
            node.line,
            key,
            format!("must be an integer ({allowed}), found {}", node.describe()),
        )
    })
}

/// Refuses keys outside `allowed`; `special` gives a tailored message (a
/// removed key's migration hint, an unsupported feature) for some keys.
pub(crate) fn check_keys(
    cx: Cx,
    entries: &Entries,
    prefix: &str,
    allowed: &[&str],
    special: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ManifestError> {
    for (key, line, _) in entries {
        if let Some(message) = special(key) {
            return Err(cx.invalid(*line, &join(prefix, key), message));
        }
        if !allowed.contains(&key.as_str()) {
            return Err(cx.invalid(
                *line,
                &join(prefix, key),
                format!("unknown key; allowed keys: {}", quoted_list(allowed)),
            ));
        }
    }
    Ok(())
}

/// `[A-Za-z_][A-Za-z0-9_]*`: environment variable names and token refs.
pub fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `^[a-z][a-z0-9-]*$`: bottle and agent names (the file name without `.md`).
pub fn is_manifest_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Skill names become directory names on host and guest, so no separators
/// and no `.`/`..`.
fn is_skill_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

pub(crate) const ENV_NAME_RULE: &str = "[A-Za-z_][A-Za-z0-9_]*";
pub(crate) const MANIFEST_NAME_RULE: &str = "^[a-z][a-z0-9-]*$";

fn manifest_name(cx: Cx, node: &Node, key: &str, what: &str) -> Result<String, ManifestError> {
    let name = non_empty(cx, node, key)?;
    if !is_manifest_name(&name) {
        return Err(cx.invalid(
            node.line,
            key,
            format!("`{name}` is not a valid {what} name; names match {MANIFEST_NAME_RULE}"),
        ));
    }
    Ok(name)
}

fn top_level<'n>(cx: Cx, root: &'n Node) -> Result<&'n Entries, ManifestError> {
    match &root.kind {
        Kind::Map(entries) => Ok(entries),
        _ => Err(cx.invalid(
            root.line,
            "(frontmatter)",
            format!("must be a map of keys, found {}", root.describe()),
        )),
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn removed_bottle_key(key: &str) -> Option<String> {
    Some(match key {
        "git" => "this key was replaced by `git-gate` (use `git-gate.user: {name, email}` for the agent's identity)".into(),
        "runtime" => "this key was removed: gVisor is detected and used automatically".into(),
        "cred_proxy" | "tokens" => "this key was removed: declare an `egress.routes` entry with `auth: {scheme: Bearer|token, token_ref: HOST_VAR}` instead".into(),
        "egress_proxy" => "this key was renamed `egress` (`egress.routes`, `egress.log`)".into(),
        _ => return None,
    })
}

/// Parses one bottle file's text.
pub(crate) fn bottle(path: &Path, text: &str) -> Result<BottleFile, ManifestError> {
    let cx = Cx { path };
    let split = yaml::split_frontmatter(path, text)?;
    let root = yaml::parse(path, split.yaml, split.yaml_line_offset)?;
    let entries = top_level(cx, &root)?;
    check_keys(cx, entries, "", BOTTLE_KEYS, &removed_bottle_key)?;
    let base_dir = path.parent().unwrap_or(Path::new(""));
    let mut file = BottleFile {
        name: stem(path),
        path: path.to_path_buf(),
        ..BottleFile::default()
    };
    for (key, line, value) in entries {
        match key.as_str() {
            "extends" => {
                file.extends = extends(cx, value)?;
                file.extends_line = Some(*line);
            }
            "env" => file.env = Some(env(cx, value)?),
            "agent_provider" => file.agent_provider = Some(agent_provider(cx, value, base_dir)?),
            "egress" => file.egress = Some(egress(cx, value)?),
            "supervise" => {
                if boolean(cx, value, "supervise")? {
                    return Err(cx.invalid(
                        value.line,
                        "supervise",
                        "supervise is not supported yet: this version has no supervise plane (allowed: false, or leave the key out)",
                    ));
                }
                file.supervise = Some(false);
            }
            "git-gate" => file.git_user = git_gate(cx, value, false)?,
            "image" => {
                file.image = Some(match &value.kind {
                    Kind::Null => None,
                    _ => {
                        let image = non_empty(cx, value, "image")?;
                        if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
                            return Err(cx.invalid(
                                value.line,
                                "image",
                                "must be an image reference such as `registry/name:tag`, without spaces",
                            ));
                        }
                        Some(image)
                    }
                })
            }
            "mounts" => file.mounts = Some(mounts(cx, value)?),
            _ => unreachable!("check_keys allowed {key}"),
        }
    }
    Ok(file)
}

fn extends(cx: Cx, node: &Node) -> Result<Vec<String>, ManifestError> {
    let names = match &node.kind {
        Kind::Null => Vec::new(),
        Kind::Str { .. } => vec![manifest_name(cx, node, "extends", "bottle")?],
        Kind::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| manifest_name(cx, item, &format!("extends[{i}]"), "bottle"))
            .collect::<Result<_, _>>()?,
        Kind::Map(_) => {
            return Err(cx.invalid(
                node.line,
                "extends",
                "must be a bottle name or a list of bottle names, found a map",
            ))
        }
    };
    Ok(names)
}

fn env(cx: Cx, node: &Node) -> Result<BTreeMap<String, EnvValue>, ManifestError> {
    let mut out = BTreeMap::new();
    for (name, line, value) in map(cx, node, "env")? {
        let key = format!("env.{name}");
        if !is_env_name(name) {
            return Err(cx.invalid(
                *line,
                &key,
                format!("not a valid variable name; names match {ENV_NAME_RULE}"),
            ));
        }
        let text = match &value.kind {
            Kind::Null => String::new(),
            _ => string(cx, value, &key)?,
        };
        let parsed = if let Some(prompt) = text.strip_prefix('?') {
            let prompt = prompt.trim();
            EnvValue::Prompt((!prompt.is_empty()).then(|| prompt.to_string()))
        } else if let Some(var) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
            if !is_env_name(var) {
                // The text may be a pasted secret: describe the rule, never the value.
                return Err(cx.invalid(
                    value.line,
                    &key,
                    format!("a `${{...}}` value must name one host variable matching {ENV_NAME_RULE}; allowed forms: \"${{HOST_VAR}}\", \"?\", \"?prompt text\", or a literal"),
                ));
            }
            EnvValue::HostVar(var.to_string())
        } else {
            EnvValue::Literal(text)
        };
        out.insert(name.clone(), parsed);
    }
    Ok(out)
}

fn agent_provider(cx: Cx, node: &Node, base_dir: &Path) -> Result<AgentProvider, ManifestError> {
    let entries = map(cx, node, "agent_provider")?;
    check_keys(cx, entries, "agent_provider", PROVIDER_KEYS, &|_| None)?;
    let mut p = AgentProvider::default();
    for (key, _, value) in entries {
        let k = join("agent_provider", key);
        match key.as_str() {
            "template" => {
                let t = non_empty(cx, value, &k)?;
                let ok = t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !ok {
                    return Err(cx.invalid(
                        value.line,
                        &k,
                        format!("`{t}` is not a provider name; built-in providers: {DEFAULT_TEMPLATE}, codex (plugin providers by their name)"),
                    ));
                }
                p.template = t;
            }
            "dockerfile" => {
                let d = non_empty(cx, value, &k)?;
                let d = PathBuf::from(d);
                p.dockerfile = Some(if d.is_absolute() || d.starts_with("~") {
                    d
                } else {
                    base_dir.join(d)
                });
            }
            "auth_token" => {
                let name = non_empty(cx, value, &k)?;
                if !is_env_name(&name) {
                    // Often the token itself is pasted here: never echo it.
                    return Err(cx.invalid(
                        value.line,
                        &k,
                        format!("must name the host variable that holds the token (matching {ENV_NAME_RULE}), not the token itself"),
                    ));
                }
                p.auth_token = Some(name);
            }
            "forward_host_credentials" => p.forward_host_credentials = boolean(cx, value, &k)?,
            "settings" => {
                let entries = map(cx, value, &k)?;
                let mut settings = serde_json::Map::new();
                for (name, _, v) in entries {
                    settings.insert(name.clone(), to_json(v));
                }
                p.settings = settings;
            }
            _ => unreachable!("check_keys allowed {key}"),
        }
    }
    Ok(p)
}

/// YAML → JSON with core-schema typing for plain scalars. Depth is bounded
/// by the tree builder.
fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match &node.kind {
        Kind::Null => Value::Null,
        Kind::Str { text, plain: true } => {
            if let Some(b) = bool_value(text) {
                Value::Bool(b)
            } else if let Ok(i) = text.parse::<i64>() {
                Value::from(i)
            } else if let Some(n) = text
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && text.chars().any(|c| c.is_ascii_digit()))
                .and_then(serde_json::Number::from_f64)
            {
                Value::Number(n)
            } else {
                Value::String(text.clone())
            }
        }
        Kind::Str { text, .. } => Value::String(text.clone()),
        Kind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Kind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, _, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}

fn egress(cx: Cx, node: &Node) -> Result<EgressDecl, ManifestError> {
    let entries = map(cx, node, "egress")?;
    check_keys(cx, entries, "egress", EGRESS_KEYS, &|_| None)?;
    let mut decl = EgressDecl::default();
    for (key, _, value) in entries {
        match key.as_str() {
            "routes" => {
                for (i, item) in seq(cx, value, "egress.routes")?.iter().enumerate() {
                    decl.routes
                        .push(route::route(cx, item, &format!("egress.routes[{i}]"))?);
                }
            }
            "log" => {
                const ALLOWED: &str = "0 = off, 1 = blocks and warnings, 2 = every request";
                let n = integer(cx, value, "egress.log", ALLOWED)?;
                if !(0..=2).contains(&n) {
                    return Err(cx.invalid(
                        value.line,
                        "egress.log",
                        format!("{n} is not allowed; allowed: {ALLOWED}"),
                    ));
                }
                decl.log = Some(n as u8);
            }
            _ => unreachable!("check_keys allowed {key}"),
        }
    }
    Ok(decl)
}

fn git_gate(cx: Cx, node: &Node, in_agent: bool) -> Result<Option<GitUser>, ManifestError> {
    let entries = map(cx, node, "git-gate")?;
    let repos_message = if in_agent {
        "git-gate.repos is not allowed in agent files (and git-gate repos are not supported yet in this version); only `git-gate.user` is"
    } else {
        "git-gate.repos is not supported yet in this version; only `git-gate.user` is"
    };
    check_keys(cx, entries, "git-gate", GIT_GATE_KEYS, &|k| {
        (k == "repos").then(|| repos_message.to_string())
    })?;
    let mut user = None;
    for (key, _, value) in entries {
        if key == "user" {
            let fields = map(cx, value, "git-gate.user")?;
            check_keys(cx, fields, "git-gate.user", GIT_USER_KEYS, &|_| None)?;
            let mut u = GitUser::default();
            for (field, _, v) in fields {
                let k = join("git-gate.user", field);
                let s = match &v.kind {
                    Kind::Null => String::new(),
                    _ => string(cx, v, &k)?,
                };
                if s.chars().any(|c| c.is_control()) {
                    return Err(cx.invalid(v.line, &k, "must be one line of text"));
                }
                if field == "name" {
                    u.name = Some(s);
                } else {
                    u.email = Some(s);
                }
            }
            user = Some(u);
        }
    }
    Ok(user)
}

fn mounts(cx: Cx, node: &Node) -> Result<Vec<Mount>, ManifestError> {
    let mut out: Vec<Mount> = Vec::new();
    for (i, item) in seq(cx, node, "mounts")?.iter().enumerate() {
        let prefix = format!("mounts[{i}]");
        let entries = map(cx, item, &prefix)?;
        check_keys(cx, entries, &prefix, MOUNT_KEYS, &|_| None)?;
        let (mut source, mut target, mut read_only) = (None, None, false);
        for (key, _, value) in entries {
            let k = join(&prefix, key);
            match key.as_str() {
                "source" => {
                    let s = non_empty(cx, value, &k)?;
                    if !(s.starts_with('/') || s == "~" || s.starts_with("~/")) || s.contains('\0')
                    {
                        return Err(cx.invalid(
                            value.line,
                            &k,
                            format!("`{s}` must be an absolute host path or start with `~/`"),
                        ));
                    }
                    source = Some(PathBuf::from(s));
                }
                "target" => {
                    let t = non_empty(cx, value, &k)?;
                    if !t.starts_with('/')
                        || t.split('/').any(|c| c == "..")
                        || t.chars().any(|c| c.is_control() || c == ':')
                    {
                        return Err(cx.invalid(
                            value.line,
                            &k,
                            format!("`{t}` must be an absolute path inside the sandbox, without `..`, `:` or control characters"),
                        ));
                    }
                    target = Some(t);
                }
                "read_only" => read_only = boolean(cx, value, &k)?,
                _ => unreachable!("check_keys allowed {key}"),
            }
        }
        let missing = |what: &str| {
            cx.invalid(
                item.line,
                &join(&prefix, what),
                "is required; a mount is {source, target, read_only?}",
            )
        };
        let source = source.ok_or_else(|| missing("source"))?;
        let target = target.ok_or_else(|| missing("target"))?;
        if out.iter().any(|m| m.target == target) {
            return Err(cx.invalid(
                item.line,
                &join(&prefix, "target"),
                format!("`{target}` is already the target of another mount"),
            ));
        }
        out.push(Mount {
            source,
            target,
            read_only,
        });
    }
    Ok(out)
}

/// Parses one agent file's text.
pub(crate) fn agent(path: &Path, text: &str) -> Result<Agent, ManifestError> {
    let cx = Cx { path };
    let split = yaml::split_frontmatter(path, text)?;
    let root = yaml::parse(path, split.yaml, split.yaml_line_offset)?;
    let entries = top_level(cx, &root)?;
    check_keys(cx, entries, "", AGENT_KEYS, &|_| None)?;
    let mut agent = Agent {
        name: stem(path),
        path: path.to_path_buf(),
        bottle: None,
        skills: Vec::new(),
        git_user: GitUser::default(),
        system_prompt: split.body.trim().to_string(),
    };
    for (key, _, value) in entries {
        match key.as_str() {
            "bottle" => {
                agent.bottle = match value.kind {
                    Kind::Null => None,
                    _ => Some(manifest_name(cx, value, "bottle", "bottle")?),
                }
            }
            "skills" => {
                for (i, item) in seq(cx, value, "skills")?.iter().enumerate() {
                    let k = format!("skills[{i}]");
                    let s = non_empty(cx, item, &k)?;
                    if !is_skill_name(&s) {
                        return Err(cx.invalid(
                            item.line,
                            &k,
                            format!("`{s}` is not a skill name (a directory under ~/.claude/skills/: letters, digits, `_`, `-`, `.`, no `/`)"),
                        ));
                    }
                    if !agent.skills.contains(&s) {
                        agent.skills.push(s);
                    }
                }
            }
            "git-gate" => agent.git_user = git_gate(cx, value, true)?.unwrap_or_default(),
            k if AGENT_IGNORED_KEYS.contains(&k) => {}
            _ => unreachable!("check_keys allowed {key}"),
        }
    }
    Ok(agent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(yaml: &str) -> Result<BottleFile, ManifestError> {
        bottle(
            Path::new("/h/b.md"),
            &format!("---\n{yaml}---\nbody ignored\n"),
        )
    }

    #[test]
    fn names() {
        assert!(
            is_env_name("_A1") && is_env_name("a") && !is_env_name("1A") && !is_env_name("A-B")
        );
        assert!(!is_env_name(""));
        assert!(is_manifest_name("a-1") && !is_manifest_name("A") && !is_manifest_name("-a"));
        assert!(!is_manifest_name("a_b") && !is_manifest_name(""));
        assert!(is_skill_name("pdf.v2") && !is_skill_name("..") && !is_skill_name("a/b"));
    }

    #[test]
    fn env_forms() {
        let f = b("env:\n  A: lit\n  B: \"${HOST}\"\n  C: \"?\"\n  D: \"?paste it\"\n  E: 8080\n  F:\n  G: x${Y}\n").unwrap();
        let env = f.env.unwrap();
        assert_eq!(env["A"], EnvValue::Literal("lit".into()));
        assert_eq!(env["B"], EnvValue::HostVar("HOST".into()));
        assert_eq!(env["C"], EnvValue::Prompt(None));
        assert_eq!(env["D"], EnvValue::Prompt(Some("paste it".into())));
        assert_eq!(env["E"], EnvValue::Literal("8080".into()));
        assert_eq!(env["F"], EnvValue::Literal(String::new()));
        assert_eq!(env["G"], EnvValue::Literal("x${Y}".into()));
        assert!(env["B"].is_sensitive() && !env["A"].is_sensitive());
    }

    #[test]
    fn env_errors_never_echo_values() {
        let e = b("env:\n  K: \"${sk-live-SECRET}\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("env.K") && !e.contains("SECRET"), "{e}");
        let e = b("env:\n  K: [sk-live-SECRET]\n").unwrap_err().to_string();
        assert!(
            e.contains("env.K") && e.contains("a list") && !e.contains("SECRET"),
            "{e}"
        );
        let e = b("env:\n  1BAD: x\n").unwrap_err().to_string();
        assert!(e.contains("env.1BAD") && e.contains(ENV_NAME_RULE), "{e}");
    }

    #[test]
    fn settings_become_json() {
        let f =
            b("agent_provider:\n  settings: {a: 1, b: true, c: x, d: '2', e: [1.5], f: {g: ~}}\n")
                .unwrap();
        let s = serde_json::Value::Object(f.agent_provider.unwrap().settings);
        assert_eq!(
            s,
            serde_json::json!({"a": 1, "b": true, "c": "x", "d": "2", "e": [1.5], "f": {"g": null}})
        );
    }

    #[test]
    fn dockerfile_is_relative_to_the_bottle_dir() {
        let f = b("agent_provider: {dockerfile: img/Dockerfile}\n").unwrap();
        assert_eq!(
            f.agent_provider.unwrap().dockerfile.unwrap(),
            PathBuf::from("/h/img/Dockerfile")
        );
    }

    #[test]
    fn auth_token_is_never_echoed() {
        let e = b("agent_provider: {auth_token: sk-ant-SECRET-value}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("agent_provider.auth_token") && !e.contains("SECRET"),
            "{e}"
        );
    }

    #[test]
    fn agent_body_is_trimmed_prompt() {
        let a = agent(
            Path::new("/x/dev.md"),
            "---\nbottle: base\nmodel: opus\n---\n\n  You help.\n\n",
        )
        .unwrap();
        assert_eq!(a.name, "dev");
        assert_eq!(a.system_prompt, "You help.");
        assert_eq!(a.bottle.as_deref(), Some("base"));
    }
}
