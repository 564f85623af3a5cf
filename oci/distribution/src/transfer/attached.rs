//! Signatures attached to an image, moved as OCI content: the classic
//! `sha256-<hex>.sig` manifest and cosign v3 bundle referrers (the referrers API, or
//! the `sha256-<hex>` fallback index). What they mean is `wpkg-signing`'s business;
//! here they are fetched within size limits, stored, and pushed.

use super::*;

/// Largest sigstore bundle wpkg reads (a certificate chain and log entries fit).
pub(crate) const MAX_SIGNATURE_BLOB: u64 = 256 * 1024;

/// Largest simple-signing payload wpkg reads.
pub(crate) const MAX_PAYLOAD: u64 = 64 * 1024;

/// Most signatures (layers of the `.sig` manifest, or referrers) wpkg reads for one
/// image: the newest ones (cosign appends a layer per signing). A `.sig` manifest with
/// more is stored as fetched: rewritten to the layers wpkg read.
pub const MAX_SIGNATURES: usize = 1000;

/// A manifest and the blobs it names, fetched.
#[derive(Clone, Debug)]
pub(crate) struct FetchedSet {
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
    pub fn material(&self) -> wpkg_store::associated::Material {
        let fetched = |set: &FetchedSet, d: &Descriptor| {
            set.blobs
                .iter()
                .find(|b| wpkg_store::sha256_digest(b) == d.digest)
                .cloned()
                .ok_or(())
        };
        let mut out = wpkg_store::associated::Material::default();
        if let Some(c) = &self.classic {
            if let Ok(m) = serde_json::from_slice::<ImageManifest>(&c.manifest.bytes) {
                out.classic = wpkg_store::associated::classic_from_manifest(&m, |d| fetched(c, d))
                    .unwrap_or_default();
            }
        }
        for b in &self.bundles {
            out.bundles.extend(b.blobs.first().cloned());
        }
        out
    }

    pub(crate) fn store_into(
        &self,
        store: &Store,
        lock: &wpkg_store::IndexLock,
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
                &image.with_tag(&wpkg_store::associated::signature_tag(subject)),
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
            store.put_and_tag_locked(
                lock,
                &image.with_tag(&wpkg_store::associated::referrers_tag(subject)),
                media::OCI_INDEX,
                &bytes,
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
    if let Some(m) =
        registry.find_manifest(remote, &wpkg_store::associated::signature_tag(digest))?
    {
        // Only a real signature manifest: not the image itself under that tag, and only
        // simple-signing layers (their config is not needed and not fetched).
        if let Ok(parsed) = serde_json::from_slice::<ImageManifest>(&m.bytes) {
            let only_signatures = parsed
                .layers
                .iter()
                .all(|l| l.media_type == wpkg_store::associated::SIMPLE_SIGNING);
            if m.digest != digest && only_signatures {
                let mut parsed = parsed;
                let skip = parsed.layers.len().saturating_sub(MAX_SIGNATURES);
                let mut blobs = Vec::new();
                for l in &parsed.layers[skip..] {
                    blobs.push(registry.get_small_blob(remote, l, MAX_PAYLOAD)?);
                }
                // Stored only as fetched: a manifest naming blobs wpkg did not read
                // would never verify, and would name blobs the store lacks.
                let manifest = if skip == 0 {
                    m
                } else {
                    parsed.layers.drain(..skip);
                    let bytes = serde_json::to_vec(&parsed).expect("JSON serializes");
                    FetchedManifest {
                        digest: wpkg_store::sha256_digest(&bytes),
                        bytes,
                        media_type: m.media_type,
                    }
                };
                out.classic = Some(FetchedSet { manifest, blobs });
            }
        }
    }
    // The referrers API where the registry has one, and the `sha256-<hex>` fallback tag
    // in any case: a registry that gained the API later (Docker Hub) still holds the
    // signatures pushed before under the tag, and its API does not list them.
    let api = registry.referrers(remote, digest)?;
    let api_answered = api.is_some();
    let mut entries = api.map(|i| i.manifests).unwrap_or_default();
    let tagged =
        match registry.find_manifest(remote, &wpkg_store::associated::referrers_tag(digest)) {
            Ok(m) => m.and_then(|m| serde_json::from_slice::<ImageIndex>(&m.bytes).ok()),
            // The API answered: the tag is only a supplement.
            Err(_) if api_answered => None,
            Err(e) => return Err(e.into()),
        };
    for m in tagged.map(|i| i.manifests).unwrap_or_default() {
        if !entries.iter().any(|e| e.digest == m.digest) {
            entries.push(m);
        }
    }
    let skip = entries.len().saturating_sub(MAX_SIGNATURES);
    for entry in &entries[skip..] {
        if !wpkg_spec::reference::is_valid_digest(&entry.digest) || entry.digest == digest {
            continue;
        }
        let Some(m) = registry.find_manifest(remote, &entry.digest)? else {
            continue;
        };
        let Ok(parsed) = serde_json::from_slice::<ImageManifest>(&m.bytes) else {
            continue;
        };
        let Some(layer) = wpkg_store::associated::bundle_layer(&parsed) else {
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
    let tag = wpkg_store::associated::signature_tag(digest);
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
                wpkg_store::associated::CERTIFICATE_ANNOTATION.to_owned(),
                c.clone(),
            );
        }
        if let Some(b) = &sig.rekor_bundle {
            extra.insert(
                wpkg_store::associated::REKOR_BUNDLE_ANNOTATION.to_owned(),
                b.clone(),
            );
        }
        let (b, new_blobs) = wpkg_store::associated::add_signature_layer(
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
        let d = wpkg_store::sha256_digest(blob);
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
            serde_json::from_slice(bytes).map_err(|e| wpkg_store::Error::BadManifest {
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
    let tag = wpkg_store::associated::referrers_tag(digest);
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
