//! Signatures in cosign's formats.
//!
//! - Keys: ECDSA P-256, the private key as cosign writes it (a PEM block
//!   `ENCRYPTED SIGSTORE PRIVATE KEY`, or the older `ENCRYPTED COSIGN PRIVATE KEY`, whose
//!   body is JSON: scrypt key derivation, NaCl secretbox around a PKCS#8 DER key), the
//!   public key as a `PUBLIC KEY` PEM (SubjectPublicKeyInfo).
//! - Classic signatures: a manifest tagged `sha256-<hex>.sig` next to the image, one
//!   layer per signature of media type `application/vnd.dev.cosign.simplesigning.v1+json`
//!   holding the simple-signing payload, the base64 DER ECDSA signature over it in the
//!   `dev.cosignproject.cosign/signature` annotation.
//! - cosign v3 bundles (`application/vnd.dev.sigstore.bundle.v0.3+json`) attached as
//!   referrers: a DSSE envelope around an in-toto statement whose subject is the image
//!   digest, or a message signature over the payload's digest.
//!
//! The signed digest is the manifest's, so the config — and the capabilities in it — is
//! covered.

use std::collections::BTreeMap;

use base64::Engine as _;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wpkg_spec::media::{Descriptor, ImageManifest};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// PEM label of private keys cosign writes today.
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// PEM label of private keys older cosign wrote.
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// Media type of a classic signature layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding a classic signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The annotation holding a keyless signature's certificate (PEM).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// The annotation holding a keyless signature's Rekor entry (SET bundle JSON).
pub const REKOR_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// The `critical.type` of a cosign image signature.
pub const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";
/// Media type prefix of sigstore bundles.
pub const BUNDLE_MEDIA_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The in-toto predicate type cosign v3 uses for image signatures.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// Errors about keys and signatures.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// A key file is not usable.
    #[error("{0}")]
    Key(String),
    /// The password does not open the key.
    #[error("the password does not decrypt this private key (or the key file is damaged)")]
    BadPassword,
    /// Signature material is malformed.
    #[error("{0}")]
    Malformed(String),
}

/// A P-256 signing key.
pub struct PrivateKey(SigningKey);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(***)")
    }
}

/// A P-256 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

#[derive(Serialize, Deserialize)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}
#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}
#[derive(Serialize, Deserialize)]
#[allow(non_snake_case)]
struct KdfParams {
    N: u64,
    r: u32,
    p: u32,
}
#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

fn pem_decode(text: &str) -> Result<(String, Vec<u8>), SignatureError> {
    let begin = text
        .find("-----BEGIN ")
        .ok_or_else(|| SignatureError::Key("not a PEM file (no `-----BEGIN` line)".into()))?;
    let rest = &text[begin + 11..];
    let label_end = rest
        .find("-----")
        .ok_or_else(|| SignatureError::Key("malformed PEM header".into()))?;
    let label = rest[..label_end].to_owned();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let end = rest[body_start..]
        .find(&end_marker)
        .map(|i| i + body_start)
        .ok_or_else(|| SignatureError::Key(format!("PEM block `{label}` has no END line")))?;
    let body: String = rest[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let bytes = B64
        .decode(body)
        .map_err(|_| SignatureError::Key(format!("PEM block `{label}` is not base64")))?;
    Ok((label, bytes))
}

fn pem_encode(label: &str, bytes: &[u8]) -> String {
    let b = B64.encode(bytes);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn scrypt_key(
    password: &[u8],
    salt: &[u8],
    n: u64,
    r: u32,
    p: u32,
) -> Result<[u8; 32], SignatureError> {
    // The three parameter sets cosign writes or accepts; anything else could be a
    // denial of service (huge N) or a downgrade.
    if !matches!(n, 32768 | 65536 | 131072) || r != 8 || p != 1 {
        return Err(SignatureError::Key(format!(
            "unsupported scrypt parameters N={n} r={r} p={p} (cosign uses N=32768/65536/131072, r=8, p=1)"
        )));
    }
    let log_n = n.trailing_zeros() as u8;
    let params = scrypt::Params::new(log_n, r, p, 32)
        .map_err(|e| SignatureError::Key(format!("scrypt parameters: {e}")))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut key)
        .map_err(|e| SignatureError::Key(format!("scrypt: {e}")))?;
    Ok(key)
}

impl PrivateKey {
    /// A new random key.
    pub fn generate() -> PrivateKey {
        PrivateKey(SigningKey::random(&mut rand_core::OsRng))
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(*self.0.verifying_key())
    }

    /// The key as cosign writes it: `ENCRYPTED SIGSTORE PRIVATE KEY`, scrypt N=65536.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> Result<String, SignatureError> {
        use crypto_secretbox::aead::{Aead, KeyInit};
        use rand_core::RngCore;
        let der = self
            .0
            .to_pkcs8_der()
            .map_err(|e| SignatureError::Key(format!("encoding the key: {e}")))?;
        let mut salt = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut salt);
        let mut nonce = [0u8; 24];
        rand_core::OsRng.fill_bytes(&mut nonce);
        let key = scrypt_key(password, &salt, 65536, 8, 1)?;
        let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
        let ciphertext = cipher
            .encrypt(&nonce.into(), der.as_bytes())
            .map_err(|_| SignatureError::Key("encryption failed".into()))?;
        let doc = Encrypted {
            kdf: Kdf {
                name: "scrypt".into(),
                params: KdfParams {
                    N: 65536,
                    r: 8,
                    p: 1,
                },
                salt: B64.encode(salt),
            },
            cipher: Cipher {
                name: "nacl/secretbox".into(),
                nonce: B64.encode(nonce),
            },
            ciphertext: B64.encode(ciphertext),
        };
        let json = serde_json::to_vec(&doc).expect("JSON serializes");
        Ok(pem_encode(SIGSTORE_PRIVATE_KEY_LABEL, &json))
    }

    /// Opens a cosign private key file's text with `password`.
    pub fn from_encrypted_pem(text: &str, password: &[u8]) -> Result<PrivateKey, SignatureError> {
        use crypto_secretbox::aead::{Aead, KeyInit};
        let (label, body) = pem_decode(text)?;
        if label != SIGSTORE_PRIVATE_KEY_LABEL && label != COSIGN_PRIVATE_KEY_LABEL {
            return Err(SignatureError::Key(format!(
                "a `{label}` PEM block is not a cosign private key (expected `{SIGSTORE_PRIVATE_KEY_LABEL}`); make one with `wpkg keygen` or `cosign generate-key-pair`"
            )));
        }
        let doc: Encrypted = serde_json::from_slice(&body).map_err(|e| {
            SignatureError::Key(format!(
                "the key's encrypted envelope is not the expected JSON: {e}"
            ))
        })?;
        if doc.kdf.name != "scrypt" || doc.cipher.name != "nacl/secretbox" {
            return Err(SignatureError::Key(format!(
                "unsupported key encryption {}/{} (expected scrypt/nacl/secretbox)",
                doc.kdf.name, doc.cipher.name
            )));
        }
        let bad = |what: &str| SignatureError::Key(format!("the key's {what} is not base64"));
        let salt = B64.decode(&doc.kdf.salt).map_err(|_| bad("salt"))?;
        let nonce = B64.decode(&doc.cipher.nonce).map_err(|_| bad("nonce"))?;
        let ciphertext = B64.decode(&doc.ciphertext).map_err(|_| bad("ciphertext"))?;
        if nonce.len() != 24 {
            return Err(SignatureError::Key(
                "the key's nonce is not 24 bytes".into(),
            ));
        }
        let key = scrypt_key(
            password,
            &salt,
            doc.kdf.params.N,
            doc.kdf.params.r,
            doc.kdf.params.p,
        )?;
        let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
        let nonce: [u8; 24] = nonce.try_into().expect("checked length");
        let der = cipher
            .decrypt(&nonce.into(), ciphertext.as_slice())
            .map_err(|_| SignatureError::BadPassword)?;
        let key = SigningKey::from_pkcs8_der(&der).map_err(|e| {
            SignatureError::Key(format!(
                "the decrypted key is not a PKCS#8 ECDSA P-256 key ({e}); wpkg signs with P-256 keys only"
            ))
        })?;
        Ok(PrivateKey(key))
    }

    /// Signs `payload`: ECDSA P-256 over SHA-256, ASN.1 DER.
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let sig: DerSignature = self.0.sign(payload);
        sig.as_bytes().to_vec()
    }
}

impl PublicKey {
    /// Reads a `PUBLIC KEY` PEM (SubjectPublicKeyInfo), as `cosign.pub`.
    pub fn from_pem(text: &str) -> Result<PublicKey, SignatureError> {
        let (label, der) = pem_decode(text)?;
        if label != "PUBLIC KEY" {
            return Err(SignatureError::Key(format!(
                "a `{label}` PEM block is not a public key (expected `PUBLIC KEY`, like cosign.pub)"
            )));
        }
        Self::from_spki_der(&der)
    }

    /// From DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, SignatureError> {
        VerifyingKey::from_public_key_der(der)
            .map(PublicKey)
            .map_err(|e| SignatureError::Key(format!("not an ECDSA P-256 public key: {e}")))
    }

    /// The `PUBLIC KEY` PEM.
    pub fn to_pem(&self) -> String {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 key encodes")
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        self.0
            .to_public_key_der()
            .expect("a P-256 key encodes")
            .as_bytes()
            .to_vec()
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo, hex (a short, stable key id).
    pub fn fingerprint(&self) -> String {
        let der = self.0.to_public_key_der().expect("a P-256 key encodes");
        hex::encode(Sha256::digest(der.as_bytes()))
    }

    /// Checks an ASN.1 DER (or fixed-size) ECDSA signature over `payload`.
    pub fn verify(&self, payload: &[u8], signature: &[u8]) -> bool {
        if let Ok(sig) = DerSignature::from_bytes(signature) {
            return self.0.verify(payload, &sig).is_ok();
        }
        Signature::from_slice(signature).is_ok_and(|sig| self.0.verify(payload, &sig).is_ok())
    }
}

/// The simple-signing payload cosign signs, byte for byte as cosign writes it:
/// `docker_reference` is `registry/repository` without tag or digest.
pub fn simple_signing_payload(docker_reference: &str, manifest_digest: &str) -> Vec<u8> {
    // Field order and `"optional":null` as Go's encoding/json writes cosign's struct.
    format!(
        "{{\"critical\":{{\"identity\":{{\"docker-reference\":{}}},\"image\":{{\"docker-manifest-digest\":{}}},\"type\":{}}},\"optional\":null}}",
        serde_json::Value::from(docker_reference),
        serde_json::Value::from(manifest_digest),
        serde_json::Value::from(COSIGN_SIGNATURE_TYPE),
    )
    .into_bytes()
}

/// The tag of an image's classic signature manifest: `sha256-<hex>.sig`.
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", referrers_tag(manifest_digest))
}

/// The referrers fallback tag of an image: `sha256-<hex>`.
pub fn referrers_tag(manifest_digest: &str) -> String {
    manifest_digest.replacen(':', "-", 1)
}

/// Whether a tag names signature material (`sha256-<hex>` with an optional suffix).
pub fn is_signature_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-").is_some_and(|rest| {
        let hex = rest.split('.').next().unwrap_or("");
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// A classic signature manifest under construction or read back: its payload layers.
#[derive(Clone, Debug)]
pub struct ClassicSignature {
    /// The simple-signing payload.
    pub payload: Vec<u8>,
    /// The DER signature.
    pub signature: Vec<u8>,
    /// The certificate (PEM), for keyless signatures.
    pub certificate: Option<String>,
    /// The Rekor bundle (`dev.sigstore.cosign/bundle`), for keyless signatures.
    pub rekor_bundle: Option<String>,
}

/// Builds (or extends) the `.sig` manifest with one more signature. Returns the
/// manifest bytes and the blobs it needs (config and payload), cosign's shapes: an OCI
/// manifest, an OCI image config listing each layer's digest, uncompressed layers.
pub fn add_classic_signature(
    existing: Option<(&ImageManifest, Vec<u8>)>,
    payload: &[u8],
    signature: &[u8],
) -> (Vec<u8>, Vec<Vec<u8>>) {
    add_signature_layer(existing, payload, signature, BTreeMap::new())
}

/// Like [`add_classic_signature`], with more layer annotations (a keyless signature's
/// certificate and Rekor bundle).
pub fn add_signature_layer(
    existing: Option<(&ImageManifest, Vec<u8>)>,
    payload: &[u8],
    signature: &[u8],
    extra: BTreeMap<String, String>,
) -> (Vec<u8>, Vec<Vec<u8>>) {
    let payload_digest = crate::store::sha256_digest(payload);
    let sig_b64 = B64.encode(signature);
    let mut layers: Vec<Descriptor> = existing.map(|(m, _)| m.layers.clone()).unwrap_or_default();
    // The same payload and signature twice is one signature.
    if !layers.iter().any(|l| {
        l.digest == payload_digest && l.annotations.get(SIGNATURE_ANNOTATION) == Some(&sig_b64)
    }) {
        layers.push(Descriptor {
            media_type: SIMPLE_SIGNING.into(),
            digest: payload_digest,
            size: payload.len() as u64,
            artifact_type: None,
            annotations: {
                let mut a = extra;
                a.insert(SIGNATURE_ANNOTATION.to_owned(), sig_b64);
                a
            },
            platform: None,
        });
    }
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let history: Vec<serde_json::Value> = layers
        .iter()
        .map(|_| serde_json::json!({"created": "0001-01-01T00:00:00Z"}))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": history,
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    }))
    .expect("JSON serializes");
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(wpkg_spec::media::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor {
            media_type: "application/vnd.oci.image.config.v1+json".into(),
            digest: crate::store::sha256_digest(&config),
            size: config.len() as u64,
            artifact_type: None,
            annotations: Default::default(),
            platform: None,
        },
        layers,
        subject: None,
        annotations: Default::default(),
    };
    let bytes = serde_json::to_vec(&manifest).expect("JSON serializes");
    (bytes, vec![config, payload.to_vec()])
}

/// The signature material found for one image.
#[derive(Clone, Debug, Default)]
pub struct Material {
    /// Classic `.sig` signatures.
    pub classic: Vec<ClassicSignature>,
    /// cosign v3 bundles (JSON).
    pub bundles: Vec<Vec<u8>>,
}

impl Material {
    /// How many signatures there are.
    pub fn len(&self) -> usize {
        self.classic.len() + self.bundles.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks every signature for `manifest_digest` against what is trusted: the first
    /// that verifies wins; otherwise every reason, numbered.
    pub fn verify(
        &self,
        manifest_digest: &str,
        trusted: &Trusted<'_>,
    ) -> Result<Verified, Vec<String>> {
        let mut why = Vec::new();
        for s in &self.classic {
            let r = match &s.certificate {
                Some(cert) => verify_classic_cert(s, cert, manifest_digest, trusted),
                None => verify_classic(s, manifest_digest, trusted.keys),
            };
            match r {
                Ok(v) => return Ok(v),
                Err(e) => why.push(format!("signature {}: {e}", why.len() + 1)),
            }
        }
        for b in &self.bundles {
            match verify_bundle_trusted(b, manifest_digest, trusted) {
                Ok(v) => return Ok(v),
                Err(e) => why.push(format!("signature {} (bundle): {e}", why.len() + 1)),
            }
        }
        Err(why)
    }
}

/// What a scope trusts: keys, and keyless identities under a Sigstore trust root.
pub struct Trusted<'a> {
    /// Public keys.
    pub keys: &'a [PublicKey],
    /// Keyless identities.
    pub identities: &'a [crate::keyless::Identity],
    /// The trust root for keyless signatures (loaded only when one is present).
    pub root: &'a dyn Fn() -> Result<crate::keyless::TrustedRoot, String>,
}

fn verify_classic_cert(
    sig: &ClassicSignature,
    cert: &str,
    manifest_digest: &str,
    trusted: &Trusted<'_>,
) -> Result<Verified, String> {
    if trusted.identities.is_empty() {
        return Err(
            "it is a keyless signature (a certificate), and the scope trusts keys only".into(),
        );
    }
    let payload: SimpleSigning = serde_json::from_slice(&sig.payload)
        .map_err(|e| format!("the signed payload is not cosign's simple-signing JSON ({e})"))?;
    if payload.critical.kind != COSIGN_SIGNATURE_TYPE {
        return Err(format!(
            "the signed payload has type `{}`",
            payload.critical.kind
        ));
    }
    let root = (trusted.root)()?;
    let who = crate::keyless::verify_classic_keyless(
        &sig.payload,
        &sig.signature,
        cert,
        sig.rekor_bundle.as_deref(),
        &root,
        trusted.identities,
    )?;
    if payload.critical.image.digest != manifest_digest {
        return Err(format!(
            "it is a valid signature for another image ({}), not for {manifest_digest}",
            payload.critical.image.digest
        ));
    }
    Ok(Verified {
        key: who,
        form: "keyless",
    })
}

/// The classic signatures of a `.sig` manifest; `blob` reads a layer (digest-checked).
pub fn classic_from_manifest<E>(
    manifest: &ImageManifest,
    mut blob: impl FnMut(&Descriptor) -> Result<Vec<u8>, E>,
) -> Result<Vec<ClassicSignature>, E> {
    let annotation =
        |l: &Descriptor, key: &str| l.annotations.get(key).filter(|v| !v.is_empty()).cloned();
    let mut out = Vec::new();
    for l in manifest
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING)
    {
        let Some(sig) = l.annotations.get(SIGNATURE_ANNOTATION) else {
            continue;
        };
        out.push(ClassicSignature {
            payload: blob(l)?,
            signature: decode_b64(sig).unwrap_or_default(),
            certificate: annotation(l, CERTIFICATE_ANNOTATION),
            rekor_bundle: annotation(l, REKOR_BUNDLE_ANNOTATION),
        });
    }
    Ok(out)
}

/// The media type of a sigstore bundle v0.3, and the `artifactType` of its referrer.
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The OCI empty descriptor's media type (the config of artifact manifests).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// A referrer manifest, as cosign v3 writes one for a bundle, and its blobs.
pub struct Referrer {
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// Its descriptor, as an entry of a referrers index (with `artifactType`).
    pub descriptor: Descriptor,
    /// The blobs it names: the empty config, the bundle.
    pub blobs: Vec<Vec<u8>>,
}

/// Wraps a sigstore bundle in a referrer manifest of `subject` (OCI 1.1: `artifactType`
/// the bundle media type, the empty config, one layer, `subject`), annotated as cosign
/// does (`created`, the bundle content, the predicate type).
pub fn bundle_referrer(bundle: &[u8], subject: &Descriptor, created: &str) -> Referrer {
    let empty = b"{}".to_vec();
    let desc = |media_type: &str, bytes: &[u8]| Descriptor {
        media_type: media_type.to_owned(),
        digest: crate::store::sha256_digest(bytes),
        size: bytes.len() as u64,
        artifact_type: None,
        annotations: Default::default(),
        platform: None,
    };
    let annotations: BTreeMap<String, String> = [
        ("org.opencontainers.image.created", created),
        ("dev.sigstore.bundle.content", "dsse-envelope"),
        ("dev.sigstore.bundle.predicateType", COSIGN_SIGN_PREDICATE),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(wpkg_spec::media::OCI_MANIFEST.into()),
        artifact_type: Some(BUNDLE_V03.into()),
        config: desc(OCI_EMPTY, &empty),
        layers: vec![desc(BUNDLE_V03, bundle)],
        subject: Some(Descriptor {
            media_type: subject.media_type.clone(),
            digest: subject.digest.clone(),
            size: subject.size,
            artifact_type: None,
            annotations: Default::default(),
            platform: None,
        }),
        annotations: annotations.clone(),
    };
    let manifest = serde_json::to_vec(&m).expect("JSON serializes");
    let mut descriptor = desc(wpkg_spec::media::OCI_MANIFEST, &manifest);
    descriptor.artifact_type = Some(BUNDLE_V03.into());
    descriptor.annotations = annotations;
    Referrer {
        manifest,
        descriptor,
        blobs: vec![empty, bundle.to_vec()],
    }
}

/// The bundle layer of a referrer manifest, if it is one: exactly one layer, of a
/// sigstore bundle media type.
pub fn bundle_layer(manifest: &ImageManifest) -> Option<&Descriptor> {
    match manifest.layers.as_slice() {
        [layer] if layer.media_type.starts_with(BUNDLE_MEDIA_PREFIX) => Some(layer),
        _ => None,
    }
}

/// Decodes standard (or URL-safe) base64.
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    b64_any(s)
}

/// What a signature was checked against, for messages.
#[derive(Clone, Debug)]
pub struct Verified {
    /// Which key verified it (fingerprint).
    pub key: String,
    /// `classic` or `bundle`.
    pub form: &'static str,
}

#[derive(Deserialize)]
struct SimpleSigning {
    critical: Critical,
}
#[derive(Deserialize)]
struct Critical {
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}
#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// Checks one classic signature for `manifest_digest` with `keys`; `Err` says why not.
pub fn verify_classic(
    sig: &ClassicSignature,
    manifest_digest: &str,
    keys: &[PublicKey],
) -> Result<Verified, String> {
    let payload: SimpleSigning = serde_json::from_slice(&sig.payload)
        .map_err(|e| format!("the signed payload is not cosign's simple-signing JSON ({e})"))?;
    if payload.critical.kind != COSIGN_SIGNATURE_TYPE {
        return Err(format!(
            "the signed payload has type `{}`, not `{COSIGN_SIGNATURE_TYPE}`",
            payload.critical.kind
        ));
    }
    let key = keys
        .iter()
        .find(|k| k.verify(&sig.payload, &sig.signature))
        .ok_or_else(|| {
            if keys.is_empty() {
                "no trusted key to check it with".to_owned()
            } else {
                "it does not verify with any trusted key".to_owned()
            }
        })?;
    if payload.critical.image.digest != manifest_digest {
        return Err(format!(
            "it is a valid signature for another image ({}), not for {manifest_digest}",
            payload.critical.image.digest
        ));
    }
    Ok(Verified {
        key: key.fingerprint(),
        form: "classic",
    })
}

/// A sigstore bundle, the fields wpkg reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    #[serde(default)]
    verification_material: Option<VerificationMaterial>,
    #[serde(default)]
    dsse_envelope: Option<Dsse>,
    #[serde(default)]
    message_signature: Option<MessageSignature>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerificationMaterial {
    #[serde(default)]
    certificate: Option<RawBytes>,
    #[serde(default)]
    x509_certificate_chain: Option<CertChain>,
    #[serde(default)]
    tlog_entries: serde_json::Value,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}
#[derive(Deserialize)]
struct CertChain {
    certificates: Vec<RawBytes>,
}
impl VerificationMaterial {
    /// The leaf certificate (v0.3 `certificate`, or the first of a v0.1/v0.2 chain).
    fn leaf(&self) -> Option<&str> {
        self.certificate
            .as_ref()
            .or_else(|| self.x509_certificate_chain.as_ref()?.certificates.first())
            .map(|c| c.raw_bytes.as_str())
    }
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Dsse {
    payload: String,
    payload_type: String,
    signatures: Vec<DsseSig>,
}
#[derive(Deserialize)]
struct DsseSig {
    sig: String,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignature {
    message_digest: MessageDigest,
    signature: String,
}
#[derive(Deserialize)]
struct MessageDigest {
    algorithm: String,
    digest: String,
}
#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
}
#[derive(Deserialize)]
struct Subject {
    digest: BTreeMap<String, String>,
}

fn b64_any(s: &str) -> Option<Vec<u8>> {
    B64.decode(s)
        .ok()
        .or_else(|| base64::engine::general_purpose::URL_SAFE.decode(s).ok())
        .or_else(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .ok()
        })
}

/// DSSE pre-authentication encoding.
pub fn dsse_pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Checks that an in-toto statement is a cosign image signature for `manifest_digest`.
fn check_statement(payload: &[u8], manifest_digest: &str) -> Result<(), String> {
    let want_hex = manifest_digest.trim_start_matches("sha256:");
    let st: Statement = serde_json::from_slice(payload)
        .map_err(|e| format!("the signed statement is not in-toto JSON ({e})"))?;
    if !st.kind.starts_with("https://in-toto.io/Statement/") {
        return Err(format!("the signed statement has type `{}`", st.kind));
    }
    if st.predicate_type != COSIGN_SIGN_PREDICATE {
        return Err(format!(
            "the signed statement is an attestation (`{}`), not an image signature",
            st.predicate_type
        ));
    }
    if !st
        .subject
        .iter()
        .any(|s| s.digest.get("sha256").map(String::as_str) == Some(want_hex))
    {
        return Err(format!(
            "it is a valid signature for another image, not for {manifest_digest}"
        ));
    }
    Ok(())
}

/// Checks a cosign v3 bundle against what a scope trusts: a bundle with a certificate
/// is keyless (identities under the trust root), one without is checked with the keys.
pub fn verify_bundle_trusted(
    bundle_json: &[u8],
    manifest_digest: &str,
    trusted: &Trusted<'_>,
) -> Result<Verified, String> {
    let b: Bundle = serde_json::from_slice(bundle_json)
        .map_err(|e| format!("the bundle is not sigstore bundle JSON ({e})"))?;
    if !b.media_type.starts_with(BUNDLE_MEDIA_PREFIX) {
        return Err(format!("unsupported bundle media type `{}`", b.media_type));
    }
    if b.verification_material
        .as_ref()
        .and_then(|v| v.leaf())
        .is_none()
    {
        return verify_bundle(bundle_json, manifest_digest, trusted.keys);
    }
    if trusted.identities.is_empty() {
        return Err(
            "it is a keyless signature (a certificate), and the scope trusts keys only".into(),
        );
    }
    let root = (trusted.root)()?;
    verify_keyless_bundle(bundle_json, manifest_digest, trusted.identities, &root)
}

/// Checks a keyless cosign v3 bundle (certificate, Rekor entry, DSSE statement) for
/// `manifest_digest` under `root`, for one of `identities`.
pub fn verify_keyless_bundle(
    bundle_json: &[u8],
    manifest_digest: &str,
    identities: &[crate::keyless::Identity],
    root: &crate::keyless::TrustedRoot,
) -> Result<Verified, String> {
    let b: Bundle = serde_json::from_slice(bundle_json)
        .map_err(|e| format!("the bundle is not sigstore bundle JSON ({e})"))?;
    let vm = b
        .verification_material
        .as_ref()
        .ok_or("the bundle has no verification material")?;
    let leaf = vm
        .leaf()
        .and_then(b64_any)
        .ok_or("the bundle has no base64 certificate")?;
    let env = b.dsse_envelope.as_ref().ok_or(
        "it is a keyless message signature; wpkg reads keyless image signatures as DSSE bundles (cosign v3)",
    )?;
    if env.payload_type != "application/vnd.in-toto+json" {
        return Err(format!(
            "unsupported DSSE payload type `{}`",
            env.payload_type
        ));
    }
    let payload = b64_any(&env.payload).ok_or("the DSSE payload is not base64")?;
    let [sig] = env.signatures.as_slice() else {
        return Err("a DSSE envelope must carry exactly one signature".into());
    };
    let sig = b64_any(&sig.sig).ok_or("the DSSE signature is not base64")?;
    let who = crate::keyless::verify_dsse_keyless(
        &crate::keyless::DsseKeyless {
            leaf_der: &leaf,
            payload: &payload,
            payload_type: &env.payload_type,
            signature: &sig,
            tlog_entries: &vm.tlog_entries,
        },
        root,
        identities,
    )?;
    check_statement(&payload, manifest_digest)?;
    Ok(Verified {
        key: who,
        form: "keyless",
    })
}

/// Checks a cosign v3 bundle (the JSON of a referrer's layer) for `manifest_digest`.
pub fn verify_bundle(
    bundle_json: &[u8],
    manifest_digest: &str,
    keys: &[PublicKey],
) -> Result<Verified, String> {
    let b: Bundle = serde_json::from_slice(bundle_json)
        .map_err(|e| format!("the bundle is not sigstore bundle JSON ({e})"))?;
    if !b.media_type.starts_with(BUNDLE_MEDIA_PREFIX) {
        return Err(format!("unsupported bundle media type `{}`", b.media_type));
    }
    let want_hex = manifest_digest.trim_start_matches("sha256:");
    if let Some(env) = b.dsse_envelope {
        if env.payload_type != "application/vnd.in-toto+json" {
            return Err(format!(
                "unsupported DSSE payload type `{}`",
                env.payload_type
            ));
        }
        let payload = b64_any(&env.payload).ok_or("the DSSE payload is not base64")?;
        let [sig] = env.signatures.as_slice() else {
            return Err("a DSSE envelope must carry exactly one signature".into());
        };
        let sig = b64_any(&sig.sig).ok_or("the DSSE signature is not base64")?;
        let pae = dsse_pae(&env.payload_type, &payload);
        let key = keys
            .iter()
            .find(|k| k.verify(&pae, &sig))
            .ok_or("it does not verify with any trusted key")?;
        check_statement(&payload, manifest_digest)?;
        return Ok(Verified {
            key: key.fingerprint(),
            form: "bundle",
        });
    }
    if let Some(ms) = b.message_signature {
        if ms.message_digest.algorithm != "SHA2_256" {
            return Err(format!(
                "unsupported digest algorithm `{}`",
                ms.message_digest.algorithm
            ));
        }
        let digest =
            b64_any(&ms.message_digest.digest).ok_or("the message digest is not base64")?;
        if hex::encode(&digest) != want_hex {
            return Err(format!(
                "it signs another digest (sha256:{}), not {manifest_digest}",
                hex::encode(&digest)
            ));
        }
        // A message signature over the manifest itself: ECDSA over SHA-256(manifest),
        // which is the digest we just compared.
        let sig = b64_any(&ms.signature).ok_or("the signature is not base64")?;
        let key = keys
            .iter()
            .find(|k| k.verify_prehashed(&digest, &sig))
            .ok_or("it does not verify with any trusted key")?;
        return Ok(Verified {
            key: key.fingerprint(),
            form: "bundle",
        });
    }
    Err("the bundle has neither a DSSE envelope nor a message signature".into())
}

impl PublicKey {
    /// Checks a signature over an already computed SHA-256 digest.
    pub fn verify_prehashed(&self, digest: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        if let Ok(sig) = DerSignature::from_bytes(signature) {
            let Ok(sig) = Signature::try_from(sig) else {
                return false;
            };
            return self.0.verify_prehash(digest, &sig).is_ok();
        }
        Signature::from_slice(signature)
            .is_ok_and(|sig| self.0.verify_prehash(digest, &sig).is_ok())
    }
}

/// Builds a cosign v3 style bundle (DSSE around an in-toto statement) for tests and for
/// `wpkg sign --bundle`. Returns the bundle JSON.
pub fn make_bundle(key: &PrivateKey, manifest_digest: &str) -> Vec<u8> {
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": manifest_digest.trim_start_matches("sha256:")}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    })
    .to_string();
    let payload_type = "application/vnd.in-toto+json";
    let sig = key.sign(&dsse_pae(payload_type, statement.as_bytes()));
    let hint = {
        let der = key
            .public()
            .0
            .to_public_key_der()
            .expect("a P-256 key encodes");
        B64.encode(Sha256::digest(der.as_bytes()))
    };
    serde_json::to_vec(&serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": hint}},
        "dsseEnvelope": {
            "payload": B64.encode(statement.as_bytes()),
            "payloadType": payload_type,
            "signatures": [{"sig": B64.encode(sig)}],
        },
    }))
    .expect("JSON serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trip_and_wrong_password() {
        let k = PrivateKey::generate();
        let pem = k.to_encrypted_pem(b"pw").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let back = PrivateKey::from_encrypted_pem(&pem, b"pw").unwrap();
        assert_eq!(back.public(), k.public());
        assert!(matches!(
            PrivateKey::from_encrypted_pem(&pem, b"nope"),
            Err(SignatureError::BadPassword)
        ));
        let pubpem = k.public().to_pem();
        assert!(pubpem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(PublicKey::from_pem(&pubpem).unwrap(), k.public());
        assert!(PublicKey::from_pem(&pem).is_err());
        assert!(PrivateKey::from_encrypted_pem(&pubpem, b"pw").is_err());
        assert!(format!("{k:?}").contains("***"));
        assert!(PublicKey::from_pem("-----BEGIN X-----END X-----").is_err());
    }

    #[test]
    fn a_key_made_by_cosign_opens_and_signs() {
        let pem = include_str!("../testdata/cosign_generated_encrypted_empty_private.key");
        let k = PrivateKey::from_encrypted_pem(pem, b"").unwrap();
        assert!(matches!(
            PrivateKey::from_encrypted_pem(pem, b"x"),
            Err(SignatureError::BadPassword)
        ));
        let sig = k.sign(b"payload");
        assert!(k.public().verify(b"payload", &sig));
        assert!(!k.public().verify(b"payload2", &sig));
    }

    #[test]
    fn payload_is_cosigns_bytes() {
        let p = simple_signing_payload("ghcr.io/acme/hello", &format!("sha256:{}", "a".repeat(64)));
        assert_eq!(
            String::from_utf8(p).unwrap(),
            format!("{{\"critical\":{{\"identity\":{{\"docker-reference\":\"ghcr.io/acme/hello\"}},\"image\":{{\"docker-manifest-digest\":\"sha256:{}\"}},\"type\":\"cosign container image signature\"}},\"optional\":null}}", "a".repeat(64))
        );
        assert_eq!(
            signature_tag(&format!("sha256:{}", "b".repeat(64))),
            format!("sha256-{}.sig", "b".repeat(64))
        );
        assert!(is_signature_tag(&format!("sha256-{}.sig", "b".repeat(64))));
        assert!(is_signature_tag(&format!("sha256-{}", "b".repeat(64))));
        assert!(!is_signature_tag("1.0"));
    }

    #[test]
    fn classic_and_bundle_verify_only_for_their_digest_and_key() {
        let k = PrivateKey::generate();
        let other = PrivateKey::generate();
        let d1 = format!("sha256:{}", "1".repeat(64));
        let d2 = format!("sha256:{}", "2".repeat(64));
        let payload = simple_signing_payload("r/x", &d1);
        let sig = ClassicSignature {
            signature: k.sign(&payload),
            payload,
            certificate: None,
            rekor_bundle: None,
        };
        assert!(verify_classic(&sig, &d1, &[k.public()]).is_ok());
        assert!(verify_classic(&sig, &d1, &[other.public()]).is_err());
        let e = verify_classic(&sig, &d2, &[k.public()]).unwrap_err();
        assert!(e.contains("another image"), "{e}");
        let mut tampered = sig.clone();
        tampered.signature[10] ^= 1;
        assert!(verify_classic(&tampered, &d1, &[k.public()]).is_err());

        let b = make_bundle(&k, &d1);
        assert!(verify_bundle(&b, &d1, &[k.public()]).is_ok());
        assert!(verify_bundle(&b, &d2, &[k.public()]).is_err());
        assert!(verify_bundle(&b, &d1, &[other.public()]).is_err());
    }

    #[test]
    fn sig_manifest_appends_and_dedupes() {
        let k = PrivateKey::generate();
        let p = simple_signing_payload("r/x", &format!("sha256:{}", "1".repeat(64)));
        let s = k.sign(&p);
        let (m1, blobs) = add_classic_signature(None, &p, &s);
        assert_eq!(blobs.len(), 2);
        let m1: ImageManifest = serde_json::from_slice(&m1).unwrap();
        assert_eq!(m1.layers.len(), 1);
        assert_eq!(m1.layers[0].media_type, SIMPLE_SIGNING);
        let (m2, _) = add_classic_signature(Some((&m1, vec![])), &p, &s);
        let m2: ImageManifest = serde_json::from_slice(&m2).unwrap();
        assert_eq!(m2.layers.len(), 1);
        let s2 = PrivateKey::generate().sign(&p);
        let (m3, _) = add_classic_signature(Some((&m2, vec![])), &p, &s2);
        let m3: ImageManifest = serde_json::from_slice(&m3).unwrap();
        assert_eq!(m3.layers.len(), 2);
    }
}
