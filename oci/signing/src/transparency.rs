//! Transparency-log proofs, checked offline: a Rekor v1 entry's signed entry timestamp
//! (SET, the log's promise to include it), its RFC 6962 / RFC 9162 Merkle inclusion
//! proof, and the signed checkpoint (a C2SP signed note) that commits to the proof's
//! root. Pure functions over bytes; no I/O.

use base64::Engine as _;
use sha2::{Digest, Sha256};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a log proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The signed entry timestamp does not verify with the log's key.
    #[error("its Rekor signed entry timestamp does not verify with the log's key")]
    BadSet,
    /// The inclusion proof is malformed (index past the tree, wrong number of hashes).
    #[error("its inclusion proof is malformed: {0}")]
    MalformedProof(&'static str),
    /// The inclusion proof leads to another root.
    #[error("its inclusion proof does not lead to the logged root hash")]
    RootMismatch,
    /// The checkpoint is not a signed note in the expected form.
    #[error("its checkpoint is malformed: {0}")]
    MalformedCheckpoint(&'static str),
    /// No checkpoint signature by the log's key verifies.
    #[error("its checkpoint is not signed by the log's key")]
    BadCheckpointSignature,
    /// The checkpoint commits to another tree than the proof.
    #[error("its checkpoint commits to another tree than the inclusion proof (checkpoint size {checkpoint_size}, proof size {proof_size})")]
    CheckpointMismatch {
        /// The tree size in the checkpoint.
        checkpoint_size: u64,
        /// The tree size in the proof.
        proof_size: u64,
    },
}

/// The RFC 6962 hash of a log leaf: SHA-256(0x00 || entry).
pub fn leaf_hash(entry: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

fn node_hash(left: &[u8], right: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Recomputes the root from an inclusion proof (RFC 9162 §2.1.3.2) and compares it
/// with `root`.
pub fn verify_inclusion(
    index: u64,
    tree_size: u64,
    leaf: &[u8; 32],
    proof: &[[u8; 32]],
    root: &[u8; 32],
) -> Result<(), ProofError> {
    if index >= tree_size {
        return Err(ProofError::MalformedProof(
            "the leaf index is past the tree",
        ));
    }
    let (mut fnode, mut snode) = (index, tree_size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::MalformedProof("too many hashes"));
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::MalformedProof("too few hashes"));
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// A checkpoint's body: the log's origin line, tree size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The origin line (`rekor.sigstore.dev - 1193050959916656506`).
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The root hash.
    pub root: [u8; 32],
}

/// Asked about one checkpoint signature line: (origin, note text, the line's decoded
/// bytes) → `None` for another key's line, else whether it verifies.
pub type NoteSigner<'a> = dyn Fn(&str, &[u8], &[u8]) -> Option<bool> + 'a;

/// Checks a signed-note checkpoint: `log` is asked about each signature line (the
/// checkpoint's origin, the note text, the line's decoded bytes: a 4-byte key hint and
/// the signature) and answers `None` for another key's line, else whether it verifies.
/// One line must verify; lines by other keys (cosigners) are ignored. Returns the
/// checkpoint it signs.
pub fn verify_checkpoint(note: &str, log: &NoteSigner<'_>) -> Result<Checkpoint, ProofError> {
    if note.matches("\n\n").count() != 1 {
        return Err(ProofError::MalformedCheckpoint(
            "not one blank line between text and signatures",
        ));
    }
    let split = note.find("\n\n").expect("counted");
    let text = &note[..split + 1];
    let sigs = &note[split + 2..];
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(ProofError::MalformedCheckpoint("no signature line"));
    }
    let mut lines = text.lines();
    let origin = lines
        .next()
        .filter(|o| !o.is_empty())
        .ok_or(ProofError::MalformedCheckpoint("no origin"))?;
    let size: u64 = lines
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(ProofError::MalformedCheckpoint("no tree size"))?;
    let root: [u8; 32] = lines
        .next()
        .and_then(|s| B64.decode(s).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or(ProofError::MalformedCheckpoint("no root hash"))?;
    let mut signed = false;
    for line in sigs.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return Err(ProofError::MalformedCheckpoint(
                "a signature line is malformed",
            ));
        };
        let Some((_name, sig)) = rest.split_once(' ') else {
            return Err(ProofError::MalformedCheckpoint(
                "a signature line is malformed",
            ));
        };
        let Ok(bytes) = B64.decode(sig) else {
            return Err(ProofError::MalformedCheckpoint("a signature is not base64"));
        };
        if log(origin, text.as_bytes(), &bytes) == Some(true) {
            signed = true;
        }
    }
    if !signed {
        return Err(ProofError::BadCheckpointSignature);
    }
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size,
        root,
    })
}

/// The signature-line check for an ECDSA P-256 log (Rekor v1): the key hint is the first
/// four bytes of the log id, the signature DER ECDSA over the note text.
pub fn p256_note_signer<'a>(
    key: &'a p256::ecdsa::VerifyingKey,
    log_id: &'a [u8],
) -> impl Fn(&str, &[u8], &[u8]) -> Option<bool> + 'a {
    move |_origin, text, line| {
        use p256::ecdsa::signature::Verifier;
        if line.get(..4)? != log_id.get(..4)? {
            return None;
        }
        Some(
            p256::ecdsa::DerSignature::from_bytes(line.get(4..)?)
                .is_ok_and(|s| key.verify(text, &s).is_ok()),
        )
    }
}

/// The canonical JSON a Rekor v1 SET signs (RFC 8785: keys sorted, no spaces).
pub fn set_payload(
    body_b64: &str,
    integrated_time: i64,
    log_id_hex: &str,
    log_index: i64,
) -> String {
    format!(
        "{{\"body\":{},\"integratedTime\":{integrated_time},\"logID\":{},\"logIndex\":{log_index}}}",
        serde_json::Value::from(body_b64),
        serde_json::Value::from(log_id_hex),
    )
}

/// Checks a Rekor v1 signed entry timestamp.
pub fn verify_set(
    key: &p256::ecdsa::VerifyingKey,
    set: &[u8],
    body_b64: &str,
    integrated_time: i64,
    log_id_hex: &str,
    log_index: i64,
) -> Result<(), ProofError> {
    use p256::ecdsa::signature::Verifier;
    let payload = set_payload(body_b64, integrated_time, log_id_hex, log_index);
    let sig = p256::ecdsa::DerSignature::from_bytes(set).map_err(|_| ProofError::BadSet)?;
    key.verify(payload.as_bytes(), &sig)
        .map_err(|_| ProofError::BadSet)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 6962 tree hash, recursively, for the tests.
    fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = n.next_power_of_two() / 2;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn path(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = n.next_power_of_two() / 2;
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    #[test]
    fn inclusion_proofs_verify_for_every_leaf_and_size_and_fail_when_touched() {
        for n in 1..=17usize {
            let leaves: Vec<[u8; 32]> = (0..n).map(|i| leaf_hash(&[i as u8])).collect();
            let root = mth(&leaves);
            for m in 0..n {
                let p = path(m, &leaves);
                verify_inclusion(m as u64, n as u64, &leaves[m], &p, &root).unwrap();
                if !p.is_empty() {
                    let mut bad = p.clone();
                    bad[0][3] ^= 1;
                    assert_eq!(
                        verify_inclusion(m as u64, n as u64, &leaves[m], &bad, &root),
                        Err(ProofError::RootMismatch)
                    );
                    assert!(
                        verify_inclusion(m as u64, n as u64, &leaves[m], &p[1..], &root).is_err()
                    );
                }
                let other = leaf_hash(b"other");
                assert!(verify_inclusion(m as u64, n as u64, &other, &p, &root).is_err());
                assert!(verify_inclusion(n as u64, n as u64, &leaves[m], &p, &root).is_err());
            }
        }
    }

    #[test]
    fn checkpoints_verify_only_with_the_logs_key_and_untouched() {
        use p256::ecdsa::signature::Signer;
        let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let log_id = [7u8, 8, 9, 10, 11];
        let root = [5u8; 32];
        let text = format!("rekor.test - 42\n12\n{}\n", B64.encode(root));
        let sig: p256::ecdsa::DerSignature = key.sign(text.as_bytes());
        let mut blob = log_id[..4].to_vec();
        blob.extend_from_slice(sig.as_bytes());
        let note = format!("{text}\n\u{2014} rekor.test {}\n", B64.encode(&blob));
        let cp = verify_checkpoint(&note, &p256_note_signer(key.verifying_key(), &log_id)).unwrap();
        assert_eq!((cp.size, cp.root), (12, root));
        let other = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        assert_eq!(
            verify_checkpoint(&note, &p256_note_signer(other.verifying_key(), &log_id)),
            Err(ProofError::BadCheckpointSignature)
        );
        let touched = note.replacen("\n12\n", "\n13\n", 1);
        assert_eq!(
            verify_checkpoint(&touched, &p256_note_signer(key.verifying_key(), &log_id)),
            Err(ProofError::BadCheckpointSignature)
        );
        assert!(
            verify_checkpoint(&note, &p256_note_signer(key.verifying_key(), &[1, 2, 3, 4]))
                .is_err()
        );
        assert!(
            verify_checkpoint("x\n1\n", &p256_note_signer(key.verifying_key(), &log_id)).is_err()
        );
    }
}
