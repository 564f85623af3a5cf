//! Keyless (Sigstore) verification, offline: a signature made with a short-lived Fulcio
//! certificate is accepted when
//!
//! 1. its Rekor entry's signed entry timestamp (SET) verifies with a transparency-log
//!    key of the trust root, and the entry is this signature (same signature bytes,
//!    same certificate, same payload hash);
//! 2. the certificate chains to a Fulcio CA of the trust root, every certificate valid at
//!    the entry's integrated time, the leaf allowed for code signing;
//! 3. the certificate's identity (SAN URI or e-mail) and OIDC issuer (Fulcio extension
//!    1.3.6.1.4.1.57264.1.8, else .1.1) match an identity the policy trusts;
//! 4. the certificate's key verifies the signature.
//!
//! The trust root is Sigstore's `trusted_root.json` format: the public-good root ships
//! with wpkg; a policy may name another file (tests, private Sigstore instances).

use base64::Engine as _;
use der::{Decode, Encode};
use serde::Deserialize;
use sha2::{Digest, Sha256, Sha384};
use x509_cert::Certificate;

pub use crate::error::VerifyError;

mod cert;
pub mod claims;
mod root;
#[cfg(test)]
mod tests;
mod tlog;

pub(crate) use cert::*;
pub use cert::{check_certificate, leaf_identity};
pub use claims::{CertIdentity, Identity, Vouched};
pub(crate) use root::*;
pub use root::{TrustedRoot, PUBLIC_GOOD_ROOT};
pub use tlog::verify_set;
pub(crate) use tlog::*;

pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub(crate) const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";

pub(crate) const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";

pub(crate) const OID_SAN: &str = "2.5.29.17";

pub(crate) const OID_EKU: &str = "2.5.29.37";

pub(crate) const OID_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";

pub(crate) const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";

pub(crate) const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";

pub(crate) const OID_ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";

pub(crate) const OID_P256: &str = "1.2.840.10045.3.1.7";

pub(crate) const OID_P384: &str = "1.3.132.0.34";

/// Verifies a keyless classic signature: `payload` signed as `signature` by the
/// certificate `cert_pem`, logged in `rekor_bundle`. Returns the identity that matched.
pub fn verify_classic_keyless(
    payload: &[u8],
    signature: &[u8],
    cert_pem: &str,
    rekor_bundle: Option<&str>,
    root: &TrustedRoot,
    identities: &[Identity],
) -> Result<Vouched, VerifyError> {
    let leaf_der = pem_certs(cert_pem)
        .into_iter()
        .next()
        .ok_or_else(|| malformed("the certificate annotation holds no PEM certificate"))?;
    let leaf = Certificate::from_der(&leaf_der)
        .map_err(|e| malformed(format!("the certificate does not parse: {e}")))?;
    let bundle = rekor_bundle.ok_or(VerifyError::NoTlogEntry)?;
    let (time, body) = verify_set(bundle, root)?;
    // The entry must be this very signature.
    let spec = &body["spec"];
    if body["kind"] != "hashedrekord" {
        return Err(VerifyError::BodyBinding(format!(
            "its Rekor entry is a `{}`, not a hashedrekord",
            body["kind"]
        )));
    }
    let logged_sig = spec["signature"]["content"]
        .as_str()
        .and_then(|s| B64.decode(s).ok())
        .unwrap_or_default();
    let logged_key = spec["signature"]["publicKey"]["content"]
        .as_str()
        .and_then(|s| B64.decode(s).ok())
        .map(|pem| pem_certs(&String::from_utf8_lossy(&pem)))
        .unwrap_or_default();
    let payload_hash = hex::encode(Sha256::digest(payload));
    if logged_sig != signature
        || logged_key.first() != Some(&leaf_der)
        || spec["data"]["hash"]["algorithm"] != "sha256"
        || spec["data"]["hash"]["value"].as_str() != Some(payload_hash.as_str())
    {
        return Err(VerifyError::BodyBinding(
            "its Rekor entry is for another signature, certificate or payload".into(),
        ));
    }
    let who = check_certificate(&leaf_der, time, root, identities)?;
    // Finally the signature itself, with the certificate's key.
    let key = certificate_key(&leaf)?;
    if !key.verify(payload, signature) {
        return Err(VerifyError::Signature);
    }
    Ok(who)
}

/// The public key a certificate certifies.
pub(crate) fn certificate_key(cert: &Certificate) -> Result<crate::keys::PublicKey, VerifyError> {
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| malformed(e.to_string()))?;
    crate::keys::PublicKey::from_spki_der(&spki)
        .map_err(|e| VerifyError::Unsupported(format!("the certificate's key: {e}")))
}
