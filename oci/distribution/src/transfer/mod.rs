//! Moving artifacts between the local store and registries: `push` (blobs the registry
//! has are skipped, uploads stream from the store and are verified as they are read)
//! and `pull` (blobs stream to temporary files and enter the store only after their
//! digest and size check; the tag last).

use crate::registry::{Access, FetchedManifest, Registry, RegistryError};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::sync::Arc;
use wpkg_spec::media::{self, Descriptor, ImageIndex, ImageManifest};
use wpkg_spec::Reference;
use wpkg_store::Store;

mod attached;
mod pull;

pub use attached::{fetch_signatures, push_referrers, push_signatures, RemoteSignatures};
pub use pull::pull;

/// Errors of push and pull.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The registry side.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The local store side.
    #[error(transparent)]
    Store(#[from] wpkg_store::Error),
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

pub(crate) fn blobs_of(manifest: &ImageManifest) -> Vec<&Descriptor> {
    std::iter::once(&manifest.config)
        .chain(manifest.layers.iter())
        .collect()
}

/// A reader that reports progress.
pub(crate) struct Counting<R> {
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
        serde_json::from_slice(&bytes).map_err(|e| wpkg_store::Error::BadManifest {
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
