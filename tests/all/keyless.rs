//! Keyless signing and cosign v3 keyless bundles, against a loopback Sigstore instance
//! (GitHub-shaped OIDC token endpoint, Fulcio, Rekor with a real Merkle tree; see
//! `wpkg_tests::sigstore`) and a real registry: sign in "CI", run elsewhere; every bad
//! token and service answer; and each crypto refusal with a control that passes.

use serde_json::{json, Value};
use wpkg_tests::registry::{Registry, Setup};
use wpkg_tests::sigstore_services::TestSigstore;
use wpkg_tests::{Env, Run};

use crate::registry::hello;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The environment a GitHub Actions job with `id-token: write` has, pointed at `ts`.
fn ci_env(ts: &TestSigstore) -> Vec<(&'static str, String)> {
    vec![
        ("ACTIONS_ID_TOKEN_REQUEST_URL", ts.oidc_url.clone()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", ts.request_token.clone()),
        ("WPKG_FULCIO_URL", ts.fulcio_url.clone()),
        ("WPKG_REKOR_URL", ts.rekor_url.clone()),
        (
            "WPKG_TRUSTED_ROOT",
            ts.trusted_root.to_str().unwrap().to_owned(),
        ),
    ]
}

fn run_with(env: &Env, args: &[&str], vars: &[(&'static str, String)]) -> Run {
    let v: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.wpkg_with(args, &v, None)
}

/// A consumer trusting `identity` (issuer of `ts`) for `scope`.
fn trusting(ts: &TestSigstore, scope: &str, identity: &str) -> Env {
    let env = Env::new();
    env.wpkg(&[
        "trust",
        "add",
        scope,
        "--issuer",
        &ts.issuer,
        "--subject",
        identity,
    ])
    .ok();
    env
}

fn refused(r: Run, why: &str) {
    let r = r.code(125).stderr_has("refusing to run").stderr_has(why);
    assert!(!r.stdout.contains("world!"), "the guest ran: {r:#?}");
}

/// GET a manifest or tag from the test registry; `None` when it is not there.
fn registry_get(host: &str, repo: &str, target: &str, accept: &str) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET /v2/{repo}/manifests/{target} HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    Some(resp[split + 4..].to_vec())
}

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn keyless_in_ci_then_run_elsewhere_for_that_workflow_only() {
    let reg = Registry::start(Setup::Plain);
    let publisher = Env::new();
    let ts = TestSigstore::start(publisher.dir.path());
    let digest = hello(&publisher, "Keyless");
    let app = format!("{}/acme/app:1", reg.host);
    let bundle_file = publisher.path("bundle.json");
    let r = run_with(
        &publisher,
        &[
            "push",
            "--sign",
            "--keyless",
            "--bundle",
            bundle_file.to_str().unwrap(),
            "hello:0.1.0",
            &app,
        ],
        &ci_env(&ts),
    )
    .ok()
    .stderr_has("keylessly as ")
    .stderr_has(&ts.identity);
    assert!(r.stdout.contains(&digest), "{r:#?}");
    // Secrets stay out of the output.
    assert!(!r.stderr.contains(&ts.request_token), "{r:#?}");

    // What cosign v3 leaves in a registry without the referrers API: a referrer manifest
    // and the `sha256-<hex>` index listing it.
    let tag = digest.replacen(':', "-", 1);
    let index: Value =
        serde_json::from_slice(&registry_get(&reg.host, "acme/app", &tag, OCI_INDEX).unwrap())
            .unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["artifactType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    let referrer: Value = serde_json::from_slice(
        &registry_get(
            &reg.host,
            "acme/app",
            entry["digest"].as_str().unwrap(),
            OCI_MANIFEST,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(referrer["subject"]["digest"], digest.as_str());
    assert_eq!(
        referrer["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(
        referrer["annotations"]["dev.sigstore.bundle.predicateType"],
        "https://sigstore.dev/cosign/sign/v1"
    );
    let bundle: Value = serde_json::from_slice(&std::fs::read(&bundle_file).unwrap()).unwrap();
    assert_eq!(
        bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"],
        "dsse"
    );

    // Another machine: trusts the workflow, runs it; verify agrees.
    let root = ts.trusted_root.to_str().unwrap();
    let scope = format!("{}/acme/*", reg.host);
    let ok = trusting(&ts, &scope, &ts.identity);
    let r = ok.wpkg(&["run", &app, "--trusted-root", root]).ok();
    assert!(r.stdout.contains("Keyless, world!"), "{r:#?}");
    assert!(r.stderr.contains("keyless signature by"), "{r:#?}");
    ok.wpkg(&["verify", "--remote", &app, "--trusted-root", root])
        .ok();

    // Another workflow of the same repository: refused, and the guest never ran.
    let evil = "https://github.com/acme/app/.github/workflows/evil.yml@refs/heads/main";
    refused(
        trusting(&ts, &scope, evil).wpkg(&["run", &app, "--trusted-root", root]),
        "an identity the policy does not trust",
    );
    // Without the test instance's root, the public-good root knows neither CA nor log.
    refused(
        trusting(&ts, &scope, &ts.identity).wpkg(&["run", &app]),
        "does not know",
    );
}

#[test]
fn keyless_sign_is_the_default_with_an_ambient_token_and_stored_locally() {
    let env = Env::new();
    let ts = TestSigstore::start(env.dir.path());
    let digest = hello(&env, "Local");
    run_with(&env, &["sign", "hello:0.1.0"], &ci_env(&ts))
        .ok()
        .stderr_has("keylessly as ");
    // The bundle is in the local store, attached to the image, and verifies there.
    env.wpkg(&[
        "trust",
        "add",
        "hello",
        "--issuer",
        &ts.issuer,
        "--subject",
        &ts.identity,
    ])
    .ok();
    env.wpkg(&[
        "verify",
        "hello:0.1.0",
        "--trusted-root",
        ts.trusted_root.to_str().unwrap(),
    ])
    .ok()
    .stderr_has("keyless signature by")
    .stdout_has(&digest);
    // Without an ambient token and without --key/--keyless: a clear error.
    env.wpkg(&["sign", "hello:0.1.0"])
        .code(125)
        .stderr_has("--key")
        .stderr_has("--keyless");
}

/// Each failure: exit 125, one clear line, no token in it, nothing pushed, nothing stored.
#[test]
fn bad_tokens_and_failing_services_push_nothing() {
    use wpkg_tests::sigstore_services::Fault;
    let reg = Registry::start(Setup::Plain);
    let env = Env::new();
    let ts = TestSigstore::start(env.dir.path());
    let digest = hello(&env, "Never");
    let tag = digest.replacen(':', "-", 1);
    let nothing_pushed = |repo: &str| {
        assert!(registry_get(&reg.host, repo, "1", OCI_MANIFEST).is_none());
        assert!(registry_get(&reg.host, repo, &tag, OCI_INDEX).is_none());
        let index = std::fs::read_to_string(env.home().join("store/index.json")).unwrap();
        assert!(!index.contains(&tag), "a referrer was stored: {index}");
    };
    let mut n = 0;
    let mut attempt = |extra: &[&str], vars: Vec<(&'static str, String)>, why: &str| {
        n += 1;
        let repo = format!("acme/bad{n}");
        let target = format!("{}/{repo}:1", reg.host);
        let mut args = vec!["push", "--sign", "--keyless"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["hello:0.1.0", &target]);
        let r = run_with(&env, &args, &vars).code(125).stderr_has(why);
        let errors = r.stderr.trim().lines().filter(|l| !l.starts_with("hint: "));
        assert_eq!(errors.count(), 1, "one error line (and hints): {r:#?}");
        assert!(!r.stderr.contains(ts.request_token.as_str()), "{r:#?}");
        nothing_pushed(&repo);
        r
    };
    let base = |ts: &TestSigstore| {
        let mut v = ci_env(ts);
        v.retain(|(k, _)| !k.starts_with("ACTIONS_"));
        v
    };
    // No token at all: names both ways to get one.
    attempt(&[], base(&ts), "SIGSTORE_ID_TOKEN");
    // Expired, for another audience, garbled, from an issuer Fulcio does not know.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expired = ts.mint_token(json!({"exp": now - 60, "iat": now - 600, "nbf": now - 600}));
    let r = attempt(&["--identity-token", &expired], base(&ts), "expired");
    assert!(!r.stderr.contains(&expired));
    let other_aud = ts.mint_token(json!({"aud": "not-sigstore"}));
    attempt(&["--identity-token", &other_aud], base(&ts), "audience");
    attempt(&["--identity-token", "garbage"], base(&ts), "not a JWT");
    let foreign = ts.mint_foreign_token(json!({}));
    attempt(&["--identity-token", &foreign], base(&ts), "Fulcio");
    // A token from the environment works the same way (and is not printed).
    let mut vars = base(&ts);
    vars.push(("SIGSTORE_ID_TOKEN", expired.clone()));
    attempt(&[], vars, "expired");

    // The services failing.
    for (fault, service, why) in [
        (Fault::Down, "fulcio", "Fulcio"),
        (Fault::Garbage, "fulcio", "Fulcio"),
        (Fault::Down, "rekor", "Rekor"),
        (Fault::Garbage, "rekor", "Rekor"),
        (Fault::OtherBody, "rekor", "another envelope"),
    ] {
        ts.set_fault(service, fault);
        attempt(&[], ci_env(&ts), why);
        ts.set_fault(service, Fault::Ok);
    }
    // And a working instance: the same command pushes.
    run_with(
        &env,
        &[
            "push",
            "--sign",
            "--keyless",
            "hello:0.1.0",
            &format!("{}/acme/good:1", reg.host),
        ],
        &ci_env(&ts),
    )
    .ok();
}

#[test]
fn a_registry_refusing_the_referrer_leaves_an_image_reported_unsigned() {
    let reg = Registry::start(Setup::Plain);
    let env = Env::new();
    let ts = TestSigstore::start(env.dir.path());
    let digest = hello(&env, "Half");
    // Something that is not a referrers index already sits at the fallback tag.
    let other = Env::new();
    let other_digest = hello(&other, "Other");
    let squat = format!("{}/acme/app:{}", reg.host, digest.replacen(':', "-", 1));
    other.wpkg(&["push", "hello:0.1.0", &squat]).ok();
    assert_ne!(other_digest, digest);
    let r = run_with(
        &env,
        &[
            "push",
            "--sign",
            "--keyless",
            "hello:0.1.0",
            &format!("{}/acme/app:1", reg.host),
        ],
        &ci_env(&ts),
    )
    .code(125)
    .stderr_has("UNSIGNED");
    assert!(!r.stderr.contains("signed 127"), "{r:#?}");
}

// --- Crypto refusals at the library level: each with its control. ---

/// A good keyless bundle for `digest`, made by wpkg's signer against `ts`.
fn good_bundle(ts: &TestSigstore, digest: &str) -> Value {
    let token =
        wpkg_signing::keyless_sign::IdentityToken::parse(&ts.mint_token(json!({}))).unwrap();
    let instance = wpkg_signing::keyless_sign::Instance {
        fulcio: ts.fulcio_url.clone(),
        rekor: ts.rekor_url.clone(),
        root: root_of(ts, |_| {}),
    };
    let signed = wpkg_signing::keyless_sign::sign(&instance, &token, "r/x", digest, &[]).unwrap();
    serde_json::from_slice(&signed.bundle).unwrap()
}

/// The test instance's trust root, edited by `edit`.
fn root_of(ts: &TestSigstore, edit: impl FnOnce(&mut Value)) -> wpkg_signing::keyless::TrustedRoot {
    let mut v: Value = serde_json::from_slice(&std::fs::read(&ts.trusted_root).unwrap()).unwrap();
    edit(&mut v);
    wpkg_signing::keyless::TrustedRoot::from_json(v.to_string().as_bytes()).unwrap()
}

fn identity(ts: &TestSigstore) -> Vec<wpkg_signing::keyless::Identity> {
    vec![wpkg_signing::keyless::Identity {
        issuer: ts.issuer.clone(),
        subject: Some(ts.identity.clone()),
        subject_regexp: None,
    }]
}

fn check(
    ts: &TestSigstore,
    bundle: &Value,
    digest: &str,
    root: &wpkg_signing::keyless::TrustedRoot,
) -> Result<String, String> {
    wpkg_signing::bundle::verify_keyless_bundle(
        bundle.to_string().as_bytes(),
        digest,
        &identity(ts),
        root,
    )
    .map(|v| v.key)
}

fn flip_b64(v: &mut Value, byte: usize) {
    let mut b = base64::Engine::decode(&B64, v.as_str().unwrap()).unwrap();
    let i = byte.min(b.len() - 1);
    b[i] ^= 1;
    *v = Value::from(base64::Engine::encode(&B64, b));
}

fn expect_refused(r: Result<String, String>, why: &str) {
    match r {
        Ok(who) => panic!("accepted (as {who}), expected a refusal: {why}"),
        Err(e) => assert!(
            e.contains(why),
            "refused for another reason: `{e}`, expected `{why}`"
        ),
    }
}

#[test]
fn every_bundle_check_refuses_its_own_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TestSigstore::start(dir.path());
    let digest = format!("sha256:{}", "ab".repeat(32));
    let good = good_bundle(&ts, &digest);
    let root = root_of(&ts, |_| {});
    // Control: untouched, it verifies.
    check(&ts, &good, &digest, &root).unwrap();

    let tampered = |edit: &dyn Fn(&mut Value)| {
        let mut b = good.clone();
        edit(&mut b);
        check(&ts, &b, &digest, &root)
    };
    let entry = "/verificationMaterial/tlogEntries/0";
    expect_refused(
        tampered(&|b| {
            flip_b64(
                b.pointer_mut(&format!("{entry}/inclusionPromise/signedEntryTimestamp"))
                    .unwrap(),
                20,
            )
        }),
        "signed entry timestamp",
    );
    expect_refused(
        tampered(&|b| {
            flip_b64(
                b.pointer_mut(&format!("{entry}/inclusionProof/hashes/0"))
                    .unwrap(),
                3,
            )
        }),
        "inclusion proof",
    );
    expect_refused(
        tampered(&|b| {
            flip_b64(
                b.pointer_mut(&format!("{entry}/inclusionProof/rootHash"))
                    .unwrap(),
                3,
            )
        }),
        "inclusion proof",
    );
    expect_refused(
        tampered(&|b| {
            let cp = b
                .pointer_mut(&format!("{entry}/inclusionProof/checkpoint/envelope"))
                .unwrap();
            let text = cp.as_str().unwrap();
            // Flip one bit of the signature (after the key hint) in the signature line.
            let (head, sig_line) = text.split_once("\n\n").unwrap();
            let (name, sig) = sig_line.trim_end().rsplit_once(' ').unwrap();
            let mut bytes = base64::Engine::decode(&B64, sig).unwrap();
            let last = bytes.len() - 3;
            bytes[last] ^= 1;
            *cp = Value::from(format!(
                "{head}\n\n{name} {}\n",
                base64::Engine::encode(&B64, bytes)
            ));
        }),
        "checkpoint",
    );
    expect_refused(
        tampered(&|b| {
            let cp = b
                .pointer_mut(&format!("{entry}/inclusionProof/checkpoint/envelope"))
                .unwrap();
            let mut lines: Vec<String> = cp
                .as_str()
                .unwrap()
                .split('\n')
                .map(str::to_owned)
                .collect();
            let size: u64 = lines[1].parse().unwrap();
            lines[1] = (size + 1).to_string();
            *cp = Value::from(lines.join("\n"));
        }),
        "checkpoint",
    );
    expect_refused(
        tampered(&|b| flip_b64(b.pointer_mut("/dsseEnvelope/signatures/0/sig").unwrap(), 12)),
        "another envelope",
    );
    expect_refused(
        tampered(&|b| flip_b64(b.pointer_mut("/dsseEnvelope/payload").unwrap(), 40)),
        "another envelope",
    );
    expect_refused(
        tampered(&|b| {
            flip_b64(
                b.pointer_mut(&format!("{entry}/canonicalizedBody"))
                    .unwrap(),
                30,
            )
        }),
        "signed entry timestamp",
    );
    // A statement for another digest.
    let other = format!("sha256:{}", "cd".repeat(32));
    expect_refused(check(&ts, &good, &other, &root), "another image");
    // The log key's validity ends before the entry: SET outside its log key's validity.
    let old_log = root_of(&ts, |v| {
        v["tlogs"][0]["publicKey"]["validFor"] =
            json!({"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"});
    });
    expect_refused(
        check(&ts, &good, &digest, &old_log),
        "outside the log key's validity",
    );
    // The CA's validFor ends before the entry.
    let old_ca = root_of(&ts, |v| {
        v["certificateAuthorities"][0]["validFor"] =
            json!({"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"});
    });
    expect_refused(check(&ts, &good, &digest, &old_ca), "valid at that time");
    // The CT log unknown to the root: the SCT cannot be checked.
    let no_ct = root_of(&ts, |v| v["ctlogs"] = json!([]));
    expect_refused(check(&ts, &good, &digest, &no_ct), "SCT");
}

/// Certificates Fulcio must never issue, each logged properly in Rekor (so the
/// certificate check is what refuses), in a bundle and in the classic form.
#[test]
fn every_certificate_check_refuses_its_own_bad_leaf() {
    use wpkg_tests::sigstore_services::LeafOptions;
    let dir = tempfile::tempdir().unwrap();
    let ts = TestSigstore::start(dir.path());
    let digest = format!("sha256:{}", "ef".repeat(32));
    let root = root_of(&ts, |_| {});
    let cases: Vec<(LeafOptions, &str)> = vec![
        (LeafOptions::default(), ""),
        (
            LeafOptions {
                other_ca: true,
                ..Default::default()
            },
            "does not chain",
        ),
        (
            LeafOptions {
                expired: true,
                ..Default::default()
            },
            "not valid when the entry was logged",
        ),
        (
            LeafOptions {
                no_code_signing: true,
                ..Default::default()
            },
            "not for code signing",
        ),
        (
            LeafOptions {
                is_ca: true,
                ..Default::default()
            },
            "a CA certificate",
        ),
        (
            LeafOptions {
                unknown_critical: true,
                ..Default::default()
            },
            "critical extension",
        ),
        (
            LeafOptions {
                no_sct: true,
                ..Default::default()
            },
            "no signed certificate timestamp",
        ),
    ];
    for (opts, why) in cases {
        let leaf = ts.issue_leaf(&opts);
        // The bundle form: a DSSE statement signed with the leaf, logged as a dsse entry.
        let payload = wpkg_signing::keyless_sign::statement("r/x", &digest);
        let sig = leaf.sign(&wpkg_signing::bundle::dsse_pae(
            wpkg_signing::keyless_sign::IN_TOTO,
            &payload,
        ));
        let answer = ts.log_dsse(&payload, &sig, &leaf.der);
        let (bundle, _) =
            wpkg_signing::keyless_sign::assemble_bundle(&leaf.der, &payload, &sig, &answer)
                .unwrap();
        let r =
            wpkg_signing::bundle::verify_keyless_bundle(&bundle, &digest, &identity(&ts), &root)
                .map(|v| v.key);
        if why.is_empty() {
            r.unwrap();
            // With a good leaf, the DSSE check itself: a log that recorded a flipped
            // signature, or the hash of another payload, still does not make them verify.
            let mut bad_sig = sig.clone();
            let n = bad_sig.len() - 2;
            bad_sig[n] ^= 1;
            let answer = ts.log_dsse(&payload, &bad_sig, &leaf.der);
            let (b, _) =
                wpkg_signing::keyless_sign::assemble_bundle(&leaf.der, &payload, &bad_sig, &answer)
                    .unwrap();
            expect_refused(
                wpkg_signing::bundle::verify_keyless_bundle(&b, &digest, &identity(&ts), &root)
                    .map(|v| v.key),
                "DSSE signature does not verify",
            );
            let mut bad_payload = payload.clone();
            bad_payload[5] ^= 1;
            let answer = ts.log_dsse(&bad_payload, &sig, &leaf.der);
            let (b, _) =
                wpkg_signing::keyless_sign::assemble_bundle(&leaf.der, &bad_payload, &sig, &answer)
                    .unwrap();
            expect_refused(
                wpkg_signing::bundle::verify_keyless_bundle(&b, &digest, &identity(&ts), &root)
                    .map(|v| v.key),
                "DSSE signature does not verify",
            );
        } else {
            expect_refused(r, why);
        }
        // The classic form: a simple-signing payload, a hashedrekord entry.
        let payload = wpkg_signing::classic::simple_signing_payload("r/x", &digest);
        let sig = leaf.sign(&payload);
        let rekor_bundle = ts.log_hashedrekord(&payload, &sig, &leaf.der);
        let r = wpkg_signing::keyless::verify_classic_keyless(
            &payload,
            &sig,
            &leaf.pem(),
            Some(&rekor_bundle),
            &root,
            &identity(&ts),
        );
        if why.is_empty() {
            r.unwrap();
        } else {
            expect_refused(r, why);
        }
    }
}

// --- Independent verification: sigstore-python (installed by scripts/setup.sh). ---

fn sigstore_python() -> std::path::PathBuf {
    wpkg_tests::registry::which("sigstore").unwrap_or_else(|| {
        panic!("sigstore-python's `sigstore` command is not installed; run `bash scripts/setup.sh` (pip install sigstore)")
    })
}

#[test]
fn sigstore_python_verifies_what_wpkg_signs() {
    let sigstore = sigstore_python();
    let env = Env::new();
    let ts = TestSigstore::start(env.dir.path());
    let digest = hello(&env, "Interop");
    let bundle = env.path("wpkg.sigstore.json");
    run_with(
        &env,
        &[
            "sign",
            "--keyless",
            "--bundle",
            bundle.to_str().unwrap(),
            "hello:0.1.0",
        ],
        &ci_env(&ts),
    )
    .ok();
    // The signed subject is the manifest: its bytes are the "artifact" sigstore checks.
    let manifest = env.path("manifest.json");
    std::fs::copy(
        env.home()
            .join("store/blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
        &manifest,
    )
    .unwrap();
    let verify = |identity: &str| {
        std::process::Command::new(&sigstore)
            .arg("--trust-config")
            .arg(&ts.trust_config)
            .args(["verify", "identity", "--offline", "--bundle"])
            .arg(&bundle)
            .args([
                "--cert-identity",
                identity,
                "--cert-oidc-issuer",
                &ts.issuer,
            ])
            .arg(&manifest)
            .output()
            .unwrap()
    };
    let ok = verify(&ts.identity);
    assert!(
        ok.status.success(),
        "sigstore-python refused wpkg's bundle: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Control: the same verifier refuses another identity, so the check above can fail.
    let other = verify("https://github.com/acme/app/.github/workflows/evil.yml@refs/heads/main");
    assert!(!other.status.success());
}

#[test]
fn wpkg_verifies_what_sigstore_python_signs() {
    let reg = Registry::start(Setup::Plain);
    let env = Env::new();
    let ts = TestSigstore::start(env.dir.path());
    let digest = hello(&env, "Python");
    let app = format!("{}/acme/app:1", reg.host);
    env.wpkg(&["push", "hello:0.1.0", &app]).ok();
    // sigstore-python signs a cosign-shaped statement for the digest (DSSE, Rekor v1).
    let bundle = env.path("py.sigstore.json");
    let token = ts.mint_token(json!({}));
    let out = std::process::Command::new("python3")
        .arg(wpkg_tests::root().join("tests/sigstore/pysigstore.py"))
        .arg("sign-dsse")
        .arg("--trust-config")
        .arg(&ts.trust_config)
        .args(["--token", &token, "--digest", &digest, "--out"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sigstore-python did not sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle_bytes = std::fs::read(&bundle).unwrap();
    // Attached as cosign attaches it (referrer + fallback index), by hand.
    let manifest = registry_get(&reg.host, "acme/app", "1", OCI_MANIFEST).unwrap();
    let subject = wpkg_signing::bundle::bundle_referrer(
        &bundle_bytes,
        &wpkg_spec::media::Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: digest.clone(),
            size: manifest.len() as u64,
            artifact_type: None,
            annotations: Default::default(),
            platform: None,
        },
        "2026-01-01T00:00:00Z",
    );
    for blob in &subject.blobs {
        crate::trust::upload(&reg.host, "acme/app", blob);
    }
    crate::registry::put_manifest(
        &reg.host,
        "acme/app",
        &subject.descriptor.digest,
        OCI_MANIFEST,
        std::str::from_utf8(&subject.manifest).unwrap(),
    );
    let index =
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [subject.descriptor]});
    crate::registry::put_manifest(
        &reg.host,
        "acme/app",
        &digest.replacen(':', "-", 1),
        OCI_INDEX,
        &index.to_string(),
    );
    let scope = format!("{}/acme/*", reg.host);
    let root = ts.trusted_root.to_str().unwrap();
    let r = trusting(&ts, &scope, &ts.identity)
        .wpkg(&["run", &app, "--trusted-root", root])
        .ok();
    assert!(r.stdout.contains("Python, world!"), "{r:#?}");
    // Control: another identity is refused for the same bundle.
    refused(
        trusting(
            &ts,
            &scope,
            "https://github.com/acme/other/.github/workflows/x.yml@refs/heads/main",
        )
        .wpkg(&["run", &app, "--trusted-root", root]),
        "does not trust",
    );
}

/// `scripts/try-action.sh`: action.yml's steps in a simulated runner, keyless signing
/// against the test instance, push, then a fresh machine runs it and another workflow
/// identity is refused. Its output files verify with sigstore-python too.
#[test]
fn the_github_action_runs_end_to_end_locally() {
    let out = tempfile::tempdir().unwrap();
    let r = std::process::Command::new("bash")
        .arg(wpkg_tests::root().join("scripts/try-action.sh"))
        .env("WPKG_TRY_OUT", out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "try-action.sh failed:\n{stderr}");
    assert!(String::from_utf8_lossy(&r.stdout).contains("try-action: OK"));
    for f in [
        "manifest.json",
        "bundle.json",
        "trust_config.json",
        "trusted_root.json",
    ] {
        assert!(out.path().join(f).is_file(), "{f} missing");
    }
    let ok = std::process::Command::new(sigstore_python())
        .current_dir(out.path())
        .args([
            "--trust-config",
            "trust_config.json",
            "verify",
            "identity",
            "--offline",
        ])
        .args(["--bundle", "bundle.json", "--cert-identity"])
        .arg(format!(
            "https://github.com/{}",
            wpkg_tests::sigstore_services::WORKFLOW_REF
        ))
        .args([
            "--cert-oidc-issuer",
            wpkg_tests::sigstore_services::GITHUB_ISSUER,
        ])
        .arg("manifest.json")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
