//! The Sigstore trust root (`trusted_root.json`): Fulcio CAs, Rekor and CT log keys,
//! each with its validity window.

use super::*;

/// Sigstore's public-good trust root, as shipped (see `oci/signing/testdata/README.md`).
pub const PUBLIC_GOOD_ROOT: &str = include_str!("sigstore-public-good-trusted-root.json");

pub(crate) struct Tlog {
    pub(crate) key_id_hex: String,
    pub(crate) key: p256::ecdsa::VerifyingKey,
    pub(crate) start: i64,
    pub(crate) end: Option<i64>,
}

pub(crate) struct Ca {
    /// DER certificates, intermediates first, the root last.
    pub(crate) chain: Vec<Vec<u8>>,
    pub(crate) start: i64,
    pub(crate) end: Option<i64>,
}

/// A Sigstore trust root: transparency-log keys and Fulcio CAs.
pub struct TrustedRoot {
    pub(crate) tlogs: Vec<Tlog>,
    pub(crate) ctlogs: Vec<Tlog>,
    pub(crate) cas: Vec<Ca>,
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
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TlogJson {
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

pub(crate) fn window(v: &Option<ValidFor>) -> Result<(i64, Option<i64>), String> {
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
pub(crate) fn logs(list: Vec<TlogJson>, what: &str) -> Result<Vec<Tlog>, String> {
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
