//! A Rekor v2-shaped log for the loopback Sigstore instance (rekor-tiles' write API):
//! `POST {base}/api/v2/log/entries` with a `hashedRekordRequestV002`, the request's
//! signature checked with its certificate, the `hashedrekord` 0.0.2 body appended to an
//! RFC 6962 tree, and the answer a `TransparencyLogEntry` (no integrated time, no SET)
//! with an inclusion proof and a checkpoint signed by the log's Ed25519 key as a C2SP
//! signed note whose origin is the log's host.

use std::sync::Mutex;

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The log.
pub struct Rekor2 {
    key: Ed25519KeyPair,
    /// The log's origin: its base URL without the scheme.
    pub origin: String,
    leaves: Mutex<Vec<[u8; 32]>>,
}

fn leaf_hash(b: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(b);
    h.finalize().into()
}

impl Rekor2 {
    /// A log at `base_url` (`http://127.0.0.1:PORT/rekor2`).
    pub fn new(base_url: &str) -> Rekor2 {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        Rekor2 {
            key: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap(),
            origin: base_url.split_once("://").unwrap().1.to_owned(),
            leaves: Mutex::new(Vec::new()),
        }
    }

    /// The key's SubjectPublicKeyInfo, DER.
    pub fn spki(&self) -> Vec<u8> {
        let mut v = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        v.extend_from_slice(self.key.public_key().as_ref());
        v
    }

    /// The C2SP key id: SHA-256(origin, "\n", 0x01, key); the log id is all of it, the
    /// checkpoint key hint its first four bytes.
    pub fn key_id(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.origin.as_bytes());
        h.update(b"\n\x01");
        h.update(self.key.public_key().as_ref());
        h.finalize().into()
    }

    /// Handles a create-entry request; `Err` is the 400 message.
    pub fn create(&self, body: &[u8]) -> Result<Value, &'static str> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let req: Value = serde_json::from_slice(body).map_err(|_| "the request is not JSON")?;
        let r = &req["hashedRekordRequestV002"];
        let b64 = |v: &Value| v.as_str().and_then(|s| B64.decode(s).ok());
        let digest = b64(&r["digest"]).ok_or("no digest")?;
        let sig = b64(&r["signature"]["content"]).ok_or("no signature")?;
        let cert = b64(&r["signature"]["verifier"]["x509Certificate"]["rawBytes"])
            .ok_or("no certificate")?;
        let key = {
            use x509_parser::prelude::FromDer;
            let (_, c) = x509_parser::certificate::X509Certificate::from_der(&cert)
                .map_err(|_| "the certificate does not parse")?;
            let spki = c.tbs_certificate.subject_pki.raw.to_vec();
            use p256::pkcs8::DecodePublicKey;
            p256::ecdsa::VerifyingKey::from_public_key_der(&spki)
                .map_err(|_| "the certificate's key is not P-256")?
        };
        let ok = p256::ecdsa::Signature::from_der(&sig)
            .is_ok_and(|s| key.verify_prehash(&digest, &s).is_ok());
        if !ok {
            return Err("the signature does not verify");
        }
        let entry = json!({
            "apiVersion": "0.0.2", "kind": "hashedrekord",
            "spec": {"hashedRekordV002": {
                "data": {"algorithm": "SHA2_256", "digest": B64.encode(&digest)},
                "signature": {"content": B64.encode(&sig), "verifier": {
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "x509Certificate": {"rawBytes": B64.encode(&cert)}}}}},
        });
        // serde_json's map is sorted: this is the canonical body.
        let body = serde_json::to_vec(&entry).unwrap();
        let mut leaves = self.leaves.lock().unwrap();
        leaves.push(leaf_hash(&body));
        let index = leaves.len() - 1;
        let root = crate::sigstore_services::mth(&leaves);
        let proof: Vec<String> = crate::sigstore_services::path(index, &leaves)
            .iter()
            .map(|h| B64.encode(h))
            .collect();
        let text = format!("{}\n{}\n{}\n", self.origin, leaves.len(), B64.encode(root));
        let mut line = self.key_id()[..4].to_vec();
        line.extend_from_slice(self.key.sign(text.as_bytes()).as_ref());
        let note = format!("{text}\n\u{2014} {} {}\n", self.origin, B64.encode(line));
        Ok(json!({
            "logIndex": index.to_string(),
            "logId": {"keyId": B64.encode(self.key_id())},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.2"},
            "inclusionProof": {
                "logIndex": index.to_string(),
                "rootHash": B64.encode(root),
                "treeSize": leaves.len().to_string(),
                "hashes": proof,
                "checkpoint": {"envelope": note},
            },
            "canonicalizedBody": B64.encode(&body),
        }))
    }
}
