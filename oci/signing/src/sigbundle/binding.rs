//! A log entry is this signature: its canonicalized body names the same signature, the
//! same certificate or key, and the same content (the artifact's digest, the DSSE
//! payload's hash, or for a DSSE envelope logged as a hashedrekord the hash of its PAE).
//! Rekor v1 bodies (hashedrekord, dsse 0.0.1) and Rekor v2 bodies (0.0.2).

use serde_json::Value;

use super::{b64, Content, B64};
use crate::error::VerifyError;
use crate::keyless::{pem_certs, TlogEntry};
use crate::keys::PublicKey;
use base64::Engine as _;

/// Who the entry must name as the signer.
pub(crate) enum Signer<'a> {
    /// A certificate (DER).
    Certificate(&'a [u8]),
    /// A public key.
    Key(&'a PublicKey),
}

fn mismatch(what: &str) -> VerifyError {
    VerifyError::BodyBinding(format!(
        "its Rekor entry is for another {what} than the bundle's"
    ))
}

/// Checks that the entry's body is this signature.
pub(crate) fn check(
    e: &TlogEntry,
    content: &Content,
    signer: &Signer<'_>,
    artifact_sha256: &[u8; 32],
) -> Result<(), VerifyError> {
    let body: Value = serde_json::from_slice(&b64(&e.canonicalized_body, "the entry body")?)
        .map_err(|err| {
            VerifyError::Malformed(format!("the Rekor entry body is not JSON ({err})"))
        })?;
    let kind = body["kind"].as_str().unwrap_or("?");
    let version = body["apiVersion"].as_str().unwrap_or("?");
    if kind != e.kind_version.kind || version != e.kind_version.version {
        return Err(VerifyError::BodyBinding(format!(
            "its Rekor entry says {} {} but its body is {kind} {version}",
            e.kind_version.kind, e.kind_version.version
        )));
    }
    let spec = &body["spec"];
    // What a hashedrekord must have logged: the artifact digest for a message
    // signature, the PAE's digest for a DSSE envelope.
    let signed_hash = || match content {
        Content::Message { .. } => artifact_sha256.to_vec(),
        Content::Dsse {
            payload,
            payload_type,
            ..
        } => super::sha256(&crate::keys::dsse_pae(payload_type, payload)).to_vec(),
    };
    match (kind, version) {
        ("hashedrekord", "0.0.1") => {
            let hash = &spec["data"]["hash"];
            if hash["algorithm"] != "sha256"
                || hash["value"].as_str() != Some(hex::encode(signed_hash()).as_str())
            {
                return Err(mismatch("artifact"));
            }
            same_signature(&spec["signature"]["content"], content)?;
            same_signer_pem(&spec["signature"]["publicKey"]["content"], signer)
        }
        ("dsse", "0.0.1") => {
            let Content::Dsse { payload, .. } = content else {
                return Err(mismatch("kind of signature (a DSSE entry)"));
            };
            let hash = &spec["payloadHash"];
            if hash["algorithm"] != "sha256"
                || hash["value"].as_str() != Some(hex::encode(super::sha256(payload)).as_str())
            {
                return Err(mismatch("payload"));
            }
            let [sig] = spec["signatures"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
            else {
                return Err(mismatch("envelope (not one signature)"));
            };
            same_signature(&sig["signature"], content)?;
            same_signer_pem(&sig["verifier"], signer)
        }
        ("hashedrekord", "0.0.2") => {
            let h = &spec["hashedRekordV002"];
            if h["data"]["algorithm"] != "SHA2_256"
                || decode(&h["data"]["digest"]).as_deref() != Some(signed_hash().as_slice())
            {
                return Err(mismatch("artifact"));
            }
            same_signature(&h["signature"]["content"], content)?;
            same_signer_v2(&h["signature"]["verifier"], signer)
        }
        ("dsse", "0.0.2") => {
            let Content::Dsse { payload, .. } = content else {
                return Err(mismatch("kind of signature (a DSSE entry)"));
            };
            let d = &spec["dsseV002"];
            if d["payloadHash"]["algorithm"] != "SHA2_256"
                || decode(&d["payloadHash"]["digest"]).as_deref()
                    != Some(super::sha256(payload).as_slice())
            {
                return Err(mismatch("payload"));
            }
            let [sig] = d["signatures"].as_array().map(Vec::as_slice).unwrap_or(&[]) else {
                return Err(mismatch("envelope (not one signature)"));
            };
            same_signature(&sig["content"], content)?;
            same_signer_v2(&sig["verifier"], signer)
        }
        ("intoto", "0.0.2") => {
            // The envelope as logged: payload and signatures base64 of their base64.
            let Content::Dsse { payload, .. } = content else {
                return Err(mismatch("kind of signature (an in-toto entry)"));
            };
            let c = &spec["content"];
            let hash = &c["payloadHash"];
            if hash["algorithm"] != "sha256"
                || hash["value"].as_str() != Some(hex::encode(super::sha256(payload)).as_str())
            {
                return Err(mismatch("payload"));
            }
            let twice = |v: &Value| {
                decode(v)
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| B64.decode(s.trim()).ok())
            };
            if twice(&c["envelope"]["payload"]).as_deref() != Some(payload.as_slice()) {
                return Err(mismatch("payload"));
            }
            let [sig] = c["envelope"]["signatures"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
            else {
                return Err(mismatch("envelope (not one signature)"));
            };
            if twice(&sig["sig"]).as_deref() != Some(content.signature()) {
                return Err(mismatch("signature"));
            }
            same_signer_pem(&sig["publicKey"], signer)
        }
        _ => Err(VerifyError::Unsupported(format!(
            "its Rekor entry is a {kind} {version}, which wpkg does not check"
        ))),
    }
}

fn decode(v: &Value) -> Option<Vec<u8>> {
    v.as_str().and_then(|s| B64.decode(s).ok())
}

fn same_signature(logged: &Value, content: &Content) -> Result<(), VerifyError> {
    if decode(logged).as_deref() != Some(content.signature()) {
        return Err(mismatch("signature"));
    }
    Ok(())
}

/// Rekor v1: the verifier is base64 of a PEM certificate or public key.
fn same_signer_pem(logged: &Value, signer: &Signer<'_>) -> Result<(), VerifyError> {
    let pem = decode(logged)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let same = match signer {
        Signer::Certificate(der) => pem_certs(&pem).first().map(Vec::as_slice) == Some(*der),
        Signer::Key(k) => PublicKey::from_pem(&pem).is_ok_and(|p| &p == *k),
    };
    if !same {
        return Err(mismatch("certificate or key"));
    }
    Ok(())
}

/// Rekor v2: the verifier is `x509Certificate.rawBytes` or `publicKey.rawBytes` (DER).
fn same_signer_v2(verifier: &Value, signer: &Signer<'_>) -> Result<(), VerifyError> {
    let same = match signer {
        Signer::Certificate(der) => {
            decode(&verifier["x509Certificate"]["rawBytes"]).as_deref() == Some(*der)
        }
        Signer::Key(k) => decode(&verifier["publicKey"]["rawBytes"])
            .and_then(|d| PublicKey::from_spki_der(&d).ok())
            .is_some_and(|p| &p == *k),
    };
    if !same {
        return Err(mismatch("certificate or key"));
    }
    Ok(())
}
