//! `[config]`: the keys a guest may read through `wasi:config/store`, each with an
//! optional default, a `required` flag (the operator must give a value) and a `secret`
//! flag (the value is never shown). An undeclared key is invisible to the guest, and
//! the operator can supply values only for declared keys.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::manifest::ManifestError;
use crate::units::string_type;

/// Longest value the operator may give, in bytes.
pub const MAX_VALUE: usize = 64 << 10;

/// A configuration key: lowercase letters, digits and `_`, starting with a letter, at
/// most 64 characters (the rule Spin's variables follow).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigKey(String);

impl ConfigKey {
    /// The key as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ConfigKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut chars = s.chars();
        let ok = s.len() <= 64
            && matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(ConfigKey(s.to_owned()))
        } else {
            Err(format!(
                "invalid config key `{s}`: use lowercase letters, digits and `_`, starting with a letter, at most 64 characters"
            ))
        }
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_type!(
    ConfigKey,
    "A configuration key: lowercase letters, digits and `_`, starting with a letter.",
    "^[a-z][a-z0-9_]{0,63}$"
);

/// One declared key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigEntry {
    /// The value when the operator gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The operator must give a value (`--config KEY=VALUE`); no default then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// The value is never shown (`inspect`, logs, errors); no default then, since the
    /// artifact is readable by anyone who can pull it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

/// The `[config]` table.
pub type ConfigTable = BTreeMap<ConfigKey, ConfigEntry>;

/// Checks the rules between fields of each key.
pub fn validate(table: &ConfigTable) -> Result<(), ManifestError> {
    for (key, e) in table {
        if e.secret && e.default.is_some() {
            return Err(ManifestError::plain(format!(
                "config key `{key}` is secret and has a default: anyone who pulls the artifact could read it; remove the default and give the value at run"
            )));
        }
        if e.required && e.default.is_some() {
            return Err(ManifestError::plain(format!(
                "config key `{key}` is required and has a default: keep one"
            )));
        }
        if e.default.as_ref().is_some_and(|d| d.len() > MAX_VALUE) {
            return Err(ManifestError::plain(format!(
                "the default of config key `{key}` is longer than {MAX_VALUE} bytes"
            )));
        }
    }
    Ok(())
}

/// What a guest reads: the values in force, and which of them are secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PlannedConfig {
    /// Key to value, for every key that has one.
    pub values: BTreeMap<String, String>,
    /// The keys whose values are never shown.
    pub secret: BTreeSet<String>,
    /// Whether the artifact declares a `[config]` table (the guest may import
    /// `wasi:config` only then).
    pub declared: bool,
}

impl fmt::Debug for PlannedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .values
            .iter()
            .map(|(k, v)| {
                let v = if self.secret.contains(k) {
                    "(secret)"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_map().entries(shown).finish()
    }
}

/// Why the operator's config values cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value for a key the artifact does not declare.
    #[error("the artifact declares no config key `{key}` (declared: {})", if declared.is_empty() { "none".to_owned() } else { declared.join(", ") })]
    Undeclared {
        /// The key given.
        key: String,
        /// The keys declared.
        declared: Vec<String>,
    },
    /// A key given twice.
    #[error("config key `{key}` is given twice")]
    Twice {
        /// The key.
        key: String,
    },
    /// A required key without a value.
    #[error("the artifact requires config key `{key}`")]
    Missing {
        /// The key.
        key: String,
    },
    /// A value over [`MAX_VALUE`].
    #[error("the value of config key `{key}` is {len} bytes, more than {MAX_VALUE}")]
    TooLong {
        /// The key.
        key: String,
        /// Its length.
        len: usize,
    },
}

/// The values in force: defaults, overridden by the operator's, for declared keys only.
pub fn plan(table: &ConfigTable, given: &[(String, String)]) -> Result<PlannedConfig, ConfigError> {
    let mut out = PlannedConfig {
        declared: !table.is_empty(),
        ..Default::default()
    };
    let mut seen = BTreeSet::new();
    for (key, value) in given {
        let declared = key
            .parse::<ConfigKey>()
            .ok()
            .filter(|k| table.contains_key(k));
        if declared.is_none() {
            return Err(ConfigError::Undeclared {
                key: key.clone(),
                declared: table.keys().map(|k| k.to_string()).collect(),
            });
        }
        if !seen.insert(key.clone()) {
            return Err(ConfigError::Twice { key: key.clone() });
        }
        if value.len() > MAX_VALUE {
            return Err(ConfigError::TooLong {
                key: key.clone(),
                len: value.len(),
            });
        }
        out.values.insert(key.clone(), value.clone());
    }
    for (key, e) in table {
        let k = key.to_string();
        if e.secret {
            out.secret.insert(k.clone());
        }
        if out.values.contains_key(&k) {
            continue;
        }
        match &e.default {
            Some(d) => {
                out.values.insert(k, d.clone());
            }
            None if e.required => return Err(ConfigError::Missing { key: k }),
            None => {}
        }
    }
    Ok(out)
}

/// The declared keys in plain words, one line each (never a secret's value).
pub fn describe(table: &ConfigTable) -> Vec<String> {
    if table.is_empty() {
        return vec!["config: none".into()];
    }
    table
        .iter()
        .map(|(k, e)| {
            let how = match (&e.default, e.required, e.secret) {
                (_, _, true) if e.required => "secret; the operator must supply it".to_owned(),
                (_, _, true) => "secret; the operator may supply it".to_owned(),
                (Some(d), _, _) => format!("default `{d}`; the operator may override it"),
                (None, true, _) => "the operator must supply it".to_owned(),
                (None, false, _) => "unset unless the operator supplies it".to_owned(),
            };
            format!("config: the guest may read `{k}` ({how})")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(src: &str) -> ConfigTable {
        toml::from_str(src).unwrap()
    }

    #[test]
    fn defaults_overrides_and_refusals() {
        let t = table(
            "greeting = { default = \"hi\" }\ntoken = { secret = true, required = true }\nlevel = {}\n",
        );
        validate(&t).unwrap();
        let given = |kv: &[(&str, &str)]| -> Vec<(String, String)> {
            kv.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            plan(&t, &[]).unwrap_err(),
            ConfigError::Missing {
                key: "token".into()
            }
        );
        let p = plan(&t, &given(&[("token", "s3cret")])).unwrap();
        assert_eq!(p.values.get("greeting").unwrap(), "hi");
        assert!(!p.values.contains_key("level"));
        assert!(!format!("{p:?}").contains("s3cret"));
        let p = plan(&t, &given(&[("token", "x"), ("greeting", "yo")])).unwrap();
        assert_eq!(p.values.get("greeting").unwrap(), "yo");
        assert!(matches!(
            plan(&t, &given(&[("token", "x"), ("home", "/")])).unwrap_err(),
            ConfigError::Undeclared { key, .. } if key == "home"
        ));
        assert!(matches!(
            plan(&t, &given(&[("token", "x"), ("token", "y")])).unwrap_err(),
            ConfigError::Twice { .. }
        ));
        assert!(describe(&t).iter().all(|l| !l.contains("s3cret")));
    }

    #[test]
    fn bad_declarations() {
        assert!(validate(&table("k = { secret = true, default = \"x\" }\n")).is_err());
        assert!(validate(&table("k = { required = true, default = \"x\" }\n")).is_err());
        assert!(toml::from_str::<ConfigTable>("Bad-Key = {}\n").is_err());
        assert!(toml::from_str::<ConfigTable>("k = { secrte = true }\n").is_err());
    }
}
