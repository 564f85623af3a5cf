//! `wpkg trust update-root`: Sigstore's trust root through TUF, against a TUF repository
//! the test makes and serves on loopback. The control verifies; each attack (a target
//! whose bytes differ from its hash, a timestamp that goes back, expired metadata, a new
//! root signed below its threshold) is refused with exit 125 and leaves the cached
//! trust root as it was; the repository then recovers and verifies again.

use wpkg_tests::sigstore_services::TestSigstore;
use wpkg_tests::tuf::TufRepo;
use wpkg_tests::Env;

#[test]
fn update_root_through_tuf_refuses_each_attack_and_keeps_the_cache() {
    let env = Env::new();
    let ts = TestSigstore::start(env.dir.path());
    let first = std::fs::read(&ts.trusted_root).unwrap();
    let mut repo = TufRepo::new(&env.path("tuf-repo"), &first);
    let root1 = env.path("tuf-root.json");
    std::fs::write(&root1, repo.root_json(1)).unwrap();
    let url = repo.url.clone();
    let update = || {
        env.wpkg(&[
            "trust",
            "update-root",
            "--tuf-url",
            &url,
            "--tuf-root",
            root1.to_str().unwrap(),
        ])
    };
    // Control: it verifies, and prints where the trust root is cached.
    let r = update().ok().stderr_has("refreshed through TUF");
    let cached = std::path::PathBuf::from(r.stdout.trim());
    assert_eq!(std::fs::read(&cached).unwrap(), first);
    // The cached root is a working trust root: a keyless blob signature made against
    // the test instance verifies with it.
    let file = env.path("blob");
    std::fs::write(&file, b"blob").unwrap();
    let bundle = env.path("blob.json");
    crate::keyless::run_with(
        &env,
        &[
            "sign-blob",
            "--keyless",
            "--bundle",
            bundle.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &crate::keyless::ci_env(&ts),
    )
    .ok();
    env.wpkg(&[
        "verify-blob",
        "--bundle",
        bundle.to_str().unwrap(),
        "--trusted-root",
        cached.to_str().unwrap(),
        "--certificate-identity",
        &ts.identity,
        "--certificate-oidc-issuer",
        &ts.issuer,
        file.to_str().unwrap(),
    ])
    .ok();

    let current = |p: &std::path::Path| std::fs::read(p).unwrap();
    let refused = |what: &str| {
        let before = current(&cached);
        update().code(125).stderr_has("does not verify");
        assert_eq!(current(&cached), before, "{what}: the cache changed");
    };

    // 1. A target whose bytes are not what targets.json hashes.
    let mut second: serde_json::Value = serde_json::from_slice(&first).unwrap();
    second["mediaType"] =
        serde_json::json!("application/vnd.dev.sigstore.trustedroot+json;version=0.1");
    second["note"] = serde_json::json!("second");
    let second = serde_json::to_vec(&second).unwrap();
    repo.publish_targets(&second, 2, 365);
    let mut forged = second.clone();
    let n = forged.len() - 2;
    forged[n] ^= 1;
    repo.corrupt_target(&second, &forged);
    refused("wrong target hash");
    repo.publish_targets(&second, 3, 365);
    update().ok();
    assert_eq!(
        current(&cached),
        second,
        "the new target is cached once it verifies"
    );

    // 2. A timestamp that goes back (rollback / freeze).
    let v3 = repo.save_timestamp();
    repo.publish_timestamp(4, 3, 365);
    update().ok();
    repo.restore_timestamp(&v3);
    refused("timestamp rollback");
    repo.publish_timestamp(5, 3, 365);
    update().ok();

    // 3. Expired metadata.
    repo.publish_timestamp(6, 3, -1);
    refused("expired timestamp");
    repo.publish_timestamp(7, 3, 365);
    update().ok();

    // 4. A new root that needs two root signatures but carries one.
    repo.publish_root(2, 2, 365, false);
    refused("root below threshold");
    repo.publish_root(2, 2, 365, true);
    update().ok().stderr_has("TUF root version 2");

    // Bad input: a TUF root that is not one, a URL that is not usable.
    std::fs::write(
        env.path("not-root.json"),
        b"{\"signed\":{\"_type\":\"targets\"}}",
    )
    .unwrap();
    env.wpkg(&[
        "trust",
        "update-root",
        "--tuf-url",
        &url,
        "--tuf-root",
        env.path("not-root.json").to_str().unwrap(),
    ])
    .code(125)
    .stderr_has("not TUF root metadata");
    env.wpkg(&[
        "trust",
        "update-root",
        "--tuf-url",
        "http://example.com/tuf",
        "--tuf-root",
        root1.to_str().unwrap(),
    ])
    .code(125)
    .stderr_has("only on loopback");
}

/// A private instance's TUF repository as the default (`WPKG_TUF_URL`, `WPKG_TUF_ROOT`):
/// after `trust update-root`, keyless verification uses its cached root without
/// `--trusted-root` (the control without the variables fails); an expired cache is
/// refreshed on use; when that refresh fails, the cached copy is still used.
#[test]
fn the_tuf_cached_root_is_the_default_and_is_refreshed_when_expired() {
    let env = Env::new();
    let ts = TestSigstore::start(env.dir.path());
    let first = std::fs::read(&ts.trusted_root).unwrap();
    let mut repo = TufRepo::new(&env.path("tuf-repo"), &first);
    let root1 = env.path("tuf-root.json");
    std::fs::write(&root1, repo.root_json(1)).unwrap();
    let url = repo.url.clone();
    let vars = [
        ("WPKG_TUF_URL", url.as_str()),
        ("WPKG_TUF_ROOT", root1.to_str().unwrap()),
    ];
    env.wpkg_with(&["trust", "update-root"], &vars, None).ok();
    let file = env.path("blob");
    std::fs::write(&file, b"blob").unwrap();
    let bundle = env.path("blob.json");
    crate::keyless::run_with(
        &env,
        &[
            "sign-blob",
            "--keyless",
            "--bundle",
            bundle.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &crate::keyless::ci_env(&ts),
    )
    .ok();
    let args = [
        "verify-blob",
        "--bundle",
        bundle.to_str().unwrap(),
        "--certificate-identity",
        &ts.identity,
        "--certificate-oidc-issuer",
        &ts.issuer,
        file.to_str().unwrap(),
    ];
    env.wpkg_with(&args, &vars, None).ok();
    // Control: the public-good default (no variables) does not know this instance.
    env.wpkg(&args).code(1).stderr_has("does not know");

    let expires = wpkg_signing::tuf::repo_dir(&env.home().join("tuf"), &url).join("expires");
    let read = || {
        std::fs::read_to_string(&expires)
            .unwrap()
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    // Expired: the next use refreshes (the new timestamp's expiry is recorded).
    std::fs::write(&expires, "0").unwrap();
    repo.publish_timestamp(2, 1, 365);
    env.wpkg_with(&args, &vars, None).ok();
    assert!(read() > 0, "the expired cache was not refreshed");
    // Expired, and the repository's timestamp expired too: the refresh fails, the
    // cached copy is used.
    std::fs::write(&expires, "0").unwrap();
    repo.publish_timestamp(3, 1, -1);
    env.wpkg_with(&args, &vars, None).ok();
    assert_eq!(read(), 0, "a failed refresh must leave the cache as it was");
    // WPKG_TUF_URL without WPKG_TUF_ROOT: an error naming the missing variable.
    env.wpkg_with(&args, &[("WPKG_TUF_URL", url.as_str())], None)
        .code(125)
        .stderr_has("WPKG_TUF_ROOT");
}
