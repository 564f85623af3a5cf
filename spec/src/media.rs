//! OCI media types and the Wasm artifact config of the CNCF TAG-Runtime
//! *Wasm OCI Artifact* layout, with wpkg's capabilities under one namespaced field.

use serde::{Deserialize, Serialize};

use crate::manifest::ArtifactCapabilities;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The CNCF Wasm config.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The wasm layer.
pub const WASM_LAYER: &str = "application/wasm";
/// The bundled files layer.
pub const FILES_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The config field that carries wpkg's capabilities.
pub const CAPABILITIES_KEY: &str = "dev.wpkg.capabilities";

/// Annotation: a layer's file name, or the artifact's title.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// Annotation: version.
pub const ANNOTATION_VERSION: &str = "org.opencontainers.image.version";
/// Annotation: description.
pub const ANNOTATION_DESCRIPTION: &str = "org.opencontainers.image.description";
/// Annotation: source repository.
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
/// Annotation: creation time (RFC 3339).
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Annotation on index entries: the reference name (tag) in an OCI layout.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation marking the bundled-files layer, with the guest paths it holds.
pub const ANNOTATION_WPKG_FILES: &str = "dev.wpkg.files";

/// The config blob of a Wasm artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Always `wasm`.
    pub architecture: String,
    /// `wasip1` (core module) or `wasip2` (component).
    pub os: String,
    /// Digests of the layers, in order.
    #[serde(default)]
    pub layer_digests: Vec<String>,
    /// What a component imports and exports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentInfo>,
    /// wpkg's capabilities (absent in artifacts made by other tools).
    #[serde(
        rename = "dev.wpkg.capabilities",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub capabilities: Option<ArtifactCapabilities>,
}

/// The `component` field of the Wasm config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentInfo {
    /// Exported interface names.
    #[serde(default)]
    pub exports: Vec<String>,
    /// Imported interface names.
    #[serde(default)]
    pub imports: Vec<String>,
    /// The world, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// An OCI content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the content.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// The artifact type, for manifests of artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The platform, in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// A platform in an image index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// e.g. `wasm`.
    pub architecture: String,
    /// e.g. `wasip2`.
    pub os: String,
}

/// An OCI image manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`OCI_MANIFEST`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type, when set by the producer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, in order.
    pub layers: Vec<Descriptor>,
    /// For referrers: the manifest this one refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// An OCI image index (also `index.json` of an image layout).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// [`OCI_INDEX`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests.
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}
