//! Classic cosign signatures: a manifest tagged `sha256-<hex>.sig` next to the image,
//! one layer per signature of media type `application/vnd.dev.cosign.simplesigning.v1+json`
//! holding the simple-signing payload, the base64 DER ECDSA signature over it in the
//! `dev.cosignproject.cosign/signature` annotation; keyless ones also carry the
//! certificate and the Rekor entry in annotations.

use serde::Deserialize;
use wpkg_store::associated::ClassicSignature;

use crate::error::VerifyError;
use crate::keys::PublicKey;
use crate::verified::Trusted;
use crate::verified::{KeyForm, Signer};

/// The `critical.type` of a cosign image signature.
pub const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";

/// The simple-signing payload cosign signs, byte for byte as cosign writes it:
/// `docker_reference` is `registry/repository` without tag or digest.
pub fn simple_signing_payload(docker_reference: &str, manifest_digest: &str) -> Vec<u8> {
    // Field order and `"optional":null` as Go's encoding/json writes cosign's struct.
    format!(
        "{{\"critical\":{{\"identity\":{{\"docker-reference\":{}}},\"image\":{{\"docker-manifest-digest\":{}}},\"type\":{}}},\"optional\":null}}",
        serde_json::Value::from(docker_reference),
        serde_json::Value::from(manifest_digest),
        serde_json::Value::from(COSIGN_SIGNATURE_TYPE),
    )
    .into_bytes()
}

pub(crate) fn verify_classic_cert(
    sig: &ClassicSignature,
    cert: &str,
    manifest_digest: &str,
    trusted: &Trusted<'_>,
) -> Result<Signer, VerifyError> {
    if trusted.identities.is_empty() {
        return Err(VerifyError::KeylessNotTrusted);
    }
    let payload = simple_signing(&sig.payload)?;
    let root = (trusted.root)().map_err(VerifyError::TrustRoot)?;
    let who = crate::keyless::verify_classic_keyless(
        &sig.payload,
        &sig.signature,
        cert,
        sig.rekor_bundle.as_deref(),
        &root,
        trusted.identities,
    )?;
    check_subject(&payload, manifest_digest)?;
    Ok(Signer::Keyless(who))
}

/// The simple-signing payload, checked to be a cosign image signature.
fn simple_signing(payload: &[u8]) -> Result<SimpleSigning, VerifyError> {
    let p: SimpleSigning = serde_json::from_slice(payload).map_err(|e| {
        VerifyError::Malformed(format!(
            "the signed payload is not cosign's simple-signing JSON ({e})"
        ))
    })?;
    if p.critical.kind != COSIGN_SIGNATURE_TYPE {
        return Err(VerifyError::Statement(format!(
            "the signed payload has type `{}`, not `{COSIGN_SIGNATURE_TYPE}`",
            p.critical.kind
        )));
    }
    Ok(p)
}

fn check_subject(p: &SimpleSigning, manifest_digest: &str) -> Result<(), VerifyError> {
    if p.critical.image.digest != manifest_digest {
        return Err(VerifyError::Subject {
            signed: Some(p.critical.image.digest.clone()),
            wanted: manifest_digest.to_owned(),
        });
    }
    Ok(())
}

#[derive(Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// Checks one classic signature for `manifest_digest` with `keys`; `Err` says why not.
pub fn verify_classic(
    sig: &ClassicSignature,
    manifest_digest: &str,
    keys: &[PublicKey],
) -> Result<Signer, VerifyError> {
    let payload = simple_signing(&sig.payload)?;
    let key = keys
        .iter()
        .find(|k| k.verify(&sig.payload, &sig.signature))
        .ok_or(if keys.is_empty() {
            VerifyError::NoKeys
        } else {
            VerifyError::Key
        })?;
    check_subject(&payload, manifest_digest)?;
    Ok(Signer::Key {
        form: KeyForm::Classic,
        fingerprint: key.fingerprint(),
    })
}
