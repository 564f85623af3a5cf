//! `wpkg run` of real example guests: output, operator flags, exit codes, cache.

use wpkg_tests::{command_manifest, guest, root, Env};

fn hello(env: &Env) -> String {
    let wasm = guest("example-hello", "wasm32-wasip2");
    let dir = env.project(
        "hello",
        &wasm,
        &command_manifest(
            "hello",
            "[capabilities]\nenv = { GREETING = \"Hi\" }\nenv_required = [\"TOKEN\"]\nmounts = [{ guest = \"/data\" }]\n[limits]\nmemory = \"64MiB\"\ntimeout = \"10s\"\n",
        ),
    );
    env.build(&dir, "hello:test");
    "hello:test".into()
}

#[test]
fn hello_prints_args_and_declared_env_only() {
    let env = Env::new();
    let tag = hello(&env);
    let r = env
        .wpkg(&["run", "--env", "TOKEN=t0k", &tag, "--", "alice", "bob"])
        .ok();
    assert!(r.stdout.contains("Hi, alice!"), "{r:#?}");
    assert!(r.stdout.contains(r#"args: ["alice", "bob"]"#), "{r:#?}");
    let env_lines: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("env: "))
        .collect();
    assert_eq!(env_lines, ["env: GREETING=Hi", "env: TOKEN=t0k"]);
}

#[test]
fn operator_flags_are_checked_against_the_manifest() {
    let env = Env::new();
    let tag = hello(&env);
    env.wpkg(&["run", &tag])
        .code(125)
        .stderr_has("--env TOKEN=VALUE");
    env.wpkg(&["run", "--env", "TOKEN=1", "--env", "HOME=/root", &tag])
        .code(125)
        .stderr_has("does not declare `HOME`");
    env.wpkg(&["run", "--env", "TOKEN=1", "--env", "GREETING=x", &tag])
        .code(125)
        .stderr_has("cannot be overridden");
    env.wpkg(&["run", "--env", "TOKEN=1", "--mount", "/:/etc", &tag])
        .code(125)
        .stderr_has("declares no mount at `/etc`");
    let d = env.path("d");
    std::fs::create_dir_all(&d).unwrap();
    env.wpkg(&[
        "run",
        "--env",
        "TOKEN=1",
        "--mount",
        &format!("{}:/data:rw", d.display()),
        &tag,
    ])
    .code(125)
    .stderr_has("cannot be mounted read-write");
    env.wpkg(&[
        "run",
        "--env",
        "TOKEN=1",
        "--mount",
        "/nonexistent-dir:/data",
        &tag,
    ])
    .code(125)
    .stderr_has("is not a directory");
    env.wpkg(&["run", "--env", "TOKEN=1", "--memory", "1GiB", &tag])
        .code(125)
        .stderr_has("flags may only narrow");
    env.wpkg(&["run", "--env", "TOKEN=1", "--timeout", "1h", &tag])
        .code(125)
        .stderr_has("flags may only narrow");
    env.wpkg(&[
        "run",
        "--env",
        "TOKEN=1",
        "--memory",
        "32MiB",
        "--timeout",
        "5s",
        &tag,
    ])
    .ok();
}

#[test]
fn missing_and_malformed_references() {
    let env = Env::new();
    env.wpkg(&["run", "nothing:here"])
        .code(125)
        .stderr_has("no image `nothing:here`");
    env.wpkg(&["run", "Bad Ref"])
        .code(125)
        .stderr_has("invalid reference");
    env.wpkg(&["inspect", "nope"])
        .code(125)
        .stderr_has("no image");
}

#[test]
fn wasip1_module_runs() {
    let env = Env::new();
    let wasm = guest("example-hello-p1", "wasm32-wasip1");
    let dir = env.project(
        "p1",
        &wasm,
        &command_manifest("p1", "[capabilities]\nenv = { MODE = \"p1\" }\n"),
    );
    env.build(&dir, "p1:test");
    env.wpkg(&["run", "p1:test", "--", "x"])
        .ok()
        .stdout_has(r#"args: ["x"]"#)
        .stdout_has("env: MODE=p1");
}

#[test]
fn files_example_reads_bundle_and_writes_mount() {
    let env = Env::new();
    guest("example-files", "wasm32-wasip2");
    let example = root().join("examples/files");
    env.wpkg(&[
        "build",
        "-q",
        "--no-build-command",
        example.to_str().unwrap(),
    ])
    .ok();
    let out = env.path("out");
    std::fs::create_dir_all(&out).unwrap();
    env.wpkg(&[
        "run",
        "files:0.1.0",
        "--mount",
        &format!("{}:/out", out.display()),
    ])
    .ok()
    .stdout_has("Bundled with the artifact.");
    assert_eq!(
        std::fs::read_to_string(out.join("copy.txt")).unwrap(),
        "Bundled with the artifact.\n"
    );
    // Without the mount the guest cannot write, and says so.
    env.wpkg(&["run", "files:0.1.0"])
        .code(1)
        .stderr_has("cannot write /out/copy.txt");
}

#[test]
fn run_a_project_directory_builds_it_first() {
    let env = Env::new();
    guest("example-hello", "wasm32-wasip2");
    let example = root().join("examples/hello");
    env.wpkg(&["run", example.to_str().unwrap(), "--", "dir"])
        .ok()
        .stdout_has("Hello, dir!");
    env.wpkg(&["images"]).ok().stdout_has("hello:0.1.0");
}

fn cache_entries(env: &Env) -> Vec<std::path::PathBuf> {
    let dir = env.home().join("cache/compiled");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn compiled_code_is_cached_and_damaged_entries_are_rebuilt() {
    let env = Env::new();
    let tag = hello(&env);
    let run = || {
        env.wpkg(&["run", "--env", "TOKEN=1", &tag])
            .ok()
            .stdout_has("Hi, world!");
    };
    run();
    // One entry: the code and its checksum beside it.
    let entries = cache_entries(&env);
    assert_eq!(entries.len(), 2, "{entries:?}");
    let (code, sum) = (&entries[0], &entries[1]);
    assert!(
        code.extension().is_some_and(|e| e == "cwasm"),
        "{entries:?}"
    );
    assert!(sum.extension().is_some_and(|e| e == "sum"), "{entries:?}");
    assert!(std::fs::read(sum).unwrap().starts_with(b"WPKGCODE3"));
    let first = std::fs::metadata(code).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    run();
    // A hit does not rewrite the entry.
    assert_eq!(std::fs::metadata(code).unwrap().modified().unwrap(), first);

    // Damage one byte of the code: the checksum catches it, the code is rebuilt.
    let mut bytes = std::fs::read(code).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0xff;
    std::fs::write(code, &bytes).unwrap();
    run();
    assert_ne!(
        std::fs::read(code).unwrap(),
        bytes,
        "the damaged entry was not replaced"
    );

    // Code cut short (with its checksum left as it was) is not loaded either.
    let good = std::fs::read(code).unwrap();
    let cut = &good[..good.len() / 2];
    std::fs::write(code, cut).unwrap();
    run();
    assert_ne!(
        std::fs::read(code).unwrap(),
        cut,
        "a cut entry was not rebuilt"
    );

    // Code without its checksum (half written, or an older wpkg's) is replaced.
    std::fs::remove_file(sum).unwrap();
    let foreign = b"\x7fELF not wpkg's";
    std::fs::write(code, foreign).unwrap();
    run();
    assert_ne!(std::fs::read(code).unwrap(), foreign);
    assert!(std::fs::read(sum).unwrap().starts_with(b"WPKGCODE3"));

    // A checksum for another wasm (a foreign or misplaced entry) is refused.
    let mut other = std::fs::read(sum).unwrap();
    other[b"WPKGCODE3sha256:".len()] ^= 1;
    std::fs::write(sum, &other).unwrap();
    let before = std::fs::metadata(code).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    run();
    assert_ne!(
        std::fs::metadata(code).unwrap().modified().unwrap(),
        before,
        "an entry keyed to another wasm was used"
    );

    // An entry saying it holds a core module, when the code is a component's, is
    // refused too (the kind is how a hit loads code without reading the wasm).
    let mut sum_bytes = std::fs::read(sum).unwrap();
    assert_eq!(sum_bytes.last(), Some(&b'C'));
    *sum_bytes.last_mut().unwrap() = b'M';
    std::fs::write(sum, &sum_bytes).unwrap();
    run();
    assert_eq!(std::fs::read(sum).unwrap().last(), Some(&b'C'));

    // A hit reads no wasm: the code is keyed by the digest it was compiled from, so
    // damage to the wasm blob is not seen while the code is cached; a miss reads the
    // blob, and its digest check refuses it.
    let hex = code
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .split('-')
        .next()
        .unwrap();
    let blob = env.home().join("store/blobs/sha256").join(hex);
    let mut wasm = std::fs::read(&blob).unwrap();
    let n = wasm.len();
    wasm[n / 2] ^= 0xff;
    std::fs::write(&blob, &wasm).unwrap();
    run();
    std::fs::remove_file(sum).unwrap();
    env.wpkg(&["run", "--env", "TOKEN=1", &tag])
        .code(125)
        .stderr_has("is corrupt");
}

#[test]
fn guest_exit_code_is_passed_through() {
    let env = Env::new();
    let wasm = guest("hostile", "wasm32-wasip1");
    let dir = env.project("h", &wasm, &command_manifest("h", ""));
    env.build(&dir, "h:1");
    // The guest exits 2 on an unknown mode (a WASIp1 module keeps its own code).
    env.wpkg(&["run", "h:1", "--", "bogus"])
        .code(2)
        .stderr_has("unknown mode");
}

#[test]
fn wpkg_timings_prints_the_phases_of_a_run_only_when_asked() {
    let env = Env::new();
    let tag = hello(&env);
    let line = |r: &wpkg_tests::Run| {
        r.stderr
            .lines()
            .find(|l| l.starts_with("timings (ms):"))
            .map(str::to_owned)
    };
    let timed = || {
        env.wpkg_with(
            &["run", "--env", "TOKEN=1", &tag],
            &[("WPKG_TIMINGS", "1")],
            None,
        )
        .ok()
    };
    let first = timed();
    let first = line(&first).unwrap_or_else(|| panic!("{first:#?}"));
    for phase in [
        "arguments",
        "resolve",
        "verify",
        "compile (cache miss)",
        "instantiate",
        "guest",
        "total",
    ] {
        assert!(first.contains(phase), "{phase} missing: {first}");
    }
    let warm = timed();
    assert!(
        line(&warm).is_some_and(|l| l.contains("code load (cache hit)")),
        "{warm:#?}"
    );
    // Control: not asked, not printed.
    let quiet = env.wpkg(&["run", "--env", "TOKEN=1", &tag]).ok();
    assert!(line(&quiet).is_none(), "{quiet:#?}");
}
