//! The trust policy: which publishers' keys may sign which references.
//!
//! A TOML file (default `$WPKG_HOME/trust.toml`):
//!
//! ```toml
//! [[trust]]
//! scope = "ghcr.io/acme/*"          # a repository, or every repository under a path
//! keys = ["-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n"]
//! ```
//!
//! The most specific scope that matches a reference's `registry/repository` decides:
//! an exact name before a `/*` prefix, a longer prefix before a shorter one, `*` last.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wpkg_spec::Reference;

use crate::keys::PublicKey;

/// Errors of the policy file.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file cannot be read.
    #[error("cannot read the trust policy {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not parse, or a scope in it is unusable.
    #[error("trust policy {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file cannot be written.
    #[error("cannot write the trust policy {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A scope pattern is malformed.
    #[error("invalid scope `{0}`: write a repository (`ghcr.io/acme/app`), a path with `/*` (`ghcr.io/acme/*`), or `*`")]
    Scope(String),
}

/// The policy.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// A Sigstore `trusted_root.json` for keyless signatures (default: the public-good
    /// root shipped with wpkg).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<PathBuf>,
    /// The scopes, in file order.
    #[serde(default, rename = "trust")]
    pub scopes: Vec<Scope>,
}

/// One scope and what is trusted for it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// `registry/repository`, `registry/path/*`, or `*`.
    pub scope: String,
    /// Public keys (PEM) whose signatures are accepted.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Keyless identities (OIDC issuer + certificate subject) whose signatures are
    /// accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keyless: Vec<crate::keyless::Identity>,
}

impl Scope {
    /// The keys, parsed.
    pub fn public_keys(&self) -> Result<Vec<PublicKey>, String> {
        self.keys
            .iter()
            .map(|k| {
                PublicKey::from_pem(k)
                    .map_err(|e| format!("a key of scope `{}` is unusable: {e}", self.scope))
            })
            .collect()
    }
}

/// Normalises a scope the way references are: `acme/*` is `docker.io/acme/*`, `hello`
/// is `docker.io/library/hello`.
pub fn normalize_scope(s: &str) -> Result<String, TrustError> {
    let s = s.trim();
    if s == "*" {
        return Ok(s.to_owned());
    }
    let (name, glob) = match s.strip_suffix("/*") {
        Some(prefix) => (prefix, true),
        None => (s, false),
    };
    if name.is_empty() || name.contains('*') || name.contains('@') {
        return Err(TrustError::Scope(s.to_owned()));
    }
    let probe = if glob {
        format!("{name}/x")
    } else {
        name.to_owned()
    };
    let r: Reference = probe.parse().map_err(|_| TrustError::Scope(s.to_owned()))?;
    if r.tag.as_deref() != Some(wpkg_spec::reference::DEFAULT_TAG)
        || probe.contains(':') && !name.contains(':')
    {
        return Err(TrustError::Scope(s.to_owned()));
    }
    // Docker Hub alone (`docker.io/*`) is all of it, not only its `library/` images.
    if glob
        && wpkg_spec::reference::canonical_registry(name) == wpkg_spec::reference::DEFAULT_REGISTRY
    {
        return Ok(format!("{}/*", wpkg_spec::reference::DEFAULT_REGISTRY));
    }
    // A registry alone (`ghcr.io/*`) parses with `x` as the repository.
    let full = r.name();
    Ok(if glob {
        format!("{}/*", full.strip_suffix("/x").unwrap_or(&full))
    } else {
        full
    })
}

/// How well `scope` matches `name` (`registry/repository`): None if not at all.
fn specificity(scope: &str, name: &str) -> Option<usize> {
    if scope == "*" {
        return Some(0);
    }
    if let Some(prefix) = scope.strip_suffix("/*") {
        return name
            .strip_prefix(prefix)
            .filter(|rest| rest.starts_with('/'))
            .map(|_| prefix.len() + 1);
    }
    (scope == name).then_some(usize::MAX)
}

impl Policy {
    /// Reads the policy; a missing file is an empty policy.
    pub fn load(path: &Path) -> Result<Policy, TrustError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Policy::default()),
            Err(source) => {
                return Err(TrustError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let p: Policy = toml::from_str(&text).map_err(|e| TrustError::Invalid {
            path: path.to_owned(),
            reason: e.message().to_owned(),
        })?;
        for s in &p.scopes {
            normalize_scope(&s.scope).map_err(|e| TrustError::Invalid {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            s.public_keys().map_err(|reason| TrustError::Invalid {
                path: path.to_owned(),
                reason,
            })?;
            for i in &s.keyless {
                i.validate().map_err(|reason| TrustError::Invalid {
                    path: path.to_owned(),
                    reason: format!("scope `{}`: {reason}", s.scope),
                })?;
            }
        }
        Ok(p)
    }

    /// Writes the policy atomically.
    pub fn save(&self, path: &Path) -> Result<(), TrustError> {
        let write_err = |source: std::io::Error| TrustError::Write {
            path: path.to_owned(),
            source,
        };
        let mut text = String::from(
            "# wpkg trust policy: which keys may sign which references (see docs/trust.md).\n# Managed by `wpkg trust add|list|rm`; edits by hand are fine.\n\n",
        );
        text.push_str(&toml::to_string(self).map_err(|e| TrustError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?);
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(write_err)?;
        wpkg_store::layout::write_atomic(dir, path, text.as_bytes()).map_err(|e| match e {
            wpkg_store::Error::Io { source, .. } => write_err(source),
            other => write_err(std::io::Error::other(other.to_string())),
        })
    }

    /// The scope that decides for `name` (`registry/repository`).
    pub fn scope_for(&self, name: &str) -> Option<&Scope> {
        self.scopes
            .iter()
            .filter_map(|s| {
                let norm = normalize_scope(&s.scope).ok()?;
                specificity(&norm, name).map(|n| (n, s))
            })
            .max_by_key(|(n, _)| *n)
            .map(|(_, s)| s)
    }

    /// Adds `key` to `scope` (created if new). Returns false if it was already there.
    pub fn add_key(&mut self, scope: &str, key: &PublicKey) -> Result<bool, TrustError> {
        let norm = normalize_scope(scope)?;
        let pem = key.to_pem();
        let entry = match self
            .scopes
            .iter_mut()
            .position(|s| normalize_scope(&s.scope).ok().as_deref() == Some(norm.as_str()))
        {
            Some(i) => &mut self.scopes[i],
            None => {
                self.scopes.push(Scope {
                    scope: norm,
                    keys: vec![],
                    keyless: vec![],
                });
                self.scopes.last_mut().expect("just pushed")
            }
        };
        let known = entry
            .public_keys()
            .unwrap_or_default()
            .iter()
            .any(|k| k == key);
        if !known {
            entry.keys.push(pem);
        }
        Ok(!known)
    }

    /// Adds a keyless identity to `scope`. Returns false if it was already there.
    pub fn add_identity(
        &mut self,
        scope: &str,
        identity: crate::keyless::Identity,
    ) -> Result<bool, TrustError> {
        let norm = normalize_scope(scope)?;
        let i = match self
            .scopes
            .iter()
            .position(|s| normalize_scope(&s.scope).ok().as_deref() == Some(norm.as_str()))
        {
            Some(i) => i,
            None => {
                self.scopes.push(Scope {
                    scope: norm,
                    keys: vec![],
                    keyless: vec![],
                });
                self.scopes.len() - 1
            }
        };
        let entry = &mut self.scopes[i];
        if entry.keyless.contains(&identity) {
            return Ok(false);
        }
        entry.keyless.push(identity);
        Ok(true)
    }

    /// Removes a scope. Returns false if there was none.
    pub fn remove(&mut self, scope: &str) -> Result<bool, TrustError> {
        let norm = normalize_scope(scope)?;
        let before = self.scopes.len();
        self.scopes
            .retain(|s| normalize_scope(&s.scope).ok().as_deref() != Some(norm.as_str()));
        Ok(self.scopes.len() != before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PrivateKey;

    #[test]
    fn scopes_normalise() {
        assert_eq!(normalize_scope("ghcr.io/acme/*").unwrap(), "ghcr.io/acme/*");
        assert_eq!(normalize_scope("acme/*").unwrap(), "docker.io/acme/*");
        assert_eq!(normalize_scope("hello").unwrap(), "docker.io/library/hello");
        assert_eq!(
            normalize_scope("localhost:5000/*").unwrap(),
            "localhost:5000/*"
        );
        assert_eq!(normalize_scope("*").unwrap(), "*");
        assert_eq!(normalize_scope("docker.io/*").unwrap(), "docker.io/*");
        assert_eq!(normalize_scope("index.docker.io/*").unwrap(), "docker.io/*");
        assert_eq!(normalize_scope("library/*").unwrap(), "docker.io/library/*");
        assert_eq!(normalize_scope("myhost:443/*").unwrap(), "myhost:443/*");
        assert_eq!(normalize_scope("ghcr.io:443/*").unwrap(), "ghcr.io/*");
        for bad in [
            "",
            "ghcr.io/a*",
            "ghcr.io/a:1",
            "ghcr.io/a@sha256:00",
            "Bad Scope",
            "/*",
        ] {
            assert!(normalize_scope(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn most_specific_scope_wins() {
        let k1 = PrivateKey::generate().public();
        let k2 = PrivateKey::generate().public();
        let k3 = PrivateKey::generate().public();
        let mut p = Policy::default();
        p.add_key("*", &k3).unwrap();
        p.add_key("ghcr.io/acme/*", &k1).unwrap();
        p.add_key("ghcr.io/acme/app", &k2).unwrap();
        assert!(!p.add_key("ghcr.io/acme/*", &k1).unwrap());
        let keys = |n: &str| p.scope_for(n).unwrap().public_keys().unwrap();
        assert_eq!(keys("ghcr.io/acme/app"), vec![k2.clone()]);
        assert_eq!(keys("ghcr.io/acme/other"), vec![k1.clone()]);
        assert_eq!(keys("ghcr.io/acme/deep/er"), vec![k1.clone()]);
        assert_eq!(keys("ghcr.io/acmex/app"), vec![k3.clone()]);
        assert!(p.remove("*").unwrap());
        assert!(p.scope_for("ghcr.io/acmex/app").is_none());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("trust.toml");
        p.save(&f).unwrap();
        let back = Policy::load(&f).unwrap();
        assert_eq!(back.scopes.len(), 2);
        std::fs::write(&f, "[[trust]]\nscope = \"x\"\nkeyz = []\n").unwrap();
        let e = Policy::load(&f).unwrap_err().to_string();
        assert!(e.contains("keyz"), "{e}");
        std::fs::write(&f, "[[trust]]\nscope = \"x\"\nkeys = [\"not a key\"]\n").unwrap();
        assert!(Policy::load(&f).is_err());
    }
}
