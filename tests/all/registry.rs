//! Push, pull, login and run against a real registry (Debian's `docker-registry`) in
//! its three setups, and against registries that misbehave.
//!
//! These tests are about transport: they run pulled images with
//! `--insecure-skip-verify`. Signatures and the trust policy are tested in `trust.rs`.

use std::path::Path;

use wpkg_tests::registry::{Fault, Proxy, Registry, Setup, PASSWORD, USER};
use wpkg_tests::{command_manifest, guest, Env, Run};

/// Builds the hello example into `env`'s store as `hello:0.1.0`; returns its digest.
pub fn hello(env: &Env, greeting: &str) -> String {
    let wasm = guest("example-hello", "wasm32-wasip2");
    let dir = env.project(
        "hello",
        &wasm,
        &command_manifest(
            "hello",
            &format!("[capabilities]\nenv = {{ GREETING = \"{greeting}\" }}\n"),
        ),
    );
    env.build(&dir, "hello:0.1.0")
}

fn blob_count(env: &Env) -> usize {
    let blobs = env.home().join("store/blobs/sha256");
    if !blobs.exists() {
        return 0;
    }
    std::fs::read_dir(blobs).unwrap().count()
}

fn images(env: &Env) -> String {
    env.wpkg(&["images"]).ok().stdout
}

/// `wpkg login` with the password on stdin.
fn login(env: &Env, host: &str, user: &str, password: &str, extra: &[&str]) -> Run {
    let mut args = vec!["login", host, "-u", user, "--password-stdin"];
    args.extend_from_slice(extra);
    env.wpkg_with(&args, &[], Some(password))
}

#[test]
fn plain_registry_push_pull_run_and_repush_uploads_nothing() {
    let reg = Registry::start(Setup::Plain);
    let a = Env::new();
    let digest = hello(&a, "Pushed");
    let remote = format!("{}/demo/hello:0.1.0", reg.host);
    let r = a.wpkg(&["push", "hello:0.1.0", &remote]).ok();
    assert_eq!(
        r.stdout.trim(),
        format!("{remote}@{digest}").replace(":0.1.0@", ":0.1.0@")
    );
    assert!(r.stderr.contains("2 blob(s) uploaded"), "{r:#?}");
    // Unchanged content again: zero uploads.
    a.wpkg(&["push", "hello:0.1.0", &remote])
        .ok()
        .stderr_has("0 blob(s) uploaded")
        .stderr_has("2 already there");

    // Another machine: pull, then run from the store.
    let b = Env::new();
    b.wpkg(&["pull", &remote])
        .ok()
        .stdout_has(&digest)
        .stderr_has("2 blob(s) downloaded");
    assert!(images(&b).contains(&format!("{}/demo/hello", reg.host)));
    b.wpkg(&[
        "run",
        "--insecure-skip-verify",
        "--pull",
        "never",
        &remote,
        "--",
        "bob",
    ])
    .ok()
    .stdout_has("Pushed, bob!");
    // Pulling again downloads nothing.
    b.wpkg(&["pull", &remote])
        .ok()
        .stderr_has("0 blob(s) downloaded");

    // A third: `run` pulls what is missing; by digest too.
    let c = Env::new();
    let by_digest = format!("{}/demo/hello@{digest}", reg.host);
    c.wpkg(&["run", "--insecure-skip-verify", &by_digest])
        .ok()
        .stderr_has("pulling it from")
        .stdout_has("Pushed, world!");
    c.wpkg(&[
        "run",
        "--insecure-skip-verify",
        "--pull",
        "never",
        &by_digest,
    ])
    .ok()
    .stdout_has("Pushed, world!");
    // --pull never with nothing local: no registry contact, a clear error.
    let d = Env::new();
    d.wpkg(&["run", "--insecure-skip-verify", "--pull", "never", &remote])
        .code(125)
        .stderr_has("no image");
    assert_eq!(blob_count(&d), 0);

    // inspect --remote reads the registry and keeps nothing.
    let e = Env::new();
    e.wpkg(&["inspect", "--remote", &remote])
        .ok()
        .stdout_has(&digest)
        .stdout_has("GREETING");
    assert_eq!(blob_count(&e), 0, "inspect --remote stored blobs");
    assert!(!images(&e).contains("demo/hello"));
    e.wpkg(&["inspect", &remote]).code(125).stderr_has("hint:");

    // --pull always picks up a new push to the same tag.
    hello(&a, "Updated");
    a.wpkg(&["push", "hello:0.1.0", &remote]).ok();
    b.wpkg(&["run", "--insecure-skip-verify", "--pull", "always", &remote])
        .ok()
        .stdout_has("Updated, world!");
}

#[test]
fn missing_repository_and_tag_and_bad_references() {
    let reg = Registry::start(Setup::Plain);
    let env = Env::new();
    env.wpkg(&["pull", &format!("{}/nobody/here:1", reg.host)])
        .code(125)
        .stderr_has("not found in")
        .stderr_has("nobody/here:1");
    hello(&env, "Hi");
    env.wpkg(&["push", "hello:0.1.0", &format!("{}/x:1", reg.host)])
        .ok();
    env.wpkg(&["pull", &format!("{}/x:2", reg.host)])
        .code(125)
        .stderr_has("not found")
        .stderr_has("manifest unknown");
    env.wpkg(&["pull", "Not A Ref"])
        .code(125)
        .stderr_has("invalid reference");
    env.wpkg(&["push", "nothing:1", &format!("{}/x:1", reg.host)])
        .code(125)
        .stderr_has("no image `nothing:1`");
    env.wpkg(&["push", "hello:0.1.0", "localhost/hello:1"])
        .code(125)
        .stderr_has("local-only name");
    // A CA file that is missing or not PEM: one clear line, nothing contacted.
    let remote = format!("{}/x:1", reg.host);
    env.wpkg(&["pull", &remote, "--ca-file", "/nonexistent/ca.pem"])
        .code(125)
        .stderr_has("cannot read CA file /nonexistent/ca.pem");
    std::fs::write(env.path("not-a-ca.pem"), "hello").unwrap();
    env.wpkg(&[
        "pull",
        &remote,
        "--ca-file",
        env.path("not-a-ca.pem").to_str().unwrap(),
    ])
    .code(125)
    .stderr_has("holds no `BEGIN CERTIFICATE` block");
    // A port nobody listens on.
    let port = wpkg_tests::registry::free_port();
    env.wpkg(&["pull", &format!("127.0.0.1:{port}/x:1")])
        .code(125)
        .stderr_has("cannot reach registry");
}

#[test]
fn tls_registry_with_basic_auth() {
    let reg = Registry::start(Setup::TlsBasic);
    let ca = reg.ca.as_ref().unwrap().ca_pem.to_str().unwrap().to_owned();
    let env = Env::new();
    hello(&env, "Secure");
    let remote = format!("{}/team/hello:1", reg.host);

    // The test CA is not trusted by default: the error says how to trust it.
    env.wpkg(&["push", "hello:0.1.0", &remote])
        .code(125)
        .stderr_has("--ca-file");
    // Trusted, but not logged in.
    env.wpkg(&["push", "hello:0.1.0", &remote, "--ca-file", &ca])
        .code(125)
        .stderr_has(&format!("wpkg login {}", reg.host));
    // A wrong password: a clear error, nothing saved.
    let r = login(&env, &reg.host, USER, "wrong", &["--ca-file", &ca]).code(125);
    assert!(r.stderr.contains("cannot log in"), "{r:#?}");
    assert!(!r.stderr.contains("wrong"), "the password leaked: {r:#?}");
    assert!(!env.path("docker/config.json").exists());

    let r = login(&env, &reg.host, USER, PASSWORD, &["--ca-file", &ca]).ok();
    assert!(r.stderr.contains("Login Succeeded"), "{r:#?}");
    assert!(!r.stderr.contains(PASSWORD) && !r.stdout.contains(PASSWORD));
    let config = std::fs::read_to_string(env.path("docker/config.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert!(v["auths"][&reg.host]["auth"].is_string(), "{config}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.path("docker/config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The CA from the environment variable works like the flag.
    let push = env
        .cmd(&["push", "hello:0.1.0", &remote])
        .env("WPKG_CA_FILE", &ca)
        .output()
        .unwrap();
    assert!(push.status.success(), "{push:?}");
    // podman/skopeo's auth.json, named by REGISTRY_AUTH_FILE, is read after Docker's
    // config (which this fresh environment does not have): control first.
    let podman = Env::new();
    podman
        .wpkg(&["pull", &remote, "--ca-file", &ca])
        .code(125)
        .stderr_has("wpkg login");
    let auth_json = podman.path("auth.json");
    std::fs::write(&auth_json, &config).unwrap();
    let pulled = podman
        .cmd(&["pull", &remote, "--ca-file", &ca])
        .env("REGISTRY_AUTH_FILE", &auth_json)
        .output()
        .unwrap();
    assert!(pulled.status.success(), "{pulled:?}");
    let fresh = Env::new();
    // Share the login with a fresh store.
    std::fs::create_dir_all(fresh.path("docker")).unwrap();
    std::fs::write(fresh.path("docker/config.json"), &config).unwrap();
    fresh
        .wpkg(&["run", "--insecure-skip-verify", &remote, "--ca-file", &ca])
        .ok()
        .stdout_has("Secure, world!");

    env.wpkg(&["logout", &reg.host])
        .ok()
        .stderr_has("Removing login credentials");
    env.wpkg(&["logout", &reg.host])
        .ok()
        .stderr_has("Not logged in");
    env.wpkg(&["pull", &remote, "--ca-file", &ca])
        .code(125)
        .stderr_has("wpkg login");
}

#[test]
fn token_registry_login_push_pull_and_env_credentials() {
    let reg = Registry::start(Setup::Token);
    let tokens = reg.tokens.as_ref().unwrap();
    let env = Env::new();
    hello(&env, "Token");
    let remote = format!("{}/acme/hello:2", reg.host);

    // Anonymous: the issuer grants nothing, the error says to log in.
    env.wpkg(&["push", "hello:0.1.0", &remote])
        .code(125)
        .stderr_has("wpkg login");
    // A wrong password is refused by the token service, naming the user.
    login(&env, &reg.host, USER, "nope", &[])
        .code(125)
        .stderr_has(&format!("`{USER}`"));
    login(&env, &reg.host, USER, PASSWORD, &[]).ok();

    let before = tokens.requests.load(std::sync::atomic::Ordering::Relaxed);
    env.wpkg(&["push", "hello:0.1.0", &remote]).ok();
    let used = tokens.requests.load(std::sync::atomic::Ordering::Relaxed) - before;
    // One token for the whole push (HEADs, uploads, manifest): reused, not refetched.
    assert_eq!(used, 1, "token requests for one push: {used}");

    // Anonymous pulls of a public repository get an anonymous token.
    let public = format!("{}/public/hello:1", reg.host);
    env.wpkg(&["push", "hello:0.1.0", &public]).ok();
    let anon = Env::new();
    anon.wpkg(&["run", "--insecure-skip-verify", &public])
        .ok()
        .stdout_has("Token, world!");
    // ... but not a push to it.
    hello(&anon, "Anon");
    anon.wpkg(&["push", "hello:0.1.0", &public])
        .code(125)
        .stderr_has("wpkg login");

    // CI style: no config.json, credentials in the environment for this registry only.
    let ci = Env::new();
    let out = ci
        .cmd(&["run", "--insecure-skip-verify", &remote])
        .env("WPKG_REGISTRY", &reg.host)
        .env("WPKG_REGISTRY_USERNAME", USER)
        .env("WPKG_REGISTRY_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Token, world!"));
    // The variables without WPKG_REGISTRY: refused, not sent anywhere.
    let out = ci
        .cmd(&["pull", &remote])
        .env("WPKG_REGISTRY_USERNAME", USER)
        .env("WPKG_REGISTRY_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WPKG_REGISTRY is not"));
}

/// A `docker-credential-*` helper that keeps credentials in a JSON file.
fn install_helper(env: &Env) -> std::path::PathBuf {
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let store = env.path("helper-store.json");
    let script = format!(
        r#"#!/usr/bin/env python3
import json, os, sys
path = {store:?}
data = json.load(open(path)) if os.path.exists(path) else {{}}
action = sys.argv[1]
if action == "store":
    req = json.load(sys.stdin)
    data[req["ServerURL"]] = {{"Username": req["Username"], "Secret": req["Secret"]}}
    json.dump(data, open(path, "w"))
elif action == "get":
    url = sys.stdin.read().strip()
    if url not in data:
        print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps({{"ServerURL": url, **data[url]}}))
elif action == "erase":
    url = sys.stdin.read().strip()
    if url not in data:
        print("credentials not found in native keychain"); sys.exit(1)
    del data[url]; json.dump(data, open(path, "w"))
"#,
        store = store.display().to_string()
    );
    let helper = bin.join("docker-credential-wpkgtest");
    std::fs::write(&helper, script).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    store
}

#[test]
fn credential_helper_protocol() {
    let reg = Registry::start(Setup::Token);
    let env = Env::new();
    let store = install_helper(&env);
    std::fs::create_dir_all(env.path("docker")).unwrap();
    std::fs::write(
        env.path("docker/config.json"),
        r#"{"credsStore": "wpkgtest", "experimental": "enabled"}"#,
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        env.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let with_path = |args: &[&str]| {
        let mut c = env.cmd(args);
        c.env("PATH", &path);
        c
    };
    let mut child = with_path(&["login", &reg.host, "-u", USER, "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("docker-credential-wpkgtest"));
    // The secret went to the helper, not into config.json.
    let config = std::fs::read_to_string(env.path("docker/config.json")).unwrap();
    assert!(!config.contains(PASSWORD), "{config}");
    assert!(
        config.contains("experimental"),
        "other settings kept: {config}"
    );
    assert!(std::fs::read_to_string(&store).unwrap().contains(PASSWORD));

    hello(&env, "Helper");
    let remote = format!("{}/h/hello:1", reg.host);
    let out = with_path(&["push", "hello:0.1.0", &remote])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = with_path(&["logout", &reg.host]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!std::fs::read_to_string(&store).unwrap().contains(PASSWORD));
    let out = with_path(&["pull", &remote]).output().unwrap();
    assert_eq!(out.status.code(), Some(125), "{out:?}");

    // A helper named in config.json but not installed: a clear error.
    std::fs::write(
        env.path("docker/config.json"),
        r#"{"credsStore": "missing-helper"}"#,
    )
    .unwrap();
    env.wpkg(&["pull", &remote])
        .code(125)
        .stderr_has("docker-credential-missing-helper");
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

fn manifest_of(env: &Env, reference: &str) -> serde_json::Value {
    let r = env.wpkg(&["inspect", "--json", reference]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v["manifest"].clone()
}

#[test]
fn wrong_digest_truncated_blob_and_tampered_manifest_store_nothing() {
    let reg = Registry::start(Setup::Plain);
    let env = Env::new();
    let digest = hello(&env, "Safe");
    let remote = format!("{}/safe/hello:1", reg.host);
    env.wpkg(&["push", "hello:0.1.0", &remote]).ok();
    let manifest = manifest_of(&env, "hello:0.1.0");
    let wasm_digest = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let wasm_file = reg.blob_file(&wasm_digest);
    let original = std::fs::read(&wasm_file).unwrap();

    // The registry serves different bytes under the digest.
    flip_byte(&wasm_file, 1000);
    let b = Env::new();
    b.wpkg(&["pull", &remote])
        .code(125)
        .stderr_has("does not match its digest")
        .stderr_has("nothing was stored");
    b.wpkg(&["run", "--insecure-skip-verify", &remote])
        .code(125);
    assert!(!images(&b).contains("safe/hello"));
    assert!(!b
        .home()
        .join("store/blobs/sha256")
        .join(wasm_digest.trim_start_matches("sha256:"))
        .exists());
    assert!(
        !b.home().join("store/tmp").exists()
            || std::fs::read_dir(b.home().join("store/tmp"))
                .unwrap()
                .count()
                == 0
    );

    // A truncated blob.
    std::fs::write(&wasm_file, &original[..original.len() / 2]).unwrap();
    b.wpkg(&["pull", &remote])
        .code(125)
        .stderr_has(&wasm_digest);
    assert!(!images(&b).contains("safe/hello"));

    // A manifest whose bytes no longer match the digest the registry names.
    std::fs::write(&wasm_file, &original).unwrap();
    let manifest_file = reg.blob_file(&digest);
    let text = std::fs::read_to_string(&manifest_file).unwrap();
    std::fs::write(&manifest_file, text.replacen("\"size\"", "\"size\" ", 1)).unwrap();
    b.wpkg(&["pull", &remote])
        .code(125)
        .stderr_has("does not match its digest");
    assert!(!images(&b).contains("safe/hello"));

    // Repaired: the pull works.
    std::fs::write(&manifest_file, text).unwrap();
    b.wpkg(&["run", "--insecure-skip-verify", &remote])
        .ok()
        .stdout_has("Safe, world!");
}

#[test]
fn broken_connection_during_push_is_retried() {
    let reg = Registry::start(Setup::Plain);
    // Cut the first connection that has carried 40 kB: mid-way through the wasm upload.
    let proxy = Proxy::start(&reg.host, Fault::CutOnce { after: 40_000 });
    let env = Env::new();
    hello(&env, "Retried");
    let remote = format!("{}/r/hello:1", proxy.host);
    env.wpkg(&["push", "hello:0.1.0", &remote]).ok();
    assert_eq!(proxy.cuts.load(std::sync::atomic::Ordering::Relaxed), 1);
    Env::new()
        .wpkg(&[
            "run",
            "--insecure-skip-verify",
            &format!("{}/r/hello:1", reg.host),
        ])
        .ok()
        .stdout_has("Retried, world!");
}

#[test]
fn registry_dying_mid_push_is_a_clear_error_and_the_store_is_intact() {
    let reg = Registry::start(Setup::Plain);
    let proxy = Proxy::start(&reg.host, Fault::Die { after: 40_000 });
    let env = Env::new();
    hello(&env, "Intact");
    let before = images(&env);
    let blobs = blob_count(&env);
    env.wpkg(&["push", "hello:0.1.0", &format!("{}/d/hello:1", proxy.host)])
        .code(125)
        .stderr_has("cannot reach registry");
    assert_eq!(images(&env), before);
    assert_eq!(blob_count(&env), blobs);
    env.wpkg(&["run", "hello:0.1.0"])
        .ok()
        .stdout_has("Intact, world!");
    // Nothing was tagged in the registry.
    Env::new()
        .wpkg(&["pull", &format!("{}/d/hello:1", reg.host)])
        .code(125)
        .stderr_has("not found");
}

#[test]
fn index_with_a_wasm_platform_entry_and_without_one() {
    let reg = Registry::start(Setup::Plain);
    let env = Env::new();
    let digest = hello(&env, "Indexed");
    env.wpkg(&["push", "hello:0.1.0", &format!("{}/i/hello:1", reg.host)])
        .ok();
    let size = manifest_size(&env);
    // As buildx lays them out: attestation entries (unknown/unknown, annotated) first;
    // a Docker manifest list for one, an OCI index for the other.
    const LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    const OCI: &str = "application/vnd.oci.image.index.v1+json";
    let index = |media_type: &str, platforms: &[(&str, &str)]| {
        let mut manifests: Vec<serde_json::Value> = vec![serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size,
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
        })];
        manifests.extend(platforms.iter().map(|(os, arch)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest, "size": size,
                "platform": {"os": os, "architecture": arch},
            })
        }));
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": manifests,
        })
        .to_string()
    };
    put_manifest(
        &reg.host,
        "i/hello",
        "multi",
        LIST,
        &index(LIST, &[("linux", "amd64"), ("wasip2", "wasm")]),
    );
    put_manifest(
        &reg.host,
        "i/hello",
        "linux",
        OCI,
        &index(OCI, &[("linux", "amd64"), ("linux", "arm64")]),
    );
    let b = Env::new();
    b.wpkg(&[
        "run",
        "--insecure-skip-verify",
        &format!("{}/i/hello:multi", reg.host),
    ])
    .ok()
    .stdout_has("Indexed, world!");
    b.wpkg(&["pull", &format!("{}/i/hello:linux", reg.host)])
        .code(125)
        .stderr_has("not a Wasm artifact")
        .stderr_has("multi-platform image for linux/amd64, linux/arm64 with no wasm entry");
}

fn manifest_size(env: &Env) -> u64 {
    let r = env.wpkg(&["images", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let digest = v[0]["digest"].as_str().unwrap();
    std::fs::metadata(
        env.home()
            .join("store/blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
    .len()
}

/// PUT a manifest with a raw HTTP/1.1 request.
pub fn put_manifest(host: &str, repo: &str, tag: &str, media_type: &str, body: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "PUT /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
}

#[test]
fn progress_only_on_a_terminal() {
    let reg = Registry::start(Setup::Plain);
    let env = Env::new();
    hello(&env, "Progress");
    // Not a terminal: one summary line, no progress redraws.
    let r = env
        .wpkg(&["push", "hello:0.1.0", &format!("{}/p/hello:1", reg.host)])
        .ok();
    assert!(!r.stderr.contains('\r'), "{r:#?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:#?}");
    // A terminal (a pty from `script`): per-blob lines.
    let script = wpkg_tests::registry::which("script")
        .expect("`script` (util-linux) is needed: apt-get install util-linux");
    let cmd = env.cmd(&["push", "hello:0.1.0", &format!("{}/p3/hello:1", reg.host)]);
    let line = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut tty = std::process::Command::new(script);
    tty.args(["-qec", &line, "/dev/null"]);
    tty.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            tty.env(k, v);
        }
    }
    let out = tty.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(": done ("), "{text}");
    let r2 = env
        .wpkg(&[
            "push",
            "hello:0.1.0",
            &format!("{}/p2/hello:1", reg.host),
            "-q",
        ])
        .ok();
    assert!(r2.stderr.is_empty(), "{r2:#?}");
}

/// A registry that answers an upload with a `Location` on another origin: wpkg must
/// refuse to send the blob (and any credentials) there.
#[test]
fn upload_location_on_another_origin_is_refused() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
    let elsewhere_addr = elsewhere.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    elsewhere.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(60) {
            if elsewhere.accept().is_ok() {
                h2.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = fake.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in fake.incoming().take(50) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
            }
            let (method, path) = {
                let mut p = line.split_whitespace();
                (
                    p.next().unwrap_or("").to_owned(),
                    p.next().unwrap_or("").to_owned(),
                )
            };
            let resp = match (method.as_str(), path.as_str()) {
                ("GET", "/v2/") => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_owned(),
                ("POST", p) if p.contains("/blobs/uploads/") => format!(
                    "HTTP/1.1 202 Accepted\r\nLocation: http://{elsewhere_addr}/v2/x/blobs/uploads/1\r\nContent-Length: 0\r\n\r\n"
                ),
                _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
            };
            let _ = stream.write_all(
                resp.replacen("\r\n", "\r\nConnection: close\r\n", 1)
                    .as_bytes(),
            );
        }
    });
    let env = Env::new();
    hello(&env, "Nowhere");
    env.wpkg(&["push", "hello:0.1.0", &format!("{host}/x:1")])
        .code(125)
        .stderr_has("points to another host or scheme");
    assert_eq!(
        hits.load(Ordering::Relaxed),
        0,
        "wpkg connected to the other origin"
    );
}

#[test]
fn a_token_service_on_plain_http_gets_no_credentials() {
    // A registry (loopback, so plain HTTP is fine for it) whose token service is on
    // plain HTTP elsewhere: wpkg refuses before sending anything there.
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://token.example.invalid/token\",service=\"r\"\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let env = Env::new();
    env.wpkg(&["pull", &format!("{host}/a/b:1")])
        .code(125)
        .stderr_has("the token service `http://token.example.invalid/token` is not HTTPS")
        .stderr_has("hint: pass `--insecure token.example.invalid` if you trust it");
    assert!(!env.wpkg(&["images"]).ok().stdout.contains("a/b"));
}
