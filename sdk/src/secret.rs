//! Credential values that must never be printed.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

/// A credential value.
///
/// `Debug` and `Display` print `<redacted>`, never the value; the memory is
/// zeroed on drop. There is deliberately no `Serialize` implementation: a
/// secret reaches a file, a log or a process only through [`Secret::expose`],
/// so every place that does so is easy to find.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The value. Pass it only to the egress proxy.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

/// Named secrets: the resolved egress environment (`EGRESS_TOKEN_<N>` →
/// value) or a provider's `provisioned_env`.
///
/// Iteration order is by name, so output built from it is deterministic.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretMap(BTreeMap<String, Secret>);

impl SecretMap {
    /// An empty map.
    pub fn new() -> Self {
        SecretMap::default()
    }

    /// Sets `name` to `value`, replacing any earlier value.
    pub fn insert(&mut self, name: impl Into<String>, value: Secret) {
        self.0.insert(name.into(), value);
    }

    /// The value for `name`.
    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    /// Whether `name` is set.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Names and values, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The names, ordered.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

impl FromIterator<(String, Secret)> for SecretMap {
    fn from_iter<I: IntoIterator<Item = (String, Secret)>>(iter: I) -> Self {
        SecretMap(iter.into_iter().collect())
    }
}

impl IntoIterator for SecretMap {
    type Item = (String, Secret);
    type IntoIter = std::collections::btree_map::IntoIter<String, Secret>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_print_the_value() {
        let s = Secret::new("sk-live-1234567890");
        assert!(!format!("{s:?}").contains("sk-live"));
        assert!(!format!("{s}").contains("sk-live"));
        let mut m = SecretMap::new();
        m.insert("EGRESS_TOKEN_0", s);
        let dbg = format!("{m:?}");
        assert!(dbg.contains("EGRESS_TOKEN_0"));
        assert!(!dbg.contains("sk-live"));
    }
}
