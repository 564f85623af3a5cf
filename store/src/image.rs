//! Docker+Wasm container images in the store: reading one back (config with a Wasm
//! platform, layers wpkg can apply) and applying its layers, in order, into a private
//! directory: gzip or plain tar, whiteouts honoured, and every entry that could write
//! outside that directory refused (absolute paths, `..`, links that leave it, writes
//! through a link, device nodes). Nothing is visible until every layer applied.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use wpkg_spec::image::{ImageConfig, LayerKind};
use wpkg_spec::media::{Descriptor, ImageManifest};

use crate::{Error, Store};

/// What an image in the store holds, by layout.
#[derive(Debug, Clone)]
pub enum Content {
    /// A Wasm OCI artifact (wpkg's own, or another tool's in the CNCF layout).
    Artifact(Box<crate::artifact::LoadedArtifact>),
    /// A Docker+Wasm container image.
    Image(Box<LoadedImage>),
}

/// Reads the image behind `desc` in whichever layout it has.
pub fn load_any(store: &Store, desc: &Descriptor) -> Result<Content, Error> {
    let bytes = store.read_descriptor(desc)?;
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|e| Error::BadManifest {
            digest: desc.digest.clone(),
            reason: format!("manifest does not parse: {e}"),
        })?;
    if wpkg_spec::image::is_image_config(&manifest.config.media_type) {
        load_image(store, desc).map(|i| Content::Image(Box::new(i)))
    } else {
        crate::artifact::load(store, desc).map(|a| Content::Artifact(Box::new(a)))
    }
}

/// A Docker+Wasm image read back from the store, every blob verified.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The manifest descriptor.
    pub descriptor: Descriptor,
    /// The parsed manifest.
    pub manifest: ImageManifest,
    /// The image config.
    pub config: ImageConfig,
    /// The layers with how to read each.
    pub layers: Vec<(Descriptor, LayerKind)>,
}

/// Reads the image behind `desc`: its config must name a Wasm platform and every layer
/// must be one wpkg can apply.
pub fn load_image(store: &Store, desc: &Descriptor) -> Result<LoadedImage, Error> {
    let bytes = store.read_descriptor(desc)?;
    let bad = |reason: String| Error::BadManifest {
        digest: desc.digest.clone(),
        reason,
    };
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("manifest does not parse: {e}")))?;
    let config = image_config(store, &manifest)?;
    let config = config.ok_or_else(|| Error::NotWasm {
        what: format!("its config is `{}`", manifest.config.media_type),
    })?;
    if !config.is_wasm() {
        return Err(Error::NotWasm {
            what: format!(
                "it is a container image for {}/{}, not wasi/wasm",
                config.os, config.architecture
            ),
        });
    }
    let mut layers = Vec::new();
    for l in &manifest.layers {
        let kind = wpkg_spec::image::layer_kind(&l.media_type).ok_or_else(|| {
            bad(format!(
                "layer {} has media type `{}`, which wpkg does not apply",
                l.digest, l.media_type
            ))
        })?;
        layers.push((l.clone(), kind));
    }
    Ok(LoadedImage {
        descriptor: desc.clone(),
        manifest,
        config,
        layers,
    })
}

/// The container image config of `manifest`, if its config is one.
pub fn image_config(store: &Store, manifest: &ImageManifest) -> Result<Option<ImageConfig>, Error> {
    if !wpkg_spec::image::is_image_config(&manifest.config.media_type) {
        return Ok(None);
    }
    let bytes = store.read_descriptor(&manifest.config)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::BadManifest {
            digest: manifest.config.digest.clone(),
            reason: format!("image config does not parse: {e}"),
        })
}

/// The file name a raw Wasm layer gets in the image's files.
pub fn wasm_layer_path(layer: &Descriptor) -> String {
    let title = layer
        .annotations
        .get(wpkg_spec::media::ANNOTATION_TITLE)
        .map(String::as_str)
        .filter(|t| !t.is_empty() && !t.contains('/') && *t != "..");
    format!("/{}", title.unwrap_or("component.wasm"))
}

/// Applies the layers of `image` in order into `dest` (made atomically: a temp
/// directory renamed into place; an existing `dest` is reused as is).
pub fn apply_layers(store: &Store, image: &LoadedImage, dest: &Path) -> Result<(), Error> {
    crate::layout::build_dir_atomically(dest, ".rootfs-", |root| {
        for (layer, kind) in &image.layers {
            let bytes = store.read_descriptor(layer)?;
            match kind {
                LayerKind::Wasm => {
                    let out = root.join(wasm_layer_path(layer).trim_start_matches('/'));
                    std::fs::write(&out, &bytes)
                        .map_err(|source| Error::Io { path: out, source })?;
                }
                LayerKind::Tar => apply_tar(root, &layer.digest, bytes.as_slice())?,
                LayerKind::TarGzip => apply_tar(
                    root,
                    &layer.digest,
                    flate2::read::GzDecoder::new(bytes.as_slice()),
                )?,
            }
        }
        Ok(())
    })
}

/// What the layers of an image hold at one path, as applying them in order would leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFile {
    /// Nothing (never added, or removed by a later layer's whiteout).
    Absent,
    /// A regular file with these bytes.
    Regular(Vec<u8>),
    /// Something else: a directory, a link, a device.
    Other,
}

/// Reads the file at `path` (absolute, in the image's files) from the layers of
/// `image`, every blob digest-checked, without unpacking the rest: later layers replace
/// earlier ones and whiteouts remove, as in [`apply_layers`].
pub fn read_file(store: &Store, image: &LoadedImage, path: &str) -> Result<ImageFile, Error> {
    let target = relative(Path::new(path.trim_start_matches('/'))).unwrap_or_default();
    let mut found = ImageFile::Absent;
    for (layer, kind) in &image.layers {
        let bytes = store.read_descriptor(layer)?;
        match kind {
            LayerKind::Wasm => {
                if Path::new(wasm_layer_path(layer).trim_start_matches('/')) == target {
                    found = ImageFile::Regular(bytes);
                }
            }
            LayerKind::Tar => scan_tar(&layer.digest, bytes.as_slice(), &target, &mut found)?,
            LayerKind::TarGzip => scan_tar(
                &layer.digest,
                flate2::read::GzDecoder::new(bytes.as_slice()),
                &target,
                &mut found,
            )?,
        }
    }
    Ok(found)
}

/// One layer's effect on `target` (see [`read_file`]).
fn scan_tar(
    layer: &str,
    reader: impl Read,
    target: &Path,
    found: &mut ImageFile,
) -> Result<(), Error> {
    let bad = |reason: String| Error::BadManifest {
        digest: layer.to_owned(),
        reason: format!("layer: {reason}"),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let raw = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let Some(rel) = relative(&raw) else { continue };
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let dir = rel.parent().unwrap_or(Path::new(""));
        if name == ".wh..wh..opq" {
            if target.starts_with(dir) && target != dir {
                *found = ImageFile::Absent;
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            if target.starts_with(dir.join(hidden)) {
                *found = ImageFile::Absent;
            }
            continue;
        }
        if rel == target {
            *found = if entry.header().entry_type().is_file() {
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| bad(e.to_string()))?;
                ImageFile::Regular(data)
            } else {
                ImageFile::Other
            };
        } else if target.starts_with(&rel) && !entry.header().entry_type().is_dir() {
            // A file or link where a parent directory should be.
            *found = ImageFile::Other;
        }
    }
    Ok(())
}

/// The relative path of a tar entry as plain components (`./` dropped); `None` for an
/// absolute path or one with `..`.
fn relative(path: &Path) -> Option<PathBuf> {
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

/// Whether a symlink at `link` (relative to the root) pointing at `target` stays inside
/// the root, lexically.
fn link_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Refuses when an existing ancestor of `rel` under `root` is not a real directory (a
/// link a lower layer made would carry the write elsewhere).
fn check_parents(root: &Path, rel: &Path) -> Result<(), &'static str> {
    let mut cur = root.to_owned();
    let parents: Vec<_> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for c in parents {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => return Err("it writes through a link"),
            Ok(m) if !m.is_dir() => return Err("a parent of it is not a directory"),
            _ => {}
        }
    }
    Ok(())
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn apply_tar(root: &Path, layer: &str, reader: impl Read) -> Result<(), Error> {
    let unsafe_entry = |path: &Path, reason: &str| Error::UnsafeLayer {
        layer: layer.to_owned(),
        path: path.display().to_string(),
        reason: reason.to_owned(),
    };
    let bad = |reason: String| Error::BadManifest {
        digest: layer.to_owned(),
        reason,
    };
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| bad(format!("layer: {e}")))? {
        let mut entry = entry.map_err(|e| bad(format!("layer: {e}")))?;
        let raw = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let rel = relative(&raw).ok_or_else(|| unsafe_entry(&raw, "absolute or with `..`"))?;
        if rel.as_os_str().is_empty() {
            continue; // `./` itself
        }
        check_parents(root, &rel).map_err(|why| unsafe_entry(&raw, why))?;
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let dir = root.join(rel.parent().unwrap_or(Path::new("")));
        // Whiteouts: `.wh..wh..opq` empties the directory; `.wh.NAME` removes NAME.
        if name == ".wh..wh..opq" {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for child in rd.flatten() {
                    remove_any(&child.path()).map_err(io(&child.path()))?;
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(unsafe_entry(&raw, "a whiteout of nothing"));
            }
            let target = dir.join(hidden);
            remove_any(&target).map_err(io(&target))?;
            continue;
        }
        let out = root.join(&rel);
        let kind = entry.header().entry_type();
        if !kind.is_dir() {
            // A later layer replaces what a lower one put there.
            remove_any(&out).map_err(io(&out))?;
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        match kind {
            tar::EntryType::Directory => {
                if std::fs::symlink_metadata(&out).is_ok_and(|m| !m.is_dir()) {
                    remove_any(&out).map_err(io(&out))?;
                }
                std::fs::create_dir_all(&out).map_err(io(&out))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| bad(format!("layer: {e}")))?;
                std::fs::write(&out, data).map_err(io(&out))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| unsafe_entry(&raw, "a link without a target"))?
                    .into_owned();
                if !link_stays_inside(&rel, &target) {
                    return Err(unsafe_entry(&raw, "a link that leaves the image's files"));
                }
                #[cfg(unix)]
                std::os::unix::fs::symlink(&target, &out).map_err(io(&out))?;
                #[cfg(not(unix))]
                return Err(unsafe_entry(&raw, "a link (not supported on this system)"));
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| unsafe_entry(&raw, "a link without a target"))?;
                let target_rel = relative(&target)
                    .filter(|t| !t.as_os_str().is_empty())
                    .ok_or_else(|| {
                        unsafe_entry(&raw, "a hard link that leaves the image's files")
                    })?;
                check_parents(root, &target_rel).map_err(|why| unsafe_entry(&raw, why))?;
                let src = root.join(&target_rel);
                match std::fs::symlink_metadata(&src) {
                    Ok(m) if m.is_file() => {
                        std::fs::copy(&src, &out).map_err(io(&out))?;
                    }
                    _ => {
                        return Err(unsafe_entry(
                            &raw,
                            "a hard link to something that is not a file of the image",
                        ))
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_size(0);
                    // Bypass the builder's own path checks: a hostile layer would.
                    let name = h.as_old_mut();
                    name.name[..path.len()].copy_from_slice(path.as_bytes());
                    name.linkname[..data.len()].copy_from_slice(data.as_bytes());
                    h.set_cksum();
                    b.append(&h, std::io::empty()).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    let name = h.as_old_mut();
                    name.name[..path.len()].copy_from_slice(path.as_bytes());
                    h.set_cksum();
                    b.append(&h, data.as_bytes()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn layers_apply_in_order_with_whiteouts() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        use tar::EntryType::*;
        apply_tar(
            r,
            "l1",
            tar_of(&[
                ("./app/", Directory, ""),
                ("./app/hello.wasm", Regular, "v1"),
                ("app/old.txt", Regular, "old"),
                ("app/opaque/", Directory, ""),
                ("app/opaque/x", Regular, "x"),
                ("app/rel-link", Symlink, "hello.wasm"),
            ])
            .as_slice(),
        )
        .unwrap();
        apply_tar(
            r,
            "l2",
            tar_of(&[
                ("app/hello.wasm", Regular, "v2"),
                ("app/.wh.old.txt", Regular, ""),
                ("app/opaque/.wh..wh..opq", Regular, ""),
                ("app/opaque/y", Regular, "y"),
                ("app/hard", Link, "app/hello.wasm"),
            ])
            .as_slice(),
        )
        .unwrap();
        let read = |p: &str| std::fs::read_to_string(r.join(p)).unwrap();
        assert_eq!(read("app/hello.wasm"), "v2");
        assert_eq!(read("app/hard"), "v2");
        assert_eq!(read("app/rel-link"), "v2");
        assert!(!r.join("app/old.txt").exists());
        assert!(!r.join("app/opaque/x").exists());
        assert_eq!(read("app/opaque/y"), "y");
    }

    #[test]
    fn one_file_is_read_as_applying_the_layers_would_leave_it() {
        use tar::EntryType::*;
        let scan = |layers: &[&[(&str, tar::EntryType, &str)]], path: &str| {
            let mut found = ImageFile::Absent;
            for l in layers {
                scan_tar("l", tar_of(l).as_slice(), Path::new(path), &mut found).unwrap();
            }
            found
        };
        let file = |s: &str| ImageFile::Regular(s.as_bytes().to_vec());
        let l1: &[_] = &[
            ("./.wpkg/", Directory, ""),
            ("./.wpkg/capabilities.json", Regular, "v1"),
            ("other", Regular, "o"),
        ];
        assert_eq!(scan(&[l1], ".wpkg/capabilities.json"), file("v1"));
        assert_eq!(scan(&[l1], "missing"), ImageFile::Absent);
        assert_eq!(scan(&[l1], ".wpkg"), ImageFile::Other);
        // A later layer replaces it; whiteouts of it, of its directory, and an opaque
        // directory remove it.
        let l2: &[_] = &[(".wpkg/capabilities.json", Regular, "v2")];
        assert_eq!(scan(&[l1, l2], ".wpkg/capabilities.json"), file("v2"));
        for wh in [
            ".wpkg/.wh.capabilities.json",
            ".wh..wpkg",
            ".wpkg/.wh..wh..opq",
        ] {
            let l3: &[_] = &[(wh, Regular, "")];
            assert_eq!(
                scan(&[l1, l3], ".wpkg/capabilities.json"),
                ImageFile::Absent,
                "{wh}"
            );
        }
        // A whiteout of a sibling leaves it; a link or a file in its place is not it.
        let l3: &[_] = &[(".wpkg/.wh.capabilities.jsonx", Regular, "")];
        assert_eq!(scan(&[l1, l3], ".wpkg/capabilities.json"), file("v1"));
        let l4: &[_] = &[(".wpkg/capabilities.json", Symlink, "/etc/passwd")];
        assert_eq!(scan(&[l1, l4], ".wpkg/capabilities.json"), ImageFile::Other);
        let l5: &[_] = &[(".wh..wpkg", Regular, ""), (".wpkg", Regular, "f")];
        assert_eq!(scan(&[l1, l5], ".wpkg/capabilities.json"), ImageFile::Other);
    }

    #[test]
    fn every_escape_is_refused_and_nothing_lands_outside() {
        use tar::EntryType::*;
        let cases: &[&[(&str, tar::EntryType, &str)]] = &[
            &[("/etc/evil", Regular, "x")],
            &[("../evil", Regular, "x")],
            &[("a/../../evil", Regular, "x")],
            &[("out", Symlink, "/etc")],
            &[("out", Symlink, "../..")],
            &[("a/out", Symlink, "../../evil")],
            &[("hard", Link, "../evil")],
            &[("hard", Link, "/etc/passwd")],
            // A link that stays inside, then a write through it.
            &[
                ("sub/", Directory, ""),
                ("via", Symlink, "sub"),
                ("via/f", Regular, "x"),
            ],
            &[("dev", Char, "")],
            &[("fifo", Fifo, "")],
        ];
        for entries in cases {
            let base = tempfile::tempdir().unwrap();
            let root = base.path().join("root");
            std::fs::create_dir(&root).unwrap();
            let err = apply_tar(&root, "l", tar_of(entries).as_slice()).unwrap_err();
            assert!(
                matches!(err, Error::UnsafeLayer { .. }),
                "{entries:?}: {err}"
            );
            assert!(!base.path().join("evil").exists());
            assert!(!root.join("sub/f").exists(), "{entries:?}");
        }
        // Control: the same shapes inside the root are applied.
        let ok = tempfile::tempdir().unwrap();
        apply_tar(
            ok.path(),
            "l",
            tar_of(&[
                ("sub/", Directory, ""),
                ("sub/f", Regular, "x"),
                ("in", Symlink, "sub/f"),
            ])
            .as_slice(),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(ok.path().join("in")).unwrap(), "x");
    }
}
