//! The Sigstore trust root (`trusted_root.json`): Fulcio CAs, Rekor and CT log keys,
//! each with its validity window.

use super::*;

/// Sigstore's public-good trust root, as shipped (see `oci/signing/testdata/README.md`).
pub const PUBLIC_GOOD_ROOT: &str = include_str!("sigstore-public-good-trusted-root.json");

/// A log's public key: ECDSA P-256 (Rekor v1, CT logs, some Rekor v2 logs) or
/// Ed25519 (Rekor v2).
pub(crate) enum LogKey {
    P256(p256::ecdsa::VerifyingKey),
    Ed25519([u8; 32]),
}

pub(crate) struct Tlog {
    pub(crate) key_id_hex: String,
    pub(crate) key: LogKey,
    /// The log's base URL (`https://log2025-1.rekor.sigstore.dev`).
    pub(crate) base_url: String,
    pub(crate) start: i64,
    pub(crate) end: Option<i64>,
}

impl Tlog {
    /// The P-256 key, for what only P-256 logs sign (SETs, SCTs).
    pub(crate) fn p256(&self) -> Option<&p256::ecdsa::VerifyingKey> {
        match &self.key {
            LogKey::P256(k) => Some(k),
            LogKey::Ed25519(_) => None,
        }
    }

    /// Whether `t` is inside the key's validity window (both ends inclusive).
    pub(crate) fn valid_at(&self, t: i64) -> bool {
        self.start <= t && self.end.is_none_or(|e| t <= e)
    }
}

pub(crate) struct Ca {
    /// DER certificates, intermediates first, the root last.
    pub(crate) chain: Vec<Vec<u8>>,
    pub(crate) start: i64,
    pub(crate) end: Option<i64>,
}

/// A Sigstore trust root: transparency-log keys, Fulcio CAs and timestamp authorities.
pub struct TrustedRoot {
    pub(crate) tlogs: Vec<Tlog>,
    pub(crate) ctlogs: Vec<Tlog>,
    pub(crate) cas: Vec<Ca>,
    pub(crate) tsas: Vec<Ca>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RootJson {
    #[serde(default)]
    pub(crate) tlogs: Vec<TlogJson>,
    #[serde(default)]
    pub(crate) certificate_authorities: Vec<CaJson>,
    #[serde(default)]
    pub(crate) ctlogs: Vec<TlogJson>,
    #[serde(default)]
    pub(crate) timestamp_authorities: Vec<CaJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TlogJson {
    #[serde(default)]
    pub(crate) base_url: String,
    pub(crate) public_key: KeyJson,
    pub(crate) log_id: LogIdJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyJson {
    pub(crate) raw_bytes: String,
    #[serde(default)]
    pub(crate) key_details: String,
    pub(crate) valid_for: Option<ValidFor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LogIdJson {
    pub(crate) key_id: String,
}

/// A `validFor` window (RFC 3339 times).
#[derive(Deserialize)]
pub(crate) struct ValidFor {
    pub(crate) start: Option<String>,
    pub(crate) end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CaJson {
    pub(crate) cert_chain: CertChain,
    pub(crate) valid_for: Option<ValidFor>,
}

#[derive(Deserialize)]
pub(crate) struct CertChain {
    pub(crate) certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawBytes {
    pub(crate) raw_bytes: String,
}

pub(crate) fn rfc3339(s: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))
}

/// A `validFor` window (both ends inclusive). A key or authority without a start is a
/// malformed trust root, as sigstore-go and sigstore-python hold.
pub(crate) fn window(v: &Option<ValidFor>) -> Result<(i64, Option<i64>), String> {
    let Some(start) = v.as_ref().and_then(|v| v.start.as_deref()) else {
        return Err("a key or authority has no `validFor.start`".into());
    };
    let start = rfc3339(start)?;
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
        let cas = authorities(j.certificate_authorities, "certificate authority")?;
        let tsas = authorities(j.timestamp_authorities, "timestamp authority")?;
        if tlogs.is_empty() || cas.is_empty() {
            return Err(
                "the trust root has no usable transparency log or no certificate authority".into(),
            );
        }
        Ok(TrustedRoot {
            tlogs,
            ctlogs,
            cas,
            tsas,
        })
    }
}

/// The certificate authorities (Fulcio, or timestamp authorities) of a trust root section.
pub(crate) fn authorities(list: Vec<CaJson>, what: &str) -> Result<Vec<Ca>, String> {
    let mut out = Vec::new();
    for c in list {
        let chain = c
            .cert_chain
            .certificates
            .iter()
            .map(|r| {
                B64.decode(&r.raw_bytes)
                    .map_err(|_| format!("a {what} certificate is not base64"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if chain.is_empty() {
            return Err(format!("a {what} has an empty certificate chain"));
        }
        for der in &chain {
            Certificate::from_der(der)
                .map_err(|e| format!("a {what} certificate does not parse: {e}"))?;
        }
        let (start, end) = window(&c.valid_for)?;
        out.push(Ca { chain, start, end });
    }
    Ok(out)
}

/// The P-256 logs of a trust root section (Rekor v2's Ed25519 logs are skipped: wpkg
/// checks Rekor v1 entries).
pub(crate) fn logs(list: Vec<TlogJson>, what: &str) -> Result<Vec<Tlog>, String> {
    use p256::pkcs8::DecodePublicKey;
    let mut out = Vec::new();
    for t in list {
        let der = B64
            .decode(&t.public_key.raw_bytes)
            .map_err(|_| format!("a {what} key is not base64"))?;
        let key = match t.public_key.key_details.as_str() {
            "" | "PKIX_ECDSA_P256_SHA_256" => LogKey::P256(
                p256::ecdsa::VerifyingKey::from_public_key_der(&der)
                    .map_err(|e| format!("a {what} key is not P-256: {e}"))?,
            ),
            "PKIX_ED25519" => {
                let spki = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(&der)
                    .map_err(|e| format!("a {what} Ed25519 key does not parse: {e}"))?;
                let raw: [u8; 32] = spki
                    .subject_public_key
                    .raw_bytes()
                    .try_into()
                    .map_err(|_| format!("a {what} Ed25519 key is not 32 bytes"))?;
                LogKey::Ed25519(raw)
            }
            // Other algorithms (RSA CT logs of staging) are not used by wpkg.
            _ => continue,
        };
        let key_id = B64
            .decode(&t.log_id.key_id)
            .map_err(|_| format!("a {what} id is not base64"))?;
        let (start, end) = window(&t.public_key.valid_for)?;
        out.push(Tlog {
            key_id_hex: hex::encode(key_id),
            key,
            base_url: t.base_url,
            start,
            end,
        });
    }
    Ok(out)
}
