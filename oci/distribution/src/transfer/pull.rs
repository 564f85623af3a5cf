//! Pulling: picking the wasm entry of an index, checking what comes in, downloading
//! blobs with retries, storing signatures before the tag.

use super::attached::fetch_signatures;
use super::*;

pub(crate) fn is_index(media_type: &str) -> bool {
    wpkg_spec::image::is_index(media_type)
}

/// Says what a non-Wasm manifest is, for the refusal message.
pub(crate) fn describe_non_wasm(m: &ImageManifest) -> Option<String> {
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

pub(crate) fn parse_manifest(
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
    // A container image is decided by its config (fetched by the caller).
    if wpkg_spec::image::is_image_config(&m.config.media_type) {
        return Ok(m);
    }
    if let Some(what) = describe_non_wasm(&m) {
        return Err(TransferError::NotWasm {
            reference: remote.familiar(),
            what,
        });
    }
    Ok(m)
}

/// Largest container image config wpkg reads.
const MAX_IMAGE_CONFIG: u64 = 1024 * 1024;

/// A container image is pulled only when its config names a Wasm platform and every
/// layer is one wpkg can apply (Docker+Wasm images); others are refused by what they are.
fn check_wasm_image(
    registry: &Registry,
    remote: &Reference,
    manifest: &ImageManifest,
) -> Result<(), TransferError> {
    let bytes = registry.get_small_blob(remote, &manifest.config, MAX_IMAGE_CONFIG)?;
    let config: wpkg_spec::image::ImageConfig =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
            registry: remote.registry.clone(),
            detail: format!(
                "the image config of `{}` does not parse: {e}",
                remote.familiar()
            ),
        })?;
    let not_wasm = |what: String| TransferError::NotWasm {
        reference: remote.familiar(),
        what,
    };
    if !config.is_wasm() {
        let mut types: Vec<&str> = manifest
            .layers
            .iter()
            .map(|l| l.media_type.as_str())
            .collect();
        types.dedup();
        let platform = if config.os.is_empty() {
            String::new()
        } else {
            format!(" for {}/{}", config.os, config.architecture)
        };
        return Err(not_wasm(format!(
            "it is a container image{platform} ({} layer(s) of {}); run it with docker or podman",
            manifest.layers.len(),
            types.join(", ")
        )));
    }
    if let Some(l) = manifest
        .layers
        .iter()
        .find(|l| wpkg_spec::image::layer_kind(&l.media_type).is_none())
    {
        return Err(not_wasm(format!(
            "it is a wasi/wasm image with a layer of media type `{}`, which wpkg does not apply",
            l.media_type
        )));
    }
    Ok(())
}

/// Picks the Wasm entry of an index (attestation entries skipped), or refuses naming
/// the platforms it has.
pub(crate) fn pick_wasm(
    remote: &Reference,
    index: &ImageIndex,
) -> Result<Descriptor, TransferError> {
    wpkg_spec::image::select_wasm(index)
        .cloned()
        .map_err(|platforms| TransferError::NotWasm {
            reference: remote.familiar(),
            what: if platforms.is_empty() {
                format!(
                    "it is an index of {} manifest(s) with no wasm platform entry",
                    index.manifests.len()
                )
            } else {
                format!(
                    "it is a multi-platform image for {} with no wasm entry (wasi/wasm, wasip1/wasm or wasip2/wasm)",
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
    if wpkg_spec::image::is_image_config(&manifest.config.media_type) {
        check_wasm_image(registry, remote, &manifest)?;
    }
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
            return Err(wpkg_store::Error::BlobMissing(blob.digest.clone()).into());
        }
    }
    sigs.store_into(store, &lock, remote)?;
    let mut tagged = report.descriptor.clone();
    wpkg_store::Origin::Pull.mark(&mut tagged);
    store.set_tag_locked(&lock, remote, &tagged)?;
    Ok(report)
}

/// Downloads one blob into a temporary file and commits it after the checks; retries
/// a broken transfer from the start.
pub(crate) fn download(
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
                    tmp.as_file_mut()
                        .write_all(&buf[..n])
                        .map_err(|e| wpkg_store::Error::Io {
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
            if crate::registry::is_timeout_io(&e) {
                return Err(crate::registry::timed_out(
                    remote.registry.clone(),
                    registry.timeout(),
                    Some(&format!("/v2/{}/blobs/{}", remote.repository, blob.digest)),
                    &format!(" after {total} of {} bytes", blob.size),
                )
                .into());
            }
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
        let actual = wpkg_spec::Digest::from_sha256(hasher.finalize().into());
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
