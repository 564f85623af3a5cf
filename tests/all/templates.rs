//! `wpkg new`: every template builds outside this repository with public toolchains and
//! plays the seed demo (an HTTP template answers, its outbound call is denied with
//! wpkg's hint, one `outbound_http` line is added, the call succeeds); bad input is
//! refused with nothing written; completions and man pages.

use std::path::Path;
use std::process::Command;

use wpkg_tests::registry::which;
use wpkg_tests::serve::{upstream, Server};
use wpkg_tests::Env;

/// The variables a template's toolchain needs, passed through the harness's cleared
/// environment (it keeps only PATH).
const TOOLCHAIN_ENV: &[&str] = &[
    "HOME",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "npm_config_cache",
    "PYENV_ROOT",
    "PYENV_VERSION",
];

/// `cmd` with the toolchain variables of this process.
fn with_toolchain(mut cmd: Command) -> Command {
    for k in TOOLCHAIN_ENV {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd
}

/// Fails (never skips) when a program the template needs is missing.
#[track_caller]
fn require(programs: &[&str]) {
    for p in programs {
        assert!(
            which(p).is_some(),
            "`{p}` is not installed; the template tests need it: run bash scripts/setup.sh"
        );
    }
}

/// `wpkg new TEMPLATE svc` in the scratch dir, then the template's own preparation.
fn new_project(env: &Env, template: &str, prepare: &[&[&str]]) -> std::path::PathBuf {
    let r = env.wpkg(&["new", template, "svc"]).ok();
    assert!(r.stderr.contains("next: cd svc"), "{}", r.stderr);
    let dir = env.path("svc");
    for argv in prepare {
        let out = with_toolchain(Command::new(argv[0]))
            .args(&argv[1..])
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        assert!(
            out.status.success(),
            "{argv:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

/// `wpkg build` of the project (running its build command) with the toolchain.
fn build(env: &Env, dir: &Path) {
    let out = with_toolchain(env.cmd(&["build", "-q", dir.to_str().unwrap()]))
        .output()
        .expect("running wpkg build");
    assert!(
        out.status.success(),
        "wpkg build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The seed demo on a project made by `wpkg new TEMPLATE`.
fn seed_demo(template: &str, programs: &[&str], prepare: &[&[&str]]) {
    require(programs);
    let env = Env::new();
    let dir = new_project(&env, template, prepare);
    let manifest = std::fs::read_to_string(dir.join("wpkg.toml")).unwrap();
    assert!(manifest.contains("# outbound_http = "), "{manifest}");
    build(&env, &dir);

    let (up, hits) = upstream(200, "hello from the upstream service");
    let serve = || Server::start(env.cmd(&["run", "svc:0.1.0", "--listen", "127.0.0.1:0"]));
    let mut server = serve().unwrap();
    let (status, body) = server.get("/").unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "Hello from svc!\n"),
        "{}",
        server.stderr()
    );

    let fetch = format!("/fetch?url=http://{up}/");
    let (status, body) = server.get(&fetch).unwrap();
    assert_eq!(
        status,
        502,
        "denied by default: {body}\n{}",
        server.stderr()
    );
    assert!(
        body.contains("denied"),
        "the guest says it was denied: {body}"
    );
    let line = format!("outbound_http = [\"http://{up}\"]");
    assert!(
        server.wait_stderr(&line),
        "wpkg names the line to add:\n{}",
        server.stderr()
    );
    assert_eq!(
        *hits.lock().unwrap(),
        0,
        "a denied call never reaches the upstream"
    );
    server.stop();

    let allowed = manifest.replacen("[capabilities]\n", &format!("[capabilities]\n{line}\n"), 1);
    assert_ne!(allowed, manifest);
    std::fs::write(dir.join("wpkg.toml"), allowed).unwrap();
    // Only the manifest changed: pack the same wasm again (JS and Python builds are not
    // reproducible, and the same wasm keeps its compiled code).
    env.wpkg(&["build", "-q", "--no-build-command", dir.to_str().unwrap()])
        .ok();
    let mut server = serve().unwrap();
    let (status, body) = server.get(&fetch).unwrap();
    assert_eq!(status, 200, "{body}\n{}", server.stderr());
    assert!(
        body.contains("upstream answered 200: hello from the upstream service"),
        "{body}"
    );
    assert_eq!(*hits.lock().unwrap(), 1);
    assert_eq!(server.stop(), Some(0), "{}", server.stderr());
}

#[test]
fn http_rust_template_plays_the_seed_demo() {
    seed_demo("http-rust", &["cargo"], &[]);
}

#[test]
fn http_js_template_plays_the_seed_demo() {
    // componentize-js installed globally by scripts/setup.sh (a project's own
    // `npm install` works the same, with 386 MB of node_modules per project).
    seed_demo("http-js", &["node", "componentize-js"], &[]);
}

#[test]
fn http_python_template_plays_the_seed_demo() {
    seed_demo("http-python", &["python3", "componentize-py"], &[]);
}

#[test]
fn a_missing_toolchain_fails_the_build_with_the_set_up_command() {
    let env = Env::new();
    let dir = new_project(&env, "http-js", &[]);
    // A PATH with a shell and nothing else: no node_modules, no componentize-js.
    let bare = env.path("bare-bin");
    std::fs::create_dir(&bare).unwrap();
    std::os::unix::fs::symlink("/bin/sh", bare.join("sh")).unwrap();
    env.cmd(&["build", dir.to_str().unwrap()])
        .env("PATH", &bare)
        .output()
        .map(wpkg_tests::Run::from)
        .unwrap()
        .code(125)
        .stderr_has("componentize-js not found: run `npm install` here first");
    assert!(
        !env.wpkg(&["images"]).ok().stdout.contains("svc"),
        "nothing was stored"
    );
}

#[test]
fn command_rust_template_sees_only_what_it_is_granted() {
    require(&["cargo"]);
    let env = Env::new();
    let dir = new_project(&env, "command-rust", &[]);
    build(&env, &dir);
    // GREETING is set on the host but not granted: the guest falls back to "Hello".
    let run = |args: &[&str]| {
        let out = env
            .cmd(args)
            .env("GREETING", "from-the-host")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    assert_eq!(run(&["run", "svc:0.1.0", "--", "alice"]), "Hello, alice!\n");
    let manifest = std::fs::read_to_string(dir.join("wpkg.toml")).unwrap();
    let granted = manifest.replacen(
        "# env = { GREETING = \"Howdy\" }",
        "env = { GREETING = \"Howdy\" }",
        1,
    );
    assert_ne!(granted, manifest, "the template shows the env line");
    std::fs::write(dir.join("wpkg.toml"), granted).unwrap();
    build(&env, &dir);
    assert_eq!(run(&["run", "svc:0.1.0", "--", "alice"]), "Howdy, alice!\n");
}

#[test]
fn bad_input_to_new_writes_nothing() {
    let env = Env::new();
    let list = env.wpkg(&["new", "--list"]).ok();
    for t in ["http-rust", "command-rust", "http-js", "http-python"] {
        assert!(list.stdout.contains(t), "{}", list.stdout);
    }
    env.wpkg(&["new", "nope", "x"])
        .code(125)
        .stderr_has("error: there is no template `nope`")
        .stderr_has("hint: the templates are http-rust, command-rust, http-js, http-python");
    assert!(!env.path("x").exists());

    std::fs::create_dir_all(env.path("full")).unwrap();
    std::fs::write(env.path("full/keep.txt"), "mine").unwrap();
    env.wpkg(&["new", "http-rust", "full"])
        .code(125)
        .stderr_has("already exists and is not empty")
        .stderr_has("hint: give a new or empty directory");
    let left: Vec<_> = std::fs::read_dir(env.path("full")).unwrap().collect();
    assert_eq!(left.len(), 1, "nothing added to a non-empty directory");
    assert_eq!(
        std::fs::read_to_string(env.path("full/keep.txt")).unwrap(),
        "mine"
    );

    std::fs::write(env.path("file"), "x").unwrap();
    env.wpkg(&["new", "http-rust", "file"])
        .code(125)
        .stderr_has("is not a directory");

    env.wpkg(&["new", "http-rust", "9lives"])
        .code(125)
        .stderr_has("`9lives` cannot be a package name")
        .stderr_has("hint: choose the name with --name");
    assert!(!env.path("9lives").exists());
    env.wpkg(&["new", "http-rust", "9lives", "--name", "nine-lives"])
        .ok();
    assert!(std::fs::read_to_string(env.path("9lives/wpkg.toml"))
        .unwrap()
        .contains("name = \"nine-lives\""));
    // A directory name with spaces and capitals suggests a usable name.
    env.wpkg(&["new", "command-rust", "My Tool"])
        .ok()
        .stderr_has("`my-tool`")
        .stderr_has("next: cd 'My Tool' && wpkg run . -- alice");

    // `wpkg new T .` in an empty directory fills it in place, named after it.
    std::fs::create_dir(env.path("dot")).unwrap();
    let r = wpkg_tests::Run::from(
        env.cmd(&["new", "command-rust", "."])
            .current_dir(env.path("dot"))
            .output()
            .unwrap(),
    )
    .ok();
    assert!(r.stderr.contains("`dot`"), "{}", r.stderr);
    assert!(env.path("dot/src/main.rs").is_file());

    // A parent that cannot be made (a file is in the way): refused, nothing written.
    env.wpkg(&["new", "http-rust", "file/svc"])
        .code(125)
        .stderr_has("cannot write")
        .stderr_has("hint: nothing was created");
    assert_eq!(std::fs::read_to_string(env.path("file")).unwrap(), "x");
}

#[test]
fn completions_and_man_pages() {
    let env = Env::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef wpkg"),
        ("fish", "complete -c wpkg"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let r = env.wpkg(&["completions", shell]).ok();
        assert!(
            r.stdout.contains(marker),
            "{shell}: {}",
            &r.stdout[..r.stdout.len().min(300)]
        );
        assert!(r.stdout.contains("inspect"), "{shell} completes commands");
    }
    env.wpkg(&["completions", "tcsh"])
        .code(2)
        .stderr_has("invalid value 'tcsh'");
    let out = env.path("man");
    env.wpkg(&["man", "--out", out.to_str().unwrap()]).ok();
    let page = std::fs::read_to_string(out.join("wpkg-run.1")).unwrap();
    assert!(
        page.contains(".TH wpkg-run"),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(page.contains("listen"), "the page documents the flags");
    assert!(out.join("wpkg.1").is_file() && out.join("wpkg-new.1").is_file());
    assert!(
        !out.join("wpkg-man.1").exists(),
        "the hidden command has no page"
    );
}
