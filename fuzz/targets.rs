//! wpkg's fuzz targets: one function per parser that reads what a user, a registry or
//! another tool hands wpkg, each taking the raw input bytes.
//!
//! The same file is the `wpkg-fuzz` library that cargo-fuzz links into one binary per
//! target (`fuzz_targets/NAME.rs`), and a module of the stable test binary
//! (`tests/all/fuzz_replay.rs` includes it by path) that replays the seed corpus and
//! every saved crash. So it uses only the wpkg crates, `tempfile`, `serde_json`,
//! `base64`, `http`, `p256` and std: nothing of libFuzzer.
//!
//! A target never panics because of its input: every parser's error is ignored, and a
//! panic is a finding. Where a cheap property holds it is asserted (a reference reads
//! back from its display; a payload wpkg writes verifies; what `wpkg build` embeds
//! the shim reads back unchanged), so a violation is a finding too. Failures of the
//! machine itself (no temporary directory, no loopback port) panic with a message
//! that says so.
//!
//! Registry answers are fuzzed through the real client: a fake registry on loopback,
//! in this process, serves the input as the answer the client asked for.
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use wpkg_distribution::transfer::{fetch_signatures, pull, Progress, Quiet};
use wpkg_runner::{CacheStatus, CodeCache, Runner};
use wpkg_signing::keyless::{Identity, TrustedRoot};
use wpkg_signing::transparency::{
    leaf_hash, p256_note_signer, verify_checkpoint, verify_inclusion, ProofError,
};
use wpkg_signing::trust::{normalize_scope, Policy};
use wpkg_signing::{verify_material, PrivateKey, PublicKey, Trusted};
use wpkg_spec::image::EmbeddedCapabilities;
use wpkg_spec::outbound::{Host, HostPattern, OutboundPattern, PortPattern, Scheme};
use wpkg_spec::{Digest, Manifest, Reference};
use wpkg_store::associated::{ClassicSignature, Material, BUNDLE_V03};
use wpkg_store::{sha256_digest, Store};

/// A fuzz target: takes the raw input.
pub type Target = fn(&[u8]);

/// Every target by name: the names of the fuzz binaries and of their corpus
/// directories (`fuzz/corpus/NAME`, `fuzz/regressions/NAME`).
pub const TARGETS: &[(&str, Target)] = &[
    ("manifest", manifest),
    ("reference", reference),
    ("outbound", outbound),
    ("hosts", hosts),
    ("embedded_capabilities", embedded_capabilities),
    ("archive", archive),
    ("registry_manifest", registry_manifest),
    ("registry_signatures", registry_signatures),
    ("registry_token", registry_token),
    ("registry_error", registry_error),
    ("challenge", challenge),
    ("simple_signing", simple_signing),
    ("bundle", bundle),
    ("dsse", dsse),
    ("trusted_root", trusted_root),
    ("public_key", public_key),
    ("private_key", private_key),
    ("certificate", certificate),
    ("transparency", transparency),
    ("identity_token", identity_token),
    ("trust_policy", trust_policy),
    ("code_cache", code_cache),
    ("extract", extract),
];

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The image the signature targets check signatures for.
const IMAGE_DIGEST: &str =
    "sha256:3f0c5c2c1a1dd3d3bd4fc2d9bb3b8e2f67cdb58a5d5c2b4b1d06f2f7f5e4b2a1";

/// The smallest core module, and its digest: what the compiled-code cache caches.
const EMPTY_MODULE: &[u8] = b"\0asm\x01\0\0\0";
const EMPTY_MODULE_DIGEST: &str =
    "sha256:93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476";

/// The header of a compiled-code cache entry (`runner/src/cache.rs`).
const CACHE_MAGIC: &[u8] = b"WPKGCODE3";

/// When keyless signatures are checked (November 2023: inside the shipped root's
/// Fulcio and Rekor validity).
const SIGNING_TIME: i64 = 1_700_000_000;

/// Separates the parts of a multi-part input (a manifest and the blobs it names).
/// UTF-8 text never holds 0xFF, so a JSON document is always one part.
const PART: u8 = 0xFF;

// ---------------------------------------------------------------------------------
// The capability manifest and its values (spec)

/// `wpkg.toml`: [`Manifest::parse`]. A manifest that parses gives artifact capabilities
/// that validate, and what `wpkg build` embeds from them
/// ([`EmbeddedCapabilities::to_bytes`]) reads back unchanged.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = Manifest::parse(text) else {
        return;
    };
    let caps = m.to_artifact_capabilities();
    if let Err(e) = caps.validate() {
        panic!("a valid manifest gives invalid artifact capabilities: {e}");
    }
    let _ = caps.describe();
    let embedded = EmbeddedCapabilities {
        wasm: wpkg_spec::image::IMAGE_WASM.to_owned(),
        wasm_digest: EMPTY_MODULE_DIGEST.to_owned(),
        capabilities: caps,
    };
    assert_eq!(
        EmbeddedCapabilities::parse(&embedded.to_bytes()),
        Ok(embedded),
        "the capabilities `wpkg build` embeds do not read back the same"
    );
}

/// `/.wpkg/capabilities.json` in an image: [`EmbeddedCapabilities::parse`]. What
/// parses, written again, parses to the same value.
pub fn embedded_capabilities(data: &[u8]) {
    let Ok(e) = EmbeddedCapabilities::parse(data) else {
        return;
    };
    let _ = e.capabilities.describe();
    assert_eq!(
        EmbeddedCapabilities::parse(&e.to_bytes()),
        Ok(e),
        "embedded capabilities do not read back the same"
    );
}

/// References and digests: `Reference::from_str`, [`Digest::parse`],
/// [`wpkg_spec::reference::canonical_registry`]. A reference reads back from its
/// display and from its familiar (Docker-style short) form as the same reference; a
/// digest reads back from its display and its hex.
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = wpkg_spec::reference::canonical_registry(text);
    if let Ok(d) = Digest::parse(text) {
        assert_eq!(d.to_string(), text);
        assert_eq!(Digest::from_hex(d.hex()).as_ref(), Ok(&d));
        assert_eq!(d.tag(), format!("sha256-{}", d.hex()));
        assert_eq!(d.short().len(), 12);
    }
    let Ok(r) = text.parse::<Reference>() else {
        return;
    };
    assert_eq!(
        wpkg_spec::reference::canonical_registry(&r.registry),
        r.registry,
        "`{text}`: the registry is not canonical"
    );
    let shown = r.to_string();
    assert_eq!(
        shown.parse::<Reference>().as_ref(),
        Ok(&r),
        "`{text}` displays as `{shown}`, which reads back as another reference"
    );
    let familiar = r.familiar();
    assert_eq!(
        familiar.parse::<Reference>().as_ref(),
        Ok(&r),
        "`{text}` is shown as `{familiar}`, which reads back as another reference"
    );
    let retagged = r.with_tag("fuzz");
    assert_eq!(
        retagged.to_string().parse::<Reference>().as_ref(),
        Ok(&retagged)
    );
}

/// One `outbound_http` entry: `OutboundPattern::from_str` (also what the manifest's
/// deserializer calls). An entry displays as written, allows the destination it
/// names (its host, a name under its wildcard, its network address) on its port, and
/// never on the other scheme.
pub fn outbound(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = text.parse::<OutboundPattern>() else {
        return;
    };
    assert_eq!(p.to_string(), text);
    let port = match p.port {
        PortPattern::Port(n) => n,
        PortPattern::Any => 1,
    };
    let below;
    let named = match &p.host {
        HostPattern::Name(n) => Host::Name(n),
        HostPattern::Subdomains(suffix) => {
            below = format!("sub.{suffix}");
            Host::Name(&below)
        }
        HostPattern::Ip { addr, .. } => Host::Ip(*addr),
    };
    assert!(
        p.matches(p.scheme, &named, port),
        "`{text}` does not allow {named:?} port {port}, which it names"
    );
    let other = match p.scheme {
        Scheme::Http => Scheme::Https,
        Scheme::Https => Scheme::Http,
    };
    assert!(
        !p.matches(other, &named, port),
        "`{text}` allows another scheme"
    );
}

/// The operator's hosts file (`wpkg run --hosts-file`):
/// [`wpkg_runner::caps::outbound::parse_hosts`]. Names come out normalized, as the
/// policy looks them up.
pub fn hosts(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(map) = wpkg_runner::caps::outbound::parse_hosts(text) else {
        return;
    };
    for name in map.keys() {
        assert_eq!(
            wpkg_spec::outbound::normalize_host(name),
            *name,
            "a hosts-file name is not normalized"
        );
    }
}

// ---------------------------------------------------------------------------------
// The local store

/// `wpkg load`: [`wpkg_store::archive::load`] into an empty store, naming bare tags
/// `localhost/fuzz`. A loaded archive's images resolve to what `load` reports (the
/// last image of a name wins); a refused one leaves no tag.
pub fn archive(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory for the store");
    let store = Store::open(dir.path().join("store")).expect("an empty store opens");
    match wpkg_store::archive::load(&store, data, Some("localhost/fuzz")) {
        Ok(loaded) => {
            let mut last: BTreeMap<String, (Reference, String)> = BTreeMap::new();
            for (r, digest) in &loaded.images {
                // As the store records it: a tag, or else the digest.
                let recorded = match &r.tag {
                    Some(_) => Reference {
                        digest: None,
                        ..r.clone()
                    },
                    None => Reference {
                        digest: Some(digest.clone()),
                        ..r.clone()
                    },
                };
                last.insert(recorded.to_string(), (recorded, digest.clone()));
            }
            for (name, (r, digest)) in last {
                match store.resolve(&r) {
                    Ok(found) => assert_eq!(found.digest, digest, "`{name}`"),
                    Err(e) => panic!("`{name}` was loaded but does not resolve: {e}"),
                }
            }
        }
        Err(_) => {
            let tags = store.list().map(|l| l.len()).unwrap_or(0);
            assert_eq!(tags, 0, "a refused archive left tags in the store");
        }
    }
}

// ---------------------------------------------------------------------------------
// Registry answers, through the real client and a fake registry

/// A manifest or index pulled from a registry: [`pull`] (the manifest fetch with its
/// media-type probe, size and digest checks, the index's wasm entry, the manifest
/// check, the container image config, blob downloads, the signature lookups, the tag).
///
/// The input is parts separated by 0xFF: the manifest (or index) served for the tag,
/// then blobs served by digest. The manifest's `config`, `layers` and `manifests`
/// descriptors are pointed at the blobs that follow (digest and size), so the pull
/// gets past the digest checks. A pull that succeeds tags the manifest it got.
pub fn registry_manifest(data: &[u8]) {
    let parts = split_parts(data);
    let blobs = parts.get(1..).unwrap_or_default();
    let manifest = point_at(parts.first().copied().unwrap_or_default(), blobs, &mut 0);
    let answers = fake::Answers {
        tags: BTreeMap::from([("fuzz".to_owned(), (200, manifest.clone()))]),
        blobs: by_digest(&parts),
        ..Default::default()
    };
    let dir = tempfile::tempdir().expect("a temporary directory for the store");
    let store = Store::open(dir.path().join("store")).expect("an empty store opens");
    fake::with_answers(answers, |fake| {
        let remote = fake.reference("manifest:fuzz");
        let progress: Arc<dyn Progress> = Arc::new(Quiet);
        let Ok(report) = pull(&fake.registry, &store, &remote, &progress) else {
            return;
        };
        let served = sha256_digest(&manifest) == report.descriptor.digest
            || parts
                .iter()
                .any(|p| sha256_digest(p) == report.descriptor.digest);
        assert!(served, "the pulled manifest is not one the registry served");
        match store.resolve(&remote) {
            Ok(tagged) => assert_eq!(tagged.digest, report.descriptor.digest),
            Err(e) => panic!("a pulled image is not tagged: {e}"),
        }
    });
}

/// Signatures a registry holds for an image: [`fetch_signatures`] (the cosign
/// `sha256-<hex>.sig` manifest and its payloads, the referrers fallback index and its
/// bundle referrers), then [`wpkg_distribution::transfer::RemoteSignatures::material`]
/// and [`verify_material`] on what came.
///
/// The input is parts separated by 0xFF: the `.sig` manifest, the referrers index,
/// then blobs and referrer manifests served by digest; the descriptors of the first two
/// are pointed at the parts that follow.
pub fn registry_signatures(data: &[u8]) {
    let parts = split_parts(data);
    let blobs = parts.get(2..).unwrap_or_default();
    let mut used = 0;
    let sig = point_at(parts.first().copied().unwrap_or_default(), blobs, &mut used);
    let index = parts.get(1).map(|p| point_at(p, blobs, &mut used));
    let mut answers = fake::Answers {
        tags: BTreeMap::from([(
            wpkg_store::associated::signature_tag(IMAGE_DIGEST),
            (200, sig),
        )]),
        blobs: by_digest(&parts),
        ..Default::default()
    };
    if let Some(index) = index {
        answers.tags.insert(
            wpkg_store::associated::referrers_tag(IMAGE_DIGEST),
            (200, index),
        );
    }
    fake::with_answers(answers, |fake| {
        let remote = fake.reference("signatures:fuzz");
        let Ok(found) = fetch_signatures(&fake.registry, &remote, IMAGE_DIGEST) else {
            return;
        };
        let material = found.material();
        verify_trusting_our_key(&material);
    });
}

/// A token service's answer: the body of a 200 from the `realm` of a `Bearer`
/// challenge, read by the registry client's token fetch (reached through
/// [`wpkg_distribution::registry::Registry::check_login`], as `wpkg login` does).
pub fn registry_token(data: &[u8]) {
    let answers = fake::Answers {
        token: data.to_vec(),
        ..Default::default()
    };
    fake::with_answers(answers, |fake| {
        let _ = fake.registry.check_login(&fake.host);
    });
}

/// A registry's error body (`{"errors":[{code,message}]}` or anything else) with
/// statuses 400, 403, 404 and 500, as the manifest fetch reports it
/// ([`wpkg_distribution::registry::error_text`] through the client's status errors).
/// An error status is never a success.
pub fn registry_error(data: &[u8]) {
    for status in [400u16, 403, 404, 500] {
        let answers = fake::Answers {
            tags: BTreeMap::from([("fuzz".to_owned(), (status, data.to_vec()))]),
            ..Default::default()
        };
        fake::with_answers(answers, |fake| {
            let remote = fake.reference("error:fuzz");
            match fake.registry.get_manifest(&remote) {
                Ok(_) => panic!("HTTP {status} was taken for a manifest"),
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        });
    }
}

/// `WWW-Authenticate` challenges: [`wpkg_distribution::registry::parse_challenge`]
/// on the input's lines, each one header value (as a registry may send several).
pub fn challenge(data: &[u8]) {
    let mut headers = http::HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(v) = http::HeaderValue::from_bytes(line) {
            headers.append(http::header::WWW_AUTHENTICATE, v);
        }
    }
    let found = wpkg_distribution::registry::parse_challenge(&headers);
    let _ = format!("{found:?}");
}

// ---------------------------------------------------------------------------------
// Signatures

/// A cosign simple-signing payload (the layer of a `.sig` manifest), signed with a
/// trusted key: [`wpkg_signing::classic::verify_classic`], and [`verify_material`]
/// with a certificate too (the keyless path reads the payload first). The payload
/// [`wpkg_signing::classic::simple_signing_payload`] writes for any name verifies.
pub fn simple_signing(data: &[u8]) {
    let keys = [key().public()];
    let signed = ClassicSignature {
        payload: data.to_vec(),
        signature: key().sign(data),
        certificate: None,
        rekor_bundle: None,
    };
    let _ = wpkg_signing::classic::verify_classic(&signed, IMAGE_DIGEST, &keys);
    let keyless = ClassicSignature {
        certificate: Some(String::new()),
        ..signed.clone()
    };
    verify_trusting_our_key(&Material {
        classic: vec![keyless, signed],
        bundles: vec![],
    });
    if let Ok(name) = std::str::from_utf8(data) {
        let payload = wpkg_signing::classic::simple_signing_payload(name, IMAGE_DIGEST);
        let ours = ClassicSignature {
            signature: key().sign(&payload),
            payload,
            certificate: None,
            rekor_bundle: None,
        };
        if let Err(e) = wpkg_signing::classic::verify_classic(&ours, IMAGE_DIGEST, &keys) {
            panic!("the payload wpkg writes for `{name}` does not verify: {e}");
        }
    }
}

/// A sigstore bundle (v0.1 to v0.3) attached to an image:
/// [`wpkg_signing::bundle::verify_bundle`] (keys),
/// [`wpkg_signing::bundle::verify_keyless_bundle`] (the shipped trust root) and
/// [`verify_material`], which picks between them.
pub fn bundle(data: &[u8]) {
    let keys = [key().public()];
    let ids = identities();
    let _ = wpkg_signing::bundle::verify_bundle(data, IMAGE_DIGEST, &keys);
    let _ = wpkg_signing::bundle::verify_keyless_bundle(data, IMAGE_DIGEST, &ids, public_good());
    verify_trusting_our_key(&Material {
        classic: vec![],
        bundles: vec![data.to_vec()],
    });
}

/// DSSE: the input as the in-toto statement of an envelope signed with a trusted key
/// (so the statement check is reached), and as the `dsseEnvelope` of a bundle, both
/// through [`wpkg_signing::bundle::verify_bundle`]. The statement
/// [`wpkg_signing::keyless_sign::statement`] writes for any name verifies.
pub fn dsse(data: &[u8]) {
    let keys = [key().public()];
    let _ = wpkg_signing::bundle::verify_bundle(&dsse_bundle(data), IMAGE_DIGEST, &keys);
    if let Ok(envelope) = serde_json::from_slice::<serde_json::Value>(data) {
        let b = serde_json::json!({"mediaType": BUNDLE_V03, "dsseEnvelope": envelope});
        if let Ok(b) = serde_json::to_vec(&b) {
            let _ = wpkg_signing::bundle::verify_bundle(&b, IMAGE_DIGEST, &keys);
        }
    }
    if let (Ok(name), Ok(digest)) = (std::str::from_utf8(data), Digest::parse(IMAGE_DIGEST)) {
        let statement = wpkg_signing::keyless_sign::statement(name, &digest);
        if let Err(e) =
            wpkg_signing::bundle::verify_bundle(&dsse_bundle(&statement), IMAGE_DIGEST, &keys)
        {
            panic!("the statement wpkg signs for `{name}` does not verify: {e}");
        }
    }
}

/// A Sigstore `trusted_root.json`: [`TrustedRoot::from_json`].
pub fn trusted_root(data: &[u8]) {
    let _ = TrustedRoot::from_json(data);
}

/// A public key: [`PublicKey::from_pem`] (the text, as `cosign.pub` and the trust
/// policy hold it) and [`PublicKey::from_spki_der`] (the bytes). A key reads back from
/// its PEM and its DER.
pub fn public_key(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = [
        PublicKey::from_pem(&text).ok(),
        PublicKey::from_spki_der(data).ok(),
    ];
    for k in parsed.into_iter().flatten() {
        assert_eq!(PublicKey::from_pem(&k.to_pem()).ok().as_ref(), Some(&k));
        assert_eq!(
            PublicKey::from_spki_der(&k.to_spki_der()).ok().as_ref(),
            Some(&k)
        );
        assert_eq!(k.fingerprint().len(), 64);
    }
}

/// A cosign private key file opened with the empty password:
/// [`PrivateKey::from_encrypted_pem`]. A key that opens signs what its public key
/// verifies. (Slow when the input keeps valid scrypt parameters: that is the cost of
/// the real key derivation.)
pub fn private_key(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(k) = PrivateKey::from_encrypted_pem(&text, b"") {
        let sig = k.sign(b"wpkg-fuzz");
        assert!(k.public().verify(b"wpkg-fuzz", &sig));
    }
}

/// A Fulcio certificate: [`wpkg_signing::keyless::leaf_identity`] and
/// [`wpkg_signing::keyless::check_certificate`] on the DER bytes, and
/// [`wpkg_signing::keyless::verify_classic_keyless`] on the text and on the bytes as a
/// PEM block (a classic keyless signature's certificate annotation).
pub fn certificate(data: &[u8]) {
    let root = public_good();
    let ids = identities();
    let _ = wpkg_signing::keyless::leaf_identity(data);
    let _ = wpkg_signing::keyless::check_certificate(data, SIGNING_TIME, root, &ids);
    let text = String::from_utf8_lossy(data);
    let _ = wpkg_signing::keyless::verify_classic_keyless(
        b"payload",
        b"signature",
        &text,
        None,
        root,
        &ids,
    );
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        B64.encode(data)
    );
    let _ = wpkg_signing::keyless::verify_classic_keyless(
        b"payload",
        b"signature",
        &pem,
        None,
        root,
        &ids,
    );
}

/// Transparency-log material: a cosign Rekor bundle
/// ([`wpkg_signing::keyless::verify_set`], the shipped root), a signed checkpoint
/// ([`verify_checkpoint`]) as given and signed by a log key the check trusts, and
/// Merkle inclusion proofs ([`verify_inclusion`]) from raw fields and for a tree of the
/// input's lines.
///
/// Properties: a checkpoint signed by the right key is never refused for its
/// signature; every leaf's proof in a tree verifies, and a touched proof does not.
pub fn transparency(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = wpkg_signing::keyless::verify_set(&text, public_good());

    let (log_key, log_id) = log();
    let _ = verify_checkpoint(&text, &p256_note_signer(log_key, log_id));
    if !text.contains("\n\n") {
        let mut note_text = text.to_string();
        if !note_text.ends_with('\n') {
            note_text.push('\n');
        }
        let mut blob = log_id[..4].to_vec();
        blob.extend_from_slice(&key().sign(note_text.as_bytes()));
        let note = format!("{note_text}\n\u{2014} fuzz {}\n", B64.encode(blob));
        match verify_checkpoint(&note, &p256_note_signer(log_key, log_id)) {
            Ok(cp) => assert_eq!(Some(cp.origin.as_str()), note_text.lines().next()),
            Err(e) => assert_ne!(
                e,
                ProofError::BadCheckpointSignature,
                "a checkpoint signed by the log's key is refused for its signature"
            ),
        }
    }

    if data.len() >= 48 {
        let index = u64_le(&data[..8]);
        let size = u64_le(&data[8..16]);
        let mut root = [0u8; 32];
        root.copy_from_slice(&data[16..48]);
        let proof: Vec<[u8; 32]> = data[48..]
            .chunks_exact(32)
            .filter_map(|c| <[u8; 32]>::try_from(c).ok())
            .collect();
        let _ = verify_inclusion(index, size, &leaf_hash(&data[..16]), &proof, &root);
    }

    const MAX_LEAVES: usize = 17;
    let leaves: Vec<[u8; 32]> = data
        .split(|b| *b == b'\n')
        .take(MAX_LEAVES)
        .map(leaf_hash)
        .collect();
    let n = leaves.len() as u64;
    let root = tree_hash(&leaves);
    for (m, leaf) in leaves.iter().enumerate() {
        let proof = inclusion_path(m, &leaves);
        assert_eq!(
            verify_inclusion(m as u64, n, leaf, &proof, &root),
            Ok(()),
            "leaf {m} of {n}"
        );
        if !proof.is_empty() {
            let mut touched = proof.clone();
            touched[0][0] ^= 1;
            assert!(verify_inclusion(m as u64, n, leaf, &touched, &root).is_err());
        }
    }
}

/// An OIDC identity token for keyless signing (`--identity-token`, or the CI's):
/// [`wpkg_signing::keyless_sign::IdentityToken::parse`].
pub fn identity_token(data: &[u8]) {
    let _ = wpkg_signing::keyless_sign::IdentityToken::parse(&String::from_utf8_lossy(data));
}

/// The trust policy (`trust.toml`): [`Policy::load`] from a file, and the input as one
/// scope for [`normalize_scope`]. A normalized scope is a fixed point of
/// normalization, and a name inside a loaded scope is decided by some scope.
pub fn trust_policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    scope_is_a_fixed_point(text.trim());
    let dir = tempfile::tempdir().expect("a temporary directory for the policy");
    let path = dir.path().join("trust.toml");
    std::fs::write(&path, data).expect("writing the policy file");
    let Ok(policy) = Policy::load(&path) else {
        return;
    };
    for s in &policy.scopes {
        scope_is_a_fixed_point(&s.scope);
        let Ok(norm) = normalize_scope(&s.scope) else {
            panic!(
                "a loaded policy has the scope `{}`, which does not normalize",
                s.scope
            );
        };
        let inside = match norm.strip_suffix("/*") {
            Some(prefix) => format!("{prefix}/x"),
            None if norm == "*" => "docker.io/library/x".to_owned(),
            None => norm.clone(),
        };
        assert!(
            policy.scope_for(&inside).is_some(),
            "`{inside}` is inside the scope `{}` but no scope decides for it",
            s.scope
        );
    }
}

// ---------------------------------------------------------------------------------
// The compiled-code cache (runner)

/// A compiled-code cache entry: the input's first byte says how many of the following
/// bytes are the `.sum` file, the rest is the code file; both are written where the
/// cache looks and checked with [`CodeCache::check_entry`]. An entry the check accepts
/// has exactly the `.sum` this target computes independently (`WPKGCODE3` + digest +
/// length + CRC-32 of the code + `C` or `M`, the kind; which one the code really is,
/// wasmtime checks on load), and is never handed to wasmtime's unsafe deserialize
/// here. An entry it refuses makes [`CodeCache::load_or_compile`] compile again and
/// replace it ([`CacheStatus::Replaced`], never a hit), with an entry the check accepts.
pub fn code_cache(data: &[u8]) {
    let runner = runner();
    let dir = tempfile::tempdir().expect("a temporary directory for the cache");
    let cache = CodeCache::new(dir.path(), runner.engine());
    let (sum, code) = match data.split_first() {
        Some((&n, rest)) => rest.split_at((n as usize).min(rest.len())),
        None => (&[][..], &[][..]),
    };
    let code_path = cache.entry_path(EMPTY_MODULE_DIGEST);
    let sum_path = cache.sum_path(EMPTY_MODULE_DIGEST);
    std::fs::write(&code_path, code).expect("writing the cache entry");
    std::fs::write(&sum_path, sum).expect("writing the cache entry's checksum");
    if cache.check_entry(sum, code, EMPTY_MODULE_DIGEST) {
        assert!(
            [b'C', b'M']
                .iter()
                .any(|&kind| sum == cache_sum(EMPTY_MODULE_DIGEST, code, kind)),
            "the cache accepted an entry it would not have written"
        );
        return;
    }
    let (_, status) = cache
        .load_or_compile(runner.engine(), EMPTY_MODULE_DIGEST, EMPTY_MODULE)
        .expect("the empty module compiles");
    assert_eq!(status, CacheStatus::Replaced, "a refused entry was used");
    let code = std::fs::read(code_path).expect("the cache wrote new code");
    let sum = std::fs::read(sum_path).expect("the cache wrote a new checksum");
    assert!(
        cache.check_entry(&sum, &code, EMPTY_MODULE_DIGEST),
        "the cache's own entry does not pass its check"
    );
    assert_eq!(sum, cache_sum(EMPTY_MODULE_DIGEST, &code, b'M'));
}

// ---------------------------------------------------------------------------------
// Helpers

/// One signing key per process (the checks do not depend on which).
fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(PrivateKey::generate)
}

/// The trust root shipped with wpkg, parsed once.
fn public_good() -> &'static TrustedRoot {
    static ROOT: OnceLock<TrustedRoot> = OnceLock::new();
    ROOT.get_or_init(TrustedRoot::public_good)
}

/// A transparency log of our own: the signing key's public half and a log id.
fn log() -> &'static (p256::ecdsa::VerifyingKey, [u8; 32]) {
    static LOG: OnceLock<(p256::ecdsa::VerifyingKey, [u8; 32])> = OnceLock::new();
    LOG.get_or_init(|| {
        use p256::pkcs8::DecodePublicKey;
        let der = key().public().to_spki_der();
        let k = p256::ecdsa::VerifyingKey::from_public_key_der(&der)
            .expect("a P-256 key reads back from its DER");
        (k, sha256(&der))
    })
}

/// Identities a policy might trust: a whole-subject regexp and an exact e-mail.
/// [`verify_material`] for [`IMAGE_DIGEST`], trusting the fuzz key, the fuzz
/// identities and the shipped public-good root (errors are the expected outcome).
fn verify_trusting_our_key(material: &Material) {
    let keys = [key().public()];
    let ids = identities();
    let root = || -> Result<TrustedRoot, String> { Ok(TrustedRoot::public_good()) };
    let trusted = Trusted {
        keys: &keys,
        identities: &ids,
        root: &root,
    };
    let _ = verify_material(material, IMAGE_DIGEST, &trusted);
}

fn identities() -> Vec<Identity> {
    vec![
        Identity {
            issuer: "https://token.actions.githubusercontent.com".to_owned(),
            subject_regexp: Some("https://github.com/.*".to_owned()),
            ..Default::default()
        },
        Identity {
            issuer: "https://accounts.google.com".to_owned(),
            subject: Some("someone@example.com".to_owned()),
            ..Default::default()
        },
    ]
}

/// A wasmtime engine as wpkg configures it, created once (its cache directory is
/// never used: each input gets its own [`CodeCache`]).
fn runner() -> &'static Runner {
    static RUNNER: OnceLock<Runner> = OnceLock::new();
    RUNNER.get_or_init(|| {
        Runner::new(Some(std::env::temp_dir().join("wpkg-fuzz-unused-cache")))
            .expect("a wasmtime engine")
    })
}

/// The `.sum` the cache must write for `code` compiled from `wasm_digest`, computed
/// here without the cache's code (a bitwise CRC-32, IEEE polynomial).
fn cache_sum(wasm_digest: &str, code: &[u8], kind: u8) -> Vec<u8> {
    let mut crc = !0u32;
    for &b in code {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut out = CACHE_MAGIC.to_vec();
    out.extend_from_slice(wasm_digest.as_bytes());
    out.extend_from_slice(&(code.len() as u64).to_le_bytes());
    out.extend_from_slice(&(!crc).to_le_bytes());
    out.push(kind);
    out
}

/// A bundle whose DSSE envelope carries `statement`, signed with [`key`].
fn dsse_bundle(statement: &[u8]) -> Vec<u8> {
    let payload_type = "application/vnd.in-toto+json";
    let sig = key().sign(&wpkg_signing::bundle::dsse_pae(payload_type, statement));
    let b = serde_json::json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": "wpkg-fuzz"}},
        "dsseEnvelope": {
            "payload": B64.encode(statement),
            "payloadType": payload_type,
            "signatures": [{"sig": B64.encode(sig)}],
        },
    });
    serde_json::to_vec(&b).unwrap_or_default()
}

fn scope_is_a_fixed_point(scope: &str) {
    if let Ok(n) = normalize_scope(scope) {
        assert_eq!(
            normalize_scope(&n).ok().as_deref(),
            Some(n.as_str()),
            "the scope `{scope}` normalizes to `{n}`, which normalizes differently"
        );
    }
}

fn split_parts(data: &[u8]) -> Vec<&[u8]> {
    data.split(|b| *b == PART).collect()
}

fn by_digest(parts: &[&[u8]]) -> BTreeMap<String, Vec<u8>> {
    parts
        .iter()
        .map(|p| (sha256_digest(p), p.to_vec()))
        .collect()
}

/// `doc` with its descriptors (`config`, then `layers`, then `manifests`) pointed at
/// `parts[*used..]`, one each while they last; `doc` as it is when it is not a JSON
/// object.
fn point_at(doc: &[u8], parts: &[&[u8]], used: &mut usize) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(doc) else {
        return doc.to_vec();
    };
    let Some(obj) = v.as_object_mut() else {
        return doc.to_vec();
    };
    if let Some(config) = obj.get_mut("config") {
        point(config, parts, used);
    }
    for key in ["layers", "manifests"] {
        if let Some(list) = obj.get_mut(key).and_then(|l| l.as_array_mut()) {
            for d in list {
                point(d, parts, used);
            }
        }
    }
    serde_json::to_vec(&v).unwrap_or_else(|_| doc.to_vec())
}

fn point(d: &mut serde_json::Value, parts: &[&[u8]], used: &mut usize) {
    let Some(d) = d.as_object_mut() else {
        return;
    };
    let Some(part) = parts.get(*used) else {
        return;
    };
    *used += 1;
    d.insert("digest".to_owned(), sha256_digest(part).into());
    d.insert("size".to_owned(), (part.len() as u64).into());
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = sha256_digest(bytes);
    let hex = digest.strip_prefix("sha256:").unwrap_or(&digest).as_bytes();
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let nibble = |c: u8| match c {
            b'0'..=b'9' => c - b'0',
            _ => c - b'a' + 10,
        };
        *o = (nibble(pair[0]) << 4) | nibble(pair[1]);
    }
    out
}

fn u64_le(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// The RFC 6962 tree hash.
fn tree_hash(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => sha256(b""),
        1 => leaves[0],
        n => {
            let k = n.next_power_of_two() / 2;
            node_hash(&tree_hash(&leaves[..k]), &tree_hash(&leaves[k..]))
        }
    }
}

/// The RFC 6962 inclusion path of leaf `m`.
fn inclusion_path(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let n = leaves.len();
    if n <= 1 {
        return vec![];
    }
    let k = n.next_power_of_two() / 2;
    if m < k {
        let mut p = inclusion_path(m, &leaves[..k]);
        p.push(tree_hash(&leaves[k..]));
        p
    } else {
        let mut p = inclusion_path(m - k, &leaves[k..]);
        p.push(tree_hash(&leaves[..k]));
        p
    }
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut b = Vec::with_capacity(65);
    b.push(1u8);
    b.extend_from_slice(left);
    b.extend_from_slice(right);
    sha256(&b)
}

/// A registry on loopback, in this process, that answers the registry client with
/// what the current target put in [`fake::Answers`]: `GET /v2/` challenges for a
/// bearer token from `/token`, manifests by tag or digest, blobs by digest; anything
/// else is a 404 with a registry error body. Plain HTTP (the client allows it on
/// loopback); a TLS hello is hung up on, so the client's first probe falls back fast.
mod fake {
    use std::collections::BTreeMap;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Mutex, OnceLock};
    use std::time::Duration;

    use wpkg_distribution::credentials::{Credential, Credentials, EnvCredential, Secret};
    use wpkg_distribution::registry::{ClientOptions, Registry};
    use wpkg_spec::media::{OCI_INDEX, OCI_MANIFEST};
    use wpkg_spec::Reference;

    /// What the fake registry answers.
    #[derive(Default)]
    pub(super) struct Answers {
        /// Manifests by tag: status and body.
        pub(super) tags: BTreeMap<String, (u16, Vec<u8>)>,
        /// Manifests and blobs by digest.
        pub(super) blobs: BTreeMap<String, Vec<u8>>,
        /// The token service's 200 body.
        pub(super) token: Vec<u8>,
    }

    /// The running fake and a client for it (with credentials for it, one attempt
    /// per request).
    pub(super) struct Fake {
        /// `127.0.0.1:PORT`.
        pub(super) host: String,
        /// The client.
        pub(super) registry: Registry,
    }

    impl Fake {
        /// `127.0.0.1:PORT/rest`, parsed.
        pub(super) fn reference(&self, rest: &str) -> Reference {
            format!("{}/{rest}", self.host)
                .parse()
                .expect("a reference to the fake registry parses")
        }
    }

    static ANSWERS: Mutex<Answers> = Mutex::new(Answers {
        tags: BTreeMap::new(),
        blobs: BTreeMap::new(),
        token: Vec::new(),
    });

    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    /// Runs `f` against the fake registry answering `answers`; one caller at a time.
    pub(super) fn with_answers<T>(answers: Answers, f: impl FnOnce(&Fake) -> T) -> T {
        let fake = fake();
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        *ANSWERS.lock().unwrap_or_else(|e| e.into_inner()) = answers;
        f(fake)
    }

    fn fake() -> &'static Fake {
        static FAKE: OnceLock<Fake> = OnceLock::new();
        FAKE.get_or_init(start)
    }

    fn start() -> Fake {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("a loopback port for the fake registry");
        let host = listener
            .local_addr()
            .expect("the fake registry's address")
            .to_string();
        let realm = format!("http://{host}/token");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let realm = realm.clone();
                std::thread::spawn(move || serve(stream, &realm));
            }
        });
        let creds = Credentials::new(
            std::env::temp_dir().join("wpkg-fuzz-no-docker-config"),
            Some(EnvCredential {
                registry: host.clone(),
                credential: Credential::Basic {
                    username: "fuzz".to_owned(),
                    password: Secret::new("fuzz"),
                },
            }),
        );
        let registry = Registry::new(
            ClientOptions {
                attempts: Some(1),
                ..Default::default()
            },
            creds,
        )
        .expect("a registry client");
        Fake { host, registry }
    }

    fn serve(mut stream: TcpStream, realm: &str) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            if head.len() > 64 * 1024 {
                return;
            }
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
            // Not HTTP (the client tries TLS first): hang up at once.
            if !head[0].is_ascii_uppercase() {
                return;
            }
        }
        let head = String::from_utf8_lossy(&head);
        let mut lines = head.split("\r\n");
        let mut request = lines.next().unwrap_or("").split(' ');
        let method = request.next().unwrap_or("");
        let target = request.next().unwrap_or("");
        let authorized = lines.any(|l| l.to_ascii_lowercase().starts_with("authorization:"));
        let path = target.split('?').next().unwrap_or("");
        let (status, headers, body) = answer(path, authorized, realm);
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
            reason(status),
            body.len()
        )
        .into_bytes();
        if method != "HEAD" {
            out.extend_from_slice(&body);
        }
        let _ = stream.write_all(&out);
        let _ = stream.flush();
    }

    /// Status, extra header lines, body.
    fn answer(path: &str, authorized: bool, realm: &str) -> (u16, String, Vec<u8>) {
        const JSON: &str = "Content-Type: application/json\r\n";
        let unknown = |what: &str| {
            (
                404,
                JSON.to_owned(),
                format!(r#"{{"errors":[{{"code":"{what}_UNKNOWN","message":"unknown"}}]}}"#)
                    .into_bytes(),
            )
        };
        if path == "/v2/" || path == "/v2" {
            return if authorized {
                (200, JSON.to_owned(), b"{}".to_vec())
            } else {
                (
                    401,
                    format!(
                        "{JSON}WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\"\r\nDocker-Distribution-Api-Version: registry/2.0\r\n"
                    ),
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                        .to_vec(),
                )
            };
        }
        let answers = ANSWERS.lock().unwrap_or_else(|e| e.into_inner());
        if path == "/token" {
            return (200, JSON.to_owned(), answers.token.clone());
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return unknown("NAME");
        };
        if let Some((_, reference)) = rest.rsplit_once("/manifests/") {
            let found = if reference.starts_with("sha256:") {
                answers.blobs.get(reference).map(|b| (200, b.clone()))
            } else {
                answers.tags.get(reference).cloned()
            };
            return match found {
                Some((status, body)) => (
                    status,
                    format!("Content-Type: {}\r\n", media_type_of(&body)),
                    body,
                ),
                None => unknown("MANIFEST"),
            };
        }
        if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
            return match answers.blobs.get(digest) {
                Some(b) => (
                    200,
                    "Content-Type: application/octet-stream\r\n".to_owned(),
                    b.clone(),
                ),
                None => unknown("BLOB"),
            };
        }
        unknown("NAME")
    }

    /// The `Content-Type` a registry would send for a manifest body.
    fn media_type_of(body: &[u8]) -> &'static str {
        let is_index = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .is_some_and(|v| v.get("manifests").is_some());
        if is_index {
            OCI_INDEX
        } else {
            OCI_MANIFEST
        }
    }

    fn reason(status: u16) -> &'static str {
        match status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            500 => "Internal Server Error",
            _ => "Status",
        }
    }
}

// ---------------------------------------------------------------------------------
// Image layers unpacked on the host (store::unpack, through fsroot)

/// Names the extraction target builds paths from: a few plain names, `.` and `..`.
const EXTRACT_NAMES: &[&str] = &["a", "b", "l", "..", ".", "a"];

/// Reads a path of 1 to 3 names from `data` (absolute when `absolute`).
fn extract_path(data: &mut std::slice::Iter<'_, u8>, absolute: bool) -> String {
    let depth = 1 + data.next().copied().unwrap_or(0) as usize % 3;
    let mut parts = Vec::new();
    for _ in 0..depth {
        let b = data.next().copied().unwrap_or(0) as usize;
        parts.push(EXTRACT_NAMES[b % EXTRACT_NAMES.len()]);
    }
    let p = parts.join("/");
    if absolute {
        format!("/{p}")
    } else {
        p
    }
}

/// Decodes `data` into image layers: each op is a directory, a file, a link (target
/// with `..` or absolute), a hard link, a whiteout, an opaque marker, or the start of
/// the next layer.
fn extract_layers(data: &[u8]) -> Vec<Vec<u8>> {
    let mut layers = Vec::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut it = data.iter();
    while let Some(&op) = it.next() {
        let path = extract_path(&mut it, false);
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(0);
        let (kind, name, link) = match op % 8 {
            0 => (tar::EntryType::Directory, path, None),
            1 => (tar::EntryType::Regular, path, None),
            2 | 3 => {
                let abs = op % 8 == 3;
                (
                    tar::EntryType::Symlink,
                    path,
                    Some(extract_path(&mut it, abs)),
                )
            }
            4 => (
                tar::EntryType::Link,
                path,
                Some(extract_path(&mut it, false)),
            ),
            5 => {
                let (dir, base) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
                let wh = format!("{dir}/.wh.{base}");
                (
                    tar::EntryType::Regular,
                    wh.trim_start_matches('/').to_owned(),
                    None,
                )
            }
            6 => (
                tar::EntryType::Regular,
                format!("{path}/.wh..wh..opq"),
                None,
            ),
            _ => {
                let done = std::mem::replace(&mut b, tar::Builder::new(Vec::new()));
                layers.push(done.into_inner().expect("tar in memory"));
                continue;
            }
        };
        h.set_entry_type(kind);
        // Written raw: a hostile layer bypasses the builder's path checks.
        let old = h.as_old_mut();
        let n = name.len().min(99);
        old.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        if let Some(l) = &link {
            let n = l.len().min(99);
            old.linkname[..n].copy_from_slice(&l.as_bytes()[..n]);
        }
        h.set_cksum();
        b.append(&h, std::io::empty()).expect("tar in memory");
    }
    layers.push(b.into_inner().expect("tar in memory"));
    layers
}

/// Every path under `dir` with what it is (file contents, link targets), not
/// following links.
fn extract_snapshot(dir: &std::path::Path, skip: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .expect("reading the scratch directory")
            .flatten()
        {
            let p = e.path();
            if p.starts_with(skip) {
                continue;
            }
            let t = e.file_type().expect("a file type");
            let what = if t.is_symlink() {
                format!("-> {:?}", std::fs::read_link(&p).ok())
            } else if t.is_dir() {
                stack.push(p.clone());
                "dir".into()
            } else {
                format!("{:?}", std::fs::read(&p).ok())
            };
            out.push((p.display().to_string(), what));
        }
    }
    out.sort();
    out
}

/// Image layers applied onto a root three levels below a scratch directory that holds
/// a secret beside it: whatever the layers are (chains of links with `..`, absolute
/// links, hard links, whiteouts, opaque directories), nothing outside the root changes,
/// and every path inside resolves, through either resolver, to the same place inside.
pub fn extract(data: &[u8]) {
    let base = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir_all(base.path().join("outside")).expect("scratch");
    std::fs::write(base.path().join("outside/secret"), "s").expect("scratch");
    let root_dir = base.path().join("a/b/root");
    std::fs::create_dir_all(&root_dir).expect("scratch");
    let real_root = std::fs::canonicalize(&root_dir).expect("scratch");
    let before = extract_snapshot(base.path(), &root_dir);
    let root = wpkg_fsroot::Root::open(&root_dir).expect("opening the root");
    for (i, layer) in extract_layers(data).iter().enumerate() {
        let name = format!("layer{i}");
        if wpkg_store::unpack::apply_image_layer(&root, &name, layer.as_slice(), Default::default())
            .is_err()
        {
            break;
        }
    }
    assert_eq!(
        before,
        extract_snapshot(base.path(), &root_dir),
        "applying layers changed something outside the root"
    );
    let resolvers = [wpkg_fsroot::Resolver::Walk, wpkg_fsroot::Resolver::best()];
    let roots: Vec<_> = resolvers
        .iter()
        .map(|r| wpkg_fsroot::Root::open_with(&root_dir, *r).expect("opening the root"))
        .collect();
    for p in extract_snapshot(&root_dir, std::path::Path::new("/nonexistent")) {
        let rel = std::path::Path::new(&p.0)
            .strip_prefix(&root_dir)
            .expect("inside")
            .to_owned();
        let mut seen = Vec::new();
        for r in &roots {
            let place = match r.open_dir(&rel) {
                Ok(d) => std::fs::canonicalize(d.handle_path()).ok(),
                Err(_) => r.open_file(&rel).ok().and_then(|f| {
                    use std::os::fd::AsRawFd;
                    std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).ok()
                }),
            };
            if let Some(place) = &place {
                assert!(
                    place.starts_with(&real_root),
                    "{} resolves outside the root: {}",
                    rel.display(),
                    place.display()
                );
            }
            seen.push(place);
        }
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "the resolvers disagree on {}: {seen:?}",
            rel.display()
        );
    }
}
