//! The local store: concurrency, digests checked on read, tag, rm, images, inspect.

use wpkg_tests::{command_manifest, guest, Env};

fn project(env: &Env) -> std::path::PathBuf {
    let wasm = guest("example-hello", "wasm32-wasip2");
    env.project(
        "p",
        &wasm,
        &command_manifest("hello", "[capabilities]\nenv = { GREETING = \"Yo\" }\n"),
    )
}

#[test]
fn concurrent_writers_do_not_corrupt_the_store() {
    let env = Env::new();
    let dir = project(&env);
    let dir = dir.to_str().unwrap();
    // Eight processes at once: four distinct tags, four writing the same tag.
    let children: Vec<_> = (0..8)
        .map(|i| {
            let tag = if i < 4 {
                format!("hello:c{i}")
            } else {
                "hello:same".to_owned()
            };
            env.cmd(&["build", "-q", "--no-build-command", dir, "-t", &tag])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let refs: Vec<String> = listed(&env).into_iter().map(|(r, _, _)| r).collect();
    assert_eq!(
        refs,
        [
            "docker.io/library/hello:c0",
            "docker.io/library/hello:c1",
            "docker.io/library/hello:c2",
            "docker.io/library/hello:c3",
            "docker.io/library/hello:same"
        ]
    );
    // Every blob still matches its name, and nothing is left in tmp.
    for e in std::fs::read_dir(env.home().join("store/blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        use sha2_check::hex_sha256;
        assert_eq!(hex_sha256(&bytes), p.file_name().unwrap().to_str().unwrap());
    }
    assert_eq!(
        std::fs::read_dir(env.home().join("store/tmp"))
            .unwrap()
            .count(),
        0
    );
    env.wpkg(&["run", "hello:same"])
        .ok()
        .stdout_has("Yo, world!");
}

/// A small SHA-256 via the system's `sha256sum`, so the test does not trust wpkg's.
mod sha2_check {
    pub fn hex_sha256(bytes: &[u8]) -> String {
        use std::io::Write;
        let mut c = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sha256sum (coreutils) is needed");
        c.stdin.take().unwrap().write_all(bytes).unwrap();
        let out = c.wait_with_output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }
}

#[test]
fn a_damaged_blob_is_detected_on_read() {
    let env = Env::new();
    let dir = project(&env);
    let digest = env.build(&dir, "hello:x");
    let (_, manifest) = stored_manifest(&env, &digest);
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let path = env.home().join("store/blobs/sha256").join(&layer[7..]);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    env.wpkg(&["run", "hello:x"])
        .code(125)
        .stderr_has(&format!("blob {layer} in the local store is corrupt"));
    // A damaged config (capabilities widened by hand) is refused the same way.
    let config = manifest["config"]["digest"].as_str().unwrap();
    let cpath = env.home().join("store/blobs/sha256").join(&config[7..]);
    let text = std::fs::read_to_string(&cpath)
        .unwrap()
        .replace("\"GREETING\":\"Yo\"", "\"GREETING\":\"Yo\",\"HOME\":\"/\"");
    std::fs::write(&cpath, text).unwrap();
    env.wpkg(&["inspect", "hello:x"])
        .code(125)
        .stderr_has("is corrupt");
}

/// The manifest blob `digest` in the store: its bytes and its JSON.
fn stored_manifest(env: &Env, digest: &str) -> (Vec<u8>, serde_json::Value) {
    let bytes = std::fs::read(env.home().join("store/blobs/sha256").join(&digest[7..])).unwrap();
    let json = serde_json::from_slice(&bytes).unwrap();
    (bytes, json)
}

/// `wpkg images --json` as (reference, size, created) rows.
fn listed(env: &Env) -> Vec<(String, u64, String)> {
    let v: serde_json::Value =
        serde_json::from_str(&env.wpkg(&["images", "--json"]).ok().stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["reference"].as_str().unwrap().to_owned(),
                i["size"].as_u64().unwrap(),
                i["created"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn images_lists_size_and_date_recorded_at_tag_time() {
    let env = Env::new();
    let dir = project(&env);
    let digest = env.build(&dir, "hello:1");
    env.wpkg(&["tag", "hello:1", "hello:2"]).ok();
    let blobs = env.home().join("store/blobs/sha256");
    let (manifest_bytes, manifest) = stored_manifest(&env, &digest);
    let expected = manifest_bytes.len() as u64
        + manifest["config"]["size"].as_u64().unwrap()
        + manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["size"].as_u64().unwrap())
            .sum::<u64>();
    let rows = listed(&env);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (_, size, created) in &rows {
        assert_eq!(*size, expected);
        assert!(created.starts_with("1970-01-01"), "{created}");
    }
    // Recorded on the index entries (a new tag keeps them): listing reads no blob, so
    // it is as fast with 1,000 images as with 10.
    let index_path = env.home().join("store/index.json");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    for entry in index["manifests"].as_array().unwrap() {
        assert_eq!(
            entry["annotations"]["dev.wpkg.size"],
            expected.to_string(),
            "{entry:#}"
        );
    }
    let config = manifest["config"]["digest"].as_str().unwrap();
    let config_path = blobs.join(&config[7..]);
    let config_bytes = std::fs::read(&config_path).unwrap();
    std::fs::remove_file(&config_path).unwrap();
    assert_eq!(listed(&env), rows, "listing read a blob");

    // Entries an older wpkg wrote (no summary) are read from the blobs, as before:
    // same figures, and "damaged" when a blob is missing.
    let mut index = index;
    for entry in index["manifests"].as_array_mut().unwrap() {
        let a = entry["annotations"].as_object_mut().unwrap();
        a.remove("dev.wpkg.size");
        a.remove("dev.wpkg.created");
    }
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    assert!(
        listed(&env)
            .iter()
            .all(|(_, size, created)| *size == 0 && created == "damaged"),
        "{:?}",
        listed(&env)
    );
    std::fs::write(&config_path, config_bytes).unwrap();
    assert_eq!(listed(&env), rows);
}

#[test]
fn tag_rm_images_inspect() {
    let env = Env::new();
    let dir = project(&env);
    let digest = env.build(&dir, "hello:1");
    env.wpkg(&["tag", "hello:1", "ghcr.io/acme/hello:v1"]).ok();
    let list = env.wpkg(&["images"]).ok();
    assert!(list.stdout.contains("ghcr.io/acme/hello:v1"), "{list:#?}");
    assert!(list.stdout.contains(&digest[..19]));
    let by_digest = format!("hello@{digest}");
    env.wpkg(&["run", &by_digest]).ok().stdout_has("Yo, world!");
    let inspect = env.wpkg(&["inspect", "ghcr.io/acme/hello:v1"]).ok();
    assert!(
        inspect.stdout.contains("environment: GREETING=Yo (fixed)"),
        "{inspect:#?}"
    );
    assert!(inspect.stdout.contains("network sockets and DNS: none"));
    let json: serde_json::Value =
        serde_json::from_str(&env.wpkg(&["inspect", "--json", "hello:1"]).ok().stdout).unwrap();
    assert_eq!(json["digest"], digest.as_str());
    assert_eq!(json["config"]["os"], "wasip2");
    env.wpkg(&["rm", "hello:1"]).ok();
    // Still referenced by the other tag: blobs stay.
    env.wpkg(&["run", "ghcr.io/acme/hello:v1"]).ok();
    env.wpkg(&["rm", "ghcr.io/acme/hello:v1"]).ok();
    assert_eq!(
        std::fs::read_dir(env.home().join("store/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    env.wpkg(&["rm", "hello:1"])
        .code(125)
        .stderr_has("no image");
    env.wpkg(&["tag", "nope:1", "x:1"])
        .code(125)
        .stderr_has("no image");
}

#[test]
fn a_damaged_index_is_reported_not_overwritten() {
    let env = Env::new();
    let dir = project(&env);
    env.build(&dir, "hello:1");
    let index = env.home().join("store/index.json");
    std::fs::write(&index, "{ not json").unwrap();
    env.wpkg(&["images"])
        .code(125)
        .stderr_has("index.json does not parse");
    env.wpkg(&[
        "build",
        "--no-build-command",
        dir.to_str().unwrap(),
        "-t",
        "hello:2",
    ])
    .code(125)
    .stderr_has("is damaged");
    // The damaged file is left for the user to inspect, not replaced.
    assert_eq!(std::fs::read_to_string(&index).unwrap(), "{ not json");
}
