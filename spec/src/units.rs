//! Typed values of `wpkg.toml` that validate when parsed: byte sizes, durations,
//! names of environment variables, package names and guest paths.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Serialize`/`Deserialize`/`JsonSchema` for a type that round-trips
/// through a string with `FromStr` and `Display`.
macro_rules! string_type {
    ($ty:ident, $desc:expr, $pattern:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "description": $desc,
                    "pattern": $pattern,
                })
            }
        }
    };
}
pub(crate) use string_type;

/// A size in bytes, written `64MiB`, `512KiB`, `1GiB`, `10MB` or a plain number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

const SIZE_UNITS: &[(&str, u64)] = &[
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("kB", 1_000),
    ("B", 1),
];

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(digits_end);
        let unit = unit.trim();
        let bad = || {
            format!("invalid size `{s}`: write a whole number with a unit, like `64MiB`, `512KiB` or `1GiB`")
        };
        if num.is_empty() {
            return Err(bad());
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult = if unit.is_empty() {
            1
        } else {
            SIZE_UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, m)| *m)
                .ok_or_else(bad)?
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, m) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n >= m && n.is_multiple_of(m) {
                return write!(f, "{}{unit}", n / m);
            }
        }
        write!(f, "{n}B")
    }
}

string_type!(
    ByteSize,
    "A size: a whole number with a unit (B, KiB, MiB, GiB, KB, MB, GB), like `64MiB`.",
    "^[0-9]+ ?(B|KiB|MiB|GiB|KB|kB|MB|GB)?$"
);

/// A duration, written `10s`, `500ms`, `2m` or `1h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationSpec(pub std::time::Duration);

impl FromStr for DurationSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(digits_end);
        let bad = || {
            format!("invalid duration `{s}`: write a whole number with a unit, like `500ms`, `10s`, `2m` or `1h`")
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        let d = match unit.trim() {
            "ms" => std::time::Duration::from_millis(n),
            "s" => std::time::Duration::from_secs(n),
            "m" => std::time::Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => std::time::Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        if d.is_zero() {
            return Err(format!("duration `{s}` must be greater than zero"));
        }
        Ok(DurationSpec(d))
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

string_type!(
    DurationSpec,
    "A duration: a whole number with a unit (ms, s, m, h), like `10s`.",
    "^[0-9]+ ?(ms|s|m|h)$"
);

/// The name of an environment variable: `[A-Za-z_][A-Za-z0-9_]*`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvName(String);

impl EnvName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EnvName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut chars = s.chars();
        let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(EnvName(s.to_owned()))
        } else {
            Err(format!(
                "invalid environment variable name `{s}`: use letters, digits and `_`, not starting with a digit"
            ))
        }
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_type!(
    EnvName,
    "An environment variable name: letters, digits and `_`, not starting with a digit.",
    "^[A-Za-z_][A-Za-z0-9_]*$"
);

/// A package name: lowercase letters, digits, `-`, `_` and `.`, starting with a letter
/// or digit, at most 128 characters. It becomes the default repository name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageName(String);

impl PackageName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PackageName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
            });
        if ok {
            Ok(PackageName(s.to_owned()))
        } else {
            Err(format!(
                "invalid package name `{s}`: use lowercase letters, digits, `-`, `_` and `.` (it becomes the repository name)"
            ))
        }
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_type!(
    PackageName,
    "A package name: lowercase letters, digits, `-`, `_` and `.`.",
    "^[a-z0-9][a-z0-9._-]{0,127}$"
);

/// An absolute, normalized path inside the guest: starts with `/`, no `.` or `..`
/// components, no empty components, not `/` itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuestPath(String);

impl GuestPath {
    /// The path as the guest sees it, e.g. `/static`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` is `other` or lies inside it (or the reverse).
    pub fn overlaps(&self, other: &GuestPath) -> bool {
        let (a, b) = (self.0.as_str(), other.0.as_str());
        a == b
            || a.strip_prefix(b).is_some_and(|r| r.starts_with('/'))
            || b.strip_prefix(a).is_some_and(|r| r.starts_with('/'))
    }
}

impl FromStr for GuestPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let Some(rest) = s.strip_prefix('/') else {
            return Err(format!(
                "invalid guest path `{s}`: it must be absolute, like `/data`"
            ));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Err(format!(
                "invalid guest path `{s}`: `/` cannot be granted; name a directory like `/data`"
            ));
        }
        for part in rest.split('/') {
            if part.is_empty() || part == "." || part == ".." {
                return Err(format!(
                    "invalid guest path `{s}`: no empty, `.` or `..` components"
                ));
            }
            if part.contains(['\\', '\0', ':']) {
                return Err(format!(
                    "invalid guest path `{s}`: `\\`, `:` and NUL are not allowed"
                ));
            }
        }
        Ok(GuestPath(format!("/{rest}")))
    }
}

impl fmt::Display for GuestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_type!(
    GuestPath,
    "An absolute path in the guest, like `/data`; no `.` or `..` components.",
    "^/[^\\\\:]+$"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("64MiB".parse::<ByteSize>().unwrap().0, 64 << 20);
        assert_eq!("1GiB".parse::<ByteSize>().unwrap().to_string(), "1GiB");
        assert_eq!("1000".parse::<ByteSize>().unwrap().0, 1000);
        assert_eq!("10 MB".parse::<ByteSize>().unwrap().0, 10_000_000);
        assert!("64mb".parse::<ByteSize>().is_err());
        assert!("MiB".parse::<ByteSize>().is_err());
        assert!("-1MiB".parse::<ByteSize>().is_err());
        assert!("99999999999999999999GiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(
            "10s".parse::<DurationSpec>().unwrap().0,
            std::time::Duration::from_secs(10)
        );
        assert_eq!(
            "1500ms".parse::<DurationSpec>().unwrap().to_string(),
            "1500ms"
        );
        assert_eq!("120s".parse::<DurationSpec>().unwrap().to_string(), "2m");
        assert!("0s".parse::<DurationSpec>().is_err());
        assert!("10".parse::<DurationSpec>().is_err());
        assert!("1d".parse::<DurationSpec>().is_err());
    }

    #[test]
    fn guest_paths() {
        assert_eq!("/data/".parse::<GuestPath>().unwrap().as_str(), "/data");
        assert!("data".parse::<GuestPath>().is_err());
        assert!("/".parse::<GuestPath>().is_err());
        assert!("/a/../b".parse::<GuestPath>().is_err());
        assert!("/a//b".parse::<GuestPath>().is_err());
        let a: GuestPath = "/data".parse().unwrap();
        assert!(a.overlaps(&"/data/x".parse().unwrap()));
        assert!(!a.overlaps(&"/database".parse().unwrap()));
    }

    #[test]
    fn names() {
        assert!("API_TOKEN".parse::<EnvName>().is_ok());
        assert!("1X".parse::<EnvName>().is_err());
        assert!("A-B".parse::<EnvName>().is_err());
        assert!("http-fetch".parse::<PackageName>().is_ok());
        assert!("Hello".parse::<PackageName>().is_err());
    }
}
