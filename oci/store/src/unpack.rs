//! Unpacking content from outside (image layers, the bundled-files layer) onto the
//! host, only through [`wpkg_fsroot::Root`]: every entry's path resolves inside the
//! directory being built (links in the image resolve as in a chroot), no write follows
//! what is there, sizes are bounded ([`UnpackLimits`]). A directory is built in a
//! temporary sibling and renamed into place with a record ([`RECORD`]) of the format
//! that built it and the digests of the files wpkg itself reads from it later; a
//! directory without a current record is rebuilt, never trusted.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use wpkg_fsroot::Root;

use crate::Error;

/// The record beside the unpacked files (`DIR/applied.json`, next to `DIR/fs/`).
pub const RECORD: &str = "applied.json";

/// The subdirectory that holds the unpacked files.
const FILES: &str = "fs";

/// The record format this wpkg writes; directories with another are rebuilt.
const FORMAT: u32 = 2;

/// Bounds on what unpacking one layer may produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Most bytes one layer may decompress to (tar headers included).
    pub layer_bytes: u64,
    /// Most bytes one file may have.
    pub file_bytes: u64,
}

impl UnpackLimits {
    /// 1 GiB per layer, 512 MiB per file.
    pub const DEFAULT: UnpackLimits = UnpackLimits {
        layer_bytes: 1 << 30,
        file_bytes: 512 << 20,
    };
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits::DEFAULT
    }
}

impl crate::Store {
    /// The bounds on unpacking layers of this store's images.
    pub fn unpack_limits(&self) -> UnpackLimits {
        self.limits
    }

    /// Sets the bounds on unpacking layers (the default is [`UnpackLimits::DEFAULT`]).
    pub fn set_unpack_limits(&mut self, limits: UnpackLimits) {
        self.limits = limits;
    }
}

/// A reader that fails once more than `limit` bytes came through it.
pub(crate) struct Bounded<R> {
    inner: R,
    left: u64,
}

/// The marker error a [`Bounded`] reader returns past its limit.
#[derive(Debug)]
struct PastLimit;

impl std::fmt::Display for PastLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("past the unpacking limit")
    }
}

impl std::error::Error for PastLimit {}

impl<R: Read> Bounded<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Bounded<R> {
        Bounded { inner, left: limit }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One more byte tells "exactly at the limit" from "past it".
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(PastLimit)),
            };
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Maps a read error of a [`Bounded`] stream: past the limit is
/// [`Error::TooLarge`], anything else a malformed layer.
pub(crate) fn stream_error(layer: &str, limit: u64, e: std::io::Error) -> Error {
    let past = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<PastLimit>().is_some());
    if past {
        Error::TooLarge {
            what: format!("layer {layer}"),
            limit,
        }
    } else {
        Error::BadManifest {
            digest: layer.to_owned(),
            reason: format!("layer: {e}"),
        }
    }
}

/// An error of applying `layer` through the root: past a size bound it is
/// [`Error::TooLarge`], else [`Error::Unpack`].
pub(crate) fn fs_error(layer: &str, source: wpkg_fsroot::Error) -> Error {
    match source {
        wpkg_fsroot::Error::TooLarge { path, limit } => Error::TooLarge {
            what: format!("`{path}` in layer {layer}"),
            limit,
        },
        source => Error::Unpack {
            layer: layer.to_owned(),
            source,
        },
    }
}

/// What a layer may contain.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entries {
    /// An image layer: files, directories, links, hard links, whiteouts.
    Image,
    /// The bundled-files layer wpkg builds: files and directories only.
    FilesOnly,
}

/// The relative path of a tar entry as plain components (`./` dropped); `None` for an
/// absolute path or one with `..`.
pub(crate) fn relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Applies one image layer (an uncompressed tar stream) onto `root`, as
/// [`crate::image::apply_layers`] applies each: for tools and fuzzing.
pub fn apply_image_layer(
    root: &Root,
    layer: &str,
    reader: impl Read,
    limits: UnpackLimits,
) -> Result<(), Error> {
    apply_tar(root, layer, reader, Entries::Image, limits)
}

/// Applies one tar stream onto `root`: later entries replace earlier ones, whiteouts
/// (`.wh.NAME`, `.wh..wh..opq`) remove, every path resolves inside `root`.
pub(crate) fn apply_tar(
    root: &Root,
    layer: &str,
    reader: impl Read,
    entries: Entries,
    limits: UnpackLimits,
) -> Result<(), Error> {
    let unsafe_entry = |path: &Path, reason: &str| Error::UnsafeLayer {
        layer: layer.to_owned(),
        path: path.display().to_string(),
        reason: reason.to_owned(),
    };
    let fs_err = |source: wpkg_fsroot::Error| fs_error(layer, source);
    let stream = |e: std::io::Error| stream_error(layer, limits.layer_bytes, e);
    let mut archive = tar::Archive::new(Bounded::new(reader, limits.layer_bytes));
    for entry in archive.entries().map_err(stream)? {
        let mut entry = entry.map_err(stream)?;
        let raw = entry.path().map_err(stream)?.into_owned();
        let rel = relative(&raw).ok_or_else(|| unsafe_entry(&raw, "absolute or with `..`"))?;
        if rel.as_os_str().is_empty() {
            continue; // `./` itself
        }
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let dir = rel.parent().unwrap_or(Path::new(""));
        let kind = entry.header().entry_type();
        if entries == Entries::FilesOnly
            && !matches!(kind, tar::EntryType::Directory | tar::EntryType::Regular)
        {
            return Err(unsafe_entry(
                &raw,
                &format!("a {kind:?} entry in a files layer (only files and directories)"),
            ));
        }
        if entries == Entries::Image {
            // Whiteouts: `.wh..wh..opq` empties the directory; `.wh.NAME` removes NAME.
            if name == ".wh..wh..opq" {
                root.clear_dir(dir).map_err(fs_err)?;
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                if hidden.is_empty() || hidden == "." || hidden == ".." {
                    return Err(unsafe_entry(&raw, "a whiteout of nothing"));
                }
                root.remove(dir.join(hidden)).map_err(fs_err)?;
                continue;
            }
        }
        if !dir.as_os_str().is_empty() {
            root.create_dir_all(dir).map_err(fs_err)?;
        }
        match kind {
            tar::EntryType::Directory => root.make_dir(&rel).map_err(fs_err)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if entry.header().size().unwrap_or(0) > limits.file_bytes {
                    return Err(Error::TooLarge {
                        what: format!("`/{}` in layer {layer}", rel.display()),
                        limit: limits.file_bytes,
                    });
                }
                match root.write(&rel, &mut entry, limits.file_bytes) {
                    Ok(_) => {}
                    Err(wpkg_fsroot::Error::Read { source, .. }) => return Err(stream(source)),
                    Err(e) => return Err(fs_err(e)),
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(stream)?
                    .ok_or_else(|| unsafe_entry(&raw, "a link without a target"))?
                    .into_owned();
                root.symlink(&rel, &target).map_err(fs_err)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(stream)?
                    .ok_or_else(|| unsafe_entry(&raw, "a link without a target"))?;
                let target = relative(&target)
                    .filter(|t| !t.as_os_str().is_empty())
                    .ok_or_else(|| {
                        unsafe_entry(&raw, "a hard link that leaves the image's files")
                    })?;
                root.hard_link(&rel, &target).map_err(|e| match e {
                    wpkg_fsroot::Error::NotAFile { .. } | wpkg_fsroot::Error::NotFound { .. } => {
                        unsafe_entry(
                            &raw,
                            "a hard link to something that is not a file of the image",
                        )
                    }
                    e => fs_err(e),
                })?;
            }
            other => {
                return Err(unsafe_entry(
                    &raw,
                    &format!("a {other:?} entry (only files, directories and links are applied)"),
                ))
            }
        }
    }
    Ok(())
}

/// A directory of unpacked content with its record, ready to use.
#[derive(Debug)]
pub struct Unpacked {
    dir: PathBuf,
    root: Root,
    record: Record,
}

/// What wpkg wrote when it built an unpacked directory.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Record {
    format: u32,
    /// Digests of the files wpkg reads back itself (an image's entry wasm and its
    /// capabilities), by their path in the image, as they were when unpacked.
    #[serde(default)]
    files: BTreeMap<String, String>,
}

impl Unpacked {
    /// The unpacked files, as a root for further resolution.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Takes the root.
    pub fn into_root(self) -> Root {
        self.root
    }

    /// The directory holding the files (for messages).
    pub fn files_dir(&self) -> PathBuf {
        self.dir.join(FILES)
    }

    /// Reads `path` (absolute in the image) through the root and checks it against the
    /// digest recorded when it was unpacked: `Ok(None)` when nothing was recorded there
    /// (it did not exist then); [`Error::DerivedChanged`] when it differs now.
    pub fn read_recorded(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        let Some(expected) = self.record.files.get(path) else {
            return Ok(None);
        };
        let bytes = self.root.read(path, limit).map_err(|source| Error::Unpack {
            layer: "(unpacked)".into(),
            source,
        });
        let bytes = match bytes {
            Ok(b) => b,
            Err(_) => {
                return Err(Error::DerivedChanged {
                    dir: self.dir.clone(),
                    path: path.to_owned(),
                })
            }
        };
        if &crate::sha256_digest(&bytes) != expected {
            return Err(Error::DerivedChanged {
                dir: self.dir.clone(),
                path: path.to_owned(),
            });
        }
        Ok(Some(bytes))
    }

    /// What is at `path` (absolute in the image), its last name not followed, as a run
    /// reads it: a regular file is read (checked against its record when it has one),
    /// anything else is [`crate::image::ImageFile::Other`].
    pub fn read_file(&self, path: &str, limit: u64) -> Result<crate::image::ImageFile, Error> {
        use crate::image::ImageFile;
        match self.root.kind(path) {
            Ok(None) | Err(wpkg_fsroot::Error::NotFound { .. }) => Ok(ImageFile::Absent),
            Ok(Some(wpkg_fsroot::Kind::File)) => match self.read_recorded(path, limit)? {
                Some(bytes) => Ok(ImageFile::Regular(bytes)),
                None => self
                    .root
                    .read(path, limit)
                    .map(ImageFile::Regular)
                    .map_err(|source| Error::Unpack {
                        layer: "(unpacked)".into(),
                        source,
                    }),
            },
            Ok(Some(_)) | Err(wpkg_fsroot::Error::NotADirectory { .. }) => Ok(ImageFile::Other),
            Err(source) => Err(Error::Unpack {
                layer: "(unpacked)".into(),
                source,
            }),
        }
    }

    /// The digest recorded for `path` when it was unpacked.
    pub fn recorded_digest(&self, path: &str) -> Option<&str> {
        self.record.files.get(path).map(String::as_str)
    }
}

/// Removes the unpacked directory `dest`, so that the next unpack builds it again.
pub fn discard(dest: &Path) -> Result<(), Error> {
    remove_dir(dest)
}

#[allow(clippy::disallowed_methods)] // `dir` is a path wpkg chose
fn remove_dir(dir: &Path) -> Result<(), Error> {
    // std's remove_dir_all does not follow links (and `dir` is a path wpkg chose).
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Opens the unpacked directory `dest` if it has a current record; otherwise builds it
/// (in a temporary sibling, renamed into place) with `fill`, which unpacks into the
/// root it gets and returns the paths whose digests to record (read back after
/// everything is unpacked, so links resolve as they will when used).
#[allow(clippy::disallowed_methods)] // `dest`, its `fs/` and record: paths wpkg chose
pub(crate) fn unpack_dir(
    dest: &Path,
    prefix: &str,
    fill: impl FnOnce(&Root) -> Result<Vec<String>, Error>,
) -> Result<Unpacked, Error> {
    if let Some(u) = open_current(dest)? {
        return Ok(u);
    }
    // Absent, from an older wpkg, or half removed: built again.
    remove_dir(dest)?;
    crate::layout::build_dir_atomically(dest, prefix, |tmp| {
        let files = tmp.join(FILES);
        std::fs::create_dir(&files).map_err(|source| Error::Io {
            path: files.clone(),
            source,
        })?;
        let root = Root::open(&files).map_err(|source| Error::Unpack {
            layer: "(new)".into(),
            source,
        })?;
        let mut record = Record {
            format: FORMAT,
            files: BTreeMap::new(),
        };
        for path in fill(&root)? {
            // A path that is not a regular file inside the image is not recorded.
            if let Ok(bytes) = root.read(&path, u64::MAX) {
                record.files.insert(path, crate::sha256_digest(&bytes));
            }
        }
        let text = serde_json::to_vec(&record).expect("record serializes");
        let out = tmp.join(RECORD);
        std::fs::write(&out, text).map_err(|source| Error::Io { path: out, source })
    })?;
    open_current(dest)?.ok_or_else(|| Error::CorruptStore {
        path: dest.to_owned(),
        reason: "an unpacked directory vanished while it was being used".into(),
    })
}

/// `dest` opened, if it exists with a record of the current format.
#[allow(clippy::disallowed_methods)] // the record: a path wpkg chose
fn open_current(dest: &Path) -> Result<Option<Unpacked>, Error> {
    let record_path = dest.join(RECORD);
    let Ok(text) = std::fs::read(&record_path) else {
        return Ok(None);
    };
    let Ok(record) = serde_json::from_slice::<Record>(&text) else {
        return Ok(None);
    };
    if record.format != FORMAT {
        return Ok(None);
    }
    match Root::open(dest.join(FILES)) {
        Ok(root) => Ok(Some(Unpacked {
            dir: dest.to_owned(),
            root,
            record,
        })),
        Err(_) => Ok(None),
    }
}
