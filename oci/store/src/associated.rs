//! Artifacts attached to an image, in cosign's formats: tag names (`sha256-<hex>.sig`, the
//! `sha256-<hex>` referrers fallback index) and OCI 1.1 referrers stored beside it.
//! What the attached artifacts mean (signatures) is the signing crate's business.

use std::collections::BTreeMap;

use base64::Engine as _;
use wpkg_spec::media::{self, Descriptor, ImageIndex, ImageManifest};
use wpkg_spec::Reference;

use crate::digest::sha256_digest;
use crate::{Error, Store};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The tag of an image's classic signature manifest: `sha256-<hex>.sig`.
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", referrers_tag(manifest_digest))
}

/// The referrers fallback tag of an image: `sha256-<hex>`.
pub fn referrers_tag(manifest_digest: &str) -> String {
    match wpkg_spec::Digest::parse(manifest_digest) {
        Ok(d) => d.tag(),
        // Not a digest: never a tag any image's digest maps to.
        Err(_) => manifest_digest.replacen(':', "-", 1),
    }
}

/// Whether a tag names attached material (`sha256-<hex>` with an optional suffix).
pub fn is_signature_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-").is_some_and(|rest| {
        let hex = rest.split('.').next().unwrap_or("");
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// A referrer manifest (OCI 1.1, with `subject`) and its blobs.
#[derive(Clone, Debug)]
pub struct Referrer {
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// Its descriptor, as an entry of a referrers index (with `artifactType`).
    pub descriptor: Descriptor,
    /// The blobs it names.
    pub blobs: Vec<Vec<u8>>,
}

impl Store {
    /// The signature material the store holds for the image `digest`, under any
    /// repository: the classic `sha256-<hex>.sig` manifests' layers, and the bundles
    /// of the `sha256-<hex>` referrers index. Every blob is digest-checked as read.
    pub fn signatures(&self, digest: &str) -> Result<Material, Error> {
        let sig_tag = signature_tag(digest);
        let ref_tag = referrers_tag(digest);
        let mut out = Material::default();
        for img in self.list()? {
            let tag = img.reference.tag.as_deref().unwrap_or("");
            if tag == sig_tag {
                let bytes = self.read_descriptor(&img.manifest)?;
                let Ok(m) = serde_json::from_slice::<ImageManifest>(&bytes) else {
                    continue;
                };
                out.classic
                    .extend(classic_from_manifest(&m, |l| self.read_descriptor(l))?);
            } else if tag == ref_tag {
                let bytes = self.read_descriptor(&img.manifest)?;
                let Ok(index) = serde_json::from_slice::<ImageIndex>(&bytes) else {
                    continue;
                };
                for child in &index.manifests {
                    let Ok(b) = self.read_descriptor(child) else {
                        continue;
                    };
                    let Ok(m) = serde_json::from_slice::<ImageManifest>(&b) else {
                        continue;
                    };
                    if let Some(layer) = bundle_layer(&m) {
                        out.bundles.push(self.read_descriptor(layer)?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Attaches a referrer (manifest and blobs) to the image `subject` under `name`'s
    /// repository: stored, then listed in the `sha256-<hex>` referrers index tag (the
    /// OCI fallback form, which `wpkg push` sends on). An entry already listed is not
    /// added twice.
    pub fn attach_referrer(
        &self,
        name: &Reference,
        subject: &str,
        referrer: &Referrer,
    ) -> Result<(), Error> {
        for b in &referrer.blobs {
            self.put_blob(b)?;
        }
        self.put_blob_expecting(
            &referrer.manifest,
            &referrer.descriptor.digest,
            Some(referrer.manifest.len() as u64),
        )?;
        let lock = self.lock()?;
        let tag = name.with_tag(&referrers_tag(subject));
        let mut index =
            match self.resolve(&tag) {
                Ok(d) => serde_json::from_slice::<ImageIndex>(&self.read_descriptor(&d)?).map_err(
                    |e| Error::CorruptStore {
                        path: self.root().join("index.json"),
                        reason: format!("the referrers index {tag} is not an OCI index: {e}"),
                    },
                )?,
                Err(Error::NotFound(_)) => ImageIndex {
                    schema_version: 2,
                    media_type: Some(media::OCI_INDEX.into()),
                    manifests: Vec::new(),
                    annotations: Default::default(),
                },
                Err(e) => return Err(e),
            };
        if !index
            .manifests
            .iter()
            .any(|d| d.digest == referrer.descriptor.digest)
        {
            index.manifests.push(referrer.descriptor.clone());
        }
        let bytes = serde_json::to_vec(&index).expect("JSON serializes");
        self.put_and_tag_locked(&lock, &tag, media::OCI_INDEX, &bytes)?;
        Ok(())
    }

    /// The referrer manifests the store lists for the image `digest` (from every
    /// `sha256-<hex>` referrers index), each with its bytes, digest-checked.
    pub fn referrers(&self, digest: &str) -> Result<Vec<(Descriptor, Vec<u8>)>, Error> {
        let ref_tag = referrers_tag(digest);
        let mut out: Vec<(Descriptor, Vec<u8>)> = Vec::new();
        for img in self.list()? {
            if img.reference.tag.as_deref() != Some(ref_tag.as_str()) {
                continue;
            }
            let bytes = self.read_descriptor(&img.manifest)?;
            let Ok(index) = serde_json::from_slice::<ImageIndex>(&bytes) else {
                continue;
            };
            for child in index.manifests {
                if out.iter().any(|(d, _)| d.digest == child.digest) {
                    continue;
                }
                let b = self.read_descriptor(&child)?;
                out.push((child, b));
            }
        }
        Ok(out)
    }
}

/// Media type of a classic signature layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding a classic signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The annotation holding a keyless signature's certificate (PEM).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The annotation holding a keyless signature's Rekor entry (SET bundle JSON).
pub const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// Media type prefix of sigstore bundles.
pub const BUNDLE_MEDIA_PREFIX: &str = "application/vnd.dev.sigstore.bundle";

/// The media type of a sigstore bundle v0.3, and the `artifactType` of its referrer.
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// The OCI empty descriptor's media type (the config of artifact manifests).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// A classic signature manifest under construction or read back: its payload layers.
#[derive(Clone, Debug)]
pub struct ClassicSignature {
    /// The simple-signing payload.
    pub payload: Vec<u8>,
    /// The DER signature.
    pub signature: Vec<u8>,
    /// The certificate (PEM), for keyless signatures.
    pub certificate: Option<String>,
    /// The Rekor bundle (`dev.sigstore.cosign/bundle`), for keyless signatures.
    pub rekor_bundle: Option<String>,
}

/// Builds (or extends) the `.sig` manifest with one more signature. Returns the
/// manifest bytes and the blobs it needs (config and payload), cosign's shapes: an OCI
/// manifest, an OCI image config listing each layer's digest, uncompressed layers.
pub fn add_classic_signature(
    existing: Option<(&ImageManifest, Vec<u8>)>,
    payload: &[u8],
    signature: &[u8],
) -> (Vec<u8>, Vec<Vec<u8>>) {
    add_signature_layer(existing, payload, signature, BTreeMap::new())
}

/// Like [`add_classic_signature`], with more layer annotations (a keyless signature's
/// certificate and Rekor bundle).
pub fn add_signature_layer(
    existing: Option<(&ImageManifest, Vec<u8>)>,
    payload: &[u8],
    signature: &[u8],
    extra: BTreeMap<String, String>,
) -> (Vec<u8>, Vec<Vec<u8>>) {
    let payload_digest = sha256_digest(payload);
    let sig_b64 = B64.encode(signature);
    let mut layers: Vec<Descriptor> = existing.map(|(m, _)| m.layers.clone()).unwrap_or_default();
    // The same payload and signature twice is one signature.
    if !layers.iter().any(|l| {
        l.digest == payload_digest && l.annotations.get(SIGNATURE_ANNOTATION) == Some(&sig_b64)
    }) {
        layers.push(Descriptor {
            media_type: SIMPLE_SIGNING.into(),
            digest: payload_digest,
            size: payload.len() as u64,
            artifact_type: None,
            annotations: {
                let mut a = extra;
                a.insert(SIGNATURE_ANNOTATION.to_owned(), sig_b64);
                a
            },
            platform: None,
        });
    }
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let history: Vec<serde_json::Value> = layers
        .iter()
        .map(|_| serde_json::json!({"created": "0001-01-01T00:00:00Z"}))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": history,
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    }))
    .expect("JSON serializes");
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(wpkg_spec::media::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor {
            media_type: "application/vnd.oci.image.config.v1+json".into(),
            digest: sha256_digest(&config),
            size: config.len() as u64,
            artifact_type: None,
            annotations: Default::default(),
            platform: None,
        },
        layers,
        subject: None,
        annotations: Default::default(),
    };
    let bytes = serde_json::to_vec(&manifest).expect("JSON serializes");
    (bytes, vec![config, payload.to_vec()])
}

/// The signature material found for one image.
#[derive(Clone, Debug, Default)]
pub struct Material {
    /// Classic `.sig` signatures.
    pub classic: Vec<ClassicSignature>,
    /// cosign v3 bundles (JSON).
    pub bundles: Vec<Vec<u8>>,
}

impl Material {
    /// How many signatures there are.
    pub fn len(&self) -> usize {
        self.classic.len() + self.bundles.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The classic signatures of a `.sig` manifest; `blob` reads a layer (digest-checked).
pub fn classic_from_manifest<E>(
    manifest: &ImageManifest,
    mut blob: impl FnMut(&Descriptor) -> Result<Vec<u8>, E>,
) -> Result<Vec<ClassicSignature>, E> {
    let annotation =
        |l: &Descriptor, key: &str| l.annotations.get(key).filter(|v| !v.is_empty()).cloned();
    let mut out = Vec::new();
    for l in manifest
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING)
    {
        let Some(sig) = l.annotations.get(SIGNATURE_ANNOTATION) else {
            continue;
        };
        out.push(ClassicSignature {
            payload: blob(l)?,
            signature: decode_b64(sig).unwrap_or_default(),
            certificate: annotation(l, CERTIFICATE_ANNOTATION),
            rekor_bundle: annotation(l, REKOR_BUNDLE_ANNOTATION),
        });
    }
    Ok(out)
}

/// The bundle layer of a referrer manifest, if it is one: exactly one layer, of a
/// sigstore bundle media type.
pub fn bundle_layer(manifest: &ImageManifest) -> Option<&Descriptor> {
    match manifest.layers.as_slice() {
        [layer] if layer.media_type.starts_with(BUNDLE_MEDIA_PREFIX) => Some(layer),
        _ => None,
    }
}

/// Decodes base64 as cosign and sigstore write it: standard, or URL-safe with or
/// without padding.
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    B64.decode(s)
        .ok()
        .or_else(|| base64::engine::general_purpose::URL_SAFE.decode(s).ok())
        .or_else(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .ok()
        })
}
