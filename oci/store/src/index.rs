//! The store's `index.json`: reading it, resolving references, tagging (under the
//! index lock) with the summary `wpkg images` shows, and the provenance of images.

use std::borrow::Cow;
use std::fs;

use serde_json::value::RawValue;
use wpkg_spec::media::{self, Descriptor, ImageIndex, ImageManifest};
use wpkg_spec::Reference;

use crate::layout::{
    io_err, write_atomic, IndexLock, Origin, Store, StoredImage, Summary, ORIGIN_ANNOTATION,
};
use crate::Error;

/// `index.json` with its entries left unparsed.
#[derive(serde::Deserialize)]
struct IndexEntries<'a> {
    #[serde(borrow)]
    manifests: Vec<&'a RawValue>,
}

/// What a lookup or the listing reads of an index entry, borrowed from the file's
/// bytes (no descriptor or annotation map is built).
#[derive(serde::Deserialize)]
struct EntryKey<'a> {
    #[serde(rename = "mediaType", borrow, default)]
    media_type: Cow<'a, str>,
    #[serde(borrow)]
    digest: Cow<'a, str>,
    #[serde(default)]
    size: u64,
    #[serde(borrow, default)]
    annotations: EntryNames<'a>,
}

/// The names are [`media::ANNOTATION_REF_NAME`], [`crate::layout::SIZE_ANNOTATION`]
/// and [`crate::layout::CREATED_ANNOTATION`] (a test checks).
#[derive(Default, serde::Deserialize)]
struct EntryNames<'a> {
    #[serde(rename = "org.opencontainers.image.ref.name", borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "dev.wpkg.size", borrow, default)]
    size: Option<Cow<'a, str>>,
    #[serde(rename = "dev.wpkg.created", borrow, default)]
    created: Option<Cow<'a, str>>,
}

/// `index.json` as `wpkg images` reads it: every entry's key, parsed in one pass.
#[derive(serde::Deserialize)]
struct ListIndex<'a> {
    #[serde(borrow)]
    manifests: Vec<EntryKey<'a>>,
}

/// One tagged image as listed: what `index.json` alone says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its name.
    pub reference: Reference,
    /// Its manifest's descriptor, without annotations.
    pub manifest: Descriptor,
    /// Its summary, when recorded on the entry (older entries have none: see
    /// [`Store::summary`]).
    pub summary: Option<Summary>,
}

impl Store {
    /// All tagged images with their recorded summaries, sorted by reference, read from
    /// `index.json` alone: what `wpkg images` shows, at a cost that stays small with
    /// thousands of images (no descriptor or annotation map is built per entry).
    pub fn listing(&self) -> Result<Vec<Listed>, Error> {
        let bytes = self.read_index_bytes()?;
        let index: ListIndex<'_> =
            serde_json::from_slice(&bytes).map_err(|e| Error::CorruptStore {
                path: self.index_path(),
                reason: format!("index.json does not parse: {e}"),
            })?;
        let mut out: Vec<Listed> = index
            .manifests
            .into_iter()
            .filter_map(|e| {
                let reference = e.annotations.name.as_deref()?.parse().ok()?;
                let summary = match (&e.annotations.size, e.annotations.created) {
                    (Some(size), Some(created)) => size.parse().ok().map(|size| Summary {
                        size,
                        created: created.into_owned(),
                    }),
                    _ => None,
                };
                Some(Listed {
                    reference,
                    manifest: Descriptor {
                        media_type: e.media_type.into_owned(),
                        digest: e.digest.into_owned(),
                        size: e.size,
                        artifact_type: None,
                        annotations: Default::default(),
                        platform: None,
                    },
                    summary,
                })
            })
            .collect();
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// Reads `index.json`.
    pub fn read_index(&self) -> Result<ImageIndex, Error> {
        let path = self.index_path();
        let bytes = fs::read(&path).map_err(|e| io_err(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::CorruptStore {
            path,
            reason: format!("index.json does not parse: {e}"),
        })
    }

    pub(crate) fn write_index(&self, index: &ImageIndex) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(index).expect("index serializes");
        write_atomic(&self.tmp_dir(), &self.index_path(), &bytes)
    }

    /// All tagged images, sorted by reference.
    pub fn list(&self) -> Result<Vec<StoredImage>, Error> {
        let index = self.read_index()?;
        let mut out: Vec<StoredImage> = index
            .manifests
            .into_iter()
            .filter_map(|d| {
                let name = d.annotations.get(media::ANNOTATION_REF_NAME)?;
                let reference = name.parse().ok()?;
                Some(StoredImage {
                    reference,
                    manifest: d,
                })
            })
            .collect();
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// Finds the manifest a reference names: by digest when it has one, else by tag.
    pub fn resolve(&self, reference: &Reference) -> Result<Descriptor, Error> {
        let bytes = self.read_index_bytes()?;
        let name = reference.name();
        // Every spelling of a matching name holds the repository's last component as
        // written: only those entries (or, by digest, only that digest) are parsed as
        // references, and only the match as a descriptor, so that a lookup stays cheap
        // with thousands of tags.
        let last = reference.repository.rsplit('/').next().unwrap_or_default();
        for (raw, key) in self.index_keys(&bytes)? {
            if reference
                .digest
                .as_ref()
                .is_some_and(|dig| key.digest != *dig)
            {
                continue;
            }
            let Some(r) = key
                .annotations
                .name
                .as_deref()
                .filter(|n| reference.digest.is_some() || n.contains(last))
                .and_then(|n| n.parse::<Reference>().ok())
            else {
                continue;
            };
            let matches = match &reference.digest {
                Some(_) => r.name() == name || reference.tag.is_none(),
                None => r.name() == name && r.tag == reference.tag,
            };
            if matches {
                return self.index_entry(raw);
            }
        }
        Err(Error::NotFound(reference.familiar()))
    }

    fn read_index_bytes(&self) -> Result<Vec<u8>, Error> {
        let path = self.index_path();
        fs::read(&path).map_err(|e| io_err(&path, e))
    }

    /// Each entry of `index.json`'s bytes with its digest and name, borrowed: what a
    /// lookup needs, without building every descriptor.
    fn index_keys<'a>(&self, bytes: &'a [u8]) -> Result<Vec<(&'a RawValue, EntryKey<'a>)>, Error> {
        let corrupt = |e: serde_json::Error| Error::CorruptStore {
            path: self.index_path(),
            reason: format!("index.json does not parse: {e}"),
        };
        let entries: IndexEntries<'a> = serde_json::from_slice(bytes).map_err(corrupt)?;
        entries
            .manifests
            .into_iter()
            .map(|raw| Ok((raw, serde_json::from_str(raw.get()).map_err(corrupt)?)))
            .collect()
    }

    fn index_entry(&self, raw: &RawValue) -> Result<Descriptor, Error> {
        serde_json::from_str(raw.get()).map_err(|e| Error::CorruptStore {
            path: self.index_path(),
            reason: format!("index.json does not parse: {e}"),
        })
    }

    /// Stores `bytes` (a manifest or index of `media_type`) and points `reference` at
    /// it. The caller holds the lock.
    pub fn put_and_tag_locked(
        &self,
        lock: &IndexLock,
        reference: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Descriptor, Error> {
        let desc = Descriptor {
            media_type: media_type.to_owned(),
            digest: self.put_blob(bytes)?,
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: Default::default(),
            platform: None,
        };
        self.set_tag_locked(lock, reference, &desc)?;
        Ok(desc)
    }

    /// Points `reference` (a tag) at `manifest`, replacing what it pointed at. The
    /// caller holds the lock.
    pub fn set_tag_locked(
        &self,
        _lock: &IndexLock,
        reference: &Reference,
        manifest: &Descriptor,
    ) -> Result<(), Error> {
        // A reference without a tag (pulled by digest) is recorded as `name@digest`.
        let tagged = Reference {
            digest: match reference.tag {
                Some(_) => None,
                None => Some(manifest.digest.clone()),
            },
            ..reference.clone()
        };
        let name = tagged.to_string();
        let mut index = self.read_index()?;
        index
            .manifests
            .retain(|d| d.annotations.get(media::ANNOTATION_REF_NAME) != Some(&name));
        // The name is ours to set; where it came from ([`ORIGIN_ANNOTATION`]) travels
        // with the descriptor, so a new tag of a pulled image is still a pulled image.
        // Its summary is read here from the blobs, so that listing reads none. Never
        // taken from the descriptor given: one from a registry's index could carry any.
        let summary = self.summary(manifest).ok();
        let mut desc = manifest.clone();
        desc.annotations.retain(|k, _| k == ORIGIN_ANNOTATION);
        if let Some(summary) = summary {
            summary.record(&mut desc);
        }
        desc.annotations
            .insert(media::ANNOTATION_REF_NAME.to_owned(), name);
        index.manifests.push(desc);
        index.manifests.sort_by(|a, b| {
            a.annotations
                .get(media::ANNOTATION_REF_NAME)
                .cmp(&b.annotations.get(media::ANNOTATION_REF_NAME))
        });
        self.write_index(&index)
    }

    /// Reads the size and creation time of the image behind `desc` from its blobs
    /// (each checked against its digest): the manifest's own size, its config's and
    /// its layers', and the config's `created`.
    pub fn summary(&self, desc: &Descriptor) -> Result<Summary, Error> {
        let bad = |reason: String| Error::BadManifest {
            digest: desc.digest.clone(),
            reason,
        };
        let manifest: ImageManifest = serde_json::from_slice(&self.read_descriptor(desc)?)
            .map_err(|e| bad(format!("manifest does not parse: {e}")))?;
        let config: serde_json::Value =
            serde_json::from_slice(&self.read_descriptor(&manifest.config)?)
                .map_err(|e| bad(format!("config does not parse: {e}")))?;
        Ok(Summary {
            size: desc.size
                + manifest.config.size
                + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
            created: config
                .get("created")
                .and_then(|c| c.as_str())
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// Points `reference` at `manifest`, taking the lock.
    pub fn set_tag(&self, reference: &Reference, manifest: &Descriptor) -> Result<(), Error> {
        let lock = self.lock()?;
        self.set_tag_locked(&lock, reference, manifest)
    }

    /// Whether the image `digest` came only from elsewhere (registries or archives): no
    /// tag of it was built here (entries from before wpkg recorded origins count as
    /// local). Such an image must verify under the trust policy to run.
    pub fn needs_signature(&self, digest: &str) -> Result<bool, Error> {
        let bytes = self.read_index_bytes()?;
        let mut any = false;
        for (raw, _) in self
            .index_keys(&bytes)?
            .into_iter()
            .filter(|(_, key)| key.digest == digest)
        {
            let d = self.index_entry(raw)?;
            // Signature tags come from registries too, and never make an image local:
            // a registry that tags an image itself as `sha256-<hex>.sig` gains nothing.
            let tag = d
                .annotations
                .get(media::ANNOTATION_REF_NAME)
                .and_then(|n| n.parse::<Reference>().ok())
                .and_then(|r| r.tag);
            if tag
                .as_deref()
                .is_some_and(crate::associated::is_signature_tag)
            {
                continue;
            }
            any = true;
            if !matches!(Origin::of(&d), Some(Origin::Pull | Origin::Load)) {
                return Ok(false);
            }
        }
        Ok(any)
    }
}
