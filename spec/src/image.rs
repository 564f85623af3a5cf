//! The images people already publish with Wasm inside: Docker+Wasm images
//! (`docker buildx build --platform wasi/wasm`: an ordinary image whose config says `os`
//! `wasi`/`wasip1`/`wasip2` and `architecture` `wasm`, tar layers holding the `.wasm` and
//! files, `Entrypoint`/`Cmd`/`Env`/`WorkingDir`), multi-platform indexes with `linux/*`
//! and buildx attestation entries, Docker v2 media types, and the component layer type
//! runwasi accepts. Pure formats and selection rules; no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manifest::ArtifactCapabilities;
use crate::media::{Descriptor, ImageIndex};

/// Docker's image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The OCI image config.
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The Wasm component layer runwasi also accepts (the layer is the component itself).
pub const COMPONENT_LAYER: &str = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";
/// The annotation buildx puts on attestation entries of an index.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// How a layer's bytes are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// An uncompressed tar.
    Tar,
    /// A gzip-compressed tar.
    TarGzip,
    /// A raw Wasm binary (component layer).
    Wasm,
}

/// The kind of an image layer, by media type; `None` for what wpkg does not apply
/// (zstd, foreign, encrypted layers are refused, never skipped).
pub fn layer_kind(media_type: &str) -> Option<LayerKind> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Some(LayerKind::Tar),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Some(LayerKind::TarGzip),
        COMPONENT_LAYER | crate::media::WASM_LAYER => Some(LayerKind::Wasm),
        _ => None,
    }
}

/// Whether a manifest media type is an index (OCI or Docker).
pub fn is_index(media_type: &str) -> bool {
    media_type == crate::media::OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Whether a config media type is a container image config (OCI or Docker).
pub fn is_image_config(media_type: &str) -> bool {
    media_type == OCI_IMAGE_CONFIG || media_type == DOCKER_CONFIG
}

/// Whether `os`/`architecture` name a Wasm platform.
pub fn is_wasm_platform(os: &str, architecture: &str) -> bool {
    architecture == "wasm" && matches!(os, "wasi" | "wasip1" | "wasip2")
}

/// Whether an index entry is a buildx attestation (SBOM, provenance), not an image.
pub fn is_attestation(d: &Descriptor) -> bool {
    d.annotations.get(REFERENCE_TYPE).map(String::as_str) == Some("attestation-manifest")
        || d.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

/// Picks the Wasm entry of an index: `architecture` `wasm` and `os` one of
/// `wasi`/`wasip1`/`wasip2`, attestations skipped. Otherwise the platforms the index
/// does have (`os/architecture`), for the refusal.
pub fn select_wasm(index: &ImageIndex) -> Result<&Descriptor, Vec<String>> {
    let images = index.manifests.iter().filter(|d| !is_attestation(d));
    let mut platforms = Vec::new();
    for d in images {
        match &d.platform {
            Some(p) if is_wasm_platform(&p.os, &p.architecture) => return Ok(d),
            Some(p) => platforms.push(format!("{}/{}", p.os, p.architecture)),
            None => platforms.push("(no platform)".to_owned()),
        }
    }
    Err(platforms)
}

/// A container image config (OCI or Docker), the fields wpkg reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// e.g. `wasm`.
    #[serde(default)]
    pub architecture: String,
    /// e.g. `wasip1`.
    #[serde(default)]
    pub os: String,
    /// How to run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RuntimeConfig>,
    /// When it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Everything else, kept as it was.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The `config` object of an image config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    /// The program and its first arguments.
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments (replaced by the operator's).
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `NAME=VALUE` variables.
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// The working directory.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    /// Everything else, kept as it was.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl ImageConfig {
    /// Whether the config says it is a Wasm image.
    pub fn is_wasm(&self) -> bool {
        is_wasm_platform(&self.os, &self.architecture)
    }
}

/// Where the wasm of a Docker+Wasm image is: `Entrypoint[0]`, in runwasi's
/// `path#function` form (the function part is kept, for refusing what wpkg does not do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The path of the `.wasm` inside the image's files.
    pub path: String,
    /// The exported function to call, when given.
    pub function: Option<String>,
}

impl Entry {
    /// From `Entrypoint[0]`, else `Cmd[0]` (as Docker runs an image without an
    /// entrypoint); `None` when neither names a program.
    pub fn of(config: &RuntimeConfig) -> Option<Entry> {
        let first = config
            .entrypoint
            .as_ref()
            .and_then(|e| e.first())
            .or_else(|| config.cmd.as_ref().and_then(|c| c.first()))?;
        let (path, function) = match first.split_once('#') {
            Some((p, f)) => (p, Some(f.to_owned())),
            None => (first.as_str(), None),
        };
        (!path.is_empty()).then(|| Entry {
            path: path.to_owned(),
            function,
        })
    }
}

/// The guest's arguments after `argv[0]`, as Docker builds them: the rest of
/// `Entrypoint`, then `Cmd` — or the operator's arguments in place of `Cmd`.
pub fn arguments(config: &RuntimeConfig, operator: Option<&[String]>) -> Vec<String> {
    let ep = config.entrypoint.clone().unwrap_or_default();
    let cmd = config.cmd.clone().unwrap_or_default();
    let mut full: Vec<String> = ep;
    match operator {
        Some(args) if !args.is_empty() => full.extend(args.iter().cloned()),
        _ => full.extend(cmd),
    }
    // argv[0] is the entry itself (from Entrypoint, else from Cmd).
    full.into_iter().skip(1).collect()
}

/// Where an image made by `wpkg build` for containerd carries its capabilities, inside
/// its files. containerd's shims see a container's files but not its image config, so
/// the capabilities travel in a layer, which the manifest digest covers like the rest.
pub const CAPABILITIES_FILE: &str = "/.wpkg/capabilities.json";

/// Where an image made by `wpkg build` for containerd holds its wasm.
pub const IMAGE_WASM: &str = "/app.wasm";

/// The contents of [`CAPABILITIES_FILE`]: the capabilities, bound to the one wasm
/// they are for by its path and digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedCapabilities {
    /// The wasm's path in the image's files (absolute).
    pub wasm: String,
    /// The wasm's digest, `sha256:<hex>`; checked before the wasm runs.
    pub wasm_digest: String,
    /// What the wasm may do, as in a wpkg artifact's config.
    #[serde(rename = "dev.wpkg.capabilities")]
    pub capabilities: ArtifactCapabilities,
}

impl EmbeddedCapabilities {
    /// Parses and validates the file's bytes; the error says what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<EmbeddedCapabilities, String> {
        let e: EmbeddedCapabilities =
            serde_json::from_slice(bytes).map_err(|e| format!("it does not parse: {e}"))?;
        if !e.wasm.starts_with('/') || e.wasm.split('/').any(|c| c == "..") {
            return Err(format!(
                "`wasm` must be an absolute path without `..`, not `{}`",
                e.wasm
            ));
        }
        crate::Digest::parse(&e.wasm_digest)
            .map_err(|_| format!("`wasm_digest` is not a sha256 digest: `{}`", e.wasm_digest))?;
        e.capabilities.validate().map_err(|e| e.to_string())?;
        Ok(e)
    }

    /// The bytes of the file, as `wpkg build` writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("capabilities serialize");
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Platform;

    fn entry(os: &str, arch: &str, annotations: &[(&str, &str)]) -> Descriptor {
        Descriptor {
            media_type: crate::media::OCI_MANIFEST.into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size: 1,
            artifact_type: None,
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            platform: Some(Platform {
                architecture: arch.into(),
                os: os.into(),
            }),
        }
    }

    #[test]
    fn selects_the_wasm_entry_and_skips_attestations() {
        let index = |m: Vec<Descriptor>| ImageIndex {
            schema_version: 2,
            media_type: Some(DOCKER_MANIFEST_LIST.into()),
            manifests: m,
            annotations: Default::default(),
        };
        let i = index(vec![
            entry("linux", "amd64", &[]),
            entry(
                "unknown",
                "unknown",
                &[(REFERENCE_TYPE, "attestation-manifest")],
            ),
            entry("wasip1", "wasm", &[]),
        ]);
        assert_eq!(
            select_wasm(&i).unwrap().platform.as_ref().unwrap().os,
            "wasip1"
        );
        let i = index(vec![
            entry("linux", "amd64", &[]),
            entry("linux", "arm64", &[]),
            entry(
                "unknown",
                "unknown",
                &[(REFERENCE_TYPE, "attestation-manifest")],
            ),
        ]);
        assert_eq!(
            select_wasm(&i).unwrap_err(),
            vec!["linux/amd64", "linux/arm64"]
        );
        // `wasi` os with another architecture is not a Wasm platform.
        let i = index(vec![entry("wasi", "amd64", &[])]);
        assert!(select_wasm(&i).is_err());
    }

    #[test]
    fn entry_and_arguments_follow_docker() {
        let c = |ep: &[&str], cmd: &[&str]| RuntimeConfig {
            entrypoint: (!ep.is_empty()).then(|| ep.iter().map(|s| s.to_string()).collect()),
            cmd: (!cmd.is_empty()).then(|| cmd.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let cfg = c(&["/app.wasm", "--flag"], &["default"]);
        assert_eq!(
            Entry::of(&cfg),
            Some(Entry {
                path: "/app.wasm".into(),
                function: None
            })
        );
        assert_eq!(arguments(&cfg, None), ["--flag", "default"]);
        let mine = vec!["x".to_string()];
        assert_eq!(arguments(&cfg, Some(&mine)), ["--flag", "x"]);
        let runwasi = c(&["/lib.wasm#run"], &[]);
        assert_eq!(
            Entry::of(&runwasi).unwrap().function.as_deref(),
            Some("run")
        );
        // No entrypoint: Cmd[0] is the program.
        let cmd_only = c(&[], &["/app.wasm", "a"]);
        assert_eq!(Entry::of(&cmd_only).unwrap().path, "/app.wasm");
        assert_eq!(arguments(&cmd_only, None), ["a"]);
        assert_eq!(Entry::of(&c(&[], &[])), None);
    }

    #[test]
    fn config_round_trip_keeps_unknown_fields() {
        let text = r#"{"architecture":"wasm","os":"wasip1","config":{"Entrypoint":["/hello.wasm"],"Env":["A=1"],"Labels":{"x":"y"}},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c: ImageConfig = serde_json::from_str(text).unwrap();
        assert!(c.is_wasm());
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["rootfs"]["type"], "layers");
        assert_eq!(back["config"]["Labels"]["x"], "y");
        assert_eq!(
            layer_kind("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(LayerKind::TarGzip)
        );
        assert_eq!(
            layer_kind("application/vnd.oci.image.layer.v1.tar+zstd"),
            None
        );
    }
}
