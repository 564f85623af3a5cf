//! Moving artifacts without a registry: an OCI image layout as a tar file (`wpkg save`
//! writes one, `wpkg load` reads one, plain or gzip-compressed).
//!
//! Loading checks everything before touching the store: every blob's content against
//! its name, every manifest's config and layers present, every entry a regular file at
//! a safe path. A damaged archive is refused and the store is left as it was.
//!
//! Signatures travel with what is saved: the classic `sha256-<hex>.sig` manifests and
//! the `sha256-<hex>` referrers indexes (v3 bundles) the store holds for a saved image go
//! into the archive under the image's repository, and a load keeps them. What a load
//! brings in is marked as loaded, which verify-before-run treats like a pull.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use wpkg_spec::media::{self, Descriptor, ImageIndex, ImageManifest};
use wpkg_spec::Reference;

use crate::digest::sha256_digest;
use crate::Error;
use crate::Store;

fn bad(reason: impl Into<String>) -> Error {
    Error::BadArchive(reason.into())
}

/// Adds a manifest's own blobs (config and layers) to `blobs`.
fn manifest_blobs(
    store: &Store,
    desc: &Descriptor,
    blobs: &mut BTreeSet<String>,
) -> Result<(), Error> {
    let bytes = store.read_descriptor(desc)?;
    let m: ImageManifest = serde_json::from_slice(&bytes).map_err(|e| Error::BadManifest {
        digest: desc.digest.clone(),
        reason: e.to_string(),
    })?;
    blobs.insert(desc.digest.clone());
    blobs.insert(m.config.digest.clone());
    blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
    Ok(())
}

/// The signature material the store holds for `subject` (a classic `.sig` manifest and
/// a referrers index, under any repository), as index entries named in `repository`,
/// with their blobs added to `blobs`.
fn attached(
    store: &Store,
    repository: &Reference,
    subject: &str,
    blobs: &mut BTreeSet<String>,
) -> Result<Vec<Descriptor>, Error> {
    let sig_tag = crate::associated::signature_tag(subject);
    let ref_tag = crate::associated::referrers_tag(subject);
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for img in store.list()? {
        let tag = img.reference.tag.as_deref().unwrap_or("");
        if (tag != sig_tag && tag != ref_tag) || !seen.insert(tag.to_owned()) {
            continue;
        }
        if tag == sig_tag {
            manifest_blobs(store, &img.manifest, blobs)?;
        } else {
            let bytes = store.read_descriptor(&img.manifest)?;
            let index: ImageIndex =
                serde_json::from_slice(&bytes).map_err(|e| Error::BadManifest {
                    digest: img.manifest.digest.clone(),
                    reason: e.to_string(),
                })?;
            blobs.insert(img.manifest.digest.clone());
            for child in &index.manifests {
                manifest_blobs(store, child, blobs)?;
            }
        }
        let mut d = img.manifest.clone();
        let named = Reference {
            digest: None,
            tag: Some(tag.to_owned()),
            ..repository.clone()
        };
        d.annotations =
            BTreeMap::from([(media::ANNOTATION_REF_NAME.to_owned(), named.to_string())]);
        out.push(d);
    }
    Ok(out)
}

/// Writes the images named by `refs`, and the signatures the store holds for them, as
/// an OCI layout tarball (deterministic).
pub fn save(store: &Store, refs: &[Reference]) -> Result<Vec<u8>, Error> {
    let mut blobs: BTreeSet<String> = BTreeSet::new();
    let mut manifests = Vec::new();
    let mut signatures = Vec::new();
    for r in refs {
        let desc = store.resolve(r)?;
        manifest_blobs(store, &desc, &mut blobs)?;
        let mut d = desc.clone();
        let tagged = Reference {
            digest: None,
            ..r.clone()
        };
        d.annotations =
            BTreeMap::from([(media::ANNOTATION_REF_NAME.to_owned(), tagged.to_string())]);
        manifests.push(d);
        for s in attached(store, &tagged, &desc.digest, &mut blobs)? {
            if !signatures
                .iter()
                .any(|x: &Descriptor| x.annotations == s.annotations)
            {
                signatures.push(s);
            }
        }
    }
    manifests.extend(signatures);
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.into()),
        manifests,
        annotations: BTreeMap::new(),
    };
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| -> Result<(), Error> {
        let mut h =
            crate::artifact::tar_header(tar::EntryType::Regular, data.len() as u64, 0o644, 0);
        tar.append_data(&mut h, path, data).map_err(|e| Error::Io {
            path: path.into(),
            source: e,
        })
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add(
        "index.json",
        &serde_json::to_vec(&index).expect("index serializes"),
    )?;
    for digest in &blobs {
        let data = store.read_blob(digest)?;
        add(&format!("blobs/sha256/{}", &digest[7..]), &data)?;
    }
    tar.into_inner().map_err(|e| Error::Io {
        path: "archive".into(),
        source: e,
    })
}

/// What a load brought in.
#[derive(Debug)]
pub struct Loaded {
    /// The references tagged, with their manifest digests.
    pub images: Vec<(Reference, String)>,
}

/// The most a gzip-compressed archive may unpack to (it is read in memory).
pub const MAX_UNPACKED: u64 = 4 << 30;

/// Reads an OCI layout tarball (plain or gzip), checks it whole, then stores and tags
/// its images. `name` gives the repository for entries whose ref name is a bare tag
/// (as other tools write them).
pub fn load(store: &Store, archive: &[u8], name: Option<&str>) -> Result<Loaded, Error> {
    let mut raw = Vec::new();
    let data: &[u8] = if archive.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(archive)
            .take(MAX_UNPACKED + 1)
            .read_to_end(&mut raw)
            .map_err(|e| bad(format!("the gzip stream is damaged: {e}")))?;
        if raw.len() as u64 > MAX_UNPACKED {
            return Err(bad(format!(
                "it unpacks to more than {} GiB, which is read in memory; unpack it and load the tar",
                MAX_UNPACKED >> 30
            )));
        }
        &raw
    } else {
        archive
    };
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut tar = tar::Archive::new(data);
    for entry in tar
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?
    {
        let mut entry = entry.map_err(|e| bad(format!("damaged tar entry: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular => {}
            other => return Err(bad(format!("unexpected {other:?} entry `{path}`"))),
        }
        if path.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(bad(format!("unsafe path `{path}`")));
        }
        let mut buf = Vec::new();
        entry
            .read_to_end(&mut buf)
            .map_err(|e| bad(format!("`{path}` is truncated: {e}")))?;
        files.insert(path, buf);
    }
    if files.is_empty() {
        return Err(bad("the archive is empty"));
    }
    let index_bytes = files
        .get("index.json")
        .ok_or_else(|| bad("no index.json: not an OCI image layout"))?;
    let index: ImageIndex = serde_json::from_slice(index_bytes)
        .map_err(|e| bad(format!("index.json does not parse: {e}")))?;
    let blob = |digest: &str| -> Result<&Vec<u8>, Error> {
        if !wpkg_spec::reference::is_valid_digest(digest) {
            return Err(Error::InvalidDigest(digest.to_owned()));
        }
        let data = files
            .get(&format!("blobs/sha256/{}", &digest[7..]))
            .ok_or_else(|| bad(format!("blob {digest} is missing")))?;
        let actual = sha256_digest(data);
        if actual != digest {
            return Err(bad(format!(
                "blob {digest} is damaged (its content hashes to {actual})"
            )));
        }
        Ok(data)
    };
    // Check everything first.
    let mut plan: Vec<(Reference, Descriptor, Vec<String>)> = Vec::new();
    // A manifest's config and layers, present and of their sizes.
    let manifest_needs = |digest: &str, size: u64| -> Result<Vec<String>, Error> {
        let m_bytes = blob(digest)?;
        if m_bytes.len() as u64 != size {
            return Err(bad(format!("manifest {digest} has the wrong size")));
        }
        let m: ImageManifest = serde_json::from_slice(m_bytes)
            .map_err(|e| bad(format!("manifest {digest} does not parse: {e}")))?;
        let mut needed = vec![m.config.digest.clone()];
        needed.extend(m.layers.iter().map(|l| l.digest.clone()));
        for (digest, size) in std::iter::once((&m.config.digest, m.config.size))
            .chain(m.layers.iter().map(|l| (&l.digest, l.size)))
        {
            if blob(digest)?.len() as u64 != size {
                return Err(bad(format!("blob {digest} has the wrong size")));
            }
        }
        Ok(needed)
    };
    for d in &index.manifests {
        let is_index = d.media_type == media::OCI_INDEX;
        let needed = if is_index {
            // Only a referrers index (signatures in v3 bundles) is taken, under its
            // fallback tag; other indexes (multi-platform images) are not.
            let tagged = d
                .annotations
                .get(media::ANNOTATION_REF_NAME)
                .and_then(|n| n.rsplit(':').next())
                .is_some_and(|t| crate::associated::is_signature_tag(t) && !t.ends_with(".sig"));
            if !tagged {
                return Err(bad(format!(
                    "entry {} is an image index; only single images (and their signatures) are loaded",
                    d.digest
                )));
            }
            let i_bytes = blob(&d.digest)?;
            if i_bytes.len() as u64 != d.size {
                return Err(bad(format!("index {} has the wrong size", d.digest)));
            }
            let i: ImageIndex = serde_json::from_slice(i_bytes)
                .map_err(|e| bad(format!("index {} does not parse: {e}", d.digest)))?;
            let mut needed = Vec::new();
            for child in &i.manifests {
                needed.extend(manifest_needs(&child.digest, child.size)?);
                needed.push(child.digest.clone());
            }
            needed
        } else {
            manifest_needs(&d.digest, d.size)?
        };
        let ref_name = d
            .annotations
            .get(media::ANNOTATION_REF_NAME)
            .ok_or_else(|| {
                bad(format!(
                    "manifest {} has no `{}` annotation",
                    d.digest,
                    media::ANNOTATION_REF_NAME
                ))
            })?;
        let reference: Reference = if ref_name.contains('/') || ref_name.contains(':') {
            ref_name.parse()?
        } else {
            let repo = name.ok_or_else(|| Error::ArchiveNeedsName {
                tag: ref_name.clone(),
            })?;
            format!("{repo}:{ref_name}").parse()?
        };
        if reference
            .digest
            .as_ref()
            .is_some_and(|named| *named != d.digest)
        {
            return Err(bad(format!(
                "manifest {} is named `{ref_name}`, which names another digest",
                d.digest
            )));
        }
        let mut desc = d.clone();
        desc.annotations.clear();
        crate::Origin::Load.mark(&mut desc);
        plan.push((reference, desc, needed));
    }
    if plan.is_empty() {
        return Err(bad("index.json lists no images"));
    }
    let lock = store.lock()?;
    let mut images = Vec::new();
    for (reference, desc, needed) in plan {
        for digest in &needed {
            store.put_blob_expecting(blob(digest)?, digest, None)?;
        }
        store.put_blob_expecting(blob(&desc.digest)?, &desc.digest, Some(desc.size))?;
        store.set_tag_locked(&lock, &reference, &desc)?;
        images.push((reference, desc.digest.clone()));
    }
    Ok(Loaded { images })
}
