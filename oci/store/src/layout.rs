//! The local content store: an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/`).
//!
//! Every write is atomic (temp file in the store, fsync, rename, fsync of the
//! directory); every blob is checked against its digest when written and when read;
//! changes to `index.json` happen under an exclusive lock on `index.json.lock`, so
//! several wpkg processes can write at once.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use wpkg_spec::media::{self, Descriptor, ImageIndex};
use wpkg_spec::Reference;

use crate::digest::{digest_hex, sha256_digest, VerifyingReader};
use crate::Error;

/// Index annotation: where an image came from — `build`, `load` or `pull`. Pulled
/// images must verify under the trust policy before they run; built and loaded ones
/// were made or brought here by the user.
pub const ORIGIN_ANNOTATION: &str = "dev.wpkg.origin";

/// Index annotation: the image's total size in bytes (manifest, config and layers),
/// recorded when it is tagged so that listing the store reads no blob.
pub const SIZE_ANNOTATION: &str = "dev.wpkg.size";
/// Index annotation: the image config's `created` time (empty when it has none),
/// recorded with [`SIZE_ANNOTATION`].
pub const CREATED_ANNOTATION: &str = "dev.wpkg.created";

/// What `wpkg images` shows of an image besides its name and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Manifest, config and layers, in bytes.
    pub size: u64,
    /// The config's `created` time, as written there (empty when absent).
    pub created: String,
}

impl Summary {
    /// The summary recorded on an index entry, if it has one.
    pub fn recorded(desc: &Descriptor) -> Option<Summary> {
        Some(Summary {
            size: desc.annotations.get(SIZE_ANNOTATION)?.parse().ok()?,
            created: desc.annotations.get(CREATED_ANNOTATION)?.clone(),
        })
    }

    pub(crate) fn record(&self, desc: &mut Descriptor) {
        desc.annotations
            .insert(SIZE_ANNOTATION.to_owned(), self.size.to_string());
        desc.annotations
            .insert(CREATED_ANNOTATION.to_owned(), self.created.clone());
    }
}

/// Where an image in the store came from, recorded on its index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Built here by `wpkg build`.
    Build,
    /// Loaded here from an archive.
    Load,
    /// Pulled from a registry: it must verify under the trust policy to run.
    Pull,
}

impl Origin {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Build => "build",
            Origin::Load => "load",
            Origin::Pull => "pull",
        }
    }

    /// The origin an index entry records (`None` for entries from before origins
    /// were recorded, or an unknown value).
    pub fn of(desc: &Descriptor) -> Option<Origin> {
        match desc.annotations.get(ORIGIN_ANNOTATION).map(String::as_str) {
            Some("build") => Some(Origin::Build),
            Some("load") => Some(Origin::Load),
            Some("pull") => Some(Origin::Pull),
            _ => None,
        }
    }

    /// Records this origin on an index entry.
    pub fn mark(self, desc: &mut Descriptor) {
        desc.annotations
            .insert(ORIGIN_ANNOTATION.to_owned(), self.as_str().to_owned());
    }
}

/// An open local store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    pub(crate) limits: crate::unpack::UnpackLimits,
}

/// One tagged manifest in the store.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// Its reference.
    pub reference: Reference,
    /// The descriptor of its manifest.
    pub manifest: Descriptor,
}

/// Holds the store's index lock until dropped.
pub struct IndexLock {
    file: File,
}

impl Drop for IndexLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `dest` atomically: a temp file in `tmp_dir`, fsync, rename, fsync
/// of the destination directory.
pub fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut tmp = tempfile::NamedTempFile::new_in(tmp_dir).map_err(|e| io_err(tmp_dir, e))?;
    tmp.write_all(bytes).map_err(|e| io_err(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| io_err(tmp.path(), e))?;
    tmp.persist(dest).map_err(|e| io_err(dest, e.error))?;
    if let Some(dir) = dest.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Makes the directory `dest` atomically: `fill` writes into a temporary directory
/// beside it (named `prefix…`), which is renamed into place only when `fill` succeeded;
/// an existing `dest` is kept as it is (another process may have made it first).
pub(crate) fn build_dir_atomically(
    dest: &Path,
    prefix: &str,
    fill: impl FnOnce(&Path) -> Result<(), Error>,
) -> Result<(), Error> {
    if dest.is_dir() {
        return Ok(());
    }
    let parent = dest.parent().expect("destination has a parent");
    fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .map_err(|e| io_err(parent, e))?;
    fill(tmp.path())?;
    let kept = tmp.keep();
    if let Err(e) = fs::rename(&kept, dest) {
        let _ = fs::remove_dir_all(&kept);
        if !dest.is_dir() {
            return Err(io_err(dest, e));
        }
    }
    Ok(())
}

impl Store {
    /// Opens the store at `root`, creating the layout if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, Error> {
        let root = root.into();
        let store = Store {
            root,
            limits: Default::default(),
        };
        for dir in [store.blobs_dir(), store.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        }
        let layout = store.root.join("oci-layout");
        match fs::read(&layout) {
            Ok(bytes) => {
                let v: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|_| Error::CorruptStore {
                        path: layout.clone(),
                        reason: "`oci-layout` is not JSON".into(),
                    })?;
                if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
                    return Err(Error::CorruptStore {
                        path: layout,
                        reason: "unsupported imageLayoutVersion".into(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_atomic(
                    &store.tmp_dir(),
                    &layout,
                    br#"{"imageLayoutVersion":"1.0.0"}"#,
                )?;
            }
            Err(e) => return Err(io_err(&layout, e)),
        }
        let index = store.index_path();
        if !index.exists() {
            let _lock = store.lock()?;
            if !index.exists() {
                store.write_index(&ImageIndex {
                    schema_version: 2,
                    media_type: Some(media::OCI_INDEX.into()),
                    manifests: vec![],
                    annotations: BTreeMap::new(),
                })?;
            }
        }
        Ok(store)
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// A directory on the store's file system for temporary files.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Takes the exclusive index lock (blocks until it is free).
    pub fn lock(&self) -> Result<IndexLock, Error> {
        let path = self.root.join("index.json.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        file.lock().map_err(|e| io_err(&path, e))?;
        Ok(IndexLock { file })
    }

    /// The path of a blob (it may not exist).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, Error> {
        Ok(self.blobs_dir().join(digest_hex(digest)?))
    }

    /// Whether the blob is present (not verified).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.exists()).unwrap_or(false)
    }

    /// Writes a blob, returning its digest. Content-addressed, so concurrent writers of
    /// the same blob are harmless.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, Error> {
        let digest = sha256_digest(bytes);
        let path = self.blob_path(&digest)?;
        if path.exists() && self.read_blob(&digest).is_ok() {
            return Ok(digest);
        }
        write_atomic(&self.tmp_dir(), &path, bytes)?;
        Ok(digest)
    }

    /// Writes a blob that must have `expected` as its digest and `size` as its length.
    pub fn put_blob_expecting(
        &self,
        bytes: &[u8],
        expected: &str,
        size: Option<u64>,
    ) -> Result<(), Error> {
        let actual = sha256_digest(bytes);
        if actual != expected {
            return Err(Error::DigestMismatch {
                expected: expected.to_owned(),
                actual,
            });
        }
        if let Some(size) = size {
            if size != bytes.len() as u64 {
                return Err(Error::SizeMismatch {
                    digest: expected.to_owned(),
                    expected: size,
                    actual: bytes.len() as u64,
                });
            }
        }
        self.put_blob(bytes).map(|_| ())
    }

    /// A temporary file in the store's own file system, for a blob being downloaded.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, Error> {
        let dir = self.tmp_dir();
        tempfile::NamedTempFile::new_in(&dir).map_err(|e| io_err(&dir, e))
    }

    /// Moves a downloaded blob into place. The caller has checked that its content
    /// hashes to `digest`; it is flushed to disk before it becomes visible.
    pub fn commit_blob(&self, tmp: tempfile::NamedTempFile, digest: &str) -> Result<(), Error> {
        let path = self.blob_path(digest)?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| io_err(tmp.path(), e))?;
        tmp.persist(&path).map_err(|e| io_err(&path, e.error))?;
        if let Ok(d) = File::open(self.blobs_dir()) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Opens a blob for streaming; the reader fails at the end if the content does not
    /// hash to `digest` or is not `size` bytes long.
    pub fn open_blob(&self, digest: &str, size: u64) -> Result<VerifyingReader<File>, Error> {
        let path = self.blob_path(digest)?;
        let f = File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::BlobMissing(digest.to_owned())
            } else {
                io_err(&path, e)
            }
        })?;
        Ok(VerifyingReader::new(f, digest, size))
    }

    /// Reads a blob and checks it against its digest.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(digest)?;
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::BlobMissing(digest.to_owned())
                } else {
                    io_err(&path, e)
                }
            })?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(Error::CorruptBlob {
                digest: digest.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Reads a blob, checking its digest and the descriptor's size.
    pub fn read_descriptor(&self, desc: &Descriptor) -> Result<Vec<u8>, Error> {
        let bytes = self.read_blob(&desc.digest)?;
        if bytes.len() as u64 != desc.size {
            return Err(Error::SizeMismatch {
                digest: desc.digest.clone(),
                expected: desc.size,
                actual: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(media_type: &str, bytes: &[u8], digest: String) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: Default::default(),
            platform: None,
        }
    }

    #[test]
    fn a_tag_records_the_summary_read_from_the_blobs_not_the_one_it_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = br#"{"created":"2026-01-02T03:04:05Z"}"#;
        let layer = b"layer bytes";
        let config_desc = descriptor(media::WASM_CONFIG, config, store.put_blob(config).unwrap());
        let layer_desc = descriptor(media::WASM_LAYER, layer, store.put_blob(layer).unwrap());
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": config_desc,
            "layers": [layer_desc],
        }))
        .unwrap();
        let mut desc = descriptor(
            media::OCI_MANIFEST,
            &manifest,
            store.put_blob(&manifest).unwrap(),
        );
        // As a registry's index entry could carry them.
        desc.annotations
            .insert(SIZE_ANNOTATION.to_owned(), "1".to_owned());
        desc.annotations
            .insert(CREATED_ANNOTATION.to_owned(), "forged".to_owned());
        store.set_tag(&"a/b:1".parse().unwrap(), &desc).unwrap();
        let listed = store.list().unwrap();
        assert_eq!(
            Summary::recorded(&listed[0].manifest),
            Some(Summary {
                size: (manifest.len() + config.len() + layer.len()) as u64,
                created: "2026-01-02T03:04:05Z".to_owned(),
            })
        );
        // The listing reads the same from `index.json` alone (so its annotation names
        // are the ones recorded), and a descriptor that lets the blobs be read.
        let listing = store.listing().unwrap();
        assert_eq!(listing.len(), 1);
        assert_eq!(listing[0].reference, listed[0].reference);
        assert_eq!(listing[0].summary, Summary::recorded(&listed[0].manifest));
        assert_eq!(store.summary(&listing[0].manifest).ok(), listing[0].summary);
    }
}
