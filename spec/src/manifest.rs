//! The capability manifest, `wpkg.toml`, version 1.
//!
//! Parsing checks `manifest_version` first and then reads the matching schema, so a
//! future version can be read and a newer file is refused with a clear message. Every
//! table is strict: an unknown key is an error that names the key, line and column.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::ConfigTable;
use crate::keyvalue::StoreName;
use crate::nn::Nn;
use crate::outbound::OutboundPattern;
use crate::units::{ByteSize, DurationSpec, EnvName, GuestPath, PackageName};

/// The newest manifest version this wpkg understands.
pub const MANIFEST_VERSION: u32 = 1;

/// A parsed and validated `wpkg.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "wpkg.toml",
    description = "The wpkg capability manifest, version 1."
)]
pub struct Manifest {
    /// Always `1`.
    pub manifest_version: u32,
    /// What the package is and how to build it.
    pub package: Package,
    /// How the guest is started.
    pub trigger: Trigger,
    /// What the guest may touch; everything absent is denied.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Resource limits for every run or request.
    #[serde(default)]
    pub limits: Limits,
    /// Configuration keys the guest may read through `wasi:config/store`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: ConfigTable,
    /// Machine-learning models the guest may load through `wasi-nn`.
    #[serde(default, skip_serializing_if = "Nn::is_empty")]
    pub nn: Nn,
}

/// `[package]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// The package name; the default repository name of `wpkg build`.
    pub name: PackageName,
    /// The version; the default tag of `wpkg build`.
    pub version: String,
    /// One line about the package (the `org.opencontainers.image.description` annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who made it (the config's `author`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Where its source lives (the `org.opencontainers.image.source` annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The `.wasm` file, relative to the directory of `wpkg.toml`.
    pub wasm: String,
    /// A shell command `wpkg build` runs first, in the manifest's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
}

/// `[trigger]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Trigger {
    /// A command: a `wasi:cli/run` component or a WASIp1 module with `_start`.
    Command,
    /// An HTTP handler: a `wasi:http/proxy` component.
    Http,
}

impl Trigger {
    /// `command` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Command => "command",
            Trigger::Http => "http",
        }
    }
}

/// `[capabilities]`: what the guest may touch. Clocks, random and stdio are always given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Outbound HTTP destinations, `scheme://host[:port]`. None when absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound_http: Vec<OutboundPattern>,
    /// Environment variables with fixed values, baked into the artifact.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<EnvName, String>,
    /// Environment variables the operator must supply at run: `--env NAME=VALUE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_required: Vec<EnvName>,
    /// Directories bundled into the artifact, always read-only in the guest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileEntry>,
    /// Directories the operator binds at run: `--mount HOST:GUEST`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountEntry>,
    /// Key-value stores the guest may open through `wasi:keyvalue`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_value: Vec<StoreName>,
}

/// One bundled directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// A directory relative to `wpkg.toml`, packed into the artifact.
    pub source: String,
    /// Where the guest sees it, read-only.
    pub guest: GuestPath,
}

/// One directory the operator binds at run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MountEntry {
    /// Where the guest sees it.
    pub guest: GuestPath,
    /// The most the operator may grant. Defaults to `read-only`.
    #[serde(default)]
    pub access: Access,
}

/// Access to a mounted directory.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Read only.
    #[default]
    ReadOnly,
    /// Read and write.
    ReadWrite,
}

impl Access {
    /// `read-only` or `read-write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        }
    }
}

/// Default memory limit when `[limits] memory` is absent.
pub const DEFAULT_MEMORY: ByteSize = ByteSize(128 << 20);

/// `[limits]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most linear memory one instance may grow to (default `128MiB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// Wall-clock limit per command run or per HTTP request (none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationSpec>,
}

impl Limits {
    /// The memory limit in force.
    pub fn memory_or_default(&self) -> ByteSize {
        self.memory.unwrap_or(DEFAULT_MEMORY)
    }
}

/// An error in `wpkg.toml`, with where it is when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location.map(|(l, c)| format!("line {l}, column {c}: ")).unwrap_or_default())]
pub struct ManifestError {
    /// What is wrong and how to fix it.
    pub message: String,
    /// 1-based line and column, when known.
    pub location: Option<(usize, usize)>,
}

impl ManifestError {
    /// An error without a location.
    pub(crate) fn plain(message: impl Into<String>) -> Self {
        ManifestError::new(message)
    }

    fn new(message: impl Into<String>) -> Self {
        ManifestError {
            message: message.into(),
            location: None,
        }
    }
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(src.len());
    while !src.is_char_boundary(end) {
        end -= 1;
    }
    let before = &src[..end];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn toml_error(src: &str, e: toml::de::Error) -> ManifestError {
    let mut message = e.message().trim().replace('\n', " ");
    // serde's "unknown field `x`, expected one of ..." becomes actionable.
    if let Some(rest) = message.strip_prefix("unknown field ") {
        message = format!("unknown key {rest}; remove it or fix its spelling");
    } else if let Some(rest) = message.strip_prefix("missing field ") {
        message = format!("missing {rest}: add it (docs/manifest.md lists every field)");
    }
    ManifestError {
        message,
        location: e.span().map(|s| line_col(src, s.start)),
    }
}

impl Manifest {
    /// Parses and validates `wpkg.toml` text.
    pub fn parse(src: &str) -> Result<Manifest, ManifestError> {
        let table: toml::Table = toml::from_str(src).map_err(|e| toml_error(src, e))?;
        match table.get("manifest_version") {
            None => {
                return Err(ManifestError::new(
                    "missing `manifest_version`: add `manifest_version = 1` at the top",
                ))
            }
            Some(toml::Value::Integer(1)) => {}
            Some(toml::Value::Integer(v)) if *v > MANIFEST_VERSION as i64 => {
                return Err(ManifestError::new(format!(
                    "`manifest_version = {v}` is newer than this wpkg understands (it reads version {MANIFEST_VERSION}); upgrade wpkg"
                )))
            }
            Some(v) => {
                return Err(ManifestError::new(format!(
                    "`manifest_version = {v}` is not supported: use `manifest_version = 1`"
                )))
            }
        }
        let manifest: Manifest = toml::from_str(src).map_err(|e| toml_error(src, e))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks the rules that span fields.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.package.version.trim().is_empty() {
            return Err(ManifestError::new("`package.version` is empty"));
        }
        if self.package.wasm.trim().is_empty() {
            return Err(ManifestError::new(
                "`package.wasm` is empty: give the path of the .wasm file",
            ));
        }
        self.capabilities.validate()?;
        crate::config::validate(&self.config)?;
        self.nn.validate()?;
        self.limits.validate()
    }

    /// What goes into the artifact: the manifest without host-side build details.
    pub fn to_artifact_capabilities(&self) -> ArtifactCapabilities {
        ArtifactCapabilities {
            manifest_version: self.manifest_version,
            trigger: self.trigger,
            capabilities: self.capabilities.clone(),
            limits: self.limits.clone(),
            config: self.config.clone(),
            nn: self.nn.clone(),
        }
    }
}

impl Capabilities {
    /// Checks that entries do not collide and that paths stay inside the project.
    pub fn validate(&self) -> Result<(), ManifestError> {
        for name in &self.env_required {
            if self.env.contains_key(name) {
                return Err(ManifestError::new(format!(
                    "`{name}` is both in `env` and `env_required`: keep one"
                )));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for name in &self.env_required {
            if !seen.insert(name) {
                return Err(ManifestError::new(format!(
                    "`{name}` appears twice in `env_required`"
                )));
            }
        }
        for f in &self.files {
            let src = std::path::Path::new(&f.source);
            if f.source.is_empty()
                || src.is_absolute()
                || src
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(ManifestError::new(format!(
                    "files source `{}` must be a relative path inside the project, without `..`",
                    f.source
                )));
            }
        }
        for g in self
            .files
            .iter()
            .map(|f| &f.guest)
            .chain(self.mounts.iter().map(|m| &m.guest))
        {
            if g.as_str() == "/.wpkg" || g.as_str().starts_with("/.wpkg/") {
                return Err(ManifestError::new(format!(
                    "guest path `{g}` is reserved for wpkg's own files: choose another"
                )));
            }
        }
        let guests: Vec<(&GuestPath, &str)> = self
            .files
            .iter()
            .map(|f| (&f.guest, "files"))
            .chain(self.mounts.iter().map(|m| (&m.guest, "mounts")))
            .collect();
        for (i, (a, ka)) in guests.iter().enumerate() {
            for (b, kb) in &guests[i + 1..] {
                if a.overlaps(b) {
                    return Err(ManifestError::new(format!(
                        "guest paths `{a}` ({ka}) and `{b}` ({kb}) overlap: give each its own directory"
                    )));
                }
            }
        }
        crate::keyvalue::validate(&self.key_value)?;
        let mut outbound = std::collections::BTreeSet::new();
        for o in &self.outbound_http {
            if !outbound.insert(o.original.to_ascii_lowercase()) {
                return Err(ManifestError::new(format!(
                    "`{o}` appears twice in `outbound_http`"
                )));
            }
        }
        Ok(())
    }
}

/// Smallest memory limit accepted: one wasm page would not run any real guest.
pub const MIN_MEMORY: ByteSize = ByteSize(1 << 20);

impl Limits {
    /// Checks the limits are usable.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if let Some(m) = self.memory {
            if m < MIN_MEMORY {
                return Err(ManifestError::new(format!(
                    "`limits.memory = \"{m}\"` is too small: at least `1MiB`"
                )));
            }
            if m.0 > 4 << 30 {
                return Err(ManifestError::new(format!(
                    "`limits.memory = \"{m}\"` is larger than a 32-bit guest can use: at most `4GiB`"
                )));
            }
        }
        Ok(())
    }
}

/// The capabilities as they travel inside the artifact's config, under
/// [`crate::media::CAPABILITIES_KEY`]. The manifest digest covers them, so one
/// signature covers code and permissions together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactCapabilities {
    /// The manifest version they were written in.
    pub manifest_version: u32,
    /// How the guest is started.
    pub trigger: Trigger,
    /// What the guest may touch.
    pub capabilities: Capabilities,
    /// Resource limits.
    pub limits: Limits,
    /// Configuration keys the guest may read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: ConfigTable,
    /// Machine-learning models the guest may load.
    #[serde(default, skip_serializing_if = "Nn::is_empty")]
    pub nn: Nn,
}

impl ArtifactCapabilities {
    /// Validates capabilities read back from an artifact (it may come from elsewhere).
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.manifest_version != MANIFEST_VERSION {
            return Err(ManifestError::new(format!(
                "the artifact's capabilities are version {}, this wpkg reads version {MANIFEST_VERSION}; upgrade wpkg",
                self.manifest_version
            )));
        }
        self.capabilities.validate()?;
        crate::config::validate(&self.config)?;
        self.nn.validate()?;
        self.limits.validate()
    }

    /// The permissions in plain words, one line each.
    pub fn describe(&self) -> Vec<String> {
        let c = &self.capabilities;
        let mut out = vec![format!("trigger: {}", self.trigger.as_str())];
        if c.outbound_http.is_empty() {
            out.push("outbound HTTP: none".into());
        } else {
            for o in &c.outbound_http {
                out.push(format!("outbound HTTP: may call {o}"));
            }
        }
        if c.env.is_empty() && c.env_required.is_empty() {
            out.push("environment: none".into());
        }
        for (k, v) in &c.env {
            out.push(format!("environment: {k}={v} (fixed)"));
        }
        for k in &c.env_required {
            out.push(format!(
                "environment: {k} (the operator supplies it at run)"
            ));
        }
        if c.files.is_empty() && c.mounts.is_empty() {
            out.push("files: none".into());
        }
        for f in &c.files {
            out.push(format!(
                "files: bundled `{}` at {}, read-only",
                f.source, f.guest
            ));
        }
        for m in &c.mounts {
            out.push(format!(
                "files: the operator binds a directory at {} at run, at most {}",
                m.guest,
                m.access.as_str()
            ));
        }
        out.extend(crate::config::describe(&self.config));
        out.extend(crate::keyvalue::describe(&c.key_value));
        out.extend(self.nn.describe());
        out.push("network sockets and DNS: none".into());
        out.push(format!(
            "memory: at most {}",
            self.limits.memory_or_default()
        ));
        out.push(match self.limits.timeout {
            Some(t) => format!(
                "time: at most {t} per {}",
                match self.trigger {
                    Trigger::Command => "run",
                    Trigger::Http => "request",
                }
            ),
            None => "time: no limit".into(),
        });
        out
    }
}

/// The JSON schema of `wpkg.toml`, pretty-printed.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Manifest);
    let mut s = serde_json::to_string_pretty(&schema).expect("schema serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "manifest_version = 1\n[package]\nname = \"a\"\nversion = \"1\"\nwasm = \"a.wasm\"\n[trigger]\ntype = \"command\"\n";

    #[test]
    fn minimal() {
        let m = Manifest::parse(MIN).unwrap();
        assert_eq!(m.trigger, Trigger::Command);
        assert_eq!(m.limits.memory_or_default(), DEFAULT_MEMORY);
    }

    #[test]
    fn unknown_key_has_location() {
        let e = Manifest::parse(&format!("{MIN}[capabilities]\nnetwork = true\n")).unwrap_err();
        assert_eq!(e.location, Some((9, 1)));
        assert!(e.message.contains("unknown key `network`"), "{e}");
    }

    #[test]
    fn versions() {
        let e = Manifest::parse(&MIN.replace("= 1", "= 2")).unwrap_err();
        assert!(e.message.contains("newer"), "{e}");
        let e = Manifest::parse(&MIN.replace("manifest_version = 1\n", "")).unwrap_err();
        assert!(e.message.contains("missing"), "{e}");
    }
}
