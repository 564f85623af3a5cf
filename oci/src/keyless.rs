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

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Sigstore's public-good trust root, as shipped (see `oci/testdata/README.md`).
pub const PUBLIC_GOOD_ROOT: &str = include_str!("sigstore-public-good-trusted-root.json");

const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const OID_SAN: &str = "2.5.29.17";
const OID_EKU: &str = "2.5.29.37";
const OID_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// An identity the policy trusts for keyless signatures.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The OIDC issuer, exact (`https://token.actions.githubusercontent.com`).
    pub issuer: String,
    /// The certificate's subject (SAN URI or e-mail), exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Or a regular expression the whole subject must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_regexp: Option<String>,
}

impl Identity {
    /// Checks the identity is complete and its regexp compiles.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.subject, &self.subject_regexp) {
            (Some(_), None) => Ok(()),
            (None, Some(r)) => regex_lite::Regex::new(&anchor(r))
                .map(|_| ())
                .map_err(|e| format!("subject_regexp `{r}` does not compile: {e}")),
            _ => Err("give exactly one of `subject` and `subject_regexp`".into()),
        }
    }

    fn matches(&self, issuer: &str, subjects: &[String]) -> bool {
        if issuer != self.issuer {
            return false;
        }
        match (&self.subject, &self.subject_regexp) {
            (Some(s), _) => subjects.iter().any(|x| x == s),
            (None, Some(r)) => regex_lite::Regex::new(&anchor(r))
                .is_ok_and(|re| subjects.iter().any(|x| re.is_match(x))),
            _ => false,
        }
    }
}

fn anchor(r: &str) -> String {
    format!("^(?:{r})$")
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.subject, &self.subject_regexp) {
            (Some(s), _) => write!(f, "{s} (issuer {})", self.issuer),
            (_, Some(r)) => write!(f, "/{r}/ (issuer {})", self.issuer),
            _ => write!(f, "? (issuer {})", self.issuer),
        }
    }
}

struct Tlog {
    key_id_hex: String,
    key: p256::ecdsa::VerifyingKey,
    start: i64,
    end: Option<i64>,
}

struct Ca {
    /// DER certificates, intermediates first, the root last.
    chain: Vec<Vec<u8>>,
    start: i64,
    end: Option<i64>,
}

/// A Sigstore trust root: transparency-log keys and Fulcio CAs.
pub struct TrustedRoot {
    tlogs: Vec<Tlog>,
    cas: Vec<Ca>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootJson {
    #[serde(default)]
    tlogs: Vec<TlogJson>,
    #[serde(default)]
    certificate_authorities: Vec<CaJson>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlogJson {
    public_key: KeyJson,
    log_id: LogIdJson,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyJson {
    raw_bytes: String,
    #[serde(default)]
    key_details: String,
    valid_for: Option<ValidFor>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogIdJson {
    key_id: String,
}
#[derive(Deserialize)]
struct ValidFor {
    start: Option<String>,
    end: Option<String>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaJson {
    cert_chain: CertChain,
    valid_for: Option<ValidFor>,
}
#[derive(Deserialize)]
struct CertChain {
    certificates: Vec<RawBytes>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

fn rfc3339(s: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))
}

fn window(v: &Option<ValidFor>) -> Result<(i64, Option<i64>), String> {
    let start = v
        .as_ref()
        .and_then(|v| v.start.as_deref())
        .map(rfc3339)
        .transpose()?
        .unwrap_or(i64::MIN);
    let end = v
        .as_ref()
        .and_then(|v| v.end.as_deref())
        .map(rfc3339)
        .transpose()?;
    Ok((start, end))
}

impl TrustedRoot {
    /// Sigstore's public-good root, shipped with wpkg.
    pub fn public_good() -> TrustedRoot {
        TrustedRoot::from_json(PUBLIC_GOOD_ROOT.as_bytes()).expect("the shipped trust root parses")
    }

    /// Reads a `trusted_root.json`.
    pub fn from_json(bytes: &[u8]) -> Result<TrustedRoot, String> {
        let j: RootJson = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a Sigstore trusted_root.json: {e}"))?;
        let mut tlogs = Vec::new();
        for t in j.tlogs {
            if !t.public_key.key_details.is_empty()
                && t.public_key.key_details != "PKIX_ECDSA_P256_SHA_256"
            {
                continue; // Rekor v2 Ed25519 logs and others: not used for SETs here.
            }
            let der = B64
                .decode(&t.public_key.raw_bytes)
                .map_err(|_| "a transparency log key is not base64".to_owned())?;
            use p256::pkcs8::DecodePublicKey;
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(&der)
                .map_err(|e| format!("a transparency log key is not P-256: {e}"))?;
            let key_id = B64
                .decode(&t.log_id.key_id)
                .map_err(|_| "a log id is not base64".to_owned())?;
            let (start, end) = window(&t.public_key.valid_for)?;
            tlogs.push(Tlog {
                key_id_hex: hex::encode(key_id),
                key,
                start,
                end,
            });
        }
        let mut cas = Vec::new();
        for c in j.certificate_authorities {
            let chain = c
                .cert_chain
                .certificates
                .iter()
                .map(|r| {
                    B64.decode(&r.raw_bytes)
                        .map_err(|_| "a CA certificate is not base64".to_owned())
                })
                .collect::<Result<Vec<_>, _>>()?;
            if chain.is_empty() {
                return Err("a certificate authority has an empty certificate chain".into());
            }
            for der in &chain {
                Certificate::from_der(der)
                    .map_err(|e| format!("a CA certificate does not parse: {e}"))?;
            }
            let (start, end) = window(&c.valid_for)?;
            cas.push(Ca { chain, start, end });
        }
        if tlogs.is_empty() || cas.is_empty() {
            return Err(
                "the trust root has no usable transparency log or no certificate authority".into(),
            );
        }
        Ok(TrustedRoot { tlogs, cas })
    }
}

/// The Rekor bundle cosign puts in `dev.sigstore.cosign/bundle`.
#[derive(Deserialize)]
#[allow(non_snake_case)]
struct RekorBundle {
    SignedEntryTimestamp: String,
    Payload: RekorPayload,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RekorPayload {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// Checks the SET and returns (integrated time, decoded entry body).
fn verify_set(bundle_json: &str, root: &TrustedRoot) -> Result<(i64, serde_json::Value), String> {
    let b: RekorBundle = serde_json::from_str(bundle_json)
        .map_err(|e| format!("the Rekor bundle does not parse ({e})"))?;
    let p = &b.Payload;
    let log = root
        .tlogs
        .iter()
        .find(|t| t.key_id_hex == p.log_id)
        .ok_or_else(|| {
            format!(
                "its Rekor entry is from a log the trust root does not know ({})",
                p.log_id
            )
        })?;
    if p.integrated_time < log.start || log.end.is_some_and(|e| p.integrated_time > e) {
        return Err("its Rekor entry is outside the log key's validity".into());
    }
    // RFC 8785 canonical JSON of the four fields: keys sorted, no spaces.
    let canonical = format!(
        "{{\"body\":{},\"integratedTime\":{},\"logID\":{},\"logIndex\":{}}}",
        serde_json::Value::from(p.body.as_str()),
        p.integrated_time,
        serde_json::Value::from(p.log_id.as_str()),
        p.log_index
    );
    let set = B64
        .decode(&b.SignedEntryTimestamp)
        .map_err(|_| "the signed entry timestamp is not base64".to_owned())?;
    let sig = p256::ecdsa::DerSignature::from_bytes(&set)
        .map_err(|_| "the signed entry timestamp is not a DER ECDSA signature".to_owned())?;
    use p256::ecdsa::signature::Verifier;
    log.key.verify(canonical.as_bytes(), &sig).map_err(|_| {
        "its Rekor signed entry timestamp does not verify with the log's key".to_owned()
    })?;
    let body = B64
        .decode(&p.body)
        .map_err(|_| "the Rekor entry body is not base64".to_owned())?;
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| format!("the Rekor entry body is not JSON ({e})"))?;
    Ok((p.integrated_time, body))
}

fn pem_certs(text: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find("-----BEGIN CERTIFICATE-----") {
        let after = &rest[b + 27..];
        let Some(e) = after.find("-----END CERTIFICATE-----") else {
            break;
        };
        let body: String = after[..e].chars().filter(|c| !c.is_whitespace()).collect();
        if let Ok(der) = B64.decode(body) {
            out.push(der);
        }
        rest = &after[e + 25..];
    }
    out
}

fn validity(c: &Certificate) -> (i64, i64) {
    let v = &c.tbs_certificate.validity;
    (
        v.not_before.to_unix_duration().as_secs() as i64,
        v.not_after.to_unix_duration().as_secs() as i64,
    )
}

/// Checks that `issuer` signed `cert`.
fn signed_by(cert: &Certificate, issuer: &Certificate) -> bool {
    let Ok(tbs) = cert.tbs_certificate.to_der() else {
        return false;
    };
    let Some(sig) = cert.signature.as_bytes() else {
        return false;
    };
    let alg = cert.signature_algorithm.oid.to_string();
    let prehash: Vec<u8> = match alg.as_str() {
        OID_ECDSA_SHA256 => Sha256::digest(&tbs).to_vec(),
        OID_ECDSA_SHA384 => Sha384::digest(&tbs).to_vec(),
        _ => return false,
    };
    let spki = &issuer.tbs_certificate.subject_public_key_info;
    let Ok(spki_der) = spki.to_der() else {
        return false;
    };
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
        .map(|o| o.to_string());
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::pkcs8::DecodePublicKey;
    match curve.as_deref() {
        Some(OID_P256) => {
            let (Ok(k), Ok(s)) = (
                p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der),
                p256::ecdsa::Signature::from_der(sig),
            ) else {
                return false;
            };
            k.verify_prehash(&prehash, &s).is_ok()
        }
        Some(OID_P384) => {
            let (Ok(k), Ok(s)) = (
                p384::ecdsa::VerifyingKey::from_public_key_der(&spki_der),
                p384::ecdsa::Signature::from_der(sig),
            ) else {
                return false;
            };
            k.verify_prehash(&prehash, &s).is_ok()
        }
        _ => false,
    }
}

/// The leaf's identities: SAN URIs and e-mails, and its OIDC issuer.
fn identity_of(leaf: &Certificate) -> Result<(Vec<String>, String), String> {
    let mut subjects = Vec::new();
    let mut issuer_v1 = None;
    let mut issuer_v2 = None;
    let mut code_signing = false;
    for ext in leaf.tbs_certificate.extensions.iter().flatten() {
        let value = ext.extn_value.as_bytes();
        match ext.extn_id.to_string().as_str() {
            OID_SAN => {
                let san = x509_cert::ext::pkix::SubjectAltName::from_der(value)
                    .map_err(|e| format!("the certificate's SAN does not parse: {e}"))?;
                for n in san.0 {
                    match n {
                        x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(u) => {
                            subjects.push(u.to_string())
                        }
                        x509_cert::ext::pkix::name::GeneralName::Rfc822Name(m) => {
                            subjects.push(m.to_string())
                        }
                        _ => {}
                    }
                }
            }
            OID_EKU => {
                let eku = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(value).map_err(|e| {
                    format!("the certificate's extended key usage does not parse: {e}")
                })?;
                code_signing = eku.0.iter().any(|o| o.to_string() == OID_CODE_SIGNING);
            }
            OID_ISSUER_V2 => {
                issuer_v2 = der::asn1::Utf8StringRef::from_der(value)
                    .ok()
                    .map(|s| s.as_str().to_owned());
            }
            OID_ISSUER_V1 => issuer_v1 = std::str::from_utf8(value).ok().map(str::to_owned),
            _ => {}
        }
    }
    if !code_signing {
        return Err("the certificate is not for code signing".into());
    }
    let issuer = issuer_v2
        .or(issuer_v1)
        .ok_or("the certificate names no OIDC issuer (Fulcio extension 1.3.6.1.4.1.57264.1.8)")?;
    Ok((subjects, issuer))
}

/// Verifies a keyless classic signature: `payload` signed as `signature` by the
/// certificate `cert_pem`, logged in `rekor_bundle`. Returns the identity that matched.
pub fn verify_classic_keyless(
    payload: &[u8],
    signature: &[u8],
    cert_pem: &str,
    rekor_bundle: Option<&str>,
    root: &TrustedRoot,
    identities: &[Identity],
) -> Result<String, String> {
    let leaf_der = pem_certs(cert_pem)
        .into_iter()
        .next()
        .ok_or("the certificate annotation holds no PEM certificate")?;
    let leaf = Certificate::from_der(&leaf_der)
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let bundle = rekor_bundle.ok_or(
        "it has no Rekor entry (dev.sigstore.cosign/bundle), so when it was signed cannot be checked",
    )?;
    let (time, body) = verify_set(bundle, root)?;
    // The entry must be this very signature.
    let spec = &body["spec"];
    if body["kind"] != "hashedrekord" {
        return Err(format!(
            "its Rekor entry is a `{}`, not a hashedrekord",
            body["kind"]
        ));
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
        return Err("its Rekor entry is for another signature, certificate or payload".into());
    }
    // The chain, at the logged time.
    let (nb, na) = validity(&leaf);
    if time < nb || time > na {
        return Err("the certificate was not valid when the entry was logged".into());
    }
    let mut chained = false;
    'cas: for ca in &root.cas {
        if time < ca.start || ca.end.is_some_and(|e| time > e) {
            continue;
        }
        let certs: Vec<Certificate> =
            match ca.chain.iter().map(|d| Certificate::from_der(d)).collect() {
                Ok(c) => c,
                Err(_) => continue,
            };
        let mut child = &leaf;
        for issuer in &certs {
            let (nb, na) = validity(issuer);
            if time < nb || time > na || !signed_by(child, issuer) {
                continue 'cas;
            }
            child = issuer;
        }
        chained = true;
        break;
    }
    if !chained {
        return Err("the certificate does not chain to a Fulcio CA of the trust root".into());
    }
    let (subjects, issuer) = identity_of(&leaf)?;
    identities
        .iter()
        .find(|i| i.matches(&issuer, &subjects))
        .ok_or_else(|| {
            format!(
                "it was signed by {} (issuer {issuer}), an identity the policy does not trust",
                subjects
                    .first()
                    .map(String::as_str)
                    .unwrap_or("an unnamed subject")
            )
        })?;
    // Finally the signature itself, with the certificate's key.
    let spki = leaf
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    let key = crate::signature::PublicKey::from_spki_der(&spki)
        .map_err(|e| format!("the certificate's key: {e}"))?;
    if !key.verify(payload, signature) {
        return Err("the signature does not verify with the certificate's key".into());
    }
    Ok(format!(
        "{} (issuer {issuer})",
        subjects.first().cloned().unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_root_parses() {
        let r = TrustedRoot::public_good();
        assert_eq!(
            r.tlogs[0].key_id_hex,
            "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"
        );
        assert!(r.cas.len() >= 2);
    }

    #[test]
    fn identities_match_exactly_or_by_whole_regexp() {
        let gh = "https://token.actions.githubusercontent.com";
        let subj = vec![
            "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main".to_owned(),
        ];
        let exact = Identity {
            issuer: gh.into(),
            subject: Some(subj[0].clone()),
            subject_regexp: None,
        };
        assert!(exact.matches(gh, &subj));
        assert!(!exact.matches("https://accounts.google.com", &subj));
        let re = Identity {
            issuer: gh.into(),
            subject: None,
            subject_regexp: Some("https://github.com/acme/.*".into()),
        };
        assert!(re.matches(gh, &subj));
        let partial = Identity {
            issuer: gh.into(),
            subject: None,
            subject_regexp: Some("acme".into()),
        };
        assert!(
            !partial.matches(gh, &subj),
            "a regexp must match the whole subject"
        );
        assert!(Identity {
            issuer: gh.into(),
            subject: None,
            subject_regexp: None
        }
        .validate()
        .is_err());
        assert!(Identity {
            issuer: gh.into(),
            subject: None,
            subject_regexp: Some("(".into())
        }
        .validate()
        .is_err());
    }
}
