//! Docker+Wasm container images in the store: reading one back (config with a Wasm
//! platform, layers wpkg can apply) and applying its layers, in order, into a private
//! directory: gzip or plain tar, whiteouts honoured, and every entry that could write
//! outside that directory refused (absolute paths, `..`, links that leave it, writes
//! through a link, device nodes). Nothing is visible until every layer applied.

use std::io::Read;
use std::path::Path;

use wpkg_spec::image::{ImageConfig, LayerKind, CAPABILITIES_FILE};
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

/// Applies the layers of `image` in order into `dest` (built in a temporary sibling
/// and renamed into place; an existing `dest` is reused only when wpkg's record in it
/// is current): every path resolves inside the image's files, as in a chroot
/// ([`crate::unpack`]). The record holds the digests of the files wpkg reads back
/// itself: each raw Wasm layer, the config's entry, [`CAPABILITIES_FILE`] and the wasm
/// it names.
pub fn apply_layers(
    store: &Store,
    image: &LoadedImage,
    dest: &Path,
) -> Result<crate::unpack::Unpacked, Error> {
    let limits = store.unpack_limits();
    crate::unpack::unpack_dir(dest, ".rootfs-", |root| {
        let mut recorded = Vec::new();
        for (layer, kind) in &image.layers {
            let bytes = store.read_descriptor(layer)?;
            match kind {
                LayerKind::Wasm => {
                    let path = wasm_layer_path(layer);
                    root.write(&path, &mut bytes.as_slice(), limits.file_bytes)
                        .map_err(|source| crate::unpack::fs_error(&layer.digest, source))?;
                    recorded.push(path);
                }
                LayerKind::Tar => apply_tar(root, &layer.digest, bytes.as_slice(), limits)?,
                LayerKind::TarGzip => apply_tar(
                    root,
                    &layer.digest,
                    flate2::read::GzDecoder::new(bytes.as_slice()),
                    limits,
                )?,
            }
        }
        let rc = image.config.config.clone().unwrap_or_default();
        if let Some(entry) = wpkg_spec::image::Entry::of(&rc) {
            recorded.push(entry.path);
        }
        recorded.push(CAPABILITIES_FILE.to_owned());
        if let Ok(bytes) = root.read(CAPABILITIES_FILE, limits.file_bytes) {
            if let Ok(embedded) = wpkg_spec::image::EmbeddedCapabilities::parse(&bytes) {
                recorded.push(embedded.wasm);
            }
        }
        Ok(recorded)
    })
}

fn apply_tar(
    root: &wpkg_fsroot::Root,
    layer: &str,
    reader: impl Read,
    limits: crate::unpack::UnpackLimits,
) -> Result<(), Error> {
    crate::unpack::apply_tar(root, layer, reader, crate::unpack::Entries::Image, limits)
}

/// What an image's files hold at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFile {
    /// Nothing (never added, or removed by a later layer's whiteout).
    Absent,
    /// A regular file with these bytes.
    Regular(Vec<u8>),
    /// Something else: a directory, a link, a device.
    Other,
}

/// Where the files of `image` are unpacked in `store`: `rootfs/<manifest hex>`.
pub fn rootfs_dir(store: &Store, image: &LoadedImage) -> Result<std::path::PathBuf, Error> {
    let digest = wpkg_spec::Digest::parse(&image.descriptor.digest)
        .map_err(|_| Error::InvalidDigest(image.descriptor.digest.clone()))?;
    Ok(store.root().join("rootfs").join(digest.hex()))
}

/// The files of `image` as `wpkg run` and `wpkg inspect` both see them: its layers
/// applied ([`apply_layers`]) into [`rootfs_dir`], reused while their record is current.
pub fn unpack(store: &Store, image: &LoadedImage) -> Result<crate::unpack::Unpacked, Error> {
    apply_layers(store, image, &rootfs_dir(store, image)?)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the tests look from the host's side
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

    fn apply(
        root: &wpkg_fsroot::Root,
        entries: &[(&str, tar::EntryType, &str)],
    ) -> Result<(), Error> {
        apply_tar(root, "l", tar_of(entries).as_slice(), Default::default())
    }

    #[test]
    fn layers_apply_in_order_with_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let root = wpkg_fsroot::Root::open(r).unwrap();
        use tar::EntryType::*;
        apply(
            &root,
            &[
                ("./app/", Directory, ""),
                ("./app/hello.wasm", Regular, "v1"),
                ("app/old.txt", Regular, "old"),
                ("app/opaque/", Directory, ""),
                ("app/opaque/x", Regular, "x"),
                ("app/rel-link", Symlink, "hello.wasm"),
            ],
        )
        .unwrap();
        apply(
            &root,
            &[
                ("app/hello.wasm", Regular, "v2"),
                ("app/.wh.old.txt", Regular, ""),
                ("app/opaque/.wh..wh..opq", Regular, ""),
                ("app/opaque/y", Regular, "y"),
                ("app/hard", Link, "app/hello.wasm"),
            ],
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

    /// Every file under `dir`, with its contents (links as `-> target`).
    fn snapshot(dir: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                let t = e.file_type().unwrap();
                let what = if t.is_symlink() {
                    format!("-> {}", std::fs::read_link(&p).unwrap().display())
                } else if t.is_dir() {
                    stack.push(p.clone());
                    "dir".into()
                } else {
                    std::fs::read_to_string(&p).unwrap_or_default()
                };
                out.push((p.display().to_string(), what));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn escapes_are_refused_or_stay_inside_and_nothing_lands_outside() {
        use tar::EntryType::*;
        // Refused outright: paths that name the outside, hard links out, devices.
        let refused: &[&[(&str, tar::EntryType, &str)]] = &[
            &[("/etc/evil", Regular, "x")],
            &[("../evil", Regular, "x")],
            &[("a/../../evil", Regular, "x")],
            &[("hard", Link, "../evil")],
            &[("hard", Link, "/etc/passwd")],
            &[("dev", Char, "")],
            &[("fifo", Fifo, "")],
        ];
        // Applied, every link resolving inside the root as in a chroot: links out by
        // any route, writes through them, and the lexical chain the review found
        // (each link looks inside by depth; the kernel would climb above the root).
        let confined: &[&[(&str, tar::EntryType, &str)]] = &[
            &[
                ("etc/", Directory, ""),
                ("out", Symlink, "/etc"),
                ("out/evil", Regular, "x"),
            ],
            &[("out", Symlink, "../.."), ("out/evil", Regular, "x")],
            &[
                ("a/", Directory, ""),
                ("a/out", Symlink, "../../evil"),
                ("a/out", Regular, "x"),
            ],
            &[
                ("sub/", Directory, ""),
                ("via", Symlink, "sub"),
                ("via/f", Regular, "x"),
            ],
            &[
                ("d1/d2/", Directory, ""),
                ("d1/d2/l1", Symlink, ".."),
                ("d1/l2", Symlink, "d2/l1/../.."),
                ("evil", Symlink, "d1/l2/../../evil"),
                ("evil", Regular, "x"),
                ("d1/l2/evil", Regular, "x"),
            ],
            &[
                ("hard-src", Symlink, "/../../outside/secret"),
                ("hard", Link, "hard-src"),
            ],
        ];
        for (entries, ok) in refused
            .iter()
            .map(|e| (e, false))
            .chain(confined.iter().map(|e| (e, true)))
        {
            let base = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(base.path().join("outside")).unwrap();
            std::fs::write(base.path().join("outside/secret"), "s").unwrap();
            let root_dir = base.path().join("a/b/root");
            std::fs::create_dir_all(&root_dir).unwrap();
            let outside = |snap: Vec<(String, String)>| -> Vec<(String, String)> {
                snap.into_iter()
                    .filter(|(p, _)| !Path::new(p).starts_with(&root_dir))
                    .collect()
            };
            let before = outside(snapshot(base.path()));
            let root = wpkg_fsroot::Root::open(&root_dir).unwrap();
            let result = apply(&root, entries);
            if ok && !entries.iter().any(|(_, k, _)| *k == Link) {
                result.unwrap_or_else(|e| panic!("{entries:?}: {e}"));
            } else if !ok {
                let err = result.unwrap_err();
                assert!(
                    matches!(err, Error::UnsafeLayer { .. }),
                    "{entries:?}: {err}"
                );
            }
            let after = outside(snapshot(base.path()));
            assert_eq!(before, after, "{entries:?} changed the outside");
        }
        // Control: the chain written with std::fs from the host's side leaves the root.
        let base = tempfile::tempdir().unwrap();
        let root_dir = base.path().join("a/b/root");
        std::fs::create_dir_all(root_dir.join("d1/d2")).unwrap();
        std::os::unix::fs::symlink("..", root_dir.join("d1/d2/l1")).unwrap();
        std::os::unix::fs::symlink("d2/l1/../..", root_dir.join("d1/l2")).unwrap();
        std::fs::write(root_dir.join("d1/l2/evil"), "x").unwrap();
        assert!(base.path().join("a/b/evil").exists());
    }
}
