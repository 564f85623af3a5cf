//! Putting a keyless signature together: the bundle v0.3 from the certificate, the log
//! entry (Rekor v1's answer turned into a bundle entry, or Rekor v2's entry as it is), the
//! DSSE envelope or message signature, and a signed timestamp.

use super::*;

/// Makes the sigstore bundle v0.3 (as cosign v3 writes it) of a DSSE-signed in-toto
/// statement: the leaf certificate, Rekor v1's answer for the `dsse` entry, and the
/// envelope. Returns the bundle JSON and the log index.
pub fn assemble_bundle(
    leaf_der: &[u8],
    payload: &[u8],
    signature: &[u8],
    rekor_answer: &serde_json::Value,
) -> Result<(Vec<u8>, i64), &'static str> {
    Ok(assemble(
        leaf_der,
        tlog_entry(rekor_answer)?,
        "dsseEnvelope",
        dsse_json(payload, signature),
    ))
}

pub(crate) fn dsse_json(payload: &[u8], signature: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "payload": B64.encode(payload),
        "payloadType": IN_TOTO,
        "signatures": [{"sig": B64.encode(signature)}],
    })
}

pub(crate) fn message_json(sha256: &[u8; 32], signature: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(sha256)},
        "signature": B64.encode(signature),
    })
}

/// Makes the sigstore bundle v0.3 of a message signature over a file (what `cosign
/// sign-blob --bundle` writes): the leaf certificate, Rekor v1's answer for the
/// `hashedrekord` entry, the digest and signature. Returns the bundle JSON and the log
/// index.
pub fn assemble_blob_bundle(
    leaf_der: &[u8],
    sha256: &[u8; 32],
    signature: &[u8],
    rekor_answer: &serde_json::Value,
) -> Result<(Vec<u8>, i64), &'static str> {
    Ok(assemble(
        leaf_der,
        tlog_entry(rekor_answer)?,
        "messageSignature",
        message_json(sha256, signature),
    ))
}

/// A bundle v0.3: the certificate, the log entry, and `content` under `field`
/// (`dsseEnvelope` or `messageSignature`).
pub(crate) fn assemble(
    leaf_der: &[u8],
    tlog: serde_json::Value,
    field: &str,
    content: serde_json::Value,
) -> (Vec<u8>, i64) {
    let log_index = tlog["logIndex"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1);
    let mut bundle = serde_json::json!({
        "mediaType": wpkg_store::associated::BUNDLE_V03,
        "verificationMaterial": {
            "certificate": {"rawBytes": B64.encode(leaf_der)},
            "tlogEntries": [tlog],
        },
    });
    bundle[field] = content;
    (
        serde_json::to_vec(&bundle).expect("JSON serializes"),
        log_index,
    )
}

/// Asks the timestamp authority at `url` for a timestamp of `signature`: the DER
/// `TimeStampResp` (checked with the bundle before it is returned).
pub(crate) fn timestamp_of(
    http: &reqwest::blocking::Client,
    url: &str,
    signature: &[u8],
) -> Result<Vec<u8>, KeylessError> {
    let err = |detail: String| KeylessError::Tsa {
        url: url.to_owned(),
        detail,
    };
    let mut nonce = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let req = crate::timestamp::request(signature, u64::from_be_bytes(nonce) >> 1);
    let resp = http
        .post(url)
        .header("Content-Type", "application/timestamp-query")
        .body(req)
        .send()
        .map_err(|e| err(format!("cannot connect ({})", without_url(&e))))?;
    if !resp.status().is_success() {
        return Err(err(answer_text(resp)));
    }
    if resp.content_length().is_some_and(|n| n > 1 << 20) {
        return Err(err("its answer is larger than 1 MiB".into()));
    }
    let body = resp
        .bytes()
        .map_err(|e| err(format!("its answer broke off ({})", without_url(&e))))?;
    Ok(body.to_vec())
}

/// The bundle with `timestamp` (a DER `TimeStampResp`) in its verification material.
pub(crate) fn with_timestamp(bundle: &[u8], timestamp: &[u8]) -> Vec<u8> {
    let mut b: serde_json::Value = serde_json::from_slice(bundle).expect("we made it");
    b["verificationMaterial"]["timestampVerificationData"] =
        serde_json::json!({"rfc3161Timestamps": [{"signedTimestamp": B64.encode(timestamp)}]});
    serde_json::to_vec(&b).expect("JSON serializes")
}

/// What was signed, kept for the bundle.
pub(crate) enum Signed_ {
    /// The in-toto statement and the DSSE signature.
    Dsse(Vec<u8>, Vec<u8>),
    /// The file's SHA-256 and the message signature.
    Message([u8; 32], Vec<u8>),
}

/// Turns Rekor v1's answer (`{uuid: LogEntry}`, hex hashes) into a bundle's
/// `TransparencyLogEntry` (protobuf JSON: numbers as strings, bytes as base64).
pub(crate) fn tlog_entry(answer: &serde_json::Value) -> Result<serde_json::Value, &'static str> {
    let obj = answer.as_object().ok_or("its answer is not an entry")?;
    let [(_uuid, e)] = obj.iter().collect::<Vec<_>>()[..] else {
        return Err("its answer is not exactly one entry");
    };
    let body = e["body"].as_str().ok_or("the entry has no body")?;
    let log_id = e["logID"]
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .ok_or("the entry has no hex logID")?;
    let int = |v: &serde_json::Value| v.as_i64().map(|n| n.to_string());
    let index = int(&e["logIndex"]).ok_or("the entry has no logIndex")?;
    let time = int(&e["integratedTime"]).ok_or("the entry has no integratedTime")?;
    let v = &e["verification"];
    let set = v["signedEntryTimestamp"]
        .as_str()
        .ok_or("the entry has no signed entry timestamp")?;
    let p = &v["inclusionProof"];
    let hex_b64 = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|h| hex::decode(h).ok())
            .map(|b| B64.encode(b))
    };
    let hashes = p["hashes"]
        .as_array()
        .ok_or("the entry has no inclusion proof")?
        .iter()
        .map(hex_b64)
        .collect::<Option<Vec<_>>>()
        .ok_or("an inclusion proof hash is not hex")?;
    let body_kind = B64
        .decode(body)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .ok_or("the entry body is not base64 JSON")?;
    Ok(serde_json::json!({
        "logIndex": index,
        "logId": {"keyId": B64.encode(log_id)},
        "kindVersion": {
            "kind": body_kind["kind"].as_str().unwrap_or(""),
            "version": body_kind["apiVersion"].as_str().unwrap_or(""),
        },
        "integratedTime": time,
        "inclusionPromise": {"signedEntryTimestamp": set},
        "inclusionProof": {
            "logIndex": int(&p["logIndex"]).ok_or("the inclusion proof has no logIndex")?,
            "rootHash": hex_b64(&p["rootHash"]).ok_or("the inclusion proof has no hex rootHash")?,
            "treeSize": int(&p["treeSize"]).ok_or("the inclusion proof has no treeSize")?,
            "hashes": hashes,
            "checkpoint": {"envelope": p["checkpoint"].as_str().ok_or("the inclusion proof has no checkpoint")?},
        },
        "canonicalizedBody": body,
    }))
}
