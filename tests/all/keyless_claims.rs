//! The GitHub claims Fulcio copies from the token into the certificate (source
//! repository, ref, trigger, runner environment...), matched by `wpkg verify`'s cosign
//! flags and by `wpkg trust add --github` rules; `verify --json` reports them. The test
//! Fulcio makes the claim extensions from the token as Fulcio's GitHub template does.

use serde_json::{json, Value};
use wpkg_tests::sigstore_services::TestSigstore;
use wpkg_tests::Env;

use crate::keyless::{ci_env, run_with};
use crate::registry::hello;

/// Signs `hello:0.1.0` in `env` with a token carrying `overrides` of GitHub's claims.
fn sign_as(env: &Env, ts: &TestSigstore, overrides: Value) {
    let token = ts.mint_token(overrides);
    run_with(
        env,
        &["sign", "hello:0.1.0", "--identity-token", &token],
        &ci_env(ts),
    )
    .ok();
}

#[test]
fn verify_matches_the_certificates_github_claims_and_reports_them_as_json() {
    let env = Env::new();
    let ts = TestSigstore::start(env.dir.path());
    let digest = hello(&env, "Local");
    sign_as(&env, &ts, json!({}));
    let root = ts.trusted_root.to_str().unwrap();
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "verify",
            "hello:0.1.0",
            "--trusted-root",
            root,
            "--certificate-identity",
            &ts.identity,
            "--certificate-oidc-issuer",
            &ts.issuer,
        ];
        args.extend_from_slice(extra);
        env.wpkg(&args)
    };
    // Control: every claim as the token had it.
    verify(&[
        "--certificate-github-workflow-repository",
        "acme/app",
        "--certificate-github-workflow-ref",
        "refs/tags/v1.0.0",
        "--certificate-github-workflow-trigger",
        "push",
        "--certificate-github-workflow-sha",
        "0123456789abcdef0123456789abcdef01234567",
        "--certificate-claim",
        "runner_environment=github-hosted",
    ])
    .ok()
    .stdout_has(&digest);
    verify(&[
        "--certificate-claim-regexp",
        "source_repository_ref=refs/tags/v.*",
    ])
    .ok();
    // Each claim, wrong: not verified (exit 1), naming the claim and what was found.
    for (flag, value, claim) in [
        (
            "--certificate-github-workflow-repository",
            "evil/x",
            "source repository URI",
        ),
        (
            "--certificate-github-workflow-ref",
            "refs/heads/main",
            "source repository ref",
        ),
        (
            "--certificate-github-workflow-trigger",
            "pull_request",
            "build trigger",
        ),
        (
            "--certificate-claim",
            "runner_environment=self-hosted",
            "runner environment",
        ),
        (
            "--certificate-claim-regexp",
            "build_signer_uri=https://github.com/evil/.*",
            "build signer URI",
        ),
    ] {
        verify(&[flag, value])
            .code(1)
            .stderr_has(&format!("its {claim} is"))
            .stderr_has("hint:");
    }
    // An issuer regexp (anchored) instead of the exact issuer.
    let issuer_re = format!("{}.*", regex_escape(&ts.issuer[..ts.issuer.len() - 3]));
    env.wpkg(&[
        "verify",
        "hello:0.1.0",
        "--trusted-root",
        root,
        "--certificate-identity",
        &ts.identity,
        "--certificate-oidc-issuer-regexp",
        &issuer_re,
    ])
    .ok();
    env.wpkg(&[
        "verify",
        "hello:0.1.0",
        "--trusted-root",
        root,
        "--certificate-identity",
        &ts.identity,
        "--certificate-oidc-issuer-regexp",
        "token",
    ])
    .code(1);
    // A claim Fulcio does not issue: a usage error, not "not verified".
    verify(&["--certificate-claim", "colour=blue"])
        .code(125)
        .stderr_has("not a Fulcio certificate claim");
    verify(&["--certificate-claim", "no-equals-sign"])
        .code(125)
        .stderr_has("NAME=VALUE");

    // --json: the certificate's claims, the rule, and what was compared.
    let r = verify(&[
        "--certificate-github-workflow-repository",
        "acme/app",
        "--json",
    ])
    .ok();
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verified"], true, "{v:#}");
    assert_eq!(v["digest"], digest.as_str());
    let signer = &v["signer"];
    assert_eq!(signer["kind"], "keyless");
    assert_eq!(signer["certificate"]["issuer"], ts.issuer.as_str());
    assert_eq!(signer["certificate"]["subjects"][0], ts.identity.as_str());
    let claims = &signer["certificate"]["claims"];
    assert_eq!(
        claims["source_repository_uri"],
        "https://github.com/acme/app"
    );
    assert_eq!(claims["source_repository_ref"], "refs/tags/v1.0.0");
    assert_eq!(claims["runner_environment"], "github-hosted");
    assert_eq!(claims["build_trigger"], "push");
    let compared: Vec<&str> = signer["compared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(compared, ["issuer", "subject", "source_repository_uri"]);
    assert!(signer["signed_at"].as_str().unwrap().ends_with('Z'));
    // --json when not verified: exit 1, the failed check by name.
    let r = verify(&[
        "--certificate-github-workflow-repository",
        "evil/x",
        "--json",
    ])
    .code(1);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verified"], false);
    assert_eq!(v["rejected"][0]["check"], "claim", "{v:#}");
}

/// A reusable workflow of acme/app (same SAN as acme/app's own release workflow) called
/// from evil/x: `trust add --github acme/app` refuses it by the source repository claim,
/// where a subject-only rule would accept it (the control shows the difference).
#[test]
fn trust_add_github_refuses_a_reusable_workflow_called_from_another_repository() {
    let ts_dir = tempfile::tempdir().unwrap();
    let ts = TestSigstore::start(ts_dir.path());
    let root = ts.trusted_root.to_str().unwrap().to_owned();
    let verify = |env: &Env| env.wpkg(&["verify", "hello:0.1.0", "--trusted-root", &root]);

    let own = Env::new();
    hello(&own, "Local");
    sign_as(&own, &ts, json!({}));
    let called_from_evil = Env::new();
    hello(&called_from_evil, "Local");
    sign_as(
        &called_from_evil,
        &ts,
        json!({"repository": "evil/x", "repository_owner": "evil",
               "workflow_ref": "evil/x/.github/workflows/ci.yml@refs/heads/main"}),
    );

    for env in [&own, &called_from_evil] {
        env.wpkg(&[
            "trust",
            "add",
            "hello",
            "--github",
            "acme/app",
            "--workflow",
            "release.yml",
        ])
        .ok()
        .stderr_has("source_repository_uri=https://github.com/acme/app");
    }
    // Control: acme/app's own run verifies.
    verify(&own).ok();
    verify(&called_from_evil)
        .code(1)
        .stderr_has("its source repository URI is `https://github.com/evil/x`");
    // The same SAN alone (no claim) would have accepted evil/x's run.
    called_from_evil.wpkg(&["trust", "rm", "hello"]).ok();
    called_from_evil
        .wpkg(&[
            "trust",
            "add",
            "hello",
            "--issuer",
            &ts.issuer,
            "--subject",
            &ts.identity,
        ])
        .ok();
    verify(&called_from_evil).ok();

    // --ref-regexp and --github-hosted narrow the rule further.
    own.wpkg(&["trust", "rm", "hello"]).ok();
    own.wpkg(&[
        "trust",
        "add",
        "hello",
        "--github",
        "acme/app",
        "--ref-regexp",
        "refs/heads/.*",
    ])
    .ok();
    verify(&own).code(1).stderr_has("source repository ref");
    own.wpkg(&["trust", "rm", "hello"]).ok();
    own.wpkg(&[
        "trust",
        "add",
        "hello",
        "--github",
        "acme/app",
        "--ref",
        "refs/tags/v1.0.0",
        "--github-hosted",
    ])
    .ok();
    verify(&own).ok();
    let list = own.wpkg(&["trust", "list", "--json"]).ok();
    assert!(
        list.stdout.contains("runner_environment=github-hosted"),
        "{}",
        list.stdout
    );
    // Bad rules are refused before anything is written.
    own.wpkg(&["trust", "add", "x", "--github", "not-a-repo"])
        .code(125)
        .stderr_has("OWNER/REPO");
    own.wpkg(&["trust", "add", "x", "--workflow", "r.yml"])
        .code(2);
    own.wpkg(&[
        "trust",
        "add",
        "x",
        "--github",
        "acme/app",
        "--claim",
        "colour=blue",
    ])
    .code(125)
    .stderr_has("not a Fulcio certificate claim");
    let list = own.wpkg(&["trust", "list"]).ok();
    assert!(
        !list.stdout.contains("docker.io/library/x"),
        "{}",
        list.stdout
    );
}

fn regex_escape(s: &str) -> String {
    wpkg_signing::keyless::claims::regexp_escape(s)
}
