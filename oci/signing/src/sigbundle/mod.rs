//! Sigstore bundles (v0.1 to v0.3), verified offline for one artifact digest: the
//! general check behind image bundles ([`crate::bundle`]) and `verify-blob`.
//!
//! In order, as sigstore-go and sigstore-python do it:
//! 1. the bundle parses, its version is known, it holds one message signature or one
//!    DSSE envelope;
//! 2. keyless (a certificate): each transparency-log entry verifies against a log of the
//!    trust root (Rekor v1: SET, inclusion proof and checkpoint; Rekor v2: inclusion
//!    proof and checkpoint) and is bound to this signature, certificate and content;
//!    each RFC 3161 timestamp verifies against a timestamp authority of the trust root;
//!    there is at least one verified time, and a signed timestamp for every Rekor v2
//!    entry; the certificate is checked at every verified time; the identity matches;
//! 3. with a key: the key verifies the signature (log entries, when present, verify
//!    and are bound too);
//! 4. the signature verifies, and what it signs is the artifact (the message digest,
//!    or a subject of the in-toto statement).

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::error::VerifyError;
use crate::keyless::{LoggedEntry, TlogEntry, TrustedRoot, Vouched};
use crate::keys::PublicKey;
use crate::verified::Trusted;
use crate::verified::{KeyForm, Signer};

mod binding;

pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What the bundle must sign.
pub struct Expect<'a> {
    /// The artifact's SHA-256.
    pub sha256: [u8; 32],
    /// The in-toto predicate type a DSSE statement must have (images: cosign's), or any.
    pub predicate: Option<&'a str>,
}

/// The bundle, as far as verification reads it (protobuf JSON: bytes are base64).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Bundle {
    pub(crate) media_type: String,
    #[serde(default)]
    pub(crate) verification_material: Option<Material>,
    #[serde(default)]
    pub(crate) dsse_envelope: Option<Dsse>,
    #[serde(default)]
    pub(crate) message_signature: Option<MessageSignature>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Material {
    #[serde(default)]
    certificate: Option<RawBytes>,
    #[serde(default)]
    x509_certificate_chain: Option<CertChain>,
    #[serde(default)]
    public_key: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) tlog_entries: Vec<TlogEntry>,
    #[serde(default)]
    timestamp_verification_data: Option<TimestampData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    #[serde(default)]
    raw_bytes: String,
}

#[derive(Deserialize)]
struct CertChain {
    #[serde(default)]
    certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimestampData {
    #[serde(default)]
    rfc3161_timestamps: Vec<SignedTimestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedTimestamp {
    signed_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Dsse {
    pub(crate) payload: String,
    pub(crate) payload_type: String,
    pub(crate) signatures: Vec<DsseSig>,
}

#[derive(Deserialize)]
pub(crate) struct DsseSig {
    pub(crate) sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageSignature {
    #[serde(default)]
    message_digest: Option<MessageDigest>,
    signature: String,
}

#[derive(Deserialize)]
struct MessageDigest {
    algorithm: String,
    digest: String,
}

/// What was signed, decoded.
pub(crate) enum Content {
    /// A signature over the artifact (ECDSA over its SHA-256).
    Message {
        /// The digest the bundle says it signs, when it says.
        digest: Option<Vec<u8>>,
        signature: Vec<u8>,
    },
    /// A DSSE envelope.
    Dsse {
        payload: Vec<u8>,
        payload_type: String,
        signature: Vec<u8>,
    },
}

impl Content {
    pub(crate) fn signature(&self) -> &[u8] {
        match self {
            Content::Message { signature, .. } | Content::Dsse { signature, .. } => signature,
        }
    }
}

fn malformed(what: impl Into<String>) -> VerifyError {
    VerifyError::Malformed(what.into())
}

/// Base64 as protobuf JSON takes it (line breaks and spaces ignored, as Go's decoder
/// ignores them).
fn b64(s: &str, what: &str) -> Result<Vec<u8>, VerifyError> {
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    B64.decode(compact)
        .map_err(|_| malformed(format!("{what} is not base64")))
}

/// The bundle's format version (1 to 3) from its media type.
fn version(media_type: &str) -> Result<u8, VerifyError> {
    match media_type {
        "application/vnd.dev.sigstore.bundle+json;version=0.1" => Ok(1),
        "application/vnd.dev.sigstore.bundle+json;version=0.2" => Ok(2),
        "application/vnd.dev.sigstore.bundle+json;version=0.3"
        | "application/vnd.dev.sigstore.bundle.v0.3+json" => Ok(3),
        other => Err(VerifyError::Unsupported(format!(
            "unsupported bundle media type `{other}`"
        ))),
    }
}

pub(crate) fn parse(json: &[u8]) -> Result<(Bundle, u8), VerifyError> {
    let b: Bundle = serde_json::from_slice(json)
        .map_err(|e| malformed(format!("the bundle is not sigstore bundle JSON ({e})")))?;
    let v = version(&b.media_type)?;
    Ok((b, v))
}

fn content(b: &Bundle) -> Result<Content, VerifyError> {
    match (&b.dsse_envelope, &b.message_signature) {
        (Some(env), None) => {
            let [sig] = env.signatures.as_slice() else {
                return Err(VerifyError::Unsupported(
                    "a DSSE envelope must carry exactly one signature".into(),
                ));
            };
            Ok(Content::Dsse {
                payload: b64(&env.payload, "the DSSE payload")?,
                payload_type: env.payload_type.clone(),
                signature: b64(&sig.sig, "the DSSE signature")?,
            })
        }
        (None, Some(ms)) => Ok(Content::Message {
            digest: match &ms.message_digest {
                Some(d) if d.algorithm == "SHA2_256" => Some(b64(&d.digest, "the message digest")?),
                Some(d) => {
                    return Err(VerifyError::Unsupported(format!(
                        "unsupported digest algorithm `{}`",
                        d.algorithm
                    )))
                }
                None => None,
            },
            signature: b64(&ms.signature, "the signature")?,
        }),
        _ => Err(malformed(
            "the bundle has neither a DSSE envelope nor a message signature (or both)",
        )),
    }
}

/// The leaf certificate (DER), if the bundle is keyless.
fn leaf(m: &Material, version: u8) -> Result<Option<Vec<u8>>, VerifyError> {
    if let Some(c) = &m.certificate {
        if version < 3 {
            return Err(malformed(
                "a bundle before v0.3 carries an x509CertificateChain, not a certificate",
            ));
        }
        return b64(&c.raw_bytes, "the certificate").map(Some);
    }
    if let Some(chain) = &m.x509_certificate_chain {
        let Some(first) = chain.certificates.first() else {
            return Err(malformed("the bundle's certificate chain is empty"));
        };
        // A chain that carries its own root would let a bundle bring its own trust.
        for c in &chain.certificates {
            let der = b64(&c.raw_bytes, "a certificate of the chain")?;
            if crate::keyless::is_self_signed_ca(&der) {
                return Err(VerifyError::Chain(
                    "the bundle's certificate chain includes a root certificate; roots come only from the trust root".into(),
                ));
            }
        }
        return b64(&first.raw_bytes, "the certificate").map(Some);
    }
    Ok(None)
}

/// Verifies a sigstore bundle for `expect` against what `trusted` trusts.
pub fn verify(
    bundle_json: &[u8],
    expect: &Expect<'_>,
    trusted: &Trusted<'_>,
) -> Result<Signer, VerifyError> {
    let (b, version) = parse(bundle_json)?;
    let m = b
        .verification_material
        .as_ref()
        .ok_or_else(|| malformed("the bundle has no verification material"))?;
    let content = content(&b)?;
    match leaf(m, version)? {
        Some(leaf) => {
            if trusted.identities.is_empty() {
                return Err(VerifyError::KeylessNotTrusted);
            }
            let root = (trusted.root)().map_err(VerifyError::TrustRoot)?;
            verify_keyless(
                m,
                version,
                &leaf,
                &content,
                expect,
                &root,
                trusted.identities,
            )
            .map(Signer::Keyless)
        }
        None => {
            if m.public_key.is_none() {
                return Err(malformed(
                    "the bundle has neither a certificate nor a public key hint",
                ));
            }
            verify_keyed(m, version, &content, expect, trusted)
        }
    }
}

/// The keyless path for a parsed bundle, under `root` for `identities`.
pub(crate) fn verify_keyless_parsed(
    b: &Bundle,
    version: u8,
    expect: &Expect<'_>,
    root: &TrustedRoot,
    identities: &[crate::keyless::Identity],
) -> Result<Vouched, VerifyError> {
    let m = b
        .verification_material
        .as_ref()
        .ok_or_else(|| malformed("the bundle has no verification material"))?;
    let content = content(b)?;
    let leaf = leaf(m, version)?.ok_or_else(|| malformed("the bundle has no certificate"))?;
    verify_keyless(m, version, &leaf, &content, expect, root, identities)
}

/// The keyless path: log entries and timestamps give verified times, the certificate
/// holds at each, the identity is trusted, the signature verifies.
pub(crate) fn verify_keyless(
    m: &Material,
    version: u8,
    leaf: &[u8],
    content: &Content,
    expect: &Expect<'_>,
    root: &TrustedRoot,
    identities: &[crate::keyless::Identity],
) -> Result<Vouched, VerifyError> {
    let signer = binding::Signer::Certificate(leaf);
    let logged = verify_entries(m, version, content, &signer, root, &expect.sha256)?;
    let stamped = crate::timestamp::verify_all(&timestamps(m)?, content.signature(), root)?;
    let mut times: Vec<i64> = logged.iter().filter_map(|l| l.time).collect();
    check_v2_entries(&logged, &stamped)?;
    times.extend(stamped);
    let Some(&first) = times.first() else {
        // No SET and no signed timestamp: nothing vouches for when it was signed.
        return Err(if m.tlog_entries.is_empty() {
            VerifyError::NoTlogEntry
        } else {
            VerifyError::NoSet
        });
    };
    let mut who = None;
    for t in &times {
        who = Some(crate::keyless::check_certificate(
            leaf, *t, root, identities,
        )?);
    }
    let mut who = who.expect("at least one time");
    who.signed_at = first;
    let key = crate::keyless::leaf_key(leaf)?;
    check_signature(&key, content, expect)?;
    check_subject(content, expect)?;
    Ok(who)
}

fn timestamps(m: &Material) -> Result<Vec<Vec<u8>>, VerifyError> {
    m.timestamp_verification_data
        .iter()
        .flat_map(|t| &t.rfc3161_timestamps)
        .map(|t| b64(&t.signed_timestamp, "a signed timestamp"))
        .collect()
}

/// Verifies every log entry and its binding; returns the integrated times of Rekor v1
/// entries (Rekor v2 entries carry none).
fn verify_entries(
    m: &Material,
    version: u8,
    content: &Content,
    signer: &binding::Signer<'_>,
    root: &TrustedRoot,
    artifact_sha256: &[u8; 32],
) -> Result<Vec<LoggedEntry>, VerifyError> {
    let mut out = Vec::new();
    for e in &m.tlog_entries {
        out.push(crate::keyless::verify_tlog_entry(e, root, version)?);
        binding::check(e, content, signer, artifact_sha256)?;
    }
    Ok(out)
}

/// A Rekor v2 entry has no time of its own: it needs a signed timestamp (cosign's rule),
/// and its log key must have been valid at the timestamps' times.
fn check_v2_entries(logged: &[LoggedEntry], stamped: &[i64]) -> Result<(), VerifyError> {
    for l in logged.iter().filter(|l| l.v2) {
        if stamped.is_empty() {
            return Err(VerifyError::Timestamp(
                "its Rekor v2 entry has no signed timestamp, so when it was signed cannot be checked"
                    .into(),
            ));
        }
        let (start, end) = l.window;
        if stamped
            .iter()
            .any(|t| *t < start || end.is_some_and(|e| *t > e))
        {
            return Err(VerifyError::LogKeyValidity);
        }
    }
    Ok(())
}

/// The key path: a trusted key verifies the signature; log entries, if any, verify.
fn verify_keyed(
    m: &Material,
    version: u8,
    content: &Content,
    expect: &Expect<'_>,
    trusted: &Trusted<'_>,
) -> Result<Signer, VerifyError> {
    let key = trusted
        .keys
        .iter()
        .find(|k| check_signature(k, content, expect).is_ok())
        .ok_or(if trusted.keys.is_empty() {
            VerifyError::NoKeys
        } else {
            VerifyError::Key
        })?;
    if !m.tlog_entries.is_empty() {
        let root = (trusted.root)().map_err(VerifyError::TrustRoot)?;
        let logged = verify_entries(
            m,
            version,
            content,
            &binding::Signer::Key(key),
            &root,
            &expect.sha256,
        )?;
        let stamped = crate::timestamp::verify_all(&timestamps(m)?, content.signature(), &root)?;
        check_v2_entries(&logged, &stamped)?;
    }
    check_subject(content, expect)?;
    Ok(Signer::Key {
        form: KeyForm::Bundle,
        fingerprint: key.fingerprint(),
    })
}

/// The signature verifies with `key`: a message signature over the artifact's digest
/// (the one expected, not the one the bundle names), or DSSE's PAE.
fn check_signature(
    key: &PublicKey,
    content: &Content,
    expect: &Expect<'_>,
) -> Result<(), VerifyError> {
    match content {
        Content::Message { signature, .. } => {
            if !key.verify_prehashed(&expect.sha256, signature) {
                return Err(VerifyError::Signature);
            }
        }
        Content::Dsse {
            payload,
            payload_type,
            signature,
        } => {
            if !key.verify(&crate::keys::dsse_pae(payload_type, payload), signature) {
                return Err(VerifyError::DsseSignature);
            }
        }
    }
    Ok(())
}

/// What is signed is the artifact: the message digest the bundle names, or a subject
/// of the in-toto statement.
fn check_subject(content: &Content, expect: &Expect<'_>) -> Result<(), VerifyError> {
    let wanted = format!("sha256:{}", hex::encode(expect.sha256));
    match content {
        Content::Message { digest, .. } => match digest {
            Some(d) if d.as_slice() != expect.sha256 => Err(VerifyError::Subject {
                signed: Some(format!("sha256:{}", hex::encode(d))),
                wanted,
            }),
            _ => Ok(()),
        },
        Content::Dsse {
            payload,
            payload_type,
            ..
        } => {
            if payload_type != "application/vnd.in-toto+json" {
                return Err(VerifyError::Unsupported(format!(
                    "unsupported DSSE payload type `{payload_type}`"
                )));
            }
            check_statement(payload, expect, &wanted)
        }
    }
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    #[serde(default)]
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

fn check_statement(payload: &[u8], expect: &Expect<'_>, wanted: &str) -> Result<(), VerifyError> {
    let st: Statement = serde_json::from_slice(payload)
        .map_err(|e| malformed(format!("the signed statement is not in-toto JSON ({e})")))?;
    if !st.kind.starts_with("https://in-toto.io/Statement/") {
        return Err(VerifyError::Statement(format!(
            "the signed statement has type `{}`",
            st.kind
        )));
    }
    if let Some(p) = expect.predicate {
        if st.predicate_type != p {
            return Err(VerifyError::Statement(format!(
                "the signed statement is an attestation (`{}`), not an image signature",
                st.predicate_type
            )));
        }
    }
    let hex = hex::encode(expect.sha256);
    if !st
        .subject
        .iter()
        .any(|s| s.digest.get("sha256").map(String::as_str) == Some(hex.as_str()))
    {
        return Err(VerifyError::Subject {
            signed: None,
            wanted: wanted.to_owned(),
        });
    }
    Ok(())
}

/// The SHA-256 of bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
