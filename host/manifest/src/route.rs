//! `egress.routes[]` entries → SDK [`RouteSpec`]s.

use std::net::{Ipv4Addr, Ipv6Addr};

use bot_bottle_sdk::egress::{
    AuthScheme, DeclaredAuth, HeaderMatch, HeaderMatchType, PathMatch, PathMatchType, RouteMatch,
    RouteOrigin, RouteSpec,
};

use crate::error::ManifestError;
use crate::schema::{
    boolean, check_keys, integer, is_env_name, join, map, non_empty, quoted_list, seq, string, Cx,
    ENV_NAME_RULE,
};
use crate::yaml::Node;

/// Allowed keys of one route.
pub const ROUTE_KEYS: &[&str] = &["host", "port", "auth", "matches", "allow_private"];
const AUTH_KEYS: &[&str] = &["scheme", "token_ref"];
const MATCH_KEYS: &[&str] = &["paths", "methods", "headers"];
const PATH_KEYS: &[&str] = &["type", "value"];
const HEADER_KEYS: &[&str] = &["name", "value", "type"];

/// Methods a route may name. A closed list catches typos (`GTE`) that an
/// HTTP-token check would let through as a never-matching rule.
pub const HTTP_METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "CONNECT",
    "TRACE",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
    "SEARCH",
    "QUERY",
];

fn special_route_key(key: &str) -> Option<String> {
    Some(match key {
        "role" => "`role` is no longer accepted (any value): provider routes such as api.anthropic.com are added automatically from `agent_provider`".into(),
        "path_allowlist" => "`path_allowlist` was replaced by `matches`, e.g. `matches: [{paths: [{type: prefix, value: /api/}]}]`".into(),
        "pipelock" => "`pipelock` was removed with the pipelock sidecar; use `allow_private: true` for hosts on private addresses".into(),
        "dlp" => "route `dlp` is not supported yet in this version: outbound and inbound DLP are not applied; remove the key to run without it".into(),
        "git" => "route `git` (git fetch over HTTPS) is not supported yet in this version; remove the key".into(),
        _ => return None,
    })
}

/// One route; `prefix` is its key path, `egress.routes[N]`.
pub(crate) fn route(cx: Cx, node: &Node, prefix: &str) -> Result<RouteSpec, ManifestError> {
    let entries = map(cx, node, prefix)?;
    check_keys(cx, entries, prefix, ROUTE_KEYS, &special_route_key)?;
    let mut spec = RouteSpec {
        host: String::new(),
        port: None,
        auth: None,
        matches: Vec::new(),
        allow_private: false,
        origin: RouteOrigin::Manifest,
    };
    let mut has_host = false;
    for (key, _, value) in entries {
        let k = join(prefix, key);
        match key.as_str() {
            "host" => {
                let raw = non_empty(cx, value, &k)?;
                spec.host = host(&raw).map_err(|m| cx.invalid(value.line, &k, m))?;
                has_host = true;
            }
            "port" => {
                let n = integer(cx, value, &k, "1-65535")?;
                let port = u16::try_from(n).ok().filter(|p| *p != 0).ok_or_else(|| {
                    cx.invalid(
                        value.line,
                        &k,
                        format!("{n} is not a port; allowed: 1-65535"),
                    )
                })?;
                spec.port = Some(port);
            }
            "auth" => spec.auth = Some(auth(cx, value, &k)?),
            "matches" => {
                for (i, item) in seq(cx, value, &k)?.iter().enumerate() {
                    spec.matches
                        .push(route_match(cx, item, &format!("{k}[{i}]"))?);
                }
            }
            "allow_private" => spec.allow_private = boolean(cx, value, &k)?,
            _ => unreachable!("check_keys allowed {key}"),
        }
    }
    if !has_host {
        return Err(cx.invalid(
            node.line,
            &join(prefix, "host"),
            "is required: every route names exactly one host, e.g. `host: api.example.com`",
        ));
    }
    Ok(spec)
}

/// Validates and normalises a host: lower case, one name or IP literal,
/// nothing else.
pub(crate) fn host(raw: &str) -> Result<String, String> {
    let h = raw.trim();
    if h.contains("://") {
        return Err(format!(
            "`{h}` contains a scheme; write only the host name (e.g. `example.com`); the scheme is chosen by the request"
        ));
    }
    if h.contains('/') {
        return Err(format!(
            "`{h}` contains a path; write only the host name and restrict paths with `matches`"
        ));
    }
    if h.contains('*') {
        return Err(format!(
            "`{h}`: wildcards are not supported; one route per host"
        ));
    }
    if h.contains(|c: char| c.is_whitespace() || c == ',') {
        return Err(format!(
            "`{h}`: one host per route; add one route for each host"
        ));
    }
    if h.contains('@') {
        return Err(format!(
            "`{h}` contains user info; write only the host name"
        ));
    }
    if let Some(inner) = h.strip_prefix('[') {
        return match inner.strip_suffix(']').map(str::parse::<Ipv6Addr>) {
            Some(Ok(ip)) => Ok(ip.to_string()),
            _ if inner.contains("]:") => Err(format!(
                "`{h}` contains a port; put it in the route's `port:` key"
            )),
            _ => Err(format!("`{h}` is not a valid IPv6 address")),
        };
    }
    if let Ok(ip) = h.parse::<Ipv6Addr>() {
        return Ok(ip.to_string());
    }
    if h.contains(':') {
        return Err(format!(
            "`{h}` contains a port; put it in the route's `port:` key (1-65535)"
        ));
    }
    let lower = h.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Ok(ip.to_string());
    }
    let labels_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !labels_ok {
        return Err(format!(
            "`{h}` is not a valid host name (letters, digits, `-`, `_` and dots) or IP address"
        ));
    }
    Ok(name.to_string())
}

fn auth(cx: Cx, node: &Node, prefix: &str) -> Result<DeclaredAuth, ManifestError> {
    let entries = map(cx, node, prefix)?;
    check_keys(cx, entries, prefix, AUTH_KEYS, &|_| None)?;
    let (mut scheme, mut token_ref) = (None, None);
    for (key, _, value) in entries {
        let k = join(prefix, key);
        match key.as_str() {
            "scheme" => {
                let s = non_empty(cx, value, &k)?;
                scheme = Some(match s.to_ascii_lowercase().as_str() {
                    "bearer" => AuthScheme::Bearer,
                    "token" => AuthScheme::Token,
                    _ => {
                        return Err(cx.invalid(
                            value.line,
                            &k,
                            format!("`{s}` is not allowed; allowed: Bearer, token"),
                        ))
                    }
                });
            }
            "token_ref" => {
                let r = non_empty(cx, value, &k)?;
                if !is_env_name(&r) {
                    // A pasted token is the usual mistake here: never echo it.
                    return Err(cx.invalid(
                        value.line,
                        &k,
                        format!("must name the host variable holding the token (matching {ENV_NAME_RULE}), not the token itself"),
                    ));
                }
                token_ref = Some(r);
            }
            _ => unreachable!("check_keys allowed {key}"),
        }
    }
    let missing = |what: &str| {
        cx.invalid(
            node.line,
            &join(prefix, what),
            "is required; auth is {scheme: Bearer|token, token_ref: HOST_VAR}",
        )
    };
    Ok(DeclaredAuth {
        scheme: scheme.ok_or_else(|| missing("scheme"))?,
        token_ref: token_ref.ok_or_else(|| missing("token_ref"))?,
    })
}

fn check_regex(cx: Cx, node: &Node, key: &str, pattern: &str) -> Result<(), ManifestError> {
    // The proxy anchors patterns, so validate the anchored form it compiles.
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
        .map(|_| ())
        .map_err(|e| {
            let detail = match e {
                regex::Error::Syntax(s) => s.lines().last().unwrap_or("").trim().to_string(),
                regex::Error::CompiledTooBig(_) => "pattern is too large".into(),
                _ => "invalid pattern".into(),
            };
            cx.invalid(
                node.line,
                key,
                format!("invalid regular expression: {detail}"),
            )
        })
}

fn route_match(cx: Cx, node: &Node, prefix: &str) -> Result<RouteMatch, ManifestError> {
    let entries = map(cx, node, prefix)?;
    check_keys(cx, entries, prefix, MATCH_KEYS, &|_| None)?;
    let mut m = RouteMatch::default();
    for (key, _, value) in entries {
        let k = join(prefix, key);
        match key.as_str() {
            "paths" => {
                for (i, item) in seq(cx, value, &k)?.iter().enumerate() {
                    m.paths.push(path_match(cx, item, &format!("{k}[{i}]"))?);
                }
            }
            "methods" => {
                for (i, item) in seq(cx, value, &k)?.iter().enumerate() {
                    let mk = format!("{k}[{i}]");
                    let method = non_empty(cx, item, &mk)?.to_ascii_uppercase();
                    if !HTTP_METHODS.contains(&method.as_str()) {
                        return Err(cx.invalid(
                            item.line,
                            &mk,
                            format!(
                                "`{method}` is not an HTTP method; allowed (any case): {}",
                                quoted_list(HTTP_METHODS)
                            ),
                        ));
                    }
                    if !m.methods.contains(&method) {
                        m.methods.push(method);
                    }
                }
            }
            "headers" => {
                for (i, item) in seq(cx, value, &k)?.iter().enumerate() {
                    m.headers
                        .push(header_match(cx, item, &format!("{k}[{i}]"))?);
                }
            }
            _ => unreachable!("check_keys allowed {key}"),
        }
    }
    if m.paths.is_empty() && m.methods.is_empty() && m.headers.is_empty() {
        return Err(cx.invalid(
            node.line,
            prefix,
            "an empty match would allow every request; give at least one of paths, methods, headers (or leave `matches` out)",
        ));
    }
    Ok(m)
}

fn path_match(cx: Cx, node: &Node, prefix: &str) -> Result<PathMatch, ManifestError> {
    let entries = map(cx, node, prefix)?;
    check_keys(cx, entries, prefix, PATH_KEYS, &|_| None)?;
    // Gateway API's default path match type is a prefix.
    let mut kind = PathMatchType::Prefix;
    let mut value = None;
    for (key, _, v) in entries {
        let k = join(prefix, key);
        match key.as_str() {
            "type" => {
                let t = non_empty(cx, v, &k)?;
                kind = match t.as_str() {
                    "exact" => PathMatchType::Exact,
                    "prefix" => PathMatchType::Prefix,
                    "regex" => PathMatchType::Regex,
                    _ => {
                        return Err(cx.invalid(
                            v.line,
                            &k,
                            format!("`{t}` is not allowed; allowed: exact, prefix, regex"),
                        ))
                    }
                };
            }
            "value" => value = Some((non_empty(cx, v, &k)?, v)),
            _ => unreachable!("check_keys allowed {key}"),
        }
    }
    let Some((value, vnode)) = value else {
        return Err(cx.invalid(
            node.line,
            &join(prefix, "value"),
            "is required; a path is {type: exact|prefix|regex, value}",
        ));
    };
    let vkey = join(prefix, "value");
    match kind {
        PathMatchType::Regex => check_regex(cx, vnode, &vkey, &value)?,
        _ if !value.starts_with('/') => {
            return Err(cx.invalid(
                vnode.line,
                &vkey,
                format!("`{value}` must start with `/` (a request path)"),
            ))
        }
        _ => {}
    }
    Ok(PathMatch { kind, value })
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

fn header_match(cx: Cx, node: &Node, prefix: &str) -> Result<HeaderMatch, ManifestError> {
    let entries = map(cx, node, prefix)?;
    check_keys(cx, entries, prefix, HEADER_KEYS, &|_| None)?;
    let (mut name, mut value, mut kind) = (None, None, HeaderMatchType::Exact);
    for (key, _, v) in entries {
        let k = join(prefix, key);
        match key.as_str() {
            "name" => {
                let n = non_empty(cx, v, &k)?;
                if !is_token(&n) {
                    return Err(cx.invalid(
                        v.line,
                        &k,
                        format!("`{n}` is not a header name (letters, digits and !#$%&'*+-.^_`|~)"),
                    ));
                }
                name = Some(n);
            }
            "value" => value = Some((string(cx, v, &k)?, v)),
            "type" => {
                let t = non_empty(cx, v, &k)?;
                kind = match t.as_str() {
                    "exact" => HeaderMatchType::Exact,
                    "regex" => HeaderMatchType::Regex,
                    _ => {
                        return Err(cx.invalid(
                            v.line,
                            &k,
                            format!("`{t}` is not allowed; allowed: exact, regex"),
                        ))
                    }
                };
            }
            _ => unreachable!("check_keys allowed {key}"),
        }
    }
    let missing = |what: &str| {
        cx.invalid(
            node.line,
            &join(prefix, what),
            "is required; a header is {name, value, type?: exact|regex}",
        )
    };
    let name = name.ok_or_else(|| missing("name"))?;
    let (value, vnode) = value.ok_or_else(|| missing("value"))?;
    if kind == HeaderMatchType::Regex {
        check_regex(cx, vnode, &join(prefix, "value"), &value)?;
    }
    Ok(HeaderMatch { name, value, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host("API.Example.COM").unwrap(), "api.example.com");
        assert_eq!(host("example.com.").unwrap(), "example.com");
        assert_eq!(host("10.0.0.1").unwrap(), "10.0.0.1");
        assert_eq!(host("[::1]").unwrap(), "::1");
        assert_eq!(host("FE80::1").unwrap(), "fe80::1");
        assert!(host("https://x.com").unwrap_err().contains("scheme"));
        assert!(host("x.com/api").unwrap_err().contains("path"));
        assert!(host("x.com:8443").unwrap_err().contains("port"));
        assert!(host("[::1]:8443").unwrap_err().contains("port"));
        assert!(host("a.com b.com").unwrap_err().contains("one host"));
        assert!(host("*.x.com").unwrap_err().contains("wildcard"));
        assert!(host("u@x.com").unwrap_err().contains("user info"));
        assert!(host("-x.com").is_err() && host("a..b").is_err() && host("ä.com").is_err());
    }

    #[test]
    fn tokens() {
        assert!(is_token("X-Api-Key") && !is_token("a b") && !is_token(""));
    }
}
