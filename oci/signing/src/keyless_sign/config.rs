//! Which Sigstore services to sign with: a `SigningConfig` (v0.2).

use super::*;

/// A service of a Sigstore `SigningConfig` (v0.2).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Service {
    url: String,
    major_api_version: u32,
    #[serde(default)]
    valid_for: Option<crate::keyless::ValidFor>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigningConfig {
    media_type: String,
    #[serde(default)]
    ca_urls: Vec<Service>,
    #[serde(default)]
    rekor_tlog_urls: Vec<Service>,
    #[serde(default)]
    tsa_urls: Vec<Service>,
}

/// The services a Sigstore `SigningConfig` (v0.2, as Sigstore's TUF repository and
/// `trust_config.json` carry it) selects for signing now: the first Fulcio (API v1),
/// Rekor (API v2 when listed, else v1) and timestamp authority valid at this time.
pub struct Services {
    /// Fulcio's URL.
    pub fulcio: String,
    /// Rekor's URL.
    pub rekor: String,
    /// Rekor's API version (1 or 2).
    pub rekor_version: u8,
    /// The timestamp authority's URL, if the config has one.
    pub tsa: Option<String>,
}

/// Reads a `SigningConfig` (v0.2) and picks the services to sign with.
pub fn services(json: &[u8]) -> Result<Services, KeylessError> {
    let bad = |reason: String| KeylessError::SigningConfig { reason };
    let c: SigningConfig = serde_json::from_slice(json)
        .map_err(|e| bad(format!("it is not a Sigstore signing config ({e})")))?;
    if c.media_type != "application/vnd.dev.sigstore.signingconfig.v0.2+json" {
        return Err(bad(format!("unsupported media type `{}`", c.media_type)));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let valid = |s: &&Service| {
        s.valid_for.as_ref().is_none_or(|v| {
            let t = |x: &Option<String>| x.as_deref().and_then(|x| crate::keyless::rfc3339(x).ok());
            t(&v.start).is_none_or(|st| st <= now) && t(&v.end).is_none_or(|e| now <= e)
        })
    };
    let pick = |list: &[Service], version: u32, what: &str| {
        list.iter()
            .filter(valid)
            .find(|s| s.major_api_version == version)
            .map(|s| s.url.clone())
            .ok_or_else(|| bad(format!("it lists no {what} (API v{version}) valid now")))
    };
    let tsa = pick(&c.tsa_urls, 1, "timestamp authority").ok();
    let (rekor, rekor_version) = match pick(&c.rekor_tlog_urls, 2, "Rekor") {
        // Rekor v2 gives no time of its own: it is used with a timestamp authority.
        Ok(url) if tsa.is_some() => (url, 2),
        _ => (
            pick(&c.rekor_tlog_urls, 1, "Rekor").map_err(|_| {
                bad(
                    "it lists no Rekor log valid now (v2 is used only with a timestamp authority)"
                        .into(),
                )
            })?,
            1,
        ),
    };
    Ok(Services {
        fulcio: pick(&c.ca_urls, 1, "certificate authority")?,
        rekor,
        rekor_version,
        tsa,
    })
}
