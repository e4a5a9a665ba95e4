//! Egress routes, the egress plan and the policy the egress proxy reads.
//!
//! Nothing in this module ever holds a secret value: routes name a token
//! *reference* (a host variable, or a provider-owned ref) while they are being
//! planned, and an `EGRESS_TOKEN_<N>` *slot* once planned. The values travel
//! separately, as a [`SecretMap`](crate::SecretMap).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How an injected credential is written into the `Authorization` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuthScheme {
    /// `Authorization: Bearer <value>`
    Bearer,
    /// `Authorization: token <value>` (Gitea, GitHub classic tokens)
    #[serde(rename = "token")]
    Token,
}

impl AuthScheme {
    /// The word written before the value in the header.
    pub fn header_prefix(self) -> &'static str {
        match self {
            AuthScheme::Bearer => "Bearer",
            AuthScheme::Token => "token",
        }
    }
}

/// How a request path is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathMatchType {
    /// The whole path equals the value.
    Exact,
    /// The path starts with the value.
    Prefix,
    /// The whole path matches the regular expression (anchored).
    Regex,
}

/// One path condition of a [`RouteMatch`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PathMatch {
    /// How `value` is compared.
    #[serde(rename = "type")]
    pub kind: PathMatchType,
    /// The path, prefix or pattern.
    pub value: String,
}

/// How a header value is compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderMatchType {
    /// The value equals exactly.
    #[default]
    Exact,
    /// The whole value matches the regular expression (anchored).
    Regex,
}

/// One header condition of a [`RouteMatch`]. Header names compare
/// case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HeaderMatch {
    /// Header name.
    pub name: String,
    /// Expected value or pattern.
    pub value: String,
    /// How `value` is compared.
    #[serde(rename = "type", default)]
    pub kind: HeaderMatchType,
}

/// A request filter in the Kubernetes Gateway API HTTPRoute vocabulary.
///
/// Within one `RouteMatch` every non-empty field must match (AND); within a
/// field, `paths` and `methods` match if any entry does, `headers` only if
/// all do. A route's list of matches is OR-ed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouteMatch {
    /// Path conditions (any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathMatch>,
    /// Upper-case HTTP methods (any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Header conditions (all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
}

/// Credential injection as declared: names a token *reference*.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeclaredAuth {
    /// Header scheme.
    pub scheme: AuthScheme,
    /// A host variable name, or a provider-owned ref such as the Codex
    /// host-credential ref.
    pub token_ref: String,
}

/// Where a route came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum RouteOrigin {
    /// Declared in the bottle manifest.
    #[default]
    Manifest,
    /// Added by the named agent provider; it owns its host.
    Provider(String),
}

/// A route as declared by a manifest or an agent provider.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouteSpec {
    /// Host name (lower case) or IP literal; one per route.
    pub host: String,
    /// Port; `None` means 80 for plain HTTP and 443 for HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Credential to inject, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<DeclaredAuth>,
    /// Request filters; empty means every request to the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RouteMatch>,
    /// Let this host resolve to loopback, private, link-local or CGNAT
    /// addresses (a private registry). Off by default.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_private: bool,
    /// Where the route came from.
    #[serde(default)]
    pub origin: RouteOrigin,
}

/// Credential injection once planned: names the slot the value is in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SlotAuth {
    /// Header scheme.
    pub scheme: AuthScheme,
    /// The egress-side variable holding the value, `EGRESS_TOKEN_<N>`.
    pub token_env: String,
}

/// A planned route: what the egress proxy enforces.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EgressRoute {
    /// Host name (lower case) or IP literal.
    pub host: String,
    /// Port; `None` means the scheme's default port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Credential slot to inject, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SlotAuth>,
    /// Request filters; empty means every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RouteMatch>,
    /// See [`RouteSpec::allow_private`].
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_private: bool,
    /// Where the route came from.
    #[serde(default)]
    pub origin: RouteOrigin,
}

/// Routes plus the map from egress slot to token reference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressPlan {
    /// Planned routes, provider routes first.
    pub routes: Vec<EgressRoute>,
    /// `EGRESS_TOKEN_<N>` → token reference, one slot per distinct ref.
    pub token_env_map: BTreeMap<String, String>,
}

/// The file the `bot-bottle-egress` proxy reads: routes and settings, never a
/// secret value. The default denies everything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressPolicy {
    /// Format version; this SDK writes 1.
    #[serde(default = "policy_version")]
    pub version: u32,
    /// 0 = no log, 1 = blocks and warnings, 2 = every request.
    #[serde(default)]
    pub log: u8,
    /// Allowed routes; everything else is refused.
    #[serde(default)]
    pub routes: Vec<EgressRoute>,
    /// Extra PEM trust roots for upstream TLS (private CAs and tests).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_roots_pem: Vec<String>,
    /// Test-only name overrides (`host` → IP), like `curl --resolve`. Never
    /// produced from a manifest; the proxy logs a warning when it is set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resolve_overrides: BTreeMap<String, String>,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        EgressPolicy::from_plan(&EgressPlan::default(), 0)
    }
}

impl EgressPolicy {
    /// The policy for a plan at a log level.
    pub fn from_plan(plan: &EgressPlan, log: u8) -> Self {
        EgressPolicy {
            version: policy_version(),
            log,
            routes: plan.routes.clone(),
            extra_roots_pem: Vec::new(),
            resolve_overrides: BTreeMap::new(),
        }
    }

    /// The slot names the routes inject, without duplicates.
    pub fn token_slots(&self) -> Vec<&str> {
        let mut slots: Vec<&str> = self
            .routes
            .iter()
            .filter_map(|r| r.auth.as_ref().map(|a| a.token_env.as_str()))
            .collect();
        slots.sort_unstable();
        slots.dedup();
        slots
    }
}

fn policy_version() -> u32 {
    1
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The environment that points an agent at its bottle's egress proxy and
/// makes it trust the bottle's CA: the proxy variables in both cases (some
/// tools read only one), `NO_PROXY` for loopback, the CA *bundle* (system
/// roots plus the bottle's CA) for OpenSSL, curl, Python, git and Codex, and
/// the CA certificate alone for Node, which appends it to its own roots.
///
/// Every backend sets exactly these, so agents behave the same on each.
pub fn agent_proxy_env(
    proxy_url: &str,
    ca_bundle_path: &str,
    ca_cert_path: &str,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for k in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        env.insert(k.to_string(), proxy_url.to_string());
    }
    for k in ["NO_PROXY", "no_proxy"] {
        env.insert(k.to_string(), "localhost,127.0.0.1,::1".to_string());
    }
    for k in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "CODEX_CA_CERTIFICATE",
        "GIT_SSL_CAINFO",
    ] {
        env.insert(k.to_string(), ca_bundle_path.to_string());
    }
    env.insert("NODE_EXTRA_CA_CERTS".to_string(), ca_cert_path.to_string());
    env
}

/// The name of the `N`th egress slot.
pub fn token_slot_name(n: usize) -> String {
    format!("EGRESS_TOKEN_{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_is_a_current_version_that_denies_everything() {
        let p = EgressPolicy::default();
        assert_eq!(p.version, 1);
        assert!(p.routes.is_empty());
        let text = serde_json::to_string(&p).unwrap();
        let back: EgressPolicy = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p);
    }
}
