//! Keys in cosign's format: ECDSA P-256, the private key as cosign writes it (a PEM
//! block `ENCRYPTED SIGSTORE PRIVATE KEY`, or the older `ENCRYPTED COSIGN PRIVATE KEY`,
//! whose body is JSON: scrypt key derivation, NaCl secretbox around a PKCS#8 DER key),
//! the public key as a `PUBLIC KEY` PEM (SubjectPublicKeyInfo).

use base64::Engine as _;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// PEM label of private keys cosign writes today.
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";

/// PEM label of private keys older cosign wrote.
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

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
pub struct PrivateKey(pub(crate) SigningKey);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(***)")
    }
}

/// A P-256 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(pub(crate) VerifyingKey);

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

/// A PEM block: base64 of `bytes` in 64-character lines between BEGIN/END `label`.
pub(crate) fn pem_encode(label: &str, bytes: &[u8]) -> String {
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

    /// Signs a SHA-256 digest (ECDSA over the prehash, DER), as a sigstore message
    /// signature over a file signs the file.
    pub fn sign_prehashed(&self, sha256: &[u8; 32]) -> Vec<u8> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let sig: p256::ecdsa::Signature = self
            .0
            .sign_prehash(sha256)
            .expect("a 32-byte prehash signs with P-256");
        sig.to_der().as_bytes().to_vec()
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
