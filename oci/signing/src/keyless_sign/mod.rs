//! Keyless signing against a Sigstore instance, the way `cosign sign` (v3, new bundle
//! format) does it:
//!
//! 1. an OIDC identity token (given, or GitHub Actions' ambient token for audience
//!    `sigstore`);
//! 2. an ephemeral P-256 key, held in memory only, and a Fulcio v2 `signingCert`
//!    request with a proof of possession over the token's subject;
//! 3. an in-toto statement (subject = the manifest digest, predicate type
//!    `https://sigstore.dev/cosign/sign/v1`) signed as a DSSE envelope;
//! 4. a Rekor v1 `dsse` entry for the envelope and certificate;
//! 5. a sigstore bundle v0.3 with the certificate, the entry (SET, inclusion proof,
//!    checkpoint) and the envelope.
//!
//! The result is checked offline against the trust root before it is returned, so a
//! bundle that would not verify is never pushed. Tokens and the key never appear in
//! errors or logs.

use crate::keyless::{Identity, TrustedRoot};
use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::time::Duration;
use wpkg_distribution::credentials::Secret;
use wpkg_spec::Digest;

mod assemble;
mod config;
#[cfg(test)]
mod tests;
mod token;

pub(crate) use assemble::*;
pub use assemble::{assemble_blob_bundle, assemble_bundle};
pub use config::{services, Services};
pub(crate) use token::*;
pub use token::{github_actions_token, IdentityToken, AUDIENCE};

pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub(crate) const B64URL: base64::engine::GeneralPurpose =
    base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Sigstore's public-good Fulcio.
pub const PUBLIC_FULCIO: &str = "https://fulcio.sigstore.dev";

/// Sigstore's public-good Rekor (v1 API).
pub const PUBLIC_REKOR: &str = "https://rekor.sigstore.dev";

/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// Why keyless signing failed.
#[derive(Debug, thiserror::Error)]
pub enum KeylessError {
    /// The identity token is not a usable JWT.
    #[error("the identity token is not usable: {reason}")]
    BadToken {
        /// What is wrong (never the token itself).
        reason: String,
    },
    /// The identity token has expired.
    #[error("the identity token expired {ago} s ago")]
    TokenExpired {
        /// Seconds since it expired.
        ago: i64,
    },
    /// No identity token was given and none could be had from the environment.
    #[error("no identity token")]
    NoToken,
    /// GitHub Actions' token endpoint did not give a token.
    #[error("the GitHub Actions token endpoint did not give an identity token: {detail}")]
    AmbientToken {
        /// What happened.
        detail: String,
    },
    /// A Sigstore service URL is not usable.
    #[error("`{url}` is not a usable {service} URL: {reason}")]
    BadUrl {
        /// Fulcio or Rekor.
        service: &'static str,
        /// The URL.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// Fulcio refused or failed.
    #[error("Fulcio at {url} did not issue a certificate: {detail}")]
    Fulcio {
        /// The Fulcio URL.
        url: String,
        /// What it said.
        detail: String,
    },
    /// Rekor refused or failed.
    #[error("Rekor at {url} did not log the signature: {detail}")]
    Rekor {
        /// The Rekor URL.
        url: String,
        /// What it said.
        detail: String,
    },
    /// The bundle made from the answers does not verify against the trust root.
    #[error("the signature made with {service} does not verify: {failed}")]
    SelfCheck {
        /// Which answer is at fault (`Fulcio` or `Rekor`), from the failed check.
        service: &'static str,
        /// The check that failed.
        failed: crate::error::VerifyError,
    },
    /// The timestamp authority refused or failed.
    #[error("the timestamp authority at {url} did not timestamp the signature: {detail}")]
    Tsa {
        /// The TSA URL.
        url: String,
        /// What it said.
        detail: String,
    },
    /// The signing config is not usable.
    #[error("the signing config is not usable: {reason}")]
    SigningConfig {
        /// Why.
        reason: String,
    },
    /// The digest to sign is not a digest.
    #[error(transparent)]
    Digest(wpkg_spec::digest::DigestError),
    /// HTTP set-up failed.
    #[error("cannot set up HTTP: {0}")]
    Setup(String),
}

/// Where the Sigstore services are, and what to trust when checking the result.
pub struct Instance {
    /// Fulcio's base URL.
    pub fulcio: String,
    /// Rekor's base URL.
    pub rekor: String,
    /// Rekor's API: 1 (`/api/v1/log/entries`, a `dsse` or `hashedrekord` 0.0.1 entry with
    /// a SET) or 2 (`/api/v2/log/entries`, a `hashedrekord` 0.0.2 entry; needs `tsa`).
    pub rekor_version: u8,
    /// An RFC 3161 timestamp authority's URL: when given, the bundle carries a signed
    /// timestamp of the signature as well as the Rekor entry.
    pub tsa: Option<String>,
    /// The trust root the produced bundle is checked against.
    pub root: TrustedRoot,
}

/// A keyless signature, made and checked.
pub struct Signed {
    /// The sigstore bundle (JSON), as cosign v3 attaches it.
    pub bundle: Vec<u8>,
    /// The certificate's identity.
    pub identity: crate::keyless::CertIdentity,
    /// The Rekor log index.
    pub log_index: i64,
}

pub(crate) fn client(
    ca_files: &[std::path::PathBuf],
) -> Result<reqwest::blocking::Client, KeylessError> {
    let tls = wpkg_distribution::registry::tls_config(ca_files)
        .map_err(|e| KeylessError::Setup(e.to_string()))?;
    reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .user_agent(concat!("wpkg/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| KeylessError::Setup(e.to_string()))
}

/// A base URL must be HTTPS, or plain HTTP on a loopback address (test instances).
pub(crate) fn check_url(service: &'static str, url: &str) -> Result<String, KeylessError> {
    let bad = |reason| KeylessError::BadUrl {
        service,
        url: url.to_owned(),
        reason,
    };
    let u = reqwest::Url::parse(url).map_err(|_| bad("not a URL"))?;
    match u.scheme() {
        "https" => {}
        "http"
            if u.host_str()
                .is_some_and(wpkg_distribution::registry::is_loopback_registry) => {}
        "http" => return Err(bad("plain HTTP is allowed only on loopback")),
        _ => return Err(bad("not an http(s) URL")),
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad("a base URL takes no query"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The in-toto statement cosign v3 signs for an image, its subject named (cosign
/// leaves the name out; in-toto verifiers such as sigstore-python require one).
pub fn statement(name: &str, manifest_digest: &Digest) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": manifest_digest.hex()}}],
        "predicateType": crate::bundle::COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }))
    .expect("JSON serializes")
}

/// Reads a JSON answer of at most 1 MiB.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::blocking::Response,
) -> Result<T, ()> {
    use std::io::Read;
    let mut bytes = Vec::new();
    resp.take(1 << 20).read_to_end(&mut bytes).map_err(|_| ())?;
    serde_json::from_slice(&bytes).map_err(|_| ())
}

/// Reads an error body briefly (never echoing more than a line of it).
pub(crate) fn answer_text(resp: reqwest::blocking::Response) -> String {
    let status = resp.status();
    let body = resp.text().unwrap_or_default();
    let msg = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            body.lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect()
        });
    if msg.is_empty() {
        format!("it answered {status}")
    } else {
        format!("it answered {status}: {msg}")
    }
}

/// What to sign keylessly.
pub enum Subject<'a> {
    /// An image: a DSSE in-toto statement (cosign v3's) for `manifest_digest` of `name`
    /// (registry/repository), logged as a Rekor `dsse` entry.
    Image {
        /// registry/repository.
        name: &'a str,
        /// The manifest digest.
        manifest_digest: &'a str,
    },
    /// A file: a message signature over its SHA-256, logged as a `hashedrekord` entry
    /// (what `cosign sign-blob --bundle` makes).
    Blob {
        /// The file's SHA-256.
        sha256: [u8; 32],
    },
}

/// Signs `manifest_digest` (the image `name`, registry/repository) keylessly: Fulcio
/// certificate, DSSE statement, Rekor entry, bundle; then checks the bundle against
/// `instance.root` for the certificate's own identity before returning it.
pub fn sign(
    instance: &Instance,
    token: &IdentityToken,
    name: &str,
    manifest_digest: &str,
    ca_files: &[std::path::PathBuf],
) -> Result<Signed, KeylessError> {
    sign_subject(
        instance,
        token,
        &Subject::Image {
            name,
            manifest_digest,
        },
        ca_files,
    )
}

/// Signs `subject` keylessly (see [`sign`]).
pub fn sign_subject(
    instance: &Instance,
    token: &IdentityToken,
    subject: &Subject<'_>,
    ca_files: &[std::path::PathBuf],
) -> Result<Signed, KeylessError> {
    let expect = match subject {
        Subject::Image {
            manifest_digest, ..
        } => {
            let d = Digest::parse(manifest_digest).map_err(KeylessError::Digest)?;
            crate::sigbundle::Expect {
                sha256: hex::decode(d.hex())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        KeylessError::Setup(format!("`{manifest_digest}` is not a SHA-256 digest"))
                    })?,
                predicate: Some(crate::bundle::COSIGN_SIGN_PREDICATE),
            }
        }
        Subject::Blob { sha256 } => crate::sigbundle::Expect {
            sha256: *sha256,
            predicate: None,
        },
    };
    let fulcio = check_url("Fulcio", &instance.fulcio)?;
    let rekor = check_url("Rekor", &instance.rekor)?;
    if instance.rekor_version == 2 && instance.tsa.is_none() {
        return Err(KeylessError::SigningConfig {
            reason:
                "a Rekor v2 log gives no signing time: it is used only with a timestamp authority"
                    .into(),
        });
    }
    let http = client(ca_files)?;
    // The ephemeral key: in memory only, dropped at the end of this function.
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeylessError::Setup(e.to_string()))?;
    let pop: p256::ecdsa::DerSignature = key.sign(token.challenge().as_bytes());

    // 1. Fulcio.
    let fulcio_err = |detail: String| KeylessError::Fulcio {
        url: fulcio.clone(),
        detail,
    };
    let resp = http
        .post(format!("{fulcio}/api/v2/signingCert"))
        .bearer_auth(token.raw.expose())
        .header("Content-Type", "application/json")
        .body(
            serde_json::to_vec(&serde_json::json!({
                "credentials": {"oidcIdentityToken": token.raw.expose()},
                "publicKeyRequest": {
                    "publicKey": {"algorithm": "ECDSA", "content": public_pem},
                    "proofOfPossession": B64.encode(pop.as_bytes()),
                },
            }))
            .expect("JSON serializes"),
        )
        .send()
        .map_err(|e| fulcio_err(format!("cannot connect ({})", without_url(&e))))?;
    if !resp.status().is_success() {
        return Err(fulcio_err(answer_text(resp)));
    }
    let answer: serde_json::Value =
        read_json(resp).map_err(|_| fulcio_err("its answer is not JSON".into()))?;
    if answer.get("signedCertificateDetachedSct").is_some() {
        return Err(fulcio_err(
            "it gave a certificate with a detached SCT; wpkg needs an embedded one".into(),
        ));
    }
    let chain = answer["signedCertificateEmbeddedSct"]["chain"]["certificates"]
        .as_array()
        .and_then(|c| c.first())
        .and_then(|c| c.as_str())
        .ok_or_else(|| fulcio_err("its answer has no certificate chain".into()))?;
    let leaf_der = crate::keyless::pem_certs(chain)
        .into_iter()
        .next()
        .ok_or_else(|| fulcio_err("its certificate is not PEM".into()))?;
    {
        use der::{Decode, Encode};
        let leaf = x509_cert::Certificate::from_der(&leaf_der)
            .map_err(|_| fulcio_err("its certificate does not parse".into()))?;
        let spki = leaf
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|_| fulcio_err("its certificate does not parse".into()))?;
        let ours = key
            .verifying_key()
            .to_public_key_der()
            .map_err(|e| KeylessError::Setup(e.to_string()))?;
        if spki != ours.as_bytes() {
            return Err(fulcio_err("its certificate is for another key".into()));
        }
    }

    // 2. The signature, and the entry Rekor is asked to log.
    let cert_pem_b64 = B64.encode(crate::keys::pem_encode("CERTIFICATE", &leaf_der));
    let (signed, proposed) = match subject {
        Subject::Image {
            name,
            manifest_digest,
        } => {
            let digest = Digest::parse(manifest_digest).map_err(KeylessError::Digest)?;
            let payload = statement(name, &digest);
            let sig: p256::ecdsa::DerSignature =
                key.sign(&crate::keys::dsse_pae(IN_TOTO, &payload));
            let envelope = serde_json::json!({
                "payload": B64.encode(&payload),
                "payloadType": IN_TOTO,
                "signatures": [{"keyid": "", "sig": B64.encode(sig.as_bytes())}],
            });
            let entry = serde_json::json!({
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {"proposedContent": {
                    "envelope": envelope.to_string(),
                    "verifiers": [cert_pem_b64],
                }},
            });
            (Signed_::Dsse(payload, sig.as_bytes().to_vec()), entry)
        }
        Subject::Blob { sha256 } => {
            use p256::ecdsa::signature::hazmat::PrehashSigner;
            let sig: p256::ecdsa::Signature = key
                .sign_prehash(sha256)
                .map_err(|e| KeylessError::Setup(e.to_string()))?;
            let sig = sig.to_der().as_bytes().to_vec();
            let entry = serde_json::json!({
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": hex::encode(sha256)}},
                    "signature": {"content": B64.encode(&sig), "publicKey": {"content": cert_pem_b64}},
                },
            });
            (Signed_::Message(*sha256, sig), entry)
        }
    };

    // 3. Rekor.
    let rekor_err = |detail: String| KeylessError::Rekor {
        url: rekor.clone(),
        detail,
    };
    let (path, proposed) = if instance.rekor_version == 2 {
        // Rekor v2 logs every signature as a hashedrekord: of the file's digest, or of
        // a DSSE envelope's PAE.
        let (digest, sig) = match &signed {
            Signed_::Dsse(payload, sig) => {
                let pae: [u8; 32] = Sha256::digest(crate::keys::dsse_pae(IN_TOTO, payload)).into();
                (pae, sig)
            }
            Signed_::Message(sha256, sig) => (*sha256, sig),
        };
        let request = serde_json::json!({"hashedRekordRequestV002": {
            "digest": B64.encode(digest),
            "signature": {"content": B64.encode(sig), "verifier": {
                "x509Certificate": {"rawBytes": B64.encode(&leaf_der)},
                "keyDetails": "PKIX_ECDSA_P256_SHA_256"}},
        }});
        ("api/v2/log/entries", request)
    } else {
        ("api/v1/log/entries", proposed)
    };
    let resp = http
        .post(format!("{rekor}/{path}"))
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&proposed).expect("JSON serializes"))
        .send()
        .map_err(|e| rekor_err(format!("cannot connect ({})", without_url(&e))))?;
    if !resp.status().is_success() {
        return Err(rekor_err(answer_text(resp)));
    }
    let answer: serde_json::Value =
        read_json(resp).map_err(|_| rekor_err("its answer is not JSON".into()))?;
    let tlog = if instance.rekor_version == 2 {
        // v2 answers with the bundle's TransparencyLogEntry itself.
        answer
    } else {
        tlog_entry(&answer).map_err(|d| rekor_err(d.into()))?
    };
    let (bundle, log_index) = match &signed {
        Signed_::Dsse(payload, sig) => {
            assemble(&leaf_der, tlog, "dsseEnvelope", dsse_json(payload, sig))
        }
        Signed_::Message(sha256, sig) => assemble(
            &leaf_der,
            tlog,
            "messageSignature",
            message_json(sha256, sig),
        ),
    };

    // 3b. A signed timestamp of the signature, when a timestamp authority is configured.
    let bundle = match &instance.tsa {
        Some(url) => {
            let url = check_url("TSA", url)?;
            let sig = match &signed {
                Signed_::Dsse(_, sig) | Signed_::Message(_, sig) => sig,
            };
            with_timestamp(&bundle, &timestamp_of(&http, &url, sig)?)
        }
        None => bundle,
    };

    // 4. Check what we made, as a verifier will: the certificate's own identity.
    let self_check = |failed: crate::error::VerifyError| KeylessError::SelfCheck {
        service: match failed.part() {
            crate::error::Part::Log => "Rekor",
            crate::error::Part::Timestamp => "the timestamp authority",
            _ => "Fulcio",
        },
        failed,
    };
    let mine = crate::keyless::leaf_identity(&leaf_der).map_err(self_check)?;
    let me = Identity {
        issuer: mine.issuer.clone(),
        subject: mine.subjects.first().cloned(),
        ..Default::default()
    };
    let (parsed, version) = crate::sigbundle::parse(&bundle).map_err(self_check)?;
    let identity = crate::sigbundle::verify_keyless_parsed(
        &parsed,
        version,
        &expect,
        &instance.root,
        std::slice::from_ref(&me),
    )
    .map_err(self_check)?
    .certificate;
    Ok(Signed {
        bundle,
        identity,
        log_index,
    })
}

/// Now, as RFC 3339 (the `created` annotation of a referrer).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The SHA-256 of bytes, hex; for tests and messages.
pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}
