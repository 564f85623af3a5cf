//! Why one signature does not verify: one [`VerifyError`] variant per check, so callers
//! (the refusal, keyless signing's self-check, tests) branch on the check and never on
//! message text. A leaf: who signed (`Signer`) is in [`crate::verified`].

use crate::transparency::ProofError;

/// Why a signature does not verify: one variant per check.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The material is not in a form wpkg reads (not JSON, not base64, a missing field).
    #[error("{0}")]
    Malformed(String),
    /// The material is well formed but of a kind wpkg does not check.
    #[error("{0}")]
    Unsupported(String),
    /// A keyless signature, and what is trusted is keys only.
    #[error("it is a keyless signature (a certificate), and the scope trusts keys only")]
    KeylessNotTrusted,
    /// A key signature, and no key is trusted.
    #[error("no trusted key to check it with")]
    NoKeys,
    /// No trusted key verifies the signature.
    #[error("it does not verify with any trusted key")]
    Key,
    /// The Sigstore trust root cannot be loaded.
    #[error("{0}")]
    TrustRoot(String),
    /// The certificate does not chain to a certificate authority of the trust root
    /// that was valid at the signing time.
    #[error("{0}")]
    Chain(String),
    /// The certificate (or its chain) was not valid at the signing time.
    #[error("the certificate was not valid at the signing time ({time_source})")]
    Validity {
        /// Where the signing time came from.
        time_source: &'static str,
    },
    /// The certificate may not sign code (usage, EKU, a CA as leaf, an unknown
    /// critical extension).
    #[error("{0}")]
    Usage(&'static str),
    /// No embedded signed certificate timestamp from a trusted CT log verifies.
    #[error("{0}")]
    Sct(&'static str),
    /// There is no transparency-log entry, so the signing time cannot be checked.
    #[error("it has no transparency log entry (Rekor), so when it was signed cannot be checked")]
    NoTlogEntry,
    /// The entry is from a log the trust root does not know.
    #[error("its Rekor entry is from a log the trust root does not know ({log_id})")]
    UnknownLog {
        /// The log id, hex.
        log_id: String,
    },
    /// The entry's time is outside the log key's validity window.
    #[error("its Rekor entry is outside the log key's validity")]
    LogKeyValidity,
    /// The signed entry timestamp is missing or does not verify.
    #[error("{0}")]
    Set(ProofError),
    /// A Rekor v1 entry without a signed entry timestamp.
    #[error("its Rekor entry has no signed entry timestamp (inclusion promise)")]
    NoSet,
    /// The inclusion proof is missing or does not lead to the root.
    #[error("{0}")]
    InclusionProof(ProofError),
    /// The entry has no inclusion proof.
    #[error("its Rekor entry has no inclusion proof")]
    NoInclusionProof,
    /// The checkpoint is missing, unsigned, or commits to another tree.
    #[error("{0}")]
    Checkpoint(ProofError),
    /// The inclusion proof has no checkpoint.
    #[error("its inclusion proof has no checkpoint")]
    NoCheckpoint,
    /// A signed timestamp (RFC 3161) does not verify, or one is required and missing.
    #[error("{0}")]
    Timestamp(String),
    /// The log entry is for another signature, certificate or payload.
    #[error("{0}")]
    BodyBinding(String),
    /// The signature does not verify with the certificate's key.
    #[error("the signature does not verify with the certificate's key")]
    Signature,
    /// The DSSE signature does not verify with the certificate's key.
    #[error("the DSSE signature does not verify with the certificate's key")]
    DsseSignature,
    /// The signed statement is not a cosign image signature.
    #[error("{0}")]
    Statement(String),
    /// A valid signature for another digest.
    #[error("it is a valid signature, but for {}, not for {wanted}", signed.as_deref().unwrap_or("other content"))]
    Subject {
        /// The digest it signs, when it names one.
        signed: Option<String>,
        /// The digest that was to be checked.
        wanted: String,
    },
    /// The certificate's identity is not one that is trusted.
    #[error("it was signed by {subject} (issuer {issuer}), an identity the policy does not trust")]
    Identity {
        /// The certificate's first SAN.
        subject: String,
        /// Its OIDC issuer.
        issuer: String,
    },
    /// The identity is trusted, but only from another OIDC issuer.
    #[error("it was signed by {subject} but through issuer {issuer}, which the policy does not trust for that identity (it trusts {expected})")]
    Issuer {
        /// The certificate's first SAN.
        subject: String,
        /// Its OIDC issuer.
        issuer: String,
        /// The issuers trusted for that subject.
        expected: String,
    },
    /// The identity and issuer match, but a certificate claim does not.
    #[error("it was signed by {subject}, but its {claim} is `{found}`, which the policy does not trust (it wants {expected})")]
    Claim {
        /// The certificate's first SAN.
        subject: String,
        /// The claim (`source repository ref`).
        claim: &'static str,
        /// Its value in the certificate (empty when absent).
        found: String,
        /// What was wanted.
        expected: String,
    },
}

/// Which part of a keyless signature a check is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The certificate (Fulcio's part).
    Certificate,
    /// The transparency log entry (Rekor's part).
    Log,
    /// A signed timestamp (a timestamp authority's part).
    Timestamp,
    /// The signature or what it signs.
    Signature,
}

impl VerifyError {
    /// The failed check's short name, for JSON (`chain`, `sct`, `inclusion_proof`...).
    pub fn check(&self) -> &'static str {
        use VerifyError::*;
        match self {
            Malformed(_) => "format",
            Unsupported(_) => "supported",
            KeylessNotTrusted | NoKeys | Key => "key",
            TrustRoot(_) => "trust_root",
            Chain(_) => "chain",
            Validity { .. } => "validity",
            Usage(_) => "usage",
            Sct(_) => "sct",
            NoTlogEntry | UnknownLog { .. } | LogKeyValidity => "tlog",
            Set(_) | NoSet => "set",
            InclusionProof(_) | NoInclusionProof => "inclusion_proof",
            Checkpoint(_) | NoCheckpoint => "checkpoint",
            Timestamp(_) => "timestamp",
            BodyBinding(_) => "body_binding",
            Signature => "signature",
            DsseSignature => "dsse_signature",
            Statement(_) => "statement",
            Subject { .. } => "subject",
            Identity { .. } => "identity",
            Issuer { .. } => "issuer",
            Claim { .. } => "claim",
        }
    }

    /// Which part of the signature the failed check is about.
    pub fn part(&self) -> Part {
        use VerifyError::*;
        match self {
            Chain(_)
            | Validity { .. }
            | Usage(_)
            | Sct(_)
            | Identity { .. }
            | Issuer { .. }
            | Claim { .. } => Part::Certificate,
            NoTlogEntry
            | UnknownLog { .. }
            | LogKeyValidity
            | Set(_)
            | NoSet
            | InclusionProof(_)
            | NoInclusionProof
            | Checkpoint(_)
            | NoCheckpoint
            | BodyBinding(_) => Part::Log,
            Timestamp(_) => Part::Timestamp,
            Malformed(_)
            | Unsupported(_)
            | KeylessNotTrusted
            | NoKeys
            | Key
            | TrustRoot(_)
            | Signature
            | DsseSignature
            | Statement(_)
            | Subject { .. } => Part::Signature,
        }
    }
}
