//! Signatures and trust against the real registry: sign, push, pull, verify, run; and
//! every refusal, each checked from the guest's side (it must not have run).

use wpkg_tests::registry::{Registry, Setup};
use wpkg_tests::{command_manifest, guest, Env, Run};

use crate::registry::{hello, put_manifest};

const PW: &str = "correct horse";

/// `wpkg` with the key password in the environment.
fn wpkg_pw(env: &Env, args: &[&str]) -> Run {
    env.wpkg_with(args, &[("COSIGN_PASSWORD", PW)], None)
}

/// A key pair in `env`'s scratch dir; returns (key, pub) paths.
fn keygen(env: &Env, name: &str) -> (String, String) {
    let prefix = env.path(name);
    wpkg_pw(
        env,
        &["keygen", "--output-key-prefix", prefix.to_str().unwrap()],
    )
    .ok();
    (
        format!("{}.key", prefix.display()),
        format!("{}.pub", prefix.display()),
    )
}

/// A consumer that trusts `pubkey` for `scope`.
fn consumer(scope: &str, pubkey: &str) -> Env {
    let env = Env::new();
    env.wpkg(&["trust", "add", scope, "--key", pubkey])
        .ok()
        .stderr_has("trusting key");
    env
}

fn refused(r: Run, why: &str) {
    let r = r.code(125).stderr_has("refusing to run").stderr_has(why);
    assert!(!r.stdout.contains("world!"), "the guest ran: {r:#?}");
}

#[test]
fn sign_push_pull_verify_run_and_refusals() {
    let reg = Registry::start(Setup::Plain);
    let publisher = Env::new();
    let (key, pubkey) = keygen(&publisher, "acme");
    let (_other_key, other_pub) = keygen(&publisher, "other");
    // The key file is private; an existing pair is never overwritten.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    wpkg_pw(
        &publisher,
        &[
            "keygen",
            "--output-key-prefix",
            publisher.path("acme").to_str().unwrap(),
        ],
    )
    .code(125)
    .stderr_has("exists");

    hello(&publisher, "Signed");
    let app = format!("{}/acme/app:1", reg.host);
    wpkg_pw(
        &publisher,
        &["push", "--sign", "--key", &key, "hello:0.1.0", &app],
    )
    .ok()
    .stderr_has("1 signature(s)");

    // A consumer who trusts the publisher's key for acme/*: verify and run.
    let scope = format!("{}/acme/*", reg.host);
    let c = consumer(&scope, &pubkey);
    c.wpkg(&["verify", &app]).ok().stderr_has("verified");
    // Not in the store: the registry's signatures are read without pulling the image.
    let remote_only = consumer(&scope, &pubkey);
    remote_only
        .wpkg(&["verify", &app])
        .ok()
        .stderr_has("classic signature");
    assert!(!remote_only
        .wpkg(&["images"])
        .ok()
        .stdout
        .contains("acme/app"));
    c.wpkg(&["verify", &app, "--key", &pubkey]).ok();
    c.wpkg(&["verify", &app, "--key", &other_pub])
        .code(1)
        .stderr_has("not verified");
    let r = c.wpkg(&["run", &app]).ok();
    assert!(r.stdout.contains("Signed, world!"), "{r:#?}");
    assert!(r.stderr.contains("verified"), "{r:#?}");
    // Pulled, now local: still verified before each run, and under another tag too.
    c.wpkg(&["run", "--pull", "never", &app])
        .ok()
        .stderr_has("verified");
    c.wpkg(&["tag", &app, "mine:1"]).ok();
    refused(
        c.wpkg(&["run", "mine:1"]),
        "no trust policy scope covers `mine`",
    );
    assert!(c
        .wpkg(&["run", "mine:1"])
        .stderr
        .contains("wpkg trust add mine --key"));
    // The signature manifests are not listed as images.
    assert!(!c.wpkg(&["images"]).ok().stdout.contains(".sig"));

    // Wrong key: a consumer who trusts another key.
    let wrong = consumer(&scope, &other_pub);
    refused(
        wrong.wpkg(&["run", &app]),
        "does not verify with any trusted key",
    );

    // A reference outside every trusted scope.
    let outside = consumer(&format!("{}/other/*", reg.host), &pubkey);
    refused(outside.wpkg(&["run", &app]), "no trust policy scope covers");
    // ... runs with the explicit escape hatch, loudly.
    outside
        .wpkg(&["run", "--insecure-skip-verify", &app])
        .ok()
        .stderr_has("warning: --insecure-skip-verify")
        .stdout_has("Signed, world!");

    // The same digest pushed elsewhere carries its signature along (as `cosign copy`).
    let copy = format!("{}/acme/copy:1", reg.host);
    publisher
        .wpkg(&["push", "hello:0.1.0", &copy])
        .ok()
        .stderr_has("1 signature(s)");
    consumer(&scope, &pubkey)
        .wpkg(&["run", &copy])
        .ok()
        .stdout_has("Signed, world!");

    // Unsigned: another artifact nobody signed.
    let other_app = Env::new();
    hello(&other_app, "Unsigned");
    let unsigned = format!("{}/acme/unsigned:1", reg.host);
    other_app.wpkg(&["push", "hello:0.1.0", &unsigned]).ok();
    refused(
        consumer(&scope, &pubkey).wpkg(&["run", &unsigned]),
        "has no signature",
    );

    // A registry that tags the image itself as its own `.sig` gains nothing: the tag
    // is not a signature and does not make the image local.
    let unsigned_digest = other_app.wpkg(&["images", "--json"]).ok().stdout;
    let unsigned_digest: serde_json::Value = serde_json::from_str(&unsigned_digest).unwrap();
    let unsigned_digest = unsigned_digest[0]["digest"].as_str().unwrap().to_owned();
    let image_manifest = std::fs::read_to_string(
        other_app
            .home()
            .join("store/blobs/sha256")
            .join(unsigned_digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    put_manifest(
        &reg.host,
        "acme/unsigned",
        &format!("{}.sig", unsigned_digest.replacen(':', "-", 1)),
        "application/vnd.oci.image.manifest.v1+json",
        &image_manifest,
    );
    let tricked = consumer(&scope, &pubkey);
    refused(tricked.wpkg(&["run", &unsigned]), "has no signature");
    refused(
        tricked.wpkg(&["run", "--pull", "never", &unsigned]),
        "has no signature",
    );

    // Locally built images need no signature, whatever the policy.
    c.wpkg(&["run", "hello:0.1.0"]).code(125); // not built in `c`
    hello(&c, "Local");
    c.wpkg(&["run", "hello:0.1.0"])
        .ok()
        .stdout_has("Local, world!");

    // `wpkg sign` then `wpkg push` carries the signature; signing twice adds nothing.
    let app2 = format!("{}/acme/app:2", reg.host);
    publisher.wpkg(&["tag", "hello:0.1.0", &app2]).ok();
    wpkg_pw(&publisher, &["sign", &app2, "--key", &key])
        .ok()
        .stderr_has("signed");
    wpkg_pw(&publisher, &["sign", &app2, "--key", &key]).ok();
    publisher
        .wpkg(&["push", &app2])
        .ok()
        .stderr_has("1 signature(s)");
    consumer(&scope, &pubkey)
        .wpkg(&["run", &app2])
        .ok()
        .stdout_has("Signed, world!");
    // Wrong password: a clear error, nothing signed.
    let out = publisher
        .cmd(&["sign", &app2, "--key", &key])
        .env("COSIGN_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("password does not decrypt"));
}

/// The signature manifest of `image` (by digest) in `env`'s store: its bytes.
fn local_sig_manifest(env: &Env, digest: &str) -> String {
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.home().join("store/index.json")).unwrap(),
    )
    .unwrap();
    let tag = format!("{}.sig", digest.replacen(':', "-", 1));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
                .ends_with(&tag)
        })
        .expect("a signature manifest in the store");
    let d = entry["digest"].as_str().unwrap();
    std::fs::read_to_string(
        env.home()
            .join("store/blobs/sha256")
            .join(d.trim_start_matches("sha256:")),
    )
    .unwrap()
}

#[test]
fn widened_capabilities_reused_signature_and_corrupted_signature_are_refused() {
    let reg = Registry::start(Setup::Plain);
    let publisher = Env::new();
    let (key, pubkey) = keygen(&publisher, "acme");
    let signed_digest = hello(&publisher, "Narrow");
    let app = format!("{}/acme/app:1", reg.host);
    wpkg_pw(
        &publisher,
        &["push", "--sign", "--key", &key, "hello:0.1.0", &app],
    )
    .ok();
    let sig_manifest = local_sig_manifest(&publisher, &signed_digest);

    // An attacker rebuilds the artifact with wider capabilities (the host's secret
    // environment variable and an outbound host), pushes it over the same tag and
    // copies the publisher's signature to the new digest's signature tag.
    let attacker = Env::new();
    let wasm = guest("example-hello", "wasm32-wasip2");
    let dir = attacker.project(
        "evil",
        &wasm,
        &command_manifest(
            "hello",
            "[capabilities]\nenv = { GREETING = \"Narrow\", WIDENED = \"yes\" }\n",
        ),
    );
    let evil_digest = attacker.build(&dir, "hello:0.1.0");
    assert_ne!(evil_digest, signed_digest);
    attacker.wpkg(&["push", "hello:0.1.0", &app]).ok();
    put_manifest(
        &reg.host,
        "acme/app",
        &format!("{}.sig", evil_digest.replacen(':', "-", 1)),
        "application/vnd.oci.image.manifest.v1+json",
        &sig_manifest,
    );
    let c = consumer(&format!("{}/acme/*", reg.host), &pubkey);
    refused(c.wpkg(&["run", &app]), "a valid signature, but for sha256:");
    c.wpkg(&["verify", &app]).code(1).stderr_has(&signed_digest);

    // The original, pinned by digest, still verifies and runs.
    let pinned = format!("{}/acme/app@{signed_digest}", reg.host);
    let r = c.wpkg(&["run", &pinned]).ok();
    assert!(
        r.stdout.contains("Narrow, world!") && !r.stdout.contains("WIDENED"),
        "{r:#?}"
    );

    // A corrupted signature: one byte of the base64 signature changed.
    let mut v: serde_json::Value = serde_json::from_str(&sig_manifest).unwrap();
    let sig = v["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bytes = sig.into_bytes();
    bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
    v["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"] =
        String::from_utf8(bytes).unwrap().into();
    put_manifest(
        &reg.host,
        "acme/app",
        &format!("{}.sig", signed_digest.replacen(':', "-", 1)),
        "application/vnd.oci.image.manifest.v1+json",
        &v.to_string(),
    );
    let fresh = consumer(&format!("{}/acme/*", reg.host), &pubkey);
    refused(fresh.wpkg(&["run", &pinned]), "does not verify");
}

/// Uploads a blob with raw HTTP (POST then PUT), as another tool would.
pub fn upload(host: &str, repo: &str, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let digest = wpkg_store::sha256_digest(bytes);
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST /v2/{repo}/blobs/uploads/ HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let location = resp
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap()
        .trim()
        .to_owned();
    let path = location
        .split_once(host)
        .map(|(_, p)| p.to_owned())
        .unwrap_or(location);
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "PUT {path}{sep}digest={digest} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    )
    .unwrap();
    s.write_all(bytes).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    digest
}

#[test]
fn cosign_v3_bundles_in_the_referrers_fallback_are_verified() {
    let reg = Registry::start(Setup::Plain);
    let publisher = Env::new();
    let (key, pubkey) = keygen(&publisher, "acme");
    let digest = hello(&publisher, "Bundled");
    let app = format!("{}/acme/app:1", reg.host);
    publisher.wpkg(&["push", "hello:0.1.0", &app]).ok();
    let manifest_size = std::fs::metadata(
        publisher
            .home()
            .join("store/blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
    .len();

    // A cosign v3 style bundle (DSSE around an in-toto statement for the digest) as a
    // referrer manifest, listed in the `sha256-<hex>` fallback index — the layout cosign
    // writes on registries without the referrers API (distribution 2.8).
    let pem = std::fs::read_to_string(&key).unwrap();
    let k = wpkg_signing::keys::PrivateKey::from_encrypted_pem(&pem, PW.as_bytes()).unwrap();
    let repo = "acme/app";
    let referrer = |bundle: &[u8], layer_type: &str| {
        let config = upload(&reg.host, repo, b"{}");
        let layer = upload(&reg.host, repo, bundle);
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": layer_type, "digest": layer, "size": bundle.len()}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": manifest_size},
            "annotations": {"dev.sigstore.bundle.content": "dsse-envelope", "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"},
        })
        .to_string();
        let d = wpkg_store::sha256_digest(m.as_bytes());
        put_manifest(
            &reg.host,
            repo,
            &d,
            "application/vnd.oci.image.manifest.v1+json",
            &m,
        );
        (d, m.len())
    };
    // A decoy whose index entry claims to be a bundle but whose layer is not one.
    let other = wpkg_signing::keys::PrivateKey::generate();
    let (decoy, decoy_size) = referrer(
        &wpkg_signing::bundle::make_bundle(&other, &digest.parse().unwrap()),
        "application/octet-stream",
    );
    let index_with = |entries: &[(String, usize)]| {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .map(|(d, n)| {
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": d, "size": n,
                    "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                })
            })
            .collect();
        serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}).to_string()
    };
    let fallback_tag = digest.replacen(':', "-", 1);
    put_manifest(
        &reg.host,
        repo,
        &fallback_tag,
        "application/vnd.oci.image.index.v1+json",
        &index_with(&[(decoy.clone(), decoy_size)]),
    );
    let scope = format!("{}/acme/*", reg.host);
    refused(
        consumer(&scope, &pubkey).wpkg(&["run", &app]),
        "has no signature",
    );

    let (real, real_size) = referrer(
        &wpkg_signing::bundle::make_bundle(&k, &digest.parse().unwrap()),
        "application/vnd.dev.sigstore.bundle.v0.3+json",
    );
    put_manifest(
        &reg.host,
        repo,
        &fallback_tag,
        "application/vnd.oci.image.index.v1+json",
        &index_with(&[(decoy, decoy_size), (real, real_size)]),
    );
    let c = consumer(&scope, &pubkey);
    c.wpkg(&["verify", "--remote", &app, "--key", &pubkey])
        .ok()
        .stderr_has("bundle signature");
    c.wpkg(&["verify", &app])
        .ok()
        .stderr_has("bundle signature");
    c.wpkg(&["run", &app]).ok().stdout_has("Bundled, world!");
    // A bundle by another key does not verify.
    let (_, other_pub) = keygen(&publisher, "other");
    refused(
        consumer(&scope, &other_pub).wpkg(&["run", &app]),
        "does not verify",
    );
}

#[test]
fn trust_policy_commands_and_bad_input() {
    let env = Env::new();
    let (_key, pubkey) = keygen(&env, "k");
    env.wpkg(&["trust", "list"]).ok().stderr_has("no scopes");
    env.wpkg(&["trust", "add", "ghcr.io/acme/*", "--key", &pubkey])
        .ok();
    env.wpkg(&["trust", "add", "ghcr.io/acme/*", "--key", &pubkey])
        .ok()
        .stderr_has("already trusted");
    let list = env.wpkg(&["trust", "list", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(v[0]["scope"], "ghcr.io/acme/*");
    assert_eq!(v[0]["keys"].as_array().unwrap().len(), 1);
    env.wpkg(&["trust", "add", "Bad Scope!", "--key", &pubkey])
        .code(125)
        .stderr_has("invalid scope");
    // A private key is not a public key.
    env.wpkg(&[
        "trust",
        "add",
        "x/*",
        "--key",
        env.path("k.key").to_str().unwrap(),
    ])
    .code(125)
    .stderr_has("not a public key");
    env.wpkg(&["trust", "rm", "ghcr.io/acme/*"]).ok();
    env.wpkg(&["trust", "rm", "ghcr.io/acme/*"])
        .code(125)
        .stderr_has("no scope");
    // A broken policy file is a clear error, not a panic.
    let policy = env.home().join("trust.toml");
    std::fs::write(&policy, "[[trust]]\nscope = 1\n").unwrap();
    env.wpkg(&["trust", "list"])
        .code(125)
        .stderr_has("trust.toml");
    // No password source: keygen says how to give one.
    let out = env
        .cmd(&[
            "keygen",
            "--output-key-prefix",
            env.path("np").to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("COSIGN_PASSWORD"));
    assert!(!env.path("np.key").exists());
}

/// The harness's loopback Sigstore instance, used here only for its CA and log: the
/// classic keyless form (certificate and Rekor bundle in layer annotations).
struct TestSigstore {
    root_json: std::path::PathBuf,
    ts: wpkg_tests::sigstore_services::TestSigstore,
}

const GH_ISSUER: &str = wpkg_tests::sigstore_services::GITHUB_ISSUER;
const WORKFLOW: &str = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl TestSigstore {
    fn new(dir: &std::path::Path) -> TestSigstore {
        let ts = wpkg_tests::sigstore_services::TestSigstore::start(dir);
        TestSigstore {
            root_json: ts.trusted_root.clone(),
            ts,
        }
    }

    /// A keyless classic signature by `subject` of `digest`: the layer annotations
    /// cosign writes (signature, certificate, chain, Rekor bundle).
    fn sign(
        &self,
        subject: &str,
        issuer: &str,
        docker_ref: &str,
        digest: &str,
    ) -> (Vec<u8>, serde_json::Value) {
        assert_eq!(
            issuer, GH_ISSUER,
            "the test Fulcio issues for GitHub's issuer"
        );
        let leaf = self
            .ts
            .issue_leaf(&wpkg_tests::sigstore_services::LeafOptions {
                subject: Some(subject.to_owned()),
                ..Default::default()
            });
        let payload = wpkg_signing::classic::simple_signing_payload(docker_ref, digest);
        let sig = leaf.sign(&payload);
        let bundle = self.ts.log_hashedrekord(&payload, &sig, &leaf.der);
        let annotations = serde_json::json!({
            "dev.cosignproject.cosign/signature": b64(&sig),
            "dev.sigstore.cosign/certificate": leaf.pem(),
            "dev.sigstore.cosign/chain": self.ts.chain_pem(),
            "dev.sigstore.cosign/bundle": bundle,
        });
        (payload, annotations)
    }
}

/// Puts a classic signature manifest with one keyless layer under `sha256-<hex>.sig`.
fn put_keyless_signature(
    host: &str,
    repo: &str,
    digest: &str,
    payload: &[u8],
    annotations: serde_json::Value,
) {
    let config = br#"{"architecture":"","created":"0001-01-01T00:00:00Z","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#;
    let config_digest = upload(host, repo, config);
    let payload_digest = upload(host, repo, payload);
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": payload_digest,
                    "size": payload.len(), "annotations": annotations}],
    })
    .to_string();
    put_manifest(
        host,
        repo,
        &format!("{}.sig", digest.replacen(':', "-", 1)),
        "application/vnd.oci.image.manifest.v1+json",
        &m,
    );
}

#[test]
fn keyless_signatures_verify_for_the_trusted_identity_only() {
    let reg = Registry::start(Setup::Plain);
    let publisher = Env::new();
    let sigstore = TestSigstore::new(publisher.dir.path());
    let root = sigstore.root_json.to_str().unwrap().to_owned();
    let digest = hello(&publisher, "Keyless");
    let app = format!("{}/acme/app:1", reg.host);
    publisher.wpkg(&["push", "hello:0.1.0", &app]).ok();
    let (payload, ann) = sigstore.sign(
        WORKFLOW,
        GH_ISSUER,
        &format!("{}/acme/app", reg.host),
        &digest,
    );
    put_keyless_signature(&reg.host, "acme/app", &digest, &payload, ann);
    let scope = format!("{}/acme/*", reg.host);

    let trusting = |subject: &[&str]| {
        let env = Env::new();
        let mut args = vec!["trust", "add", scope.as_str(), "--issuer", GH_ISSUER];
        args.extend_from_slice(subject);
        env.wpkg(&args)
            .ok()
            .stderr_has("trusting keyless signatures");
        env
    };
    // The right identity, with the test trust root.
    let ok = trusting(&["--subject", WORKFLOW]);
    let r = ok.wpkg(&["run", &app, "--trusted-root", &root]).ok();
    assert!(r.stdout.contains("Keyless, world!"), "{r:#?}");
    assert!(
        r.stderr
            .contains("keyless signature by https://github.com/acme/app"),
        "{r:#?}"
    );
    ok.wpkg(&["verify", &app, "--trusted-root", &root]).ok();
    trusting(&[
        "--subject-regexp",
        "https://github.com/acme/.*@refs/heads/main",
    ])
    .wpkg(&["run", &app, "--trusted-root", &root])
    .ok();

    // Another workflow, another issuer, a partial regexp: refused.
    let other = "https://github.com/acme/app/.github/workflows/evil.yml@refs/heads/main";
    refused(
        trusting(&["--subject", other]).wpkg(&["run", &app, "--trusted-root", &root]),
        "an identity the policy does not trust",
    );
    refused(
        trusting(&["--subject-regexp", "acme"]).wpkg(&["run", &app, "--trusted-root", &root]),
        "an identity the policy does not trust",
    );
    let wrong_issuer = Env::new();
    wrong_issuer
        .wpkg(&[
            "trust",
            "add",
            &scope,
            "--issuer",
            "https://accounts.google.com",
            "--subject",
            WORKFLOW,
        ])
        .ok();
    refused(
        wrong_issuer.wpkg(&["run", &app, "--trusted-root", &root]),
        "does not trust",
    );
    // Without the test root, the shipped public-good root does not know this CA or log.
    refused(
        trusting(&["--subject", WORKFLOW]).wpkg(&["run", &app]),
        "a log the trust root does not know",
    );
    // A key-only scope does not accept a keyless signature.
    let (_k, pubkey) = keygen(&publisher, "k");
    refused(
        consumer(&scope, &pubkey).wpkg(&["run", &app, "--trusted-root", &root]),
        "trusts keys only",
    );

    // A signature whose Rekor entry is for another payload: refused.
    let (_, mut forged) = sigstore.sign(
        WORKFLOW,
        GH_ISSUER,
        &format!("{}/acme/app", reg.host),
        &digest,
    );
    let (other_payload, other_ann) = sigstore.sign(
        WORKFLOW,
        GH_ISSUER,
        "x/y",
        &format!("sha256:{}", "0".repeat(64)),
    );
    forged["dev.sigstore.cosign/bundle"] = other_ann["dev.sigstore.cosign/bundle"].clone();
    let _ = other_payload;
    put_keyless_signature(&reg.host, "acme/app", &digest, &payload, forged);
    refused(
        trusting(&["--subject", WORKFLOW]).wpkg(&["run", &app, "--trusted-root", &root]),
        "for another signature",
    );
}

/// cosign appends one layer to the `.sig` manifest per signing, so a busy image's has
/// many. One with 60 layers, the only valid one last, verifies; the control, the same
/// manifest without that layer, does not.
#[test]
fn a_sig_manifest_with_60_layers_verifies_by_its_last() {
    let reg = Registry::start(Setup::Plain);
    let publisher = Env::new();
    let (key, pubkey) = keygen(&publisher, "acme");
    let digest = hello(&publisher, "Busy");
    let app = format!("{}/acme/busy:1", reg.host);
    wpkg_pw(
        &publisher,
        &["push", "--sign", "--key", &key, "hello:0.1.0", &app],
    )
    .ok();
    let sig: serde_json::Value =
        serde_json::from_str(&local_sig_manifest(&publisher, &digest)).unwrap();
    let valid = sig["layers"][0].clone();
    let mut layers = Vec::new();
    for i in 0..59 {
        // Well-formed signature layers by another key: each payload its own blob.
        let payload = valid_payload_variant(&digest, i);
        let d = upload(&reg.host, "acme/busy", payload.as_bytes());
        let mut l = valid.clone();
        l["digest"] = d.into();
        l["size"] = payload.len().into();
        layers.push(l);
    }
    let tag = format!("{}.sig", digest.replacen(':', "-", 1));
    let put = |layers: &[serde_json::Value]| {
        let mut m = sig.clone();
        m["layers"] = layers.to_vec().into();
        put_manifest(
            &reg.host,
            "acme/busy",
            &tag,
            "application/vnd.oci.image.manifest.v1+json",
            &m.to_string(),
        );
    };
    // Control: 59 layers, none valid for the trusted key: refused.
    put(&layers);
    let scope = format!("{}/acme/*", reg.host);
    refused(
        consumer(&scope, &pubkey).wpkg(&["run", &app]),
        "does not verify",
    );
    layers.push(valid);
    put(&layers);
    consumer(&scope, &pubkey)
        .wpkg(&["run", &app])
        .ok()
        .stdout_has("Busy, world!");
    // The good one wins; with -v, `verify` names each bad one and the check it failed.
    let quiet = consumer(&scope, &pubkey).wpkg(&["verify", &app]).ok();
    assert!(!quiet.stderr.contains("not used"), "{}", quiet.stderr);
    let loud = consumer(&scope, &pubkey).wpkg(&["verify", "-v", &app]).ok();
    let bad = loud
        .stderr
        .lines()
        .filter(|l| {
            l.contains("not used: signature") && l.contains("does not verify with any trusted key")
        })
        .count();
    assert_eq!(bad, 59, "{}", loud.stderr);
}

/// A simple-signing payload for `digest` that differs per `i` (so its blob is new),
/// which the signature annotation copied beside it does not sign.
fn valid_payload_variant(digest: &str, i: usize) -> String {
    serde_json::json!({
        "critical": {
            "identity": {"docker-reference": "acme/busy"},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": {"n": i},
    })
    .to_string()
}
