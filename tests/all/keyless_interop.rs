//! Keyless interop and the CI path: sigstore-python verifies what wpkg signs and wpkg
//! verifies what sigstore-python signs; the GitHub Action runs end to end locally.

use crate::registry::hello;
use serde_json::json;
use wpkg_tests::registry::{Registry, Setup};
use wpkg_tests::sigstore_services::TestSigstore;
use wpkg_tests::Env;

use crate::keyless::*;

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
