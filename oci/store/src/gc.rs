//! Removing tags and collecting the blobs nothing reaches any more.

use std::collections::BTreeSet;
use std::fs;

use wpkg_spec::media::{self, ImageIndex, ImageManifest};
use wpkg_spec::Reference;

use crate::associated::{referrers_tag, signature_tag};
use crate::layout::{io_err, IndexLock};
use crate::{Error, Store};

impl Store {
    /// Removes a tag (or every tag of a digest reference) and then deletes blobs no
    /// manifest uses any more. Returns the number of blobs deleted. When no tag of an
    /// image is left, its signature tags go too.
    pub fn remove(&self, reference: &Reference) -> Result<usize, Error> {
        let lock = self.lock()?;
        let target = self.resolve(reference)?;
        let mut index = self.read_index()?;
        let name = Reference {
            digest: None,
            ..reference.clone()
        }
        .to_string();
        index.manifests.retain(|d| match &reference.digest {
            Some(_) => d.digest != target.digest,
            None => d.annotations.get(media::ANNOTATION_REF_NAME) != Some(&name),
        });
        if !index.manifests.iter().any(|d| d.digest == target.digest) {
            let sig = signature_tag(&target.digest);
            let refs = referrers_tag(&target.digest);
            index.manifests.retain(|d| {
                let tag = d
                    .annotations
                    .get(media::ANNOTATION_REF_NAME)
                    .and_then(|n| n.parse::<Reference>().ok())
                    .and_then(|r| r.tag);
                tag.as_deref() != Some(sig.as_str()) && tag.as_deref() != Some(refs.as_str())
            });
        }
        self.write_index(&index)?;
        self.gc_locked(&lock)
    }

    /// Deletes every blob no tagged manifest reaches. The caller holds the lock.
    pub fn gc_locked(&self, _lock: &IndexLock) -> Result<usize, Error> {
        let index = self.read_index()?;
        let mut keep = BTreeSet::new();
        for d in &index.manifests {
            keep.insert(d.digest.clone());
            // A damaged manifest keeps only itself; its blobs go.
            if let Ok(bytes) = self.read_blob(&d.digest) {
                if let Ok(m) = serde_json::from_slice::<ImageManifest>(&bytes) {
                    keep.insert(m.config.digest.clone());
                    keep.extend(m.layers.iter().map(|l| l.digest.clone()));
                } else if let Ok(i) = serde_json::from_slice::<ImageIndex>(&bytes) {
                    for child in i.manifests {
                        keep.insert(child.digest.clone());
                        if let Ok(b) = self.read_blob(&child.digest) {
                            if let Ok(m) = serde_json::from_slice::<ImageManifest>(&b) {
                                keep.insert(m.config.digest.clone());
                                keep.extend(m.layers.iter().map(|l| l.digest.clone()));
                            }
                        }
                    }
                }
            }
        }
        let dir = self.blobs_dir();
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let entry = entry.map_err(|e| io_err(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // A file that is not a blob name (a stray temp file) is not ours to keep.
            let digest = wpkg_spec::Digest::from_hex(&name)
                .map(|d| d.into_string())
                .unwrap_or_default();
            if !keep.contains(&digest) {
                fs::remove_file(entry.path()).map_err(|e| io_err(&entry.path(), e))?;
                removed += 1;
            }
        }
        // Container images' applied layers go with their manifest. Temp directories
        // (`.rootfs-*`) may belong to a run extracting right now: left alone.
        let rootfs = self.root().join("rootfs");
        if let Ok(entries) = fs::read_dir(&rootfs) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(digest) = wpkg_spec::Digest::from_hex(&name) else {
                    continue;
                };
                if !keep.contains(digest.as_str()) {
                    // Derived from blobs already collected: one that cannot be removed
                    // now (busy, or deeper than one walk removes) is tried again at the
                    // next collection, and never fails the removal of the image.
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(removed)
    }
}
