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
    if !log.valid_at(p.integrated_time) {
        return Err(VerifyError::LogKeyValidity);
    }
    let key = log
        .p256()
        .ok_or_else(|| VerifyError::Unsupported("a Rekor v1 entry from a non-P-256 log".into()))?;
    let set = B64
        .decode(&b.SignedEntryTimestamp)
        .map_err(|_| malformed("the signed entry timestamp is not base64"))?;
    crate::transparency::verify_set(
        key,
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

/// A Rekor entry as a sigstore bundle carries it (`verificationMaterial.tlogEntries[]`;
/// protobuf JSON, so 64-bit numbers are strings and bytes are base64). Rekor v2 entries
/// have no integrated time and no inclusion promise.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TlogEntry {
    #[serde(default)]
    pub(crate) log_index: String,
    pub(crate) log_id: LogIdJson,
    pub(crate) kind_version: KindVersion,
    #[serde(default)]
    pub(crate) integrated_time: Option<String>,
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

/// What a verified entry tells: the integrated time (Rekor v1, vouched for by the SET),
/// and the log key's validity window, which Rekor v2 entries (no time of their own)
/// must be checked against at the timestamps' times.
pub(crate) struct LoggedEntry {
    /// From a Rekor v2 log (hashedrekord or dsse 0.0.2).
    pub(crate) v2: bool,
    pub(crate) time: Option<i64>,
    pub(crate) window: (i64, Option<i64>),
}

/// How far in the future an integrated time may be (clock skew).
const FUTURE_SKEW: i64 = 60;

/// Checks a bundle's log entry offline: the log is one of the trust root's; Rekor v1
/// (0.0.1): its key was valid at the integrated time, the SET verifies (required in
/// v0.1 bundles), the inclusion proof (required from v0.2) leads to the root of a
/// checkpoint signed by the same log; Rekor v2 (0.0.2): the inclusion proof and the
/// checkpoint are required.
pub(crate) fn verify_tlog_entry(
    e: &TlogEntry,
    root: &TrustedRoot,
    bundle_version: u8,
) -> Result<LoggedEntry, VerifyError> {
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
    let v2 = match (
        e.kind_version.kind.as_str(),
        e.kind_version.version.as_str(),
    ) {
        ("hashedrekord" | "dsse", "0.0.1") | ("intoto", "0.0.2") => false,
        ("hashedrekord" | "dsse", "0.0.2") => true,
        _ => {
            return Err(VerifyError::Unsupported(format!(
                "its Rekor entry is a {} {}, which wpkg does not check",
                e.kind_version.kind, e.kind_version.version
            )))
        }
    };
    let num = |s: &str, what: &str| -> Result<i64, VerifyError> {
        s.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| malformed(format!("its Rekor entry's {what} is not a number ≥ 0")))
    };
    let index = num(&e.log_index, "log index")?;
    let body = B64
        .decode(&e.canonicalized_body)
        .map_err(|_| malformed("the Rekor entry body is not base64"))?;
    let mut time = None;
    if !v2 {
        let t = num(
            e.integrated_time.as_deref().unwrap_or(""),
            "integrated time",
        )?;
        if t > time::OffsetDateTime::now_utc().unix_timestamp() + FUTURE_SKEW {
            return Err(VerifyError::LogKeyValidity);
        }
        if !log.valid_at(t) {
            return Err(VerifyError::LogKeyValidity);
        }
        match &e.inclusion_promise {
            Some(promise) => {
                let set = B64
                    .decode(&promise.signed_entry_timestamp)
                    .map_err(|_| malformed("the signed entry timestamp is not base64"))?;
                let key = log.p256().ok_or_else(|| {
                    VerifyError::Unsupported("a Rekor v1 entry from a non-P-256 log".into())
                })?;
                t::verify_set(key, &set, &B64.encode(&body), t, &log_hex, index)
                    .map_err(VerifyError::Set)?;
                time = Some(t);
            }
            None if bundle_version < 2 => return Err(VerifyError::NoSet),
            None => {}
        }
    }
    let Some(proof) = e.inclusion_proof.as_ref() else {
        if v2 || bundle_version >= 2 {
            return Err(VerifyError::NoInclusionProof);
        }
        return Ok(LoggedEntry {
            v2,
            time,
            window: (log.start, log.end),
        });
    };
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
    t::verify_inclusion(
        p_index as u64,
        size as u64,
        &t::leaf_hash(&body),
        &hashes,
        &root_hash,
    )
    .map_err(VerifyError::InclusionProof)?;
    let checkpoint = proof.checkpoint.as_ref().ok_or(VerifyError::NoCheckpoint)?;
    let cp = t::verify_checkpoint(&checkpoint.envelope, &|origin, text, sig| {
        log_signed(log, &log_id, origin, text, sig)
    })
    .map_err(VerifyError::Checkpoint)?;
    if cp.root != root_hash || cp.size != size as u64 {
        return Err(VerifyError::Checkpoint(t::ProofError::CheckpointMismatch {
            checkpoint_size: cp.size,
            proof_size: size as u64,
        }));
    }
    Ok(LoggedEntry {
        v2,
        time,
        window: (log.start, log.end),
    })
}

/// Whether a checkpoint signature line (`hint`, `sig`) is the log's signature over `text`
/// (C2SP signed note): an ECDSA log's key hint is the first four bytes of its log id and
/// it signs with DER ECDSA; an Ed25519 log's checkpoint origin is its host, its hint
/// the first four bytes of SHA-256(host, `\n`, 0x01, key), and it signs the text itself.
fn log_signed(log: &Tlog, log_id: &[u8], origin: &str, text: &[u8], line: &[u8]) -> Option<bool> {
    let (hint, sig) = (line.get(..4)?, line.get(4..)?);
    match &log.key {
        LogKey::P256(k) => {
            if hint != log_id.get(..4)? {
                return None;
            }
            use p256::ecdsa::signature::Verifier;
            Some(
                p256::ecdsa::DerSignature::from_bytes(sig)
                    .is_ok_and(|s| k.verify(text, &s).is_ok()),
            )
        }
        LogKey::Ed25519(k) => {
            // The note's origin and the key's name are the log's host (its base URL
            // without the scheme), as sigstore-go requires.
            let host = log
                .base_url
                .split_once("://")
                .map_or(log.base_url.as_str(), |(_, h)| h)
                .trim_end_matches('/');
            if origin != host {
                return None;
            }
            let mut h = Sha256::new();
            h.update(host.as_bytes());
            h.update(b"\n\x01");
            h.update(k);
            if hint != &h.finalize()[..4] {
                return None;
            }
            let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, k);
            Some(key.verify(text, sig).is_ok())
        }
    }
}

pub(crate) fn malformed(what: impl Into<String>) -> VerifyError {
    VerifyError::Malformed(what.into())
}
