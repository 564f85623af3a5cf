//! The CLI's output as users see it, snapshotted with its exit code: help that teaches,
//! and errors as one `error:` line plus `hint:` lines. A change here is a change users
//! see; review it (`cargo insta review`, or `INSTA_UPDATE=always` and read the diff).
//! Scratch paths, digests and sizes (which depend on the toolchain that built the
//! guests) are replaced by placeholders.

use wpkg_tests::{command_manifest, guest, Env};

/// `exit: N`, then stdout and stderr, with the unstable parts replaced.
fn transcript(env: &Env, args: &[&str]) -> String {
    let r = env.wpkg(args);
    let text = format!(
        "$ wpkg {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        r.code.map_or("signal".into(), |c| c.to_string()),
        r.stdout,
        r.stderr
    );
    normalize(&text, &env.dir.path().display().to_string())
}

fn normalize(text: &str, scratch: &str) -> String {
    let mut out = text.replace(scratch, "[SCRATCH]");
    // WASI patch versions of a guest's imports follow the toolchain that built it.
    let mut from = 0;
    while let Some(i) = out[from..].find("@0.2.").map(|i| from + i) {
        let digits = out[i + 5..].bytes().take_while(u8::is_ascii_digit).count();
        out.replace_range(i + 5..i + 5 + digits, "x");
        from = i + 5;
    }
    // Digests: `sha256:` and 64 hex digits, or the 12-digit short form.
    for (prefix, len) in [("sha256:", 64), ("sha256:", 12)] {
        let mut done = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find(prefix) {
            let (head, tail) = rest.split_at(i + prefix.len());
            done.push_str(head);
            let hex = tail.bytes().take_while(u8::is_ascii_hexdigit).count();
            if hex == len {
                done.push_str("[DIGEST]");
                rest = &tail[hex..];
            } else {
                rest = tail;
            }
        }
        done.push_str(rest);
        out = done;
    }
    // Sizes like `112.8kB` (the guests' size depends on the compiler).
    let mut sized = String::new();
    for word in out.split_inclusive(|c: char| c.is_whitespace() || c == ',') {
        let w = word.trim_end_matches(|c: char| c.is_whitespace() || c == ',');
        let is_size = ["kB", "MB", "B"].iter().any(|u| {
            w.strip_suffix(u)
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.'))
        });
        if is_size {
            sized.push_str(&word.replacen(w, "[SIZE]", 1));
        } else {
            sized.push_str(word);
        }
    }
    sized
}

fn project(env: &Env) {
    let wasm = guest("example-hello", "wasm32-wasip2");
    let dir = env.project(
        "hello",
        &wasm,
        &command_manifest(
            "hello",
            "[capabilities]\nenv = { GREETING = \"Hi\" }\nenv_required = [\"TOKEN\"]\nmounts = [{ guest = \"/data\" }]\n[limits]\nmemory = \"64MiB\"\ntimeout = \"10s\"\n",
        ),
    );
    env.build(&dir, "hello:1");
}

#[test]
fn help_snapshots() {
    let env = Env::new();
    insta::assert_snapshot!("help", transcript(&env, &["--help"]));
    insta::assert_snapshot!("run_help", transcript(&env, &["run", "--help"]));
}

#[test]
fn run_error_snapshots() {
    let env = Env::new();
    project(&env);
    let cases: &[(&str, &[&str])] = &[
        ("run_not_found", &["run", "nope:1", "--pull", "never"]),
        ("run_bad_reference", &["run", "Bad::Ref"]),
        (
            "run_undeclared_env",
            &["run", "hello:1", "--env", "TOKEN=t", "--env", "HOME=/"],
        ),
        ("run_missing_env", &["run", "hello:1"]),
        (
            "run_memory_wider",
            &["run", "hello:1", "--env", "TOKEN=t", "--memory", "1GiB"],
        ),
        (
            "run_undeclared_mount",
            &["run", "hello:1", "--env", "TOKEN=t", "--mount", "/tmp:/etc"],
        ),
        (
            "run_bad_mount_syntax",
            &["run", "hello:1", "--mount", "nocolon"],
        ),
        ("push_local_only", &["push", "hello:1", "localhost/hello:1"]),
        ("verify_no_scope", &["verify", "hello:1"]),
    ];
    for (name, args) in cases {
        insta::assert_snapshot!(*name, transcript(&env, args));
    }
}

#[test]
fn run_and_inspect_snapshots() {
    let env = Env::new();
    project(&env);
    insta::assert_snapshot!(
        "run_ok",
        transcript(&env, &["run", "hello:1", "--env", "TOKEN=t", "--", "alice"])
    );
    insta::assert_snapshot!("inspect", transcript(&env, &["inspect", "hello:1"]));
    insta::assert_snapshot!("images", transcript(&env, &["images"]));
}
