//! `wpkg sign-blob` / `wpkg verify-blob`: a file's Sigstore bundle with a key and
//! keyless, and both ways with sigstore-python against the loopback Sigstore instance.

use serde_json::json;
use wpkg_tests::sigstore_services::TestSigstore;
use wpkg_tests::Env;

use crate::keyless::{ci_env, run_with};

fn sigstore_python() -> std::path::PathBuf {
    wpkg_tests::registry::which("sigstore").unwrap_or_else(|| {
        panic!("sigstore-python's `sigstore` command is not installed; run `bash scripts/setup.sh` (pip install sigstore)")
    })
}

#[test]
fn sign_blob_and_verify_blob_with_a_key() {
    let env = Env::new();
    let file = env.path("release.tar.gz");
    std::fs::write(&file, b"a release archive, for the test").unwrap();
    let (f, bundle) = (file.to_str().unwrap(), env.path("release.sigstore.json"));
    let b = bundle.to_str().unwrap();
    let key = |prefix: &str| {
        env.wpkg_with(
            &[
                "keygen",
                "--output-key-prefix",
                &env.path(prefix).to_string_lossy(),
            ],
            &[("COSIGN_PASSWORD", "")],
            None,
        )
        .ok();
        env.path(prefix).to_string_lossy().into_owned()
    };
    let (mine, other) = (key("mine"), key("other"));
    let sign = |args: &[&str]| {
        let mut a = vec!["sign-blob"];
        a.extend_from_slice(args);
        env.wpkg_with(&a, &[("COSIGN_PASSWORD", "")], None)
    };
    // No --bundle: refused, nothing written.
    sign(&["--key", &format!("{mine}.key"), f])
        .code(125)
        .stderr_has("--bundle");
    assert!(!bundle.exists());
    sign(&["--key", &format!("{mine}.key"), "--bundle", b, f])
        .ok()
        .stderr_has("signed");
    let verify = |args: &[&str]| {
        let mut a = vec!["verify-blob", "--bundle", b];
        a.extend_from_slice(args);
        env.wpkg(&a)
    };
    let mine_pub = format!("{mine}.pub");
    verify(&["--key", &mine_pub, f]).ok().stderr_has("verified");
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            std::fs::read(&file).unwrap()
        ))
    );
    verify(&["--key", &mine_pub, &digest]).ok();
    // Controls: another key, another file content, no trust given, a broken bundle.
    verify(&["--key", &format!("{other}.pub"), f])
        .code(1)
        .stderr_has("does not verify with any trusted key");
    let changed = env.path("changed.tar.gz");
    std::fs::write(&changed, b"a release archive, for the test!").unwrap();
    verify(&["--key", &mine_pub, changed.to_str().unwrap()]).code(1);
    verify(&[f]).code(125).stderr_has("hint: give --key");
    std::fs::write(env.path("broken.json"), b"{\"mediaType\":").unwrap();
    env.wpkg(&[
        "verify-blob",
        "--bundle",
        env.path("broken.json").to_str().unwrap(),
        "--key",
        &mine_pub,
        f,
    ])
    .code(1)
    .stderr_has("not sigstore bundle JSON");
    env.wpkg(&[
        "verify-blob",
        "--bundle",
        "/nonexistent",
        "--key",
        &mine_pub,
        f,
    ])
    .code(125)
    .stderr_has("cannot read the bundle");
}

#[test]
fn keyless_blob_bundles_interoperate_with_sigstore_python() {
    let sigstore = sigstore_python();
    let env = Env::new();
    let ts = TestSigstore::start(env.dir.path());
    let file = env.path("artifact.bin");
    std::fs::write(&file, b"bytes to sign keylessly").unwrap();
    let f = file.to_str().unwrap();
    let root = ts.trusted_root.to_str().unwrap().to_owned();
    let ours = env.path("wpkg.sigstore.json");
    run_with(
        &env,
        &[
            "sign-blob",
            "--keyless",
            "--bundle",
            ours.to_str().unwrap(),
            f,
        ],
        &ci_env(&ts),
    )
    .ok()
    .stderr_has("Rekor log index");
    let verify = |bundle: &std::path::Path, identity: &str, file: &str| {
        env.wpkg(&[
            "verify-blob",
            "--bundle",
            bundle.to_str().unwrap(),
            "--trusted-root",
            &root,
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            &ts.issuer,
            file,
        ])
    };
    verify(&ours, &ts.identity, f).ok();
    verify(
        &ours,
        "https://github.com/evil/x/.github/workflows/a.yml@refs/heads/main",
        f,
    )
    .code(1)
    .stderr_has("does not trust");
    let changed = env.path("changed.bin");
    std::fs::write(&changed, b"bytes to sign keylessly!").unwrap();
    verify(&ours, &ts.identity, changed.to_str().unwrap()).code(1);

    // sigstore-python checks wpkg's bundle (and refuses another identity: the control).
    let py_verify = |bundle: &std::path::Path, identity: &str| {
        std::process::Command::new(&sigstore)
            .arg("--trust-config")
            .arg(&ts.trust_config)
            .args(["verify", "identity", "--offline", "--bundle"])
            .arg(bundle)
            .args([
                "--cert-identity",
                identity,
                "--cert-oidc-issuer",
                &ts.issuer,
            ])
            .arg(&file)
            .output()
            .unwrap()
    };
    let out = py_verify(&ours, &ts.identity);
    assert!(
        out.status.success(),
        "sigstore-python refused wpkg's blob bundle: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!py_verify(&ours, "someone@else.example").status.success());

    // wpkg checks sigstore-python's blob bundle.
    let theirs = env.path("py.sigstore.json");
    let token = ts.mint_token(json!({}));
    let out = std::process::Command::new(&sigstore)
        .arg("--trust-config")
        .arg(&ts.trust_config)
        .args(["sign", "--identity-token", &token, "--bundle"])
        .arg(&theirs)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sigstore-python did not sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    verify(&theirs, &ts.identity, f).ok();
    verify(&theirs, &ts.identity, changed.to_str().unwrap()).code(1);
}

/// Keyless signing with an RFC 3161 timestamp authority (`--timestamp-server-url`, or a
/// Sigstore signing config that lists one): the bundle carries a signed timestamp that
/// wpkg and sigstore-python check; a tampered timestamp, or a trust root without that
/// authority, is refused (the controls for the timestamp checks).
#[test]
fn keyless_signing_with_a_timestamp_authority() {
    let sigstore = sigstore_python();
    let env = Env::new();
    let ts = TestSigstore::start(env.dir.path());
    let file = env.path("artifact.bin");
    std::fs::write(&file, b"timestamped bytes").unwrap();
    let f = file.to_str().unwrap();
    let bundle = env.path("ts.sigstore.json");
    let b = bundle.to_str().unwrap();
    run_with(
        &env,
        &[
            "sign-blob",
            "--keyless",
            "--timestamp-server-url",
            &ts.tsa_url,
            "--bundle",
            b,
            f,
        ],
        &ci_env(&ts),
    )
    .ok();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let stamp = &v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
        ["signedTimestamp"];
    assert!(stamp.is_string(), "no signed timestamp in {v:#}");
    let verify = |bundle: &str, root: &str| {
        env.wpkg(&[
            "verify-blob",
            "--bundle",
            bundle,
            "--trusted-root",
            root,
            "--certificate-identity",
            &ts.identity,
            "--certificate-oidc-issuer",
            &ts.issuer,
            f,
        ])
    };
    let root = ts.trusted_root.to_str().unwrap();
    verify(b, root).ok();
    // sigstore-python checks the timestamp too.
    let out = std::process::Command::new(&sigstore)
        .arg("--trust-config")
        .arg(&ts.trust_config)
        .args(["verify", "identity", "--offline", "--bundle", b])
        .args([
            "--cert-identity",
            &ts.identity,
            "--cert-oidc-issuer",
            &ts.issuer,
            f,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sigstore-python refused the timestamped bundle: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A timestamp with one bit flipped in its signature: refused by the timestamp check.
    let mut tampered = v.clone();
    let der = base64::Engine::decode(&crate::keyless::B64, stamp.as_str().unwrap()).unwrap();
    let mut der2 = der.clone();
    let n = der2.len() - 3;
    der2[n] ^= 1;
    tampered["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
        ["signedTimestamp"] = base64::Engine::encode(&crate::keyless::B64, &der2).into();
    std::fs::write(env.path("tampered.json"), tampered.to_string()).unwrap();
    verify(env.path("tampered.json").to_str().unwrap(), root)
        .code(1)
        .stderr_has("signed timestamp");
    // A trust root that does not list this authority.
    let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(root).unwrap()).unwrap();
    r["timestampAuthorities"] = serde_json::json!([]);
    std::fs::write(env.path("no-tsa.json"), r.to_string()).unwrap();
    verify(b, env.path("no-tsa.json").to_str().unwrap())
        .code(1)
        .stderr_has("timestamp authority the trust root does not list");

    // A Sigstore signing config chooses the services (here with the authority).
    let service = |url: &str, v: u32| {
        serde_json::json!({"url": url, "majorApiVersion": v,
                           "validFor": {"start": "2020-01-01T00:00:00Z"}, "operator": "test"})
    };
    let config = |rekor_version: u32| {
        serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [service(&ts.fulcio_url, 1)],
            "oidcUrls": [],
            "rekorTlogUrls": if rekor_version == 2 {
                serde_json::json!([service(&ts.rekor2_url, 2), service(&ts.rekor_url, 1)])
            } else {
                serde_json::json!([service(&ts.rekor_url, 1)])
            },
            "tsaUrls": [service(&ts.tsa_url, 1)],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        })
        .to_string()
    };
    std::fs::write(env.path("signing.json"), config(1)).unwrap();
    let by_config = env.path("config.sigstore.json");
    run_with(
        &env,
        &[
            "sign-blob",
            "--keyless",
            "--signing-config",
            env.path("signing.json").to_str().unwrap(),
            "--bundle",
            by_config.to_str().unwrap(),
            f,
        ],
        &ci_env(&ts),
    )
    .ok();
    let c = std::fs::read_to_string(&by_config).unwrap();
    assert!(c.contains("rfc3161Timestamps"), "{c}");
    verify(by_config.to_str().unwrap(), root).ok();
    // A Rekor v2 log in the config: a hashedrekord 0.0.2 entry, with the timestamp.
    std::fs::write(env.path("v2.json"), config(2)).unwrap();
    let v2 = env.path("v2.sigstore.json");
    run_with(
        &env,
        &[
            "sign-blob",
            "--keyless",
            "--signing-config",
            env.path("v2.json").to_str().unwrap(),
            "--bundle",
            v2.to_str().unwrap(),
            f,
        ],
        &ci_env(&ts),
    )
    .ok();
    let b2: serde_json::Value = serde_json::from_slice(&std::fs::read(&v2).unwrap()).unwrap();
    assert_eq!(
        b2["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"], "0.0.2",
        "{b2:#}"
    );
    verify(v2.to_str().unwrap(), root).ok();
    let out = std::process::Command::new(&sigstore)
        .arg("--trust-config")
        .arg(&ts.trust_config)
        .args([
            "verify",
            "identity",
            "--offline",
            "--bundle",
            v2.to_str().unwrap(),
        ])
        .args([
            "--cert-identity",
            &ts.identity,
            "--cert-oidc-issuer",
            &ts.issuer,
            f,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sigstore-python refused wpkg's Rekor v2 bundle: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same bundle without its timestamp: a Rekor v2 entry alone gives no time.
    let mut bare = b2.clone();
    bare["verificationMaterial"]
        .as_object_mut()
        .unwrap()
        .remove("timestampVerificationData");
    std::fs::write(env.path("bare.json"), bare.to_string()).unwrap();
    verify(env.path("bare.json").to_str().unwrap(), root)
        .code(1)
        .stderr_has("no signed timestamp");
    // sigstore-python signs through the Rekor v2 log (with the authority); wpkg verifies.
    let theirs = env.path("py-v2.sigstore.json");
    let token = ts.mint_token(serde_json::json!({}));
    let out = std::process::Command::new(&sigstore)
        .arg("--trust-config")
        .arg(&ts.trust_config_v2)
        .args(["sign", "--identity-token", &token, "--bundle"])
        .arg(&theirs)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sigstore-python did not sign through Rekor v2: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: serde_json::Value = serde_json::from_slice(&std::fs::read(&theirs).unwrap()).unwrap();
    assert_eq!(
        py["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"],
        "0.0.2"
    );
    verify(theirs.to_str().unwrap(), root).ok();
    // A Rekor v2 log and no timestamp authority: refused before anything is signed.
    let mut no_tsa: serde_json::Value = serde_json::from_str(&config(2)).unwrap();
    no_tsa["tsaUrls"] = serde_json::json!([]);
    no_tsa["rekorTlogUrls"] = serde_json::json!([service(&ts.rekor2_url, 2)]);
    std::fs::write(env.path("v2only.json"), no_tsa.to_string()).unwrap();
    run_with(
        &env,
        &[
            "sign-blob",
            "--keyless",
            "--signing-config",
            env.path("v2only.json").to_str().unwrap(),
            "--bundle",
            env.path("never.json").to_str().unwrap(),
            f,
        ],
        &ci_env(&ts),
    )
    .code(125)
    .stderr_has("no Rekor log");
    assert!(!env.path("never.json").exists());
}
