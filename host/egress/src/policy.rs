//! The compiled policy: routes with their matchers and resolved credentials.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use bot_bottle_sdk::{EgressPolicy, EgressRoute, HeaderMatchType, PathMatchType, Secret};
use http::{HeaderMap, HeaderValue, Method};
use regex::Regex;

use crate::error::EgressError;
use crate::target::{normalize_host, Scheme, Target};

/// A path condition ready to evaluate.
#[derive(Debug)]
enum PathCond {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

/// A header condition ready to evaluate.
#[derive(Debug)]
struct HeaderCond {
    name: http::HeaderName,
    value: HeaderCondValue,
}

#[derive(Debug)]
enum HeaderCondValue {
    Exact(String),
    Regex(Regex),
}

/// One `RouteMatch`, compiled.
#[derive(Debug, Default)]
struct MatchCond {
    paths: Vec<PathCond>,
    methods: Vec<Method>,
    headers: Vec<HeaderCond>,
}

impl MatchCond {
    fn allows(&self, method: &Method, path: &str, headers: &HeaderMap) -> bool {
        let path_ok = self.paths.is_empty()
            || self.paths.iter().any(|p| match p {
                PathCond::Exact(v) => path == v,
                PathCond::Prefix(v) => path.starts_with(v.as_str()),
                PathCond::Regex(r) => r.is_match(path),
            });
        let method_ok = self.methods.is_empty() || self.methods.iter().any(|m| m == method);
        let headers_ok = self.headers.iter().all(|h| {
            let mut values = headers.get_all(&h.name).iter();
            values.any(|v| {
                let Ok(v) = v.to_str() else { return false };
                match &h.value {
                    HeaderCondValue::Exact(e) => v == e,
                    HeaderCondValue::Regex(r) => r.is_match(v),
                }
            })
        });
        path_ok && method_ok && headers_ok
    }
}

/// A route as the proxy enforces it.
pub struct Route {
    /// The declared route (no secret in it).
    pub spec: EgressRoute,
    /// Normalised host (lower case, IP literals canonical).
    pub host: String,
    matches: Vec<MatchCond>,
    /// The ready `Authorization` value, marked sensitive.
    auth_header: Option<HeaderValue>,
    /// Kept so the value is zeroed when the policy is dropped.
    _secret: Option<Secret>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("host", &self.host)
            .field("port", &self.spec.port)
            .field("injects", &self.auth_header.is_some())
            .finish_non_exhaustive()
    }
}

impl Route {
    /// Whether this route covers a target's host and port.
    pub fn covers(&self, target: &Target) -> bool {
        self.host == target.host
            && match self.spec.port {
                Some(p) => p == target.port,
                None => target.port == target.scheme.default_port(),
            }
    }

    /// Whether a request passes the route's `matches` (empty = everything).
    pub fn allows(&self, method: &Method, path: &str, headers: &HeaderMap) -> bool {
        self.matches.is_empty() || self.matches.iter().any(|m| m.allows(method, path, headers))
    }

    /// Whether [`Route::allows`] reads request headers (some `matches`
    /// entry has header conditions); when not, an empty map may be passed.
    pub fn needs_headers(&self) -> bool {
        self.matches.iter().any(|m| !m.headers.is_empty())
    }

    /// The `Authorization` value to inject, if the route has `auth`.
    pub fn auth_header(&self) -> Option<&HeaderValue> {
        self.auth_header.as_ref()
    }
}

/// The policy with secrets resolved and patterns compiled.
#[derive(Debug)]
pub struct Policy {
    /// 0 off, 1 blocks and warnings, 2 every request.
    pub log: u8,
    /// Routes in policy order.
    pub routes: Vec<Route>,
    /// Extra upstream trust roots (PEM).
    pub extra_roots_pem: Vec<String>,
    /// Test-only name overrides.
    pub resolve_overrides: BTreeMap<String, IpAddr>,
    /// The policy as read, for `/allowlist`.
    pub raw: EgressPolicy,
}

impl Policy {
    /// Reads a policy file and resolves slots with `lookup` (the environment).
    pub fn load(
        path: &Path,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Policy, EgressError> {
        let text = std::fs::read_to_string(path).map_err(|source| EgressError::PolicyRead {
            path: path.to_owned(),
            source,
        })?;
        let raw: EgressPolicy =
            serde_json::from_str(&text).map_err(|source| EgressError::PolicyParse {
                path: path.to_owned(),
                source,
            })?;
        Policy::compile(raw, lookup)
    }

    /// Compiles a parsed policy; `lookup` gives slot values.
    pub fn compile(
        raw: EgressPolicy,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Policy, EgressError> {
        if raw.version != 1 {
            return Err(EgressError::Policy(format!(
                "version {} is not supported (this proxy reads version 1)",
                raw.version
            )));
        }
        if raw.log > 2 {
            return Err(EgressError::Policy(format!(
                "log level {} is not one of 0, 1, 2",
                raw.log
            )));
        }
        let mut routes = Vec::with_capacity(raw.routes.len());
        for spec in &raw.routes {
            routes.push(compile_route(spec, &lookup)?);
        }
        let mut resolve_overrides = BTreeMap::new();
        for (host, ip) in &raw.resolve_overrides {
            let parsed: IpAddr = ip.parse().map_err(|_| {
                EgressError::Policy(format!(
                    "resolve_overrides: `{ip}` (for host `{host}`) is not an IP address"
                ))
            })?;
            let h = normalize_host(host).ok_or_else(|| {
                EgressError::Policy(format!(
                    "resolve_overrides: `{host}` is not a valid host name"
                ))
            })?;
            resolve_overrides.insert(h, parsed);
        }
        for (i, pem) in raw.extra_roots_pem.iter().enumerate() {
            let n = crate::tls::parse_certs(pem)
                .map_err(|e| EgressError::Policy(format!("extra_roots_pem[{i}]: {e}")))?
                .len();
            if n == 0 {
                return Err(EgressError::Policy(format!(
                    "extra_roots_pem[{i}] holds no PEM certificate"
                )));
            }
        }
        Ok(Policy {
            log: raw.log,
            routes,
            extra_roots_pem: raw.extra_roots_pem.clone(),
            resolve_overrides,
            raw,
        })
    }

    /// The route covering a target, if any.
    pub fn route_for(&self, target: &Target) -> Option<&Route> {
        self.routes.iter().find(|r| r.covers(target))
    }

    /// Whether some route names this host at all (any port), for error text.
    pub fn has_host(&self, host: &str) -> bool {
        self.routes.iter().any(|r| r.host == host)
    }

    /// The route table served at `http://_egress.local/allowlist`: no values.
    pub fn allowlist_json(&self) -> serde_json::Value {
        let routes: Vec<serde_json::Value> = self
            .routes
            .iter()
            .map(|r| {
                let port = r.spec.port;
                let schemes: Vec<&str> = match port {
                    None => vec!["http (port 80)", "https (port 443)"],
                    Some(_) => vec!["http", "https"],
                };
                serde_json::json!({
                    "host": r.host,
                    "port": port,
                    "schemes": schemes,
                    "auth": r.spec.auth.as_ref().map(|a| serde_json::json!({
                        "scheme": a.scheme.header_prefix(),
                        "injected": true,
                    })),
                    "matches": r.spec.matches,
                    "allow_private": r.spec.allow_private,
                })
            })
            .collect();
        serde_json::json!({ "routes": routes, "default": "deny" })
    }

    /// Scheme-less check used by the connector: does any route for this host
    /// and port allow private addresses?
    pub fn allow_private(&self, host: &str, port: u16, scheme: Scheme) -> bool {
        let t = Target {
            scheme,
            host: host.to_owned(),
            port,
        };
        self.route_for(&t).is_some_and(|r| r.spec.allow_private)
    }
}

fn compile_route(
    spec: &EgressRoute,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Route, EgressError> {
    let host = normalize_host(&spec.host).ok_or_else(|| {
        EgressError::Policy(format!(
            "route host `{}` is not a valid host name or IP address",
            spec.host
        ))
    })?;
    if host == crate::MAGIC_HOST {
        return Err(EgressError::Policy(format!(
            "route host `{host}` is reserved for the proxy's own introspection"
        )));
    }
    if spec.port == Some(0) {
        return Err(EgressError::Policy(format!(
            "route `{host}`: port 0 is not allowed"
        )));
    }
    let mut matches = Vec::with_capacity(spec.matches.len());
    for (i, m) in spec.matches.iter().enumerate() {
        let mut c = MatchCond::default();
        for p in &m.paths {
            c.paths.push(match p.kind {
                PathMatchType::Exact => PathCond::Exact(p.value.clone()),
                PathMatchType::Prefix => PathCond::Prefix(p.value.clone()),
                PathMatchType::Regex => PathCond::Regex(anchored(&p.value).map_err(|e| {
                    EgressError::Policy(format!(
                        "route `{host}` matches[{i}]: path regex `{}` is invalid: {e}",
                        p.value
                    ))
                })?),
            });
        }
        for meth in &m.methods {
            let parsed =
                Method::from_bytes(meth.to_ascii_uppercase().as_bytes()).map_err(|_| {
                    EgressError::Policy(format!(
                        "route `{host}` matches[{i}]: `{meth}` is not an HTTP method"
                    ))
                })?;
            c.methods.push(parsed);
        }
        for h in &m.headers {
            let name = http::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
                EgressError::Policy(format!(
                    "route `{host}` matches[{i}]: `{}` is not a header name",
                    h.name
                ))
            })?;
            let value = match h.kind {
                HeaderMatchType::Exact => HeaderCondValue::Exact(h.value.clone()),
                HeaderMatchType::Regex => {
                    HeaderCondValue::Regex(anchored(&h.value).map_err(|e| {
                        EgressError::Policy(format!(
                            "route `{host}` matches[{i}]: header regex `{}` is invalid: {e}",
                            h.value
                        ))
                    })?)
                }
            };
            c.headers.push(HeaderCond { name, value });
        }
        matches.push(c);
    }
    let (auth_header, secret) = match &spec.auth {
        None => (None, None),
        Some(auth) => {
            let slot = &auth.token_env;
            let value = lookup(slot)
                .filter(|v| !v.is_empty())
                .map(Secret::new)
                .ok_or_else(|| EgressError::MissingSlot {
                    slot: slot.clone(),
                    host: host.clone(),
                })?;
            let mut hv = HeaderValue::from_str(&format!(
                "{} {}",
                auth.scheme.header_prefix(),
                value.expose()
            ))
            .map_err(|_| EgressError::BadSlotValue {
                slot: slot.clone(),
                host: host.clone(),
            })?;
            hv.set_sensitive(true);
            (Some(hv), Some(value))
        }
    };
    Ok(Route {
        spec: spec.clone(),
        host,
        matches,
        auth_header,
        _secret: secret,
    })
}

fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}
