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
    ctlogs: Vec<Tlog>,
    cas: Vec<Ca>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootJson {
    #[serde(default)]
    tlogs: Vec<TlogJson>,
    #[serde(default)]
    certificate_authorities: Vec<CaJson>,
    #[serde(default)]
    ctlogs: Vec<TlogJson>,
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
        let tlogs = logs(j.tlogs, "transparency log")?;
        let ctlogs = logs(j.ctlogs, "certificate transparency log")?;
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
        Ok(TrustedRoot { tlogs, ctlogs, cas })
    }
}

/// The P-256 logs of a trust root section (Rekor v2's Ed25519 logs are skipped: wpkg
/// checks Rekor v1 entries).
fn logs(list: Vec<TlogJson>, what: &str) -> Result<Vec<Tlog>, String> {
    let mut out = Vec::new();
    for t in list {
        if !t.public_key.key_details.is_empty()
            && t.public_key.key_details != "PKIX_ECDSA_P256_SHA_256"
        {
            continue;
        }
        let der = B64
            .decode(&t.public_key.raw_bytes)
            .map_err(|_| format!("a {what} key is not base64"))?;
        use p256::pkcs8::DecodePublicKey;
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(&der)
            .map_err(|e| format!("a {what} key is not P-256: {e}"))?;
        let key_id = B64
            .decode(&t.log_id.key_id)
            .map_err(|_| format!("a {what} id is not base64"))?;
        let (start, end) = window(&t.public_key.valid_for)?;
        out.push(Tlog {
            key_id_hex: hex::encode(key_id),
            key,
            start,
            end,
        });
    }
    Ok(out)
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
    let set = B64
        .decode(&b.SignedEntryTimestamp)
        .map_err(|_| "the signed entry timestamp is not base64".to_owned())?;
    crate::transparency::verify_set(
        &log.key,
        &set,
        &p.body,
        p.integrated_time,
        &p.log_id,
        p.log_index,
    )
    .map_err(|e| e.to_string())?;
    let body = B64
        .decode(&p.body)
        .map_err(|_| "the Rekor entry body is not base64".to_owned())?;
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| format!("the Rekor entry body is not JSON ({e})"))?;
    Ok((p.integrated_time, body))
}

/// The DER certificates of a PEM text, in order (blocks that do not decode are skipped).
pub(crate) fn pem_certs(text: &str) -> Vec<Vec<u8>> {
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

/// A certificate's identities (SAN URIs and e-mails) and its OIDC issuer.
pub fn leaf_identity(der: &[u8]) -> Result<(Vec<String>, String), String> {
    let c =
        Certificate::from_der(der).map_err(|e| format!("the certificate does not parse: {e}"))?;
    identity_of(&c)
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
    let who = check_certificate(&leaf_der, time, root, identities)?;
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
    Ok(who)
}

const OID_SCT_LIST: &str = "1.3.6.1.4.1.11129.2.4.2";
const OID_KEY_USAGE: &str = "2.5.29.15";
/// id-kp-codeSigning, DER content octets.
const CODE_SIGNING_DER: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// What Fulcio signs with.
static CHAIN_ALGS: &[&dyn rustls::pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
];

/// Checks a Fulcio leaf at `time` (the log's integrated time): the chain to a CA of
/// the trust root (rustls-webpki: signatures, validity, basic constraints, critical
/// extensions, code-signing EKU), the CA's `validFor` window, the key usage, an
/// embedded SCT from a trusted CT log, and an identity the policy trusts. Returns the
/// identity, for messages.
pub fn check_certificate(
    leaf_der: &[u8],
    time: i64,
    root: &TrustedRoot,
    identities: &[Identity],
) -> Result<String, String> {
    let leaf = Certificate::from_der(leaf_der)
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let (nb, na) = validity(&leaf);
    if time < nb || time > na {
        return Err("the certificate was not valid when the entry was logged".into());
    }
    let ee = rustls::pki_types::CertificateDer::from(leaf_der);
    let ee = webpki::EndEntityCert::try_from(&ee).map_err(chain_error)?;
    let when = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(time).map_err(|_| "the log's integrated time is before 1970".to_owned())?,
    ));
    let mut last_error = None;
    let mut issuer_spki = None;
    for ca in &root.cas {
        if time < ca.start || ca.end.is_some_and(|e| time > e) {
            last_error.get_or_insert_with(|| {
                "no Fulcio CA of the trust root was valid at that time".to_owned()
            });
            continue;
        }
        let Some((anchor_der, intermediates)) = ca.chain.split_last() else {
            continue;
        };
        let anchor_der = rustls::pki_types::CertificateDer::from(anchor_der.as_slice());
        let Ok(anchor) = webpki::anchor_from_trusted_cert(&anchor_der) else {
            continue;
        };
        let intermediates: Vec<rustls::pki_types::CertificateDer<'_>> = intermediates
            .iter()
            .map(|d| rustls::pki_types::CertificateDer::from(d.as_slice()))
            .collect();
        // The CA certificates themselves must be valid then too (webpki does not look
        // at the anchor's dates).
        let in_date = ca.chain.iter().all(|d| {
            Certificate::from_der(d).is_ok_and(|c| {
                let (nb, na) = validity(&c);
                nb <= time && time <= na
            })
        });
        if !in_date {
            last_error = Some("a certificate of the Fulcio CA was not valid at that time".into());
            continue;
        }
        match ee.verify_for_usage(
            CHAIN_ALGS,
            &[anchor],
            &intermediates,
            when,
            // Required of the leaf below; CAs without an EKU are fine (private instances).
            webpki::KeyUsage::required_if_present(CODE_SIGNING_DER),
            None,
            None,
        ) {
            Ok(_) => {
                // The leaf's issuer: the first CA certificate that signed it.
                issuer_spki = ca
                    .chain
                    .iter()
                    .filter_map(|d| Certificate::from_der(d).ok())
                    .find(|c| signed_by(&leaf, c))
                    .and_then(|c| c.tbs_certificate.subject_public_key_info.to_der().ok());
                break;
            }
            Err(e) => last_error = Some(chain_error(e)),
        }
    }
    let Some(issuer_spki) = issuer_spki else {
        return Err(last_error.unwrap_or_else(|| {
            "the certificate does not chain to a Fulcio CA of the trust root".into()
        }));
    };
    if !digital_signature_usage(&leaf) {
        return Err("the certificate's key usage does not allow digital signatures".into());
    }
    verify_sct(&leaf, &issuer_spki, root)?;
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
    Ok(format!(
        "{} (issuer {issuer})",
        subjects.first().cloned().unwrap_or_default()
    ))
}

fn chain_error(e: webpki::Error) -> String {
    match e {
        webpki::Error::CaUsedAsEndEntity => {
            "the signing certificate is a CA certificate, not a leaf".into()
        }
        webpki::Error::UnsupportedCriticalExtension => {
            "the certificate has a critical extension wpkg does not understand".into()
        }
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the certificate is not for code signing".into()
        }
        webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. } => {
            "the certificate chain was not valid when the entry was logged".into()
        }
        webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey => {
            "the certificate does not chain to a Fulcio CA of the trust root".into()
        }
        other => {
            format!("the certificate does not chain to a Fulcio CA of the trust root ({other})")
        }
    }
}

fn digital_signature_usage(leaf: &Certificate) -> bool {
    leaf.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id.to_string() == OID_KEY_USAGE)
        .and_then(|e| x509_cert::ext::pkix::KeyUsage::from_der(e.extn_value.as_bytes()).ok())
        .is_some_and(|ku| ku.digital_signature())
}

/// Checks the leaf's embedded SCTs: at least one, from a CT log of the trust root valid
/// at its timestamp, must sign the precertificate (the leaf without its SCT list,
/// RFC 6962 §3.2) issued by the key `issuer_spki`.
fn verify_sct(leaf: &Certificate, issuer_spki: &[u8], root: &TrustedRoot) -> Result<(), String> {
    let ext = leaf
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id.to_string() == OID_SCT_LIST)
        .ok_or("the certificate has no signed certificate timestamp (SCT)")?;
    let list = der::asn1::OctetString::from_der(ext.extn_value.as_bytes())
        .map_err(|_| "the certificate's SCT list is not an OCTET STRING".to_owned())?;
    let mut precert = leaf.tbs_certificate.clone();
    if let Some(exts) = precert.extensions.as_mut() {
        exts.retain(|e| e.extn_id.to_string() != OID_SCT_LIST);
    }
    let tbs = precert
        .to_der()
        .map_err(|e| format!("the certificate does not re-encode: {e}"))?;
    let issuer_key_hash = Sha256::digest(issuer_spki);
    let scts = parse_sct_list(list.as_bytes()).ok_or("the certificate's SCT list is malformed")?;
    let mut why = "no SCT is from a CT log of the trust root";
    for sct in scts {
        let log_hex = hex::encode(sct.log_id);
        let Some(log) = root.ctlogs.iter().find(|l| l.key_id_hex == log_hex) else {
            continue;
        };
        let secs = (sct.timestamp_ms / 1000) as i64;
        if secs < log.start || log.end.is_some_and(|e| secs > e) {
            why = "its SCT is outside the CT log key's validity";
            continue;
        }
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(&sct.timestamp_ms.to_be_bytes());
        signed.extend_from_slice(&[0, 1]);
        signed.extend_from_slice(&issuer_key_hash);
        let len = tbs.len() as u32;
        signed.extend_from_slice(&len.to_be_bytes()[1..]);
        signed.extend_from_slice(&tbs);
        signed.extend_from_slice(&(sct.extensions.len() as u16).to_be_bytes());
        signed.extend_from_slice(sct.extensions);
        use p256::ecdsa::signature::Verifier;
        let ok = sct.hash_alg == 4
            && sct.sig_alg == 3
            && p256::ecdsa::DerSignature::from_bytes(sct.signature)
                .is_ok_and(|s| log.key.verify(&signed, &s).is_ok());
        if ok {
            return Ok(());
        }
        why = "its SCT does not verify with the CT log's key";
    }
    Err(why.into())
}

struct Sct<'a> {
    log_id: &'a [u8],
    timestamp_ms: u64,
    extensions: &'a [u8],
    hash_alg: u8,
    sig_alg: u8,
    signature: &'a [u8],
}

/// Splits a TLS `SignedCertificateTimestampList` (RFC 6962 §3.3) into v1 SCTs.
fn parse_sct_list(b: &[u8]) -> Option<Vec<Sct<'_>>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Some(h)
    }
    fn u16_of(b: &mut &[u8]) -> Option<usize> {
        take(b, 2).map(|x| u16::from_be_bytes([x[0], x[1]]) as usize)
    }
    let mut b = b;
    let total = u16_of(&mut b)?;
    let mut list = take(&mut b, total)?;
    if !b.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    while !list.is_empty() {
        let n = u16_of(&mut list)?;
        let mut s = take(&mut list, n)?;
        if take(&mut s, 1)? != [0] {
            continue; // not a v1 SCT
        }
        let log_id = take(&mut s, 32)?;
        let timestamp_ms = u64::from_be_bytes(take(&mut s, 8)?.try_into().ok()?);
        let n = u16_of(&mut s)?;
        let extensions = take(&mut s, n)?;
        let algs = take(&mut s, 2)?;
        let n = u16_of(&mut s)?;
        let signature = take(&mut s, n)?;
        if !s.is_empty() {
            return None;
        }
        out.push(Sct {
            log_id,
            timestamp_ms,
            extensions,
            hash_alg: algs[0],
            sig_alg: algs[1],
            signature,
        });
    }
    Some(out)
}

/// A Rekor v1 entry as a sigstore bundle carries it (`verificationMaterial.tlogEntries[]`;
/// protobuf JSON, so 64-bit numbers are strings and bytes are base64).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlogEntry {
    log_index: String,
    log_id: LogIdJson,
    kind_version: KindVersion,
    integrated_time: String,
    inclusion_promise: Option<InclusionPromise>,
    inclusion_proof: Option<InclusionProof>,
    canonicalized_body: String,
}
#[derive(Deserialize)]
struct KindVersion {
    kind: String,
    version: String,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionPromise {
    signed_entry_timestamp: String,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionProof {
    log_index: String,
    root_hash: String,
    tree_size: String,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: Option<CheckpointJson>,
}
#[derive(Deserialize)]
struct CheckpointJson {
    envelope: String,
}

/// The parts of a keyless DSSE bundle that [`verify_dsse_keyless`] needs, already
/// decoded by the caller.
pub struct DsseKeyless<'a> {
    /// The leaf certificate (DER).
    pub leaf_der: &'a [u8],
    /// The in-toto statement (the DSSE payload).
    pub payload: &'a [u8],
    /// The DSSE payload type.
    pub payload_type: &'a str,
    /// The one DSSE signature.
    pub signature: &'a [u8],
    /// `verificationMaterial.tlogEntries`, as JSON.
    pub tlog_entries: &'a serde_json::Value,
}

/// Verifies a keyless DSSE bundle: its Rekor v1 `dsse` entry (SET, inclusion proof and
/// signed checkpoint by a log of the trust root), the entry bound to this envelope and
/// certificate, the certificate (see [`check_certificate`]) at the entry's integrated
/// time, and the DSSE signature with the certificate's key. The statement's subject is
/// the caller's to check. Returns the identity that matched.
pub fn verify_dsse_keyless(
    b: &DsseKeyless<'_>,
    root: &TrustedRoot,
    identities: &[Identity],
) -> Result<String, String> {
    let entries: Vec<TlogEntry> = serde_json::from_value(b.tlog_entries.clone())
        .map_err(|e| format!("its transparency log entry does not parse ({e})"))?;
    let entry = entries
        .first()
        .ok_or("it has no transparency log entry, so when it was signed cannot be checked")?;
    let time = verify_tlog_entry(entry, root)?;
    // The entry is this envelope, signed with this certificate.
    let body_bytes = B64
        .decode(&entry.canonicalized_body)
        .map_err(|_| "the Rekor entry body is not base64".to_owned())?;
    let body: serde_json::Value = serde_json::from_slice(&body_bytes)
        .map_err(|e| format!("the Rekor entry body is not JSON ({e})"))?;
    if body["kind"] != "dsse" || entry.kind_version.kind != "dsse" {
        return Err(format!(
            "its Rekor entry is a `{}`, not a dsse entry",
            body["kind"].as_str().unwrap_or("?")
        ));
    }
    let spec = &body["spec"];
    let payload_hash = hex::encode(Sha256::digest(b.payload));
    let sigs = spec["signatures"].as_array().cloned().unwrap_or_default();
    let bound = spec["payloadHash"]["algorithm"] == "sha256"
        && spec["payloadHash"]["value"].as_str() == Some(payload_hash.as_str())
        && sigs.len() == 1
        && sigs[0]["signature"]
            .as_str()
            .and_then(|s| B64.decode(s).ok())
            .as_deref()
            == Some(b.signature)
        && sigs[0]["verifier"]
            .as_str()
            .and_then(|s| B64.decode(s).ok())
            .map(|pem| pem_certs(&String::from_utf8_lossy(&pem)))
            .and_then(|c| c.into_iter().next())
            .as_deref()
            == Some(b.leaf_der);
    if !bound {
        return Err("its Rekor entry is for another envelope, signature or certificate".into());
    }
    let who = check_certificate(b.leaf_der, time, root, identities)?;
    let leaf = Certificate::from_der(b.leaf_der).map_err(|e| e.to_string())?;
    let spki = leaf
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    let key = crate::signature::PublicKey::from_spki_der(&spki)
        .map_err(|e| format!("the certificate's key: {e}"))?;
    if !key.verify(
        &crate::signature::dsse_pae(b.payload_type, b.payload),
        b.signature,
    ) {
        return Err("the DSSE signature does not verify with the certificate's key".into());
    }
    Ok(who)
}

/// Checks a bundle's Rekor v1 entry offline: the log is one of the trust root's and its
/// key was valid at the integrated time; the SET; the inclusion proof up to the root
/// hash; the checkpoint signed by the same log and committing to that root. Returns
/// the integrated time.
fn verify_tlog_entry(e: &TlogEntry, root: &TrustedRoot) -> Result<i64, String> {
    use crate::transparency as t;
    let log_id = B64
        .decode(&e.log_id.key_id)
        .map_err(|_| "its log id is not base64".to_owned())?;
    let log_hex = hex::encode(&log_id);
    let log = root
        .tlogs
        .iter()
        .find(|t| t.key_id_hex == log_hex)
        .ok_or_else(|| {
            format!("its Rekor entry is from a log the trust root does not know ({log_hex})")
        })?;
    if e.kind_version.version != "0.0.1" {
        return Err(format!(
            "its Rekor entry is a {} {}, which wpkg does not check",
            e.kind_version.kind, e.kind_version.version
        ));
    }
    let num = |s: &str, what: &str| -> Result<i64, String> {
        s.parse::<i64>()
            .map_err(|_| format!("its Rekor entry's {what} is not a number"))
    };
    let time = num(&e.integrated_time, "integrated time")?;
    let index = num(&e.log_index, "log index")?;
    if time < log.start || log.end.is_some_and(|end| time > end) {
        return Err("its Rekor entry is outside the log key's validity".into());
    }
    let body = B64
        .decode(&e.canonicalized_body)
        .map_err(|_| "the Rekor entry body is not base64".to_owned())?;
    let promise = e
        .inclusion_promise
        .as_ref()
        .ok_or("its Rekor entry has no signed entry timestamp (inclusion promise)")?;
    let set = B64
        .decode(&promise.signed_entry_timestamp)
        .map_err(|_| "the signed entry timestamp is not base64".to_owned())?;
    t::verify_set(&log.key, &set, &B64.encode(&body), time, &log_hex, index)
        .map_err(|e| e.to_string())?;
    let proof = e
        .inclusion_proof
        .as_ref()
        .ok_or("its Rekor entry has no inclusion proof")?;
    let p_index = num(&proof.log_index, "proof index")?;
    let size = num(&proof.tree_size, "tree size")?;
    let root_hash: [u8; 32] = B64
        .decode(&proof.root_hash)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("its inclusion proof's root hash is not 32 base64 bytes")?;
    let hashes: Vec<[u8; 32]> = proof
        .hashes
        .iter()
        .map(|h| B64.decode(h).ok().and_then(|b| b.try_into().ok()))
        .collect::<Option<_>>()
        .ok_or("its inclusion proof has a hash that is not 32 base64 bytes")?;
    if p_index < 0 || size < 0 {
        return Err("its inclusion proof has a negative index or size".into());
    }
    t::verify_inclusion(
        p_index as u64,
        size as u64,
        &t::leaf_hash(&body),
        &hashes,
        &root_hash,
    )
    .map_err(|e| e.to_string())?;
    let checkpoint = proof
        .checkpoint
        .as_ref()
        .ok_or("its inclusion proof has no checkpoint")?;
    let cp =
        t::verify_checkpoint(&checkpoint.envelope, &log.key, &log_id).map_err(|e| e.to_string())?;
    if cp.root != root_hash || cp.size != size as u64 {
        return Err(t::ProofError::CheckpointMismatch {
            checkpoint_size: cp.size,
            proof_size: size as u64,
        }
        .to_string());
    }
    Ok(time)
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
