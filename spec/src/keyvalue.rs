//! `key_value = ["default", ...]` under `[capabilities]`: the named key-value stores a
//! guest may open through `wasi:keyvalue`. Each is embedded (a database file on this
//! machine, per image and store) unless the operator binds it to Redis or Valkey. A
//! store that is not declared cannot be opened, and the operator can bind only
//! declared stores.

use std::fmt;
use std::str::FromStr;

use crate::units::string_type;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A store name: lowercase letters, digits, `-` and `_`, starting with a letter or
/// digit, at most 64 characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreName(String);

impl StoreName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for StoreName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut chars = s.chars();
        let ok = s.len() <= 64
            && matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(StoreName(s.to_owned()))
        } else {
            Err(format!(
                "invalid key-value store name `{s}`: use lowercase letters, digits, `-` and `_`, at most 64 characters"
            ))
        }
    }
}

impl fmt::Display for StoreName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_type!(
    StoreName,
    "A key-value store name: lowercase letters, digits, `-` and `_`.",
    "^[a-z0-9][a-z0-9_-]{0,63}$"
);

/// Where a store's data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A database file on this machine, kept per image and store.
    Embedded,
    /// A Redis or Valkey server.
    Redis(RedisUrl),
}

/// `redis://[:PASSWORD@]HOST[:PORT][/DB]`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or IP address.
    pub host: String,
    /// Port (6379 by default).
    pub port: u16,
    /// Database number (0 by default).
    pub db: u32,
    /// The password (`AUTH`), if any; never shown.
    pub password: Option<String>,
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for RedisUrl {
    /// The URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "redis://{host}:{}/{}", self.port, self.db)
    }
}

impl FromStr for RedisUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "`{}` is not a Redis URL ({why}); write redis://HOST[:PORT][/DB]",
                redact(s)
            )
        };
        let rest = s.strip_prefix("redis://").ok_or_else(|| {
            bad("it does not start with redis://; rediss:// (TLS) is not supported")
        })?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let password = auth.map(|a| a.split_once(':').map_or(a, |(_, p)| p).to_owned());
        let (hostport, db) = match rest.split_once('/') {
            Some((h, "")) => (h, 0),
            Some((h, d)) => (
                h,
                d.parse::<u32>()
                    .map_err(|_| bad("the database is not a number"))?,
            ),
            None => (rest, 0),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, p) = v6.split_once(']').ok_or_else(|| bad("an unclosed `[`"))?;
            (h.to_owned(), p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?,
            None => 6379,
        };
        Ok(RedisUrl {
            host,
            port,
            db,
            password,
        })
    }
}

/// `s` with any password replaced, for messages.
fn redact(s: &str) -> String {
    match (s.find("://"), s.rfind('@')) {
        (Some(i), Some(j)) if j > i => format!("{}://***@{}", &s[..i], &s[j + 1..]),
        _ => s.to_owned(),
    }
}

/// One store the guest may open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedStore {
    /// Its name, as the guest opens it.
    pub name: String,
    /// Where its data lives.
    pub backend: Backend,
}

/// Why the operator's store bindings cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyValueError {
    /// A binding for a store the artifact does not declare.
    #[error("the artifact declares no key-value store `{name}` (declared: {})", if declared.is_empty() { "none".to_owned() } else { declared.join(", ") })]
    Undeclared {
        /// The store given.
        name: String,
        /// The stores declared.
        declared: Vec<String>,
    },
    /// A store bound twice.
    #[error("key-value store `{name}` is bound twice")]
    Twice {
        /// The store.
        name: String,
    },
    /// A binding that is not `NAME=redis://...`.
    #[error("{reason}")]
    BadBinding {
        /// The binding as given (password hidden).
        binding: String,
        /// What is wrong.
        reason: String,
    },
}

/// The stores in force: every declared store, embedded unless the operator bound it
/// (`NAME=redis://...`).
pub fn plan(
    declared: &[StoreName],
    bindings: &[String],
) -> Result<Vec<PlannedStore>, KeyValueError> {
    let mut out: Vec<PlannedStore> = declared
        .iter()
        .map(|n| PlannedStore {
            name: n.to_string(),
            backend: Backend::Embedded,
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for b in bindings {
        let (name, url) = b.split_once('=').ok_or_else(|| KeyValueError::BadBinding {
            binding: redact(b),
            reason: format!("`{}` is not NAME=redis://HOST[:PORT][/DB]", redact(b)),
        })?;
        let Some(slot) = out.iter_mut().find(|s| s.name == name) else {
            return Err(KeyValueError::Undeclared {
                name: name.to_owned(),
                declared: declared.iter().map(|n| n.to_string()).collect(),
            });
        };
        if !seen.insert(name.to_owned()) {
            return Err(KeyValueError::Twice {
                name: name.to_owned(),
            });
        }
        let url = url
            .parse::<RedisUrl>()
            .map_err(|reason| KeyValueError::BadBinding {
                binding: redact(b),
                reason,
            })?;
        slot.backend = Backend::Redis(url);
    }
    Ok(out)
}

/// The declared stores in plain words, one line each.
pub fn describe(declared: &[StoreName]) -> Vec<String> {
    if declared.is_empty() {
        return vec!["key-value stores: none".into()];
    }
    declared
        .iter()
        .map(|n| format!("key-value store: the guest may open `{n}` (kept on this machine unless the operator binds it to Redis)"))
        .collect()
}

/// Checks declared names are unique.
pub fn validate(declared: &[StoreName]) -> Result<(), crate::ManifestError> {
    let mut seen = std::collections::BTreeSet::new();
    for n in declared {
        if !seen.insert(n) {
            return Err(crate::ManifestError::plain(format!(
                "`{n}` appears twice in `key_value`"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u: RedisUrl = "redis://127.0.0.1:6380/2".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("127.0.0.1", 6380, 2));
        let u: RedisUrl = "redis://:pw@cache".parse().unwrap();
        assert_eq!((u.port, u.password.as_deref()), (6379, Some("pw")));
        assert!(!format!("{u} {u:?}").contains("pw"));
        let u: RedisUrl = "redis://[::1]:7000".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 7000));
        for bad in [
            "http://x",
            "redis://",
            "redis://h:port",
            "redis://h/db",
            "rediss://h",
        ] {
            assert!(bad.parse::<RedisUrl>().is_err(), "{bad}");
        }
        let e = "redis://:hunter2@h:x".parse::<RedisUrl>().unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn bindings_narrow_to_declared_stores() {
        let declared: Vec<StoreName> = vec!["default".parse().unwrap(), "cache".parse().unwrap()];
        let p = plan(&declared, &[]).unwrap();
        assert!(p.iter().all(|s| s.backend == Backend::Embedded));
        let p = plan(&declared, &["cache=redis://127.0.0.1".into()]).unwrap();
        assert!(matches!(p[1].backend, Backend::Redis(_)));
        assert!(matches!(
            plan(&declared, &["other=redis://h".into()]).unwrap_err(),
            KeyValueError::Undeclared { .. }
        ));
        assert!(matches!(
            plan(
                &declared,
                &["cache=redis://h".into(), "cache=redis://i".into()]
            )
            .unwrap_err(),
            KeyValueError::Twice { .. }
        ));
        assert!(matches!(
            plan(&declared, &["cache".into()]).unwrap_err(),
            KeyValueError::BadBinding { .. }
        ));
        assert!(matches!(
            plan(&[], &["default=redis://h".into()]).unwrap_err(),
            KeyValueError::Undeclared { .. }
        ));
        assert!("Bad/Name".parse::<StoreName>().is_err());
        assert!("../x".parse::<StoreName>().is_err());
    }
}
