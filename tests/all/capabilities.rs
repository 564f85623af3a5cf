//! Capabilities beyond WASI's core, from the guest's side: wasi:config and
//! wasi:keyvalue (embedded and Redis), Wasm GC, and threads (refused). Every grant has
//! a refusal when undeclared and a control that succeeds once declared. The guest
//! (`tests/guests/caps`) prints `denied: ...` and exits 1 when the host refuses.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use wpkg_tests::redis::Redis;
use wpkg_tests::{command_manifest, guest, Env, Run};

const DECLARED: &str = r#"[capabilities]
key_value = ["default", "cache"]
[config]
greeting = { default = "hello" }
token = { secret = true, required = true }
level = {}
"#;

fn probe(env: &Env, tag: &str, extra: &str) -> String {
    let wasm = guest("caps-probe", "wasm32-wasip2");
    let dir = env.project(tag, &wasm, &command_manifest("probe", extra));
    env.build(&dir, &format!("probe:{tag}"));
    format!("probe:{tag}")
}

fn run(env: &Env, image: &str, flags: &[&str], args: &[&str]) -> Run {
    let mut all = vec!["run"];
    all.extend_from_slice(flags);
    all.push(image);
    all.push("--");
    all.extend_from_slice(args);
    env.wpkg(&all)
}

#[test]
fn config_is_refused_undeclared_and_reads_exactly_the_declared_keys() {
    let env = Env::new();
    let none = probe(&env, "none", "");
    // Undeclared: refused before the guest starts, naming what to declare.
    run(&env, &none, &[], &["config-get", "greeting"])
        .code(125)
        .stderr_has("imports `wasi:config/store")
        .stderr_has("hint: to grant it, add a [config] table");
    let caps = probe(&env, "caps", DECLARED);
    // The control: declared keys read their defaults and the operator's values.
    run(
        &env,
        &caps,
        &["--config", "token=s3cret"],
        &["config-get", "greeting"],
    )
    .ok()
    .stdout_has("config greeting=hello");
    run(
        &env,
        &caps,
        &["-c", "token=s3cret", "-c", "greeting=yo"],
        &["config-get", "greeting"],
    )
    .ok()
    .stdout_has("config greeting=yo");
    let file = env.path("values.toml");
    std::fs::write(&file, "token = \"from-file\"\nlevel = \"debug\"\n").unwrap();
    let r = run(
        &env,
        &caps,
        &["--config-file", file.to_str().unwrap()],
        &["config-all"],
    )
    .ok();
    assert!(
        r.stdout.contains("config-all 3") && r.stdout.contains("token=from-file"),
        "{r:#?}"
    );
    // A key without a value reads as unset; an undeclared key is invisible.
    run(&env, &caps, &["-c", "token=x"], &["config-get", "level"])
        .ok()
        .stdout_has("config level unset");
    run(&env, &caps, &["-c", "token=x"], &["config-get", "home"])
        .ok()
        .stdout_has("config home unset");
    // The operator cannot add a key, must give a required one, and gives each once.
    run(
        &env,
        &caps,
        &["-c", "token=x", "-c", "home=/"],
        &["config-all"],
    )
    .code(125)
    .stderr_has("--config home: the artifact declares no config key `home`");
    run(&env, &caps, &[], &["config-all"])
        .code(125)
        .stderr_has("requires config key `token`")
        .stderr_has("--config token=VALUE");
    run(
        &env,
        &caps,
        &["-c", "token=a", "-c", "token=b"],
        &["config-all"],
    )
    .code(125)
    .stderr_has("given twice");
    std::fs::write(&file, "token = 3\n").unwrap();
    run(
        &env,
        &caps,
        &["--config-file", file.to_str().unwrap()],
        &["config-all"],
    )
    .code(125)
    .stderr_has("must be a string");
    // A secret's value is never shown by inspect.
    let i = env.wpkg(&["inspect", &caps]).ok();
    assert!(i.stdout.contains("`token` (secret"), "{i:#?}");
    // A secret with a default is refused at build.
    let wasm = guest("caps-probe", "wasm32-wasip2");
    let dir = env.project(
        "leaky",
        &wasm,
        &command_manifest(
            "probe",
            "[config]\ntoken = { secret = true, default = \"x\" }\n",
        ),
    );
    env.wpkg(&[
        "build",
        "-q",
        "--no-build-command",
        dir.to_str().unwrap(),
        "-t",
        "probe:leaky",
    ])
    .code(125)
    .stderr_has("secret and has a default");
}

#[test]
fn embedded_stores_are_declared_persist_and_refuse_other_stores() {
    let env = Env::new();
    let none = probe(&env, "none", "[config]\ntoken = {}\n");
    run(&env, &none, &[], &["kv-open", "default"])
        .code(125)
        .stderr_has("imports `wasi:keyvalue/")
        .stderr_has("key_value = [\"default\"] under [capabilities]");
    let caps = probe(&env, "caps", DECLARED);
    let t = ["-c", "token=x"];
    run(&env, &caps, &t, &["kv-set", "default", "k", "v1"]).ok();
    // A second run (a new process) reads what the first stored.
    run(&env, &caps, &t, &["kv-get", "default", "k"])
        .ok()
        .stdout_has("value v1");
    run(&env, &caps, &t, &["kv-get", "cache", "k"])
        .ok()
        .stdout_has("absent k");
    run(&env, &caps, &t, &["kv-incr", "default", "n", "5"]).ok();
    run(&env, &caps, &t, &["kv-incr", "default", "n", "5"])
        .ok()
        .stdout_has("value 10");
    run(&env, &caps, &t, &["kv-batch", "default"])
        .ok()
        .stdout_has("batch got 3")
        .stdout_has("batch left 0");
    run(&env, &caps, &t, &["kv-list", "default"])
        .ok()
        .stdout_has("keys k,n");
    // The hostile part: another store, an oversized value, a non-number to increment.
    run(&env, &caps, &t, &["kv-open", "other"])
        .code(1)
        .stdout_has("denied: open other: Error::NoSuchStore");
    run(&env, &caps, &t, &["kv-big", "default", "big", "2000000"])
        .code(1)
        .stdout_has("more than the limit of 1048576");
    run(&env, &caps, &t, &["kv-incr", "default", "k", "1"])
        .code(1)
        .stdout_has("not a decimal number");
    // The refused writes left the store as it was.
    run(&env, &caps, &t, &["kv-list", "default"])
        .ok()
        .stdout_has("keys k,n");
    // The operator binds only declared stores, and only to a Redis URL.
    run(
        &env,
        &caps,
        &["-c", "token=x", "--kv", "other=redis://127.0.0.1:1"],
        &["kv-open", "default"],
    )
    .code(125)
    .stderr_has("--kv other: the artifact declares no key-value store `other`");
    run(
        &env,
        &caps,
        &["-c", "token=x", "--kv", "default=http://h"],
        &["kv-open", "default"],
    )
    .code(125)
    .stderr_has("is not a Redis URL");
    // The data lives under WPKG_HOME/kv, one directory per repository, a file per store.
    let kv = env.home().join("kv");
    let dirs: Vec<_> = std::fs::read_dir(&kv).unwrap().flatten().collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert!(dirs[0].path().join("default.redb").is_file());
}

#[test]
fn a_redis_store_holds_the_data_and_an_unreachable_one_stops_the_run() {
    let env = Env::new();
    let redis = Redis::start(&env.path(""));
    let caps = probe(&env, "caps", DECLARED);
    let bind = format!("default={}", redis.url(3));
    let f = ["-c", "token=x", "--kv", &bind];
    run(&env, &caps, &f, &["kv-set", "default", "r", "in-redis"]).ok();
    // It really is in Redis's database 3, and not on this machine.
    assert_eq!(redis.get(3, "r"), "in-redis");
    assert_eq!(redis.get(0, "r"), "");
    run(&env, &caps, &["-c", "token=x"], &["kv-get", "default", "r"])
        .ok()
        .stdout_has("absent r");
    run(&env, &caps, &f, &["kv-get", "default", "r"])
        .ok()
        .stdout_has("value in-redis");
    run(&env, &caps, &f, &["kv-incr", "default", "c", "7"])
        .ok()
        .stdout_has("value 7");
    run(&env, &caps, &f, &["kv-batch", "default"])
        .ok()
        .stdout_has("batch got 3");
    run(&env, &caps, &f, &["kv-list", "default"])
        .ok()
        .stdout_has("keys c,r");
    run(&env, &caps, &f, &["kv-big", "default", "big", "2000000"])
        .code(1)
        .stdout_has("more than the limit");
    assert_eq!(redis.get(3, "big"), "");
    // An unreachable server: one line, exit 125, the guest never starts.
    let dead = format!(
        "default=redis://127.0.0.1:{}",
        wpkg_tests::registry::free_port()
    );
    let r = run(
        &env,
        &caps,
        &["-c", "token=x", "--kv", &dead],
        &["kv-set", "default", "x", "y"],
    )
    .code(125)
    .stderr_has("cannot reach Redis at redis://127.0.0.1:")
    .stderr_has("hint:");
    assert!(!r.stdout.contains("set x"), "{r:#?}");
}

#[test]
fn the_embedded_store_survives_kill_9_during_writes() {
    let env = Env::new();
    let caps = probe(&env, "caps", DECLARED);
    for round in 0..3u64 {
        let mut child = env
            .cmd(&[
                "run", "-c", "token=x", &caps, "--", "kv-loop", "default", "counter",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut last = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        // Kill at a different point each round, mid-stream.
        let target = 30 + round * 17;
        let mut seen = 0;
        while let Some(Ok(line)) = lines.next() {
            last = line.trim_start_matches("stored ").parse().unwrap();
            seen += 1;
            if seen >= target || Instant::now() > deadline {
                break;
            }
        }
        if round == 0 {
            // While one process holds the embedded store, a second run is refused, clearly,
            // before its guest starts.
            run(
                &env,
                &caps,
                &["-c", "token=x"],
                &["kv-get", "default", "counter"],
            )
            .code(125)
            .stderr_has("another wpkg process has it open")
            .stderr_has("hint: an embedded store belongs to one process at a time");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(seen >= target, "the guest stored only {seen} values");
        // Every value the guest saw acknowledged is there after the crash, and the store
        // opens and takes writes again.
        let r = run(
            &env,
            &caps,
            &["-c", "token=x"],
            &["kv-get", "default", "counter"],
        )
        .ok();
        let now: u64 = r
            .stdout
            .trim()
            .trim_start_matches("value ")
            .parse()
            .unwrap();
        assert!(
            now >= last,
            "acknowledged {last}, found {now} after kill -9"
        );
        run(
            &env,
            &caps,
            &["-c", "token=x"],
            &["kv-incr", "default", "counter", "1"],
        )
        .ok()
        .stdout_has(&format!("value {}", now + 1));
    }
}

#[test]
fn wasm_gc_runs_and_threads_are_refused_clearly() {
    let env = Env::new();
    // A WASIp1 module that allocates a GC struct and exits with its field.
    let gc = wat::parse_str(
        r#"(module
          (type $point (struct (field i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (local $p (ref null $point))
            (local.set $p (struct.new $point (i32.const 42)))
            (call $exit (struct.get $point 0 (local.get $p)))))"#,
    )
    .unwrap();
    let wasm = env.path("gc.wasm");
    std::fs::write(&wasm, gc).unwrap();
    let dir = env.project("gc", &wasm, &command_manifest("gc", ""));
    env.build(&dir, "gc:1");
    env.wpkg(&["run", "gc:1"]).code(42);
    // A module that spawns threads is refused before it starts, saying so.
    let threads = wat::parse_str(
        r#"(module
          (import "wasi" "thread-spawn" (func (param i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "_start")))"#,
    )
    .unwrap();
    let wasm = env.path("threads.wasm");
    std::fs::write(&wasm, threads).unwrap();
    let dir = env.project("threads", &wasm, &command_manifest("threads", ""));
    env.build(&dir, "threads:1");
    env.wpkg(&["run", "threads:1"])
        .code(125)
        .stderr_has("spawns threads");
}

/// ONNX Runtime's shared library from the `onnxruntime` Python package.
fn onnx_runtime() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import onnxruntime, os, glob; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so*')))[0])"])
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "the onnxruntime Python package is missing: run `bash scripts/setup.sh` (pip install onnxruntime onnx)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn wasi_nn_classifies_with_bundled_models_only() {
    let env = Env::new();
    let wasm = guest("nn-probe", "wasm32-wasip2");
    let ort = onnx_runtime();
    let with_ort = |args: &[&str]| env.wpkg_with(args, &[("ORT_DYLIB_PATH", &ort)], None);
    // Undeclared: the guest imports wasi:nn and is refused before it starts.
    let dir = env.project("none", &wasm, &command_manifest("nn", ""));
    env.build(&dir, "nn:none");
    with_ort(&[
        "run", "nn:none", "--", "classify", "tiny", "1", "0", "0", "0",
    ])
    .code(125)
    .stderr_has("imports `wasi:nn/")
    .stderr_has("[nn]");
    // Declared: the model is bundled and the guest classifies with it.
    let dir = env.project(
        "tiny",
        &wasm,
        &command_manifest("nn", "[nn]\nmodels = [\"models/tiny.onnx\"]\n"),
    );
    std::fs::create_dir_all(dir.join("models")).unwrap();
    let made = std::process::Command::new("python3")
        .arg(wpkg_tests::root().join("tests/guests/nn-probe/make_model.py"))
        .arg(dir.join("models/tiny.onnx"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "making the model needs the onnx Python package: run `bash scripts/setup.sh`\n{}",
        String::from_utf8_lossy(&made.stderr)
    );
    env.build(&dir, "nn:tiny");
    with_ort(&[
        "run", "nn:tiny", "--", "classify", "tiny", "0.1", "0.9", "0.2", "0",
    ])
    .ok()
    .stdout_has("scores 0.100 0.900 0.450")
    .stdout_has("class 1");
    with_ort(&[
        "run", "nn:tiny", "--", "classify", "tiny", "0", "0", "1", "0",
    ])
    .ok()
    .stdout_has("class 2");
    // The hostile part: another model by name, and a model of the guest's own.
    with_ort(&[
        "run",
        "nn:tiny",
        "--",
        "classify",
        "squeezenet",
        "1",
        "0",
        "0",
        "0",
    ])
    .code(1)
    .stdout_has("denied: load-by-name: ErrorCode::NotFound");
    with_ort(&["run", "nn:tiny", "--", "load-bytes"])
        .code(1)
        .stdout_has("denied: load: ErrorCode::InvalidEncoding");
    // The model travels in the artifact (a signature covers it): inspect names it.
    env.wpkg(&["inspect", "nn:tiny"])
        .ok()
        .stdout_has("the guest may load `tiny`");
    // Without ONNX Runtime, or with a model that does not load: one line, exit 125.
    env.wpkg(&[
        "run", "nn:tiny", "--", "classify", "tiny", "1", "0", "0", "0",
    ])
    .code(125)
    .stderr_has("ORT_DYLIB_PATH is not set")
    .stderr_has("hint: install ONNX Runtime");
    std::fs::write(dir.join("models/tiny.onnx"), b"not an onnx model").unwrap();
    env.build(&dir, "nn:broken");
    let r = with_ort(&[
        "run",
        "nn:broken",
        "--",
        "classify",
        "tiny",
        "1",
        "0",
        "0",
        "0",
    ])
    .code(125)
    .stderr_has("cannot load model `tiny`");
    assert!(!r.stdout.contains("scores"), "{r:#?}");
}
