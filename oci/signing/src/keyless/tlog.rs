//! Rekor entries: the SET, the inclusion proof against a signed checkpoint, and the
//! logged body bound to what was signed.

use super::*;

/// The Rekor bundle cosign puts in `dev.sigstore.cosign/bundle`.
#[derive(Deserialize)]
#[allow(non_snake_case)]
pub(crate) struct RekorBundle {
    SignedEntryTimestamp: String,
    Payload: RekorPayload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RekorPayload {
    pub(crate) body: String,
    pub(crate) integrated_time: i64,
    pub(crate) log_index: i64,
    #[serde(rename = "logID")]
    pub(crate) log_id: String,
}

/// Checks the SET and returns (integrated time, decoded entry body).
pub fn verify_set(
    bundle_json: &str,
    root: &TrustedRoot,
) -> Result<(i64, serde_json::Value), VerifyError> {
    let b: RekorBundle = serde_json::from_str(bundle_json)
        .map_err(|e| malformed(format!("the Rekor bundle does not parse ({e})")))?;
    let p = &b.Payload;
    let log = root
        .tlogs
        .iter()
        .find(|t| t.key_id_hex == p.log_id)
        .ok_or_else(|| VerifyError::UnknownLog {
            log_id: p.log_id.clone(),
        })?;
    if p.integrated_time < log.start || log.end.is_some_and(|e| p.integrated_time > e) {
        return Err(VerifyError::LogKeyValidity);
    }
    let set = B64
        .decode(&b.SignedEntryTimestamp)
        .map_err(|_| malformed("the signed entry timestamp is not base64"))?;
    crate::transparency::verify_set(
        &log.key,
        &set,
        &p.body,
        p.integrated_time,
        &p.log_id,
        p.log_index,
    )
    .map_err(VerifyError::Set)?;
    let body = B64
        .decode(&p.body)
        .map_err(|_| malformed("the Rekor entry body is not base64"))?;
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| malformed(format!("the Rekor entry body is not JSON ({e})")))?;
    Ok((p.integrated_time, body))
}

/// A Rekor v1 entry as a sigstore bundle carries it (`verificationMaterial.tlogEntries[]`;
/// protobuf JSON, so 64-bit numbers are strings and bytes are base64).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TlogEntry {
    pub(crate) log_index: String,
    pub(crate) log_id: LogIdJson,
    pub(crate) kind_version: KindVersion,
    pub(crate) integrated_time: String,
    pub(crate) inclusion_promise: Option<InclusionPromise>,
    pub(crate) inclusion_proof: Option<InclusionProof>,
    pub(crate) canonicalized_body: String,
}

#[derive(Deserialize)]
pub(crate) struct KindVersion {
    pub(crate) kind: String,
    pub(crate) version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InclusionPromise {
    pub(crate) signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InclusionProof {
    pub(crate) log_index: String,
    pub(crate) root_hash: String,
    pub(crate) tree_size: String,
    #[serde(default)]
    pub(crate) hashes: Vec<String>,
    pub(crate) checkpoint: Option<CheckpointJson>,
}

#[derive(Deserialize)]
pub(crate) struct CheckpointJson {
    pub(crate) envelope: String,
}

/// Checks a bundle's Rekor v1 entry offline: the log is one of the trust root's and its
/// key was valid at the integrated time; the SET; the inclusion proof up to the root
/// hash; the checkpoint signed by the same log and committing to that root. Returns
/// the integrated time.
pub(crate) fn verify_tlog_entry(e: &TlogEntry, root: &TrustedRoot) -> Result<i64, VerifyError> {
    use crate::transparency as t;
    let log_id = B64
        .decode(&e.log_id.key_id)
        .map_err(|_| malformed("its log id is not base64"))?;
    let log_hex = hex::encode(&log_id);
    let log = root
        .tlogs
        .iter()
        .find(|t| t.key_id_hex == log_hex)
        .ok_or_else(|| VerifyError::UnknownLog {
            log_id: log_hex.clone(),
        })?;
    if e.kind_version.version != "0.0.1" {
        return Err(VerifyError::Unsupported(format!(
            "its Rekor entry is a {} {}, which wpkg does not check",
            e.kind_version.kind, e.kind_version.version
        )));
    }
    let num = |s: &str, what: &str| -> Result<i64, VerifyError> {
        s.parse::<i64>()
            .map_err(|_| malformed(format!("its Rekor entry's {what} is not a number")))
    };
    let time = num(&e.integrated_time, "integrated time")?;
    let index = num(&e.log_index, "log index")?;
    if time < log.start || log.end.is_some_and(|end| time > end) {
        return Err(VerifyError::LogKeyValidity);
    }
    let body = B64
        .decode(&e.canonicalized_body)
        .map_err(|_| malformed("the Rekor entry body is not base64"))?;
    let promise = e.inclusion_promise.as_ref().ok_or(VerifyError::NoSet)?;
    let set = B64
        .decode(&promise.signed_entry_timestamp)
        .map_err(|_| malformed("the signed entry timestamp is not base64"))?;
    t::verify_set(&log.key, &set, &B64.encode(&body), time, &log_hex, index)
        .map_err(VerifyError::Set)?;
    let proof = e
        .inclusion_proof
        .as_ref()
        .ok_or(VerifyError::NoInclusionProof)?;
    let p_index = num(&proof.log_index, "proof index")?;
    let size = num(&proof.tree_size, "tree size")?;
    let root_hash: [u8; 32] = B64
        .decode(&proof.root_hash)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed("its inclusion proof's root hash is not 32 base64 bytes"))?;
    let hashes: Vec<[u8; 32]> = proof
        .hashes
        .iter()
        .map(|h| B64.decode(h).ok().and_then(|b| b.try_into().ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| malformed("its inclusion proof has a hash that is not 32 base64 bytes"))?;
    if p_index < 0 || size < 0 {
        return Err(malformed(
            "its inclusion proof has a negative index or size",
        ));
    }
    t::verify_inclusion(
        p_index as u64,
        size as u64,
        &t::leaf_hash(&body),
        &hashes,
        &root_hash,
    )
    .map_err(VerifyError::InclusionProof)?;
    let checkpoint = proof.checkpoint.as_ref().ok_or(VerifyError::NoCheckpoint)?;
    let cp = t::verify_checkpoint(&checkpoint.envelope, &log.key, &log_id)
        .map_err(VerifyError::Checkpoint)?;
    if cp.root != root_hash || cp.size != size as u64 {
        return Err(VerifyError::Checkpoint(t::ProofError::CheckpointMismatch {
            checkpoint_size: cp.size,
            proof_size: size as u64,
        }));
    }
    Ok(time)
}

pub(crate) fn malformed(what: impl Into<String>) -> VerifyError {
    VerifyError::Malformed(what.into())
}
