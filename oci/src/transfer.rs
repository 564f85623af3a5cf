//! Moving artifacts between the local store and registries: `push` (blobs the registry
//! has are skipped, uploads stream from the store and are verified as they are read)
//! and `pull` (blobs stream to temporary files and enter the store only after their
//! digest and size check; the tag last).

use std::io::{Read, Write};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wpkg_spec::media::{self, Descriptor, ImageIndex, ImageManifest};
use wpkg_spec::Reference;

use crate::registry::{Access, FetchedManifest, Registry, RegistryError};
use crate::Store;

/// Errors of push and pull.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The registry side.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The local store side.
    #[error(transparent)]
    Store(#[from] crate::Error),
    /// The remote content is not a Wasm artifact.
    #[error("`{reference}` is not a Wasm artifact: {what}")]
    NotWasm {
        /// The reference.
        reference: String,
        /// What it is instead.
        what: String,
    },
}

/// What is happening to one blob, for progress displays.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// The destination already has it.
    Exists {
        /// The blob.
        digest: &'a str,
        /// Its size.
        size: u64,
    },
    /// A transfer starts (or restarts after a transient failure).
    Start {
        /// The blob.
        digest: &'a str,
        /// Its size.
        size: u64,
    },
    /// Bytes moved so far.
    Bytes {
        /// The blob.
        digest: &'a str,
        /// Bytes done.
        done: u64,
    },
    /// The blob is done.
    Done {
        /// The blob.
        digest: &'a str,
    },
}

/// Receives [`Event`]s (from any thread: uploads stream on the HTTP client's thread).
pub trait Progress: Send + Sync {
    /// Called for each event.
    fn event(&self, e: Event<'_>);
}

/// A progress receiver that ignores everything.
pub struct Quiet;
impl Progress for Quiet {
    fn event(&self, _e: Event<'_>) {}
}

/// What a push did.
#[derive(Clone, Debug)]
pub struct PushReport {
    /// The manifest digest in the registry.
    pub digest: String,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs the registry already had.
    pub skipped: usize,
    /// Bytes uploaded.
    pub bytes: u64,
}

/// What a pull did.
#[derive(Clone, Debug)]
pub struct PullReport {
    /// The manifest now in the store (for an index, the wasm entry's manifest).
    pub descriptor: Descriptor,
    /// Blobs downloaded.
    pub downloaded: usize,
    /// Blobs the store already had.
    pub present: usize,
    /// Bytes downloaded.
    pub bytes: u64,
}

fn blobs_of(manifest: &ImageManifest) -> Vec<&Descriptor> {
    std::iter::once(&manifest.config)
        .chain(manifest.layers.iter())
        .collect()
}

/// A reader that reports progress.
struct Counting<R> {
    inner: R,
    done: u64,
    last: u64,
    digest: String,
    progress: Arc<dyn Progress>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done - self.last >= 256 * 1024 || n == 0 {
            self.last = self.done;
            self.progress.event(Event::Bytes {
                digest: &self.digest,
                done: self.done,
            });
        }
        Ok(n)
    }
}

/// Pushes the local manifest `local` and its blobs to `remote` (its tag, or its digest
/// when it has no tag).
pub fn push(
    registry: &Registry,
    store: &Store,
    local: &Descriptor,
    remote: &Reference,
    progress: &Arc<dyn Progress>,
) -> Result<PushReport, TransferError> {
    let bytes = store.read_descriptor(local)?;
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|e| crate::Error::BadManifest {
            digest: local.digest.clone(),
            reason: format!("manifest does not parse: {e}"),
        })?;
    let mut report = PushReport {
        digest: local.digest.clone(),
        uploaded: 0,
        skipped: 0,
        bytes: 0,
    };
    for blob in blobs_of(&manifest) {
        if registry.blob_exists(remote, Access::Push, &blob.digest)? {
            progress.event(Event::Exists {
                digest: &blob.digest,
                size: blob.size,
            });
            report.skipped += 1;
            continue;
        }
        // Fails early, before any upload, if the local blob is missing.
        store.open_blob(&blob.digest, blob.size)?;
        let mut body = || {
            progress.event(Event::Start {
                digest: &blob.digest,
                size: blob.size,
            });
            let reader = store.open_blob(&blob.digest, blob.size).map_err(|e| {
                RegistryError::Setup(format!("reading the local blob {}: {e}", blob.digest))
            })?;
            Ok(reqwest::blocking::Body::sized(
                Counting {
                    inner: reader,
                    done: 0,
                    last: 0,
                    digest: blob.digest.clone(),
                    progress: progress.clone(),
                },
                blob.size,
            ))
        };
        registry.upload_blob(remote, &blob.digest, blob.size, &mut body)?;
        progress.event(Event::Done {
            digest: &blob.digest,
        });
        report.uploaded += 1;
        report.bytes += blob.size;
    }
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| local.media_type.clone());
    let target = remote.tag.clone().unwrap_or_else(|| local.digest.clone());
    if let Some(d) = &remote.digest {
        if *d != local.digest {
            return Err(TransferError::Registry(RegistryError::Setup(format!(
                "the destination names digest {d}, but the image is {}; drop `@{d}` from the destination",
                local.digest
            ))));
        }
    }
    report.digest = registry.put_manifest(remote, &target, &media_type, &bytes)?;
    Ok(report)
}

fn is_index(media_type: &str) -> bool {
    media_type == media::OCI_INDEX
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
}

/// Says what a non-Wasm manifest is, for the refusal message.
fn describe_non_wasm(m: &ImageManifest) -> Option<String> {
    let config = m.config.media_type.as_str();
    let has_wasm_layer = m.layers.iter().any(|l| l.media_type == media::WASM_LAYER);
    if config == media::WASM_CONFIG && has_wasm_layer {
        return None;
    }
    let layer_types: Vec<&str> = {
        let mut v: Vec<&str> = m.layers.iter().map(|l| l.media_type.as_str()).collect();
        v.dedup();
        v
    };
    Some(match config {
        "application/vnd.docker.container.image.v1+json" | "application/vnd.oci.image.config.v1+json" => format!(
            "it is a container image ({} layer(s) of {}); run it with docker or podman",
            m.layers.len(),
            layer_types.join(", ")
        ),
        "application/vnd.cncf.helm.config.v1+json" => "it is a Helm chart".to_owned(),
        c if c == media::WASM_CONFIG => format!(
            "its config is a Wasm config but it has no `application/wasm` layer (layers: {})",
            if layer_types.is_empty() { "none".to_owned() } else { layer_types.join(", ") }
        ),
        c => format!(
            "its config is `{c}` (a Wasm artifact has `{}` and one `application/wasm` layer); layers: {}",
            media::WASM_CONFIG,
            if layer_types.is_empty() { "none".to_owned() } else { layer_types.join(", ") }
        ),
    })
}

fn parse_manifest(
    remote: &Reference,
    fetched: &FetchedManifest,
) -> Result<ImageManifest, TransferError> {
    if fetched.media_type == "application/vnd.docker.distribution.manifest.v1+json"
        || fetched.media_type == "application/vnd.docker.distribution.manifest.v1+prettyjws"
    {
        return Err(TransferError::NotWasm {
            reference: remote.familiar(),
            what: "it is a Docker schema 1 container image".into(),
        });
    }
    let m: ImageManifest =
        serde_json::from_slice(&fetched.bytes).map_err(|e| RegistryError::Protocol {
            registry: remote.registry.clone(),
            detail: format!(
                "the manifest of `{}` ({}) does not parse: {e}",
                remote.familiar(),
                fetched.media_type
            ),
        })?;
    if let Some(what) = describe_non_wasm(&m) {
        return Err(TransferError::NotWasm {
            reference: remote.familiar(),
            what,
        });
    }
    Ok(m)
}

/// Picks the Wasm entry of an index.
fn pick_wasm(remote: &Reference, index: &ImageIndex) -> Result<Descriptor, TransferError> {
    let wasm = index.manifests.iter().find(|d| {
        d.platform.as_ref().is_some_and(|p| {
            p.architecture == "wasm" || p.os == "wasip1" || p.os == "wasip2" || p.os == "wasi"
        })
    });
    if let Some(d) = wasm {
        return Ok(d.clone());
    }
    let platforms: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| {
            d.platform
                .as_ref()
                .map(|p| format!("{}/{}", p.os, p.architecture))
        })
        .collect();
    Err(TransferError::NotWasm {
        reference: remote.familiar(),
        what: if platforms.is_empty() {
            format!(
                "it is an index of {} manifest(s) with no wasm platform entry",
                index.manifests.len()
            )
        } else {
            format!(
                "it is a multi-platform image for {} with no wasm entry",
                platforms.join(", ")
            )
        },
    })
}

/// Pulls `remote` into the store and tags it there with the same reference. Blobs the
/// store has are not downloaded again.
pub fn pull(
    registry: &Registry,
    store: &Store,
    remote: &Reference,
    progress: &Arc<dyn Progress>,
) -> Result<PullReport, TransferError> {
    let mut fetched = registry.get_manifest(remote)?;
    if is_index(&fetched.media_type) {
        let index: ImageIndex =
            serde_json::from_slice(&fetched.bytes).map_err(|e| RegistryError::Protocol {
                registry: remote.registry.clone(),
                detail: format!("the index of `{}` does not parse: {e}", remote.familiar()),
            })?;
        let entry = pick_wasm(remote, &index)?;
        if !wpkg_spec::reference::is_valid_digest(&entry.digest) {
            return Err(RegistryError::Protocol {
                registry: remote.registry.clone(),
                detail: format!("the index names an invalid digest `{}`", entry.digest),
            }
            .into());
        }
        fetched = registry.get_manifest_at(remote, &entry.digest)?;
        if fetched.bytes.len() as u64 != entry.size {
            return Err(RegistryError::Integrity {
                registry: remote.registry.clone(),
                what: format!("manifest {}", entry.digest),
                detail: format!(
                    "the index says {} bytes, the registry sent {}",
                    entry.size,
                    fetched.bytes.len()
                ),
            }
            .into());
        }
    }
    let manifest = parse_manifest(remote, &fetched)?;
    let mut report = PullReport {
        descriptor: Descriptor {
            media_type: fetched.media_type.clone(),
            digest: fetched.digest.clone(),
            size: fetched.bytes.len() as u64,
            artifact_type: None,
            annotations: Default::default(),
            platform: None,
        },
        downloaded: 0,
        present: 0,
        bytes: 0,
    };
    for blob in blobs_of(&manifest) {
        if !wpkg_spec::reference::is_valid_digest(&blob.digest) {
            return Err(RegistryError::Protocol {
                registry: remote.registry.clone(),
                detail: format!(
                    "the manifest names a blob with an unsupported digest `{}`",
                    blob.digest
                ),
            }
            .into());
        }
        if store.read_descriptor(blob).is_ok() {
            progress.event(Event::Exists {
                digest: &blob.digest,
                size: blob.size,
            });
            report.present += 1;
            continue;
        }
        download(registry, store, remote, blob, progress)?;
        progress.event(Event::Done {
            digest: &blob.digest,
        });
        report.downloaded += 1;
        report.bytes += blob.size;
    }
    store.put_blob_expecting(&fetched.bytes, &fetched.digest, None)?;
    // Signatures before the tag: a visible image has whatever signatures it had.
    let sigs = fetch_signatures(registry, remote, &fetched.digest)?;
    let lock = store.lock()?;
    // A `wpkg rm` running meanwhile may have collected blobs no tag reached yet.
    for blob in blobs_of(&manifest) {
        if !store.has_blob(&blob.digest) {
            return Err(crate::Error::BlobMissing(blob.digest.clone()).into());
        }
    }
    sigs.store_into(store, &lock, remote)?;
    let mut tagged = report.descriptor.clone();
    tagged.annotations.insert(
        crate::store::ORIGIN_ANNOTATION.to_owned(),
        "pull".to_owned(),
    );
    store.set_tag_locked(&lock, remote, &tagged)?;
    Ok(report)
}

/// Largest sigstore bundle wpkg reads (a certificate chain and log entries fit).
const MAX_SIGNATURE_BLOB: u64 = 256 * 1024;
/// Largest simple-signing payload wpkg reads.
const MAX_PAYLOAD: u64 = 64 * 1024;
/// Most signatures (layers or referrers) wpkg reads for one image.
const MAX_SIGNATURES: usize = 50;

/// A manifest and the blobs it names, fetched.
#[derive(Clone, Debug)]
struct FetchedSet {
    manifest: FetchedManifest,
    blobs: Vec<Vec<u8>>,
}

/// The signature material a registry holds for one image.
#[derive(Clone, Debug, Default)]
pub struct RemoteSignatures {
    subject: Option<String>,
    classic: Option<FetchedSet>,
    bundles: Vec<FetchedSet>,
}

impl RemoteSignatures {
    /// The signatures, for verification (read from what was fetched, every blob
    /// already digest-checked).
    pub fn material(&self) -> crate::signature::Material {
        let fetched = |set: &FetchedSet, d: &Descriptor| {
            set.blobs
                .iter()
                .find(|b| crate::store::sha256_digest(b) == d.digest)
                .cloned()
                .ok_or(())
        };
        let mut out = crate::signature::Material::default();
        if let Some(c) = &self.classic {
            if let Ok(m) = serde_json::from_slice::<ImageManifest>(&c.manifest.bytes) {
                out.classic = crate::signature::classic_from_manifest(&m, |d| fetched(c, d))
                    .unwrap_or_default();
            }
        }
        for b in &self.bundles {
            out.bundles.extend(b.blobs.first().cloned());
        }
        out
    }

    fn store_into(
        &self,
        store: &Store,
        lock: &crate::store::IndexLock,
        image: &Reference,
    ) -> Result<(), TransferError> {
        let Some(subject) = &self.subject else {
            return Ok(());
        };
        let put = |set: &FetchedSet| -> Result<Descriptor, TransferError> {
            for b in &set.blobs {
                store.put_blob(b)?;
            }
            store.put_blob_expecting(&set.manifest.bytes, &set.manifest.digest, None)?;
            Ok(Descriptor {
                media_type: set.manifest.media_type.clone(),
                digest: set.manifest.digest.clone(),
                size: set.manifest.bytes.len() as u64,
                artifact_type: None,
                annotations: Default::default(),
                platform: None,
            })
        };
        if let Some(c) = &self.classic {
            let d = put(c)?;
            store.set_tag_locked(
                lock,
                &image.with_tag(&crate::signature::signature_tag(subject)),
                &d,
            )?;
        }
        if !self.bundles.is_empty() {
            let mut manifests = Vec::new();
            for b in &self.bundles {
                manifests.push(put(b)?);
            }
            let index = ImageIndex {
                schema_version: 2,
                media_type: Some(media::OCI_INDEX.into()),
                manifests,
                annotations: Default::default(),
            };
            let bytes = serde_json::to_vec(&index).expect("JSON serializes");
            let digest = store.put_blob(&bytes)?;
            store.set_tag_locked(
                lock,
                &image.with_tag(&crate::signature::referrers_tag(subject)),
                &Descriptor {
                    media_type: media::OCI_INDEX.into(),
                    digest,
                    size: bytes.len() as u64,
                    artifact_type: None,
                    annotations: Default::default(),
                    platform: None,
                },
            )?;
        }
        Ok(())
    }
}

/// Fetches the signatures `remote`'s repository holds for the image `digest`: the
/// classic `sha256-<hex>.sig` manifest, and cosign v3 bundles attached as referrers
/// (the referrers API, else its `sha256-<hex>` fallback tag). A referrer counts only
/// if its manifest, opened, has exactly one sigstore bundle layer — the `artifactType`
/// of an index entry is not trusted.
pub fn fetch_signatures(
    registry: &Registry,
    remote: &Reference,
    digest: &str,
) -> Result<RemoteSignatures, TransferError> {
    let mut out = RemoteSignatures {
        subject: Some(digest.to_owned()),
        ..Default::default()
    };
    if let Some(m) = registry.find_manifest(remote, &crate::signature::signature_tag(digest))? {
        // Only a real signature manifest: not the image itself under that tag, and only
        // simple-signing layers (their config is not needed and not fetched).
        if let Ok(parsed) = serde_json::from_slice::<ImageManifest>(&m.bytes) {
            let only_signatures = parsed
                .layers
                .iter()
                .all(|l| l.media_type == crate::signature::SIMPLE_SIGNING);
            if m.digest != digest && only_signatures {
                let mut blobs = Vec::new();
                for l in parsed.layers.iter().take(MAX_SIGNATURES) {
                    blobs.push(registry.get_small_blob(remote, l, MAX_PAYLOAD)?);
                }
                out.classic = Some(FetchedSet { manifest: m, blobs });
            }
        }
    }
    let index = match registry.referrers(remote, digest)? {
        Some(i) => Some(i),
        None => registry
            .find_manifest(remote, &crate::signature::referrers_tag(digest))?
            .and_then(|m| serde_json::from_slice::<ImageIndex>(&m.bytes).ok()),
    };
    let entries = index.map(|i| i.manifests).unwrap_or_default();
    for entry in entries.iter().take(MAX_SIGNATURES) {
        if !wpkg_spec::reference::is_valid_digest(&entry.digest) || entry.digest == digest {
            continue;
        }
        let Some(m) = registry.find_manifest(remote, &entry.digest)? else {
            continue;
        };
        let Ok(parsed) = serde_json::from_slice::<ImageManifest>(&m.bytes) else {
            continue;
        };
        let Some(layer) = crate::signature::bundle_layer(&parsed) else {
            continue;
        };
        if parsed.subject.as_ref().is_some_and(|s| s.digest != digest) {
            continue;
        }
        let blobs = vec![registry.get_small_blob(remote, layer, MAX_SIGNATURE_BLOB)?];
        out.bundles.push(FetchedSet { manifest: m, blobs });
    }
    Ok(out)
}

/// Pushes the classic signatures the store holds for `digest` to `remote`'s
/// `sha256-<hex>.sig` tag, merged with what the registry already has there (as cosign
/// appends). Returns how many signatures the registry's manifest holds afterwards, or
/// 0 when there was nothing to push.
pub fn push_signatures(
    registry: &Registry,
    store: &Store,
    digest: &str,
    remote: &Reference,
) -> Result<usize, TransferError> {
    let local = store.signatures(digest)?;
    if local.classic.is_empty() {
        return Ok(0);
    }
    let tag = crate::signature::signature_tag(digest);
    let existing = registry.find_manifest(remote, &tag)?;
    let mut manifest: Option<ImageManifest> = match &existing {
        Some(m) => Some(
            serde_json::from_slice(&m.bytes).map_err(|e| RegistryError::Protocol {
                registry: remote.registry.clone(),
                detail: format!(
                    "the registry's `{tag}` is not a signature manifest ({e}); not replacing it"
                ),
            })?,
        ),
        None => None,
    };
    let mut blobs: Vec<Vec<u8>> = Vec::new();
    let mut bytes = Vec::new();
    for sig in &local.classic {
        let mut extra = std::collections::BTreeMap::new();
        if let Some(c) = &sig.certificate {
            extra.insert(
                crate::signature::CERTIFICATE_ANNOTATION.to_owned(),
                c.clone(),
            );
        }
        if let Some(b) = &sig.rekor_bundle {
            extra.insert(
                crate::signature::REKOR_BUNDLE_ANNOTATION.to_owned(),
                b.clone(),
            );
        }
        let (b, new_blobs) = crate::signature::add_signature_layer(
            manifest.as_ref().map(|m| (m, Vec::new())),
            &sig.payload,
            &sig.signature,
            extra,
        );
        manifest = Some(serde_json::from_slice(&b).expect("we just wrote it"));
        bytes = b;
        blobs.extend(new_blobs);
    }
    let manifest = manifest.expect("at least one signature");
    if existing.as_ref().is_some_and(|e| e.bytes == bytes) {
        return Ok(manifest.layers.len());
    }
    for blob in &blobs {
        let d = crate::store::sha256_digest(blob);
        if registry.blob_exists(remote, Access::Push, &d)? {
            continue;
        }
        let data = blob.clone();
        registry.upload_blob(remote, &d, blob.len() as u64, &mut || {
            Ok(reqwest::blocking::Body::from(data.clone()))
        })?;
    }
    registry.put_manifest(remote, &tag, media::OCI_MANIFEST, &bytes)?;
    Ok(manifest.layers.len())
}

/// Pushes the referrers (cosign v3 bundles) the store holds for `digest` to
/// `remote`'s repository: their blobs and manifests, and, when the registry has no
/// referrers API (GHCR, distribution 2.x), the `sha256-<hex>` referrers index tag merged
/// with what the registry already lists there. Returns how many referrers were pushed.
pub fn push_referrers(
    registry: &Registry,
    store: &Store,
    digest: &str,
    remote: &Reference,
) -> Result<usize, TransferError> {
    let local = store.referrers(digest)?;
    if local.is_empty() {
        return Ok(0);
    }
    for (desc, bytes) in &local {
        let m: ImageManifest =
            serde_json::from_slice(bytes).map_err(|e| crate::Error::BadManifest {
                digest: desc.digest.clone(),
                reason: e.to_string(),
            })?;
        for blob in std::iter::once(&m.config).chain(m.layers.iter()) {
            if registry.blob_exists(remote, Access::Push, &blob.digest)? {
                continue;
            }
            let data = store.read_descriptor(blob)?;
            registry.upload_blob(remote, &blob.digest, blob.size, &mut || {
                Ok(reqwest::blocking::Body::from(data.clone()))
            })?;
        }
        registry.put_manifest(remote, &desc.digest, &desc.media_type, bytes)?;
    }
    if registry.referrers(remote, digest)?.is_some() {
        return Ok(local.len());
    }
    let tag = crate::signature::referrers_tag(digest);
    let mut index = match registry.find_manifest(remote, &tag)? {
        Some(m) => {
            serde_json::from_slice::<ImageIndex>(&m.bytes).map_err(|e| RegistryError::Protocol {
                registry: remote.registry.clone(),
                detail: format!(
                    "the registry's `{tag}` is not a referrers index ({e}); not replacing it"
                ),
            })?
        }
        None => ImageIndex {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.into()),
            manifests: Vec::new(),
            annotations: Default::default(),
        },
    };
    let before = index.manifests.len();
    for (desc, _) in &local {
        if !index.manifests.iter().any(|d| d.digest == desc.digest) {
            index.manifests.push(desc.clone());
        }
    }
    if index.manifests.len() != before {
        let bytes = serde_json::to_vec(&index).expect("JSON serializes");
        registry.put_manifest(remote, &tag, media::OCI_INDEX, &bytes)?;
    }
    Ok(local.len())
}

/// Downloads one blob into a temporary file and commits it after the checks; retries
/// a broken transfer from the start.
fn download(
    registry: &Registry,
    store: &Store,
    remote: &Reference,
    blob: &Descriptor,
    progress: &Arc<dyn Progress>,
) -> Result<(), TransferError> {
    let attempts = 3;
    let mut attempt = 0;
    loop {
        attempt += 1;
        progress.event(Event::Start {
            digest: &blob.digest,
            size: blob.size,
        });
        let resp = registry.get_blob(remote, &blob.digest, blob.size)?;
        let mut tmp = store.temp_file()?;
        let mut hasher = Sha256::new();
        let mut reader = Counting {
            inner: resp.take(blob.size.saturating_add(1)),
            done: 0,
            last: 0,
            digest: blob.digest.clone(),
            progress: progress.clone(),
        };
        let mut buf = vec![0u8; 64 * 1024];
        let mut total: u64 = 0;
        let broken = loop {
            match reader.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => {
                    total += n as u64;
                    hasher.update(&buf[..n]);
                    tmp.write_all(&buf[..n]).map_err(|e| crate::Error::Io {
                        path: tmp.path().to_owned(),
                        source: e,
                    })?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        let what = format!("blob {}", blob.digest);
        if let Some(e) = broken {
            if attempt < attempts {
                std::thread::sleep(std::time::Duration::from_millis(250 * attempt));
                continue;
            }
            return Err(RegistryError::Transport {
                registry: remote.registry.clone(),
                detail: format!(
                    "the download of {what} broke after {total} of {} bytes: {e} (after {attempt} attempts)",
                    blob.size
                ),
            }
            .into());
        }
        if total != blob.size {
            return Err(RegistryError::Integrity {
                registry: remote.registry.clone(),
                what,
                detail: if total > blob.size {
                    format!(
                        "the manifest says {} bytes, the registry sent more",
                        blob.size
                    )
                } else {
                    format!(
                        "the manifest says {} bytes, the registry sent {total}",
                        blob.size
                    )
                },
            }
            .into());
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != blob.digest {
            return Err(RegistryError::Integrity {
                registry: remote.registry.clone(),
                what,
                detail: format!("the content hashes to {actual}"),
            }
            .into());
        }
        store.commit_blob(tmp, &blob.digest)?;
        return Ok(());
    }
}
