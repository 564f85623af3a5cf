//! A Sigstore instance on loopback for tests, speaking the public-good APIs with real
//! cryptography:
//!
//! - an OIDC issuer shaped like GitHub Actions' (`GET /token?audience=` with the
//!   runner's bearer token → `{"value": JWT}`; ES256 tokens with GitHub's claims and
//!   issuer string, no e-mail);
//! - Fulcio v2 (`POST /api/v2/signingCert`, public key + proof of possession, or a CSR):
//!   P-384 root → intermediate → leaf with the workflow SAN URI, code-signing EKU, the
//!   Fulcio issuer extensions and an **embedded SCT** signed by a test CT log over the
//!   RFC 6962 precertificate;
//! - Rekor v1 (`POST /api/v1/log/entries`, kinds `dsse` and `hashedrekord` 0.0.1): an
//!   in-memory RFC 6962 Merkle tree, SETs, inclusion proofs and signed-note checkpoints.
//!
//! The verifying side of wpkg is not used here: the tree, the SCT and the signatures
//! are computed independently. Everything stops on drop and after 15 minutes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P384_SHA384,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// GitHub Actions' token issuer; the test tokens carry it, and the test Fulcio accepts
/// it only with the test issuer key.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// The workflow the default token is for.
pub const WORKFLOW_REF: &str = "acme/app/.github/workflows/release.yml@refs/tags/v1.0.0";
const OID_SCT: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2];

/// What a service does with requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Works.
    Ok,
    /// Answers 500.
    Down,
    /// Answers 200 with a body that is not JSON.
    Garbage,
    /// Rekor only: logs the request, but answers with a valid entry for another body.
    OtherBody,
}

/// Bad certificates a test may want (Fulcio never issues them).
#[derive(Clone, Debug, Default)]
pub struct LeafOptions {
    /// Issued by a CA the trust root does not list.
    pub other_ca: bool,
    /// Valid from two hours ago to one hour ago.
    pub expired: bool,
    /// Server-auth EKU instead of code signing.
    pub no_code_signing: bool,
    /// Basic constraints CA:true.
    pub is_ca: bool,
    /// An extension no one understands, marked critical.
    pub unknown_critical: bool,
    /// No embedded SCT.
    pub no_sct: bool,
    /// Another SAN URI than the default workflow identity.
    pub subject: Option<String>,
    /// Fulcio's v2 claim extensions (1.3.6.1.4.1.57264.1.N → value), as Fulcio copies
    /// them from a GitHub Actions token.
    pub claims: Vec<(u64, String)>,
}

/// The claim extensions Fulcio makes from a GitHub Actions token (its ci-provider
/// template for `token.actions.githubusercontent.com`).
pub fn github_claims(token: &Value) -> Vec<(u64, String)> {
    let s = |k: &str| token[k].as_str().unwrap_or("").to_owned();
    let gh = |k: &str| format!("https://github.com/{}", s(k));
    vec![
        (9, gh("job_workflow_ref")),
        (10, s("job_workflow_sha")),
        (11, s("runner_environment")),
        (12, gh("repository")),
        (13, s("sha")),
        (14, s("ref")),
        (16, gh("repository_owner")),
        (18, gh("workflow_ref")),
        (20, s("event_name")),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty() && v != "https://github.com/")
    .collect()
}

/// A leaf certificate and its key.
pub struct Leaf {
    /// The certificate, DER.
    pub der: Vec<u8>,
    key: p256::ecdsa::SigningKey,
}

impl Leaf {
    /// A DER ECDSA-SHA256 signature over `msg` with the leaf's key.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let s: p256::ecdsa::DerSignature = self.key.sign(msg);
        s.as_bytes().to_vec()
    }
    /// The certificate, PEM.
    pub fn pem(&self) -> String {
        pem("CERTIFICATE", &self.der)
    }
}

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: Vec<u8>,
}

struct Inner {
    oidc_key: p256::ecdsa::SigningKey,
    foreign_key: p256::ecdsa::SigningKey,
    root: Ca,
    intermediate: Ca,
    other: Ca,
    ct_key: p256::ecdsa::SigningKey,
    rekor_key: p256::ecdsa::SigningKey,
    leaves: Mutex<Vec<[u8; 32]>>,
    faults: Mutex<HashMap<&'static str, Fault>>,
    request_token: String,
    base: String,
    tsa: crate::tsa::Tsa,
    rekor2: crate::rekor2::Rekor2,
}

/// The three services on one loopback port, and the trust material for them.
pub struct TestSigstore {
    /// Base URL of the whole instance (`http://127.0.0.1:PORT`).
    pub base: String,
    /// `ACTIONS_ID_TOKEN_REQUEST_URL` for the GitHub-shaped token endpoint.
    pub oidc_url: String,
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    pub request_token: String,
    /// Fulcio's base URL.
    pub fulcio_url: String,
    /// Rekor's base URL.
    pub rekor_url: String,
    /// The issuer the tokens carry (GitHub's).
    pub issuer: String,
    /// The certificate identity a default token yields (the workflow SAN URI).
    pub identity: String,
    /// `trusted_root.json` for this instance.
    pub trusted_root: PathBuf,
    /// `trust_config.json` (sigstore ClientTrustConfig) for this instance.
    pub trust_config: PathBuf,
    /// The RFC 3161 timestamp authority's URL.
    pub tsa_url: String,
    /// The Rekor v2-shaped log's base URL.
    pub rekor2_url: String,
    /// A `trust_config.json` whose signing config lists the Rekor v2 log and the
    /// timestamp authority (what sigstore-python signs with for Rekor v2).
    pub trust_config_v2: PathBuf,
    inner: Arc<Inner>,
    stop: Arc<AtomicBool>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn pem(label: &str, der: &[u8]) -> String {
    let b = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for c in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(c).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_der(text: &str) -> Option<Vec<u8>> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start..];
    let body_start = rest.find('\n')? + 1;
    let end = rest.find("-----END ")?;
    let body: String = rest[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    B64.decode(body).ok()
}

fn spki_der(key: &p256::ecdsa::VerifyingKey) -> Vec<u8> {
    use p256::pkcs8::EncodePublicKey;
    key.to_public_key_der().unwrap().as_bytes().to_vec()
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn make_ca(name: &str, issuer: Option<&Ca>, path_len: Option<u8>) -> Ca {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
        .distinguished_name
        .push(DnType::OrganizationName, "wpkg-test");
    params.distinguished_name.push(DnType::CommonName, name);
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(365);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    let cert = match issuer {
        Some(i) => params
            .signed_by(&key, &rcgen::Issuer::from_params(&i.params, &i.key))
            .unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    Ca {
        der: cert.der().to_vec(),
        params,
        key,
    }
}

/// The first element (TBSCertificate) of a DER certificate.
fn tbs_of(cert: &[u8]) -> Vec<u8> {
    fn header(b: &[u8]) -> (usize, usize) {
        let l = b[1] as usize;
        if l < 0x80 {
            (2, l)
        } else {
            let n = l & 0x7f;
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | b[2 + i] as usize;
            }
            (2 + n, len)
        }
    }
    let (h, _) = header(cert);
    let inner = &cert[h..];
    let (h2, l2) = header(inner);
    inner[..h2 + l2].to_vec()
}

/// RFC 6962 Merkle tree hash of `leaves`.
pub(crate) fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => sha256(b""),
        1 => leaves[0],
        n => {
            let k = n.next_power_of_two() / 2;
            let mut b = vec![1u8];
            b.extend_from_slice(&mth(&leaves[..k]));
            b.extend_from_slice(&mth(&leaves[k..]));
            sha256(&b)
        }
    }
}

/// RFC 6962 audit path of leaf `m`.
pub(crate) fn path(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let n = leaves.len();
    if n <= 1 {
        return vec![];
    }
    let k = n.next_power_of_two() / 2;
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

impl Inner {
    fn fault(&self, service: &str) -> Fault {
        *self
            .faults
            .lock()
            .unwrap()
            .get(service)
            .unwrap_or(&Fault::Ok)
    }

    fn jwt(&self, key: &p256::ecdsa::SigningKey, overrides: &Value) -> String {
        let t = now();
        let mut claims = json!({
            "iss": GITHUB_ISSUER, "aud": "sigstore",
            "sub": "repo:acme/app:ref:refs/tags/v1.0.0",
            "iat": t, "nbf": t - 5, "exp": t + 300, "jti": format!("{t}-{}", rand_u64()),
            "repository": "acme/app", "repository_owner": "acme", "ref": "refs/tags/v1.0.0",
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "workflow_ref": WORKFLOW_REF, "job_workflow_ref": WORKFLOW_REF,
            "event_name": "push", "runner_environment": "github-hosted",
        });
        for (k, v) in overrides.as_object().into_iter().flatten() {
            claims[k] = v.clone();
        }
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": "test"});
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
        format!("{input}.{}", B64URL.encode(sig.to_bytes()))
    }

    /// Checks a token as Fulcio does: our issuer key, audience, times. Returns claims.
    fn check_token(&self, token: &str) -> Result<Value, String> {
        use p256::ecdsa::signature::Verifier;
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() != 3 {
            return Err("the token is not a JWT".into());
        }
        let sig = B64URL
            .decode(parts[2])
            .ok()
            .and_then(|b| p256::ecdsa::Signature::from_slice(&b).ok())
            .ok_or("the token's signature is malformed")?;
        self.oidc_key
            .verifying_key()
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .map_err(|_| "the token is not signed by a known issuer".to_owned())?;
        let claims: Value = B64URL
            .decode(parts[1])
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("the token's claims are not JSON")?;
        if claims["iss"] != GITHUB_ISSUER {
            return Err("unknown issuer".into());
        }
        if claims["aud"] != "sigstore" {
            return Err("wrong audience".into());
        }
        if claims["exp"].as_i64().unwrap_or(0) < now() {
            return Err("the token has expired".into());
        }
        Ok(claims)
    }

    /// A Fulcio leaf for `spki` (DER) naming `san` and `issuer`, per `opts`.
    fn leaf(&self, spki: &[u8], san: &str, issuer: &str, opts: &LeafOptions) -> Vec<u8> {
        let key = rcgen::SubjectPublicKeyInfo::from_der(spki).unwrap();
        let ca = if opts.other_ca {
            &self.other
        } else {
            &self.intermediate
        };
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.serial_number = Some(rand_u64().to_be_bytes().to_vec().into());
        params.subject_alt_names = vec![SanType::URI(san.try_into().unwrap())];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if opts.no_code_signing {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::CodeSigning
        }];
        params.use_authority_key_identifier_extension = true;
        if opts.is_ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let t = time::OffsetDateTime::now_utc();
        let (nb, na) = if opts.expired {
            (t - time::Duration::hours(2), t - time::Duration::hours(1))
        } else {
            (
                t - time::Duration::seconds(5),
                t + time::Duration::minutes(10),
            )
        };
        // Whole seconds, so both encodings below agree.
        params.not_before = nb.replace_nanosecond(0).unwrap();
        params.not_after = na.replace_nanosecond(0).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let mut exts = vec![
            CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 57264, 1, 1],
                issuer.as_bytes().to_vec(),
            ),
            CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 57264, 1, 8], {
                let mut v = vec![0x0c, issuer.len() as u8];
                v.extend_from_slice(issuer.as_bytes());
                v
            }),
        ];
        for (arc, value) in &opts.claims {
            let mut v = vec![0x0c];
            der_len(&mut v, value.len());
            v.extend_from_slice(value.as_bytes());
            exts.push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 57264, 1, *arc],
                v,
            ));
        }
        if opts.unknown_critical {
            let mut e =
                CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![0x05, 0]);
            e.set_criticality(true);
            exts.push(e);
        }
        params.custom_extensions = exts;
        let issuer_ca = rcgen::Issuer::from_params(&ca.params, &ca.key);
        let pre = params.signed_by(&key, &issuer_ca).unwrap();
        if opts.no_sct {
            return pre.der().to_vec();
        }
        // The SCT, over the precertificate: this very TBS without the SCT extension.
        let tbs = tbs_of(pre.der());
        let issuer_spki = rcgen::PublicKeyData::subject_public_key_info(&ca.key);
        let ts_ms = (now() as u64) * 1000;
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(&ts_ms.to_be_bytes());
        signed.extend_from_slice(&[0, 1]);
        signed.extend_from_slice(&sha256(&issuer_spki));
        signed.extend_from_slice(&(tbs.len() as u32).to_be_bytes()[1..]);
        signed.extend_from_slice(&tbs);
        signed.extend_from_slice(&[0, 0]);
        let sig: p256::ecdsa::DerSignature = self.ct_key.sign(&signed);
        let mut sct = vec![0u8];
        sct.extend_from_slice(&sha256(&spki_der(self.ct_key.verifying_key())));
        sct.extend_from_slice(&ts_ms.to_be_bytes());
        sct.extend_from_slice(&[0, 0, 4, 3]);
        sct.extend_from_slice(&(sig.as_bytes().len() as u16).to_be_bytes());
        sct.extend_from_slice(sig.as_bytes());
        let mut list = ((sct.len() + 2) as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&(sct.len() as u16).to_be_bytes());
        list.extend_from_slice(&sct);
        let mut octets = vec![0x04];
        der_len(&mut octets, list.len());
        octets.extend_from_slice(&list);
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(OID_SCT, octets));
        params.signed_by(&key, &issuer_ca).unwrap().der().to_vec()
    }

    fn log_id(&self) -> [u8; 32] {
        sha256(&spki_der(self.rekor_key.verifying_key()))
    }

    /// Appends `body` to the log; returns Rekor v1's answer for it.
    fn append(&self, body: &[u8]) -> Value {
        let mut b = vec![0u8];
        b.extend_from_slice(body);
        let leaf = sha256(&b);
        let mut leaves = self.leaves.lock().unwrap();
        leaves.push(leaf);
        let index = leaves.len() - 1;
        self.answer_for(body, index, &leaves)
    }

    fn answer_for(&self, body: &[u8], index: usize, leaves: &[[u8; 32]]) -> Value {
        let size = leaves.len();
        let root = mth(leaves);
        let proof: Vec<String> = path(index, leaves).iter().map(hex::encode).collect();
        let log_id = hex::encode(self.log_id());
        let body_b64 = B64.encode(body);
        let t = now();
        let canonical = format!(
            "{{\"body\":\"{body_b64}\",\"integratedTime\":{t},\"logID\":\"{log_id}\",\"logIndex\":{index}}}"
        );
        let set: p256::ecdsa::DerSignature = self.rekor_key.sign(canonical.as_bytes());
        let text = format!("rekor.test - 4242\n{size}\n{}\n", B64.encode(root));
        let sig: p256::ecdsa::DerSignature = self.rekor_key.sign(text.as_bytes());
        let mut hint_sig = self.log_id()[..4].to_vec();
        hint_sig.extend_from_slice(sig.as_bytes());
        let checkpoint = format!("{text}\n\u{2014} rekor.test {}\n", B64.encode(hint_sig));
        let uuid = hex::encode(sha256(body));
        json!({ uuid: {
            "body": body_b64, "integratedTime": t, "logID": log_id, "logIndex": index,
            "verification": {
                "signedEntryTimestamp": B64.encode(set.as_bytes()),
                "inclusionProof": {"checkpoint": checkpoint, "hashes": proof, "logIndex": index,
                                   "rootHash": hex::encode(root), "treeSize": size},
            },
        }})
    }

    fn dsse_body(payload: &[u8], envelope: &str, sig: &[u8], cert_pem: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "0.0.1", "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": hex::encode(sha256(envelope.as_bytes()))},
                "payloadHash": {"algorithm": "sha256", "value": hex::encode(sha256(payload))},
                "signatures": [{"signature": B64.encode(sig), "verifier": B64.encode(cert_pem)}],
            },
        }))
        .unwrap()
    }

    fn hashedrekord_body(hash_hex: &str, sig: &[u8], cert_pem: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hash_hex}},
                "signature": {"content": B64.encode(sig), "publicKey": {"content": B64.encode(cert_pem)}},
            },
        }))
        .unwrap()
    }
}

fn der_len(out: &mut Vec<u8>, n: usize) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom(&mut b);
    u64::from_be_bytes(b) >> 1
}

fn getrandom(buf: &mut [u8]) {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new().fill(buf).unwrap();
}

/// The verifying key of a certificate (DER).
fn cert_key(der: &[u8]) -> Option<p256::ecdsa::VerifyingKey> {
    let (_, c) = x509_parser::parse_x509_certificate(der).ok()?;
    p256::ecdsa::VerifyingKey::from_sec1_bytes(
        &c.tbs_certificate.subject_pki.subject_public_key.data,
    )
    .ok()
}

impl TestSigstore {
    /// Starts the services and writes `trusted_root.json` and `trust_config.json` in `dir`.
    pub fn start(dir: &Path) -> TestSigstore {
        use rand_core::OsRng;
        let root = make_ca("wpkg-test sigstore root", None, None);
        let intermediate = make_ca("wpkg-test sigstore intermediate", Some(&root), Some(0));
        let other_root = make_ca("someone else's root", None, None);
        let other = make_ca("someone else's intermediate", Some(&other_root), Some(0));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut rt = [0u8; 16];
        getrandom(&mut rt);
        let tsa_root = make_ca("wpkg-test tsa root", None, None);
        let tsa = crate::tsa::Tsa::new(&tsa_root.params, &tsa_root.key, &tsa_root.der);
        let inner = Arc::new(Inner {
            oidc_key: p256::ecdsa::SigningKey::random(&mut OsRng),
            foreign_key: p256::ecdsa::SigningKey::random(&mut OsRng),
            root,
            intermediate,
            other,
            ct_key: p256::ecdsa::SigningKey::random(&mut OsRng),
            rekor_key: p256::ecdsa::SigningKey::random(&mut OsRng),
            leaves: Mutex::new(Vec::new()),
            faults: Mutex::new(HashMap::new()),
            request_token: hex::encode(rt),
            base: base.clone(),
            tsa,
            rekor2: crate::rekor2::Rekor2::new(&format!("{base}/rekor2")),
        });
        // Unrelated entries first, so proofs are not trivial.
        for i in 0..5u8 {
            inner.append(format!("{{\"unrelated\":{i}}}").as_bytes());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (i2, s2) = (inner.clone(), stop.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            while !s2.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(900) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        serve(stream, &i2);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        let ts = TestSigstore {
            oidc_url: format!("{base}/token?api-version=2.0"),
            request_token: inner.request_token.clone(),
            fulcio_url: base.clone(),
            rekor_url: base.clone(),
            issuer: GITHUB_ISSUER.into(),
            identity: format!("https://github.com/{WORKFLOW_REF}"),
            trusted_root: dir.join("trusted_root.json"),
            trust_config: dir.join("trust_config.json"),
            tsa_url: format!("{base}/api/v1/timestamp"),
            rekor2_url: format!("{base}/rekor2"),
            trust_config_v2: dir.join("trust_config_v2.json"),
            base,
            inner,
            stop,
        };
        ts.write_trust(dir);
        ts
    }

    fn write_trust(&self, dir: &Path) {
        let i = &self.inner;
        let key = |k: &p256::ecdsa::SigningKey, url: &str| {
            let spki = spki_der(k.verifying_key());
            json!({
                "baseUrl": url, "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": B64.encode(&spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                              "validFor": {"start": "2020-01-01T00:00:00Z"}},
                "logId": {"keyId": B64.encode(sha256(&spki))},
            })
        };
        let root = json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [key(&i.rekor_key, &self.rekor_url), {
                "baseUrl": self.rekor2_url, "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": B64.encode(i.rekor2.spki()), "keyDetails": "PKIX_ED25519",
                              "validFor": {"start": "2020-01-01T00:00:00Z"}},
                "logId": {"keyId": B64.encode(i.rekor2.key_id())},
            }],
            "certificateAuthorities": [{
                "subject": {"organization": "wpkg-test", "commonName": "wpkg-test sigstore"},
                "uri": self.fulcio_url,
                "certChain": {"certificates": [{"rawBytes": B64.encode(&i.intermediate.der)},
                                               {"rawBytes": B64.encode(&i.root.der)}]},
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }],
            "ctlogs": [key(&i.ct_key, &format!("{}/ct", self.base))],
            "timestampAuthorities": [{
                "subject": {"organization": "wpkg-test", "commonName": "wpkg-test tsa"},
                "uri": format!("{}/api/v1/timestamp", self.base),
                "certChain": {"certificates": [{"rawBytes": B64.encode(&i.tsa.leaf_der)},
                                               {"rawBytes": B64.encode(&i.tsa.root_der)}]},
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }],
        });
        let service = |url: &str| {
            json!({"url": url, "majorApiVersion": 1,
            "validFor": {"start": "2020-01-01T00:00:00Z"}, "operator": "wpkg-test"})
        };
        let config = json!({
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": root,
            "signingConfig": {
                "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                "caUrls": [service(&self.fulcio_url)],
                "oidcUrls": [service(&self.base)],
                "rekorTlogUrls": [service(&self.rekor_url)],
                "tsaUrls": [],
                "rekorTlogConfig": {"selector": "ANY"},
                "tsaConfig": {"selector": "ANY"},
            },
        });
        let mut config_v2 = config.clone();
        config_v2["signingConfig"]["rekorTlogUrls"] = json!([{"url": self.rekor2_url,
            "majorApiVersion": 2, "validFor": {"start": "2020-01-01T00:00:00Z"}, "operator": "wpkg-test"}]);
        config_v2["signingConfig"]["tsaUrls"] = json!([service(&self.tsa_url)]);
        std::fs::write(dir.join("trust_config_v2.json"), config_v2.to_string()).unwrap();
        std::fs::write(dir.join("trusted_root.json"), root.to_string()).unwrap();
        std::fs::write(dir.join("trust_config.json"), config.to_string()).unwrap();
    }

    /// A token signed by the test issuer key, with GitHub's claims and `overrides`.
    pub fn mint_token(&self, overrides: Value) -> String {
        self.inner.jwt(&self.inner.oidc_key, &overrides)
    }

    /// A token of the same shape signed by a key Fulcio does not know.
    pub fn mint_foreign_token(&self, overrides: Value) -> String {
        self.inner.jwt(&self.inner.foreign_key, &overrides)
    }

    /// Makes `service` (`fulcio`, `rekor` or `oidc`) misbehave, or behave again.
    pub fn set_fault(&self, service: &'static str, fault: Fault) {
        self.inner.faults.lock().unwrap().insert(service, fault);
    }

    /// A leaf for the default workflow identity with a fresh key, per `opts`.
    pub fn issue_leaf(&self, opts: &LeafOptions) -> Leaf {
        let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
        let der = self.inner.leaf(
            &spki_der(key.verifying_key()),
            opts.subject.as_deref().unwrap_or(&self.identity),
            GITHUB_ISSUER,
            opts,
        );
        Leaf { der, key }
    }

    /// Logs a `dsse` entry for (payload, signature, certificate) without checking the
    /// signature (as a compromised client could not, but tests of the verifier need);
    /// returns Rekor v1's answer.
    pub fn log_dsse(&self, payload: &[u8], sig: &[u8], leaf_der: &[u8]) -> Value {
        let envelope =
            json!({"payload": B64.encode(payload), "payloadType": "application/vnd.in-toto+json",
                              "signatures": [{"keyid": "", "sig": B64.encode(sig)}]})
            .to_string();
        self.inner.append(&Inner::dsse_body(
            payload,
            &envelope,
            sig,
            &pem("CERTIFICATE", leaf_der),
        ))
    }

    /// Logs a `hashedrekord` entry for a signature over `payload`; returns the Rekor
    /// bundle a classic cosign signature carries (`dev.sigstore.cosign/bundle`).
    pub fn log_hashedrekord(&self, payload: &[u8], sig: &[u8], leaf_der: &[u8]) -> String {
        let body = Inner::hashedrekord_body(
            &hex::encode(sha256(payload)),
            sig,
            &pem("CERTIFICATE", leaf_der),
        );
        let answer = self.inner.append(&body);
        let (_, e) = answer.as_object().unwrap().iter().next().unwrap();
        json!({
            "SignedEntryTimestamp": e["verification"]["signedEntryTimestamp"],
            "Payload": {"body": e["body"], "integratedTime": e["integratedTime"],
                        "logIndex": e["logIndex"], "logID": e["logID"]},
        })
        .to_string()
    }

    /// The CA chain (intermediate, root) as PEM.
    pub fn chain_pem(&self) -> String {
        format!(
            "{}{}",
            pem("CERTIFICATE", &self.inner.intermediate.der),
            pem("CERTIFICATE", &self.inner.root.der)
        )
    }

    /// Shell `export` lines for a runner-like environment (see `tests/sigstore/main.rs`).
    pub fn env_lines(&self) -> String {
        let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        [
            ("ACTIONS_ID_TOKEN_REQUEST_URL", self.oidc_url.clone()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", self.request_token.clone()),
            ("WPKG_FULCIO_URL", self.fulcio_url.clone()),
            ("WPKG_REKOR_URL", self.rekor_url.clone()),
            ("WPKG_TRUSTED_ROOT", self.trusted_root.display().to_string()),
            ("TEST_SIGSTORE_ISSUER", self.issuer.clone()),
            ("TEST_SIGSTORE_IDENTITY", self.identity.clone()),
            (
                "TEST_SIGSTORE_TRUST_CONFIG",
                self.trust_config.display().to_string(),
            ),
            (
                "TEST_SIGSTORE_ROOT",
                self.trusted_root.display().to_string(),
            ),
            ("TEST_SIGSTORE_FULCIO", self.fulcio_url.clone()),
            ("TEST_SIGSTORE_REKOR", self.rekor_url.clone()),
        ]
        .iter()
        .map(|(k, v)| format!("export {k}={}\n", q(v)))
        .collect()
    }
}

impl Drop for TestSigstore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn respond(mut s: TcpStream, status: &str, body: &str) {
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.flush();
}

fn respond_bytes(mut s: TcpStream, content_type: &str, body: &[u8]) {
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(body);
    let _ = s.flush();
}

fn error(s: TcpStream, status: &str, msg: &str) {
    respond(
        s,
        status,
        &json!({"code": status[..3].parse::<u16>().unwrap_or(400), "message": msg}).to_string(),
    );
}

fn serve(stream: TcpStream, i: &Inner) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let mut auth = String::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "authorization" => auth = v.trim().to_owned(),
                "content-length" => len = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; len.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let service = match path {
        "/token" | "/.well-known/openid-configuration" | "/jwks" => "oidc",
        p if p.starts_with("/api/v2/") => "fulcio",
        "/api/v1/timestamp" => "tsa",
        _ => "rekor",
    };
    match i.fault(service) {
        Fault::Down => return error(stream, "500 Internal Server Error", "down for the test"),
        Fault::Garbage => return respond(stream, "200 OK", "<html>garbage</html>"),
        _ => {}
    }
    match (method.as_str(), path) {
        ("GET", "/token") => {
            let bearer = auth
                .strip_prefix("bearer ")
                .or_else(|| auth.strip_prefix("Bearer "))
                .unwrap_or("");
            if bearer != i.request_token {
                return error(stream, "401 Unauthorized", "bad request token");
            }
            let aud = query
                .split('&')
                .find_map(|p| p.strip_prefix("audience="))
                .unwrap_or("sigstore");
            let token = i.jwt(&i.oidc_key, &json!({"aud": aud}));
            respond(stream, "200 OK", &json!({"count": 1, "value": token}).to_string())
        }
        ("GET", "/.well-known/openid-configuration") => respond(
            stream,
            "200 OK",
            &json!({"issuer": GITHUB_ISSUER, "jwks_uri": format!("{}/jwks", i.base),
                    "id_token_signing_alg_values_supported": ["ES256"]})
            .to_string(),
        ),
        ("GET", "/jwks") => {
            let p = i.oidc_key.verifying_key().to_encoded_point(false);
            respond(
                stream,
                "200 OK",
                &json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "test", "alg": "ES256", "use": "sig",
                    "x": B64URL.encode(p.x().unwrap()), "y": B64URL.encode(p.y().unwrap())}]})
                .to_string(),
            )
        }
        ("POST", "/api/v2/signingCert") => fulcio(stream, i, &body, &auth),
        ("GET", "/api/v2/trustBundle") => respond(
            stream,
            "200 OK",
            &json!({"chains": [{"certificates": [pem("CERTIFICATE", &i.intermediate.der), pem("CERTIFICATE", &i.root.der)]}]}).to_string(),
        ),
        ("POST", "/api/v1/log/entries") => rekor(stream, i, &body),
        ("POST", "/rekor2/api/v2/log/entries") => match i.rekor2.create(&body) {
            Ok(entry) => respond(stream, "201 Created", &entry.to_string()),
            Err(e) => error(stream, "400 Bad Request", e),
        },
        ("POST", "/api/v1/timestamp") => match i.tsa.respond(&body) {
            Ok(der) => respond_bytes(stream, "application/timestamp-reply", &der),
            Err(e) => error(stream, "400 Bad Request", e),
        },
        ("GET", "/api/v1/log/publicKey") => respond(
            stream,
            "200 OK",
            &pem("PUBLIC KEY", &spki_der(i.rekor_key.verifying_key())),
        ),
        ("GET", "/api/v1/log") => {
            let leaves = i.leaves.lock().unwrap();
            respond(
                stream,
                "200 OK",
                &json!({"rootHash": hex::encode(mth(&leaves)), "treeSize": leaves.len(), "treeID": "4242"}).to_string(),
            )
        }
        _ => error(stream, "404 Not Found", "no such endpoint"),
    }
}

fn fulcio(stream: TcpStream, i: &Inner, body: &[u8], auth: &str) {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error(stream, "400 Bad Request", "the request is not JSON");
    };
    // The token in the body (v2 JSON) or as a bearer token (as sigstore-python sends it).
    let token = req["credentials"]["oidcIdentityToken"]
        .as_str()
        .or_else(|| {
            auth.strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
        })
        .unwrap_or("");
    let claims = match i.check_token(token) {
        Ok(c) => c,
        Err(e) => return error(stream, "401 Unauthorized", &e),
    };
    let subject = claims["email"]
        .as_str()
        .or(claims["sub"].as_str())
        .unwrap_or("");
    let spki = if let Some(csr) = req["certificateSigningRequest"].as_str() {
        let pem_text = B64
            .decode(csr)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_else(|| csr.to_owned());
        // rcgen checks the CSR's self-signature (the proof of possession); the key is
        // taken from the CSR's own SubjectPublicKeyInfo bytes.
        let spki = pem_der(&pem_text).and_then(|der| {
            use x509_parser::prelude::FromDer;
            let (_, csr) =
                x509_parser::certification_request::X509CertificationRequest::from_der(&der)
                    .ok()?;
            Some(csr.certification_request_info.subject_pki.raw.to_vec())
        });
        match (
            rcgen::CertificateSigningRequestParams::from_pem(&pem_text),
            spki,
        ) {
            (Ok(_), Some(spki)) => spki,
            _ => return error(stream, "400 Bad Request", "the CSR does not verify"),
        }
    } else {
        use p256::ecdsa::signature::Verifier;
        let pk = req["publicKeyRequest"]["publicKey"]["content"]
            .as_str()
            .and_then(pem_der);
        let key = pk.as_deref().and_then(|d| {
            use p256::pkcs8::DecodePublicKey;
            p256::ecdsa::VerifyingKey::from_public_key_der(d).ok()
        });
        let pop = req["publicKeyRequest"]["proofOfPossession"]
            .as_str()
            .and_then(|s| B64.decode(s).ok())
            .and_then(|b| p256::ecdsa::DerSignature::from_bytes(&b).ok());
        match (key, pop) {
            (Some(k), Some(sig)) if k.verify(subject.as_bytes(), &sig).is_ok() => spki_der(&k),
            _ => {
                return error(
                    stream,
                    "400 Bad Request",
                    "the proof of possession does not verify",
                )
            }
        }
    };
    let san = match claims["job_workflow_ref"].as_str() {
        Some(w) => format!("https://github.com/{w}"),
        None => subject.to_owned(),
    };
    let opts = LeafOptions {
        claims: github_claims(&claims),
        ..Default::default()
    };
    let leaf = i.leaf(&spki, &san, GITHUB_ISSUER, &opts);
    respond(
        stream,
        "201 Created",
        &json!({"signedCertificateEmbeddedSct": {"chain": {"certificates": [
            pem("CERTIFICATE", &leaf), pem("CERTIFICATE", &i.intermediate.der), pem("CERTIFICATE", &i.root.der)]}}})
        .to_string(),
    )
}

fn rekor(stream: TcpStream, i: &Inner, body: &[u8]) {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::ecdsa::signature::Verifier;
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error(stream, "400 Bad Request", "the request is not JSON");
    };
    let spec = &req["spec"];
    let entry = match (req["kind"].as_str(), req["apiVersion"].as_str()) {
        (Some("dsse"), Some("0.0.1")) => {
            let envelope = spec["proposedContent"]["envelope"].as_str().unwrap_or("");
            let cert_pem = spec["proposedContent"]["verifiers"][0]
                .as_str()
                .and_then(|v| B64.decode(v).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let Ok(env) = serde_json::from_str::<Value>(envelope) else {
                return error(stream, "400 Bad Request", "the envelope is not JSON");
            };
            let payload = env["payload"].as_str().and_then(|p| B64.decode(p).ok());
            let sig = env["signatures"][0]["sig"]
                .as_str()
                .and_then(|s| B64.decode(s).ok());
            let ptype = env["payloadType"].as_str().unwrap_or("");
            let key = pem_der(&cert_pem).and_then(|d| cert_key(&d));
            let (Some(payload), Some(sig), Some(key)) = (payload, sig, key) else {
                return error(stream, "400 Bad Request", "the dsse entry is incomplete");
            };
            let mut pae =
                format!("DSSEv1 {} {} {} ", ptype.len(), ptype, payload.len()).into_bytes();
            pae.extend_from_slice(&payload);
            let ok = p256::ecdsa::DerSignature::from_bytes(&sig)
                .is_ok_and(|s| key.verify(&pae, &s).is_ok());
            if !ok {
                return error(
                    stream,
                    "400 Bad Request",
                    "the envelope signature does not verify",
                );
            }
            Inner::dsse_body(&payload, envelope, &sig, &cert_pem)
        }
        (Some("hashedrekord"), Some("0.0.1")) => {
            let hash = spec["data"]["hash"]["value"].as_str().unwrap_or("");
            let sig = spec["signature"]["content"]
                .as_str()
                .and_then(|s| B64.decode(s).ok());
            let cert_pem = spec["signature"]["publicKey"]["content"]
                .as_str()
                .and_then(|v| B64.decode(v).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let key = pem_der(&cert_pem).and_then(|d| cert_key(&d));
            let (Some(sig), Some(key), Ok(digest)) = (sig, key, hex::decode(hash)) else {
                return error(
                    stream,
                    "400 Bad Request",
                    "the hashedrekord entry is incomplete",
                );
            };
            let ok = p256::ecdsa::DerSignature::from_bytes(&sig)
                .ok()
                .and_then(|s| p256::ecdsa::Signature::try_from(s).ok())
                .is_some_and(|s| key.verify_prehash(&digest, &s).is_ok());
            if !ok {
                return error(stream, "400 Bad Request", "the signature does not verify");
            }
            Inner::hashedrekord_body(hash, &sig, &cert_pem)
        }
        _ => return error(stream, "400 Bad Request", "unsupported entry kind"),
    };
    let answer = if i.fault("rekor") == Fault::OtherBody {
        // Logged, but the answer is a (valid) entry for something else.
        i.append(&entry);
        i.append(br#"{"apiVersion":"0.0.1","kind":"dsse","spec":{"payloadHash":{"algorithm":"sha256","value":"00"},"signatures":[]}}"#)
    } else {
        i.append(&entry)
    };
    respond(stream, "201 Created", &answer.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sct_signs_exactly_the_leaf_without_its_sct_extension() {
        let dir = tempfile::tempdir().unwrap();
        let ts = TestSigstore::start(dir.path());
        let leaf = ts.issue_leaf(&LeafOptions::default());
        let (_, c) = x509_parser::parse_x509_certificate(&leaf.der).unwrap();
        assert!(c
            .tbs_certificate
            .extensions()
            .iter()
            .any(|e| e.oid.to_id_string() == "1.3.6.1.4.1.11129.2.4.2"));
        let bare = ts.issue_leaf(&LeafOptions {
            no_sct: true,
            ..Default::default()
        });
        let (_, b) = x509_parser::parse_x509_certificate(&bare.der).unwrap();
        assert!(!b
            .tbs_certificate
            .extensions()
            .iter()
            .any(|e| e.oid.to_id_string() == "1.3.6.1.4.1.11129.2.4.2"));
    }

    #[test]
    fn tree_root_changes_with_every_entry_and_paths_have_the_right_length() {
        let leaves: Vec<[u8; 32]> = (0..9u8).map(|i| sha256(&[i])).collect();
        assert_eq!(path(0, &leaves).len(), 4);
        assert_eq!(path(8, &leaves).len(), 1);
        assert_ne!(mth(&leaves[..8]), mth(&leaves));
    }
}
