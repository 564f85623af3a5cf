//! Image references, parsed like Docker's: `[registry[:port]/]repository[:tag][@sha256:hex]`.
//!
//! A first component with a `.` or `:`, or `localhost`, is a registry; otherwise the
//! registry is `docker.io`, and a one-component Docker Hub repository gets `library/`.

use std::fmt;
use std::str::FromStr;

/// The default registry.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The default tag.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host and optional port, e.g. `ghcr.io`, `localhost:5000`.
    pub registry: String,
    /// Repository path, e.g. `acme/hello`.
    pub repository: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// Digest (`sha256:<64 hex>`), if given.
    pub digest: Option<String>,
}

/// Why a reference does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference `{input}`: {reason}")]
pub struct ReferenceError {
    /// The text given.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

/// Checks a `sha256:<64 lowercase hex>` digest.
pub fn is_valid_digest(d: &str) -> bool {
    crate::Digest::parse(d).is_ok()
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    if c.is_empty() || !c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit()) {
        return false;
    }
    if !c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit()) {
        return false;
    }
    let bytes = c.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        // a separator run
        let start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = !sep.is_empty()
            && (sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-'));
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, ReferenceError> {
        let err = |reason: &str| ReferenceError {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() {
            return Err(err(
                "it is empty; write NAME[:TAG], like `hello:0.1.0` or `ghcr.io/acme/hello:1.0`",
            ));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !is_valid_digest(d) {
                    return Err(err(
                        "the digest must be `sha256:` followed by 64 lowercase hex digits",
                    ));
                }
                (r, Some(d.to_owned()))
            }
            None => (s, None),
        };
        // The tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(err("a tag has letters, digits, `_`, `.` and `-` (at most 128), not starting with `.` or `-`"));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder)) if reads_as_registry(first) => {
                (first.to_owned(), remainder.to_owned())
            }
            _ => (DEFAULT_REGISTRY.to_owned(), name.to_owned()),
        };
        if !valid_registry(&registry) {
            return Err(err(
                "the registry must be a host name with an optional port",
            ));
        }
        // One spelling per registry, so that trust scopes and stored names cannot be
        // sidestepped by case, the default HTTPS port, or a Docker Hub alias.
        let registry = canonical_registry(&registry);
        if repository.is_empty() {
            return Err(err("the repository name is missing"));
        }
        if !repository.split('/').all(valid_path_component) {
            return Err(err(
                "repository names use lowercase letters, digits and single `.`, `_` or `-` between them, separated by `/`",
            ));
        }
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.len() > 255 {
            return Err(err("the repository name is longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// `host[:port]`: a non-empty host of letters, digits, `.` and `-` (or an IPv6
/// address in brackets), and a port of digits.
fn valid_registry(registry: &str) -> bool {
    let port_ok = |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(v6) = registry.strip_prefix('[') {
        let Some((addr, rest)) = v6.split_once(']') else {
            return false;
        };
        return !addr.is_empty()
            && addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'))
            && (rest.is_empty() || rest.strip_prefix(':').is_some_and(port_ok));
    }
    let (host, port) = match registry.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        && port.is_none_or(port_ok)
}

/// Whether the first component of a name would be read as a registry.
fn reads_as_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// The canonical spelling of a registry: lowercase, without `:443` (unless the host
/// alone would no longer read as a registry, like `myhost:443`), Docker Hub's aliases
/// as `docker.io`.
pub fn canonical_registry(registry: &str) -> String {
    let r = registry.to_ascii_lowercase();
    let r = match r.strip_suffix(":443") {
        Some(host) if reads_as_registry(host) => host.to_owned(),
        _ => r,
    };
    match r.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DEFAULT_REGISTRY.to_owned()
        }
        _ => r,
    }
}

impl Reference {
    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form Docker prints: no `docker.io/`, and no `library/` when nothing
    /// but a name follows it (`docker.io/library/a/b` stays `library/a/b`, which reads
    /// back as itself).
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            let short = match self.repository.strip_prefix("library/") {
                Some(name) if !name.contains('/') => name,
                _ => &self.repository,
            };
            // `docker.io/a.b/c` keeps its registry: `a.b/c` would name registry `a.b`.
            match short.split_once('/') {
                Some((first, _)) if reads_as_registry(first) => self.name(),
                _ => short.to_owned(),
            }
        } else {
            self.name()
        }
    }

    /// The short form with tag and digest.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The same reference with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn docker_defaults() {
        assert_eq!(r("hello").to_string(), "docker.io/library/hello:latest");
        assert_eq!(r("hello:0.1.0").familiar(), "hello:0.1.0");
        assert_eq!(r("acme/hello").to_string(), "docker.io/acme/hello:latest");
        assert_eq!(r("ghcr.io/acme/hello:1").registry, "ghcr.io");
        assert_eq!(r("localhost:5000/a/b:t").registry, "localhost:5000");
        assert_eq!(r("localhost/hello").registry, "localhost");
        let d = format!("hello@sha256:{}", "a".repeat(64));
        assert_eq!(r(&d).tag, None);
        assert!(r(&d).digest.is_some());
        let both = format!("ghcr.io/a/b:v1@sha256:{}", "0".repeat(64));
        assert_eq!(r(&both).tag.as_deref(), Some("v1"));
    }

    #[test]
    fn registries_have_one_spelling() {
        assert_eq!(r("GHCR.io/acme/app").name(), "ghcr.io/acme/app");
        assert_eq!(r("ghcr.io:443/acme/app").name(), "ghcr.io/acme/app");
        assert_eq!(r("index.docker.io/acme/app").name(), "docker.io/acme/app");
        assert_eq!(
            r("registry-1.docker.io/hello").name(),
            "docker.io/library/hello"
        );
        assert_eq!(r("localhost:5000/a").name(), "localhost:5000/a");
        // `:443` stays when the host alone would read as a Docker Hub namespace.
        let port = r("myhost:443/app");
        assert_eq!(port.name(), "myhost:443/app");
        assert_eq!(r(&port.to_string()), port);
        assert_eq!(r("[::1]:5000/a").registry, "[::1]:5000");
    }

    #[test]
    fn familiar_names_read_back_as_themselves() {
        for input in [
            "hello",
            "acme/app",
            "library/a/b",
            "ghcr.io/a/b",
            "myhost:443/x",
        ] {
            let full = r(input);
            assert_eq!(r(&full.familiar()), full, "{input}");
        }
        assert_eq!(r("docker.io/library/a/b").familiar_name(), "library/a/b");
        assert_eq!(r("docker.io/library/a").familiar_name(), "a");
        assert_eq!(
            r("docker.io/a.b/c").familiar_name(),
            "docker.io/a.b/c",
            "found by fuzz/run.sh (reference)"
        );
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "Hello",
            "a//b",
            "a:",
            "a:-x",
            "a@sha256:zz",
            "a b",
            "-a",
            "a__-b",
            "ghcr.io/",
            ":443/a",
            "host:/a",
            "host:44x/a",
            "[::1/a",
            "a]b:1/c",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} parsed");
        }
    }
}
