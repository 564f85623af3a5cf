//! `wpkg build --format image` on one machine: the container image containerd runs is
//! also an image `wpkg run` runs with exactly its embedded capabilities, and `wpkg
//! inspect` reads them from the layers. (Through containerd: `containerd.rs`.)

use wpkg_tests::{command_manifest, guest, Env, Run, HOST_SECRET};

/// The hostile guest (a WASIp1 module: a leak exits 42) as `hostile:image`.
fn image(env: &Env) {
    let wasm = guest("hostile", "wasm32-wasip1");
    let manifest = command_manifest(
        "hostile",
        r#"[capabilities]
env = { FIXED = "from-image" }
env_required = ["NEEDED"]
files = [{ source = "static", guest = "/static" }]
[limits]
memory = "32MiB"
timeout = "2s"
"#,
    );
    let dir = env.project("proj", &wasm, &manifest);
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(dir.join("static/message.txt"), "bundled").unwrap();
    env.build_image(&dir, "hostile:image");
}

fn run(env: &Env, args: &[&str]) -> Run {
    let mut all = vec!["run", "--env", "NEEDED=given", "hostile:image", "--"];
    all.extend_from_slice(args);
    env.wpkg(&all)
}

#[track_caller]
fn denied(r: Run) {
    assert!(!r.stdout.contains("LEAK"), "the sandbox leaked:\n{r:#?}");
    r.code(0).stdout_has("denied:");
}

#[test]
fn inspect_reads_the_capabilities_an_image_carries() {
    let env = Env::new();
    image(&env);
    let text = env
        .wpkg(&["inspect", "hostile:image"])
        .ok()
        .stdout_has("container image (wasip1/wasm, wpkg build --format image)")
        .stdout_has("Capabilities: /.wpkg/capabilities.json, for /app.wasm (sha256:")
        .stdout_has("FIXED")
        .stdout_has("At run (wpkg run):")
        .stdout_has("--env NEEDED=VALUE");
    assert!(!text.stdout.contains("no wpkg manifest"), "{text:#?}");
    let json = env.wpkg(&["inspect", "--json", "hostile:image"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let perms = v["permissions"].to_string();
    assert!(perms.contains("NEEDED"), "{perms}");
    assert!(!perms.contains("no wpkg manifest"), "{perms}");
}

#[test]
fn run_grants_an_image_exactly_its_embedded_capabilities() {
    let env = Env::new();
    image(&env);
    // Controls: what is declared is there.
    run(&env, &["env", "NEEDED"])
        .code(42)
        .stdout_has("LEAK: NEEDED=given");
    run(&env, &["env", "FIXED"])
        .code(42)
        .stdout_has("from-image");
    run(&env, &["read", "/static/message.txt"]).code(42);
    // The rest of the image's files, its capabilities and the host are not.
    denied(run(&env, &["read", "/app.wasm"]));
    denied(run(&env, &["read", "/.wpkg/capabilities.json"]));
    denied(run(&env, &["env", HOST_SECRET.0]));
    denied(run(&env, &["dns", "localhost"]));
    // A required variable missing, or one not declared, refuses the run.
    env.wpkg(&["run", "hostile:image", "--", "env", "NEEDED"])
        .code(125)
        .stderr_has("NEEDED");
    env.wpkg(&[
        "run",
        "--env",
        "NEEDED=x",
        "--env",
        "OTHER=y",
        "hostile:image",
    ])
    .code(125)
    .stderr_has("OTHER");
}
