//! Hostile guests: each test runs a guest that tries a forbidden thing and expects the
//! sandbox to refuse it. The guest prints `denied: ...` and exits 0 when refused, and
//! prints `LEAK: ...` and exits 42 when the forbidden thing worked, so a leak fails
//! the test. Control cases prove the guest does detect success.

use std::path::PathBuf;

use wpkg_tests::{command_manifest, guest, Env, Run, HOST_SECRET};

struct Sandbox {
    env: Env,
    tag: String,
    data: PathBuf,
    out: PathBuf,
}

fn sandbox(target: &str) -> Sandbox {
    let env = Env::new();
    let wasm = guest("hostile", target);
    let manifest = command_manifest(
        "hostile",
        r#"[capabilities]
files = [{ source = "static", guest = "/static" }]
mounts = [{ guest = "/data" }, { guest = "/out", access = "read-write" }]
[limits]
memory = "32MiB"
timeout = "2s"
"#,
    );
    let dir = env.project("proj", &wasm, &manifest);
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(dir.join("static/message.txt"), "bundled").unwrap();
    let data = env.path("data");
    let out = env.path("out");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(data.join("ok.txt"), "fine").unwrap();
    std::fs::write(env.path("outside.txt"), "secret outside the mount").unwrap();
    std::os::unix::fs::symlink("/etc", data.join("link")).unwrap();
    std::os::unix::fs::symlink("../outside.txt", data.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(env.path("outside.txt"), data.join("abs-escape.txt")).unwrap();
    let tag = format!("hostile:{}", target.replace('.', "-"));
    env.build(&dir, &tag);
    Sandbox {
        env,
        tag,
        data,
        out,
    }
}

impl Sandbox {
    fn run(&self, args: &[&str]) -> Run {
        let data = format!("{}:/data", self.data.display());
        let out = format!("{}:/out", self.out.display());
        let mut all = vec!["run", "--mount", &data, "--mount", &out, &self.tag, "--"];
        all.extend_from_slice(args);
        self.env.wpkg(&all)
    }

    #[track_caller]
    fn denied(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert!(!r.stdout.contains("LEAK"), "the sandbox leaked:\n{r:#?}");
        r.code(0).stdout_has("denied:")
    }
}

#[test]
fn control_cases_detect_success() {
    // A WASI 0.2 component can only exit with 0 or 1 (wasi:cli/exit), so a leak
    // shows as exit 1 there; a WASIp1 module keeps its 42.
    let s = sandbox("wasm32-wasip2");
    s.run(&["read", "/data/ok.txt"])
        .code(1)
        .stdout_has("LEAK: read /data/ok.txt");
    s.run(&["read", "/static/message.txt"])
        .code(1)
        .stdout_has("LEAK");
    s.run(&["write", "/out/new.txt"]).code(1).stdout_has("LEAK");
    assert_eq!(
        std::fs::read_to_string(s.out.join("new.txt")).unwrap(),
        "pwned"
    );
}

#[test]
fn probes_detect_success_outside_the_sandbox() {
    // The same probe code, run as a native program where every capability exists:
    // each probe must report a leak, or the denials above would prove nothing.
    let bin = wpkg_tests::native_guest("hostile");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.txt");
    std::fs::write(&file, "x").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = listener.local_addr().unwrap().to_string();
    // Answer the probe's connection (it reads one byte), then hang up.
    let accepted = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        std::io::Write::write_all(&mut c, b"!").unwrap();
    });
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = udp.local_addr().unwrap().to_string();
    let cases: Vec<(&str, String)> = vec![
        ("read", file.display().to_string()),
        ("write", dir.path().join("new.txt").display().to_string()),
        ("list-root", String::new()),
        ("env", "PATH".into()),
        ("tcp", tcp),
        ("tcp-listen", "127.0.0.1:0".into()),
        ("udp", udp_addr),
        ("dns", "localhost".into()),
    ];
    for (mode, arg) in &cases {
        let out = std::process::Command::new(&bin)
            .args([mode, arg.as_str()])
            .env("PATH", "/usr/bin")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            (out.status.code(), stdout.starts_with("LEAK:")),
            (Some(42), true),
            "probe `{mode}` did not detect success natively: {stdout}"
        );
    }
    accepted.join().unwrap();
    udp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 8];
    assert!(
        udp.recv_from(&mut buf).is_ok(),
        "the native UDP probe sent nothing"
    );
}

#[test]
fn every_hostile_mode_has_a_test() {
    // Completeness: each mode of each hostile guest is exercised somewhere.
    let root = wpkg_tests::root();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let tests = read("tests/all/hostile.rs") + &read("tests/all/http.rs");
    let arms = |src: &str, prefix: &str| -> Vec<String> {
        src.lines()
            .filter_map(|l| {
                let l = l.trim_start();
                let rest = l.strip_prefix('"')?;
                let (name, after) = rest.split_once('"')?;
                (after.trim_start().starts_with("=>") && name.starts_with(prefix))
                    .then(|| name.to_owned())
            })
            .collect()
    };
    let command_modes = arms(&read("tests/guests/hostile/src/main.rs"), "");
    let http_paths = arms(&read("tests/guests/http-hostile/src/lib.rs"), "/");
    assert!(
        command_modes.len() >= 12 && http_paths.len() >= 8,
        "{command_modes:?} {http_paths:?}"
    );
    for m in &command_modes {
        assert!(
            tests.contains(&format!("[\"{m}\"")) || tests.contains(&format!("(\"{m}\"")),
            "hostile mode `{m}` has no test"
        );
    }
    for p in &http_paths {
        assert!(
            tests.contains(&format!("\"{p}")),
            "http-hostile path `{p}` has no test"
        );
    }
}

#[test]
fn a_trap_exits_134() {
    for target in ["wasm32-wasip2", "wasm32-wasip1"] {
        let s = sandbox(target);
        s.run(&["trap"]).code(134).stderr_has("the guest trapped");
    }
}

#[test]
fn undeclared_paths_are_invisible() {
    let s = sandbox("wasm32-wasip2");
    s.denied(&["read", "/etc/passwd"]);
    s.denied(&["read", "/proc/self/environ"]);
    s.denied(&["read", "../../../../etc/passwd"]);
    s.denied(&["list-root", "data,out,static"]);
}

#[test]
fn dotdot_and_symlink_escapes_fail() {
    let s = sandbox("wasm32-wasip2");
    s.denied(&["read", "/data/../../etc/passwd"]);
    s.denied(&["read", "/data/../outside.txt"]);
    s.denied(&["read", "/data/link/passwd"]);
    s.denied(&["read", "/data/escape.txt"]);
    s.denied(&["read", "/data/abs-escape.txt"]);
    s.denied(&["read", "/static/../../etc/passwd"]);
    s.denied(&["write", "/out/../escaped.txt"]);
    assert!(!s.env.path("escaped.txt").exists());
}

#[test]
fn bundled_files_and_read_only_mounts_cannot_be_written() {
    let s = sandbox("wasm32-wasip2");
    s.denied(&["write", "/static/message.txt"]);
    s.denied(&["write", "/static/new.txt"]);
    s.denied(&["write", "/data/new.txt"]);
    s.denied(&["write", "/data/ok.txt"]);
    assert_eq!(
        std::fs::read_to_string(s.data.join("ok.txt")).unwrap(),
        "fine"
    );
    assert!(!s.data.join("new.txt").exists());
}

#[test]
fn host_environment_is_invisible() {
    let s = sandbox("wasm32-wasip2");
    s.denied(&["env", HOST_SECRET.0])
        .stdout_has("(0 variables visible)");
    s.denied(&["env", "PATH"]);
    s.denied(&["env", "WPKG_HOME"]);
}

#[test]
fn sockets_and_dns_fail() {
    let s = sandbox("wasm32-wasip2");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    s.denied(&["tcp", &addr]);
    assert!(
        listener.accept().is_err(),
        "the guest reached the host's listener"
    );
    s.denied(&["tcp-listen", "127.0.0.1:0"]);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    s.denied(&["udp", &udp.local_addr().unwrap().to_string()]);
    let mut buf = [0u8; 8];
    assert!(
        udp.recv_from(&mut buf).is_err(),
        "the guest's UDP packet arrived"
    );
    s.denied(&["dns", "localhost"]);
    s.denied(&["dns", "example.com"]);
}

#[test]
fn infinite_loop_ends_at_the_timeout() {
    let s = sandbox("wasm32-wasip2");
    let start = std::time::Instant::now();
    s.run(&["loop"]).code(124).stderr_has("time limit of 2s");
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    // A guest blocked in a host call is stopped too.
    s.run(&["sleep"]).code(124).stderr_has("time limit");
}

#[test]
fn memory_bomb_hits_the_limit() {
    let s = sandbox("wasm32-wasip2");
    s.run(&["membomb"])
        .code(137)
        .stderr_has("memory limit of 32MiB");
}

#[test]
fn wasip1_module_is_sandboxed_too() {
    let s = sandbox("wasm32-wasip1");
    s.run(&["read", "/data/ok.txt"]).code(42).stdout_has("LEAK");
    s.denied(&["read", "/etc/passwd"]);
    s.denied(&["read", "/data/../outside.txt"]);
    s.denied(&["read", "/data/link/passwd"]);
    s.denied(&["write", "/static/new.txt"]);
    s.denied(&["env", HOST_SECRET.0]);
    s.denied(&["dns", "localhost"]);
    s.run(&["loop"]).code(124);
    s.run(&["membomb"]).code(137);
}
