//! cosign v3 bundles (`application/vnd.dev.sigstore.bundle.v0.3+json`) attached as
//! referrers: a DSSE envelope around an in-toto statement whose subject is the image
//! digest (what `cosign sign` writes), or a message signature over the payload's digest.
//! The signed digest is the manifest's, so the config, and the capabilities in it, are
//! covered.

use std::collections::BTreeMap;

use base64::Engine as _;
use p256::pkcs8::EncodePublicKey;
use sha2::{Digest as _, Sha256};
use wpkg_spec::media::{Descriptor, ImageManifest};
use wpkg_spec::Digest;
use wpkg_store::associated::{Referrer, BUNDLE_V03, OCI_EMPTY};

use crate::error::VerifyError;
use crate::keys::{PrivateKey, PublicKey, B64};
use crate::verified::Signer;
use crate::verified::Trusted;

/// The in-toto predicate type cosign v3 uses for image signatures.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// Wraps a sigstore bundle in a referrer manifest of `subject` (OCI 1.1: `artifactType`
/// the bundle media type, the empty config, one layer, `subject`), annotated as cosign
/// does (`created`, the bundle content, the predicate type).
pub fn bundle_referrer(bundle: &[u8], subject: &Descriptor, created: &str) -> Referrer {
    let empty = b"{}".to_vec();
    let desc = |media_type: &str, bytes: &[u8]| Descriptor {
        media_type: media_type.to_owned(),
        digest: wpkg_store::sha256_digest(bytes),
        size: bytes.len() as u64,
        artifact_type: None,
        annotations: Default::default(),
        platform: None,
    };
    let annotations: BTreeMap<String, String> = [
        ("org.opencontainers.image.created", created),
        ("dev.sigstore.bundle.content", "dsse-envelope"),
        ("dev.sigstore.bundle.predicateType", COSIGN_SIGN_PREDICATE),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(wpkg_spec::media::OCI_MANIFEST.into()),
        artifact_type: Some(BUNDLE_V03.into()),
        config: desc(OCI_EMPTY, &empty),
        layers: vec![desc(BUNDLE_V03, bundle)],
        subject: Some(Descriptor {
            media_type: subject.media_type.clone(),
            digest: subject.digest.clone(),
            size: subject.size,
            artifact_type: None,
            annotations: Default::default(),
            platform: None,
        }),
        annotations: annotations.clone(),
    };
    let manifest = serde_json::to_vec(&m).expect("JSON serializes");
    let mut descriptor = desc(wpkg_spec::media::OCI_MANIFEST, &manifest);
    descriptor.artifact_type = Some(BUNDLE_V03.into());
    descriptor.annotations = annotations;
    Referrer {
        manifest,
        descriptor,
        blobs: vec![empty, bundle.to_vec()],
    }
}

pub use crate::keys::dsse_pae;

/// What an image bundle must sign: the manifest digest, and for DSSE a cosign image
/// signature statement.
fn expect_image(manifest_digest: &str) -> Result<crate::sigbundle::Expect<'static>, VerifyError> {
    let d = Digest::parse(manifest_digest).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let sha256: [u8; 32] = hex::decode(d.hex())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            VerifyError::Unsupported(format!("`{manifest_digest}` is not a SHA-256 digest"))
        })?;
    Ok(crate::sigbundle::Expect {
        sha256,
        predicate: Some(COSIGN_SIGN_PREDICATE),
    })
}

/// Checks a cosign v3 bundle against what a scope trusts: a bundle with a certificate
/// is keyless (identities under the trust root), one without is checked with the keys.
pub fn verify_bundle_trusted(
    bundle_json: &[u8],
    manifest_digest: &str,
    trusted: &Trusted<'_>,
) -> Result<Signer, VerifyError> {
    crate::sigbundle::verify(bundle_json, &expect_image(manifest_digest)?, trusted)
}

/// Checks a keyless cosign v3 bundle for `manifest_digest` under `root`, for one of
/// `identities`.
pub fn verify_keyless_bundle(
    bundle_json: &[u8],
    manifest_digest: &str,
    identities: &[crate::keyless::Identity],
    root: &crate::keyless::TrustedRoot,
) -> Result<crate::keyless::Vouched, VerifyError> {
    let (b, version) = crate::sigbundle::parse(bundle_json)?;
    crate::sigbundle::verify_keyless_parsed(
        &b,
        version,
        &expect_image(manifest_digest)?,
        root,
        identities,
    )
}

/// Checks a cosign v3 bundle (the JSON of a referrer's layer) for `manifest_digest` with
/// `keys` only.
pub fn verify_bundle(
    bundle_json: &[u8],
    manifest_digest: &str,
    keys: &[PublicKey],
) -> Result<Signer, VerifyError> {
    let no_root = || Err("no trust root is used for key signatures".to_owned());
    crate::sigbundle::verify(
        bundle_json,
        &expect_image(manifest_digest)?,
        &Trusted {
            keys,
            identities: &[],
            root: &no_root,
        },
    )
}

/// Builds a cosign v3 style bundle (DSSE around an in-toto statement) for tests and for
/// `wpkg sign --bundle`. Returns the bundle JSON.
pub fn make_bundle(key: &PrivateKey, manifest_digest: &Digest) -> Vec<u8> {
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": manifest_digest.hex()}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    })
    .to_string();
    let payload_type = "application/vnd.in-toto+json";
    let sig = key.sign(&dsse_pae(payload_type, statement.as_bytes()));
    let hint = key_hint(key);
    serde_json::to_vec(&serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": hint}},
        "dsseEnvelope": {
            "payload": B64.encode(statement.as_bytes()),
            "payloadType": payload_type,
            "signatures": [{"sig": B64.encode(sig)}],
        },
    }))
    .expect("JSON serializes")
}

/// A bundle's public key hint: the base64 SHA-256 of the key's SubjectPublicKeyInfo.
fn key_hint(key: &PrivateKey) -> String {
    let der = key
        .public()
        .0
        .to_public_key_der()
        .expect("a P-256 key encodes");
    B64.encode(Sha256::digest(der.as_bytes()))
}

/// Builds a sigstore bundle v0.3 with a message signature over a file's SHA-256 by
/// `key` (what `cosign sign-blob --key --bundle` writes without a transparency log).
pub fn make_blob_bundle(key: &PrivateKey, sha256: &[u8; 32]) -> Vec<u8> {
    let sig = key.sign_prehashed(sha256);
    let hint = key_hint(key);
    serde_json::to_vec(&serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": hint}},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(sha256)},
            "signature": B64.encode(sig),
        },
    }))
    .expect("JSON serializes")
}
