//! Assembling a Wasm OCI artifact from a `.wasm` and its manifest, and reading one
//! back from the store with every digest checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wpkg_spec::manifest::{ArtifactCapabilities, Manifest};
use wpkg_spec::media::{self, Descriptor, ImageManifest, WasmConfig};

use crate::digest::sha256_digest;
use crate::Error;
use crate::Store;

pub use crate::wasm::{classify_wasm, inspect_wasm, WasmKind};

/// Formats seconds since the Unix epoch as RFC 3339 (UTC).
pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Which layout a build writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BuildFormat {
    /// A Wasm OCI artifact in the CNCF layout, the capabilities in its config: what
    /// `wpkg run` and registries' Wasm tooling read.
    #[default]
    Artifact,
    /// An OCI container image for `wasi/wasm` that containerd 1.6+ unpacks and the wpkg
    /// shim runs: one tar layer with the wasm at [`wpkg_spec::image::IMAGE_WASM`] and the
    /// capabilities at [`wpkg_spec::image::CAPABILITIES_FILE`], the bundled files in a
    /// second layer at their guest paths. `wpkg run` reads it too.
    Image,
}

/// Everything a build needs, already read from disk.
pub struct BuildInput<'a> {
    /// The parsed manifest.
    pub manifest: &'a Manifest,
    /// The project directory (where `wpkg.toml` is).
    pub project_dir: &'a Path,
    /// The wasm bytes.
    pub wasm: &'a [u8],
    /// The file name of the wasm, for the title annotation.
    pub wasm_file_name: &'a str,
    /// Creation time, seconds since the epoch (`SOURCE_DATE_EPOCH`, else 0).
    pub created: i64,
    /// The layout to write.
    pub format: BuildFormat,
}

/// The blobs of a built artifact, not yet in any store.
pub struct BuiltArtifact {
    /// The manifest JSON.
    pub manifest_bytes: Vec<u8>,
    /// The config JSON.
    pub config_bytes: Vec<u8>,
    /// The layers: wasm, then optionally the files tarball.
    pub layers: Vec<Vec<u8>>,
    /// The manifest descriptor.
    pub descriptor: Descriptor,
    /// Component or module.
    pub kind: WasmKind,
}

/// Builds the artifact's blobs. Deterministic: same inputs, same bytes.
pub fn build(input: &BuildInput<'_>) -> Result<BuiltArtifact, Error> {
    let (kind, component) = inspect_wasm(input.wasm).map_err(|reason| Error::BadWasm {
        path: input.wasm_file_name.to_owned(),
        reason,
    })?;
    let m = input.manifest;
    let caps = m.to_artifact_capabilities();
    if kind == WasmKind::Module && m.trigger == wpkg_spec::manifest::Trigger::Http {
        return Err(Error::BadWasm {
            path: input.wasm_file_name.to_owned(),
            reason: "the http trigger needs a wasi:http/proxy component, and this is a core module; build for wasm32-wasip2 or use `type = \"command\"`".into(),
        });
    }
    if input.format == BuildFormat::Image {
        return build_image(input, kind, caps);
    }
    let created = rfc3339(input.created);
    let mut layers = vec![input.wasm.to_vec()];
    let mut layer_descs = vec![Descriptor {
        media_type: media::WASM_LAYER.into(),
        digest: sha256_digest(input.wasm),
        size: input.wasm.len() as u64,
        artifact_type: None,
        annotations: BTreeMap::from([(
            media::ANNOTATION_TITLE.to_owned(),
            input.wasm_file_name.to_owned(),
        )]),
        platform: None,
    }];
    if has_files(m) {
        let tgz = files_layer(input.project_dir, m, input.created)?;
        let guests: Vec<&str> = m
            .capabilities
            .files
            .iter()
            .map(|f| f.guest.as_str())
            .collect();
        layer_descs.push(Descriptor {
            media_type: media::FILES_LAYER.into(),
            digest: sha256_digest(&tgz),
            size: tgz.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::from([
                (
                    media::ANNOTATION_TITLE.to_owned(),
                    "files.tar.gz".to_owned(),
                ),
                (media::ANNOTATION_WPKG_FILES.to_owned(), guests.join(",")),
            ]),
            platform: None,
        });
        layers.push(tgz);
    }
    let config = WasmConfig {
        created: Some(created.clone()),
        author: m.package.author.clone(),
        architecture: "wasm".into(),
        os: kind.os().into(),
        layer_digests: layer_descs.iter().map(|d| d.digest.clone()).collect(),
        component,
        capabilities: Some(caps),
    };
    let config_bytes = serde_json::to_vec(&config).expect("config serializes");
    let annotations = manifest_annotations(m, created);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor {
            media_type: media::WASM_CONFIG.into(),
            digest: sha256_digest(&config_bytes),
            size: config_bytes.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
            platform: None,
        },
        layers: layer_descs,
        subject: None,
        annotations,
    };
    Ok(finish(manifest, config_bytes, layers, kind))
}

/// The manifest annotations of a build: title, version, created, description, source.
fn manifest_annotations(m: &Manifest, created: String) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::from([
        (
            media::ANNOTATION_TITLE.to_owned(),
            m.package.name.to_string(),
        ),
        (
            media::ANNOTATION_VERSION.to_owned(),
            m.package.version.clone(),
        ),
        (media::ANNOTATION_CREATED.to_owned(), created),
    ]);
    if let Some(d) = &m.package.description {
        annotations.insert(media::ANNOTATION_DESCRIPTION.to_owned(), d.clone());
    }
    if let Some(s) = &m.package.source {
        annotations.insert(media::ANNOTATION_SOURCE.to_owned(), s.clone());
    }
    annotations
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut gz, bytes).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

fn tar_layer_descriptor(tgz: &[u8], title: &str) -> Descriptor {
    Descriptor {
        media_type: media::FILES_LAYER.into(),
        digest: sha256_digest(tgz),
        size: tgz.len() as u64,
        artifact_type: None,
        annotations: BTreeMap::from([(media::ANNOTATION_TITLE.to_owned(), title.to_owned())]),
        platform: None,
    }
}

/// The [`BuildFormat::Image`] layout (see there). Deterministic like the artifact.
fn build_image(
    input: &BuildInput<'_>,
    kind: WasmKind,
    caps: ArtifactCapabilities,
) -> Result<BuiltArtifact, Error> {
    use wpkg_spec::image::{EmbeddedCapabilities, CAPABILITIES_FILE, IMAGE_WASM, OCI_IMAGE_CONFIG};
    let m = input.manifest;
    let embedded = EmbeddedCapabilities {
        wasm: IMAGE_WASM.to_owned(),
        wasm_digest: sha256_digest(input.wasm),
        capabilities: caps,
    }
    .to_bytes();
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    let cap_path = Path::new(CAPABILITIES_FILE.trim_start_matches('/'));
    let pack_err = |e: std::io::Error| Error::Files {
        path: input.project_dir.to_owned(),
        reason: e.to_string(),
    };
    let mut h = tar_header(tar::EntryType::Directory, 0, 0o555, input.created);
    tar.append_data(
        &mut h,
        cap_path.parent().expect("has a parent"),
        std::io::empty(),
    )
    .map_err(pack_err)?;
    let mut h = tar_header(
        tar::EntryType::Regular,
        embedded.len() as u64,
        0o444,
        input.created,
    );
    tar.append_data(&mut h, cap_path, embedded.as_slice())
        .map_err(pack_err)?;
    let mut h = tar_header(
        tar::EntryType::Regular,
        input.wasm.len() as u64,
        0o444,
        input.created,
    );
    tar.append_data(&mut h, IMAGE_WASM.trim_start_matches('/'), input.wasm)
        .map_err(pack_err)?;
    let main_tar = tar.into_inner().map_err(pack_err)?;
    let mut tars = vec![(main_tar, "app.tar.gz")];
    if has_files(m) {
        tars.push((
            files_tar(input.project_dir, m, input.created)?,
            "files.tar.gz",
        ));
    }
    let diff_ids: Vec<String> = tars.iter().map(|(t, _)| sha256_digest(t)).collect();
    let layers: Vec<Vec<u8>> = tars.iter().map(|(t, _)| gzip(t)).collect();
    let layer_descs: Vec<Descriptor> = layers
        .iter()
        .zip(&tars)
        .map(|(l, (_, title))| tar_layer_descriptor(l, title))
        .collect();
    let created = rfc3339(input.created);
    let mut config = serde_json::json!({
        "created": created,
        "architecture": "wasm",
        "os": kind.os(),
        "config": { "Entrypoint": [IMAGE_WASM] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    if let Some(author) = &m.package.author {
        config["author"] = author.clone().into();
    }
    let config_bytes = serde_json::to_vec(&config).expect("config serializes");
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor {
            media_type: OCI_IMAGE_CONFIG.into(),
            digest: sha256_digest(&config_bytes),
            size: config_bytes.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
            platform: None,
        },
        layers: layer_descs,
        subject: None,
        annotations: manifest_annotations(m, created),
    };
    Ok(finish(manifest, config_bytes, layers, kind))
}

/// Serializes the manifest and makes its descriptor.
fn finish(
    manifest: ImageManifest,
    config_bytes: Vec<u8>,
    layers: Vec<Vec<u8>>,
    kind: WasmKind,
) -> BuiltArtifact {
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serializes");
    let descriptor = Descriptor {
        media_type: media::OCI_MANIFEST.into(),
        digest: sha256_digest(&manifest_bytes),
        size: manifest_bytes.len() as u64,
        artifact_type: None,
        annotations: BTreeMap::new(),
        platform: None,
    };
    BuiltArtifact {
        manifest_bytes,
        config_bytes,
        layers,
        descriptor,
        kind,
    }
}

/// Whether the artifact gets a files layer: bundled directories or models.
fn has_files(m: &Manifest) -> bool {
    !m.capabilities.files.is_empty() || !m.nn.is_empty()
}

/// Packs the declared `files` directories into one deterministic tar+gzip (see
/// [`files_tar`]).
fn files_layer(project: &Path, m: &Manifest, mtime: i64) -> Result<Vec<u8>, Error> {
    Ok(gzip(&files_tar(project, m, mtime)?))
}

/// Packs the declared `files` directories into one deterministic tar: entries sorted,
/// owner 0, fixed modes and mtimes; paths are the guest paths without the leading `/`.
/// Symlinks and special files are refused.
fn files_tar(project: &Path, m: &Manifest, mtime: i64) -> Result<Vec<u8>, Error> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    for f in &m.capabilities.files {
        let src = project.join(&f.source);
        let meta = std::fs::symlink_metadata(&src).map_err(|e| Error::Files {
            path: src.clone(),
            reason: format!("cannot read it ({e}); create it or fix `files` in wpkg.toml"),
        })?;
        if !meta.is_dir() {
            return Err(Error::Files {
                path: src,
                reason: "a `files` source must be a directory".into(),
            });
        }
        let prefix = PathBuf::from(f.guest.as_str().trim_start_matches('/'));
        let mut entries = Vec::new();
        walk(&src, Path::new(""), &mut entries)?;
        append_dir(&mut tar, &prefix, mtime)?;
        for (rel, is_dir) in entries {
            let path = prefix.join(&rel);
            if is_dir {
                append_dir(&mut tar, &path, mtime)?;
            } else {
                let full = src.join(&rel);
                let data = std::fs::read(&full).map_err(|e| Error::Files {
                    path: full.clone(),
                    reason: e.to_string(),
                })?;
                let mut h = tar_header(tar::EntryType::Regular, data.len() as u64, 0o444, mtime);
                tar.append_data(&mut h, &path, data.as_slice())
                    .map_err(|e| Error::Files {
                        path: full,
                        reason: e.to_string(),
                    })?;
            }
        }
    }
    // Models (wasi-nn) go under `.wpkg/nn/NAME.onnx`, which no guest path can name.
    let models = m.nn.named();
    if !models.is_empty() {
        append_dir(&mut tar, Path::new(".wpkg"), mtime)?;
        append_dir(&mut tar, Path::new(wpkg_spec::nn::MODELS_DIR), mtime)?;
    }
    for (name, rel) in models {
        let full = project.join(rel);
        let meta = std::fs::symlink_metadata(&full).map_err(|e| Error::Files {
            path: full.clone(),
            reason: format!("cannot read it ({e}); fix `nn.models` in wpkg.toml"),
        })?;
        if !meta.is_file() {
            return Err(Error::Files {
                path: full,
                reason: "a model must be a regular file (not a link or directory)".into(),
            });
        }
        let data = std::fs::read(&full).map_err(|e| Error::Files {
            path: full.clone(),
            reason: e.to_string(),
        })?;
        let mut h = tar_header(tar::EntryType::Regular, data.len() as u64, 0o444, mtime);
        let path = Path::new(wpkg_spec::nn::MODELS_DIR).join(format!("{name}.onnx"));
        tar.append_data(&mut h, &path, data.as_slice())
            .map_err(|e| Error::Files {
                path: full,
                reason: e.to_string(),
            })?;
    }
    tar.into_inner().map_err(|e| Error::Files {
        path: project.to_owned(),
        reason: e.to_string(),
    })
}

/// A deterministic tar header: owner 0, the given mode and mtime (negative → 0).
pub(crate) fn tar_header(kind: tar::EntryType, size: u64, mode: u32, mtime: i64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime.max(0) as u64);
    h
}

fn append_dir(tar: &mut tar::Builder<Vec<u8>>, path: &Path, mtime: i64) -> Result<(), Error> {
    let mut h = tar_header(tar::EntryType::Directory, 0, 0o555, mtime);
    tar.append_data(&mut h, path, std::io::empty())
        .map_err(|e| Error::Files {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, bool)>) -> Result<(), Error> {
    let dir = root.join(rel);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| Error::Files {
        path: dir.clone(),
        reason: e.to_string(),
    })? {
        let entry = entry.map_err(|e| Error::Files {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        names.push(entry.file_name());
    }
    names.sort();
    for name in names {
        let r = rel.join(&name);
        let full = root.join(&r);
        let meta = std::fs::symlink_metadata(&full).map_err(|e| Error::Files {
            path: full.clone(),
            reason: e.to_string(),
        })?;
        if name.to_str().is_none() {
            return Err(Error::Files {
                path: full,
                reason: "file names must be UTF-8".into(),
            });
        }
        if meta.file_type().is_symlink() {
            return Err(Error::Files {
                path: full,
                reason: "symlinks cannot be bundled; copy the file instead".into(),
            });
        } else if meta.is_dir() {
            out.push((r.clone(), true));
            walk(root, &r, out)?;
        } else if meta.is_file() {
            out.push((r, false));
        } else {
            return Err(Error::Files {
                path: full,
                reason: "only regular files and directories can be bundled".into(),
            });
        }
    }
    Ok(())
}

/// Stores a built artifact and tags it, under the store lock.
pub fn store_built(
    store: &Store,
    built: &BuiltArtifact,
    tag: &wpkg_spec::Reference,
) -> Result<(), Error> {
    let lock = store.lock()?;
    for layer in &built.layers {
        store.put_blob(layer)?;
    }
    store.put_blob(&built.config_bytes)?;
    store.put_blob(&built.manifest_bytes)?;
    let mut desc = built.descriptor.clone();
    crate::Origin::Build.mark(&mut desc);
    store.set_tag_locked(&lock, tag, &desc)
}

/// An artifact read back from the store, every blob verified.
#[derive(Debug, Clone)]
pub struct LoadedArtifact {
    /// The manifest descriptor (its digest is the artifact's identity).
    pub descriptor: Descriptor,
    /// The parsed manifest.
    pub manifest: ImageManifest,
    /// The parsed config.
    pub config: WasmConfig,
    /// The descriptor of the wasm layer.
    pub wasm_layer: Descriptor,
    /// The descriptor of the bundled-files layer, if any.
    pub files_layer: Option<Descriptor>,
}

impl LoadedArtifact {
    /// The capabilities, validated; artifacts from other tools get none (deny all).
    pub fn capabilities(&self) -> Result<ArtifactCapabilities, Error> {
        let caps = match &self.config.capabilities {
            Some(c) => c.clone(),
            None => ArtifactCapabilities {
                manifest_version: wpkg_spec::manifest::MANIFEST_VERSION,
                trigger: if self.config.component.as_ref().is_some_and(|c| {
                    c.exports
                        .iter()
                        .any(|e| e.starts_with("wasi:http/incoming-handler"))
                }) {
                    wpkg_spec::manifest::Trigger::Http
                } else {
                    wpkg_spec::manifest::Trigger::Command
                },
                capabilities: Default::default(),
                limits: Default::default(),
                config: Default::default(),
                nn: Default::default(),
            },
        };
        caps.validate().map_err(|e| Error::BadManifest {
            digest: self.descriptor.digest.clone(),
            reason: e.to_string(),
        })?;
        Ok(caps)
    }
}

/// Loads and checks the manifest and config behind `desc`.
pub fn load(store: &Store, desc: &Descriptor) -> Result<LoadedArtifact, Error> {
    let bytes = store.read_descriptor(desc)?;
    let bad = |reason: String| Error::BadManifest {
        digest: desc.digest.clone(),
        reason,
    };
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("manifest does not parse: {e}")))?;
    if manifest.config.media_type != media::WASM_CONFIG {
        return Err(Error::NotWasm {
            what: format!("its config is `{}`", manifest.config.media_type),
        });
    }
    let config_bytes = store.read_descriptor(&manifest.config)?;
    let config: WasmConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| bad(format!("config does not parse: {e}")))?;
    let wasm_layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == media::WASM_LAYER)
        .cloned()
        .ok_or_else(|| Error::NotWasm {
            what: "it has no `application/wasm` layer".into(),
        })?;
    let files_layer = manifest
        .layers
        .iter()
        .find(|l| {
            l.media_type == media::FILES_LAYER
                && l.annotations.contains_key(media::ANNOTATION_WPKG_FILES)
        })
        .cloned();
    Ok(LoadedArtifact {
        descriptor: desc.clone(),
        manifest,
        config,
        wasm_layer,
        files_layer,
    })
}

/// Extracts a bundled-files layer into `dest` (built in a temporary sibling and
/// renamed into place; reused only when wpkg's record in it is current). Only files
/// and directories; absolute paths and `..` are refused; every path resolves inside
/// (see [`crate::unpack`]).
pub fn extract_files(
    store: &Store,
    layer: &Descriptor,
    dest: &Path,
) -> Result<crate::unpack::Unpacked, Error> {
    let limits = store.unpack_limits();
    crate::unpack::unpack_dir(dest, ".extract-", |root| {
        let bytes = store.read_descriptor(layer)?;
        crate::unpack::apply_tar(
            root,
            &layer.digest,
            flate2::read::GzDecoder::new(bytes.as_slice()),
            crate::unpack::Entries::FilesOnly,
            limits,
        )?;
        Ok(Vec::new())
    })
}
