//! Credential resolution: the one place token values are looked up.
//!
//! ```text
//! effective_env = host_env ∪ provisioned_env      (provisioned wins)
//! token_values  = egress_resolve_token_values(token_env_map, effective_env)
//! ```
//!
//! The resolver is generic: it knows no provider and no sentinel ref. A
//! provider that needs a host credential (Codex's login) resolved it at
//! prepare time into `provisioned_env`, and it resolves here like any ref.

use std::collections::BTreeMap;

use bot_bottle_sdk::{EgressPlan, Secret, SecretMap};

/// Where token refs are looked up.
pub trait TokenSource {
    /// The value of `name`, if set.
    fn lookup(&self, name: &str) -> Option<Secret>;
}

/// The host environment with a provider's `provisioned_env` laid over it.
pub struct EffectiveEnv<'a, H> {
    host: H,
    provisioned: &'a SecretMap,
}

/// Builds the effective environment; `provisioned` values win.
pub fn effective_env<H: Fn(&str) -> Option<String>>(
    host: H,
    provisioned: &SecretMap,
) -> EffectiveEnv<'_, H> {
    EffectiveEnv { host, provisioned }
}

impl<H: Fn(&str) -> Option<String>> TokenSource for EffectiveEnv<'_, H> {
    fn lookup(&self, name: &str) -> Option<Secret> {
        self.provisioned
            .get(name)
            .cloned()
            .or_else(|| (self.host)(name).map(Secret::new))
    }
}

impl TokenSource for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<Secret> {
        self.get(name).map(|v| Secret::new(v.as_str()))
    }
}

/// A token ref that could not be resolved. Names the ref and the routes
/// that need it; never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The ref is not set anywhere.
    #[error("egress token `{token_ref}` (for route {routes}) is not set: export it in the host environment before launching")]
    Missing {
        /// The token ref.
        token_ref: String,
        /// The routes that inject it, comma-separated.
        routes: String,
    },
    /// The ref is set to the empty string.
    #[error("egress token `{token_ref}` (for route {routes}) is set but empty")]
    Empty {
        /// The token ref.
        token_ref: String,
        /// The routes that inject it, comma-separated.
        routes: String,
    },
}

/// Resolves every slot of `plan.token_env_map` (slot → ref) from `env`,
/// returning slot → value. With no slots nothing is read.
pub fn egress_resolve_token_values(
    plan: &EgressPlan,
    env: &impl TokenSource,
) -> Result<SecretMap, ResolveError> {
    let mut values = SecretMap::new();
    for (slot, token_ref) in &plan.token_env_map {
        let routes = || {
            plan.routes
                .iter()
                .filter(|r| r.auth.as_ref().is_some_and(|a| &a.token_env == slot))
                .map(|r| r.host.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match env.lookup(token_ref) {
            None => {
                return Err(ResolveError::Missing {
                    token_ref: token_ref.clone(),
                    routes: routes(),
                })
            }
            Some(v) if v.is_empty() => {
                return Err(ResolveError::Empty {
                    token_ref: token_ref.clone(),
                    routes: routes(),
                })
            }
            Some(v) => values.insert(slot.clone(), v),
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::CODEX_HOST_CREDENTIAL_TOKEN_REF;
    use bot_bottle_sdk::{AuthScheme, EgressRoute, RouteOrigin, SlotAuth};
    use std::cell::Cell;

    fn plan(refs: &[(&str, &str, &str)]) -> EgressPlan {
        EgressPlan {
            routes: refs
                .iter()
                .map(|(host, slot, _)| EgressRoute {
                    host: host.to_string(),
                    port: None,
                    auth: Some(SlotAuth {
                        scheme: AuthScheme::Bearer,
                        token_env: slot.to_string(),
                    }),
                    matches: vec![],
                    allow_private: false,
                    origin: RouteOrigin::Manifest,
                })
                .collect(),
            token_env_map: refs
                .iter()
                .map(|(_, slot, r)| (slot.to_string(), r.to_string()))
                .collect(),
        }
    }

    #[test]
    fn no_routes_gives_an_empty_map_without_reading_the_env() {
        let reads = Cell::new(0);
        let provisioned = SecretMap::new();
        let env = effective_env(
            |_| {
                reads.set(reads.get() + 1);
                Some("x".into())
            },
            &provisioned,
        );
        let values = egress_resolve_token_values(&EgressPlan::default(), &env).unwrap();
        assert!(values.is_empty());
        assert_eq!(reads.get(), 0);
    }

    #[test]
    fn the_codex_ref_resolves_like_any_ref_when_present() {
        let p = plan(&[(
            "chatgpt.com",
            "EGRESS_TOKEN_0",
            CODEX_HOST_CREDENTIAL_TOKEN_REF,
        )]);
        let mut host = BTreeMap::new();
        host.insert(
            CODEX_HOST_CREDENTIAL_TOKEN_REF.to_string(),
            "tok".to_string(),
        );
        let values = egress_resolve_token_values(&p, &host).unwrap();
        assert_eq!(values.get("EGRESS_TOKEN_0").unwrap().expose(), "tok");
    }

    #[test]
    fn provisioned_values_win_over_host_values() {
        let p = plan(&[("api.example.com", "EGRESS_TOKEN_0", "API_KEY")]);
        let mut provisioned = SecretMap::new();
        provisioned.insert("API_KEY", Secret::new("from-provider"));
        let env = effective_env(|_| Some("from-host".into()), &provisioned);
        let values = egress_resolve_token_values(&p, &env).unwrap();
        assert_eq!(
            values.get("EGRESS_TOKEN_0").unwrap().expose(),
            "from-provider"
        );
    }

    #[test]
    fn a_missing_token_names_the_ref_and_route() {
        let p = plan(&[("api.example.com", "EGRESS_TOKEN_0", "API_KEY")]);
        let err = egress_resolve_token_values(&p, &BTreeMap::new()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("API_KEY") && text.contains("api.example.com"),
            "{text}"
        );
        let mut host = BTreeMap::new();
        host.insert("API_KEY".to_string(), String::new());
        let err = egress_resolve_token_values(&p, &host).unwrap_err();
        assert!(matches!(err, ResolveError::Empty { .. }));
    }
}
