//! docs/first-service.md, run as written: every `sh` block in order, in one shell, with
//! only the release server, the registry and the port swapped for loopback ones.

use std::process::Command;

use wpkg_tests::registry::{free_port, which, Registry, Setup};
use wpkg_tests::release::Release;
use wpkg_tests::root;

/// The guide's fenced blocks: (language, text).
fn blocks(md: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in md.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) => current = Some((lang.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => out.push(current.take().unwrap()),
            (Some((_, text)), None) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "an unclosed code block");
    out
}

#[test]
fn the_first_service_guide_runs_as_written() {
    for p in ["cargo", "curl", "python3", "perl"] {
        assert!(
            which(p).is_some(),
            "`{p}` is missing: run bash scripts/setup.sh"
        );
    }
    let md = std::fs::read_to_string(root().join("docs/first-service.md")).unwrap();
    let all = blocks(&md);
    for (lang, text) in &all {
        assert!(
            lang == "sh" || lang == "text",
            "a block is `{lang}`: mark it `sh` (run by this test) or `text` (not run, and say why)\n{text}"
        );
    }
    let script: String = all
        .iter()
        .filter(|(lang, _)| lang == "sh")
        .map(|(_, text)| text.as_str())
        .collect();
    assert!(
        script.matches('\n').count() > 20,
        "the guide's commands were not found"
    );

    let release = Release::serve();
    let registry = Registry::start(Setup::Plain);
    let port = free_port().to_string();
    let script = script
        .replace("https://github.com/wpkg/wpkg/releases", &release.base_url)
        .replace("ghcr.io/you", &format!("{}/you", registry.host))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));

    let home = tempfile::tempdir().unwrap();
    let real_home = std::env::var("HOME").unwrap_or_default();
    let keep = |k: &str, default: String| std::env::var(k).unwrap_or(default);
    // A regression that leaves a server running fails the test instead of hanging it.
    let out = Command::new("timeout")
        .args(["600", "bash", "-euo", "pipefail", "-c", &script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env(
            "CARGO_HOME",
            keep("CARGO_HOME", format!("{real_home}/.cargo")),
        )
        .env(
            "RUSTUP_HOME",
            keep("RUSTUP_HOME", format!("{real_home}/.rustup")),
        )
        .env("WPKG_INSTALL_BASE_URL", &release.base_url)
        .envs(std::env::var_os("RUSTUP_TOOLCHAIN").map(|t| ("RUSTUP_TOOLCHAIN", t)))
        .current_dir(home.path())
        .output()
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let both = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(out.status.success(), "the guide failed:\n{both}");
    let installed = home.path().join(".local/bin/wpkg");
    assert!(installed.is_file(), "install.sh put wpkg in ~/.local/bin");
    assert!(
        stdout.contains(&format!("wpkg {}", release.version)),
        "{both}"
    );
    assert_eq!(stdout.matches("Hello from hello!").count(), 3, "{both}");
    assert!(stdout.contains("outbound call failed: denied"), "{both}");
    let line = format!("outbound_http = [\"http://127.0.0.1:{port}\"]");
    assert!(
        stderr.contains(&line),
        "wpkg named the line to add:\n{both}"
    );
    assert!(
        stdout.contains("upstream answered 200: Hello from hello!"),
        "{both}"
    );
    assert!(stdout.contains("refused: nobody trusted yet"), "{both}");
    assert!(
        stderr.contains(&format!("{}/you/hello:0.1.0@sha256:", registry.host))
            || stdout.contains(&format!("{}/you/hello:0.1.0@sha256:", registry.host)),
        "{both}"
    );
}
