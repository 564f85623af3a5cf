//! Classic cosign signatures: a manifest tagged `sha256-<hex>.sig` next to the image,
//! one layer per signature of media type `application/vnd.dev.cosign.simplesigning.v1+json`
//! holding the simple-signing payload, the base64 DER ECDSA signature over it in the
//! `dev.cosignproject.cosign/signature` annotation; keyless ones also carry the
//! certificate and the Rekor entry in annotations.

use serde::Deserialize;
use wpkg_store::associated::ClassicSignature;

use crate::keys::PublicKey;
use crate::verified::{Trusted, Verified};

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
) -> Result<Verified, String> {
    if trusted.identities.is_empty() {
        return Err(
            "it is a keyless signature (a certificate), and the scope trusts keys only".into(),
        );
    }
    let payload: SimpleSigning = serde_json::from_slice(&sig.payload)
        .map_err(|e| format!("the signed payload is not cosign's simple-signing JSON ({e})"))?;
    if payload.critical.kind != COSIGN_SIGNATURE_TYPE {
        return Err(format!(
            "the signed payload has type `{}`",
            payload.critical.kind
        ));
    }
    let root = (trusted.root)()?;
    let who = crate::keyless::verify_classic_keyless(
        &sig.payload,
        &sig.signature,
        cert,
        sig.rekor_bundle.as_deref(),
        &root,
        trusted.identities,
    )?;
    if payload.critical.image.digest != manifest_digest {
        return Err(format!(
            "it is a valid signature for another image ({}), not for {manifest_digest}",
            payload.critical.image.digest
        ));
    }
    Ok(Verified {
        key: who,
        form: "keyless",
    })
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
) -> Result<Verified, String> {
    let payload: SimpleSigning = serde_json::from_slice(&sig.payload)
        .map_err(|e| format!("the signed payload is not cosign's simple-signing JSON ({e})"))?;
    if payload.critical.kind != COSIGN_SIGNATURE_TYPE {
        return Err(format!(
            "the signed payload has type `{}`, not `{COSIGN_SIGNATURE_TYPE}`",
            payload.critical.kind
        ));
    }
    let key = keys
        .iter()
        .find(|k| k.verify(&sig.payload, &sig.signature))
        .ok_or_else(|| {
            if keys.is_empty() {
                "no trusted key to check it with".to_owned()
            } else {
                "it does not verify with any trusted key".to_owned()
            }
        })?;
    if payload.critical.image.digest != manifest_digest {
        return Err(format!(
            "it is a valid signature for another image ({}), not for {manifest_digest}",
            payload.critical.image.digest
        ));
    }
    Ok(Verified {
        key: key.fingerprint(),
        form: "classic",
    })
}
