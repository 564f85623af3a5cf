//! Keyless signing and cosign v3 keyless bundles, against a loopback Sigstore instance
//! (GitHub-shaped OIDC token endpoint, Fulcio, Rekor with a real Merkle tree; see
//! `wpkg_tests::sigstore`) and a real registry: sign in "CI", run elsewhere; every bad
//! token and service answer. Crypto refusals: keyless_refusals.rs; interop with
//! sigstore-python and the GitHub Action: keyless_interop.rs.

use serde_json::{json, Value};
use wpkg_tests::registry::{Registry, Setup};
use wpkg_tests::sigstore_services::TestSigstore;
use wpkg_tests::{Env, Run};

use crate::registry::hello;

pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The environment a GitHub Actions job with `id-token: write` has, pointed at `ts`.
pub(crate) fn ci_env(ts: &TestSigstore) -> Vec<(&'static str, String)> {
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

pub(crate) fn run_with(env: &Env, args: &[&str], vars: &[(&'static str, String)]) -> Run {
    let v: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.wpkg_with(args, &v, None)
}

/// A consumer trusting `identity` (issuer of `ts`) for `scope`.
pub(crate) fn trusting(ts: &TestSigstore, scope: &str, identity: &str) -> Env {
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

pub(crate) fn refused(r: Run, why: &str) {
    let r = r.code(125).stderr_has("refusing to run").stderr_has(why);
    assert!(!r.stdout.contains("world!"), "the guest ran: {r:#?}");
}

/// GET a manifest or tag from the test registry; `None` when it is not there.
pub(crate) fn registry_get(host: &str, repo: &str, target: &str, accept: &str) -> Option<Vec<u8>> {
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

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
pub(crate) fn keyless_in_ci_then_run_elsewhere_for_that_workflow_only() {
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
pub(crate) fn keyless_sign_is_the_default_with_an_ambient_token_and_stored_locally() {
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
pub(crate) fn bad_tokens_and_failing_services_push_nothing() {
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
        (Fault::OtherBody, "rekor", "another payload"),
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
pub(crate) fn a_registry_refusing_the_referrer_leaves_an_image_reported_unsigned() {
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

/// A registry with the OCI referrers API (the front adds it to docker-registry, which has
/// none) and one without: wpkg pushes through the API when there is one, and a registry
/// that gained it later still verifies what was signed before, under the fallback tag.
#[test]
fn signatures_through_the_referrers_api_and_through_the_fallback_tag() {
    use std::sync::atomic::Ordering;
    use wpkg_tests::referrers::ReferrersFront;
    let reg = Registry::start(Setup::Plain);
    let front = ReferrersFront::start(&reg.host);
    let publisher = Env::new();
    let ts = TestSigstore::start(publisher.dir.path());
    let digest = hello(&publisher, "Referred");
    let tag = digest.replacen(':', "-", 1);
    let root = ts.trusted_root.to_str().unwrap();
    let consumer = trusting(&ts, &format!("{}/acme/*", front.host), &ts.identity);

    // With the API: the bundle is listed there, so no fallback tag is written.
    let app = format!("{}/acme/app:1", front.host);
    run_with(
        &publisher,
        &["push", "--sign", "--keyless", "hello:0.1.0", &app],
        &ci_env(&ts),
    )
    .ok();
    assert!(
        front.api_requests.load(Ordering::Relaxed) > 0,
        "the push asked the API"
    );
    assert!(
        registry_get(&reg.host, "acme/app", &tag, OCI_INDEX).is_none(),
        "a fallback tag was written although the registry has the referrers API"
    );
    let asked = front.api_requests.load(Ordering::Relaxed);
    consumer
        .wpkg(&["run", &app, "--trusted-root", root])
        .ok()
        .stdout_has("Referred, world!");
    assert!(
        front.api_requests.load(Ordering::Relaxed) > asked,
        "verify read the API"
    );

    // Signed while the registry had no API (pushed past the front: the fallback tag),
    // read through the API, which lists nothing for it: the tag still counts.
    let old = format!("{}/acme/old:1", reg.host);
    run_with(
        &publisher,
        &["push", "--sign", "--keyless", "hello:0.1.0", &old],
        &ci_env(&ts),
    )
    .ok();
    assert!(registry_get(&reg.host, "acme/old", &tag, OCI_INDEX).is_some());
    let asked = front.api_requests.load(Ordering::Relaxed);
    // A consumer that has not seen this digest's signatures yet.
    trusting(&ts, &format!("{}/acme/*", front.host), &ts.identity)
        .wpkg(&[
            "run",
            &format!("{}/acme/old:1", front.host),
            "--trusted-root",
            root,
        ])
        .ok()
        .stdout_has("Referred, world!");
    assert!(front.api_requests.load(Ordering::Relaxed) > asked);

    // Control: an unsigned image through the front is refused.
    let bare = format!("{}/acme/bare:1", reg.host);
    let other = Env::new();
    hello(&other, "Unsigned");
    other.wpkg(&["push", "hello:0.1.0", &bare]).ok();
    refused(
        consumer.wpkg(&[
            "run",
            &format!("{}/acme/bare:1", front.host),
            "--trusted-root",
            root,
        ]),
        "",
    );
}

/// cosign's one-off identity flags on `wpkg verify`: no policy file needed; a wrong
/// identity is "not verified" (exit 1); incomplete flags are an error (exit 125).
#[test]
fn verify_takes_cosigns_certificate_identity_flags() {
    let env = Env::new();
    let ts = TestSigstore::start(env.dir.path());
    let digest = hello(&env, "Local");
    run_with(&env, &["sign", "hello:0.1.0"], &ci_env(&ts)).ok();
    let root = ts.trusted_root.to_str().unwrap();
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "hello:0.1.0", "--trusted-root", root];
        args.extend_from_slice(extra);
        env.wpkg(&args)
    };
    verify(&[
        "--certificate-identity",
        &ts.identity,
        "--certificate-oidc-issuer",
        &ts.issuer,
    ])
    .ok()
    .stderr_has("keyless signature by")
    .stderr_has("the keys and identities given")
    .stdout_has(&digest);
    let pattern = format!(
        "{}.*",
        regex_lite_escape(&ts.identity[..ts.identity.len() / 2])
    );
    verify(&[
        "--certificate-identity-regexp",
        &pattern,
        "--certificate-oidc-issuer",
        &ts.issuer,
    ])
    .ok();
    // The regexp is anchored: a fragment of the identity does not match on its own.
    verify(&[
        "--certificate-identity-regexp",
        "acme",
        "--certificate-oidc-issuer",
        &ts.issuer,
    ])
    .code(1);
    verify(&[
        "--certificate-identity",
        "someone@else.example",
        "--certificate-oidc-issuer",
        &ts.issuer,
    ])
    .code(1);
    verify(&[
        "--certificate-identity",
        &ts.identity,
        "--certificate-oidc-issuer",
        "https://other.example",
    ])
    .code(1);
    verify(&["--certificate-identity", &ts.identity])
        .code(125)
        .stderr_has("needs --certificate-oidc-issuer");
    verify(&["--certificate-oidc-issuer", &ts.issuer])
        .code(125)
        .stderr_has("needs --certificate-identity");
    verify(&[
        "--certificate-identity-regexp",
        "(",
        "--certificate-oidc-issuer",
        &ts.issuer,
    ])
    .code(125)
    .stderr_has("does not compile");
}

fn regex_lite_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

/// An image signed through the Rekor v2 log with a timestamp authority (a signing
/// config that lists both): the DSSE envelope is logged as a hashedrekord 0.0.2 of its
/// PAE, the bundle carries the timestamp, and `wpkg verify` accepts it.
#[test]
fn an_image_signed_through_rekor_v2_verifies() {
    let env = Env::new();
    let ts = TestSigstore::start(env.dir.path());
    let digest = hello(&env, "RekorTwo");
    let service = |url: &str, v: u32| json!({"url": url, "majorApiVersion": v, "validFor": {"start": "2020-01-01T00:00:00Z"}});
    let config = json!({
        "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
        "caUrls": [service(&ts.fulcio_url, 1)],
        "rekorTlogUrls": [service(&ts.rekor2_url, 2)],
        "tsaUrls": [service(&ts.tsa_url, 1)],
    });
    std::fs::write(env.path("signing.json"), config.to_string()).unwrap();
    let bundle = env.path("image.sigstore.json");
    run_with(
        &env,
        &[
            "sign",
            "--keyless",
            "--signing-config",
            env.path("signing.json").to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
            "hello:0.1.0",
        ],
        &ci_env(&ts),
    )
    .ok();
    let b: Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(
        b["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"],
        "0.0.2"
    );
    env.wpkg(&[
        "verify",
        "hello:0.1.0",
        "--trusted-root",
        ts.trusted_root.to_str().unwrap(),
        "--certificate-identity",
        &ts.identity,
        "--certificate-oidc-issuer",
        &ts.issuer,
    ])
    .ok()
    .stdout_has(&digest);
}
