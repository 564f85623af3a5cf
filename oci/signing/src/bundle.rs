//! cosign v3 bundles (`application/vnd.dev.sigstore.bundle.v0.3+json`) attached as
//! referrers: a DSSE envelope around an in-toto statement whose subject is the image
//! digest (what `cosign sign` writes), or a message signature over the payload's digest.
//! The signed digest is the manifest's, so the config, and the capabilities in it, are
//! covered.

use std::collections::BTreeMap;

use base64::Engine as _;
use p256::pkcs8::EncodePublicKey;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use wpkg_spec::media::{Descriptor, ImageManifest};
use wpkg_spec::Digest;
use wpkg_store::associated::{decode_b64, Referrer, BUNDLE_MEDIA_PREFIX, BUNDLE_V03, OCI_EMPTY};

use crate::error::{KeyForm, Signer, VerifyError};
use crate::keys::{PrivateKey, PublicKey, B64};
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

/// A sigstore bundle, the fields wpkg reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    #[serde(default)]
    verification_material: Option<VerificationMaterial>,
    #[serde(default)]
    dsse_envelope: Option<Dsse>,
    #[serde(default)]
    message_signature: Option<MessageSignature>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerificationMaterial {
    #[serde(default)]
    certificate: Option<RawBytes>,
    #[serde(default)]
    x509_certificate_chain: Option<CertChain>,
    #[serde(default)]
    tlog_entries: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct CertChain {
    certificates: Vec<RawBytes>,
}

impl VerificationMaterial {
    /// The leaf certificate (v0.3 `certificate`, or the first of a v0.1/v0.2 chain).
    fn leaf(&self) -> Option<&str> {
        self.certificate
            .as_ref()
            .or_else(|| self.x509_certificate_chain.as_ref()?.certificates.first())
            .map(|c| c.raw_bytes.as_str())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Dsse {
    payload: String,
    payload_type: String,
    signatures: Vec<DsseSig>,
}

impl Dsse {
    /// The in-toto payload and the one signature of the envelope, decoded.
    fn open(&self) -> Result<(Vec<u8>, Vec<u8>), VerifyError> {
        if self.payload_type != "application/vnd.in-toto+json" {
            return Err(VerifyError::Unsupported(format!(
                "unsupported DSSE payload type `{}`",
                self.payload_type
            )));
        }
        let payload =
            decode_b64(&self.payload).ok_or_else(|| malformed("the DSSE payload is not base64"))?;
        let [sig] = self.signatures.as_slice() else {
            return Err(VerifyError::Unsupported(
                "a DSSE envelope must carry exactly one signature".into(),
            ));
        };
        let sig =
            decode_b64(&sig.sig).ok_or_else(|| malformed("the DSSE signature is not base64"))?;
        Ok((payload, sig))
    }
}

#[derive(Deserialize)]
struct DsseSig {
    sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignature {
    message_digest: MessageDigest,
    signature: String,
}

#[derive(Deserialize)]
struct MessageDigest {
    algorithm: String,
    digest: String,
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
}

#[derive(Deserialize)]
struct Subject {
    digest: BTreeMap<String, String>,
}

pub use crate::keys::dsse_pae;

/// Checks that an in-toto statement is a cosign image signature for `manifest_digest`.
fn check_statement(payload: &[u8], manifest_digest: &str) -> Result<(), VerifyError> {
    let want = Digest::parse(manifest_digest).map_err(|e| malformed(e.to_string()))?;
    let want_hex = want.hex();
    let st: Statement = serde_json::from_slice(payload)
        .map_err(|e| malformed(format!("the signed statement is not in-toto JSON ({e})")))?;
    if !st.kind.starts_with("https://in-toto.io/Statement/") {
        return Err(VerifyError::Statement(format!(
            "the signed statement has type `{}`",
            st.kind
        )));
    }
    if st.predicate_type != COSIGN_SIGN_PREDICATE {
        return Err(VerifyError::Statement(format!(
            "the signed statement is an attestation (`{}`), not an image signature",
            st.predicate_type
        )));
    }
    if !st
        .subject
        .iter()
        .any(|s| s.digest.get("sha256").map(String::as_str) == Some(want_hex))
    {
        return Err(VerifyError::Subject {
            signed: None,
            wanted: manifest_digest.to_owned(),
        });
    }
    Ok(())
}

fn malformed(what: impl Into<String>) -> VerifyError {
    VerifyError::Malformed(what.into())
}

fn parse(bundle_json: &[u8]) -> Result<Bundle, VerifyError> {
    let b: Bundle = serde_json::from_slice(bundle_json)
        .map_err(|e| malformed(format!("the bundle is not sigstore bundle JSON ({e})")))?;
    if !b.media_type.starts_with(BUNDLE_MEDIA_PREFIX) {
        return Err(VerifyError::Unsupported(format!(
            "unsupported bundle media type `{}`",
            b.media_type
        )));
    }
    Ok(b)
}

/// Checks a cosign v3 bundle against what a scope trusts: a bundle with a certificate
/// is keyless (identities under the trust root), one without is checked with the keys.
pub fn verify_bundle_trusted(
    bundle_json: &[u8],
    manifest_digest: &str,
    trusted: &Trusted<'_>,
) -> Result<Signer, VerifyError> {
    let b = parse(bundle_json)?;
    if b.verification_material
        .as_ref()
        .and_then(|v| v.leaf())
        .is_none()
    {
        return verify_bundle(bundle_json, manifest_digest, trusted.keys);
    }
    if trusted.identities.is_empty() {
        return Err(VerifyError::KeylessNotTrusted);
    }
    let root = (trusted.root)().map_err(VerifyError::TrustRoot)?;
    verify_keyless_bundle(bundle_json, manifest_digest, trusted.identities, &root)
        .map(Signer::Keyless)
}

/// Checks a keyless cosign v3 bundle (certificate, Rekor entry, DSSE statement) for
/// `manifest_digest` under `root`, for one of `identities`.
pub fn verify_keyless_bundle(
    bundle_json: &[u8],
    manifest_digest: &str,
    identities: &[crate::keyless::Identity],
    root: &crate::keyless::TrustedRoot,
) -> Result<crate::keyless::Vouched, VerifyError> {
    let b = parse(bundle_json)?;
    let vm = b
        .verification_material
        .as_ref()
        .ok_or_else(|| malformed("the bundle has no verification material"))?;
    let leaf = vm
        .leaf()
        .and_then(decode_b64)
        .ok_or_else(|| malformed("the bundle has no base64 certificate"))?;
    let env = b.dsse_envelope.as_ref().ok_or_else(|| VerifyError::Unsupported(
        "it is a keyless message signature; wpkg reads keyless image signatures as DSSE bundles (cosign v3)".into(),
    ))?;
    let (payload, sig) = env.open()?;
    let who = crate::keyless::verify_dsse_keyless(
        &crate::keyless::DsseKeyless {
            leaf_der: &leaf,
            payload: &payload,
            payload_type: &env.payload_type,
            signature: &sig,
            tlog_entries: &vm.tlog_entries,
        },
        root,
        identities,
    )?;
    check_statement(&payload, manifest_digest)?;
    Ok(who)
}

/// Checks a cosign v3 bundle (the JSON of a referrer's layer) for `manifest_digest`.
pub fn verify_bundle(
    bundle_json: &[u8],
    manifest_digest: &str,
    keys: &[PublicKey],
) -> Result<Signer, VerifyError> {
    let b = parse(bundle_json)?;
    let want = Digest::parse(manifest_digest).map_err(|e| malformed(e.to_string()))?;
    let want_hex = want.hex();
    let no_key = || {
        if keys.is_empty() {
            VerifyError::NoKeys
        } else {
            VerifyError::Key
        }
    };
    let by = |key: &PublicKey| Signer::Key {
        form: KeyForm::Bundle,
        fingerprint: key.fingerprint(),
    };
    if let Some(env) = b.dsse_envelope {
        let (payload, sig) = env.open()?;
        let pae = dsse_pae(&env.payload_type, &payload);
        let key = keys
            .iter()
            .find(|k| k.verify(&pae, &sig))
            .ok_or_else(no_key)?;
        check_statement(&payload, manifest_digest)?;
        return Ok(by(key));
    }
    if let Some(ms) = b.message_signature {
        if ms.message_digest.algorithm != "SHA2_256" {
            return Err(VerifyError::Unsupported(format!(
                "unsupported digest algorithm `{}`",
                ms.message_digest.algorithm
            )));
        }
        let digest = decode_b64(&ms.message_digest.digest)
            .ok_or_else(|| malformed("the message digest is not base64"))?;
        if hex::encode(&digest) != want_hex {
            return Err(VerifyError::Subject {
                signed: Some(format!("sha256:{}", hex::encode(&digest))),
                wanted: manifest_digest.to_owned(),
            });
        }
        // A message signature over the manifest itself: ECDSA over SHA-256(manifest),
        // which is the digest we just compared.
        let sig =
            decode_b64(&ms.signature).ok_or_else(|| malformed("the signature is not base64"))?;
        let key = keys
            .iter()
            .find(|k| k.verify_prehashed(&digest, &sig))
            .ok_or_else(no_key)?;
        return Ok(by(key));
    }
    Err(malformed(
        "the bundle has neither a DSSE envelope nor a message signature",
    ))
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
    let hint = {
        let der = key
            .public()
            .0
            .to_public_key_der()
            .expect("a P-256 key encodes");
        B64.encode(Sha256::digest(der.as_bytes()))
    };
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
