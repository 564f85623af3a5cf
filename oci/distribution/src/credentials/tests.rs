use super::*;

#[test]
fn secrets_are_redacted() {
    let c = Credential::Basic {
        username: "alice".into(),
        password: Secret::new("hunter2"),
    };
    let text = format!("{c:?} {}", Secret::new("hunter2"));
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("alice"));
}

#[test]
fn keys_normalise() {
    assert_eq!(
        normalize_registry("https://index.docker.io/v1/"),
        "docker.io"
    );
    assert_eq!(normalize_registry("GHCR.io"), "ghcr.io");
    assert_eq!(
        normalize_registry("http://localhost:5000/v2"),
        "localhost:5000"
    );
    assert_eq!(docker_key("docker.io"), DOCKER_HUB_KEY);
    assert_eq!(docker_key("ghcr.io"), "ghcr.io");
}

#[test]
fn store_get_erase_round_trip_keeps_other_fields() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"auths":{"https://ghcr.io":{"auth":"b2xkOm9sZA=="}},"psFormat":"table"}"#,
    )
    .unwrap();
    let creds = Credentials::new(dir.path(), None);
    creds
        .store("ghcr.io", "bob", &Secret::new("pw:with:colons"))
        .unwrap();
    let (c, _) = creds.get("ghcr.io").unwrap().unwrap();
    assert_eq!(
        c,
        Credential::Basic {
            username: "bob".into(),
            password: Secret::new("pw:with:colons")
        }
    );
    let v: Value = serde_json::from_slice(&std::fs::read(creds.config_path()).unwrap()).unwrap();
    assert_eq!(v["psFormat"], "table");
    assert_eq!(v["auths"].as_object().unwrap().len(), 1, "{v}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(creds.config_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(creds.erase("ghcr.io").unwrap());
    assert!(creds.get("ghcr.io").unwrap().is_none());
    assert!(!creds.erase("ghcr.io").unwrap());
}

#[test]
fn docker_hub_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let env = EnvCredential {
        registry: "ghcr.io".into(),
        credential: Credential::Basic {
            username: "ci".into(),
            password: Secret::new("tok"),
        },
    };
    let creds = Credentials::new(dir.path(), Some(env));
    creds
        .store("docker.io", "alice", &Secret::new("pw"))
        .unwrap();
    let text = std::fs::read_to_string(creds.config_path()).unwrap();
    assert!(text.contains(DOCKER_HUB_KEY), "{text}");
    assert!(creds.get("index.docker.io").unwrap().is_some());
    let (c, src) = creds.get("ghcr.io").unwrap().unwrap();
    assert_eq!(c.username(), Some("ci"));
    assert_eq!(src, Source::Env);
    assert!(creds.get("quay.io").unwrap().is_none());
}

#[test]
fn cred_helpers_win_over_creds_store() {
    let config: Value = serde_json::json!({
        "credsStore": "desktop",
        "credHelpers": {"https://GHCR.io": "gh", "gcr.io": ""},
    });
    assert_eq!(
        Credentials::helper_for(&config, "ghcr.io").as_deref(),
        Some("gh")
    );
    assert_eq!(
        Credentials::helper_for(&config, "quay.io").as_deref(),
        Some("desktop")
    );
    // An empty helper name falls back to the store.
    assert_eq!(
        Credentials::helper_for(&config, "gcr.io").as_deref(),
        Some("desktop")
    );
    let none: Value = serde_json::json!({});
    assert_eq!(Credentials::helper_for(&none, "ghcr.io"), None);
}

#[test]
fn malformed_config_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let creds = Credentials::new(dir.path(), None);
    let e = creds.get("ghcr.io").unwrap_err().to_string();
    assert!(
        e.contains("config.json") && e.contains("not valid JSON"),
        "{e}"
    );
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"auths":{"ghcr.io":{"auth":"!!"}}}"#,
    )
    .unwrap();
    let e = creds.get("ghcr.io").unwrap_err().to_string();
    assert!(e.contains("not base64"), "{e}");
}

#[test]
fn one_registry_spelling_for_keys_and_references() {
    for (key, want) in [
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("GHCR.io", "ghcr.io"),
        ("https://ghcr.io:443/v2/", "ghcr.io"),
        ("localhost:5000", "localhost:5000"),
    ] {
        assert_eq!(normalize_registry(key), want, "{key}");
        assert_eq!(
            normalize_registry(key),
            wpkg_spec::reference::canonical_registry(&normalize_registry(key))
        );
    }
}

#[test]
fn a_containers_auth_file_is_read_after_dockers_config() {
    let docker = tempfile::tempdir().unwrap();
    let podman = tempfile::tempdir().unwrap();
    let auth_json = podman.path().join("auth.json");
    // podman writes keys with a repository path; user "p", password "q".
    std::fs::write(&auth_json, r#"{"auths":{"quay.io/acme":{"auth":"cDpx"}}}"#).unwrap();
    let creds = Credentials::new(docker.path(), None);
    assert!(
        creds.get("quay.io").unwrap().is_none(),
        "control: no auth file, no credential"
    );
    let creds = creds.with_auth_file(&auth_json);
    let (c, source) = creds.get("quay.io").unwrap().expect("from auth.json");
    assert_eq!(c.username(), Some("p"));
    assert_eq!(source, Source::ConfigFile(auth_json.clone()));
    // Docker's config wins when it has the registry ("d:e").
    std::fs::write(
        docker.path().join("config.json"),
        r#"{"auths":{"quay.io":{"auth":"ZDpl"}}}"#,
    )
    .unwrap();
    let (c, source) = creds.get("quay.io").unwrap().unwrap();
    assert_eq!(c.username(), Some("d"));
    assert_eq!(
        source,
        Source::ConfigFile(docker.path().join("config.json"))
    );
    // A broken auth file is an error naming it, not an anonymous pull.
    std::fs::write(&auth_json, "nope").unwrap();
    let e = creds.get("ghcr.io").unwrap_err().to_string();
    assert!(e.contains("auth.json"), "{e}");
}
