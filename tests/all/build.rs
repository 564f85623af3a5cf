//! `wpkg build`: the artifact layout, reproducibility, bad input.

use wpkg_tests::{command_manifest, guest, Env};

fn read_json(path: std::path::PathBuf) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(env: &Env, digest: &str) -> std::path::PathBuf {
    env.home()
        .join("store/blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

#[test]
fn artifact_follows_the_cncf_wasm_layout() {
    let env = Env::new();
    let wasm = guest("example-hello", "wasm32-wasip2");
    let dir = env.project(
        "p",
        &wasm,
        &command_manifest("hello", "[capabilities]\nenv = { A = \"1\" }\nfiles = [{ source = \"static\", guest = \"/static\" }]\n"),
    );
    std::fs::create_dir_all(dir.join("static/sub")).unwrap();
    std::fs::write(dir.join("static/sub/a.txt"), "a").unwrap();
    let digest = env.build(&dir, "hello:layout");
    let m = read_json(blob(&env, &digest));
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(m["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(
        m["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "hello.wasm"
    );
    assert_eq!(
        m["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(
        m["annotations"]["org.opencontainers.image.version"],
        "0.1.0"
    );
    let c = read_json(blob(&env, m["config"]["digest"].as_str().unwrap()));
    assert_eq!(c["architecture"], "wasm");
    assert_eq!(c["os"], "wasip2");
    assert_eq!(c["layerDigests"][0], m["layers"][0]["digest"]);
    assert!(c["component"]["exports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.as_str().unwrap().starts_with("wasi:cli/run")));
    assert!(!c["component"]["imports"].as_array().unwrap().is_empty());
    assert_eq!(c["dev.wpkg.capabilities"]["capabilities"]["env"]["A"], "1");
    assert_eq!(c["dev.wpkg.capabilities"]["trigger"]["type"], "command");
    // No host path inside the artifact.
    let text = String::from_utf8(
        std::fs::read(blob(&env, m["config"]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    assert!(!text.contains(env.dir.path().to_str().unwrap()));
}

#[test]
fn builds_are_reproducible() {
    let a = Env::new();
    let b = Env::new();
    let wasm = guest("example-hello", "wasm32-wasip2");
    let manifest = command_manifest(
        "r",
        "[capabilities]\nfiles = [{ source = \"static\", guest = \"/static\" }]\n",
    );
    let da = a.project("p", &wasm, &manifest);
    let db = b.project("other-name", &wasm, &manifest);
    for d in [&da, &db] {
        std::fs::create_dir_all(d.join("static")).unwrap();
        std::fs::write(d.join("static/x.txt"), "same").unwrap();
    }
    // Different mtimes on the inputs must not matter.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(db.join("static/x.txt"), "same").unwrap();
    let first = a.build(&da, "r:1");
    assert_eq!(first, a.build(&da, "r:1"));
    assert_eq!(first, b.build(&db, "r:1"));
    let mut c = a.cmd(&[
        "build",
        "-q",
        "--no-build-command",
        da.to_str().unwrap(),
        "-t",
        "r:2",
    ]);
    c.env("SOURCE_DATE_EPOCH", "1700000000");
    let out = c.output().unwrap();
    let stamped = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_ne!(first, stamped);
    let m = read_json(blob(&a, &stamped));
    assert_eq!(
        m["annotations"]["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
}

fn store_is_empty(env: &Env) -> bool {
    let blobs = env.home().join("store/blobs/sha256");
    let none = !blobs.exists() || std::fs::read_dir(&blobs).unwrap().next().is_none();
    let index = env.home().join("store/index.json");
    none && (!index.exists() || read_json(index)["manifests"].as_array().unwrap().is_empty())
}

#[test]
fn bad_wasm_is_refused_and_nothing_is_written() {
    let env = Env::new();
    let real = guest("example-hello", "wasm32-wasip2");
    let bytes = std::fs::read(&real).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "text",
            b"this is not wasm at all".to_vec(),
            "not a WebAssembly binary",
        ),
        (
            "truncated",
            bytes[..bytes.len() / 2].to_vec(),
            "not valid WebAssembly",
        ),
        ("empty", vec![], "not a WebAssembly binary"),
    ];
    for (name, data, msg) in cases {
        let f = env.path(&format!("{name}.wasm"));
        std::fs::write(&f, data).unwrap();
        let dir = env.project(name, &f, &command_manifest("bad", ""));
        env.wpkg(&["build", "--no-build-command", dir.to_str().unwrap()])
            .code(125)
            .stderr_has(msg)
            .stderr_has("nothing was written");
        assert!(store_is_empty(&env), "{name} left something in the store");
    }
    let dir = env.project(
        "missing",
        &env.path("nope.wasm"),
        &command_manifest("bad", ""),
    );
    env.wpkg(&["build", dir.to_str().unwrap()])
        .code(125)
        .stderr_has("cannot read the wasm file");
    assert!(store_is_empty(&env));
}

#[test]
fn bad_manifests_and_build_commands_are_refused() {
    let env = Env::new();
    let wasm = guest("example-hello", "wasm32-wasip2");
    let dir = env.project(
        "typo",
        &wasm,
        &command_manifest("t", "[capabilities]\nenviron = {}\n"),
    );
    env.wpkg(&["build", dir.to_str().unwrap()])
        .code(125)
        .stderr_has("line 9, column 1: unknown key `environ`");
    let dir = env.project(
        "failing",
        &wasm,
        &command_manifest("t", "").replace("[trigger]", "build = \"exit 3\"\n[trigger]"),
    );
    env.wpkg(&["build", dir.to_str().unwrap()])
        .code(125)
        .stderr_has("the build command `exit 3` failed");
    env.wpkg(&["build", env.path("nowhere").to_str().unwrap()])
        .code(125)
        .stderr_has("cannot read");
    let dir = env.project(
        "symlinked",
        &wasm,
        &command_manifest(
            "t",
            "[capabilities]\nfiles = [{ source = \"s\", guest = \"/s\" }]\n",
        ),
    );
    std::fs::create_dir_all(dir.join("s")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("s/passwd")).unwrap();
    env.wpkg(&["build", "--no-build-command", dir.to_str().unwrap()])
        .code(125)
        .stderr_has("symlinks cannot be bundled");
    assert!(store_is_empty(&env));
}

#[test]
fn core_module_cannot_be_an_http_handler() {
    let env = Env::new();
    let wasm = guest("example-hello-p1", "wasm32-wasip1");
    let dir = env.project(
        "m",
        &wasm,
        &command_manifest("m", "").replace("\"command\"", "\"http\""),
    );
    env.wpkg(&["build", "--no-build-command", dir.to_str().unwrap()])
        .code(125)
        .stderr_has("needs a wasi:http/proxy component");
}

#[test]
fn a_bad_source_date_epoch_is_refused_and_nothing_is_written() {
    let env = Env::new();
    let wasm = guest("example-hello", "wasm32-wasip2");
    let dir = env.project("p", &wasm, &command_manifest("e", ""));
    let out = env
        .cmd(&["build", "--no-build-command", dir.to_str().unwrap()])
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("SOURCE_DATE_EPOCH=`yesterday` is not a number"));
    assert!(store_is_empty(&env));
}
