//! The policy decision for one request: a policy of arbitrary routes
//! (hosts, ports, path/method/header matches, regexes) is compiled, and an
//! arbitrary request (method, request-target, `Host`, headers) is decided the
//! way the proxy decides it: CONNECT authority or absolute-form URI →
//! `Target`, `Host` agreement, `Policy::route_for`, then `Route::allows`.
//!
//! Invariants besides never panicking:
//! - a request whose host matches no route's host is never allowed;
//! - an allowed request's route has the target's host and covers its port;
//! - a compiled route's host is a fixed point of `normalize_host`;
//! - a route without `matches` allows every request that reaches it;
//! - the request decided with its host written differently (upper case,
//!   trailing dot) gets the same decision.
//!
//! The glue (`absolute_target`, `host_agrees`) is private to `proxy.rs`, so
//! it is restated here from the public parts; the parts that decide
//! (`parse_authority`, `route_for`, `covers`, `allows`, `has_dot_segment`)
//! are the proxy's own.
#![no_main]

use arbitrary::Arbitrary;
use bot_bottle_egress::policy::Policy;
use bot_bottle_egress::proxy::has_dot_segment;
use bot_bottle_egress::target::{normalize_host, parse_authority, Scheme, Target};
use bot_bottle_sdk::{
    AuthScheme, EgressPolicy, EgressRoute, HeaderMatch, HeaderMatchType, PathMatch, PathMatchType,
    RouteMatch, RouteOrigin, SlotAuth,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;

/// Hosts drawn from a small set so routes and requests meet often.
const HOSTS: &[&str] = &[
    "api.example.com",
    "API.Example.COM.",
    "git.example.com",
    "127.0.0.1",
    "[::1]",
    "::1",
    "xn--bcher-kva.example",
    "a_b.example",
    "_egress.local",
    "127.1",
];

const METHODS: &[&str] = &[
    "GET", "get", "POST", "PUT", "DELETE", "CONNECT", "PATCH", "HEAD",
];

#[derive(Arbitrary, Debug)]
enum Text {
    Pick(u8),
    Free(String),
}

impl Text {
    fn get(&self, set: &[&str]) -> String {
        match self {
            Text::Pick(i) => set[*i as usize % set.len()].to_string(),
            Text::Free(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct FRoute {
    host: Text,
    port: Option<u16>,
    auth: Option<bool>,
    matches: Vec<FMatch>,
    allow_private: bool,
}

#[derive(Arbitrary, Debug)]
struct FMatch {
    paths: Vec<(u8, String)>,
    methods: Vec<Text>,
    headers: Vec<(String, String, bool)>,
}

#[derive(Arbitrary, Debug)]
enum FTarget {
    /// `CONNECT host:port`.
    Connect(Text, Option<u16>),
    /// `scheme://host[:port]path`, assembled.
    Absolute {
        https: bool,
        host: Text,
        port: Option<u16>,
        path: String,
    },
    /// A raw request-target as hyper would hand it to `http::Uri`.
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum FHost {
    None,
    SameAsTarget,
    Other(Text, Option<u16>),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    routes: Vec<FRoute>,
    method: Text,
    target: FTarget,
    host: FHost,
    headers: Vec<(String, Vec<u8>)>,
}

fn slot(name: &str) -> Option<String> {
    (name == "EGRESS_TOKEN_1").then(|| "fuzz-token".to_string())
}

fn build_policy(input: &Input) -> EgressPolicy {
    let routes = input
        .routes
        .iter()
        .take(6)
        .map(|r| EgressRoute {
            host: r.host.get(HOSTS),
            port: r.port,
            auth: r.auth.map(|known| SlotAuth {
                scheme: if known {
                    AuthScheme::Bearer
                } else {
                    AuthScheme::Token
                },
                token_env: if known {
                    "EGRESS_TOKEN_1"
                } else {
                    "EGRESS_TOKEN_9"
                }
                .into(),
            }),
            matches: r
                .matches
                .iter()
                .take(4)
                .map(|m| RouteMatch {
                    paths: m
                        .paths
                        .iter()
                        .take(4)
                        .map(|(k, v)| PathMatch {
                            kind: match k % 3 {
                                0 => PathMatchType::Exact,
                                1 => PathMatchType::Prefix,
                                _ => PathMatchType::Regex,
                            },
                            value: v.chars().take(64).collect(),
                        })
                        .collect(),
                    methods: m.methods.iter().take(4).map(|t| t.get(METHODS)).collect(),
                    headers: m
                        .headers
                        .iter()
                        .take(4)
                        .map(|(n, v, re)| HeaderMatch {
                            name: n.clone(),
                            value: v.chars().take(64).collect(),
                            kind: if *re {
                                HeaderMatchType::Regex
                            } else {
                                HeaderMatchType::Exact
                            },
                        })
                        .collect(),
                })
                .collect(),
            allow_private: r.allow_private,
            origin: RouteOrigin::Manifest,
        })
        .collect();
    EgressPolicy {
        version: 1,
        log: 0,
        routes,
        ..EgressPolicy::default()
    }
}

fn authority(host: &str, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// The request as the proxy sees it after hyper parsed the head.
struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

fn build_request(input: &Input) -> Option<Request> {
    let method = Method::from_bytes(input.method.get(METHODS).as_bytes()).ok()?;
    let (method, target) = match &input.target {
        FTarget::Connect(h, p) => (Method::CONNECT, authority(&h.get(HOSTS), *p)),
        FTarget::Absolute {
            https,
            host,
            port,
            path,
        } => {
            let scheme = if *https { "https" } else { "http" };
            let path = if path.starts_with('/') {
                path.clone()
            } else {
                format!("/{path}")
            };
            (
                method,
                format!("{scheme}://{}{path}", authority(&host.get(HOSTS), *port)),
            )
        }
        FTarget::Raw(s) => (method, s.clone()),
    };
    let uri: Uri = target.parse().ok()?;
    let mut headers = HeaderMap::new();
    let host_value: Option<Vec<u8>> = match &input.host {
        FHost::None => None,
        FHost::SameAsTarget => uri.authority().map(|a| a.as_str().as_bytes().to_vec()),
        FHost::Other(h, p) => Some(authority(&h.get(HOSTS), *p).into_bytes()),
        FHost::Raw(b) => Some(b.clone()),
    };
    if let Some(v) = host_value {
        headers.append(http::header::HOST, HeaderValue::from_bytes(&v).ok()?);
    }
    for (n, v) in input.headers.iter().take(8) {
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_bytes(v),
        ) else {
            continue;
        };
        if n == http::header::HOST {
            continue;
        }
        headers.append(n, v);
    }
    Some(Request {
        method,
        uri,
        headers,
    })
}

/// What the proxy does with the request, outside a tunnel.
#[derive(Debug, PartialEq)]
enum Decision {
    /// Refused before a target was known (bad request-target, origin form).
    BadRequest,
    /// Refused for this target (Host disagrees, no route, dot segment, matches).
    Denied(Target),
    /// Allowed to this target through the route with this index.
    Allowed(Target, usize),
}

/// Mirrors `proxy::handle_inner`, `proxy::connect` and `proxy::forward`.
fn decide(policy: &Policy, req: &Request) -> Decision {
    let target = if req.method == Method::CONNECT {
        let Some(auth) = req.uri.authority() else {
            return Decision::BadRequest;
        };
        let Some((host, port)) = parse_authority(auth.as_str(), None) else {
            return Decision::BadRequest;
        };
        Target {
            scheme: Scheme::Https,
            host,
            port,
        }
    } else {
        let Some(auth) = req.uri.authority() else {
            return Decision::BadRequest;
        };
        let scheme = match req.uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => return Decision::BadRequest,
        };
        let Some((host, port)) = parse_authority(auth.as_str(), Some(scheme.default_port())) else {
            return Decision::BadRequest;
        };
        Target { scheme, host, port }
    };
    if let Some(v) = req.headers.get(http::header::HOST) {
        let agrees = v
            .to_str()
            .ok()
            .and_then(|s| parse_authority(s, Some(target.scheme.default_port())))
            == Some((target.host.clone(), target.port));
        if !agrees {
            return Decision::Denied(target);
        }
    }
    let Some(route) = policy.route_for(&target) else {
        return Decision::Denied(target);
    };
    if req.method == Method::CONNECT {
        // The tunnel opens here; requests inside are decided per request.
        let idx = index_of(policy, route);
        return Decision::Allowed(target, idx);
    }
    let path = req.uri.path();
    if has_dot_segment(path) || !route.allows(&req.method, path, &req.headers) {
        return Decision::Denied(target);
    }
    let idx = index_of(policy, route);
    Decision::Allowed(target, idx)
}

fn index_of(policy: &Policy, route: &bot_bottle_egress::policy::Route) -> usize {
    policy
        .routes
        .iter()
        .position(|r| std::ptr::eq(r, route))
        .expect("route_for returns one of the policy's routes")
}

fuzz_target!(|input: Input| {
    let raw = build_policy(&input);
    let Ok(policy) = Policy::compile(raw, slot) else {
        return;
    };
    let _ = policy.allowlist_json();
    for r in &policy.routes {
        assert_eq!(
            normalize_host(&r.host).as_deref(),
            Some(r.host.as_str()),
            "route host {:?} is not normalised",
            r.host
        );
        assert_ne!(
            r.host, "_egress.local",
            "the magic host compiled as a route"
        );
        let _ = format!("{r:?}");
    }
    let Some(req) = build_request(&input) else {
        return;
    };
    let decision = decide(&policy, &req);
    match &decision {
        Decision::BadRequest => {}
        Decision::Denied(t) => {
            assert_eq!(normalize_host(&t.host).as_deref(), Some(t.host.as_str()));
        }
        Decision::Allowed(t, idx) => {
            let route = &policy.routes[*idx];
            assert!(
                policy.routes.iter().any(|r| r.host == t.host),
                "allowed {t} with no route for its host"
            );
            assert_eq!(route.host, t.host, "allowed {t} through route {route:?}");
            assert!(route.covers(t), "allowed {t} through route {route:?}");
            match route.spec.port {
                Some(p) => assert_eq!(p, t.port),
                None => assert_eq!(t.port, t.scheme.default_port()),
            }
            assert!(
                route.auth_header().is_none()
                    || route.spec.auth.as_ref().map(|a| a.token_env.as_str())
                        == Some("EGRESS_TOKEN_1")
            );
        }
    }
    if !policy
        .routes
        .iter()
        .any(|r| r.host == decision_host(&decision))
    {
        assert!(
            !matches!(decision, Decision::Allowed(..)),
            "a host with no route was allowed: {decision:?}"
        );
    }

    // A route without matches lets every request that reaches it through.
    if let Decision::Denied(t) = &decision {
        if let Some(route) = policy.route_for(t) {
            if route.spec.matches.is_empty() && req.method != Method::CONNECT {
                let path = req.uri.path();
                assert!(route.allows(&req.method, path, &req.headers));
            }
        }
    }

    // The same request with its host spelled differently decides the same.
    if let Some(variant) = respelled(&req) {
        let again = decide(&policy, &variant);
        assert_eq!(
            decision_kind(&decision),
            decision_kind(&again),
            "{} and {} decided differently",
            req.uri,
            variant.uri
        );
    }
});

fn decision_host(d: &Decision) -> &str {
    match d {
        Decision::BadRequest => "",
        Decision::Denied(t) | Decision::Allowed(t, _) => &t.host,
    }
}

fn decision_kind(d: &Decision) -> Option<(bool, Target)> {
    match d {
        Decision::BadRequest => None,
        Decision::Denied(t) => Some((false, t.clone())),
        Decision::Allowed(t, _) => Some((true, t.clone())),
    }
}

/// The request with the URI's and `Host`'s host in upper case and with a
/// trailing dot (names only, not IP literals).
fn respelled(req: &Request) -> Option<Request> {
    let auth = req.uri.authority()?;
    let host = auth.host();
    if auth.as_str().contains('@')
        || host.is_empty()
        || host.ends_with('.')
        || host.starts_with('[')
        || host.parse::<std::net::IpAddr>().is_ok()
    {
        return None;
    }
    let new_host = format!("{}.", host.to_ascii_uppercase());
    // Keep whatever follows the host as written (an empty port `a:` too).
    let new_auth = format!("{new_host}{}", &auth.as_str()[host.len()..]);
    let uri: Uri = if req.method == Method::CONNECT {
        new_auth.parse().ok()?
    } else {
        let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        format!("{}://{new_auth}{pq}", req.uri.scheme_str()?)
            .parse()
            .ok()?
    };
    let mut headers = req.headers.clone();
    if let Some(h) = headers.get(http::header::HOST) {
        if h.as_bytes() == auth.as_str().as_bytes() {
            headers.insert(http::header::HOST, HeaderValue::from_str(&new_auth).ok()?);
        }
    }
    Some(Request {
        method: req.method.clone(),
        uri,
        headers,
    })
}
